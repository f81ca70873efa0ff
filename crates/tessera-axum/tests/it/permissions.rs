//! Client permissions: `/api/web-only/` (only `web`) and `/api/no-cli/` (all but `cli`), and the
//! order of the checks: authentication, then permissions, then the throttle.

use crate::both_backends;
use reqwest::Method;
use serde_json::json;

const DENIED: &str = "You do not have permission to perform this action.";

both_backends!(
    async fn allow_and_deny_lists(app) {
        let alice = app.user("alice").await;
        let web = app.mint(&alice, &app.client("web", "1d").await).await;
        let cli = app.mint(&alice, &app.client("cli", "1d").await).await;
        let ios = app.mint(&alice, &app.client("ios", "1d").await).await;
        let ok = (200, json!({"hello": "alice"}));
        for (path, allowed, denied) in
            [("/api/web-only/", vec![&web], vec![&cli, &ios]), ("/api/no-cli/", vec![&web, &ios], vec![&cli])]
        {
            app.send(app.req(Method::GET, path, None)).await.assert_401("Authentication credentials were not provided.", "Token");
            app.send(app.req(Method::GET, path, Some("nope"))).await.assert_401("Invalid token.", "Token");
            for token in allowed {
                assert_eq!(app.get(path, Some(token)).await, ok, "{path}");
            }
            for token in denied {
                let reply = app.send(app.req(Method::GET, path, Some(token))).await;
                assert_eq!((reply.status, &reply.body), (403, &json!({"detail": DENIED})), "{path}");
                assert_eq!(reply.header("www-authenticate"), None, "a 403 has no challenge");
                assert_eq!(reply.header("content-type"), Some("application/json"));
            }
        }
    }
);

both_backends!(
    async fn client_names_match_exactly(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("Web", "1d").await).await;
        assert_eq!(app.get("/api/web-only/", Some(&token)).await.0, 403);
        let token = app.mint(&alice, &app.client("CLI", "1d").await).await;
        assert_eq!(app.get("/api/no-cli/", Some(&token)).await.0, 200);
    }
);

both_backends!(
    async fn authentication_before_permissions_before_throttle(app) {
        let alice = app.user("alice").await;
        let cli = app.client_with("cli", "1h", |c| c.throttle_rate = Some("1/m".parse().expect("rate"))).await;
        let token = app.mint(&alice, &cli).await;
        // Refused by the permission: not counted by the throttle.
        for _ in 0..3 {
            assert_eq!(app.get("/api/web-only/", Some(&token)).await, (403, json!({"detail": DENIED})));
        }
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200, "the budget was untouched");
        // Over budget now, but a forbidden route still says 403, not 429.
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 429);
        assert_eq!(app.get("/api/no-cli/", Some(&token)).await, (403, json!({"detail": DENIED})));
        // An expired token is a 401 before anything else.
        app.advance(chrono::TimeDelta::hours(2));
        let reply = app.send(app.req(Method::GET, "/api/web-only/", Some(&token))).await;
        reply.assert_401("The given token has expired.", "Token");
    }
);
