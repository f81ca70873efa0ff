//! tessera-redis's integration tests: one binary (links once). The shared store suite runs on
//! SplitStore(SQLite + Redis) and SplitStore(PostgreSQL + Redis), each case on a fresh database and
//! a fresh Redis key prefix; the other modules test what only Redis does.
#![allow(clippy::unwrap_used)]

mod at_rest;
mod bus;
mod expiry;
mod fallback;
mod limiter;
mod support;
mod unavailable;

use tessera_sql::testing::suite;

/// Runs each named case of [`suite`] on both SQL backends with tokens in Redis.
macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite_redis_suite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(redis) = tessera_redis::testing::redis().await else { return };
                    let db = tessera_sql::testing::sqlite().await;
                    crate::suite::$case(crate::support::split(&db.store, &redis)).await;
                    db.close().await;
                }
            )*
        }
        mod postgres_redis_suite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(redis) = tessera_redis::testing::redis().await else { return };
                    let Some(db) = tessera_sql::testing::postgres().await else { return };
                    crate::suite::$case(crate::support::split(&db.store, &redis)).await;
                    db.close().await;
                }
            )*
        }
    };
}

store_suite! {
    ping,
    users_crud,
    users_are_listed_by_username,
    user_conflicts_and_missing_users,
    clients_crud,
    client_conflicts_and_missing_clients,
    client_updates,
    tokens_crud,
    token_conflicts_and_missing_owners,
    get_or_create_returns_the_pairs_token,
    get_or_create_is_atomic_under_concurrency,
    deleting_a_client_deletes_its_tokens_only,
    deleting_a_user_deletes_their_tokens,
    deactivating_a_user_keeps_their_tokens,
    token_with_owner_joins_user_and_client,
    listing_and_bulk_deleting_tokens,
    purge_expired_removes_only_expired_tokens,
    set_expiry_changes_and_clears_expiry,
    record_last_used_in_batches,
}
