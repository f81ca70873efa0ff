//! Events: each kind fires once, with the user, the client, the request's IP and the time.

use crate::both_backends;
use crate::support::*;
use chrono::TimeDelta;
use serde_json::{Value, json};

/// The one event named `name`, after checking who, where and when.
#[track_caller]
fn the_event(app: &TestApp, name: &str, user: &tessera_core::User, client: &str) -> Value {
    let events = app.events_named(name);
    assert_eq!(events.len(), 1, "{name}: {events:?}");
    let event = events[0].clone();
    assert_eq!(event["user_id"], json!(user.id.0), "{name}");
    assert_eq!(event["username"], json!(user.username.as_str()), "{name}");
    assert_eq!(event["client"], json!(client), "{name}");
    assert_eq!(event["ip"], json!("127.0.0.1"), "{name}");
    assert_eq!(event["at"], json!(app.now()), "{name}");
    event
}

both_backends!(
    async fn login_creates_and_logs_in_then_logout(app) {
        let alice = app.user("alice").await;
        app.client("web", "1d").await;
        app.advance(TimeDelta::seconds(1));
        let token = app.login("alice", "web").await;
        let created = the_event(&app, "token_created", &alice, "web");
        the_event(&app, "user_logged_in", &alice, "web");
        // A second login logs in again but creates nothing.
        app.login("alice", "web").await;
        assert_eq!(app.events_named("user_logged_in").len(), 2);
        assert_eq!(app.events_named("token_created").len(), 1);
        app.advance(TimeDelta::seconds(1));
        assert_eq!(app.post("/api/auth/logout/", Some(&token)).await.0, 204);
        the_event(&app, "user_logged_out", &alice, "web");
        assert_eq!(app.all_events().len(), 4);
        assert!(created["token_id"].is_i64());
    }
);

both_backends!(
    async fn logout_all_counts_the_tokens(app) {
        let alice = app.user("alice").await;
        let (web, cli) = (app.client("web", "1d").await, app.client("cli", "1d").await);
        let token = app.mint(&alice, &web).await;
        app.mint(&alice, &cli).await;
        assert_eq!(app.post("/api/auth/logoutall/", Some(&token)).await.0, 204);
        let event = the_event(&app, "logout_all", &alice, "web");
        assert_eq!(event["tokens"], 2);
    }
);

both_backends!(
    async fn refresh_renews(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1h").await;
        let token = app.mint(&alice, &web).await;
        app.advance(TimeDelta::minutes(5));
        assert_eq!(app.post("/api/auth/refresh/", Some(&token)).await.0, 200);
        let event = the_event(&app, "token_renewed", &alice, "web");
        assert_eq!(event["new_expiry"], json!(app.now() + TimeDelta::hours(1)));
        let id = app.token_for(&alice, &web).await.expect("token").id.0;
        assert_eq!(event["token_id"], id);
    }
);

both_backends!(
    options = Options::with(|s| s.refresh_token_on_login = true),
    async fn login_with_refresh_token_on_login_renews(app) {
        let alice = app.user("alice").await;
        app.client("web", "1h").await;
        app.login("alice", "web").await;
        assert!(app.events_named("token_renewed").is_empty(), "a new token is created, not renewed");
        app.advance(TimeDelta::minutes(5));
        app.login("alice", "web").await;
        let event = the_event(&app, "token_renewed", &alice, "web");
        assert_eq!(event["new_expiry"], json!(app.now() + TimeDelta::hours(1)));
    }
);

both_backends!(
    async fn expiry_found_by_authentication(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1h").await;
        let token = app.mint(&alice, &web).await;
        app.advance(TimeDelta::hours(2));
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 401);
        let event = the_event(&app, "token_expired", &alice, "web");
        assert_eq!(event["source"], "authentication");
    }
);

both_backends!(
    async fn expiry_found_by_login(app) {
        let alice = app.user("alice").await;
        app.client("web", "1h").await;
        app.login("alice", "web").await;
        app.advance(TimeDelta::hours(2));
        app.login("alice", "web").await;
        let event = the_event(&app, "token_expired", &alice, "web");
        assert_eq!(event["source"], "login");
        assert_eq!(app.events_named("token_created").len(), 2);
    }
);

both_backends!(
    async fn session_delete_revokes(app) {
        let alice = app.user("alice").await;
        let (web, cli) = (app.client("web", "1d").await, app.client("cli", "1d").await);
        let token = app.mint(&alice, &web).await;
        app.mint(&alice, &cli).await;
        let id = app.token_for(&alice, &cli).await.expect("cli").id.0;
        assert_eq!(app.delete(&format!("/api/auth/sessions/{id}"), Some(&token)).await.0, 204);
        // The event names the requester's client; the token is the revoked one.
        let event = the_event(&app, "token_revoked", &alice, "web");
        assert_eq!((event["token_id"].clone(), event["by"].clone()), (json!(id), json!("user")));
    }
);

both_backends!(
    options = Options::with(|s| s.api_access_client_name = Some("api-access".parse().expect("name"))),
    async fn api_access_creates_and_revokes(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        assert_eq!(app.post("/api/auth/apiaccess/", Some(&token)).await.0, 201);
        let created = the_event(&app, "token_created", &alice, "api-access");
        assert_eq!(app.delete("/api/auth/apiaccess/", Some(&token)).await.0, 204);
        let revoked = the_event(&app, "token_revoked", &alice, "api-access");
        assert_eq!(created["token_id"], revoked["token_id"]);
        assert_eq!(revoked["by"], "user");
    }
);

both_backends!(
    async fn login_failures_name_the_user_tried_never_the_password(app) {
        let bob = app.user("bob").await;
        tessera_core::store::UserStore::set_active(app.store(), bob.id, false).await.expect("deactivate");
        app.user("alice").await;
        app.client("web", "1d").await;
        let secret = "hunter2-the-wrong-one";
        for (username, password) in [("alice", secret), ("mallory", secret), ("bob", PASSWORD)] {
            let body = json!({"username": format!(" {username} "), "password": password, "client": "web"});
            assert_eq!(app.login_with(body).await.status, 400);
        }
        let failed = app.events_named("login_failed");
        let seen: Vec<(&Value, &Value)> = failed.iter().map(|e| (&e["username"], &e["reason"])).collect();
        assert_eq!(
            seen,
            [
                (&json!("alice"), &json!("wrong password")),
                (&json!("mallory"), &json!("unknown user")),
                (&json!("bob"), &json!("inactive user")),
            ]
        );
        for event in &failed {
            assert_eq!((event["ip"].clone(), event["at"].clone()), (json!("127.0.0.1"), json!(app.now())));
        }
        let everything = serde_json::to_string(&app.all_events()).expect("json");
        assert!(!everything.contains(secret) && !everything.contains(PASSWORD), "{everything}");
        assert_eq!(app.all_events().len(), 3, "nothing but the failures");
    }
);

both_backends!(
    async fn issue_token_replaces_an_expired_token_with_its_events(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1m").await;
        let (old, _) = app.tessera.issue_token(&alice, &web).await.expect("issue");
        app.advance(chrono::TimeDelta::minutes(2));
        let (new, secret) = app.tessera.issue_token(&alice, &web).await.expect("issue again");
        assert_ne!(old.id, new.id);
        let created = app.events_named("token_created");
        assert_eq!(created.iter().map(|e| e["token_id"].clone()).collect::<Vec<_>>(), vec![json!(old.id.0), json!(new.id.0)]);
        let expired = app.events_named("token_expired");
        assert_eq!(expired.len(), 1, "{expired:?}");
        assert_eq!((expired[0]["token_id"].clone(), expired[0]["source"].clone()), (json!(old.id.0), json!("issue_token")));
        assert_eq!(expired[0]["username"], "alice");
        assert_eq!(expired[0]["client"], "web");
        assert_eq!(app.get("/api/hello/", Some(secret.expose())).await.0, 200);
    }
);

both_backends!(
    async fn admin_revocations_name_their_revoker(app) {
        use tessera_core::Revoker;
        let alice = app.user("alice").await;
        let (web, cli) = (app.client("web", "1d").await, app.client("cli", "1d").await);
        let web_token = app.mint(&alice, &web).await;
        let cli_token = app.mint(&alice, &cli).await;
        let stored = app.token_for(&alice, &web).await.expect("web token");
        assert!(app.tessera.revoke_token(&stored, Revoker::Cli).await.expect("revoke"));
        assert!(!app.tessera.revoke_token(&stored, Revoker::Cli).await.expect("revoke again"), "already gone");
        let revoked = app.events_named("token_revoked");
        assert_eq!(revoked.len(), 1, "{revoked:?}");
        assert_eq!((revoked[0]["by"].clone(), revoked[0]["client"].clone()), (json!("cli"), json!("web")));
        assert_eq!(app.get("/api/hello-cached/", Some(&web_token)).await.0, 401);

        let all = app.tessera.revoke_tokens(&alice, None, Revoker::Admin).await.expect("revoke all");
        assert_eq!(all.len(), 1);
        let revoked = app.events_named("token_revoked");
        assert_eq!((revoked[1]["by"].clone(), revoked[1]["client"].clone()), (json!("admin"), json!("cli")));
        assert_eq!(app.get("/api/hello/", Some(&cli_token)).await.0, 401);
    }
);

both_backends!(
    async fn a_password_change_revokes_every_token_of_the_user(app) {
        use tessera_core::Revoker;
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        let (web, cli) = (app.client("web", "1d").await, app.client("cli", "1d").await);
        let (a_web, a_cli, b_web) = (app.mint(&alice, &web).await, app.mint(&alice, &cli).await, app.mint(&bob, &web).await);
        assert_eq!(app.get("/api/hello-cached/", Some(&a_web)).await.0, 200);
        let hash = tessera_core::password::hash_password("a brand new password").expect("hash");
        let revoked = app.tessera.change_password(&alice, &hash, Revoker::Admin).await.expect("change");
        assert_eq!(revoked.len(), 2);
        for token in [&a_web, &a_cli] {
            assert_eq!(app.get("/api/hello-cached/", Some(token)).await, (401, json!({"detail": "Invalid token."})));
        }
        assert_eq!(app.get("/api/hello/", Some(&b_web)).await.0, 200);
        let events = app.events_named("token_revoked");
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events.iter().all(|e| e["by"] == "admin" && e["username"] == "alice"), "{events:?}");
        let stored = tessera_core::store::UserStore::user_by_id(app.store(), alice.id).await.expect("read").expect("alice");
        assert_eq!(stored.password_hash, hash);
    }
);

both_backends!(
    options = Options::with(|s| s.revoke_tokens_on_password_change = false),
    async fn a_password_change_can_keep_the_tokens(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        let hash = tessera_core::password::hash_password("a brand new password").expect("hash");
        let revoked = app.tessera.change_password(&alice, &hash, tessera_core::Revoker::Admin).await.expect("change");
        assert!(revoked.is_empty());
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200);
        assert!(app.events_named("token_revoked").is_empty());
    }
);

both_backends!(
    async fn a_pending_token_changes_nothing_until_it_is_stored(app) {
        use tessera_axum::{IfPairHasToken, PairTokenError, TokenRequest};
        use tessera_core::Revoker;
        let alice = app.user("alice").await;
        let (web, cli) = (app.client("web", "1d").await, app.client("cli", "1d").await);
        let old = app.mint(&alice, &web).await;
        let replace = || TokenRequest::new(&alice, &web).if_exists(IfPairHasToken::Replace).by(Revoker::Cli);
        // Prepared and dropped (say its delivery failed): nothing happened.
        let pending = app.tessera.prepare_token(replace()).await.expect("prepare");
        assert_eq!(pending.replaces().map(|t| t.id), app.token_for(&alice, &web).await.map(|t| t.id));
        let unstored = pending.secret().expose().to_string();
        drop(pending);
        assert_eq!(app.get("/api/hello/", Some(&old)).await.0, 200);
        assert_eq!(app.get("/api/hello/", Some(&unstored)).await.0, 401);
        assert!(app.events_named("token_revoked").is_empty());
        // Any other policy refuses a live token up front.
        let refused = app.tessera.prepare_token(TokenRequest::new(&alice, &web).if_exists(IfPairHasToken::Refuse)).await;
        assert!(matches!(refused, Err(PairTokenError::Exists(_))), "{refused:?}");
        // Stored: only then is the old token revoked.
        let pending = app.tessera.prepare_token(replace()).await.expect("prepare");
        let stored = app.tessera.store_pending_token(pending).await.expect("store");
        assert!(stored.created);
        assert_eq!(app.get("/api/hello/", Some(&old)).await.0, 401);
        assert_eq!(app.get("/api/hello/", Some(stored.secret.expose())).await.0, 200);
        let revoked = app.events_named("token_revoked");
        assert_eq!((revoked.len(), revoked[0]["by"].clone()), (1, json!("cli")));
        // A pair that gained a token in between keeps it; the pending one is not stored.
        let pending =
            app.tessera.prepare_token(TokenRequest::new(&alice, &cli).if_exists(IfPairHasToken::Refuse)).await.expect("prepare");
        let winner = app.mint(&alice, &cli).await;
        let late = pending.secret().expose().to_string();
        let result = app.tessera.store_pending_token(pending).await;
        assert!(matches!(result, Err(PairTokenError::Exists(_))), "{result:?}");
        assert_eq!(app.get("/api/hello/", Some(&winner)).await.0, 200);
        assert_eq!(app.get("/api/hello/", Some(&late)).await.0, 401);
    }
);
