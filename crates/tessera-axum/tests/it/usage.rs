//! Usage analytics and metrics as a service counts them: each request once, under the outcome it
//! ended with (a guard's refusal is not also an "ok"); logins and tokens from their events; token
//! request counts and active users from the last-used buffer; written at shutdown, two instances
//! adding up; pruned past the retention.

use crate::both_backends;
use crate::support::*;
use chrono::TimeDelta;
use serde_json::json;
use tessera_core::{TokenId, UsageLog, UsageQuery};

fn counted() -> Options {
    Options { usage: true, ..Options::default() }
}

/// The value of the metric line starting with `series` (name and labels).
fn metric(app: &TestApp, series: &str) -> u64 {
    let text = app.tessera.render_metrics().expect("counting is on");
    let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in {text}"));
    line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

fn today(app: &TestApp) -> UsageQuery {
    let day = app.now().date_naive();
    UsageQuery { client: None, from: day, to: day }
}

both_backends!(
    options = counted(),
    async fn each_request_counts_once_under_its_outcome(app) {
        let alice = app.user("alice").await;
        let web = app.client_with("web", "1h", |c| c.throttle_rate = Some("3/m".parse().expect("rate"))).await;
        let cli = app.client("cli", "1d").await;
        let token = app.mint(&alice, &web).await;
        let cli_token = app.mint(&alice, &cli).await;
        let first = app.token_for(&alice, &web).await.expect("the web token").id;
        let ok = r#"tessera_authentications_total{client="web",outcome="ok"}"#;
        for path in ["/api/hello/", "/api/hello-cached/", "/api/hello-cached/"] {
            assert_eq!(app.get(path, Some(&token)).await.0, 200);
        }
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 429);
        assert_eq!(app.get("/api/web-only/", Some(&cli_token)).await.0, 403);
        assert_eq!(app.get("/api/hello/", Some("tsr_not-a-token")).await.0, 401);
        assert_eq!(app.get("/api/hello/", None).await.0, 401, "no token: not an authentication");
        assert_eq!(metric(&app, ok), 3);
        assert_eq!(metric(&app, r#"tessera_authentications_total{client="web",outcome="throttled"}"#), 1);
        assert_eq!(metric(&app, r#"tessera_throttled_total{client="web"}"#), 1);
        assert_eq!(metric(&app, r#"tessera_authentications_total{client="cli",outcome="forbidden_client"}"#), 1);
        assert_eq!(metric(&app, r#"tessera_authentications_total{client="cli",outcome="ok"}"#), 0);
        assert_eq!(metric(&app, r#"tessera_authentications_total{client="unknown",outcome="invalid_token"}"#), 1);
        assert_eq!(metric(&app, "tessera_authentication_duration_seconds_count"), 6);
        assert_eq!(metric(&app, r#"tessera_tokens_issued_total{client="web"}"#), 1);
        // A login (reusing the pair's token: nothing issued), a failed one, a logout.
        let body = json!({"username": "alice", "password": "wrong horse", "client": "web"});
        assert_eq!(app.login_with(body).await.status, 400);
        let again = app.login("alice", "cli").await;
        assert_eq!(app.post("/api/auth/logout/", Some(&again)).await.0, 204);
        assert_eq!(metric(&app, r#"tessera_logins_total{client="cli",outcome="ok"}"#), 1);
        assert_eq!(metric(&app, r#"tessera_logins_total{client="unknown",outcome="failed"}"#), 1);
        assert_eq!(metric(&app, r#"tessera_tokens_revoked_total{client="cli",by="user"}"#), 1);
        // Expired: under its client.
        app.advance(TimeDelta::hours(2));
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 401);
        assert_eq!(metric(&app, r#"tessera_authentications_total{client="web",outcome="expired"}"#), 1);

        // Another instance's requests add up in the store.
        let other = app.second_instance().await;
        let fresh = app.mint(&alice, &web).await;
        let reply = reqwest::Client::new()
            .get(format!("{}/api/hello-cached/", other.base))
            .header("Authorization", format!("Token {fresh}"))
            .send()
            .await
            .expect("request");
        assert_eq!(reply.status(), 200);
        other.tessera.shutdown().await;
        app.tessera.shutdown().await;
        let totals = app.store().usage_totals(&today(&app)).await.expect("totals");
        let of = |name: &str| totals.iter().find(|t| t.client == name).cloned().expect(name);
        let (web_row, cli_row, unknown) = (of("web"), of("cli"), of("unknown"));
        assert_eq!(web_row.counts.requests.ok, 4, "3 here, 1 on the other instance: {web_row:?}");
        assert_eq!((web_row.counts.requests.throttled, web_row.counts.requests.expired), (1, 1));
        assert_eq!((web_row.counts.tokens_issued, web_row.active_users), (2, 1));
        assert_eq!((cli_row.counts.requests.forbidden_client, cli_row.counts.logins.ok), (1, 1));
        assert_eq!(cli_row.counts.tokens_revoked, 1);
        assert_eq!((unknown.counts.requests.invalid_token, unknown.counts.logins.failed), (1, 1));
        // Per token: the first web token's 4 uses (the throttled one is a use; the expired one is
        // not), the fresh one's 1 on the other instance.
        let fresh_id = app.token_for(&alice, &web).await.expect("the fresh token").id;
        let mut requests = app.store().token_requests(&[first, fresh_id, TokenId(1)]).await.expect("token requests");
        requests.sort();
        let mut want = vec![(first, 4), (fresh_id, 1)];
        want.sort();
        assert_eq!(requests, want);
        // Pruned past the retention (400 days).
        app.advance(TimeDelta::days(401));
        assert!(app.tessera.prune_usage().await.expect("prune") > 0);
        let day = app.now().date_naive();
        let everything = UsageQuery { client: None, from: day - TimeDelta::days(500), to: day };
        assert!(app.store().usage_by_day(&everything).await.expect("read").is_empty());
    }
);
