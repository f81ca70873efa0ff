//! Forward-auth as a library user mounts it, in-process with `TestKit`: what the server's process
//! tests do not cover — the "authenticated" default, custom header names, nginx's throttled
//! status, a request with no peer address, and `ForwardAuth::decide` called directly.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, Method, Request, StatusCode};
use std::net::SocketAddr;
use tessera_axum::core::route_rules::{ClientRule, NoMatch, RouteRule, RouteRules};
use tessera_axum::forward::{ForwardAuthConfig, OriginalRequest, Verdict};
use tessera_axum::testing::TestKit;
use tower::ServiceExt;

fn rules(no_match: NoMatch) -> RouteRules {
    let mut metered = RouteRule::new(None, "/metered").expect("rule");
    metered.throttle = true;
    let mut web = RouteRule::new(None, "/web").expect("rule");
    web.clients = ClientRule::Only(vec!["web".into()]);
    RouteRules::new(vec![metered, web], no_match).expect("rules")
}

async fn ask(app: &Router, uri: &str, headers: &[(&str, &str)], peer: bool) -> axum::response::Response {
    let mut req = Request::builder().method(Method::GET).uri(uri);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let mut req = req.body(Body::empty()).expect("request");
    if peer {
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
    }
    app.clone().oneshot(req).await.expect("infallible")
}

#[tokio::test]
async fn the_authenticated_default_custom_names_and_nginx_statuses() {
    let kit = TestKit::new().await;
    let alice = kit.user("alice").await;
    let web = kit.client("web").rate("1/m").await;
    let token = kit.token(&alice, &web).await;
    let mut config = ForwardAuthConfig { rules: rules(NoMatch::Authenticated), ..ForwardAuthConfig::default() };
    config.identity.user = HeaderName::from_static("remote-user");
    config.nginx.throttled_status = StatusCode::UNAUTHORIZED;
    let app: Router = Router::new().nest("/auth/forward", kit.tessera().forward_auth(config).router());
    let auth = format!("Token {token}");

    // No rule covers /elsewhere: "authenticated" lets any valid token through, nobody else.
    let ok =
        ask(&app, "/auth/forward/traefik", &[("x-forwarded-uri", "/elsewhere"), ("authorization", &auth)], true).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers().get("remote-user").and_then(|v| v.to_str().ok()), Some("alice"));
    assert!(ok.headers().get("x-tessera-user").is_none(), "renamed");
    assert_eq!(ok.headers().get("x-tessera-client").and_then(|v| v.to_str().ok()), Some("web"));
    let anon = ask(&app, "/auth/forward/traefik", &[("x-forwarded-uri", "/elsewhere")], true).await;
    assert_eq!(anon.status(), 401);

    // Throttled through nginx: the configured 401, with Retry-After; 429 to the others.
    let nginx = [("x-original-uri", "/metered/a"), ("authorization", auth.as_str())];
    assert_eq!(ask(&app, "/auth/forward/nginx", &nginx, true).await.status(), 200);
    let throttled = ask(&app, "/auth/forward/nginx", &nginx, true).await;
    assert_eq!(throttled.status(), 401);
    assert!(throttled.headers().get("retry-after").is_some());
    assert_eq!(throttled.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let envoy = ask(&app, "/auth/forward/envoy/metered/a", &[("authorization", &auth)], true).await;
    assert_eq!(envoy.status(), 429);

    // Without a peer address nothing is trusted: the forwarded URI is ignored, and the request
    // is judged by its own path (here covered by the "authenticated" default).
    let no_peer = ask(&app, "/auth/forward/traefik", &[("x-forwarded-uri", "/web")], false).await;
    assert_eq!(no_peer.status(), 401);
}

#[tokio::test]
async fn decide_directly() {
    let kit = TestKit::new().await;
    let alice = kit.user("alice").await;
    let cli = kit.client("cli").await;
    let token = kit.token(&alice, &cli).await;
    let forward = kit.tessera().forward_auth(ForwardAuthConfig { rules: rules(NoMatch::Deny), ..Default::default() });
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Token {token}").parse().expect("header"));
    let at = |path: &str| OriginalRequest { method: Method::GET, host: None, path: path.into() };
    assert!(
        matches!(forward.decide(&headers, &at("/web"), None).await, Verdict::Refuse(e) if e.code() == "client_not_allowed")
    );
    assert!(
        matches!(forward.decide(&headers, &at("/other"), None).await, Verdict::Refuse(e) if e.code() == "route_denied")
    );
    match forward.decide(&headers, &at("/metered"), None).await {
        Verdict::Allow(Some(p)) => assert_eq!(p.client.name.as_str(), "cli"),
        other => panic!("{other:?}"),
    }
}

/// The signed identity fails closed: without a key, or without an audience for the route, an
/// authenticated request is a 503 — never a 200 without the identity the upstream expects — while
/// anonymous requests (which carry none) still pass with the header empty; with a key, the route's
/// audience wins over the default.
#[tokio::test]
async fn the_signed_identity_fails_closed() {
    use tessera_axum::forward::identity::IdentityKeys;
    use tessera_axum::forward::{IdentitySigner, IdentityToken};
    let kit = TestKit::new().await;
    let alice = kit.user("alice").await;
    let web = kit.client("web").await;
    let token = kit.token(&alice, &web).await;
    let auth = format!("Token {token}");
    let mut public = RouteRule::new(None, "/public").expect("rule");
    public.anonymous = true;
    let mut orders = RouteRule::new(None, "/orders").expect("rule");
    orders.audience = Some("orders".into());
    let open = RouteRule::new(None, "/open").expect("rule");
    let signer = IdentitySigner::default();
    let config = ForwardAuthConfig {
        rules: RouteRules::new(vec![public, orders, open], NoMatch::Deny).expect("rules"),
        identity_token: Some(IdentityToken::new(signer.clone())),
        ..ForwardAuthConfig::default()
    };
    let app: Router = Router::new().nest("/auth/forward", kit.tessera().forward_auth(config).router());
    let ask_at = |path: &'static str, token: bool| {
        let app = app.clone();
        let auth = auth.clone();
        async move {
            let mut headers = vec![("x-forwarded-uri", path)];
            if token {
                headers.push(("authorization", auth.as_str()));
            }
            ask(&app, "/auth/forward/traefik", &headers, true).await
        }
    };
    let identity = |r: &axum::response::Response| {
        r.headers().get("x-tessera-identity").and_then(|v| v.to_str().ok()).map(str::to_string)
    };

    // No key loaded.
    let r = ask_at("/orders/1", true).await;
    assert_eq!((r.status(), identity(&r)), (StatusCode::SERVICE_UNAVAILABLE, None));
    let r = ask_at("/public/x", false).await;
    assert_eq!((r.status(), identity(&r).as_deref()), (StatusCode::OK, Some("")));

    signer.set(IdentityKeys::new(vec![[9; 32]]).expect("keys"));
    // A key, and the route's audience.
    let r = ask_at("/orders/1", true).await;
    assert_eq!(r.status(), 200);
    let jwt = identity(&r).expect("jwt");
    let payload = jwt.split('.').nth(1).expect("payload");
    let text = String::from_utf8(base64_url(payload)).expect("utf-8");
    assert!(text.contains(r#""aud":"orders""#) && text.contains(r#""username":"alice""#), "{text}");
    // A route without an audience and no default: refused, not signed for every upstream.
    let r = ask_at("/open/x", true).await;
    assert_eq!((r.status(), identity(&r)), (StatusCode::SERVICE_UNAVAILABLE, None));
}

fn base64_url(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut bits, mut n, mut out) = (0u32, 0, Vec::new());
    for c in text.bytes() {
        bits = (bits << 6) | alphabet.iter().position(|&a| a == c).expect("base64url") as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 5_000, ..Default::default() })]

    /// Any path built from the characters that make path tricks: either refused, or one reading
    /// with no dot or empty segment — so no prefix can be escaped by `..`, `//` or an encoding.
    #[test]
    fn a_normalised_path_has_one_reading(raw in "(/|\\.|%|2|e|E|f|F|5|c|a|;|\\\\|\\?){0,24}") {
        let path = format!("/{raw}");
        if let Ok(n) = tessera_axum::core::route_rules::normalize_path(&path) {
            proptest::prop_assert!(n.starts_with('/'));
            proptest::prop_assert!(!n.contains('%') && !n.contains('\\') && !n.contains(';'), "{path} -> {n}");
            if n != "/" {
                for segment in n[1..].split('/') {
                    proptest::prop_assert!(!segment.is_empty() && segment != "." && segment != "..", "{path} -> {n}");
                }
            }
            // Decoding it again changes nothing: an upstream that decodes twice reads the same.
            let again = tessera_axum::core::route_rules::normalize_path(&n);
            proptest::prop_assert_eq!(again.as_deref(), Ok(n.as_str()), "{}", path);
        }
    }
}

/// Forward-auth counts each decision that saw a token once, as the layer does: allowed, refused by
/// a rule's clients or its throttle (never also "ok"), or invalid; an anonymous one is not counted.
#[tokio::test]
async fn decisions_are_counted_once_by_outcome() {
    let kit = TestKit::with(|builder| builder.metrics(true)).await;
    let alice = kit.user("alice").await;
    let (web, cli) = (kit.client("web").rate("1/m").await, kit.client("cli").await);
    let (web_token, cli_token) = (kit.token(&alice, &web).await, kit.token(&alice, &cli).await);
    let config = ForwardAuthConfig { rules: rules(NoMatch::Authenticated), ..ForwardAuthConfig::default() };
    let app: Router = Router::new().nest("/auth/forward", kit.tessera().forward_auth(config).router());
    let (web_auth, cli_auth) = (format!("Token {web_token}"), format!("Token {cli_token}"));
    let at = |path: &'static str, auth: &str| {
        [("x-forwarded-uri", path), ("authorization", auth)].map(|(n, v)| (n, v.to_string()))
    };
    for (path, auth, status) in [
        ("/metered/a", web_auth.as_str(), 200),
        ("/metered/a", web_auth.as_str(), 429),
        ("/web/x", cli_auth.as_str(), 403),
        ("/web/x", "Token tsr_nope", 401),
    ] {
        let headers = at(path, auth);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(ask(&app, "/auth/forward/traefik", &headers, true).await.status(), status, "{path} {auth}");
    }
    assert_eq!(ask(&app, "/auth/forward/traefik", &[("x-forwarded-uri", "/elsewhere")], true).await.status(), 401);
    let text = kit.tessera().render_metrics().expect("metrics on");
    for (series, n) in [
        (r#"tessera_authentications_total{client="web",outcome="ok"}"#, 1),
        (r#"tessera_authentications_total{client="web",outcome="throttled"}"#, 1),
        (r#"tessera_authentications_total{client="cli",outcome="forbidden_client"}"#, 1),
        (r#"tessera_authentications_total{client="cli",outcome="ok"}"#, 0),
        (r#"tessera_authentications_total{client="unknown",outcome="invalid_token"}"#, 1),
        ("tessera_authentication_duration_seconds_count", 4),
    ] {
        assert!(text.lines().any(|l| l == format!("{series} {n}")), "{series} {n}:\n{text}");
    }
    assert!(kit.tessera().render_metrics().is_some());
    assert!(TestKit::new().await.tessera().render_metrics().is_none(), "off by default: nothing counted");
}
