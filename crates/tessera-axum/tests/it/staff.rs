//! Staff sessions (the admin UI's logins): tokens of the reserved client, refused on the API,
//! refused to non-staff like a wrong password, throttled like login, with idle and absolute
//! timeouts, ended by a logout or a demotion.

use crate::both_backends;
use crate::support::*;
use chrono::TimeDelta;
use serde_json::json;
use tessera_axum::{AuthError, STAFF_CLIENT, StaffLogin, StaffSessionPolicy};
use tessera_core::store::{ClientStore, UserStore};
use tessera_core::{ClientUpdate, NewClient, Rate, Revoker, StoreError, Ttl};

fn attempt<'a>(username: &'a str, password: &str) -> StaffLogin<'a> {
    StaffLogin { username, password: password.into(), ip: Some([192, 0, 2, 1].into()), user_agent: Some("test".into()) }
}

const POLICY: StaffSessionPolicy = StaffSessionPolicy { idle: TimeDelta::minutes(30), absolute: TimeDelta::hours(1) };

fn throttled_per_username() -> Options {
    Options::with(|s| s.login_throttle_per_username = Rate::new(3, tessera_core::Period::Minute))
}

both_backends!(
    options = throttled_per_username(),
    async fn only_staff_sign_in_and_everyone_else_is_refused_alike(app) {
        let admin = app.user("admin").await;
        app.store().set_staff(admin.id, true).await.expect("staff");
        app.user("plain").await;
        let gone = app.user("gone").await;
        app.store().set_staff(gone.id, true).await.expect("staff");
        app.store().set_active(gone.id, false).await.expect("inactive");
        for (user, password) in [("plain", PASSWORD), ("gone", PASSWORD), ("nobody", PASSWORD), ("admin", "wrong")] {
            let refused = app.tessera.staff_login(attempt(user, password), POLICY).await;
            assert!(matches!(refused, Err(AuthError::BadCredentials)), "{user}: {refused:?}");
        }
        // No session client, no token, for any of them.
        assert!(app.tokens().await.is_empty());

        // The login throttle applies: two more wrong passwords for admin use up its 3/m.
        for _ in 0..2 {
            let refused = app.tessera.staff_login(attempt("admin", "wrong"), POLICY).await;
            assert!(matches!(refused, Err(AuthError::BadCredentials)), "{refused:?}");
        }
        let throttled = app.tessera.staff_login(attempt("admin", PASSWORD), POLICY).await;
        assert!(matches!(throttled, Err(AuthError::Throttled { .. })), "{throttled:?}");
    }
);

both_backends!(
    async fn a_staff_session_is_a_token_the_api_refuses(app) {
        let admin = app.user("admin").await;
        app.store().set_staff(admin.id, true).await.expect("staff");
        let (user, secret) = app.tessera.staff_login(attempt("admin", PASSWORD), POLICY).await.expect("login");
        assert_eq!(user.id, admin.id);
        let session = app.tessera.staff_session(secret.expose(), None).await.expect("session");
        assert_eq!(session.client.name.as_str(), STAFF_CLIENT);
        assert!(session.client.sliding_expiry);

        // On the API it is an invalid token, through the layer and through the cache alike.
        for path in ["/api/hello/", "/api/hello-cached/", "/api/auth/sessions/"] {
            let (status, body) = app.get(path, Some(secret.expose())).await;
            assert_eq!((status, &body["detail"]), (401, &json!("Invalid token.")), "{path}");
        }
        // Login does not issue one, whatever the client is called.
        let (status, body) = app
            .post_json("/api/auth/login/", None, json!({"username": "admin", "password": PASSWORD, "client": STAFF_CLIENT}))
            .await;
        let (unknown_status, unknown) = app
            .post_json("/api/auth/login/", None, json!({"username": "admin", "password": PASSWORD, "client": "no-such"}))
            .await;
        assert_eq!((status, &body), (unknown_status, &unknown), "the reserved client looks unknown to login");
        assert_eq!(status, 400, "{body}");
        // And an API token is no staff session.
        let web = app.client("web", "1d").await;
        let api = app.mint(&admin, &web).await;
        assert!(matches!(app.tessera.staff_session(&api, None).await, Err(AuthError::InvalidToken)));

        // No admin path creates, renames into, or edits the reserved client.
        let reserved = NewClient::new(STAFF_CLIENT.parse().expect("name"), Ttl::Never);
        assert!(matches!(app.tessera.create_client(reserved, Revoker::Admin).await, Err(StoreError::Conflict(_))));
        let rename = ClientUpdate { name: Some(STAFF_CLIENT.parse().expect("name")), ..ClientUpdate::default() };
        assert!(matches!(app.tessera.update_client(&web, rename, Revoker::Admin).await, Err(StoreError::Conflict(_))));
        let staff_client = app.store().client_by_name(&STAFF_CLIENT.parse().expect("name")).await.expect("read").expect("created");
        let change = ClientUpdate { token_ttl: Some(Ttl::Never), ..ClientUpdate::default() };
        assert!(matches!(app.tessera.update_client(&staff_client, change, Revoker::Admin).await, Err(StoreError::Conflict(_))));
    }
);

both_backends!(
    async fn sessions_time_out_and_end_with_logout_or_demotion(app) {
        let admin = app.user("admin").await;
        app.store().set_staff(admin.id, true).await.expect("staff");

        // Idle: unused for longer than `idle`, it ends.
        let (_, idle) = app.tessera.staff_login(attempt("admin", PASSWORD), POLICY).await.expect("login");
        app.advance(TimeDelta::minutes(31));
        assert!(app.tessera.staff_session(idle.expose(), None).await.is_err(), "idle timeout");

        // Busy: each use slides the expiry, until the absolute lifetime.
        let (_, busy) = app.tessera.staff_login(attempt("admin", PASSWORD), POLICY).await.expect("login");
        for step in 1..=2 {
            app.advance(TimeDelta::minutes(25));
            assert!(app.tessera.staff_session(busy.expose(), None).await.is_ok(), "step {step}: still in use");
        }
        app.advance(TimeDelta::minutes(25)); // 75 minutes after the login: past the hour
        assert!(app.tessera.staff_session(busy.expose(), None).await.is_err(), "absolute timeout");

        // Logout ends it.
        let (_, secret) = app.tessera.staff_login(attempt("admin", PASSWORD), POLICY).await.expect("login");
        let session = app.tessera.staff_session(secret.expose(), None).await.expect("session");
        app.tessera.staff_logout(&session).await.expect("logout");
        assert!(app.tessera.staff_session(secret.expose(), None).await.is_err(), "after logout");

        // A user no longer staff has no session.
        let (_, secret) = app.tessera.staff_login(attempt("admin", PASSWORD), POLICY).await.expect("login");
        app.store().set_staff(admin.id, false).await.expect("demote");
        assert!(matches!(app.tessera.staff_session(secret.expose(), None).await, Err(AuthError::InvalidToken)));
    }
);
