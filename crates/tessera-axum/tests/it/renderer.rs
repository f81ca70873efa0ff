//! One renderer for every error: a service that renders problem+json gets it from the layer, the
//! guards, the extractors and every auth route — login's 400s, 429 and 503, 404, 405, 413 and 415
//! included — with the protocol's headers set around it.

use crate::both_backends;
use crate::support::*;
use axum::response::Response;
use reqwest::Method;
use serde_json::{Value, json};
use tessera_axum::{AuthError, ErrorRenderer, ProblemJson};

fn problem(error: &AuthError) -> Response {
    ProblemJson::new("https://errors.example.com/").render(error)
}

fn options() -> Options {
    let mut options = Options::with(|s| {
        s.api_access_client_name = Some("api-access".parse().expect("name"));
        // Alice logs in before guessing, from the same address: it is then a known source, held
        // to its own budget rather than the account's.
        s.login_throttle_per_username_and_ip = Some("2/m".parse().expect("rate"));
    });
    options.renderer = Some(problem);
    options
}

/// A JSON login declaring a 200 KiB body, sent only if the server asks for it (it does not).
fn declared_too_large(base: &str) -> Reply {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(base.trim_start_matches("http://")).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    let head = "POST /api/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 204800\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).expect("head");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, text) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut headers = reqwest::header::HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()),
                reqwest::header::HeaderValue::from_str(value.trim()),
            )
        {
            headers.insert(name, value);
        }
    }
    Reply { status, headers, text: text.to_string(), body: parse(text) }
}

/// A problem+json reply with this status and code, and every field RFC 9457 names.
#[track_caller]
fn assert_problem(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{code}: {}", reply.text);
    assert_eq!(reply.header("content-type"), Some("application/problem+json"), "{code}: {}", reply.text);
    assert_eq!(reply.body["code"], json!(code), "{}", reply.text);
    assert_eq!(reply.body["type"], json!(format!("https://errors.example.com/{code}")));
    assert_eq!(reply.body["status"], json!(status));
    assert!(reply.body["title"].as_str().is_some_and(|t| !t.is_empty()), "{}", reply.text);
    assert!(reply.body["detail"].as_str().is_some_and(|t| !t.is_empty()), "{}", reply.text);
    assert_eq!(reply.header("www-authenticate"), if status == 401 { Some("Token") } else { None }, "{code}");
}

both_backends!(
    options = options(),
    async fn every_error_of_every_route_goes_through_the_renderer(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let cli = app.client_with("cli", "1d", |c| c.throttle_rate = Some("1/m".parse().expect("rate"))).await;
        let token = app.mint(&alice, &web).await;
        let cli_token = app.mint(&alice, &cli).await;
        let login = |body: Value| app.login_with(body);
        let raw_login = |content_type: &'static str, body: Vec<u8>| {
            app.send(app.req(Method::POST, "/api/auth/login/", None).header("content-type", content_type).body(body))
        };

        // login/
        assert_problem(&login(json!({})).await, 400, "invalid_input");
        let reply = login(json!({"password": "x"})).await;
        assert_eq!(reply.body["errors"], json!({"username": ["This field is required."]}));
        assert_problem(&login(json!([1])).await, 400, "invalid_input");
        assert_problem(&login(json!({"username": "alice", "password": PASSWORD})).await, 400, "client_required");
        let unknown = json!({"username": "alice", "password": PASSWORD, "client": "nope"});
        assert_problem(&login(unknown).await, 400, "unknown_client");
        assert_problem(&raw_login("application/json", b"{".to_vec()).await, 400, "malformed_body");
        assert_problem(&raw_login("text/plain", b"hi".to_vec()).await, 415, "unsupported_media_type");
        // The server answers 413 without reading the body, so the client asks `Expect:
        // 100-continue` and sends none (one still writing it could see a broken pipe instead).
        let base = app.base.clone();
        let reply = tokio::task::spawn_blocking(move || declared_too_large(&base)).await.expect("raw request");
        assert_problem(&reply, 413, "body_too_large");
        let reply = app.send(app.req(Method::GET, "/api/auth/login/", None)).await;
        assert_problem(&reply, 405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some("POST, OPTIONS"));
        let wrong = json!({"username": "alice", "password": "wrong", "client": "web"});
        assert_problem(&login(wrong.clone()).await, 400, "bad_credentials");
        assert_problem(&login(wrong.clone()).await, 400, "bad_credentials");
        let reply = login(wrong).await;
        assert_problem(&reply, 429, "throttled");
        assert!(reply.header("retry-after").is_some(), "Retry-After");

        // The authenticated routes and the layer.
        assert_problem(&app.send(app.req(Method::GET, "/api/auth/nope/", None)).await, 404, "not_found");
        assert_problem(&app.send(app.req(Method::GET, "/api/hello/", None)).await, 401, "not_authenticated");
        assert_problem(&app.get_with_header("/api/hello/", b"Token").await, 401, "no_credentials");
        assert_problem(&app.get_with_header("/api/hello/", b"Token a b").await, 401, "token_has_spaces");
        assert_problem(&app.send(app.req(Method::GET, "/api/hello/", Some("nope"))).await, 401, "invalid_token");
        let twice = app.req(Method::GET, "/api/hello/", Some(&token)).header("Authorization", "Token x");
        assert_problem(&app.send(twice).await, 401, "several_authorization_headers");
        let reply = app.send(app.req(Method::POST, "/api/auth/sessions/", Some(&token))).await;
        assert_problem(&reply, 405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some("GET, HEAD, OPTIONS"));
        assert_problem(&app.send(app.req(Method::DELETE, "/api/auth/sessions/abc", Some(&token))).await, 404, "not_found");
        let own = app.token_for(&alice, &web).await.expect("token").id.0;
        let reply = app.send(app.req(Method::DELETE, &format!("/api/auth/sessions/{own}"), Some(&token))).await;
        assert_problem(&reply, 400, "current_token");
        assert!(reply.body["detail"].as_str().is_some_and(|d| d.contains("/api/auth/logout/")), "{}", reply.text);
        assert_eq!(app.post("/api/auth/apiaccess/", Some(&token)).await.0, 201);
        assert_problem(&app.send(app.req(Method::POST, "/api/auth/apiaccess/", Some(&token))).await, 400, "api_key_exists");
        assert_problem(&app.send(app.req(Method::GET, "/api/web-only/", Some(&cli_token))).await, 403, "client_not_allowed");
        assert_eq!(app.get("/api/no-cli/", Some(&token)).await.0, 200);
        assert_eq!(app.get("/api/hello/", Some(&cli_token)).await.0, 200);
        let reply = app.send(app.req(Method::GET, "/api/hello/", Some(&cli_token))).await;
        assert_problem(&reply, 429, "throttled");
        assert_eq!(reply.header("retry-after"), Some("60"));

        // An expired token, then an inactive user.
        let short = app.client("short", "1m").await;
        let short_token = app.mint(&alice, &short).await;
        app.advance(chrono::TimeDelta::minutes(2));
        assert_problem(&app.send(app.req(Method::GET, "/api/hello/", Some(&short_token))).await, 401, "token_expired");
        let bob = app.user("bob").await;
        let bob_token = app.mint(&bob, &web).await;
        tessera_core::store::UserStore::set_active(app.store(), bob.id, false).await.expect("deactivate");
        assert_problem(&app.send(app.req(Method::GET, "/api/hello/", Some(&bob_token))).await, 401, "user_inactive");

        // The store goes away: 503 from the layer, the routes and login.
        app.db.close().await;
        assert_problem(&app.send(app.req(Method::GET, "/api/hello/", Some(&token))).await, 503, "unavailable");
        assert_problem(&app.send(app.req(Method::GET, "/api/auth/sessions/", Some(&token))).await, 503, "unavailable");
        let login_503 = login(json!({"username": "carol", "password": PASSWORD, "client": "web"})).await;
        assert_problem(&login_503, 503, "unavailable");
    }
);

/// The extractor without the layer: the service's renderer still answers (500, `layer_missing`).
/// Runs in a child process of its own, so that the Tessera it builds is the only one there.
#[test]
fn the_missing_layer_error_uses_the_services_renderer() {
    const CHILD: &str = "TESSERA_TEST_LAYER_MISSING_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let exe = std::env::current_exe().expect("test binary");
        let output = std::process::Command::new(exe)
            .args(["renderer::the_missing_layer_error_uses_the_services_renderer", "--exact", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("1 passed"), "the child ran the test: {stdout}");
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use tower::ServiceExt;
        let db = tessera_sql::testing::sqlite().await;
        let store: std::sync::Arc<dyn tessera_core::store::Store> = std::sync::Arc::new(db.store.clone());
        let _tessera = tessera_axum::Tessera::builder(store, tessera_core::ServerKey::generate())
            .error_renderer(problem)
            .build()
            .expect("tessera");
        async fn me(auth: tessera_axum::Authenticated) -> String {
            auth.user.username.to_string()
        }
        let app: axum::Router = axum::Router::new().route("/me", axum::routing::get(me));
        let request = axum::http::Request::get("/me").body(axum::body::Body::empty()).expect("request");
        let response = app.oneshot(request).await.expect("response");
        assert_eq!(response.status(), 500);
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["code"], "layer_missing");
    });
}
