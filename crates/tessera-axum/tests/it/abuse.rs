//! Bad input: a clear 4xx, never a 5xx, and nothing changed in the store.

use crate::both_backends;
use crate::support::*;
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::json;
use std::io::{Read, Write};
use tessera_core::store::{ClientStore, UserStore};

/// Users, clients and tokens as they stand (last-used times aside: they are buffered).
pub async fn snapshot(app: &TestApp) -> String {
    let users = app.store().list_users().await.expect("users");
    let clients = app.store().list_clients().await.expect("clients");
    let tokens: Vec<_> =
        app.tokens().await.into_iter().map(|t| (t.id, t.user_id, t.client_id, t.digest, t.created, t.expiry)).collect();
    format!("{users:?}\n{clients:?}\n{tokens:?}")
}

/// A login request with this content type and body.
fn login(app: &TestApp, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
    app.req(Method::POST, "/api/auth/login/", None).header("content-type", content_type).body(body)
}

/// Sends raw bytes over a fresh connection and returns the response's status line and headers.
fn raw_http(base: &str, request: &[u8]) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    // The server may answer (and close) before reading all of a large body.
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

both_backends!(
    async fn malformed_json_is_a_parse_error(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let before = snapshot(&app).await;
        for body in [&b"{"[..], b"{\"username\": \"alice\",", b"{'username': 'alice'}", b"\xff\xfe", b"nul", b"[1,]", b"{\"a\":1}x"] {
            let reply = app.send(login(&app, "application/json", body.to_vec())).await;
            assert_eq!(reply.status, 400, "{body:?}");
            let detail = reply.body["detail"].as_str().expect("detail");
            assert!(detail.starts_with("JSON parse error - "), "{detail}");
            assert_eq!(reply.header("content-type"), Some("application/json"));
        }
        assert_eq!(snapshot(&app).await, before);
    }
);

both_backends!(
    async fn unsupported_media_types_are_415(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let before = snapshot(&app).await;
        let body = json!({"username": "alice", "password": PASSWORD, "client": "web"}).to_string();
        for content_type in ["text/plain", "application/xml", "text/plain; charset=utf-8", "application/jsonx", "json"] {
            let reply = app.send(login(&app, content_type, body.clone())).await;
            let expected = json!({"detail": format!("Unsupported media type \"{content_type}\" in request.")});
            assert_eq!((reply.status, &reply.body), (415, &expected));
        }
        // A content type that is not even text.
        let bad = HeaderValue::from_bytes(b"application/\xffjson").expect("header");
        let reply = app.send(app.req(Method::POST, "/api/auth/login/", None).header("content-type", bad).body(body.clone())).await;
        assert_eq!(reply.status, 415, "{}", reply.text);
        assert_eq!(snapshot(&app).await, before);
        // Parameters and case do not matter for the ones it parses.
        let reply = app.send(login(&app, "Application/JSON; charset=utf-8", body)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
);

both_backends!(
    async fn bodies_over_the_limit_are_413(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let before = snapshot(&app).await;
        // A declared length over the limit is refused before the body is read. The client asks
        // `Expect: 100-continue`, so it sends no body the server would not read: a client that
        // sent it anyway could see its connection reset before reading the 413.
        for content_type in ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"] {
            let addr = app.base.clone();
            let request = format!(
                "POST /api/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
                100 * 1024
            );
            let response = tokio::task::spawn_blocking(move || raw_http(&addr, request.as_bytes())).await.expect("raw request");
            assert!(response.starts_with("HTTP/1.1 413"), "{content_type}: {response}");
            assert!(response.ends_with(r#"{"detail":"Request body is too large."}"#), "{content_type}: {response}");
        }
        // Without a Content-Length (chunked), the limit holds while reading.
        let addr = app.base.clone();
        let response = tokio::task::spawn_blocking(move || {
            let mut request = b"POST /api/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
            for _ in 0..100 {
                let chunk = "y".repeat(1024);
                request.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
            }
            request.extend_from_slice(b"0\r\n\r\n");
            raw_http(&addr, &request)
        })
        .await
        .expect("raw request");
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");
        assert_eq!(snapshot(&app).await, before);
    }
);

/// Streams a chunked multipart login whose `password` field is 3 MB, 16 KiB at a time, looking for
/// an answer after each piece; returns the response and how many body bytes were sent by then.
fn stream_huge_multipart(base: &str) -> (String, usize) {
    const FIELD: usize = 3 * 1024 * 1024;
    const PIECE: usize = 16 * 1024;
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let head = "POST /api/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).expect("head");
    let opening = "--b\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n--b\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n";
    stream.write_all(format!("{:x}\r\n{opening}\r\n", opening.len()).as_bytes()).expect("opening");
    stream.set_read_timeout(Some(std::time::Duration::from_millis(50))).expect("timeout");
    let mut sent = opening.len();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while sent < FIELD {
        let piece = "p".repeat(PIECE);
        if stream.write_all(format!("{PIECE:x}\r\n{piece}\r\n").as_bytes()).is_err() {
            break;
        }
        sent += PIECE;
        if let Ok(n) = stream.read(&mut buf)
            && n > 0
        {
            response.extend_from_slice(&buf[..n]);
            break;
        }
    }
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).expect("timeout");
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    (String::from_utf8_lossy(&response).into_owned(), sent)
}

both_backends!(
    async fn multipart_over_the_limit_is_refused_while_streaming(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let before = snapshot(&app).await;
        // No Content-Length: the limit holds while the parts stream in, and the 413 arrives long
        // before the client has sent its 3 MB (it was not buffered first).
        let addr = app.base.clone();
        let (response, sent) = tokio::task::spawn_blocking(move || stream_huge_multipart(&addr)).await.expect("raw request");
        assert!(response.starts_with("HTTP/1.1 413"), "after {sent} bytes: {response}");
        assert!(response.ends_with(r#"{"detail":"Request body is too large."}"#), "{response}");
        assert!(sent < 512 * 1024, "answered only after {sent} bytes");
        // Many small parts add up the same way.
        let addr = app.base.clone();
        let response = tokio::task::spawn_blocking(move || {
            let mut request = b"POST /api/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
            for i in 0..1_000 {
                let part = format!("--b\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\n{}\r\n", "v".repeat(40));
                request.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
            }
            request.extend_from_slice(b"0\r\n\r\n");
            raw_http(&addr, &request)
        })
        .await
        .expect("raw request");
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");
        assert_eq!(snapshot(&app).await, before);
    }
);

both_backends!(
    async fn multipart_and_form_garbage_is_400(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let before = snapshot(&app).await;
        let cases: [(&str, &[u8]); 5] = [
            ("multipart/form-data", b"--b\r\n\r\n"),
            ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice"),
            ("multipart/form-data; boundary=b", b"garbage"),
            ("application/x-www-form-urlencoded", b"username=%FF%FE&password=%"),
            ("application/x-www-form-urlencoded", b"\xff\xfe=\x00"),
        ];
        for (content_type, body) in cases {
            let reply = app.send(login(&app, content_type, body.to_vec())).await;
            assert_eq!(reply.status, 400, "{content_type} {body:?}: {}", reply.text);
            assert!(reply.body.is_object(), "{}", reply.text);
        }
        assert_eq!(snapshot(&app).await, before);
    }
);

both_backends!(
    async fn nul_and_control_characters_in_names_are_just_wrong(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let before = snapshot(&app).await;
        let bad = json!({"non_field_errors": ["Unable to log in with provided credentials."]});
        for username in ["alice\u{0}", "\u{0}", "al\u{0}ice", "alice\u{7}", "a".repeat(10_000).as_str()] {
            let reply = app.login_with(json!({"username": username, "password": PASSWORD, "client": "web"})).await;
            assert_eq!((reply.status, &reply.body), (400, &bad), "{username:?}");
        }
        let unknown = json!({"detail": "No client with that name."});
        for client in ["web\u{0}", "\u{0}", "w\u{1b}eb", "x".repeat(10_000).as_str()] {
            let reply = app.login_with(json!({"username": "alice", "password": PASSWORD, "client": client})).await;
            assert_eq!((reply.status, &reply.body), (400, &unknown), "{client:?}");
        }
        assert_eq!(snapshot(&app).await, before);
    }
);

both_backends!(
    async fn odd_headers_change_nothing(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let body = json!({"username": "alice", "password": PASSWORD, "client": "web"});
        let agent = HeaderValue::from_bytes(b"agent/\xff\xfe").expect("header");
        let reply = app
            .send(
                app.req(Method::POST, "/api/auth/login/", None)
                    .header("user-agent", agent)
                    .header("x-forwarded-for", "1.2.3.4, garbage")
                    .header("x-padding", "p".repeat(8 * 1024))
                    .json(&body),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let token = reply.body["token"].as_str().expect("token");
        let (_, sessions) = app.get("/api/auth/sessions/", Some(token)).await;
        assert_eq!(sessions[0]["user_agent"], json!(null), "a user agent that is not text is not kept");
        assert_eq!(sessions[0]["ip"], "127.0.0.1", "X-Forwarded-For from an untrusted peer is ignored");
        // A header line with raw bytes the client library would refuse.
        let base = app.base.clone();
        let request = b"GET /api/hello/ HTTP/1.1\r\nHost: x\r\nAuthorization: Token \x01\x02\x7f\r\nConnection: close\r\n\r\n";
        let response = tokio::task::spawn_blocking(move || raw_http(&base, request)).await.expect("raw request");
        assert!(response.starts_with("HTTP/1.1 4"), "{response}");
    }
);

both_backends!(
    async fn an_unreachable_store_is_503_never_500(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        app.db.close().await;
        let unavailable = json!({"detail": "Service unavailable."});
        for (method, path) in [(Method::GET, "/api/hello/"), (Method::GET, "/api/auth/sessions/"), (Method::POST, "/api/auth/logout/")] {
            let reply = app.send(app.req(method, path, Some(&token))).await;
            assert_eq!((reply.status, &reply.body), (503, &unavailable), "{path}");
            assert_eq!(reply.header("www-authenticate"), None);
        }
        let reply = app.login_with(json!({"username": "alice", "password": PASSWORD, "client": "web"})).await;
        assert_eq!((reply.status, &reply.body), (503, &unavailable));
        // Requests that need no store are still answered as usual.
        let reply = app.send(app.req(Method::GET, "/api/hello/", Some("malformed"))).await;
        reply.assert_401("Invalid token.", "Token");
        assert_eq!(app.login_with(json!([])).await.status, 400);
    }
);
