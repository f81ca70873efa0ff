//! Random `Authorization` headers and random bodies (JSON, form, multipart, anything) against every
//! auth route of the running server, and random login requests: never a 5xx, nothing but the real
//! token authenticates, no login succeeds, and the store is unchanged.

use crate::abuse::snapshot;
use crate::support::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::{Map, Value};

const CASES: u32 = 1_000;
/// Every authenticated route, with a method it answers. Routes that change the store when the real
/// token reaches them (`mutates`) get every header but that one.
const ROUTES: [(&str, &str, bool); 13] = [
    ("GET", "/api/hello/", false),
    ("GET", "/api/hello-cached/", false),
    ("GET", "/api/web-only/", false),
    ("GET", "/api/auth/sessions/", false),
    ("GET", "/api/auth/sessions", false),
    ("GET", "/api/auth/apiaccess/", false),
    // No API-access client is configured: the view does not exist, whatever the method.
    ("POST", "/api/auth/apiaccess/", false),
    ("DELETE", "/api/auth/apiaccess", false),
    ("POST", "/api/auth/refresh/", true),
    ("POST", "/api/auth/logout/", true),
    ("POST", "/api/auth/logoutall/", true),
    ("DELETE", "/api/auth/sessions/1", true),
    ("DELETE", "/api/auth/sessions//2/", true),
];

#[derive(Debug, Clone)]
struct Case {
    authorization: Vec<u8>,
    route: usize,
    content_type: Option<Vec<u8>>,
    body: Vec<u8>,
}

/// Bytes a header value may hold: control characters become `?`.
fn header_safe(mut bytes: Vec<u8>) -> Vec<u8> {
    for b in &mut bytes {
        if (*b < 0x20 && *b != b'\t') || *b == 0x7f {
            *b = b'?';
        }
    }
    bytes
}

fn authorization(token: String) -> impl Strategy<Value = Vec<u8>> {
    let len = token.len();
    let scheme = prop_oneof![
        Just("Token"),
        Just("token"),
        Just("TOKEN"),
        Just("tOkEn"),
        Just("Bearer"),
        Just("TokenX"),
        Just("")
    ];
    let space = prop_oneof![Just(" "), Just("  "), Just("\t"), Just(" \t ")];
    let (real, cut) = (token.clone(), token.clone());
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..120),
        any::<String>().prop_map(String::into_bytes),
        (scheme.clone(), space.clone(), any::<String>()).prop_map(|(s, w, t)| format!("{s}{w}{t}").into_bytes()),
        (scheme.clone(), space.clone(), "[a-zA-Z0-9_]{0,80}").prop_map(|(s, w, t)| format!("{s}{w}{t}").into_bytes()),
        // The real token as it is (with any keyword and spacing), changed in one byte, cut or extended.
        (scheme.clone(), space.clone(), space.clone())
            .prop_map(move |(s, w, end)| format!("{s}{w}{real}{end}").into_bytes()),
        (scheme.clone(), space.clone(), 0..len, any::<u8>()).prop_map(move |(s, w, i, b)| {
            let mut t = token.clone().into_bytes();
            t[i] = if t[i] == b { b.wrapping_add(1) } else { b };
            [format!("{s}{w}").into_bytes(), t].concat()
        }),
        (scheme, space, 0..len, "[a-zA-Z0-9 ]{0,3}")
            .prop_map(move |(s, w, n, extra)| { format!("{s}{w}{}{extra}", &cut[..n]).into_bytes() }),
    ]
    .prop_map(header_safe)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A username as typed: valid names (looked up in the store), the real one, or anything.
fn username() -> impl Strategy<Value = String> {
    prop_oneof![Just("alice".to_string()), Just(" alice ".to_string()), "[a-zA-Z0-9@.+_-]{1,20}", any::<String>()]
}

/// A password field that never passes validation (so no Argon2 run): missing, null, blank, or not text.
fn invalid_password() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        Just(Some(Value::String(String::new()))),
        any::<bool>().prop_map(|b| Some(Value::Bool(b))),
        prop::collection::vec(json_value(), 0..3).prop_map(|v| Some(Value::Array(v))),
    ]
}

fn client() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(prop_oneof![Just(Value::String("web".into())), json_value()])
}

fn object(fields: Vec<(&str, Option<Value>)>, extra: Option<(String, Value)>) -> Value {
    let mut object: Map<String, Value> = fields.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect();
    if let Some((k, v)) = extra {
        object.insert(k, v);
    }
    Value::Object(object)
}

fn encode(kind: u8, fields: &Value) -> (Vec<u8>, Vec<u8>) {
    // Forms carry only text: other values are written as JSON, except a password (which would
    // then become a valid one and cost a password check).
    let pairs: Vec<(String, String)> = fields
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, v)| k.as_str() != "password" || v.is_string())
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect()
        })
        .unwrap_or_default();
    match kind {
        0 => (b"application/json".to_vec(), fields.to_string().into_bytes()),
        1 => (
            b"application/x-www-form-urlencoded".to_vec(),
            serde_urlencoded::to_string(&pairs).unwrap_or_default().into_bytes(),
        ),
        _ => {
            let mut body = String::new();
            for (name, value) in pairs {
                body.push_str(&format!("--b\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
            }
            body.push_str("--b--\r\n");
            (b"multipart/form-data; boundary=b".to_vec(), body.into_bytes())
        }
    }
}

/// Multipart bodies that are not what a browser sends: any boundary, file parts, part headers,
/// bytes that are not UTF-8, cut anywhere.
fn odd_multipart() -> impl Strategy<Value = (Option<Vec<u8>>, Vec<u8>)> {
    let part = (
        prop_oneof![Just("username".to_string()), Just("password".to_string()), any::<String>()],
        prop::option::of("[a-z.]{0,12}"),
        prop::option::of("[ -~]{0,30}"),
        prop::collection::vec(any::<u8>(), 0..40),
    );
    ("[a-zA-Z0-9'()+_,./:=?-]{1,70}", prop::collection::vec(part, 0..4), any::<bool>(), any::<usize>()).prop_map(
        |(boundary, parts, close, cut)| {
            let mut body = Vec::new();
            for (name, file, content_type, value) in parts {
                body.extend_from_slice(
                    format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
                );
                if let Some(file) = file {
                    body.extend_from_slice(format!("; filename=\"{file}\"").as_bytes());
                }
                if let Some(content_type) = content_type {
                    body.extend_from_slice(format!("\r\nContent-Type: {content_type}").as_bytes());
                }
                body.extend_from_slice(b"\r\n\r\n");
                body.extend_from_slice(&value);
                body.extend_from_slice(b"\r\n");
            }
            if close {
                body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            } else if !body.is_empty() {
                body.truncate(cut % body.len());
            }
            (Some(format!("multipart/form-data; boundary=\"{boundary}\"").into_bytes()), body)
        },
    )
}

/// Login requests of every kind. Only the rare first kind gets as far as a (slow) password check.
fn login_request() -> impl Strategy<Value = (Option<Vec<u8>>, Vec<u8>)> {
    let extra = || prop::option::of((any::<String>(), json_value()));
    let content_type = prop_oneof![
        Just(None),
        Just(Some(b"application/json".to_vec())),
        Just(Some(b"application/x-www-form-urlencoded".to_vec())),
        Just(Some(b"multipart/form-data; boundary=b".to_vec())),
        Just(Some(b"multipart/form-data".to_vec())),
        Just(Some(b"text/plain".to_vec())),
        "[ -~]{0,40}".prop_map(|s| Some(s.into_bytes())),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| Some(header_safe(b))),
    ];
    prop_oneof![
        1 => (0..3u8, username(), any::<String>(), client(), extra()).prop_map(|(kind, u, p, c, x)| {
            let (ct, body) = encode(kind, &object(vec![("username", Some(Value::String(u))), ("password", Some(Value::String(p))), ("client", c)], x));
            (Some(ct), body)
        }),
        20 => (0..3u8, prop::option::of(username()), invalid_password(), client(), extra()).prop_map(|(kind, u, p, c, x)| {
            let (ct, body) = encode(kind, &object(vec![("username", u.map(Value::String)), ("password", p), ("client", c)], x));
            (Some(ct), body)
        }),
        8 => json_value().prop_map(|v| (Some(b"application/json".to_vec()), v.to_string().into_bytes())),
        6 => (json_value(), any::<usize>()).prop_map(|(v, cut)| {
            let text = v.to_string();
            let cut = if text.len() > 1 { cut % text.len() } else { 0 };
            (Some(b"application/json".to_vec()), text.as_bytes()[..cut].to_vec())
        }),
        6 => odd_multipart(),
        8 => (content_type, prop::collection::vec(any::<u8>(), 0..200)),
    ]
}

fn run(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let Some(app) = runtime.block_on(TestApp::start(backend, Options::default())) else { return };
    let (token, before) = runtime.block_on(async {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        app.client("cli", "1d").await;
        (token, snapshot(&app).await)
    });
    let strategy = (authorization(token.clone()), 0..ROUTES.len(), login_request())
        .prop_map(|(authorization, route, (content_type, body))| Case { authorization, route, content_type, body });
    let config = Config { cases: CASES, failure_persistence: None, max_shrink_iters: 200, ..Config::default() };
    let result = TestRunner::new(config)
        .run(&strategy, |case| runtime.block_on(check(&app, &token, case)).map_err(TestCaseError::fail));
    if let Err(e) = result {
        panic!("{e}");
    }
    runtime.block_on(async {
        assert_eq!(snapshot(&app).await, before, "the store changed");
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200, "the real token still works");
        assert!(app.events_named("token_created").is_empty() && app.events_named("user_logged_in").is_empty());
        drop(app);
    });
}

/// The real token is the only header that authenticates: exactly `<keyword> <token>`.
fn is_real(header: &[u8], token: &str) -> bool {
    let parts: Vec<&[u8]> = header.split(|b| b" \t\n\r\x0b\x0c".contains(b)).filter(|p| !p.is_empty()).collect();
    parts.len() == 2 && parts[0].eq_ignore_ascii_case(b"Token") && parts[1] == token.as_bytes()
}

async fn check(app: &TestApp, token: &str, case: Case) -> Result<(), String> {
    let value = HeaderValue::from_bytes(&case.authorization).map_err(|e| e.to_string())?;
    let content_type = match &case.content_type {
        Some(content_type) => Some(HeaderValue::from_bytes(content_type).map_err(|e| e.to_string())?),
        None => None,
    };
    let (method, route, mutates) = ROUTES[case.route];
    let real = is_real(&case.authorization, token);
    if !(real && mutates) {
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request =
            app.req(method.clone(), route, None).header("Authorization", value.clone()).body(case.body.clone());
        if let Some(content_type) = &content_type {
            request = request.header("content-type", content_type.clone());
        }
        let reply = app.send(request).await;
        let expected: &[u16] = match (real, route.starts_with("/api/auth/apiaccess")) {
            (true, true) => &[404],
            (true, false) => &[200],
            (false, _) => &[401],
        };
        if !expected.contains(&reply.status) {
            return Err(format!("{method} {route}: {} {}", reply.status, reply.text));
        }
        if reply.status == 401 && reply.header("www-authenticate") != Some("Token") {
            return Err(format!("401 without WWW-Authenticate on {method} {route}"));
        }
    }
    let mut login = app.req(Method::POST, "/api/auth/login/", None).header("Authorization", value).body(case.body);
    if let Some(content_type) = content_type {
        login = login.header("content-type", content_type);
    }
    let reply = app.send(login).await;
    if !matches!(reply.status, 400 | 413 | 415) || !reply.body.is_object() {
        return Err(format!("login: {} {}", reply.status, reply.text));
    }
    Ok(())
}

#[test]
fn random_headers_and_login_requests_sqlite() {
    run(Backend::Sqlite);
}

#[test]
fn random_headers_and_login_requests_postgres() {
    run(Backend::Postgres);
}
