//! Test support (feature `testing`): the test server, a unique key prefix per test, and a guard
//! that deletes every key under that prefix when the test ends — also when it panics.
//!
//! The server comes from `TESSERA_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). When it
//! cannot be reached the test prints why and passes — unless `TESSERA_REQUIRE_SERVICES=1`, where it
//! fails.
#![allow(clippy::unwrap_used)]

use crate::{RedisConfig, RedisConnection, redact_url};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether a missing service must fail the test instead of skipping it.
pub fn services_required() -> bool {
    std::env::var("TESSERA_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The Redis server tests use.
pub fn redis_url() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| crate::DEFAULT_URL.to_string())
}

/// `tessera-test:<pid>-<counter>-<time>:`: unique across concurrent test binaries and runs, and
/// free of glob characters.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("tessera-test:{}-{n}-{nanos:x}:", std::process::id())
}

/// A Redis key prefix a test owns. Its keys are deleted when this is dropped.
#[derive(Debug)]
pub struct TestRedis {
    /// The configuration: the test server with the test's own prefix and short timeouts.
    pub config: RedisConfig,
    /// A connection with that configuration.
    pub conn: RedisConnection,
    _cleanup: DeletePrefix,
}

impl TestRedis {
    /// Another, independent connection with the same configuration (as a second server process
    /// would have).
    pub fn connect_again(&self) -> RedisConnection {
        RedisConnection::new(&self.config).expect("a second connection")
    }

    /// A plain `redis` connection to the test server, for looking at keys directly.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.config.url.as_str()).expect("the test Redis URL");
        client.get_multiplexed_async_connection().await.expect("a raw connection to the test Redis")
    }

    /// Every key under the test's prefix, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut raw = self.raw().await;
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.config.key_prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut raw)
                .await
                .expect("SCAN");
            keys.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Deletes every key under the test's prefix behind Tessera's back, as an operator "logging
    /// everyone out" by hand would: no script runs and nothing is published.
    pub async fn delete_all_keys(&self) {
        let keys = self.keys().await;
        if keys.is_empty() {
            return;
        }
        let mut raw = self.raw().await;
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut raw).await.expect("DEL");
    }
}

/// A fresh key prefix on the test server, or `None` (after saying so) when Redis is absent.
pub async fn redis() -> Option<TestRedis> {
    let config = RedisConfig {
        url: redis_url(),
        key_prefix: unique_prefix(),
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
    };
    let conn = match RedisConnection::new(&config) {
        Ok(conn) => conn,
        Err(e) => return skip(&format!("cannot use the test Redis {}: {e}", redact_url(&config.url))),
    };
    if let Err(e) = conn.ping().await {
        return skip(&format!("Redis not reachable at {}: {e}", redact_url(&config.url)));
    }
    let cleanup = DeletePrefix { url: config.url.clone(), prefix: config.key_prefix.clone() };
    Some(TestRedis { config, conn, _cleanup: cleanup })
}

/// Skips (returns `None` after saying why) or, when services are required, panics.
pub fn skip<T>(why: &str) -> Option<T> {
    if services_required() {
        panic!("{why} (TESSERA_REQUIRE_SERVICES=1, so this is a failure)");
    }
    eprintln!("skipping: {why}");
    None
}

/// Deletes every key under `prefix` when dropped, with a blocking connection of its own (`Drop`
/// cannot await, and the test's runtime may be shutting down).
#[derive(Debug)]
struct DeletePrefix {
    url: String,
    prefix: String,
}

impl DeletePrefix {
    fn run(&self) -> redis::RedisResult<()> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(&keys).exec(&mut conn)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

impl Drop for DeletePrefix {
    fn drop(&mut self) {
        if let Err(e) = self.run() {
            eprintln!("warning: could not delete the test keys under {}: {e}", self.prefix);
        }
    }
}

/// A server setting a test changed with `CONFIG SET`, put back as it was when this is dropped —
/// also when the test panics. Settings are global to the server, so tests of one process that
/// change them take turns: each holds a process-wide lock for as long as its guard lives.
#[derive(Debug)]
pub struct ServerSetting {
    url: String,
    name: String,
    before: String,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl TestRedis {
    /// Sets the server's `name` to `value` until the guard is dropped. Waits for any other
    /// test of this process holding such a guard.
    pub async fn set_server_config(&self, name: &str, value: &str) -> ServerSetting {
        static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let turn = TURN.lock().await;
        let before = self.conn.config_get(name).await.expect("CONFIG GET on the test Redis");
        self.conn.config_set(name, value).await.expect("CONFIG SET on the test Redis");
        ServerSetting { url: self.config.url.clone(), name: name.to_string(), before, _turn: turn }
    }
}

impl ServerSetting {
    fn restore(&self) -> redis::RedisResult<()> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        redis::cmd("CONFIG").arg("SET").arg(&self.name).arg(&self.before).exec(&mut conn)
    }
}

impl Drop for ServerSetting {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!("warning: could not put the test Redis's {} back to {:?}: {e}", self.name, self.before);
        }
    }
}
