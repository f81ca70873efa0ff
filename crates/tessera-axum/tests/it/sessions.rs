//! `GET sessions/` and `DELETE sessions/<id>`.

use crate::both_backends;
use crate::support::*;
use chrono::TimeDelta;
use reqwest::Method;
use serde_json::{Value, json};

const KEYS: [&str; 10] = [
    "client",
    "created",
    "expires_in_str",
    "expiry",
    "has_expired",
    "id",
    "ip",
    "is_current",
    "last_used",
    "user_agent",
];

fn not_found() -> (u16, Value) {
    (404, json!({"detail": "Not found."}))
}

both_backends!(
    async fn list_shape_is_exact_and_marks_the_current_token(app) {
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        let (web, cli) = (app.client("web", "1d").await, app.client("cli", "10m").await);
        let login = app
            .send(app.req(Method::POST, "/api/auth/login/", None).header("User-Agent", "browser/1").json(&json!({
                "username": "alice", "password": PASSWORD, "client": "web"
            })))
            .await;
        let web_token = login.body["token"].as_str().expect("token").to_string();
        let web_row = app.token_for(&alice, &web).await.expect("web");
        app.advance(TimeDelta::seconds(5));
        let cli_token = app.mint(&alice, &cli).await;
        let cli_row = app.token_for(&alice, &cli).await.expect("cli");
        app.mint(&bob, &web).await;

        let reply = app.send(app.req(Method::GET, "/api/auth/sessions/", Some(&cli_token))).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let expected = json!([
            {
                "id": web_row.id.0, "client": "web",
                "created": wire(web_row.created), "expiry": wire(web_row.expiry.expect("expiry")),
                "has_expired": false, "is_current": false, "expires_in_str": "a day",
                "last_used": null, "user_agent": "browser/1", "ip": "127.0.0.1",
            },
            {
                "id": cli_row.id.0, "client": "cli",
                "created": wire(cli_row.created), "expiry": wire(cli_row.expiry.expect("expiry")),
                "has_expired": false, "is_current": true, "expires_in_str": "10 minutes",
                "last_used": null, "user_agent": null, "ip": null,
            },
        ]);
        assert_eq!(reply.body, expected);
        for item in reply.body.as_array().expect("array") {
            let mut keys: Vec<&String> = item.as_object().expect("object").keys().collect();
            keys.sort();
            assert_eq!(keys, KEYS, "no token, no user");
        }
        assert!(!reply.text.contains(&web_token) && !reply.text.contains(&cli_token));
        // From the other token, the other one is current.
        let (_, list) = app.get("/api/auth/sessions", Some(&web_token)).await;
        assert_eq!((list[0]["is_current"].clone(), list[1]["is_current"].clone()), (json!(true), json!(false)));
        // Bob sees only his own.
        let bob_token = app.mint(&bob, &cli).await;
        let (_, list) = app.get("/api/auth/sessions/", Some(&bob_token)).await;
        assert_eq!(list.as_array().map(Vec::len), Some(2));
        assert!(list.as_array().expect("array").iter().all(|i| i["id"] != json!(web_row.id.0) && i["id"] != json!(cli_row.id.0)));
    }
);

both_backends!(
    async fn expires_in_str_humanizes_the_total_lifetime(app) {
        let alice = app.user("alice").await;
        let mut token = String::new();
        for (name, ttl) in [("a", "1d"), ("b", "10m"), ("c", "1h"), ("d", "3650d"), ("e", "45s"), ("f", "30d"), ("g", "never")] {
            token = app.mint(&alice, &app.client(name, ttl).await).await;
            // Sessions are listed by creation time (ids are random, so equal times list in any order).
            app.advance(TimeDelta::seconds(1));
        }
        let (status, list) = app.get("/api/auth/sessions/", Some(&token)).await;
        assert_eq!(status, 200);
        let humanized: Vec<&str> = list.as_array().expect("array").iter().map(|i| i["expires_in_str"].as_str().expect("str")).collect();
        assert_eq!(humanized, ["a day", "10 minutes", "an hour", "10 years", "45 seconds", "a month", "never"]);
        assert_eq!(list[6]["expiry"], Value::Null);
        // The lifetime, not the time left: unchanged as time passes.
        app.advance(TimeDelta::minutes(9));
        let (_, list) = app.get("/api/auth/sessions/", Some(&token)).await;
        assert_eq!(list[1]["expires_in_str"], "10 minutes");
        assert_eq!(list[1]["has_expired"], false);
        assert_eq!(list[4]["has_expired"], true, "an expired token is listed until used");
    }
);

both_backends!(
    async fn last_used_is_written_by_the_usage_buffer(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let token = app.mint(&alice, &web).await;
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200);
        let used = app.now();
        app.advance(TimeDelta::seconds(30));
        // No write on the request path: written at the flush (a minute, or shutdown).
        app.tessera.shutdown().await;
        let (_, list) = app.get("/api/auth/sessions/", Some(&token)).await;
        assert_eq!(list[0]["last_used"], json!(wire(micros(used))));
    }
);

both_backends!(
    options = Options::with(|s| {
        s.api_access_client_name = Some("api-access".parse().expect("name"));
        s.api_access_exclude_from_sessions = true;
    }),
    async fn api_access_token_can_be_hidden(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let token = app.mint(&alice, &web).await;
        let (status, _) = app.post("/api/auth/apiaccess/", Some(&token)).await;
        assert_eq!(status, 201);
        let (_, list) = app.get("/api/auth/sessions/", Some(&token)).await;
        assert_eq!(list.as_array().map(Vec::len), Some(1));
        assert_eq!(list[0]["client"], "web");
        assert_eq!(app.tokens().await.len(), 2);
    }
);

both_backends!(
    options = Options::with(|s| s.api_access_client_name = Some("api-access".parse().expect("name"))),
    async fn api_access_token_is_listed_by_default(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        app.advance(TimeDelta::seconds(1)); // listed by creation time
        assert_eq!(app.post("/api/auth/apiaccess/", Some(&token)).await.0, 201);
        let (_, list) = app.get("/api/auth/sessions/", Some(&token)).await;
        let clients: Vec<&Value> = list.as_array().expect("array").iter().map(|i| &i["client"]).collect();
        assert_eq!(clients, [&json!("web"), &json!("api-access")]);
    }
);

both_backends!(
    async fn delete_another_own_session_in_every_url_shape(app) {
        let alice = app.user("alice").await;
        let current = app.mint(&alice, &app.client("web", "1d").await).await;
        for (i, shape) in ["/api/auth/sessions/{}", "/api/auth/sessions/{}/", "/api/auth/sessions//{}", "/api/auth/sessions//{}/"].iter().enumerate() {
            let client = app.client(&format!("c{i}"), "1d").await;
            let other = app.mint(&alice, &client).await;
            assert_eq!(app.get("/api/hello-cached/", Some(&other)).await.0, 200);
            let id = app.token_for(&alice, &client).await.expect("token").id.0;
            let reply = app.send(app.req(Method::DELETE, &shape.replace("{}", &id.to_string()), Some(&current))).await;
            assert_eq!((reply.status, reply.text.as_str(), reply.header("content-type")), (204, "", None), "{shape}");
            assert_eq!(app.token_for(&alice, &client).await, None);
            assert_eq!(app.get("/api/hello/", Some(&other)).await, (401, json!({"detail": "Invalid token."})));
            assert_eq!(app.get("/api/hello-cached/", Some(&other)).await.0, 401, "revoked at once in this process");
            // Gone: a second delete is a 404.
            assert_eq!(app.delete(&shape.replace("{}", &id.to_string()), Some(&current)).await, not_found());
        }
        assert_eq!(app.get("/api/hello/", Some(&current)).await.0, 200);
        let revoked = app.events_named("token_revoked");
        assert_eq!(revoked.len(), 4);
        assert!(revoked.iter().all(|e| e["by"] == "user" && e["username"] == "alice"));
    }
);

both_backends!(
    async fn the_current_session_cannot_be_deleted(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let token = app.mint(&alice, &web).await;
        let id = app.token_for(&alice, &web).await.expect("token").id.0;
        let message = json!(["Can't delete token if the request is authed with it. Use /api/auth/logout/ instead."]);
        for path in [format!("/api/auth/sessions/{id}"), format!("/api/auth/sessions//{id}/")] {
            let reply = app.send(app.req(Method::DELETE, &path, Some(&token))).await;
            assert_eq!((reply.status, &reply.body), (400, &message));
            assert_eq!(reply.header("content-type"), Some("application/json"));
        }
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200);
    }
);

both_backends!(
    async fn others_unknown_and_non_integer_ids_are_not_found(app) {
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        let web = app.client("web", "1d").await;
        let token = app.mint(&alice, &web).await;
        let bob_token = app.mint(&bob, &web).await;
        let bob_id = app.token_for(&bob, &web).await.expect("bob").id.0;
        for id in [bob_id.to_string(), "999999".into(), "-1".into(), "0".into(), "abc".into(), "1.0".into(), "1e3".into(), "99999999999999999999999".into(), "%FF".into(), "%20".into(), "x%00".into()] {
            assert_eq!(app.delete(&format!("/api/auth/sessions/{id}"), Some(&token)).await, not_found(), "id {id}");
            assert_eq!(app.delete(&format!("/api/auth/sessions//{id}/"), Some(&token)).await, not_found(), "id {id}");
        }
        assert_eq!(app.get("/api/hello/", Some(&bob_token)).await.0, 200, "bob's token survives");
        assert_eq!(app.tokens().await.len(), 2);
        // Authentication comes first.
        let reply = app.send(app.req(Method::DELETE, &format!("/api/auth/sessions/{bob_id}"), None)).await;
        reply.assert_401("Authentication credentials were not provided.", "Token");
        app.send(app.req(Method::GET, "/api/auth/sessions/", None)).await.assert_401("Authentication credentials were not provided.", "Token");
    }
);
