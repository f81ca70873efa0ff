//! tessera-sql's integration tests: one binary (links once), with the shared store suite run against
//! a fresh SQLite file and a fresh PostgreSQL database per case, and the SQL-specific tests.

mod backends {
    pub use tessera_sql::testing::*;
}
mod dump;
mod invalidations;
mod sql;
use tessera_sql::testing::suite;

/// Runs each named case of [`suite`] on both backends, each on a fresh database.
macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite_suite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let db = crate::backends::sqlite().await;
                    crate::suite::$case(std::sync::Arc::new(db.store.clone())).await;
                    db.close().await;
                }
            )*
        }
        mod postgres_suite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(db) = crate::backends::postgres().await else { return };
                    crate::suite::$case(std::sync::Arc::new(db.store.clone())).await;
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
