//! `refresh/`, `logout/` and `logoutall/`.

use crate::both_backends;
use crate::support::*;
use chrono::TimeDelta;
use reqwest::Method;
use serde_json::json;

both_backends!(
    async fn refresh_moves_the_expiry_to_now_plus_ttl(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1h").await;
        let token = app.mint(&alice, &web).await;
        app.advance(TimeDelta::minutes(50));
        let reply = app.send(app.req(Method::POST, "/api/auth/refresh/", Some(&token))).await;
        let expiry = app.now() + TimeDelta::hours(1);
        assert_eq!((reply.status, &reply.body), (200, &json!({"expiry": wire(expiry)})));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(app.token_for(&alice, &web).await.and_then(|t| t.expiry), Some(micros(expiry)));
        // Same token string; alive past the old expiry, dead after the new one.
        app.advance(TimeDelta::minutes(30));
        assert_eq!(app.get("/api/hello/", Some(&token)).await, (200, json!({"hello": "alice"})));
        app.advance(TimeDelta::minutes(31));
        assert_eq!(app.get("/api/hello/", Some(&token)).await, (401, json!({"detail": "The given token has expired."})));
        assert_eq!(app.post("/api/auth/refresh/", Some(&token)).await, (401, json!({"detail": "Invalid token."})));
    }
);

both_backends!(
    async fn refresh_of_a_never_expiring_token_is_null(app) {
        let alice = app.user("alice").await;
        let forever = app.client("forever", "never").await;
        let token = app.mint(&alice, &forever).await;
        assert_eq!(app.post("/api/auth/refresh/", Some(&token)).await, (200, json!({"expiry": null})));
        assert_eq!(app.token_for(&alice, &forever).await.map(|t| t.expiry), Some(None));
        app.advance(TimeDelta::days(3650));
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200);
    }
);

both_backends!(
    async fn refresh_of_a_sliding_token_is_capped_by_the_max_lifetime(app) {
        let alice = app.user("alice").await;
        let web = app
            .client_with("web", "1h", |c| {
                c.sliding_expiry = true;
                c.max_lifetime = Some("2h".parse().expect("ttl"));
            })
            .await;
        let token = app.mint(&alice, &web).await;
        let created = app.token_for(&alice, &web).await.expect("token").created;
        app.advance(TimeDelta::minutes(30));
        assert_eq!(app.post("/api/auth/refresh/", Some(&token)).await, (200, json!({"expiry": wire(app.now() + TimeDelta::hours(1))})));
        app.advance(TimeDelta::minutes(50));
        let capped = json!({"expiry": wire(created + TimeDelta::hours(2))});
        assert_eq!(app.post("/api/auth/refresh/", Some(&token)).await, (200, capped.clone()));
        app.advance(TimeDelta::minutes(20));
        assert_eq!(app.post("/api/auth/refresh/", Some(&token)).await, (200, capped));
        // Past the cap nothing keeps it alive.
        app.advance(TimeDelta::minutes(31));
        assert_eq!(app.get("/api/hello/", Some(&token)).await, (401, json!({"detail": "The given token has expired."})));
    }
);

both_backends!(
    async fn sliding_expiry_extends_on_use_up_to_the_cap(app) {
        let alice = app.user("alice").await;
        let web = app
            .client_with("web", "1h", |c| {
                c.sliding_expiry = true;
                c.max_lifetime = Some("3h".parse().expect("ttl"));
            })
            .await;
        let token = app.mint(&alice, &web).await;
        // Each use within the hour pushes the expiry: 2.5 h of use on a 1 h TTL.
        for _ in 0..5 {
            app.advance(TimeDelta::minutes(30));
            assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200);
            assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
        }
        // At 3 h the cap ends it, however recently it was used.
        app.advance(TimeDelta::minutes(31));
        assert_eq!(app.get("/api/hello/", Some(&token)).await, (401, json!({"detail": "The given token has expired."})));
    }
);

both_backends!(
    async fn a_sliding_extension_near_the_expiry_is_never_lost(app) {
        let alice = app.user("alice").await;
        let web = app.client_with("web", "1h", |c| c.sliding_expiry = true).await;
        let token = app.mint(&alice, &web).await;
        // Each use comes a minute before the expiry, so each extension is written through at once;
        // the next use, right after, must see it (from the store or from this process's memory).
        for round in 0..20 {
            app.advance(TimeDelta::minutes(59));
            assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200, "round {round}");
        }
        app.tessera.shutdown().await;
        let expiry = app.token_for(&alice, &web).await.and_then(|t| t.expiry);
        assert_eq!(expiry, Some(micros(app.now() + TimeDelta::hours(1))));
    }
);

both_backends!(
    async fn logout_deletes_only_the_presented_token(app) {
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        let (web, cli) = (app.client("web", "1d").await, app.client("cli", "1d").await);
        let alice_web = app.mint(&alice, &web).await;
        let alice_cli = app.mint(&alice, &cli).await;
        let bob_web = app.mint(&bob, &web).await;
        let reply = app.send(app.req(Method::POST, "/api/auth/logout/", Some(&alice_web))).await;
        assert_eq!((reply.status, reply.text.as_str()), (204, ""));
        assert_eq!(reply.header("content-type"), None, "a 204 has no Content-Type");
        assert_eq!(app.get("/api/hello/", Some(&alice_web)).await, (401, json!({"detail": "Invalid token."})));
        assert_eq!(app.token_for(&alice, &web).await, None);
        for other in [&alice_cli, &bob_web] {
            assert_eq!(app.get("/api/hello/", Some(other)).await.0, 200);
        }
        assert_eq!(app.tokens().await.len(), 2);
        // Once is all: the second logout is a 401.
        assert_eq!(app.post("/api/auth/logout/", Some(&alice_web)).await, (401, json!({"detail": "Invalid token."})));
    }
);

both_backends!(
    async fn logoutall_deletes_every_token_of_the_user_only(app) {
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        let (web, cli, ios) = (app.client("web", "1d").await, app.client("cli", "1d").await, app.client("ios", "never").await);
        let alice_tokens = [app.mint(&alice, &web).await, app.mint(&alice, &cli).await, app.mint(&alice, &ios).await];
        let bob_tokens = [app.mint(&bob, &web).await, app.mint(&bob, &cli).await];
        for token in &alice_tokens {
            assert_eq!(app.get("/api/hello-cached/", Some(token)).await.0, 200);
        }
        let reply = app.send(app.req(Method::POST, "/api/auth/logoutall/", Some(&alice_tokens[1]))).await;
        assert_eq!((reply.status, reply.text.as_str(), reply.header("content-type")), (204, "", None));
        for token in &alice_tokens {
            assert_eq!(app.get("/api/hello/", Some(token)).await, (401, json!({"detail": "Invalid token."})));
            assert_eq!(app.get("/api/hello-cached/", Some(token)).await.0, 401);
        }
        for token in &bob_tokens {
            assert_eq!(app.get("/api/hello/", Some(token)).await.0, 200);
        }
        let left = app.tokens().await;
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|t| t.user_id == bob.id));
        let events = app.events_named("logout_all");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["tokens"], 3);
    }
);

both_backends!(
    async fn refresh_logout_and_logoutall_need_a_token(app) {
        for path in ["/api/auth/refresh/", "/api/auth/logout/", "/api/auth/logoutall/"] {
            let reply = app.send(app.req(Method::POST, path, None)).await;
            reply.assert_401("Authentication credentials were not provided.", "Token");
            let reply = app.send(app.req(Method::POST, path, Some("nope"))).await;
            reply.assert_401("Invalid token.", "Token");
        }
        assert_eq!(app.tokens().await, Vec::new());
        assert_eq!(app.all_events(), Vec::new());
    }
);
