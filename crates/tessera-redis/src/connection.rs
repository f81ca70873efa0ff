//! The connection: configuration, a cheap-to-clone handle over `redis`'s auto-reconnecting
//! [`ConnectionManager`], deadlines on every command, and errors that never show a password.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::net::{UrlSecrets, redact_url};

/// The default server: the local Redis.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// The default key prefix.
pub const DEFAULT_KEY_PREFIX: &str = "tessera:";

/// Where Redis is and how long to wait for it.
///
/// ```
/// use std::time::Duration;
/// use tessera_redis::RedisConfig;
///
/// let config = RedisConfig { url: "redis://:s3cret@cache.internal:6379/2".into(), ..RedisConfig::default() };
/// assert_eq!(config.key_prefix, "tessera:");
/// assert_eq!(config.response_timeout, Duration::from_secs(2));
/// // Debug output never shows the password.
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[[user]:password@]host[:port][/db]` (or `rediss://`, `unix://`, as the `redis` crate
    /// accepts them).
    pub url: String,
    /// Prepended to every key and to the invalidation channel, so several deployments (or test
    /// runs) can share one Redis. Default `tessera:`.
    pub key_prefix: String,
    /// How long establishing a connection may take. Default 2 s.
    pub connect_timeout: Duration,
    /// How long a command may wait for its answer. Default 2 s.
    pub response_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.to_string(),
            key_prefix: DEFAULT_KEY_PREFIX.to_string(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// What went wrong talking to Redis. Messages name the server with its password masked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    /// The configuration cannot work (a malformed URL, no Tokio runtime).
    #[error("invalid Redis configuration: {0}")]
    Config(String),
    /// Redis cannot be reached, did not answer in time, or is not serving (loading, read-only).
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with an error, or with something Tessera did not expect.
    #[error("Redis error: {0}")]
    Command(String),
}

impl From<RedisError> for tessera_core::StoreError {
    fn from(e: RedisError) -> Self {
        match e {
            RedisError::Config(m) | RedisError::Unavailable(m) => tessera_core::StoreError::Unavailable(m),
            RedisError::Command(m) => tessera_core::StoreError::Backend(m),
        }
    }
}

impl From<RedisError> for tessera_core::throttle::LimiterError {
    fn from(e: RedisError) -> Self {
        tessera_core::throttle::LimiterError(e.to_string())
    }
}

impl From<RedisError> for tessera_core::bus::BusError {
    fn from(e: RedisError) -> Self {
        tessera_core::bus::BusError(e.to_string())
    }
}

/// A handle on one Redis server: cheap to clone, every clone shares one multiplexed connection that
/// reconnects by itself after a failure.
///
/// Creating it does no I/O, so an instance starts while Redis is down; the first command connects.
/// Every command has a deadline (`connect_timeout + response_timeout`, which covers waiting for a
/// reconnection as well as the answer): nothing waits for Redis forever.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    manager: ConnectionManager,
    prefix: String,
    server: String,
    secrets: UrlSecrets,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("server", &self.inner.server)
            .field("key_prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// A handle on the server `config` names. Does not connect (see the type's docs); fails only
    /// when the URL is malformed or when called outside a Tokio runtime.
    pub fn new(config: &RedisConfig) -> Result<Self, RedisError> {
        let server = redact_url(&config.url);
        let secrets = UrlSecrets::of(&config.url);
        let scrub = |message: String| secrets.scrub(&message);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisError::Config("a Redis connection must be created inside a Tokio runtime".into()));
        }
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| RedisError::Config(scrub(format!("cannot use the Redis URL {server}: {e}"))))?;
        // Few, quick retries: while a reconnection is under way every command waits for it, and a
        // command that fails instead triggers the next attempt, so long retry chains only delay
        // the errors callers turn into 503s or fallbacks.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|e| RedisError::Config(scrub(format!("cannot set up the Redis connection to {server}: {e}"))))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                manager,
                prefix: config.key_prefix.clone(),
                server,
                secrets,
                connect_timeout: config.connect_timeout,
                response_timeout: config.response_timeout,
            }),
        })
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let answer: String = self.query("PING", redis::cmd("PING")).await?;
        if answer == "PONG" { Ok(()) } else { Err(RedisError::Command(format!("PING answered {answer:?}"))) }
    }

    /// The database the URL selects (`redis://host/2` is 2; 0 without one).
    pub fn database(&self) -> i64 {
        self.inner.client.get_connection_info().redis_settings().db()
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The server's URL with its password masked, for messages.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    pub(crate) fn response_timeout(&self) -> Duration {
        self.inner.response_timeout
    }

    /// The longest a command may take, waiting for a (re)connection included.
    pub(crate) fn deadline(&self) -> Duration {
        self.inner.connect_timeout + self.inner.response_timeout
    }

    /// Runs one command under the deadline. `what` names it in errors.
    pub(crate) async fn query<T: FromRedisValue>(&self, what: &str, cmd: redis::Cmd) -> Result<T, RedisError> {
        let mut manager = self.inner.manager.clone();
        self.bounded(what, async move { cmd.query_async::<T>(&mut manager).await }).await
    }

    /// Runs a Lua script with `keys` and `args` under the deadline.
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        what: &str,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, RedisError> {
        let mut manager = self.inner.manager.clone();
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key.as_str());
        }
        for arg in args {
            invocation.arg(arg.as_str());
        }
        self.bounded(what, async move { invocation.invoke_async::<T>(&mut manager).await }).await
    }

    /// One SCAN step: the next cursor (0 when done) and a page of keys matching `pattern` (build
    /// it with [`RedisConnection::key_pattern`]). A scan from cursor 0 back to 0 returns every key
    /// that exists throughout at least once; a page may repeat keys of an earlier one.
    pub(crate) async fn scan_page(&self, pattern: &str, cursor: u64) -> Result<(u64, Vec<String>), RedisError> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
        self.query("SCAN", cmd).await
    }

    /// A SCAN pattern matching every key that starts with the prefix followed by `rest` (which is
    /// itself a glob): the prefix's own glob characters are escaped.
    pub(crate) fn key_pattern(&self, rest: &str) -> String {
        let mut out = String::with_capacity(self.inner.prefix.len() + rest.len() + 4);
        for c in self.inner.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str(rest);
        out
    }

    /// Runs `fut` under the deadline and maps its error.
    pub(crate) async fn bounded<T>(
        &self,
        what: &str,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(self.deadline(), fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.map_error(what, &e)),
            Err(_) => Err(RedisError::Unavailable(format!(
                "{what}: Redis at {} did not answer within {} ms",
                self.inner.server,
                self.deadline().as_millis()
            ))),
        }
    }

    /// Classifies a `redis` error: connection trouble and a server that is not serving are
    /// [`RedisError::Unavailable`]; everything else is [`RedisError::Command`].
    pub(crate) fn map_error(&self, what: &str, e: &redis::RedisError) -> RedisError {
        use redis::{ErrorKind, ServerErrorKind};
        let message = self.inner.secrets.scrub(&format!("{what}: {e} (Redis at {})", self.inner.server));
        let not_serving = matches!(
            e.kind(),
            ErrorKind::Io
                | ErrorKind::AuthenticationFailed
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        );
        if not_serving || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
            RedisError::Unavailable(message)
        } else {
            RedisError::Command(message)
        }
    }
}

/// Deletes every key matching `pattern`, a SCAN page at a time; returns how many went.
pub(crate) async fn delete_keys(conn: &RedisConnection, pattern: &str) -> Result<u64, RedisError> {
    let mut cursor = 0;
    let mut deleted = 0;
    loop {
        let (next, keys) = conn.scan_page(pattern, cursor).await?;
        if !keys.is_empty() {
            let mut cmd = redis::cmd("UNLINK");
            cmd.arg(&keys);
            let n: u64 = conn.query("delete keys", cmd).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
