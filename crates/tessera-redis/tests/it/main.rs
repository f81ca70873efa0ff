//! tessera-redis's integration tests: one binary (links once). The shared store suite runs on
//! SplitStore(SQLite + Redis) and SplitStore(PostgreSQL + Redis), each case on a fresh database and
//! a fresh Redis key prefix; the other modules test what only Redis does.
#![allow(clippy::unwrap_used)]

mod at_rest;
mod bus;
mod expiry;
mod fallback;
mod limiter;
mod round_trips;
mod server_config;
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

tessera_sql::for_each_suite_case!(store_suite);
