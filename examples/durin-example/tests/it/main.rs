//! The example app as a real process, managed by the real `tessera` CLI: what a user of the library
//! sees, including revocations made by another process.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::{Backend, Example};

/// Polls `path` with `token` until it answers `status`; returns how long that took.
async fn time_until(app: &Example, path: &str, token: &str, status: u16, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (got, _) = app.get(path, Some(token)).await;
        if got == status {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{path} still answers {got}, not {status}, after {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn cli_revocations_reach_the_cached_authenticator(backend: Backend) {
    let Some(app) = Example::start(backend).await else { return };
    app.cli(&["client", "create", "web", "--token-ttl", "1d"]);
    app.cli_stdin(&["user", "create", "alice", "--password-stdin"], "correct horse battery\n");
    app.cli_stdin(&["user", "create", "bob", "--password-stdin"], "correct horse battery\n");

    // Revoke: the cached authenticator has the token, the CLI deletes it in another process.
    let token = app.login("alice", "web").await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/hello-cached/", Some(&token)).await, (200, json!({"hello": "alice"})));
    }
    app.cli(&["token", "revoke", "--user", "alice"]);
    let took = time_until(&app, "/api/hello-cached/", &token, 401, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.1["detail"], "Invalid token.");

    // Expire now: the next use is told so, once.
    let token = app.login("alice", "web").await;
    assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
    app.cli(&["token", "expire", "--user", "alice", "--client", "web"]);
    let took = time_until(&app, "/api/hello-cached/", &token, 401, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(1), "expiry took {took:?}");

    // Deactivation stops every token of the user, and only theirs.
    let alice = app.login("alice", "web").await;
    let bob = app.login("bob", "web").await;
    assert_eq!(app.get("/api/hello-cached/", Some(&alice)).await.0, 200);
    assert_eq!(app.get("/api/hello-cached/", Some(&bob)).await.0, 200);
    app.cli(&["user", "deactivate", "alice"]);
    let took = time_until(&app, "/api/hello-cached/", &alice, 401, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(1), "deactivation took {took:?}");
    assert_eq!(app.get("/api/hello-cached/", Some(&alice)).await.1["detail"], "User inactive or deleted.");
    assert_eq!(app.get("/api/hello-cached/", Some(&bob)).await.0, 200);
    app.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_revocations_reach_the_cached_authenticator_on_sqlite() {
    cli_revocations_reach_the_cached_authenticator(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_revocations_reach_the_cached_authenticator_on_postgres() {
    cli_revocations_reach_the_cached_authenticator(Backend::Postgres).await;
}

async fn the_example_routes(backend: Backend) {
    let Some(app) = Example::start(backend).await else { return };
    app.cli(&["client", "create", "web"]);
    app.cli(&["client", "create", "cli", "--token-ttl", "never", "--throttle-rate", "3/m"]);
    app.cli_stdin(&["user", "create", "alice", "--password-stdin"], "correct horse battery\n");

    assert_eq!(app.get("/api/ping/", None).await, (200, json!({"ping": "pong"})));
    let (status, body) = app.get("/api/hello/", None).await;
    assert_eq!((status, &body["detail"]), (401, &json!("Authentication credentials were not provided.")));

    let web = app.login("alice", "web").await;
    let cli = app.login("alice", "cli").await;
    assert_eq!(app.get("/api/web-only/", Some(&web)).await.0, 200);
    let (status, body) = app.get("/api/web-only/", Some(&cli)).await;
    assert_eq!((status, &body["detail"]), (403, &json!("You do not have permission to perform this action.")));
    assert_eq!(app.get("/api/no-cli/", Some(&web)).await.0, 200);
    assert_eq!(app.get("/api/no-cli/", Some(&cli)).await.0, 403);

    // The cli client's 3/m budget is shared by every throttled route of that (user, client);
    // the 403s above were refused before the throttle and cost nothing.
    assert_eq!(app.get("/api/hello/", Some(&cli)).await.0, 200);
    assert_eq!(app.get("/api/hello-cached/", Some(&cli)).await.0, 200);
    assert_eq!(app.get("/api/auth/sessions/", Some(&cli)).await.0, 200);
    let (status, body) = app.get("/api/hello/", Some(&cli)).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["detail"].as_str().unwrap_or_default().starts_with("Request was throttled. Expected available in "));
    // The web client of the same user has its own budget.
    assert_eq!(app.get("/api/hello/", Some(&web)).await.0, 200);
    app.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_routes_on_sqlite() {
    the_example_routes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_routes_on_postgres() {
    the_example_routes(Backend::Postgres).await;
}

/// The README's quickstart: login → hello → sessions → refresh → logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_flow() {
    let Some(app) = Example::start(Backend::Sqlite).await else { return };
    app.cli(&["client", "create", "web", "--token-ttl", "1d"]);
    app.cli_stdin(&["user", "create", "alice", "--password-stdin"], "correct horse battery\n");
    let token = app.login("alice", "web").await;
    assert_eq!(app.get("/api/hello/", Some(&token)).await, (200, json!({"hello": "alice"})));
    let (status, sessions) = app.get("/api/auth/sessions/", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(sessions[0]["client"], "web");
    assert_eq!(sessions[0]["is_current"], true);
    assert_eq!(sessions[0]["expires_in_str"], "a day");
    let (status, refreshed) = app.post("/api/auth/refresh/", Some(&token)).await;
    assert_eq!(status, 200);
    assert!(refreshed["expiry"].as_str().is_some_and(|e| e.ends_with('Z')), "{refreshed}");
    assert_eq!(app.post("/api/auth/logout/", Some(&token)).await.0, 204);
    assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 401);
    app.stop();
}
