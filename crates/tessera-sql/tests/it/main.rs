//! tessera-sql's integration tests: one binary (links once), with the shared store suite run against
//! a fresh SQLite file and a fresh PostgreSQL database per case, and the SQL-specific tests.

mod backends {
    pub use tessera_sql::testing::*;
}
/// Runs `$body` on a fresh migrated database of each backend, as `mod $name { sqlite, postgres }`:
/// with `$db` (a [`backends::TestDb`]) bound, and `$store` (its store) when named.
macro_rules! on_both {
    ($name:ident, |$db:ident| $body:expr) => {
        on_both!(@cases $name, $db, _store, $body);
    };
    ($name:ident, |$db:ident, $store:ident| $body:expr) => {
        on_both!(@cases $name, $db, $store, $body);
    };
    (@cases $name:ident, $db:ident, $store:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $db = crate::backends::sqlite().await;
                #[allow(unused_variables)]
                let $store = $db.store.clone();
                $body;
                $db.close().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($db) = crate::backends::postgres().await else { return };
                #[allow(unused_variables)]
                let $store = $db.store.clone();
                $body;
                $db.close().await;
            }
        }
    };
}

mod audit;
mod dump;
mod invalidations;
mod listen;
mod search;
mod sql;
mod usage;
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

tessera_sql::for_each_suite_case!(store_suite);
