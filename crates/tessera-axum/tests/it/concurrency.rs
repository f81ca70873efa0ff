//! Races: concurrent logins of one (user, client) end with one token, handed to everyone;
//! concurrent API-access POSTs create exactly one key.

use crate::both_backends;
use crate::support::*;
use serde_json::json;
use std::collections::BTreeSet;

both_backends!(
    async fn fifty_concurrent_logins_share_one_token(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let body = json!({"username": "alice", "password": PASSWORD, "client": "web"});
        let logins = (0..50).map(|_| app.login_with(body.clone()));
        let replies = join_all(logins).await;
        let mut tokens = BTreeSet::new();
        let mut expiries = BTreeSet::new();
        for reply in &replies {
            assert_eq!(reply.status, 200, "{}", reply.text);
            tokens.insert(reply.body["token"].as_str().expect("token").to_string());
            expiries.insert(reply.body["expiry"].to_string());
        }
        assert_eq!(tokens.len(), 1, "everyone got the same token");
        assert_eq!(expiries.len(), 1, "and the same expiry");
        let stored = app.tokens().await;
        assert_eq!(stored.len(), 1, "exactly one token in the store");
        assert_eq!((stored[0].user_id, stored[0].client_id), (alice.id, web.id));
        assert_eq!(app.events_named("token_created").len(), 1);
        assert_eq!(app.events_named("user_logged_in").len(), 50);
        let token = tokens.into_iter().next().expect("token");
        assert_eq!(app.get("/api/hello/", Some(&token)).await, (200, json!({"hello": "alice"})));
    }
);

both_backends!(
    options = Options::with(|s| s.api_access_client_name = Some("api-access".parse().expect("name"))),
    async fn twenty_concurrent_api_access_posts_create_one_key(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        let posts = (0..20).map(|_| app.post("/api/auth/apiaccess/", Some(&token)));
        let replies = join_all(posts).await;
        let created: Vec<_> = replies.iter().filter(|(status, _)| *status == 201).collect();
        let refused: Vec<_> = replies.iter().filter(|(status, _)| *status == 400).collect();
        assert_eq!((created.len(), refused.len()), (1, 19), "{replies:?}");
        for (_, body) in &refused {
            assert_eq!(body, &json!(["An API token was already issued to you."]));
        }
        assert_eq!(app.tokens().await.len(), 2, "the web token and one API key");
        assert_eq!(app.events_named("token_created").len(), 1);
        let key = created[0].1["token"].as_str().expect("token");
        assert_eq!(app.get("/api/hello/", Some(key)).await.0, 200);
    }
);

/// Sends a login and resets the connection (RST) `after` it, before the answer.
async fn login_then_reset(base: &str, after: std::time::Duration) {
    use tokio::io::AsyncWriteExt;
    let body = json!({"username": "alice", "password": "a wrong guess", "client": "web"}).to_string();
    let request = format!(
        "POST /api/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    tokio::time::sleep(after).await;
    stream.set_zero_linger().expect("linger");
    drop(stream);
}

both_backends!(
    options = Options { password_checks: Some(2), ..Options::default() },
    async fn aborted_logins_never_run_more_password_checks_than_the_limit(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let checks = app.tessera.password_checks().clone();
        assert_eq!(checks.limit(), 2);
        // Forty logins, one every 2 ms, each reset 10 ms after it was sent: a permit held by the
        // request would go with it while its Argon2id check runs on, and the next request would
        // start another; held by the check, at most two run at any moment.
        let started = std::time::Instant::now();
        let resets = (0..40u64).map(|i| {
            let base = app.base.clone();
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(2 * i)).await;
                login_then_reset(&base, std::time::Duration::from_millis(10)).await;
            }
        });
        join_all(resets).await;
        let idle = within(std::time::Duration::from_secs(10), || async { checks.running() == 0 }).await;
        assert!(idle.is_some(), "the checks end");
        assert!(checks.peak() <= 2, "{} checks ran at once with a limit of 2", checks.peak());
        assert!(checks.peak() >= 1, "the resets came after the checks started");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        // Every permit came back: logins still work.
        assert_eq!(app.login_with(json!({"username": "alice", "password": PASSWORD, "client": "web"})).await.status, 200);
    }
);
