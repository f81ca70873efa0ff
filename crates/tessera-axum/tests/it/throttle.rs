//! The per-(user, client) throttle with DRF's semantics, on protected and auth routes, and the
//! login throttle per IP and per username.

use crate::both_backends;
use crate::support::*;
use chrono::TimeDelta;
use reqwest::Method;
use serde_json::json;

fn rate(s: &str) -> Option<tessera_core::Rate> {
    Some(s.parse().expect("rate"))
}

#[track_caller]
fn assert_throttled(reply: &Reply, wait: u64) {
    let unit = if wait == 1 { "second" } else { "seconds" };
    let detail = json!({"detail": format!("Request was throttled. Expected available in {wait} {unit}.")});
    assert_eq!((reply.status, &reply.body), (429, &detail), "{}", reply.text);
    assert_eq!(reply.header("retry-after"), Some(wait.to_string().as_str()));
    assert_eq!(reply.header("www-authenticate"), None);
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

both_backends!(
    options = Options::with(|s| s.default_throttle_rate = rate("2/m")),
    async fn the_client_rate_overrides_the_default(app) {
        let alice = app.user("alice").await;
        let web = app.mint(&alice, &app.client_with("web", "1d", |c| c.throttle_rate = rate("3/m")).await).await;
        let cli = app.mint(&alice, &app.client("cli", "1d").await).await;
        for _ in 0..3 {
            assert_eq!(app.get("/api/hello/", Some(&web)).await.0, 200);
        }
        assert_throttled(&app.send(app.req(Method::GET, "/api/hello/", Some(&web))).await, 60);
        for _ in 0..2 {
            assert_eq!(app.get("/api/hello/", Some(&cli)).await.0, 200);
        }
        assert_throttled(&app.send(app.req(Method::GET, "/api/hello/", Some(&cli))).await, 60);
    }
);

both_backends!(
    options = Options::with(|s| s.default_throttle_rate = rate("2/m")),
    async fn the_wait_counts_down_to_the_oldest_request_leaving_the_window(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        let hello = || app.send(app.req(Method::GET, "/api/hello/", Some(&token)));
        assert_eq!(hello().await.status, 200);
        app.advance(TimeDelta::seconds(20));
        assert_eq!(hello().await.status, 200);
        app.advance(TimeDelta::seconds(10));
        assert_throttled(&hello().await, 30);
        app.advance(TimeDelta::seconds(29));
        assert_throttled(&hello().await, 1);
        app.advance(TimeDelta::milliseconds(500));
        assert_throttled(&hello().await, 1);
        app.advance(TimeDelta::milliseconds(500));
        assert_eq!(hello().await.status, 200, "the first request left the window");
        // Refused requests were not counted: the second (t=20 s) is now the oldest.
        assert_throttled(&hello().await, 20);
        app.advance(TimeDelta::seconds(20));
        assert_eq!(hello().await.status, 200);
    }
);

both_backends!(
    options = Options::with(|s| s.default_throttle_rate = rate("1/m")),
    async fn budgets_are_per_user_and_client(app) {
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        let (web, cli) = (app.client("web", "1d").await, app.client("cli", "1d").await);
        let tokens = [app.mint(&alice, &web).await, app.mint(&alice, &cli).await, app.mint(&bob, &web).await];
        for token in &tokens {
            assert_eq!(app.get("/api/hello/", Some(token)).await.0, 200);
        }
        for token in &tokens {
            assert_eq!(app.get("/api/hello/", Some(token)).await.0, 429);
        }
        app.advance(TimeDelta::minutes(1));
        for token in &tokens {
            assert_eq!(app.get("/api/hello-cached/", Some(token)).await.0, 200);
        }
    }
);

both_backends!(
    options = Options::with(|s| s.default_throttle_rate = rate("2/h")),
    async fn auth_routes_share_the_budget(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let token = app.mint(&alice, &web).await;
        assert_eq!(app.get("/api/auth/sessions/", Some(&token)).await.0, 200);
        assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
        for (method, path) in [
            (Method::GET, "/api/auth/sessions/"),
            (Method::POST, "/api/auth/refresh/"),
            (Method::POST, "/api/auth/logout/"),
            (Method::POST, "/api/auth/logoutall/"),
            (Method::GET, "/api/web-only/"),
            (Method::GET, "/api/hello/"),
        ] {
            assert_throttled(&app.send(app.req(method.clone(), path, Some(&token))).await, 3_600);
        }
        assert!(app.token_for(&alice, &web).await.is_some(), "a throttled logout deletes nothing");
        app.advance(TimeDelta::hours(1));
        assert_eq!(app.post("/api/auth/logout/", Some(&token)).await.0, 204);
    }
);

both_backends!(
    async fn no_rate_means_no_throttle(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        for _ in 0..40 {
            assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
        }
    }
);

both_backends!(
    options = Options::with(|s| s.login_throttle_per_ip = rate("3/m")),
    async fn login_is_throttled_per_ip(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        // Every attempt counts, whatever its outcome.
        assert_eq!(app.login_with(json!({})).await.status, 400);
        assert_eq!(app.login_with(json!({"username": "alice", "password": "nope"})).await.status, 400);
        app.login("alice", "web").await;
        app.advance(TimeDelta::seconds(15));
        let ok = json!({"username": "alice", "password": PASSWORD, "client": "web"});
        assert_throttled(&app.login_with(ok.clone()).await, 45);
        // Not even the body is read: malformed JSON is throttled too.
        let reply =
            app.send(app.req(Method::POST, "/api/auth/login/", None).header("content-type", "application/json").body("{")).await;
        assert_throttled(&reply, 45);
        app.advance(TimeDelta::seconds(45));
        assert_eq!(app.login_with(ok).await.status, 200);
        assert_eq!(app.tokens().await.len(), 1);
    }
);

both_backends!(
    options = Options::with(|s| s.login_throttle_per_username = rate("2/m")),
    async fn login_failures_are_throttled_per_username(app) {
        let alice = app.user("alice").await;
        app.user("bob").await;
        let web = app.client("web", "1d").await;
        // Successes do not count.
        for _ in 0..3 {
            app.login("bob", "web").await;
        }
        let wrong = json!({"username": "alice", "password": "wrong password", "client": "web"});
        assert_eq!(app.login_with(wrong.clone()).await.status, 400);
        app.advance(TimeDelta::seconds(10));
        assert_eq!(app.login_with(wrong).await.status, 400);
        // Now even the right password is refused, and the trimmed name is the same name.
        let right = json!({"username": " alice ", "password": PASSWORD, "client": "web"});
        assert_throttled(&app.login_with(right.clone()).await, 50);
        assert_eq!(app.token_for(&alice, &web).await, None);
        // Other usernames are not affected.
        app.login("bob", "web").await;
        app.advance(TimeDelta::seconds(50));
        assert_eq!(app.login_with(right).await.status, 200);
    }
);
