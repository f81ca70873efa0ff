//! On the Redis token path one authentication makes at most two round trips: one to Redis for the
//! token, one to SQL for its user and client together. The real stores (SQLite, the test Redis) are
//! wrapped in counters, and the counters are read around `SplitStore::token_with_owner`.

use crate::support::suite_token_config;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera_core::forward_store;
use tessera_core::split::SplitStore;
use tessera_core::store::{ClientStore, Store, TokenStore, TokenWithOwner, UserStore};
use tessera_core::{TokenDigest, Username};
use tessera_redis::RedisTokenStore;
use tessera_sql::SqlStore;
use tessera_sql::testing::suite::{at, new_client, new_token, new_user};

/// A real store, counting every call that reaches it.
#[derive(Debug)]
struct Counted<S> {
    inner: S,
    calls: Arc<AtomicUsize>,
}

impl<S> Counted<S> {
    fn counted(&self) -> &S {
        self.calls.fetch_add(1, Ordering::SeqCst);
        &self.inner
    }
}

forward_store! {
    impl UserStore for Counted<SqlStore> {
        forward via counted(): create_user, user_by_id, user_by_username, list_users, search_users, set_password_hash, upgrade_password_hash, set_active,
            set_staff, delete_user;
    }
}
forward_store! {
    impl ClientStore for Counted<SqlStore> {
        forward via counted(): create_client, client_by_id, client_by_name, list_clients, update_client, delete_client;
    }
}
forward_store! {
    impl TokenStore for Counted<SqlStore> {
        forward via counted(): ping, create_token, get_or_create_token, token_by_id, token_by_digest, token_for,
            list_tokens, count_tokens, delete_token, delete_tokens, extend_expiry, set_expiry, record_last_used,
            purge_expired, create_device_token, keep_one_token_per_pair;
    }
}
forward_store! {
    impl Store for Counted<SqlStore> {
        forward via counted(): latest_invalidation, invalidations_after, prune_invalidations, token_with_owner,
            user_and_client, search_tokens;
    }
}
forward_store! {
    impl TokenStore for Counted<RedisTokenStore> {
        forward via counted(): ping, create_token, get_or_create_token, token_by_id, token_by_digest, token_for,
            list_tokens, count_tokens, delete_token, delete_tokens, extend_expiry, set_expiry, record_last_used,
            purge_expired, create_device_token, keep_one_token_per_pair;
    }
}

/// Calls reaching (SQL, Redis) since the last `take`.
struct Counters {
    sql: Arc<AtomicUsize>,
    redis: Arc<AtomicUsize>,
}

impl Counters {
    fn take(&self) -> (usize, usize) {
        (self.sql.swap(0, Ordering::SeqCst), self.redis.swap(0, Ordering::SeqCst))
    }
}

fn counted_split(sql: &SqlStore, redis: &tessera_redis::testing::TestRedis) -> (SplitStore, Counters) {
    let counters = Counters { sql: Arc::default(), redis: Arc::default() };
    let directory = Counted { inner: sql.clone(), calls: counters.sql.clone() };
    let tokens = Counted {
        inner: RedisTokenStore::new(redis.conn.clone(), suite_token_config()),
        calls: counters.redis.clone(),
    };
    (SplitStore::new(Arc::new(directory), Arc::new(tokens)), counters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_authentication_makes_at_most_two_round_trips() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let db = tessera_sql::testing::sqlite().await;
    let (store, counters) = counted_split(&db.store, &redis);

    let alice = store.create_user(new_user("alice")).await.unwrap();
    let web = store.create_client(new_client("web")).await.unwrap();
    // The counters count: each of those was one call to SQL and none to Redis.
    assert_eq!(counters.take(), (2, 0));

    // Issuing checks that both owners exist in one SQL read, then writes to Redis once.
    let token = store.create_token(new_token(&alice, &web, at(0), None)).await.unwrap();
    assert_eq!(counters.take(), (1, 1), "(SQL, Redis) calls to issue a token");

    let found = store.token_with_owner(&token.digest).await.unwrap();
    let (sql, redis_calls) = counters.take();
    assert_eq!(found, Some(TokenWithOwner { token: token.clone(), user: alice.clone(), client: web.clone() }));
    assert!(sql + redis_calls <= 2, "{sql} SQL + {redis_calls} Redis calls for one authentication");
    assert_eq!((sql, redis_calls), (1, 1), "(SQL, Redis) calls for one authentication");

    // An unknown token costs the Redis read only.
    assert_eq!(store.token_with_owner(&TokenDigest([9; 32])).await.unwrap(), None);
    assert_eq!(counters.take(), (0, 1), "(SQL, Redis) calls for an unknown token");

    // The readiness probe asks each backend once, with a real PING on Redis.
    store.ping().await.unwrap();
    assert_eq!(counters.take(), (1, 1), "(SQL, Redis) calls for ping");

    // Lookups by name take parsed names.
    let by_name = store.user_by_username(&"alice".parse::<Username>().unwrap()).await.unwrap();
    assert_eq!(by_name, Some(alice));
    assert_eq!(counters.take(), (1, 0));

    db.close().await;
}
