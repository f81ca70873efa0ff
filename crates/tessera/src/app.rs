//! What every command opens: the configuration, the store (migrated, and composed with Redis when
//! Redis is configured), and on demand the token codec with the server keys.

use crate::config::{Config, RedisDown, TokenStoreKind, ensure_dir, private_sqlite_file};
use crate::key;
use anyhow::{Result, anyhow};
use std::sync::{Arc, OnceLock};
use tessera_axum::Tessera;
use tessera_core::bus::{InvalidationBus, NotifyingStore};
use tessera_core::split::SplitStore;
use tessera_core::store::Store;
use tessera_core::throttle::RateLimiter;
use tessera_core::{Clock, SystemClock};
use tessera_redis::{
    FallbackMode, FallbackRateLimiter, RedisBus, RedisConfig, RedisConnection, RedisRateLimiter, RedisTokenStore,
    RedisTokenStoreConfig,
};
use tessera_sql::{ConnectConfig, PgListenBus, SqlStore};

/// An opened Tessera: configuration and store.
#[derive(Debug, Clone)]
pub struct App {
    /// The configuration in force.
    pub config: Config,
    /// The SQL store (users, clients; tokens unless they live in Redis), migrated.
    pub sql: SqlStore,
    /// The store to use: the SQL store, or SQL + Redis tokens, publishing invalidations on Redis
    /// when Redis is configured.
    pub store: Arc<dyn Store>,
    /// Redis, when configured.
    pub redis: Option<RedisParts>,
    /// On PostgreSQL without Redis, the invalidation bus: `LISTEN`/`NOTIFY` on the database (its
    /// triggers publish, so the store is not wrapped). With Redis, Redis's bus serves instead.
    pub pg_bus: Option<Arc<PgListenBus>>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Whether this start created the database.
    pub created_database: bool,
    /// The token commands' Tessera, built on first use; [`App::close`] writes its audit records.
    admin: Arc<OnceLock<Tessera>>,
    /// The user and client commands' Tessera (no server key read), likewise.
    keyless: Arc<OnceLock<Tessera>>,
}

/// What Redis provides when it is configured.
#[derive(Debug, Clone)]
pub struct RedisParts {
    /// The connection the parts share.
    pub conn: RedisConnection,
    /// The invalidation bus every instance subscribes to.
    pub bus: Arc<RedisBus>,
    /// The shared throttle (with its fallback policy).
    pub limiter: Arc<dyn RateLimiter>,
}

/// The file of a `sqlite://PATH` URL (`None` for other databases and for anything SQLite would not
/// open as a plain file; the store refuses those with a clear error).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, _) = rest.split_once('?').unwrap_or((rest, ""));
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

impl App {
    /// Connects to the configured database (creating the data directory and the SQLite file when
    /// they are the defaults), applies migrations, and composes the store with Redis.
    pub async fn open(config: Config) -> Result<App> {
        let mut created_database = false;
        if config.database_url.is_none() {
            ensure_dir(&config.data_dir)?;
            created_database = !config.sqlite_default_path().exists();
        }
        let url = config.database_url();
        if let Some(path) = sqlite_file(&url) {
            private_sqlite_file(&path)?;
        }
        let pool = ConnectConfig { max_connections: config.database_max_connections, ..ConnectConfig::default() };
        let sql = SqlStore::connect_with(&url, &pool).await.map_err(|e| anyhow!("{e}"))?;
        sql.migrate().await.map_err(|e| anyhow!("cannot migrate the database: {e}"))?;
        let mut store: Arc<dyn Store> = Arc::new(sql.clone());
        let mut redis = None;
        if let Some(settings) = &config.redis {
            let redis_config = RedisConfig {
                url: settings.url.0.clone(),
                key_prefix: settings.key_prefix.clone(),
                ..RedisConfig::default()
            };
            // Connecting is lazy: an instance starts while Redis is down and uses it once it is up.
            let conn = RedisConnection::new(&redis_config).map_err(|e| anyhow!("invalid redis_url: {e}"))?;
            if settings.token_store == TokenStoreKind::Redis {
                let tokens = RedisTokenStore::new(conn.clone(), RedisTokenStoreConfig::default());
                store = Arc::new(SplitStore::new(store, Arc::new(tokens)));
            }
            let bus = Arc::new(RedisBus::new(conn.clone()));
            store = Arc::new(NotifyingStore::new(store, bus.clone() as Arc<dyn InvalidationBus>));
            let mode = match settings.when_down {
                RedisDown::Fallback => FallbackMode::Fallback,
                RedisDown::Refuse => FallbackMode::Refuse,
            };
            let limiter = Arc::new(FallbackRateLimiter::new(Arc::new(RedisRateLimiter::new(conn.clone())), mode));
            redis = Some(RedisParts { conn, bus, limiter });
        }
        let pg_bus = if redis.is_none() { PgListenBus::new(&sql).map(Arc::new) } else { None };
        let (admin, keyless) = (Arc::new(OnceLock::new()), Arc::new(OnceLock::new()));
        Ok(App { config, sql, store, redis, pg_bus, clock: Arc::new(SystemClock), created_database, admin, keyless })
    }

    /// A Tessera builder for this configuration: the store, the server key, the settings, the
    /// event log line, with Redis the shared throttle and the invalidation bus, and on PostgreSQL
    /// without Redis the `LISTEN`/`NOTIFY` invalidation bus. The server and
    /// the CLI both build on it, so their changes emit the same events.
    pub fn tessera(&self) -> Result<tessera_axum::TesseraBuilder> {
        let (keys, _) = key::load_or_create(&self.config)?;
        Ok(self.builder_with(keys))
    }

    fn builder_with(&self, keys: tessera_core::KeyRing) -> tessera_axum::TesseraBuilder {
        let mut builder = tessera_axum::Tessera::builder(self.store.clone(), keys)
            .settings(self.config.settings.clone())
            .on_event(|event| {
                tracing::info!(event = ?event.kind, user = ?event.username, client = ?event.client, ip = ?event.ip, "auth event")
            });
        if let Some(redis) = &self.redis {
            builder = builder.rate_limiter(redis.limiter.clone()).bus(redis.bus.clone());
        } else if let Some(bus) = &self.pg_bus {
            builder = builder.bus(bus.clone());
        }
        if self.config.audit {
            // The audit log stays in SQL even when tokens live in Redis.
            builder = builder.audit(Arc::new(self.sql.clone())).audit_retention(self.config.audit_retention);
        }
        if self.config.usage {
            // Usage counts, like the audit log, stay in SQL even when tokens live in Redis.
            builder = builder.usage(Arc::new(self.sql.clone())).usage_retention(self.config.usage_retention);
        }
        builder = builder.metrics(self.config.metrics_bind.is_some());
        builder
    }

    /// The Tessera of the token commands: every change they make goes through it, so it emits
    /// the same events as the server's, and its audit records are written when the command ends
    /// ([`App::close`]).
    pub fn admin(&self) -> Result<&Tessera> {
        if let Some(tessera) = self.admin.get() {
            return Ok(tessera);
        }
        let tessera = self.tessera()?.build()?;
        Ok(self.admin.get_or_init(|| tessera))
    }

    /// The Tessera of the user and client commands, which change users and clients (and revoke
    /// tokens: a password change) but never issue or derive a token: they need no server key, so
    /// none is read (nor a key file created); a random key stands in for the codec they never
    /// use. Their events are the same as through [`App::admin`].
    pub fn admin_without_key(&self) -> Result<&Tessera> {
        if let Some(tessera) = self.keyless.get() {
            return Ok(tessera);
        }
        let tessera = self.builder_with(tessera_core::ServerKey::generate().into()).build()?;
        Ok(self.keyless.get_or_init(|| tessera))
    }

    /// Writes what the admin commands buffered (their audit records), then closes the connections.
    pub async fn close(&self) {
        for built in [&self.admin, &self.keyless] {
            if let Some(tessera) = built.get() {
                tessera.shutdown().await;
            }
        }
        self.sql.close().await;
    }
}
