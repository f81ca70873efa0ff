//! Test support (feature `testing`). Fresh databases for each test: an SQLite file in its own temporary directory, or a uniquely
//! named PostgreSQL database that is dropped afterwards (also when the test fails). The SQLite
//! helpers need the `sqlite` feature, the PostgreSQL ones `postgres`.
//!
//! PostgreSQL comes from `TESSERA_TEST_POSTGRES_URL` (default: the local server). When it cannot be
//! reached the test prints why and passes — unless `TESSERA_REQUIRE_SERVICES=1`, where it fails.

use crate::SqlStore;
pub use crate::search::page_plan;
pub use crate::tokens::count_plan;
#[cfg(feature = "postgres")]
use sqlx::{Connection, Executor, PgConnection};
use std::process::Command;
#[cfg(feature = "postgres")]
use std::sync::atomic::{AtomicU32, Ordering};
#[cfg(feature = "postgres")]
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;
use tessera_core::StoreError;

#[cfg(feature = "postgres")]
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Whether a missing service must fail the test instead of skipping it.
pub fn services_required() -> bool {
    std::env::var("TESSERA_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (returns `None` after saying why) or, when services are required, panics.
pub fn skip<T>(why: &str) -> Option<T> {
    if services_required() {
        panic!("{why} (TESSERA_REQUIRE_SERVICES=1, so this is a failure)");
    }
    eprintln!("skipping: {why}");
    None
}

/// The PostgreSQL server tests use (an admin URL: it may create and drop databases).
#[cfg(feature = "postgres")]
pub fn postgres_admin_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

/// A database a test owns, with a migrated store on it.
#[derive(Debug)]
pub struct TestDb {
    /// A migrated store on the database.
    pub store: SqlStore,
    /// The database's URL.
    pub url: String,
    /// The SQLite file, for SQLite databases.
    pub sqlite_path: Option<std::path::PathBuf>,
    // Field order matters: the store's pools close (on drop) before the directory goes.
    _dir: Option<TempDir>,
    #[cfg(feature = "postgres")]
    _drop: Option<DropDatabase>,
}

impl TestDb {
    /// Closes the store; the database itself goes when `self` is dropped.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Runs `sql` (any number of statements) in one transaction, as an operator with a SQL shell
    /// (or a restore) would: the schema's triggers fire, nothing of Tessera's runs.
    pub async fn run_sql(&self, sql: &str) {
        async fn run(store: &SqlStore, sql: &str) -> Result<(), StoreError> {
            in_write_transaction!(store, |tx| {
                async { sqlx::raw_sql(sql).execute(&mut *tx).await.map(|_| ()).map_err(crate::error::from_sqlx) }.await
            })
        }
        run(&self.store, sql).await.unwrap_or_else(|e| panic!("running {sql:?}: {e}"));
    }
}

/// A fresh, empty SQLite database (not migrated).
#[cfg(feature = "sqlite")]
pub async fn sqlite_unmigrated() -> TestDb {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("tessera.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqlStore::connect(&url).await.expect("open SQLite");
    TestDb {
        store,
        url,
        sqlite_path: Some(path),
        _dir: Some(dir),
        #[cfg(feature = "postgres")]
        _drop: None,
    }
}

/// A fresh, migrated SQLite database.
#[cfg(feature = "sqlite")]
pub async fn sqlite() -> TestDb {
    let db = sqlite_unmigrated().await;
    db.store.migrate().await.expect("migrate SQLite");
    db
}

/// A fresh, migrated PostgreSQL database, or `None` (after saying so) when PostgreSQL is absent.
#[cfg(feature = "postgres")]
pub async fn postgres() -> Option<TestDb> {
    let db = postgres_unmigrated().await?;
    db.store.migrate().await.expect("migrate PostgreSQL");
    Some(db)
}

/// A fresh, empty PostgreSQL database, or `None` when PostgreSQL is absent.
#[cfg(feature = "postgres")]
pub async fn postgres_unmigrated() -> Option<TestDb> {
    let admin = postgres_admin_url();
    let mut conn = match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            return skip(&format!("PostgreSQL not reachable at {}: {e}", crate::redact_url(&admin)));
        }
        Err(_) => {
            return skip(&format!("PostgreSQL not reachable at {}: no answer in 5 s", crate::redact_url(&admin)));
        }
    };
    let name = unique_name();
    conn.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("CREATE DATABASE");
    let _ = conn.close().await;
    let guard = DropDatabase { admin: admin.clone(), name: name.clone() };
    let url = with_database(&admin, &name);
    let store = SqlStore::connect(&url).await.expect("open the test database");
    Some(TestDb { store, url, sqlite_path: None, _dir: None, _drop: Some(guard) })
}

/// `tessera_test_<pid>_<counter>_<time>`: unique across concurrent test binaries and runs.
#[cfg(feature = "postgres")]
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("tessera_test_{}_{n}_{nanos:x}", std::process::id())
}

/// `url` pointing at database `name` instead (query parameters kept).
#[cfg(feature = "postgres")]
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// Drops a test database when dropped — also when the test panics. `Drop` cannot await, so the
/// work runs on a thread with its own runtime; `WITH (FORCE)` ends connections still open.
#[cfg(feature = "postgres")]
#[derive(Debug)]
struct DropDatabase {
    admin: String,
    name: String,
}

#[cfg(feature = "postgres")]
impl Drop for DropDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let worker = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let Ok(runtime) = runtime else {
                return Err("no runtime".to_string());
            };
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.map_err(|e| e.to_string())?;
                conn.execute(sql.as_str()).await.map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok(())
            })
        });
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

/// Whether the command-line tool `program` can be run (with `--version`).
pub fn have_tool(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

pub mod suite;
