//! The cached authenticator (`/api/hello-cached/`): it keeps verified lookups, forgets them at once
//! when this instance changes a token, and within a second when anything else does (another
//! instance, the CLI, SQL): changes reach it through the store's invalidation log.

use crate::both_backends;
use crate::support::*;
use chrono::TimeDelta;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use tessera_core::store::{ClientStore, TokenStore, UserStore};

/// How long a change made elsewhere may take to be honoured (the spec: 1 s), plus polling slack.
const ELSEWHERE: Duration = Duration::from_millis(1_500);

/// Polls the cached route with `token` until it answers 401 with `detail`; fails after [`ELSEWHERE`].
async fn refused_soon(app: &TestApp, base: &str, token: &str, detail: &str) {
    let start = std::time::Instant::now();
    loop {
        let req = app.http.get(format!("{base}/api/hello-cached/")).header("Authorization", format!("Token {token}"));
        let reply = app.send(req).await;
        if reply.status != 200 {
            reply.assert_401(detail, "Token");
            return;
        }
        assert!(start.elapsed() <= ELSEWHERE, "still accepted after {ELSEWHERE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Uses `token` on the cached route (so it is cached) and hands it back.
async fn cached(app: &TestApp, token: String) -> String {
    assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
    token
}

both_backends!(
    async fn verified_lookups_are_kept_and_failures_are_not(app) {
        let alice = app.user("alice").await;
        let (web, cli) = (app.client("web", "1d").await, app.client("cli", "1d").await);
        let (a, b) = (app.mint(&alice, &web).await, app.mint(&alice, &cli).await);
        assert_eq!(app.tessera.cached_entries(), 0);
        assert_eq!(app.get("/api/hello/", Some(&a)).await.0, 200);
        assert_eq!(app.tessera.cached_entries(), 0, "the uncached layer keeps nothing");
        for _ in 0..3 {
            assert_eq!(app.get("/api/hello-cached/", Some(&a)).await, (200, json!({"hello": "alice"})));
        }
        assert_eq!(app.tessera.cached_entries(), 1);
        assert_eq!(app.get("/api/hello-cached/", Some(&b)).await.0, 200);
        assert_eq!(app.tessera.cached_entries(), 2);
        let unknown = app.tessera.codec().issue().token.expose().to_string();
        assert_eq!(app.get("/api/hello-cached/", Some(&unknown)).await.0, 401);
        assert_eq!(app.tessera.cached_entries(), 2, "refusals are not cached");
        app.tessera.clear_cache();
        assert_eq!(app.tessera.cached_entries(), 0);
        assert_eq!(app.get("/api/hello-cached/", Some(&a)).await.0, 200);
    }
);

both_backends!(
    async fn changes_through_this_instance_apply_at_once(app) {
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        let (web, cli, ios) = (app.client("web", "1h").await, app.client("cli", "1d").await, app.client("ios", "1d").await);
        let alice_web = cached(&app, app.mint(&alice, &web).await).await;
        let alice_cli = cached(&app, app.mint(&alice, &cli).await).await;
        let alice_ios = cached(&app, app.mint(&alice, &ios).await).await;
        let bob_web = cached(&app, app.mint(&bob, &web).await).await;
        let bob_cli = cached(&app, app.mint(&bob, &cli).await).await;
        let invalid = (401, json!({"detail": "Invalid token."}));

        // No polling below: this instance made each change, so the very next request sees it.
        assert_eq!(app.post("/api/auth/logout/", Some(&alice_web)).await.0, 204);
        assert_eq!(app.get("/api/hello-cached/", Some(&alice_web)).await, invalid);

        let id = app.token_for(&alice, &ios).await.expect("ios").id.0;
        assert_eq!(app.delete(&format!("/api/auth/sessions/{id}"), Some(&alice_cli)).await.0, 204);
        assert_eq!(app.get("/api/hello-cached/", Some(&alice_ios)).await, invalid);

        assert_eq!(app.post("/api/auth/logoutall/", Some(&bob_cli)).await.0, 204);
        assert_eq!(app.get("/api/hello-cached/", Some(&bob_web)).await, invalid);
        assert_eq!(app.get("/api/hello-cached/", Some(&bob_cli)).await, invalid);
        assert_eq!(app.get("/api/hello-cached/", Some(&alice_cli)).await.0, 200, "alice untouched");

        // A refresh is seen at once too: alive past the old expiry (1 h), dead past the new one.
        let token = cached(&app, app.mint(&bob, &web).await).await;
        app.advance(TimeDelta::minutes(50));
        assert_eq!(app.post("/api/auth/refresh/", Some(&token)).await.0, 200);
        app.advance(TimeDelta::minutes(20));
        assert_eq!(app.get("/api/hello-cached/", Some(&token)).await, (200, json!({"hello": "bob"})));
        app.advance(TimeDelta::minutes(41));
        let reply = app.send(app.req(Method::GET, "/api/hello-cached/", Some(&token))).await;
        reply.assert_401("The given token has expired.", "Token");
    }
);

both_backends!(
    async fn expiry_is_judged_on_every_request_even_from_the_cache(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "10m").await).await;
        assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
        app.advance(TimeDelta::minutes(10));
        let reply = app.send(app.req(Method::GET, "/api/hello-cached/", Some(&token))).await;
        reply.assert_401("The given token has expired.", "Token");
        let reply = app.send(app.req(Method::GET, "/api/hello-cached/", Some(&token))).await;
        reply.assert_401("Invalid token.", "Token");
    }
);

both_backends!(
    async fn changes_through_another_instance_apply_within_a_second(app) {
        let other = app.second_instance().await;
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let (web, cli, ios) = (app.client("web", "1d").await, app.client("cli", "1d").await, app.client("ios", "1d").await);
        let alice_web = app.mint(&alice, &web).await;
        let alice_cli = app.mint(&alice, &cli).await;
        let alice_ios = app.mint(&alice, &ios).await;
        let (bob_web, bob_cli) = (app.mint(&bob, &web).await, app.mint(&bob, &cli).await);
        for token in [&alice_web, &alice_cli, &alice_ios, &bob_web, &bob_cli] {
            assert_eq!(app.get("/api/hello-cached/", Some(token)).await.0, 200);
        }
        assert_eq!(app.tessera.cached_entries(), 5);
        let on_other = |method: Method, path: &str, token: &str| {
            app.send(app.http.request(method, format!("{}{path}", other.base)).header("Authorization", format!("Token {token}")))
        };

        assert_eq!(on_other(Method::POST, "/api/auth/logout/", &alice_web).await.status, 204);
        refused_soon(&app, &app.base, &alice_web, "Invalid token.").await;

        let id = app.token_for(&alice, &ios).await.expect("ios").id.0;
        assert_eq!(on_other(Method::DELETE, &format!("/api/auth/sessions/{id}"), &alice_cli).await.status, 204);
        refused_soon(&app, &app.base, &alice_ios, "Invalid token.").await;

        assert_eq!(on_other(Method::POST, "/api/auth/logoutall/", &bob_web).await.status, 204);
        refused_soon(&app, &app.base, &bob_cli, "Invalid token.").await;
        refused_soon(&app, &app.base, &bob_web, "Invalid token.").await;

        // The first instance's own changes reach the other one too.
        assert_eq!(on_other(Method::GET, "/api/hello-cached/", &alice_cli).await.status, 200);
        assert_eq!(other.tessera.cached_entries(), 1);
        assert_eq!(app.post("/api/auth/logout/", Some(&alice_cli)).await.0, 204);
        refused_soon(&app, &other.base, &alice_cli, "Invalid token.").await;
    }
);

both_backends!(
    async fn changes_written_to_the_store_directly_apply_within_a_second(app) {
        let (alice, bob, carol) = (app.user("alice").await, app.user("bob").await, app.user("carol").await);
        let (web, cli) = (app.client("web", "1d").await, app.client("cli", "1d").await);
        let deleted = app.mint(&alice, &web).await;
        let deactivated = app.mint(&bob, &web).await;
        let shortened = app.mint(&carol, &web).await;
        let client_gone = app.mint(&alice, &cli).await;
        for token in [&deleted, &deactivated, &shortened, &client_gone] {
            assert_eq!(app.get("/api/hello-cached/", Some(token)).await.0, 200);
        }
        assert_eq!(app.tessera.cached_entries(), 4);

        // What the CLI or an admin with a SQL shell would do: nothing tells this instance but the log.
        let id = app.token_for(&alice, &web).await.expect("token").id;
        assert!(app.store().delete_token(id).await.expect("delete"));
        refused_soon(&app, &app.base, &deleted, "Invalid token.").await;

        app.store().set_active(bob.id, false).await.expect("deactivate");
        refused_soon(&app, &app.base, &deactivated, "User inactive or deleted.").await;

        let id = app.token_for(&carol, &web).await.expect("token").id;
        assert!(app.store().set_expiry(id, Some(app.now())).await.expect("expire"));
        refused_soon(&app, &app.base, &shortened, "The given token has expired.").await;
        assert_eq!(app.get("/api/hello-cached/", Some(&shortened)).await, (401, json!({"detail": "Invalid token."})));

        app.store().delete_client(cli.id).await.expect("delete client");
        refused_soon(&app, &app.base, &client_gone, "Invalid token.").await;
    }
);

/// An admin's "expire now" on a sliding-expiry token, made elsewhere (the CLI's process, another
/// instance) after this instance buffered an extension: refused within a second on the cached
/// route, at once on the uncached one, and for good — across a flush and later uses.
async fn admin_expiry_sticks_on_a_sliding_token(app: TestApp) {
    let alice = app.user("alice").await;
    let web = app.client_with("web", "1h", |c| c.sliding_expiry = true).await;
    let token = app.mint(&alice, &web).await;
    // A use well before the expiry: the extension (to now + 1 h) is buffered, not written.
    app.advance(TimeDelta::minutes(10));
    assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200);
    let token = cached(&app, token).await;
    assert_eq!(app.get("/api/auth/sessions/", Some(&token)).await.0, 200);

    let stored = app.token_for(&alice, &web).await.expect("the token");
    let elsewhere = app.elsewhere().await;
    assert!(elsewhere.set_expiry(stored.id, Some(app.now())).await.expect("expire"), "expired elsewhere");

    refused_soon(&app, &app.base, &token, "The given token has expired.").await;
    for path in ["/api/hello/", "/api/hello-cached/", "/api/auth/sessions/"] {
        assert_eq!(app.get(path, Some(&token)).await, (401, json!({"detail": "Invalid token."})), "{path}");
    }
    // A flush writes what is buffered: nothing may bring the token back.
    app.tessera.shutdown().await;
    app.advance(TimeDelta::minutes(1));
    for path in ["/api/hello/", "/api/hello-cached/", "/api/auth/sessions/"] {
        assert_eq!(app.get(path, Some(&token)).await.0, 401, "{path} after a flush");
    }
    assert_eq!(app.token_for(&alice, &web).await, None, "deleted on its first refused use");
}

/// The same on the uncached route first: the store read shows the admin's expiry, and the
/// buffered extension is not applied over it.
async fn admin_expiry_sticks_uncached(app: TestApp) {
    let alice = app.user("alice").await;
    let web = app.client_with("web", "1h", |c| c.sliding_expiry = true).await;
    let token = app.mint(&alice, &web).await;
    app.advance(TimeDelta::minutes(10));
    assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200);
    let stored = app.token_for(&alice, &web).await.expect("the token");
    app.elsewhere().await.set_expiry(stored.id, Some(app.now())).await.expect("expire");
    app.advance(TimeDelta::seconds(1));
    let reply = app.send(app.req(Method::GET, "/api/hello/", Some(&token))).await;
    reply.assert_401("The given token has expired.", "Token");
    app.tessera.shutdown().await;
    assert_eq!(app.get("/api/auth/sessions/", Some(&token)).await, (401, json!({"detail": "Invalid token."})));
}

both_backends!(
    async fn an_admin_expiry_sticks_on_a_sliding_token(app) {
        admin_expiry_sticks_on_a_sliding_token(app).await;
    }
);

both_backends!(
    async fn an_admin_expiry_sticks_on_a_sliding_token_uncached(app) {
        admin_expiry_sticks_uncached(app).await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_expiry_sticks_on_a_sliding_token_in_redis() {
    let Some(app) = TestApp::start(Backend::SqliteWithRedisTokens, Options::default()).await else { return };
    admin_expiry_sticks_on_a_sliding_token(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_expiry_sticks_on_a_sliding_token_in_redis_uncached() {
    let Some(app) = TestApp::start(Backend::SqliteWithRedisTokens, Options::default()).await else { return };
    admin_expiry_sticks_uncached(app).await;
}

/// The `P tok:<hex digest>` key of `token` in the app's Redis.
async fn token_key(app: &TestApp, token: &str) -> String {
    let digest = app.tessera.codec().parse(token).expect("a well-formed token");
    let hex: String = digest.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("{}tok:{hex}", app.redis.as_ref().expect("Redis").config.key_prefix)
}

/// An operator deletes a token's key in Redis by hand (DEL, UNLINK): no instance revoked it, yet
/// with keyspace notifications on, the cached instance refuses the token within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_keys_deleted_from_redis_by_hand_are_refused_within_a_second() {
    let options = Options { follow_token_keys: true, ..Options::default() };
    let Some(app) = TestApp::start(Backend::SqliteWithRedisTokens, options).await else { return };
    let redis = app.redis.as_ref().expect("Redis");
    let _events = redis.set_server_config("notify-keyspace-events", "Egxe").await;
    // The subscription was made before the setting changed; Redis publishes to it from now on.
    let alice = app.user("alice").await;
    let (web, cli) = (app.client("web", "1d").await, app.client("cli", "1d").await);
    let mut raw = redis.raw().await;
    for (client, command) in [(&web, "DEL"), (&cli, "UNLINK")] {
        let token = cached(&app, app.mint(&alice, client).await).await;
        let key = token_key(&app, &token).await;
        let deleted: i64 = redis::cmd(command).arg(&key).query_async(&mut raw).await.expect(command);
        assert_eq!(deleted, 1, "{key} existed");
        refused_soon(&app, &app.base, &token, "Invalid token.").await;
    }
}
