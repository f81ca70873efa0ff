//! `apiaccess/`: one API key per user, the token of the configured API-access client.

use crate::both_backends;
use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};
use tessera_core::store::ClientStore;

fn with_api_access() -> Options {
    Options::with(|s| s.api_access_client_name = Some("api-access".parse().expect("name")))
}

fn keys(body: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = body.as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort();
    keys
}

both_backends!(
    options = with_api_access(),
    async fn the_client_is_created_at_start(app) {
        let name = "api-access".parse().expect("name");
        let client = app.store().client_by_name(&name).await.expect("store").expect("created at start");
        assert_eq!(client.token_ttl, app.settings.default_token_ttl);
        // A second start (another instance) finds it and creates nothing.
        let _other = app.second_instance().await;
        assert_eq!(app.store().list_clients().await.expect("clients").len(), 1);
    }
);

both_backends!(
    options = with_api_access(),
    async fn get_post_get_delete_lifecycle(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        let not_found = (404, json!({"detail": "Not found."}));
        assert_eq!(app.get("/api/auth/apiaccess/", Some(&token)).await, not_found);

        app.advance(chrono::TimeDelta::seconds(1)); // the key is listed after the web token
        let reply = app.send(app.req(Method::POST, "/api/auth/apiaccess/", Some(&token))).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(keys(&reply.body), ["client", "created", "expires_in_str", "expiry", "has_expired", "token"]);
        let name = "api-access".parse().expect("name");
        let api_client = app.store().client_by_name(&name).await.expect("store").expect("client");
        let row = app.token_for(&alice, &api_client).await.expect("api token");
        let described = json!({
            "client": "api-access",
            "created": wire(row.created),
            "expiry": wire(row.expiry.expect("expiry")),
            "has_expired": false,
            "expires_in_str": "a day",
        });
        let api_key = reply.body["token"].as_str().expect("token").to_string();
        let mut with_token = described.clone();
        with_token["token"] = json!(api_key);
        assert_eq!(reply.body, with_token);
        // The key works, as the API-access client.
        assert_eq!(app.get("/api/hello/", Some(&api_key)).await, (200, json!({"hello": "alice"})));
        let (_, sessions) = app.get("/api/auth/sessions/", Some(&api_key)).await;
        assert_eq!(sessions[1]["client"], "api-access");
        assert_eq!(sessions[1]["is_current"], true);

        // One only.
        let already = (400, json!(["An API token was already issued to you."]));
        assert_eq!(app.post("/api/auth/apiaccess/", Some(&token)).await, already);
        assert_eq!(app.post("/api/auth/apiaccess/", Some(&api_key)).await, already);

        // GET never shows the token (durin leaked it after a POST).
        for _ in 0..2 {
            let reply = app.send(app.req(Method::GET, "/api/auth/apiaccess/", Some(&token))).await;
            assert_eq!((reply.status, &reply.body), (200, &described));
            assert!(!reply.text.contains(&api_key));
        }

        let reply = app.send(app.req(Method::DELETE, "/api/auth/apiaccess/", Some(&token))).await;
        assert_eq!((reply.status, reply.text.as_str(), reply.header("content-type")), (204, "", None));
        assert_eq!(app.get("/api/hello/", Some(&api_key)).await, (401, json!({"detail": "Invalid token."})));
        assert_eq!(app.get("/api/auth/apiaccess/", Some(&token)).await, not_found);
        assert_eq!(app.delete("/api/auth/apiaccess/", Some(&token)).await, not_found);
        // And a new one can be issued, different from the old.
        let (status, body) = app.post("/api/auth/apiaccess/", Some(&token)).await;
        assert_eq!(status, 201);
        assert_ne!(body["token"], json!(api_key));
    }
);

both_backends!(
    options = with_api_access(),
    async fn each_user_has_their_own(app) {
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        let web = app.client("web", "1d").await;
        let (a, b) = (app.mint(&alice, &web).await, app.mint(&bob, &web).await);
        assert_eq!(app.post("/api/auth/apiaccess/", Some(&a)).await.0, 201);
        assert_eq!(app.get("/api/auth/apiaccess/", Some(&b)).await.0, 404);
        assert_eq!(app.delete("/api/auth/apiaccess/", Some(&b)).await.0, 404);
        assert_eq!(app.get("/api/auth/apiaccess/", Some(&a)).await.0, 200, "bob's DELETE did not touch alice's");
        assert_eq!(app.post("/api/auth/apiaccess/", Some(&b)).await.0, 201);
    }
);

both_backends!(
    options = Options::with(|s| {
        s.api_access_client_name = Some("api-access".parse().expect("name"));
        s.api_access_response_include_token = true;
    }),
    async fn get_includes_the_token_when_configured(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        let (_, posted) = app.post("/api/auth/apiaccess/", Some(&token)).await;
        let (status, got) = app.get("/api/auth/apiaccess/", Some(&token)).await;
        assert_eq!(status, 200);
        assert_eq!(got, posted, "the same key, re-derived");
        assert_eq!(keys(&got), ["client", "created", "expires_in_str", "expiry", "has_expired", "token"]);
    }
);

both_backends!(
    async fn without_the_setting_every_method_is_not_found(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        for method in [Method::GET, Method::POST, Method::DELETE, Method::PUT, Method::PATCH, Method::OPTIONS] {
            for path in ["/api/auth/apiaccess/", "/api/auth/apiaccess"] {
                let reply = app.send(app.req(method.clone(), path, Some(&token))).await;
                assert_eq!((reply.status, &reply.body), (404, &json!({"detail": "Not found."})), "{method} {path}");
            }
            // Authentication still comes first.
            let reply = app.send(app.req(method.clone(), "/api/auth/apiaccess/", None)).await;
            reply.assert_401("Authentication credentials were not provided.", "Token");
        }
        assert_eq!(app.store().list_clients().await.expect("clients").len(), 1, "no API-access client made up");
        assert_eq!(app.tokens().await.len(), 1);
    }
);
