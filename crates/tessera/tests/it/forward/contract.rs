//! Traefik and Envoy are not Debian packages: their contracts are tested here at the HTTP level,
//! with the requests their documentation says they send; and the trusted-proxy rules and attacker
//! probes, for every endpoint.

use super::{auth, prepare, raw};
use crate::TESSERA;
use tessera_testkit::{Backend, TestEnv};

/// Owned request headers.
type Headers = Vec<(&'static str, Vec<u8>)>;

const IDENTITY: [&str; 4] = ["x-tessera-user-id", "x-tessera-user", "x-tessera-client", "x-tessera-token-id"];

/// What Traefik's `forwardAuth` sends (and Caddy's `forward_auth`: the same headers, a GET).
fn traefik(base: &str, uri: &str, host: &str, token: Option<&str>) -> super::Answer {
    let mut headers: Vec<(&str, Vec<u8>)> = vec![
        ("X-Forwarded-Method", b"POST".to_vec()),
        ("X-Forwarded-Proto", b"https".to_vec()),
        ("X-Forwarded-Host", host.as_bytes().to_vec()),
        ("X-Forwarded-Uri", uri.as_bytes().to_vec()),
        ("X-Forwarded-For", b"203.0.113.7".to_vec()),
    ];
    if let Some(t) = token {
        headers.push(auth(t));
    }
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    raw(base, "GET", "/auth/forward/traefik", &headers)
}

#[test]
fn forward_auth_traefik_contract() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let (web, cli, metered) = prepare(&mut env, "");
    let server = env.serve(&[]);
    let base = server.base.as_str();

    let ok = traefik(base, "/api/items?x=1", "app.example.com", Some(&web));
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.header("x-tessera-user"), Some("alice"));
    assert_eq!(ok.header("x-tessera-client"), Some("web"));
    assert!(ok.header("x-tessera-user-id").is_some_and(|v| v.parse::<i64>().is_ok()), "{ok:?}");
    assert!(ok.header("x-tessera-token-id").is_some_and(|v| v.parse::<i64>().is_ok()), "{ok:?}");
    assert_eq!(ok.header("cache-control"), Some("no-store"));
    assert!(!ok.headers.iter().any(|(_, v)| v.contains(&web)), "the token is never sent back: {ok:?}");

    let anon = traefik(base, "/api/items", "app.example.com", None);
    assert_eq!((anon.status, anon.header("www-authenticate")), (401, Some("Token")), "{anon:?}");
    assert_eq!(anon.header("cache-control"), Some("no-store"));
    assert_eq!(traefik(base, "/api", "app.example.com", Some("tsr_not_a_token")).status, 401);

    let public = traefik(base, "/public/page", "app.example.com", None);
    assert_eq!(public.status, 200);
    assert!(IDENTITY.iter().all(|h| public.header(h) == Some("")), "anonymous: empty identity: {public:?}");
    // A bad token is refused where anonymous requests pass, as the API does.
    assert_eq!(traefik(base, "/public/page", "app.example.com", Some("tsr_bad")).status, 401);

    // Clients per route, and the host rule: on admin.example.com /api is the cli client's.
    assert_eq!(traefik(base, "/web/x", "app.example.com", Some(&cli)).status, 403);
    assert_eq!(traefik(base, "/web/x", "app.example.com", Some(&web)).status, 200);
    assert_eq!(traefik(base, "/api/x", "ADMIN.example.com:443", Some(&web)).status, 403);
    assert_eq!(traefik(base, "/api/x", "admin.example.com", Some(&cli)).status, 200);
    // Segment boundaries: /apix is not under /api; no rule → denied, whoever asks.
    let none = traefik(base, "/apix", "app.example.com", Some(&web));
    assert_eq!(none.status, 403);
    assert!(none.body.contains("No route rule"), "{}", none.body);

    // The throttle: 2 a minute, then 429 with Retry-After (Traefik relays it as it is).
    for _ in 0..2 {
        assert_eq!(traefik(base, "/metered/x", "app.example.com", Some(&metered)).status, 200);
    }
    let throttled = traefik(base, "/metered/x", "app.example.com", Some(&metered));
    assert_eq!(throttled.status, 429, "{throttled:?}");
    assert!(throttled.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s > 0)));
    assert_eq!(throttled.header("cache-control"), Some("no-store"));

    // The Caddy endpoint is the same convention.
    let caddy = raw(
        base,
        "GET",
        "/auth/forward/caddy",
        &[
            ("X-Forwarded-Method", b"GET"),
            ("X-Forwarded-Uri", b"/web/"),
            ("X-Forwarded-Host", b"app.example.com"),
            ("Authorization", format!("Token {web}").as_bytes()),
        ],
    );
    assert_eq!((caddy.status, caddy.header("x-tessera-client")), (200, Some("web")));
    // A rule names a host: without the original host the request is refused, never matched
    // against the rules for any host.
    let hostless = raw(
        base,
        "GET",
        "/auth/forward/caddy",
        &[("X-Forwarded-Uri", b"/api"), ("Authorization", format!("Token {web}").as_bytes())],
    );
    assert_eq!(hostless.status, 400, "{hostless:?}");
    let hostless = raw(
        base,
        "GET",
        "/auth/forward/nginx",
        &[("X-Original-URI", b"/api"), ("Authorization", format!("Token {web}").as_bytes())],
    );
    assert_eq!(hostless.status, 403, "{hostless:?}");
    server.stop();
}

#[test]
fn forward_auth_envoy_contract() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let (web, cli, _) = prepare(&mut env, "");
    let server = env.serve(&[]);
    let base = server.base.as_str();
    let envoy = |method: &str, path: &str, host: &str, token: Option<&str>| {
        // Envoy: the original method, the original path after the service's prefix,
        // Content-Length: 0, Host and Authorization.
        let mut headers: Vec<(&str, Vec<u8>)> =
            vec![("Host", host.as_bytes().to_vec()), ("Content-Length", b"0".to_vec())];
        if let Some(t) = token {
            headers.push(auth(t));
        }
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        raw(base, method, &format!("/auth/forward/envoy{path}"), &headers)
    };
    let ok = envoy("POST", "/api/items?x=1", "app.example.com", Some(&web));
    assert_eq!((ok.status, ok.header("x-tessera-user")), (200, Some("alice")), "{ok:?}");
    assert_eq!(ok.header("cache-control"), Some("no-store"));
    assert_eq!(envoy("DELETE", "/api/items/3", "app.example.com", None).status, 401);
    assert_eq!(envoy("GET", "/public", "app.example.com", None).status, 200);
    assert_eq!(envoy("GET", "/web", "app.example.com", Some(&cli)).status, 403);
    assert_eq!(envoy("GET", "/api", "admin.example.com", Some(&cli)).status, 200);
    assert_eq!(envoy("GET", "", "app.example.com", Some(&web)).status, 403, "the root: no rule");
    assert_eq!(envoy("GET", "/", "app.example.com", Some(&web)).status, 403);
    for tricky in ["/public/../api", "/public/%2e%2e/api", "/public%2F..%2Fapi", "//api", "/public;/api"] {
        let a = envoy("GET", tricky, "app.example.com", None);
        assert_eq!(a.status, 400, "{tricky}: {a:?}");
    }
    server.stop();
}

#[test]
fn forward_auth_trusts_forwarded_headers_only_from_trusted_proxies() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    // Trusted: a range that excludes 127.0.0.1, where the test connects from.
    let (web, _, _) = prepare(&mut env, "trusted_proxies = [\"10.0.0.0/8\"]");
    let server = env.serve(&[]);
    let base = server.base.as_str();
    // From an untrusted peer the forwarded headers are ignored: the request is judged by what
    // Tessera sees — its own path, which no rule covers.
    let spoofed = traefik(base, "/public/x", "app.example.com", None);
    assert_eq!(spoofed.status, 403, "{spoofed:?}");
    assert!(spoofed.body.contains("No route rule"), "{}", spoofed.body);
    let nginx = raw(base, "GET", "/auth/forward/nginx", &[("X-Original-URI", b"/public/x")]);
    assert_eq!(nginx.status, 403, "{nginx:?}");
    // Envoy needs no forwarded header: its path is the request's own.
    assert_eq!(raw(base, "GET", "/auth/forward/envoy/public/x", &[]).status, 200);
    // A token does not change that: still no rule for /auth/forward/traefik.
    assert_eq!(traefik(base, "/api/x", "app.example.com", Some(&web)).status, 403);
    server.stop();

    // The same requests with the default (loopback trusted) pass.
    std::fs::write(env.dir.path().join("tessera.toml"), format!("[forward_auth]\n{}", super::RULES)).expect("write");
    let server = env.serve(&[]);
    let base = server.base.as_str();
    assert_eq!(traefik(base, "/public/x", "app.example.com", None).status, 200);
    let nginx = raw(
        base,
        "GET",
        "/auth/forward/nginx",
        &[("X-Original-URI", b"/public/x"), ("X-Original-Host", b"app.example.com")],
    );
    assert_eq!(nginx.status, 200, "{nginx:?}");
    server.stop();
}

#[test]
fn forward_auth_refuses_attacker_probes_without_a_500() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let (web, _, _) = prepare(&mut env, "");
    let server = env.serve(&[]);
    let base = server.base.as_str();
    let token = format!("Token {web}");
    let t = token.as_bytes();

    // Several Authorization headers: refused as the API refuses them.
    let two = raw(
        base,
        "GET",
        "/auth/forward/traefik",
        &[
            ("X-Forwarded-Uri", b"/api"),
            ("X-Forwarded-Host", b"app.example.com"),
            ("Authorization", t),
            ("Authorization", t),
        ],
    );
    assert_eq!(two.status, 401, "{two:?}");
    assert!(two.body.contains("Only one Authorization header"), "{}", two.body);

    // Repeated, conflicting X-Forwarded-Uri: refused (never "the first" or "the last").
    let repeated = raw(
        base,
        "GET",
        "/auth/forward/traefik",
        &[("X-Forwarded-Uri", b"/public"), ("X-Forwarded-Uri", b"/api"), ("Authorization", t)],
    );
    assert_eq!(repeated.status, 400, "{repeated:?}");
    // To nginx the same refusal is a 403: it understands nothing else.
    let nginx_repeated =
        raw(base, "GET", "/auth/forward/nginx", &[("X-Original-URI", b"/public"), ("X-Original-URI", b"/public")]);
    assert_eq!(nginx_repeated.status, 403, "{nginx_repeated:?}");
    assert_eq!(raw(base, "GET", "/auth/forward/nginx", &[]).status, 403, "no X-Original-URI");
    assert_eq!(raw(base, "GET", "/auth/forward/traefik", &[("Authorization", t)]).status, 400, "no X-Forwarded-Uri");

    let long = format!("/public/{}", "a".repeat(9000));
    let huge = "x".repeat(20_000);
    let cases: Vec<(&str, Headers)> = vec![
        ("/auth/forward/traefik", vec![("X-Forwarded-Uri", long.clone().into_bytes())]),
        (
            "/auth/forward/traefik",
            vec![("X-Forwarded-Uri", b"/public".to_vec()), ("X-Forwarded-Host", huge.clone().into_bytes())],
        ),
        ("/auth/forward/traefik", vec![("X-Forwarded-Uri", b"/pub\xfflic".to_vec())]),
        ("/auth/forward/traefik", vec![("X-Forwarded-Uri", b"public".to_vec())]),
        ("/auth/forward/traefik", vec![("X-Forwarded-Uri", b"http://evil/public".to_vec())]),
        ("/auth/forward/traefik", vec![("X-Forwarded-Uri", b"/public/../api".to_vec())]),
        ("/auth/forward/traefik", vec![("X-Forwarded-Uri", b"/public/%2e%2e/api".to_vec())]),
        ("/auth/forward/traefik", vec![("X-Forwarded-Uri", b"/public%2f..%2fapi".to_vec())]),
        ("/auth/forward/traefik", vec![("X-Forwarded-Uri", b"/public/%252e%252e/api".to_vec())]),
        ("/auth/forward/traefik", vec![("X-Forwarded-Uri", b"/public/%".to_vec())]),
        (
            "/auth/forward/traefik",
            vec![("X-Forwarded-Uri", b"/public".to_vec()), ("X-Forwarded-Method", b"G E T".to_vec())],
        ),
        (
            "/auth/forward/traefik",
            vec![("X-Forwarded-Uri", b"/public".to_vec()), ("X-Forwarded-Proto", b"gopher".to_vec())],
        ),
        (
            "/auth/forward/traefik",
            vec![("X-Forwarded-Uri", b"/public".to_vec()), ("X-Forwarded-Host", b"a.com, b.com".to_vec())],
        ),
        ("/auth/forward/nginx", vec![("X-Original-URI", b"/public/..".to_vec())]),
        ("/auth/forward/nginx", vec![("X-Original-URI", b"/public".to_vec()), ("X-Original-Method", b"\x01".to_vec())]),
        ("/auth/forward/envoy/public/%00", vec![]),
        ("/auth/forward/envoy/public\\..\\api", vec![]),
    ];
    for (endpoint, headers) in &cases {
        let mut headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        // The original host, unless the case is about it, so each case is refused for its own reason.
        if !headers.iter().any(|(n, _)| n.ends_with("-Host")) {
            headers.push(("X-Forwarded-Host", b"app.example.com"));
            headers.push(("X-Original-Host", b"app.example.com"));
        }
        let a = raw(base, "GET", endpoint, &headers);
        assert!(a.status != 200 && a.status < 500, "{endpoint} {headers:?}: {a:?}");
        // Tessera's refusals say no-store; a head the HTTP parser itself refuses (a control
        // character, a backslash in the target) gets hyper's bare 400 before any route runs.
        let bare_parser_refusal = a.status == 400 && a.body.is_empty() && a.header("connection") == Some("close");
        assert!(a.header("cache-control") == Some("no-store") || bare_parser_refusal, "{a:?}");
    }
    // A garbled X-Forwarded-For only means the proxy's own address is the client's (for events).
    let garbled = raw(
        base,
        "GET",
        "/auth/forward/traefik",
        &[
            ("X-Forwarded-Uri", b"/public"),
            ("X-Forwarded-Host", b"app.example.com"),
            ("X-Forwarded-For", b"garbage, ::x"),
        ],
    );
    assert_eq!(garbled.status, 200, "{garbled:?}");
    // A well-formed query holding "../" is only a query.
    let query = raw(
        base,
        "GET",
        "/auth/forward/traefik",
        &[("X-Forwarded-Uri", b"/public?next=/../api"), ("X-Forwarded-Host", b"app.example.com")],
    );
    assert_eq!(query.status, 200, "{query:?}");
    server.stop();
}

#[test]
fn forward_auth_refuses_conflicting_forwarded_headers_and_ignores_foreign_ones() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let (web, cli, metered) = prepare(&mut env, "");
    let server = env.serve(&[]);
    let base = server.base.as_str();
    let web = format!("Token {web}");
    let cli = format!("Token {cli}");
    let host: &[u8] = b"app.example.com";

    // Repeated description headers from a trusted proxy, agreeing or not, are refused — never
    // resolved by picking one: nginx gets 403 (all it understands), Traefik and Caddy 400.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, u16);
    let refused: Vec<Case> = vec![
        (
            "/auth/forward/nginx",
            vec![
                ("X-Original-URI", b"/public"),
                ("X-Original-Host", host),
                ("X-Original-Method", b"GET"),
                ("X-Original-Method", b"DELETE"),
            ],
            403,
        ),
        (
            "/auth/forward/nginx",
            vec![("X-Original-URI", b"/api"), ("X-Original-Host", host), ("X-Original-Host", b"admin.example.com")],
            403,
        ),
        ("/auth/forward/nginx", vec![("X-Original-URI", b"/public"), ("X-Original-Host", b"app\xff.example.com")], 403),
        ("/auth/forward/nginx", vec![("X-Original-URI", b"/public"), ("X-Original-Host", b"")], 403),
        (
            "/auth/forward/traefik",
            vec![("X-Forwarded-Uri", b"/public"), ("X-Forwarded-Host", host), ("X-Forwarded-Host", host)],
            400,
        ),
        (
            "/auth/forward/traefik",
            vec![
                ("X-Forwarded-Uri", b"/public"),
                ("X-Forwarded-Host", host),
                ("X-Forwarded-Method", b"GET"),
                ("X-Forwarded-Method", b"POST"),
            ],
            400,
        ),
        (
            "/auth/forward/caddy",
            vec![("X-Forwarded-Uri", b"/public"), ("X-Forwarded-Host", host), ("X-Forwarded-Proto", b"http\xff")],
            400,
        ),
        ("/auth/forward/caddy", vec![("X-Forwarded-Uri", b"/pub\x80lic"), ("X-Forwarded-Host", host)], 400),
    ];
    for (endpoint, headers, want) in &refused {
        let a = raw(base, "GET", endpoint, headers);
        assert_eq!(a.status, *want, "{endpoint} {headers:?}: {a:?}");
        assert_eq!(a.header("cache-control"), Some("no-store"), "{a:?}");
        assert!(IDENTITY.iter().all(|h| a.header(h).is_none()), "no identity on a refusal: {a:?}");
    }

    // Each endpoint reads its own convention only: the other convention's headers change nothing.
    let nginx = raw(
        base,
        "GET",
        "/auth/forward/nginx",
        &[("X-Original-URI", b"/api/x"), ("X-Original-Host", host), ("X-Forwarded-Uri", b"/public")],
    );
    assert_eq!(nginx.status, 401, "X-Original-URI decides at /nginx: {nginx:?}");
    let traefik = raw(
        base,
        "GET",
        "/auth/forward/traefik",
        &[("X-Forwarded-Uri", b"/api/x"), ("X-Forwarded-Host", host), ("X-Original-URI", b"/public")],
    );
    assert_eq!(traefik.status, 401, "X-Forwarded-Uri decides at /traefik: {traefik:?}");

    // Headers no convention here uses are ignored, whoever sends them: RFC 7239 `Forwarded`,
    // `X-Forwarded-Prefix` (Traefik's CVE-2026-35051), `X-Original-URL` / `X-Rewrite-URL`.
    let foreign: [(&str, &[u8]); 5] = [
        ("Forwarded", b"for=203.0.113.9;host=app.example.com;proto=https"),
        ("X-Forwarded-Prefix", b"/public"),
        ("X-Original-URL", b"/public"),
        ("X-Rewrite-URL", b"/public"),
        ("X-Forwarded-Path", b"/public"),
    ];
    let mut anonymous = vec![("X-Forwarded-Uri", b"/web/x".as_slice()), ("X-Forwarded-Host", host)];
    anonymous.extend(foreign);
    assert_eq!(raw(base, "GET", "/auth/forward/traefik", &anonymous).status, 401);
    // A rule naming a host is not escaped through `Forwarded: host=`: the cli client may use /api
    // on admin.example.com only, and web may not.
    let mut by_host = vec![
        ("X-Forwarded-Uri", b"/api/x".as_slice()),
        ("X-Forwarded-Host", b"ADMIN.example.com:8443".as_slice()),
        ("Forwarded", b"host=app.example.com"),
        ("Authorization", web.as_bytes()),
    ];
    assert_eq!(raw(base, "GET", "/auth/forward/traefik", &by_host).status, 403, "{by_host:?}");
    by_host[3] = ("Authorization", cli.as_bytes());
    let ok = raw(base, "GET", "/auth/forward/traefik", &by_host);
    assert_eq!((ok.status, ok.header("x-tessera-client")), (200, Some("cli")), "{ok:?}");

    // Huge originals: refused with a 4xx, never a 5xx or a pass. An Envoy path past the longest
    // matched path; an X-Original-URI of 30 KB (under the server's 32 KB head limit, far past
    // the longest matched path); 200 copies of X-Original-URI (hyper's header count limit).
    let long_path = format!("/auth/forward/envoy/public/{}", "a".repeat(9000));
    let a = raw(base, "GET", &long_path, &[]);
    assert!((400..500).contains(&a.status), "{a:?}");
    let huge = format!("/public/{}", "b".repeat(30_000));
    let a = raw(base, "GET", "/auth/forward/nginx", &[("X-Original-URI", huge.as_bytes()), ("X-Original-Host", host)]);
    assert_eq!(a.status, 403, "{:?}", (a.status, &a.headers));
    let many: Vec<(&str, &[u8])> = (0..200).map(|_| ("X-Original-URI", b"/public".as_slice())).collect();
    let a = raw(base, "GET", "/auth/forward/nginx", &many);
    assert!(a.status == 403 || a.status == 431, "{a:?}");

    // Envoy relays any status: the throttle's 429 and Retry-After reach the client as they are.
    let metered = format!("Token {metered}");
    let envoy = |token: &str| {
        raw(base, "GET", "/auth/forward/envoy/metered/x", &[("Host", host), ("Authorization", token.as_bytes())])
    };
    for _ in 0..2 {
        assert_eq!(envoy(&metered).status, 200);
    }
    let throttled = envoy(&metered);
    assert_eq!(throttled.status, 429, "{throttled:?}");
    assert!(throttled.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s > 0)), "{throttled:?}");
    // And the nginx convention maps the same to its configured status (403 by default), with the
    // Retry-After for `auth_request_set`.
    let nginx = raw(
        base,
        "GET",
        "/auth/forward/nginx",
        &[("X-Original-URI", b"/metered/x"), ("X-Original-Host", host), ("Authorization", metered.as_bytes())],
    );
    assert_eq!(nginx.status, 403, "{nginx:?}");
    assert!(nginx.header("retry-after").is_some(), "{nginx:?}");
    server.stop();
}
