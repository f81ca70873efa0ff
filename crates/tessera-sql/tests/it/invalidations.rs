//! The invalidation log: triggers record, in the same transaction, every change that makes a cached
//! authentication stale — and nothing that does not.

use crate::backends;
use crate::suite::{at, new_client, new_token, new_user};
use chrono::TimeDelta;
use tessera_core::store::{ClientUpdate, Invalidation, Store, TokenFilter};

/// The changes logged after `from`.
async fn changes(store: &dyn Store, from: i64) -> Vec<Invalidation> {
    store.invalidations_after(from).await.expect("log").into_iter().map(|(_, c)| c).collect()
}

async fn logs_what_makes_caches_stale(store: &dyn Store) {
    let alice = store.create_user(new_user("alice")).await.expect("user");
    let web = store.create_client(new_client("web")).await.expect("client");
    let cli = store.create_client(new_client("cli")).await.expect("client");
    let a = store.create_token(new_token(&alice, &web, at(0), Some(at(3_600)))).await.expect("token");
    let b = store.create_token(new_token(&alice, &cli, at(0), Some(at(3_600)))).await.expect("token");
    let start = store.latest_invalidation().await.expect("latest");
    assert_eq!(changes(store, start).await, vec![], "creating things logs nothing");

    // Extending an expiry, recording a use, renaming nothing: nothing to log.
    assert!(store.extend_expiry(a.id, Some(at(7_200)), at(1)).await.expect("extend"));
    store.record_last_used(&[(a.id, at(2))]).await.expect("touch");
    store.set_password_hash(alice.id, "$argon2id$other").await.expect("password");
    assert_eq!(changes(store, start).await, vec![]);

    // Bringing an expiry forward, deleting a token, deactivating a user, changing a client.
    assert!(store.set_expiry(a.id, Some(at(10))).await.expect("expire"));
    assert!(store.delete_token(b.id).await.expect("delete"));
    store.set_active(alice.id, false).await.expect("deactivate");
    store
        .update_client(web.id, ClientUpdate { description: Some("x".into()), ..ClientUpdate::default() })
        .await
        .expect("update");
    assert_eq!(
        changes(store, start).await,
        vec![
            Invalidation::Token(a.digest),
            Invalidation::Token(b.digest),
            Invalidation::User(alice.id),
            Invalidation::Client(web.id),
        ]
    );

    // Cascades log every token they take along.
    let mid = store.latest_invalidation().await.expect("latest");
    store.delete_client(web.id).await.expect("delete client");
    assert_eq!(changes(store, mid).await, vec![Invalidation::Token(a.digest), Invalidation::Client(web.id)]);
    let c = store.create_token(new_token(&alice, &cli, at(0), None)).await.expect("token");
    let mid = store.latest_invalidation().await.expect("latest");
    store
        .delete_tokens(TokenFilter { user: Some(alice.id), client: None, key: None, legacy: false })
        .await
        .expect("logout all");
    assert_eq!(changes(store, mid).await, vec![Invalidation::Token(c.digest)]);
    let mid = store.latest_invalidation().await.expect("latest");
    store.delete_user(alice.id).await.expect("delete user");
    assert_eq!(changes(store, mid).await, vec![Invalidation::User(alice.id)]);

    // Pruning removes entries written before a time, and nothing newer — except the newest entry,
    // which stays however old: the log's end never moves back but by a restore, which is how a
    // follower tells one apart.
    let end = store.latest_invalidation().await.expect("latest");
    assert_eq!(store.prune_invalidations(chrono::Utc::now() - TimeDelta::hours(1)).await.expect("prune"), 0);
    assert!(store.prune_invalidations(chrono::Utc::now() + TimeDelta::seconds(5)).await.expect("prune") >= 6);
    assert_eq!(changes(store, 0).await, vec![Invalidation::User(alice.id)]);
    assert_eq!(store.latest_invalidation().await.expect("latest"), end);
    assert_eq!(store.prune_invalidations(chrono::Utc::now() + TimeDelta::seconds(5)).await.expect("again"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_what_makes_caches_stale_on_sqlite() {
    let db = backends::sqlite().await;
    logs_what_makes_caches_stale(&db.store).await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_what_makes_caches_stale_on_postgres() {
    let Some(db) = backends::postgres().await else { return };
    logs_what_makes_caches_stale(&db.store).await;
    db.close().await;
}
