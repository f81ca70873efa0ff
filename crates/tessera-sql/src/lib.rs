//! Tessera's [`Store`](tessera_core::store::Store) on SQLite and PostgreSQL, with sqlx.
//!
//! [`SqlStore::connect`] takes a URL — `sqlite://PATH` (the file is created if missing) or
//! `postgres://USER@HOST/DB` — and [`SqlStore::migrate`] brings the schema up to date. Both backends
//! run the same SQL text (sqlx's SQLite driver understands `$1` placeholders) and store the same
//! representation: timestamps as BIGINT microseconds since the Unix epoch (UTC), lifetimes as BIGINT
//! seconds (`NULL` = never), rates as text, digests and seeds as 32-byte blobs. No table ever holds a
//! usable token: only the keyed digest and the seed the server key re-derives it from.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `sqlite` (default) | `sqlite://` URLs: sqlx's SQLite driver and rusqlite, with SQLite compiled in (no system library) |
//! | `postgres` (default) | `postgres://` URLs: sqlx's PostgreSQL driver, and [`PgListenBus`] (invalidations by `LISTEN`/`NOTIFY`) |
//! | `testing` | the `testing` module: fresh databases for tests, on the backends that are on |
//!
//! A URL for a backend that is not compiled in fails with [`ConnectError::NotCompiledIn`] ("this
//! build has no PostgreSQL support: enable the `postgres` feature …"); a build with neither backend
//! is refused at compile time. tessera-axum turns the defaults off and passes its own `sqlite` /
//! `postgres` features on, so an SQLite-only service compiles no PostgreSQL client.
//!
//! # How SQLite writes avoid "database is locked"
//!
//! SQLite allows one writer at a time per database file. Tessera runs it in WAL mode, so readers
//! never block the writer nor each other, and it keeps two pools:
//!
//! * a **read pool** of several connections for every query that only reads, and
//! * a **write pool of exactly one connection** for every statement that writes.
//!
//! Funnelling all writes of a process through one connection turns contention between this process's
//! requests into a queue in the pool (bounded by an acquire timeout) instead of SQLite lock errors.
//! Other processes — the admin CLI writing while the server runs — are handled by SQLite's busy
//! handler (`busy_timeout`): the writer waits for the lock instead of failing at once.
//!
//! The busy handler has one blind spot: a transaction that starts reading (`BEGIN DEFERRED`) and later
//! writes must *upgrade* its lock, and if another connection committed in between SQLite returns
//! `SQLITE_BUSY` immediately, because waiting could deadlock. So every multi-statement write
//! transaction starts with `BEGIN IMMEDIATE`, which takes the write lock up front — where the busy
//! handler applies. Single-statement writes take the write lock as their first step and are safe
//! as they are.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_core::store::UserStore;
//! use tessera_sql::SqlStore;
//!
//! let store = SqlStore::connect("sqlite://tessera.db").await?;
//! store.migrate().await?;
//! let users = store.list_users().await?;
//! println!("{} users on {}", users.len(), store.backend());
//! store.close().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(unused))]

// A build without a backend is a mistake in a Cargo.toml: say so at compile time, once. (The modules
// that query a store are left out of such a build, so that this is its only error.)
#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!(
    "tessera-sql has no backend: enable its `sqlite` feature, its `postgres` feature, or both \
     (through tessera-axum: the features of the same names)"
);

#[cfg(feature = "postgres")]
use sqlx::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;
use std::fmt;

/// Runs `$body` with `$pool` bound to the pool that serves reads on this store's backend.
/// The body is expanded once per backend, so it is type-checked against each driver.
macro_rules! with_reader {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pools {
            #[cfg(feature = "sqlite")]
            $crate::Pools::Sqlite { reader, .. } => {
                let $pool = reader;
                $body
            }
            #[cfg(feature = "postgres")]
            $crate::Pools::Postgres(pg) => {
                let $pool = pg;
                $body
            }
        }
    };
}

/// Runs `$body` with `$pool` bound to the pool that serves writes (SQLite's single writer).
macro_rules! with_writer {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pools {
            #[cfg(feature = "sqlite")]
            $crate::Pools::Sqlite { writer, .. } => {
                let $pool = writer;
                $body
            }
            #[cfg(feature = "postgres")]
            $crate::Pools::Postgres(pg) => {
                let $pool = pg;
                $body
            }
        }
    };
}

/// Evaluates the async `$body` (a `Result<T, StoreError>`) with `$id` bound to a fresh random id
/// ([`tessera_core::model::fresh_id`]), drawing again while the id is taken. A collision has a
/// chance of rows / 2^53 per draw, so four taken draws in a row mean something else is wrong: the
/// last error ([`StoreError::Unavailable`](tessera_core::StoreError)) is returned.
macro_rules! with_fresh_id {
    (|$id:ident| $body:expr) => {{
        let mut draws = 1;
        loop {
            let $id = tessera_core::model::fresh_id();
            match $body {
                Err(e) if $crate::error::id_taken(&e) && draws < 4 => draws += 1,
                other => break other,
            }
        }
    }};
}

/// Runs the async `$body` (which evaluates to `Result<T, StoreError>`) in a write transaction with
/// `$conn` bound to its connection (`&mut *$conn` is an executor). Commits on `Ok`, rolls back on
/// `Err`. On SQLite the transaction begins with `BEGIN IMMEDIATE` on the single writer connection.
macro_rules! in_write_transaction {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.pools {
            #[cfg(feature = "sqlite")]
            $crate::Pools::Sqlite { writer, .. } => {
                let mut $conn = writer.begin_with("BEGIN IMMEDIATE").await.map_err($crate::error::from_sqlx)?;
                let result: Result<_, tessera_core::StoreError> = $body;
                $crate::error::finish($conn, result).await
            }
            #[cfg(feature = "postgres")]
            $crate::Pools::Postgres(pg) => {
                let mut $conn = pg.begin().await.map_err($crate::error::from_sqlx)?;
                let result: Result<_, tessera_core::StoreError> = $body;
                $crate::error::finish($conn, result).await
            }
        }
    };
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod audit;
#[cfg(feature = "postgres")]
mod bus;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod clients;
mod connect;
mod error;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod import;
#[cfg(feature = "sqlite")]
mod lookup;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod migrate;
mod rows;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod search;
#[cfg(all(feature = "testing", any(feature = "sqlite", feature = "postgres")))]
pub mod testing;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod tokens;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod usage;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod users;

#[cfg(feature = "postgres")]
pub use bus::{INVALIDATION_CHANNEL, PgListenBus};
pub use connect::{ConnectConfig, ConnectError};
/// Re-exported from [`tessera_core::net`], where the one set of masking rules lives.
pub use tessera_core::net::redact_url;

/// A [`Store`](tessera_core::store::Store) on SQLite or PostgreSQL. Cheap to clone: clones share
/// the connection pools.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pools: Pools,
}

/// The connection pools of one backend.
#[derive(Clone, Debug)]
enum Pools {
    /// Reads on `reader` (several connections); every write on `writer` (exactly one connection).
    #[cfg(feature = "sqlite")]
    Sqlite {
        reader: SqlitePool,
        writer: SqlitePool,
        /// The authentication lookup, on the calling thread (see `lookup`).
        lookup: std::sync::Arc<lookup::FastLookup>,
    },
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
}

/// Which database a [`SqlStore`] runs on, or a URL asks for.
///
/// Both variants exist whatever the features: a backend that is not compiled in is still named
/// (in [`ConnectError::NotCompiledIn`]), and matching on `Backend` does not break when another crate
/// in the build turns on the other backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Lower case, as in URLs and feature names: `sqlite`, `postgres`.
impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

impl Backend {
    /// The backend's name for people: "SQLite", "PostgreSQL".
    pub fn display_name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl SqlStore {
    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        match self.pools {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite { .. } => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes the pools, waiting for connections in use to be returned. Further calls fail with
    /// [`StoreError::Unavailable`](tessera_core::StoreError::Unavailable).
    pub async fn close(&self) {
        match &self.pools {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite { reader, writer, lookup } => {
                lookup.close();
                reader.close().await;
                // Closed last: the last connection to close checkpoints the WAL into the file.
                writer.close().await;
            }
            #[cfg(feature = "postgres")]
            Pools::Postgres(pg) => pg.close().await,
        }
    }
}
