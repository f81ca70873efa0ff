//! The example app as a real process, managed by the real `tessera` CLI: what a user of the library
//! sees, including revocations made by another process.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use tessera_testkit::{Backend, Method, Server, test_each_backend};

/// Polls `path` with `token` until it answers `status`; returns how long that took.
fn time_until(app: &Server, path: &str, token: &str, status: u16, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (got, _) = app.call(Method::GET, path, Some(token));
        if got == status {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{path} still answers {got}, not {status}, after {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn cli_revocations_reach_the_cached_authenticator(backend: Backend) {
    let Some((env, app)) = support::start(backend) else { return };
    env.ok(&["client", "create", "web", "--token-ttl", "1d"]);
    env.create_user("alice", &[]);
    env.create_user("bob", &[]);

    // Revoke: the cached authenticator has the token, the CLI deletes it in another process.
    let token = app.token("alice", "web");
    for _ in 0..3 {
        assert_eq!(app.call(Method::GET, "/api/hello-cached/", Some(&token)), (200, json!({"hello": "alice"})));
    }
    env.ok(&["token", "revoke", "--user", "alice"]);
    let took = time_until(&app, "/api/hello-cached/", &token, 401, Duration::from_secs(2));
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    assert_eq!(app.call(Method::GET, "/api/hello-cached/", Some(&token)).1["detail"], "Invalid token.");

    // Expire now: the next use is told so, once.
    let token = app.token("alice", "web");
    assert_eq!(app.call(Method::GET, "/api/hello-cached/", Some(&token)).0, 200);
    env.ok(&["token", "expire", "--user", "alice", "--client", "web"]);
    let took = time_until(&app, "/api/hello-cached/", &token, 401, Duration::from_secs(2));
    assert!(took < Duration::from_secs(1), "expiry took {took:?}");

    // Deactivation stops every token of the user, and only theirs.
    let alice = app.token("alice", "web");
    let bob = app.token("bob", "web");
    assert_eq!(app.call(Method::GET, "/api/hello-cached/", Some(&alice)).0, 200);
    assert_eq!(app.call(Method::GET, "/api/hello-cached/", Some(&bob)).0, 200);
    env.ok(&["user", "deactivate", "alice"]);
    let took = time_until(&app, "/api/hello-cached/", &alice, 401, Duration::from_secs(2));
    assert!(took < Duration::from_secs(1), "deactivation took {took:?}");
    assert_eq!(app.call(Method::GET, "/api/hello-cached/", Some(&alice)).1["detail"], "User inactive or deleted.");
    assert_eq!(app.call(Method::GET, "/api/hello-cached/", Some(&bob)).0, 200);
    app.stop();
}

test_each_backend!(cli_revocations_reach_the_cached_authenticator => cli_revocations_reach_the_cached_authenticator_on_sqlite, cli_revocations_reach_the_cached_authenticator_on_postgres);

/// `tessera token revoke --all` logs everyone out (or everyone on one client), in the running
/// server within a second, cached verdicts included.
fn revoke_all_logs_everyone_out(backend: Backend) {
    let Some((env, app)) = support::start(backend) else { return };
    env.ok(&["client", "create", "web", "--token-ttl", "1d"]);
    env.ok(&["client", "create", "cli", "--token-ttl", "never"]);
    env.create_user("alice", &[]);
    env.create_user("bob", &[]);
    let web = [app.token("alice", "web"), app.token("bob", "web")];
    let cli = [app.token("alice", "cli"), app.token("bob", "cli")];
    for token in web.iter().chain(&cli) {
        assert_eq!(app.call(Method::GET, "/api/hello-cached/", Some(token)).0, 200);
    }
    let out = env.ok(&["token", "revoke", "--all", "--client", "cli"]);
    assert_eq!(out.trim(), "revoked 2 token(s) on client 'cli'");
    for token in &cli {
        let took = time_until(&app, "/api/hello-cached/", token, 401, Duration::from_secs(2));
        assert!(took < Duration::from_secs(1), "the revocation took {took:?}");
    }
    for token in &web {
        assert_eq!(app.call(Method::GET, "/api/hello-cached/", Some(token)).0, 200, "other clients keep theirs");
    }
    assert_eq!(env.ok(&["token", "revoke", "--all"]).trim(), "revoked 2 token(s)");
    for token in &web {
        let took = time_until(&app, "/api/hello-cached/", token, 401, Duration::from_secs(2));
        assert!(took < Duration::from_secs(1), "the revocation took {took:?}");
    }
    app.stop();
}

test_each_backend!(revoke_all_logs_everyone_out => revoke_all_logs_everyone_out_on_sqlite, revoke_all_logs_everyone_out_on_postgres);

/// A password change in the CLI ends every session of the user, in the running server within a
/// second; the next login with the new password gets a new token, not the old one back.
fn a_password_change_revokes_the_users_tokens(backend: Backend) {
    let Some((env, app)) = support::start(backend) else { return };
    env.ok(&["client", "create", "web", "--token-ttl", "1d"]);
    env.ok(&["client", "create", "cli", "--token-ttl", "never"]);
    env.create_user("alice", &[]);
    env.create_user("bob", &[]);
    let (web, cli, bob) = (app.token("alice", "web"), app.token("alice", "cli"), app.token("bob", "web"));
    for token in [&web, &cli, &bob] {
        assert_eq!(app.call(Method::GET, "/api/hello-cached/", Some(token)).0, 200);
    }
    let out = env.ok_with_stdin(&["user", "set-password", "alice", "--password-stdin"], "a brand new password\n");
    assert!(out.contains("2 token(s) revoked"), "{out}");
    let took = time_until(&app, "/api/hello-cached/", &web, 401, Duration::from_secs(2));
    assert!(took < Duration::from_secs(1), "the revocation took {took:?}");
    for token in [&web, &cli] {
        assert_eq!(app.call(Method::GET, "/api/hello/", Some(token)), (401, json!({"detail": "Invalid token."})));
    }
    assert_eq!(app.call(Method::GET, "/api/hello-cached/", Some(&bob)).0, 200, "other users keep theirs");
    // The old password no longer logs in; the new one gets a fresh token.
    assert_eq!(app.login("alice", "web").0, 400);
    let body = json!({"username": "alice", "password": "a brand new password", "client": "web"});
    let (status, reply) =
        tessera_testkit::http(Method::POST, &format!("{}/api/auth/login/", app.base), None, Some(body));
    assert_eq!(status, 200, "{reply}");
    assert_ne!(reply["token"].as_str(), Some(web.as_str()));
    app.stop();
}

test_each_backend!(a_password_change_revokes_the_users_tokens => a_password_change_revokes_the_users_tokens_on_sqlite, a_password_change_revokes_the_users_tokens_on_postgres);

fn the_example_routes(backend: Backend) {
    let Some((env, app)) = support::start(backend) else { return };
    env.ok(&["client", "create", "web"]);
    env.ok(&["client", "create", "cli", "--token-ttl", "never", "--throttle-rate", "3/m"]);
    env.create_user("alice", &[]);

    assert_eq!(app.get("/api/ping/"), (200, json!({"ping": "pong"})));
    let (status, body) = app.get("/api/hello/");
    assert_eq!((status, &body["detail"]), (401, &json!("Authentication credentials were not provided.")));

    let web = app.token("alice", "web");
    let cli = app.token("alice", "cli");
    assert_eq!(app.call(Method::GET, "/api/web-only/", Some(&web)).0, 200);
    let (status, body) = app.call(Method::GET, "/api/web-only/", Some(&cli));
    assert_eq!((status, &body["detail"]), (403, &json!("You do not have permission to perform this action.")));
    assert_eq!(app.call(Method::GET, "/api/no-cli/", Some(&web)).0, 200);
    assert_eq!(app.call(Method::GET, "/api/no-cli/", Some(&cli)).0, 403);

    // The cli client's 3/m budget is shared by every throttled route of that (user, client);
    // the 403s above were refused before the throttle and cost nothing.
    assert_eq!(app.call(Method::GET, "/api/hello/", Some(&cli)).0, 200);
    assert_eq!(app.call(Method::GET, "/api/hello-cached/", Some(&cli)).0, 200);
    assert_eq!(app.call(Method::GET, "/api/auth/sessions/", Some(&cli)).0, 200);
    let (status, body) = app.call(Method::GET, "/api/hello/", Some(&cli));
    assert_eq!(status, 429, "{body}");
    assert!(body["detail"].as_str().unwrap_or_default().starts_with("Request was throttled. Expected available in "));
    // The benchmark's "throttle off" route authenticates but never throttles.
    assert_eq!(app.call(Method::GET, "/api/hello-cached-unthrottled/", Some(&cli)), (200, json!({"hello": "alice"})));
    assert_eq!(app.call(Method::GET, "/api/hello-cached-unthrottled/", None).0, 401);
    // The web client of the same user has its own budget.
    assert_eq!(app.call(Method::GET, "/api/hello/", Some(&web)).0, 200);
    app.stop();
}

test_each_backend!(the_example_routes => the_example_routes_on_sqlite, the_example_routes_on_postgres);

/// The README's quickstart: login → hello → sessions → refresh → logout.
#[test]
fn the_quickstart_flow() {
    let Some((env, app)) = support::start(Backend::Sqlite) else { return };
    env.ok(&["client", "create", "web", "--token-ttl", "1d"]);
    env.create_user("alice", &[]);
    let token = app.token("alice", "web");
    assert_eq!(app.call(Method::GET, "/api/hello/", Some(&token)), (200, json!({"hello": "alice"})));
    let (status, sessions) = app.call(Method::GET, "/api/auth/sessions/", Some(&token));
    assert_eq!(status, 200);
    assert_eq!(sessions[0]["client"], "web");
    assert_eq!(sessions[0]["is_current"], true);
    assert_eq!(sessions[0]["expires_in_str"], "a day");
    let (status, refreshed) = app.call(Method::POST, "/api/auth/refresh/", Some(&token));
    assert_eq!(status, 200);
    assert!(refreshed["expiry"].as_str().is_some_and(|e| e.ends_with('Z')), "{refreshed}");
    assert_eq!(app.call(Method::POST, "/api/auth/logout/", Some(&token)).0, 204);
    assert_eq!(app.call(Method::GET, "/api/hello/", Some(&token)).0, 401);
    app.stop();
}

/// The example serves through `tessera_axum::serve::serve` with the configured limits: a half-sent head
/// is cut off, a stalled body gets 408, and the app still answers.
#[test]
fn the_example_bounds_slow_clients() {
    use std::io::{Read, Write};
    let vars = [("TESSERA_HEADER_READ_TIMEOUT", "1s"), ("TESSERA_REQUEST_BODY_TIMEOUT", "1s")];
    let Some((_env, app)) = support::start_with(Backend::Sqlite, &vars) else { return };
    let addr = app.base.trim_start_matches("http://").to_string();
    let read_all = |stream: &mut std::net::TcpStream| {
        stream.set_read_timeout(Some(Duration::from_secs(3))).expect("read timeout");
        let mut text = Vec::new();
        let start = Instant::now();
        let result = stream.read_to_end(&mut text);
        assert!(
            result.is_ok() || result.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "still open: {result:?}"
        );
        (String::from_utf8_lossy(&text).into_owned(), start.elapsed())
    };
    let mut head = std::net::TcpStream::connect(&addr).expect("connect");
    head.write_all(b"GET /api/ping/ HTTP/1.1\r\nHost: x\r\n").expect("partial head");
    let mut body = std::net::TcpStream::connect(&addr).expect("connect");
    body.write_all(b"POST /api/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username").expect("partial body");
    let (text, took) = read_all(&mut head);
    assert!(text.is_empty() && took < Duration::from_millis(2_500), "{took:?}: {text}");
    let (text, _) = read_all(&mut body);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.ends_with(r#"{"detail":"The request body was not received in time."}"#), "{text}");
    assert_eq!(app.get("/api/ping/"), (200, json!({"ping": "pong"})));
    app.stop();
}
