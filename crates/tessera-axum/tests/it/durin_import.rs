//! What `tessera import durin` leaves behind, served: legacy (durin) tokens authenticate through
//! the layer, the cached layer and the auth routes like native ones; a login for their pair
//! replaces them; sessions list them, logout deletes them; `accept_legacy_tokens` gates them; and
//! Django password hashes log in and are re-hashed to Argon2id. (The import itself, against
//! databases made by django-rest-durin, is tested on the binary: crates/tessera/tests/it/durin.rs.)

use crate::both_backends;
use crate::support::{Options, PASSWORD};
use chrono::TimeDelta;
use serde_json::json;
use tessera_core::store::TokenFilter;
use tessera_core::{AuthToken, Client, KeyRing, LegacyTokens, NewToken, TokenSeed, User};

/// A durin token (64 hex) stored as the import stores it: the keyed digest under the current key.
async fn import_token(app: &crate::support::TestApp, hex: &str, user: &User, client: &Client) -> AuthToken {
    let codec = app.tessera.codec();
    let new = NewToken {
        user_id: user.id,
        client_id: client.id,
        digest: codec.legacy_digest(codec.current_key(), hex).expect("a durin token"),
        seed: TokenSeed::NONE,
        key_id: codec.current_key(),
        created: app.now(),
        expiry: Some(app.now() + TimeDelta::days(1)),
        user_agent: None,
        ip: None,
    };
    app.tessera.store().create_token(new).await.expect("import")
}

const ALICE_WEB: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const ALICE_CLI: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

both_backends!(
    async fn legacy_tokens_authenticate_list_log_out_and_give_way_to_a_login(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let cli = app.client("cli", "1d").await;
        let legacy = import_token(&app, ALICE_WEB, &alice, &web).await;
        import_token(&app, ALICE_CLI, &alice, &cli).await;
        for path in ["/api/hello/", "/api/hello-cached/"] {
            assert_eq!(app.get(path, Some(ALICE_WEB)).await, (200, json!({"hello": "alice"})), "{path}");
        }
        // Not a token of theirs: a 64-hex string nobody holds, and an upper-case spelling.
        let unknown = "1".repeat(64);
        assert_eq!(app.get("/api/hello/", Some(&unknown)).await, (401, json!({"detail": "Invalid token."})));
        let upper = ALICE_WEB.to_uppercase();
        assert_eq!(app.get("/api/hello/", Some(&upper)).await, (401, json!({"detail": "Invalid token."})));

        // Sessions list it, like any token.
        let (status, list) = app.get("/api/auth/sessions/", Some(ALICE_WEB)).await;
        assert_eq!(status, 200);
        let ids: Vec<i64> = list.as_array().expect("array").iter().map(|s| s["id"].as_i64().expect("id")).collect();
        assert!(ids.contains(&legacy.id.0) && ids.len() == 2, "{list}");

        // A login for the pair cannot hand the durin token back: a native token replaces it.
        let native = app.login("alice", "web").await;
        assert!(native.starts_with("tsr_"), "{native}");
        assert_eq!(app.get("/api/hello/", Some(ALICE_WEB)).await, (401, json!({"detail": "Invalid token."})));
        assert_eq!(app.get("/api/hello-cached/", Some(ALICE_WEB)).await.0, 401, "forgotten by the cache too");
        assert_eq!(app.get("/api/hello/", Some(&native)).await.0, 200);
        assert_eq!(app.login("alice", "web").await, native, "and from then on, durin's same token");
        let revoked = app.events_named("token_revoked");
        assert!(revoked.iter().any(|e| e["token_id"] == json!(legacy.id.0)), "{revoked:?}");

        // Logout deletes it.
        assert_eq!(app.post("/api/auth/logout/", Some(ALICE_CLI)).await.0, 204);
        assert_eq!(app.get("/api/hello/", Some(ALICE_CLI)).await, (401, json!({"detail": "Invalid token."})));
        let left = app.tessera.store().count_tokens(TokenFilter { legacy: true, ..TokenFilter::default() }).await;
        assert_eq!(left.expect("count"), 0);
    }
);

both_backends!(
    async fn an_expired_legacy_token_is_told_once_then_invalid(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        import_token(&app, ALICE_WEB, &alice, &web).await;
        app.advance(TimeDelta::days(1));
        assert_eq!(app.get("/api/hello/", Some(ALICE_WEB)).await, (401, json!({"detail": "The given token has expired."})));
        assert_eq!(app.get("/api/hello/", Some(ALICE_WEB)).await, (401, json!({"detail": "Invalid token."})));
    }
);

both_backends!(
    async fn legacy_tokens_survive_a_key_rotation(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        import_token(&app, ALICE_WEB, &alice, &web).await;
        let (ring, _) = KeyRing::from(app.key.clone()).rotated().expect("rotate");
        assert!(app.tessera.set_key_ring(ring));
        assert_eq!(app.get("/api/hello/", Some(ALICE_WEB)).await.0, 200, "digested with the key current at the import");
    }
);

both_backends!(
    options = Options::with(|s| s.accept_legacy_tokens = LegacyTokens::Off),
    async fn accept_legacy_tokens_off_refuses_them(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        import_token(&app, ALICE_WEB, &alice, &web).await;
        assert_eq!(app.get("/api/hello/", Some(ALICE_WEB)).await, (401, json!({"detail": "Invalid token."})));
        assert_eq!(app.get("/api/hello-cached/", Some(ALICE_WEB)).await.0, 401);
        assert_eq!(app.post("/api/auth/logout/", Some(ALICE_WEB)).await.0, 401);
        assert!(app.token_for(&alice, &web).await.is_some(), "refused, not deleted");
    }
);

both_backends!(
    async fn auto_looks_up_nothing_while_the_store_holds_no_legacy_token(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        // No legacy token: the gate is shut, so a durin token stored afterwards waits for the next
        // look (a minute); an operator imports before starting, or sets the key to true.
        assert_eq!(app.get("/api/hello/", Some(ALICE_WEB)).await.0, 401);
        import_token(&app, ALICE_WEB, &alice, &web).await;
        assert_eq!(app.get("/api/hello/", Some(ALICE_WEB)).await.0, 401, "believed for a minute");
    }
);

both_backends!(
    async fn durin_tokens_with_the_store_down_are_refused_503_all_at_once(app) {
        // The gate asks the store once for a burst of durin tokens; with the store down that one
        // question fails, and every request of the burst is refused as unavailable (fail closed),
        // the ones that waited for it too — none gets 500, none is let through.
        app.db.close().await;
        let requests = (0..16).map(|_| app.get("/api/hello/", Some(ALICE_WEB)));
        let statuses: Vec<u16> = crate::support::join_all(requests).await.into_iter().map(|r| r.0).collect();
        assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    }
);

/// `correct horse`, hashed by Django 5.2.19's default hasher (`make_password`); the comparison with
/// Django for every hasher is tessera-core's tests/it/django_hashes.rs.
const DJANGO_PBKDF2: &str = "pbkdf2_sha256$1000000$OgsXzW3YwJhv9oLBApGmzg$ScFV5FNuqE60YTuzuXfql3mtd4vkYfnfVgFo6u//R+I=";

both_backends!(
    async fn a_django_password_logs_in_and_is_rehashed_to_argon2id(app) {
        let alice = app.user("alice").await;
        app.client("web", "1d").await;
        app.tessera.store().set_password_hash(alice.id, DJANGO_PBKDF2).await.expect("imported hash");
        let wrong = app.login_with(json!({"username": "alice", "password": PASSWORD, "client": "web"})).await;
        assert_eq!(wrong.status, 400, "the Tessera test password is not this user's");
        let stored = |app: &crate::support::TestApp| {
            let store = app.tessera.store().clone();
            async move { store.user_by_id(alice.id).await.expect("read").expect("alice").password_hash }
        };
        assert_eq!(stored(&app).await, DJANGO_PBKDF2, "a wrong password changes nothing");
        let right = app.login_with(json!({"username": "alice", "password": "correct horse", "client": "web"})).await;
        assert_eq!(right.status, 200, "{}", right.text);
        let rehashed = stored(&app).await;
        assert!(rehashed.starts_with("$argon2id$"), "{rehashed}");
        assert!(tessera_core::password::verify_password(&rehashed, "correct horse"));
        let again = app.login_with(json!({"username": "alice", "password": "correct horse", "client": "web"})).await;
        assert_eq!(again.status, 200);
        // A user who must reset their password (an MD5 hash was refused at the import) cannot log in.
        let reset = tessera_core::password::django::must_reset_marker("md5");
        app.tessera.store().set_password_hash(alice.id, &reset).await.expect("marker");
        let refused = app.login_with(json!({"username": "alice", "password": "", "client": "web"})).await;
        assert_eq!(refused.status, 400);
        let refused = app.login_with(json!({"username": "alice", "password": "correct horse", "client": "web"})).await;
        assert_eq!(refused.status, 400);
    }
);
