//! Opening a store from a URL, with errors an operator can act on and never a password in them.

use crate::{Backend, Pools, SqlStore};
use sqlx::ConnectOptions;
#[cfg(feature = "postgres")]
use sqlx::Connection;
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;
#[cfg(feature = "postgres")]
use tessera_core::net::UrlSecrets;
use tessera_core::net::redact_url;

/// How [`SqlStore::connect_with`] sizes and times its pools. [`Default`] suits a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectConfig {
    /// How long a query waits for a free connection (and a new connection for its handshake)
    /// before failing with `Unavailable`. Default 5 s.
    pub acquire_timeout: Duration,
    /// How long an SQLite write waits for another process (the CLI) to release the database
    /// lock. Default 10 s. Writes of this process also wait up to this long (plus
    /// `acquire_timeout`) for their turn on the single write connection.
    pub sqlite_busy_timeout: Duration,
    /// Connections in the PostgreSQL pool, or in the SQLite read pool. Default 10.
    pub max_connections: u32,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(10),
            max_connections: 10,
        }
    }
}

/// Why [`SqlStore::connect`] failed. Messages show the URL with any password replaced by `***`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not one Tessera can use.
    #[error("invalid database URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot connect to the {backend} database at '{url}': {reason}")]
    Unreachable {
        /// Which kind of database.
        backend: Backend,
        /// The URL, password redacted.
        url: String,
        /// What the database or the network said.
        reason: String,
    },
    /// The URL names a backend this build of Tessera was compiled without.
    #[error(
        "this build has no {} support: enable the `{backend}` feature (of tessera-axum or tessera-sql) \
         to open '{url}'",
        backend.display_name()
    )]
    NotCompiledIn {
        /// The backend the URL asks for.
        backend: Backend,
        /// The URL, password redacted.
        url: String,
    },
}

const SCHEMES: &str = "use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE";

impl SqlStore {
    /// Opens the database at `url` with the default [`ConnectConfig`]: `sqlite://PATH` (created if
    /// missing) or `postgres://…` / `postgresql://…`. Does not migrate; call [`SqlStore::migrate`].
    ///
    /// A URL for a backend this build was compiled without (see the crate's features) fails with
    /// [`ConnectError::NotCompiledIn`].
    pub async fn connect(url: &str) -> Result<SqlStore, ConnectError> {
        Self::connect_with(url, &ConnectConfig::default()).await
    }

    /// Opens the database at `url` with `config`.
    pub async fn connect_with(url: &str, config: &ConnectConfig) -> Result<SqlStore, ConnectError> {
        let invalid = |reason: String| ConnectError::InvalidUrl { url: redact_url(url), reason };
        let Some((scheme, _)) = url.split_once(':') else {
            return Err(invalid(format!("it has no scheme ({SCHEMES})")));
        };
        match scheme {
            "sqlite" => connect_sqlite(url, config).await,
            "postgres" | "postgresql" => connect_postgres(url, config).await,
            "" => Err(invalid(format!("it has no scheme ({SCHEMES})"))),
            other => Err(invalid(format!("unsupported scheme '{}' ({SCHEMES})", other.escape_default()))),
        }
    }
}

/// The error for a URL whose backend is not compiled in.
#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
fn not_compiled_in(backend: Backend, url: &str) -> ConnectError {
    ConnectError::NotCompiledIn { backend, url: redact_url(url) }
}

#[cfg(not(feature = "sqlite"))]
async fn connect_sqlite(url: &str, _config: &ConnectConfig) -> Result<SqlStore, ConnectError> {
    Err(not_compiled_in(Backend::Sqlite, url))
}

#[cfg(not(feature = "postgres"))]
async fn connect_postgres(url: &str, _config: &ConnectConfig) -> Result<SqlStore, ConnectError> {
    Err(not_compiled_in(Backend::Postgres, url))
}

#[cfg(feature = "sqlite")]
async fn connect_sqlite(url: &str, config: &ConnectConfig) -> Result<SqlStore, ConnectError> {
    let shown = redact_url(url);
    let invalid = |reason: String| ConnectError::InvalidUrl { url: shown.clone(), reason };
    let options = SqliteConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
    let path = options.get_filename().to_path_buf();
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    if database.is_empty() || database == ":memory:" || params.split('&').any(|p| p == "mode=memory") {
        // Reads and writes use separate connections, which an in-memory database cannot share.
        return Err(invalid("give the path of a database file, for example sqlite://tessera.db".into()));
    }
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(config.sqlite_busy_timeout)
        .disable_statement_logging();
    let unreachable = |e: sqlx::Error| ConnectError::Unreachable {
        backend: Backend::Sqlite,
        url: shown.clone(),
        reason: match e {
            sqlx::Error::Database(db) => format!("{} ({})", db.message(), path.display()),
            other => other.to_string(),
        },
    };
    // The writer connects first: it creates the file and switches it to WAL before any reader opens.
    let writer_options = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout + config.sqlite_busy_timeout);
    let writer =
        retry_while_locked(config.sqlite_busy_timeout, || writer_options.clone().connect_with(options.clone()))
            .await
            .map_err(unreachable)?;
    let reader_options = SqlitePoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(false);
    let reader =
        retry_while_locked(config.sqlite_busy_timeout, || reader_options.clone().connect_with(options.clone()))
            .await
            .map_err(unreachable)?;
    let lookup = std::sync::Arc::new(crate::lookup::FastLookup::new(path));
    Ok(SqlStore { pools: Pools::Sqlite { reader, writer, lookup } })
}

/// Switching a new database file to WAL needs an exclusive lock that SQLite's busy handler does not
/// wait for, so when several processes open a fresh file at once all but one get "database is
/// locked" straight away. They try again until `patience` runs out.
#[cfg(feature = "sqlite")]
async fn retry_while_locked<F, Fut, T>(patience: Duration, mut connect: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(10);
    loop {
        match connect().await {
            Err(sqlx::Error::Database(db))
                if db.message().contains("database is locked") && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

#[cfg(feature = "postgres")]
async fn connect_postgres(url: &str, config: &ConnectConfig) -> Result<SqlStore, ConnectError> {
    let shown = redact_url(url);
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| ConnectError::InvalidUrl { url: shown.clone(), reason: scrub(&e.to_string(), url) })?
        .disable_statement_logging();
    let unreachable =
        |reason: String| ConnectError::Unreachable { backend: Backend::Postgres, url: shown.clone(), reason };
    // One probe connection first: the pool would retry a refused connection until its timeout and
    // then report only "timed out", where the operator needs "connection refused" or "database
    // does not exist" at once.
    let probe = tokio::time::timeout(config.acquire_timeout, options.connect())
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", config.acquire_timeout.as_secs_f32())))?
        .map_err(|e| unreachable(scrub(&describe_pg(e), url)))?;
    if let Err(e) = probe.close().await {
        tracing::debug!(error = %e, "closing the PostgreSQL probe connection failed");
    }
    // sqlx pings every connection when it is returned to the pool; pinging again before each use
    // would double the round trips of every lookup. A connection that dies while idle (the server
    // restarted) fails one query with `Unavailable` and is then discarded.
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(false)
        .connect_lazy_with(options);
    Ok(SqlStore { pools: Pools::Postgres(pool) })
}

#[cfg(feature = "postgres")]
fn describe_pg(err: sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is PostgreSQL running and listening there?)".into()
        }
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}

/// Removes the password of `url` from `message`, in case a driver echoes it.
#[cfg(feature = "postgres")]
fn scrub(message: &str, url: &str) -> String {
    UrlSecrets::of(url).scrub(message)
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn scrubs_passwords_from_messages() {
        let url = "postgres://app:hunter2@db/auth";
        assert_eq!(scrub("bad hunter2 thing", url), "bad *** thing");
        assert_eq!(scrub(&format!("at {url}"), url), "at postgres://app:***@db/auth");
    }
}

/// Run by CI with one backend at a time (`--no-default-features --features sqlite`, `… postgres`).
#[cfg(all(test, not(all(feature = "sqlite", feature = "postgres"))))]
mod one_backend {
    use super::*;

    #[tokio::test]
    async fn a_backend_that_is_not_compiled_in_is_named_without_the_password() {
        #[cfg(feature = "sqlite")]
        let (url, backend, message) = ("postgres://app:hunter2@db/auth", Backend::Postgres, "PostgreSQL");
        #[cfg(feature = "postgres")]
        let (url, backend, message) = ("sqlite://tessera.db", Backend::Sqlite, "SQLite");
        let err = SqlStore::connect(url).await.expect_err("no such backend in this build");
        assert!(matches!(err, ConnectError::NotCompiledIn { backend: b, .. } if b == backend), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("this build has no {message} support: enable the `{backend}` feature")),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }
}
