//! No token's operations reach another token (issue 16, point 1), on every store.
//!
//! The scenario a review reproduced on the Redis token store: alice's token is authenticated and
//! cached; then the store's id counter is wound back (the prefix's keys deleted, a restore, a
//! failover to a lagging replica, a SQL restore that rewinds a sequence) and bob logs in. With
//! counter ids bob's new token got alice's old id, and everything alice's stale cached principal
//! did by id (logout, refresh, `DELETE sessions/<id>`, the buffered last-used time) landed on bob's
//! token. Ids are now random and never come from a counter, and an instance that sees the SQL
//! invalidation log wound back empties its cache.

use crate::support::*;
use tessera_core::AuthToken;

fn cached_routes() -> Options {
    Options { cached_auth_routes: true, ..Options::default() }
}

/// Winds the store back as a restore would: alice's token disappears without an invalidation
/// anyone follows, and whatever counter numbered tokens (and the invalidation log) starts again
/// where it stood before alice's token was made.
async fn wind_back(app: &TestApp, backend: Backend, alice: &AuthToken) {
    match backend {
        Backend::SqliteWithRedisTokens => {
            // The operator deletes every key of the prefix: tokens, indexes, and any counter.
            app.redis.as_ref().expect("redis").delete_all_keys().await;
        }
        Backend::Sqlite => {
            // The trigger logs the deletion, and the restore takes the log back with it.
            app.db
                .run_sql(&format!(
                    "DELETE FROM auth_tokens WHERE id = {id};
                     DELETE FROM invalidations;
                     UPDATE sqlite_sequence SET seq = {before} WHERE name = 'auth_tokens';
                     UPDATE sqlite_sequence SET seq = 0 WHERE name = 'invalidations';",
                    id = alice.id.0,
                    before = alice.id.0 - 1,
                ))
                .await;
        }
        Backend::Postgres => {
            // `setval(NULL, …)` is NULL: a no-op once ids no longer come from a sequence.
            app.db
                .run_sql(&format!(
                    "DELETE FROM auth_tokens WHERE id = {id};
                     DELETE FROM invalidations;
                     SELECT setval(pg_get_serial_sequence('auth_tokens', 'id'), {id}, false);
                     SELECT setval(pg_get_serial_sequence('invalidations', 'seq'), 1, false);",
                    id = alice.id.0,
                ))
                .await;
        }
    }
}

async fn no_token_touches_another(app: TestApp, backend: Backend) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let web = app.client("web", "1d").await;
    let ios = app.client("ios", "never").await;
    if backend != Backend::SqliteWithRedisTokens {
        // Something in the SQL invalidation log first, so that its position is past the start.
        // (Redis starts alice at the counter's first id, which bob then gets again.)
        let throwaway = app.mint(&bob, &ios).await;
        assert_eq!(app.post("/api/auth/logout/", Some(&throwaway)).await.0, 204);
    }

    let alice_token = app.login("alice", "web").await;
    assert_eq!(app.get("/api/hello-cached/", Some(&alice_token)).await.0, 200);
    assert_eq!(app.get("/api/auth/sessions/", Some(&alice_token)).await.0, 200);
    let alice_row = app.token_for(&alice, &web).await.expect("alice's token");
    // Give the follower a poll to read up to the logout.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    wind_back(&app, backend, &alice_row).await;

    let bob_token = app.login("bob", "ios").await;
    let bob_before = app.token_for(&bob, &ios).await.expect("bob's token");
    assert_ne!(bob_before.id, alice_row.id, "bob's new token was given alice's old id");
    assert_eq!(bob_before.expiry, None, "the ios client's tokens never expire");

    // Everything alice's token can still try, cached or not: each answer is alice's own (her
    // token is gone), and none reaches bob's token.
    app.get("/api/hello-cached/", Some(&alice_token)).await;
    app.post("/api/auth/refresh/", Some(&alice_token)).await;
    app.delete(&format!("/api/auth/sessions/{}", alice_row.id), Some(&alice_token)).await;
    app.post("/api/auth/logout/", Some(&alice_token)).await;
    app.post("/api/auth/logoutall/", Some(&alice_token)).await;
    app.tessera.shutdown().await; // writes the buffered last-used times

    let bob_after = app.token_for(&bob, &ios).await.expect("bob's token survives everything alice's token did");
    assert_eq!(bob_after.id, bob_before.id);
    assert_eq!(bob_after.expiry, None, "alice's refresh gave bob's never-expiring token an expiry");
    assert_eq!(bob_after.last_used, bob_before.last_used, "alice's use was written on bob's token");
    assert_eq!(app.get("/api/hello/", Some(&bob_token)).await.0, 200);
    assert_eq!(app.get("/api/hello-cached/", Some(&bob_token)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_touches_another_after_a_rewind_on_sqlite() {
    let app = TestApp::start(Backend::Sqlite, cached_routes()).await.expect("sqlite");
    no_token_touches_another(app, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_touches_another_after_a_rewind_on_postgres() {
    let Some(app) = TestApp::start(Backend::Postgres, cached_routes()).await else { return };
    no_token_touches_another(app, Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_touches_another_after_a_rewind_in_redis() {
    let Some(app) = TestApp::start(Backend::SqliteWithRedisTokens, cached_routes()).await else { return };
    no_token_touches_another(app, Backend::SqliteWithRedisTokens).await;
}

/// The SQL invalidation log wound back under a running instance: revocations written after the
/// restore are numbered from an old position, and an instance that kept its place would skip them.
/// It notices, empties its cache, and follows the log from its new end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wound_back_invalidation_log_is_followed_from_its_new_end() {
    let app = TestApp::start(Backend::Sqlite, cached_routes()).await.expect("sqlite");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let web = app.client("web", "1d").await;
    // Three invalidations: the log's end is at 3.
    for user in [&alice, &bob, &alice] {
        let token = app.mint(user, &web).await;
        assert_eq!(app.post("/api/auth/logout/", Some(&token)).await.0, 204);
    }
    let token = app.mint(&bob, &web).await;
    assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
    // Long enough for the follower to stop re-reading from the log's start (it re-reads the last
    // 3 s of positions): it now reads only after position 3.
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    // The restore: the log is empty and numbers from 1 again.
    app.db.run_sql("DELETE FROM invalidations; UPDATE sqlite_sequence SET seq = 0 WHERE name = 'invalidations';").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // Cached again, after the follower had its chance to notice.
    assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
    // An operator revokes bob's token by hand: the trigger logs it at position 1.
    app.db.run_sql(&format!("DELETE FROM auth_tokens WHERE user_id = {};", bob.id.0)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let status = app.get("/api/hello-cached/", Some(&token)).await.0;
        if status == 401 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the cached token is still accepted after 2 s: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
