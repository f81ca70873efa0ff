//! Configuration: a TOML file (`--config` / `TESSERA_CONFIG`), overridden key by key by
//! `TESSERA_<KEY>` environment variables, overridden by command-line flags. Unknown keys and bad
//! values are rejected at start-up, naming the key, the value and where it came from.

use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tessera_axum::serve::ServerLimits;
use tessera_core::Settings;

/// How an environment variable's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Kept as a string (durations, rates and names parse from strings).
    Text,
    Bool,
    Int,
    /// Comma-separated.
    List,
}

/// The server's own keys (not authentication settings).
const SERVER_KEYS: &[(&str, Kind)] = &[
    ("data_dir", Kind::Text),
    ("database_url", Kind::Text),
    ("database_max_connections", Kind::Int),
    ("secret_key", Kind::Text),
    ("secret_keys", Kind::Text),
    ("secret_key_file", Kind::Text),
    ("identity_keys", Kind::Text),
    ("strict_permissions", Kind::Bool),
    ("bind", Kind::Text),
    ("redis_url", Kind::Text),
    ("redis_key_prefix", Kind::Text),
    ("token_store", Kind::Text),
    ("throttle_when_redis_down", Kind::Text),
    ("redis_allow_eviction", Kind::Bool),
    ("redis_keyspace_events", Kind::Text),
    ("header_read_timeout", Kind::Text),
    ("request_body_timeout", Kind::Text),
    ("idle_timeout", Kind::Text),
    ("max_connections", Kind::Int),
    ("audit", Kind::Bool),
    ("audit_retention", Kind::Text),
    ("usage", Kind::Bool),
    ("usage_retention", Kind::Text),
    ("metrics_bind", Kind::Text),
    ("log_format", Kind::Text),
    ("admin", Kind::Bool),
    ("admin_secure_cookie", Kind::Bool),
    ("admin_session_idle", Kind::Text),
    ("admin_session_lifetime", Kind::Text),
];

/// Every key of [`Settings`], with how to read it from the environment.
const SETTING_KEYS: &[(&str, Kind)] = &[
    ("default_token_ttl", Kind::Text),
    ("token_character_length", Kind::Int),
    ("token_prefix", Kind::Text),
    ("login_response_user_fields", Kind::List),
    ("auth_header_prefix", Kind::Text),
    ("expiry_datetime_format", Kind::Text),
    ("time_zone", Kind::Text),
    ("token_cache_timeout", Kind::Text),
    ("refresh_token_on_login", Kind::Bool),
    ("revoke_tokens_on_password_change", Kind::Bool),
    ("api_access_client_name", Kind::Text),
    ("api_access_exclude_from_sessions", Kind::Bool),
    ("api_access_response_include_token", Kind::Bool),
    ("default_throttle_rate", Kind::Text),
    ("login_client_header", Kind::Text),
    ("trusted_proxies", Kind::List),
    ("login_throttle_per_ip", Kind::Text),
    ("login_throttle_per_username", Kind::Text),
    ("login_throttle_per_username_and_ip", Kind::Text),
    ("login_known_source_ttl", Kind::Text),
    ("accept_legacy_tokens", Kind::Text),
];

/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "./tessera-data";
/// The default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";

/// Values given on the command line; they win over the environment and the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config_file: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--bind`.
    pub bind: Option<String>,
    /// `--metrics-bind`.
    pub metrics_bind: Option<String>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite database and the key file live by default.
    pub data_dir: PathBuf,
    /// The database URL given explicitly, if any (else SQLite inside the data dir).
    pub database_url: Option<String>,
    /// Connections in the database pool (`database_max_connections`, default 10): PostgreSQL's
    /// pool, or SQLite's read pool (SQLite writes through one connection whatever this says).
    pub database_max_connections: u32,
    /// The server key given by config/env (hex, key id `0`); else the key file in the data dir is used.
    pub secret_key: Option<SecretText>,
    /// The server keys given by config/env: `id:hex,id:hex`, the current key first.
    pub secret_keys: Option<SecretText>,
    /// A file holding the server key (hex), e.g. a mounted secret; instead of `secret_key`.
    pub secret_key_file: Option<PathBuf>,
    /// The forward-auth identity keys given by config/env (`identity_keys`: Ed25519 seeds in hex,
    /// comma-separated, the signing key first); else `identity.key` in the data dir.
    pub identity_keys: Option<SecretText>,
    /// Refuse to start when a file holding a secret (the config file, the key file) can be read by
    /// other users, instead of warning.
    pub strict_permissions: bool,
    /// The listen address for `serve`.
    pub bind: SocketAddr,
    /// Redis, for several instances: the shared throttle, revocations pushed to every instance,
    /// and optionally the tokens themselves.
    pub redis: Option<RedisSettings>,
    /// The HTTP server's timeouts and connection cap.
    pub limits: ServerLimits,
    /// Record every event in the database's audit log (`audit`, default true). The CLI records its
    /// own changes too.
    pub audit: bool,
    /// How long audit records are kept (`audit_retention`, default 90d).
    pub audit_retention: chrono::TimeDelta,
    /// Keep usage analytics in the database (`usage`, default true): per client per day, requests
    /// by outcome, logins, tokens issued and revoked, active users (`tessera stats`).
    pub usage: bool,
    /// How long usage counts are kept (`usage_retention`, default 400d).
    pub usage_retention: chrono::TimeDelta,
    /// Where `serve` answers `GET /metrics` (Prometheus), on a listener of its own
    /// (`metrics_bind`, off by default; for example 127.0.0.1:9464).
    pub metrics_bind: Option<SocketAddr>,
    /// How log lines are written (`log_format`: `text`, the default, or `json`).
    pub log_format: crate::logging::LogFormat,
    /// The admin web UI at `/admin/`.
    pub admin: AdminSettings,
    /// The authentication settings.
    pub settings: Settings,
    /// Forward-auth (`[forward_auth]` in the config file): route rules, trusted proxies, headers.
    pub forward_auth: tessera_axum::forward::ForwardAuthConfig,
}

/// Where tokens live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStoreKind {
    /// In the SQL database, with users and clients (the default).
    Sql,
    /// In Redis (users and clients stay in SQL).
    Redis,
}

/// What the throttle does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisDown {
    /// Count in-process meanwhile (each instance allows the full budget).
    Fallback,
    /// Refuse throttled requests with 503.
    Refuse,
}

/// The Redis part of the configuration.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[:PASSWORD@]HOST[:PORT][/DB]`.
    pub url: SecretText,
    /// Prefix of every key and channel (several deployments can share one Redis).
    pub key_prefix: String,
    /// Where tokens live.
    pub token_store: TokenStoreKind,
    /// The throttle while Redis is down.
    pub when_down: RedisDown,
    /// Start even though Redis's `maxmemory-policy` may evict tokens (`redis_allow_eviction`).
    pub allow_eviction: bool,
    /// Whether to follow token keys through Redis's keyspace notifications.
    pub keyspace_events: KeyspaceEvents,
}

/// `redis_keyspace_events`: whether instances follow Redis's keyspace notifications to notice
/// token keys deleted by hand (DEL, UNLINK), expired or evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyspaceEvents {
    /// Follow them when the server already emits them (`notify-keyspace-events` has `E` and `g`);
    /// never change the server's configuration. The default.
    Auto,
    /// Add the classes Tessera needs (`Egxe`) to the server's flags with `CONFIG SET`, keeping the
    /// ones already on, and follow them.
    On,
    /// Do not follow them.
    Off,
}

/// Secret text whose `Debug` does not show it.
#[derive(Clone)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Config {
    /// The database URL in force: the explicit one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.sqlite_default_path().display()),
        }
    }

    /// The default SQLite file.
    pub fn sqlite_default_path(&self) -> PathBuf {
        self.data_dir.join("tessera.db")
    }

    /// Loads the configuration from the process environment.
    pub fn load(overrides: &Overrides) -> Result<Config> {
        let env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("TESSERA_")).collect();
        Self::load_from(overrides, &env)
    }

    /// Loads the configuration with an explicit environment (tests).
    pub fn load_from(overrides: &Overrides, env: &BTreeMap<String, String>) -> Result<Config> {
        let mut values = Values::read(overrides, env)?;
        let data_dir = overrides
            .data_dir
            .clone()
            .or(values.text("data_dir")?.map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = overrides.database_url.clone().or(values.text("database_url")?);
        if let Some(url) = &database_url
            && url.trim().is_empty()
        {
            bail!("the database URL is empty");
        }
        let database_max_connections = values.database_max_connections()?;
        let secret_key = values.text("secret_key")?.map(SecretText);
        let secret_keys = values.text("secret_keys")?.map(SecretText);
        let secret_key_file = values.text("secret_key_file")?.map(PathBuf::from);
        let identity_keys = values.text("identity_keys")?.map(SecretText);
        let given: Vec<&str> = [
            ("secret_key", secret_key.is_some()),
            ("secret_keys", secret_keys.is_some()),
            ("secret_key_file", secret_key_file.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if let [first, second, ..] = given.as_slice() {
            bail!("give the server key once: {first} or {second}, not both");
        }
        let strict_permissions = values.flag("strict_permissions")?.unwrap_or(false);
        if let Some(file) = &values.file_with_secrets {
            check_private(file, "the config file holds secrets", strict_permissions)?;
        }
        let bind_text = overrides.bind.clone().or(values.text("bind")?).unwrap_or_else(|| DEFAULT_BIND.into());
        let bind: SocketAddr = bind_text
            .parse()
            .map_err(|_| anyhow!("invalid bind address '{bind_text}': expected IP:PORT, for example 127.0.0.1:8000"))?;
        let redis = values.redis()?;
        let limits = values.limits()?;
        let audit = values.flag("audit")?.unwrap_or(true);
        let audit_retention = values.retention("audit_retention")?.unwrap_or(tessera_axum::DEFAULT_AUDIT_RETENTION);
        let usage = values.flag("usage")?.unwrap_or(true);
        let usage_retention = values.retention("usage_retention")?.unwrap_or(tessera_axum::DEFAULT_USAGE_RETENTION);
        let metrics_bind = match overrides.metrics_bind.clone().or(values.text("metrics_bind")?) {
            None => None,
            Some(text) if text.trim().is_empty() || text == "off" => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                anyhow!("invalid metrics_bind '{text}': expected IP:PORT, for example 127.0.0.1:9464, or \"off\"")
            })?),
        };
        let log_format = values.text("log_format")?.map(|f| f.parse()).transpose()?.unwrap_or_default();
        let admin = values.admin()?;
        let forward_auth = values.values.remove("forward_auth");
        let settings = values.settings()?;
        let forward_auth = crate::forward_config::parse(forward_auth, &settings.trusted_proxies)?;
        Ok(Config {
            data_dir,
            database_url,
            database_max_connections,
            secret_key,
            secret_keys,
            secret_key_file,
            identity_keys,
            strict_permissions,
            bind,
            redis,
            limits,
            audit,
            audit_retention,
            usage,
            usage_retention,
            metrics_bind,
            log_format,
            admin,
            settings,
            forward_auth,
        })
    }
}

/// The admin web UI's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// `serve` mounts it at `/admin/` (`admin`, default true).
    pub enabled: bool,
    /// Served over TLS (directly or behind a proxy): the session cookie gets `Secure` and the
    /// `__Host-` prefix (`admin_secure_cookie`, default false).
    pub secure_cookie: bool,
    /// A staff session unused this long ends (`admin_session_idle`, default 30m).
    pub idle: chrono::TimeDelta,
    /// A staff session ends this long after its login (`admin_session_lifetime`, default 12h).
    pub lifetime: chrono::TimeDelta,
}

/// Every configured value, with where it came from (for error messages): the file's keys, then
/// the environment's `TESSERA_<KEY>` over them. Server keys are taken out one by one; what is
/// left is the settings.
struct Values {
    values: BTreeMap<String, (toml::Value, String)>,
    /// The config file, when it holds a secret (a key, or a URL with a password).
    file_with_secrets: Option<PathBuf>,
}

impl Values {
    fn admin(&mut self) -> Result<AdminSettings> {
        let defaults = tessera_axum::StaffSessionPolicy::default();
        let mut duration = |key: &str, default: chrono::TimeDelta| -> Result<chrono::TimeDelta> {
            match self.duration(key)? {
                None => Ok(default),
                Some(d) if d.is_zero() => bail!("invalid value for '{key}': it must be longer than 0 seconds"),
                Some(d) => chrono::TimeDelta::from_std(d).map_err(|_| anyhow!("invalid value for '{key}': too long")),
            }
        };
        let idle = duration("admin_session_idle", defaults.idle)?;
        let lifetime = duration("admin_session_lifetime", defaults.absolute)?;
        if lifetime < idle {
            bail!("invalid value for 'admin_session_lifetime': it is shorter than admin_session_idle");
        }
        Ok(AdminSettings {
            enabled: self.flag("admin")?.unwrap_or(true),
            secure_cookie: self.flag("admin_secure_cookie")?.unwrap_or(false),
            idle,
            lifetime,
        })
    }

    fn read(overrides: &Overrides, env: &BTreeMap<String, String>) -> Result<Values> {
        let file = overrides.config_file.clone().or_else(|| env.get("TESSERA_CONFIG").map(PathBuf::from));
        let mut values = BTreeMap::new();
        let mut file_with_secrets = None;
        if let Some(path) = &file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| anyhow!("config file {}: {}", path.display(), one_line(&e.to_string())))?;
            let url_with_password = |key: &str| {
                table.get(key).and_then(toml::Value::as_str).is_some_and(|u| tessera_core::net::redact_url(u) != u)
            };
            if table.contains_key("secret_key")
                || table.contains_key("secret_keys")
                || table.contains_key("identity_keys")
                || url_with_password("database_url")
                || url_with_password("redis_url")
            {
                file_with_secrets = Some(path.clone());
            }
            for (key, value) in table {
                if kind_of(&key).is_none() && key != "forward_auth" {
                    bail!("config file {}: unknown key '{key}' (known keys: {})", path.display(), known_keys());
                }
                values.insert(key, (value, format!("config file {}", path.display())));
            }
        }
        for (key, kind) in SERVER_KEYS.iter().chain(SETTING_KEYS) {
            let var = format!("TESSERA_{}", key.to_ascii_uppercase());
            if let Some(raw) = env.get(&var) {
                let value = env_value(*kind, raw).map_err(|msg| anyhow!("{var}={raw:?}: {msg}"))?;
                values.insert(key.to_string(), (value, var));
            }
        }
        Ok(Values { values, file_with_secrets })
    }

    /// Takes a boolean value out.
    fn flag(&mut self, key: &str) -> Result<Option<bool>> {
        match self.values.remove(key) {
            None => Ok(None),
            Some((toml::Value::Boolean(b), _)) => Ok(Some(b)),
            Some((other, source)) => bail!("{source}: '{key}' must be true or false, not {}", other.type_str()),
        }
    }

    /// Takes a text value out.
    fn text(&mut self, key: &str) -> Result<Option<String>> {
        match self.values.remove(key) {
            None => Ok(None),
            Some((toml::Value::String(s), _)) => Ok(Some(s)),
            Some((other, source)) => bail!("{source}: '{key}' must be a string, not {}", other.type_str()),
        }
    }

    /// Takes a duration out (`90s`, `1m`, a number of seconds, as every duration key).
    fn duration(&mut self, key: &str) -> Result<Option<Duration>> {
        let Some((value, source)) = self.values.remove(key) else { return Ok(None) };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            other => bail!("{source}: '{key}' must be a duration such as \"30s\", not {}", other.type_str()),
        };
        let parsed =
            tessera_core::parse_duration(&text).map_err(|e| anyhow!("{source}: invalid value for '{key}': {e}"))?;
        let secs = u64::try_from(parsed.num_seconds()).map_err(|_| anyhow!("{source}: invalid value for '{key}'"))?;
        Ok(Some(Duration::from_secs(secs)))
    }

    /// Takes a retention out: a duration longer than 0.
    fn retention(&mut self, key: &str) -> Result<Option<chrono::TimeDelta>> {
        match self.duration(key)? {
            Some(d) if d.is_zero() => bail!("invalid value for '{key}': it must be longer than 0 seconds"),
            Some(d) => {
                Ok(Some(chrono::TimeDelta::from_std(d).map_err(|_| anyhow!("invalid value for '{key}': too long"))?))
            }
            None => Ok(None),
        }
    }

    /// Takes a whole-number key out, if given, refusing a value outside `range`.
    fn whole(&mut self, key: &str, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>> {
        match self.values.remove(key) {
            None => Ok(None),
            Some((toml::Value::Integer(n), _)) if range.contains(&n) => Ok(Some(n)),
            Some((other, source)) => bail!(
                "{source}: invalid value {other} for '{key}': expected a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        }
    }

    /// Takes `database_max_connections` out: the pool's size, 1 to 1000 (default 10).
    fn database_max_connections(&mut self) -> Result<u32> {
        Ok(match self.whole("database_max_connections", 1..=1_000)? {
            Some(n) => n as u32,
            None => tessera_sql::ConnectConfig::default().max_connections,
        })
    }

    /// Takes the HTTP server's limits out; each missing one is its default.
    fn limits(&mut self) -> Result<ServerLimits> {
        let mut limits = ServerLimits::default();
        if let Some(d) = self.duration("header_read_timeout")? {
            limits.header_read_timeout = d;
        }
        if let Some(d) = self.duration("request_body_timeout")? {
            limits.request_body_timeout = d;
        }
        if let Some(d) = self.duration("idle_timeout")? {
            limits.idle_timeout = d;
        }
        if let Some(n) = self.whole("max_connections", 1..=1_000_000)? {
            limits.max_connections = n as usize;
        }
        Ok(limits)
    }

    /// Takes the Redis keys out: `None` without `redis_url`.
    fn redis(&mut self) -> Result<Option<RedisSettings>> {
        let redis_url = self.text("redis_url")?.filter(|u| !u.trim().is_empty());
        let key_prefix = self.text("redis_key_prefix")?.unwrap_or_else(|| "tessera:".into());
        let token_store = match self.text("token_store")?.as_deref() {
            None | Some("sql") => TokenStoreKind::Sql,
            Some("redis") => TokenStoreKind::Redis,
            Some(other) => bail!("invalid token_store '{other}': use \"sql\" or \"redis\""),
        };
        let when_down = match self.text("throttle_when_redis_down")?.as_deref() {
            None | Some("fallback") => RedisDown::Fallback,
            Some("refuse") => RedisDown::Refuse,
            Some(other) => bail!("invalid throttle_when_redis_down '{other}': use \"fallback\" or \"refuse\""),
        };
        let allow_eviction = self.flag("redis_allow_eviction")?.unwrap_or(false);
        let keyspace_events = match self.text("redis_keyspace_events")?.as_deref() {
            None | Some("auto") => KeyspaceEvents::Auto,
            Some("on") => KeyspaceEvents::On,
            Some("off") => KeyspaceEvents::Off,
            Some(other) => bail!("invalid redis_keyspace_events '{other}': use \"auto\", \"on\" or \"off\""),
        };
        match redis_url {
            Some(url) => Ok(Some(RedisSettings {
                url: SecretText(url),
                key_prefix,
                token_store,
                when_down,
                allow_eviction,
                keyspace_events,
            })),
            None if token_store == TokenStoreKind::Redis => bail!("token_store = \"redis\" needs redis_url"),
            None => Ok(None),
        }
    }

    /// What is left: the settings, each key checked alone first so that the error names the key
    /// and where its value came from.
    fn settings(self) -> Result<Settings> {
        for (key, (value, source)) in &self.values {
            let mut one = toml::Table::new();
            one.insert(key.clone(), value.clone());
            if let Err(e) = toml::Value::Table(one).try_into::<Settings>() {
                bail!("{source}: invalid value {value} for '{key}': {}", one_line(&e.to_string()));
            }
        }
        let table: toml::Table = self.values.into_iter().map(|(k, (v, _))| (k, v)).collect();
        let settings: Settings = toml::Value::Table(table)
            .try_into()
            .map_err(|e| anyhow!("invalid settings: {}", one_line(&e.to_string())))?;
        settings.validate().map_err(|e| anyhow!("{e}"))?;
        Ok(settings)
    }
}

fn kind_of(key: &str) -> Option<Kind> {
    SERVER_KEYS.iter().chain(SETTING_KEYS).find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

fn known_keys() -> String {
    let mut keys: Vec<&str> = SERVER_KEYS.iter().chain(SETTING_KEYS).map(|(k, _)| *k).collect();
    keys.push("forward_auth");
    keys.join(", ")
}

fn env_value(kind: Kind, raw: &str) -> Result<toml::Value, String> {
    Ok(match kind {
        Kind::Text => toml::Value::String(raw.to_string()),
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => toml::Value::Boolean(true),
            "0" | "false" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err("expected true or false".into()),
        },
        Kind::Int => toml::Value::Integer(raw.trim().parse().map_err(|_| "expected a whole number".to_string())?),
        Kind::List => toml::Value::Array(
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| toml::Value::String(s.into())).collect(),
        ),
    })
}

/// Error texts from toml span several lines; the CLI prints one.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.starts_with('^'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Creates the data directory if needed, with a clear error when it cannot be.
/// Creates the data directory (and its parents) when missing, and makes it private (0700): it
/// holds the database (password hashes, addresses, user agents) and the server key.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
    restrict(dir, 0o700)?;
    let probe = dir.join(".tessera-write-test");
    std::fs::write(&probe, b"").with_context(|| format!("data directory {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// A file holding a secret must not be readable by other users: a warning, or with
/// `strict_permissions` an error.
pub fn check_private(path: &Path, what: &str, strict: bool) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else { return Ok(()) };
        if meta.permissions().mode() & 0o077 != 0 {
            if strict {
                bail!(
                    "{what} and other users can read {}: run chmod 600 {} (strict_permissions is on)",
                    path.display(),
                    path.display()
                );
            }
            tracing::warn!(path = %path.display(), "{what} and other users can read it; run: chmod 600 {}", path.display());
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what, strict);
    Ok(())
}

/// Takes group and other permissions away from `path` (to `mode`) when it has any.
pub fn restrict(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot make {} private (chmod {mode:o})", path.display()))?;
            tracing::info!(path = %path.display(), "made private (mode {mode:o})");
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// The SQLite database file, private (0600) before SQLite opens it: SQLite creates its `-wal` and
/// `-shm` files with the database file's permissions. Existing files are made private too.
pub fn private_sqlite_file(path: &Path) -> Result<()> {
    if !path.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create the database {}", path.display())),
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            restrict(&file, 0o600)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Config> {
        Config::load_from(&Overrides::default(), &env(pairs))
    }

    #[test]
    fn every_setting_key_is_known_and_typed() {
        let json = serde_json::to_value(Settings::default()).unwrap_or_default();
        let mut fields: Vec<&str> =
            json.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        let mut listed: Vec<&str> = SETTING_KEYS.iter().map(|(k, _)| *k).collect();
        fields.sort();
        listed.sort();
        assert_eq!(fields, listed);
    }

    #[test]
    fn defaults_without_file_or_env() {
        let c = load(&[]).expect("config");
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.database_url(), "sqlite://./tessera-data/tessera.db");
        assert_eq!(c.bind.to_string(), DEFAULT_BIND);
        assert_eq!(c.settings, Settings::default());
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tessera.toml");
        std::fs::write(&file, "default_token_ttl = \"2h\"\nrefresh_token_on_login = true\nbind = \"127.0.0.1:9000\"\n")
            .expect("write");
        let file_s = file.display().to_string();
        let c = load(&[("TESSERA_CONFIG", &file_s)]).expect("file");
        assert_eq!(c.settings.default_token_ttl.as_secs(), Some(7_200));
        assert!(c.settings.refresh_token_on_login);
        assert_eq!(c.bind.port(), 9000);

        let c = load(&[
            ("TESSERA_CONFIG", &file_s),
            ("TESSERA_DEFAULT_TOKEN_TTL", "30m"),
            ("TESSERA_REFRESH_TOKEN_ON_LOGIN", "false"),
            ("TESSERA_TOKEN_CHARACTER_LENGTH", "80"),
            ("TESSERA_LOGIN_RESPONSE_USER_FIELDS", "username, id"),
            ("TESSERA_DATA_DIR", "/tmp/x"),
        ])
        .expect("env");
        assert_eq!(c.settings.default_token_ttl.as_secs(), Some(1_800));
        assert!(!c.settings.refresh_token_on_login);
        assert_eq!(c.settings.token_character_length, 80);
        assert_eq!(c.settings.login_response_user_fields, vec!["username", "id"]);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));

        let flags =
            Overrides { data_dir: Some("/tmp/y".into()), bind: Some("0.0.0.0:1".into()), ..Overrides::default() };
        let c = Config::load_from(&flags, &env(&[("TESSERA_CONFIG", &file_s), ("TESSERA_DATA_DIR", "/tmp/x")]))
            .expect("flags");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/y"));
        assert_eq!(c.bind.port(), 1);
    }

    #[test]
    fn bad_values_name_key_value_and_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        let cases = [
            ("tokn_ttl = \"1d\"", "unknown key 'tokn_ttl'"),
            ("default_token_ttl = \"5x\"", "invalid value \"5x\" for 'default_token_ttl': invalid duration '5x'"),
            ("default_throttle_rate = \"2/minute\"", "invalid period 'minute'"),
            ("token_character_length = 20", "the minimum is 54"),
            ("refresh_token_on_login = \"yes\"", "'refresh_token_on_login'"),
            ("bind = \"nowhere\"", "invalid bind address 'nowhere'"),
            ("data_dir = 5", "'data_dir' must be a string"),
            ("this is not toml", "config file"),
        ];
        for (text, want) in cases {
            std::fs::write(&file, text).expect("write");
            let err = load(&[("TESSERA_CONFIG", &file.display().to_string())]).expect_err(text);
            let msg = format!("{err:#}");
            assert!(msg.contains(want), "{text}: {msg}");
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
        let err = load(&[("TESSERA_REFRESH_TOKEN_ON_LOGIN", "maybe")]).expect_err("bool");
        assert!(format!("{err:#}").contains("TESSERA_REFRESH_TOKEN_ON_LOGIN=\"maybe\": expected true or false"));
        let err = load(&[("TESSERA_DEFAULT_TOKEN_TTL", "0s")]).expect_err("ttl");
        assert!(format!("{err:#}").contains("TESSERA_DEFAULT_TOKEN_TTL: invalid value \"0s\""), "{err:#}");
        let err = load(&[("TESSERA_CONFIG", "/nonexistent/tessera.toml")]).expect_err("missing");
        assert!(format!("{err:#}").contains("cannot read config file /nonexistent/tessera.toml"));
    }

    #[test]
    fn redis_settings() {
        let c = load(&[]).expect("none");
        assert!(c.redis.is_none());
        let c = load(&[("TESSERA_REDIS_URL", "redis://:pw@127.0.0.1:6379"), ("TESSERA_TOKEN_STORE", "redis")])
            .expect("redis");
        let redis = c.redis.expect("redis settings");
        assert_eq!(redis.token_store, TokenStoreKind::Redis);
        assert_eq!(redis.when_down, RedisDown::Fallback);
        assert_eq!(redis.key_prefix, "tessera:");
        assert!(!redis.allow_eviction);
        assert_eq!(redis.keyspace_events, KeyspaceEvents::Auto);
        let redis = load(&[
            ("TESSERA_REDIS_URL", "redis://x"),
            ("TESSERA_REDIS_ALLOW_EVICTION", "true"),
            ("TESSERA_REDIS_KEYSPACE_EVENTS", "on"),
        ])
        .expect("redis")
        .redis
        .expect("redis settings");
        assert!(redis.allow_eviction);
        assert_eq!(redis.keyspace_events, KeyspaceEvents::On);
        let err = load(&[("TESSERA_REDIS_URL", "redis://x"), ("TESSERA_REDIS_KEYSPACE_EVENTS", "yes")])
            .expect_err("bad value");
        assert!(format!("{err:#}").contains("invalid redis_keyspace_events 'yes'"), "{err:#}");
        assert!(!format!("{redis:?}").contains("pw"), "the URL may hold a password");
        let err = load(&[("TESSERA_TOKEN_STORE", "redis")]).expect_err("no url");
        assert!(format!("{err:#}").contains("needs redis_url"));
        let err = load(&[("TESSERA_TOKEN_STORE", "memcached")]).expect_err("kind");
        assert!(format!("{err:#}").contains("invalid token_store 'memcached'"));
        let err = load(&[("TESSERA_REDIS_URL", "redis://x"), ("TESSERA_THROTTLE_WHEN_REDIS_DOWN", "panic")])
            .expect_err("mode");
        assert!(format!("{err:#}").contains("invalid throttle_when_redis_down 'panic'"));
    }

    #[test]
    fn database_pool_size() {
        assert_eq!(load(&[]).expect("defaults").database_max_connections, 10);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tessera.toml");
        std::fs::write(&file, "database_max_connections = 40\n").expect("write");
        let file_s = file.display().to_string();
        assert_eq!(load(&[("TESSERA_CONFIG", &file_s)]).expect("file").database_max_connections, 40);
        // The environment wins over the file.
        let c = load(&[("TESSERA_CONFIG", &file_s), ("TESSERA_DATABASE_MAX_CONNECTIONS", "3")]).expect("env");
        assert_eq!(c.database_max_connections, 3);
        for (value, want) in [
            ("0", "invalid value 0 for 'database_max_connections': expected a whole number from 1 to 1000"),
            ("1001", "invalid value 1001 for 'database_max_connections'"),
            ("-1", "invalid value -1 for 'database_max_connections'"),
            ("ten", "TESSERA_DATABASE_MAX_CONNECTIONS=\"ten\": expected a whole number"),
        ] {
            let err = load(&[("TESSERA_DATABASE_MAX_CONNECTIONS", value)]).expect_err(want);
            assert!(format!("{err:#}").contains(want), "{err:#}");
        }
    }

    #[test]
    fn server_limits() {
        let c = load(&[]).expect("defaults");
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.limits.request_body_timeout, Duration::from_secs(30));
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(60));
        assert!((16..=10_000).contains(&c.limits.max_connections), "{}", c.limits.max_connections);

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tessera.toml");
        std::fs::write(&file, "header_read_timeout = \"5s\"\nidle_timeout = 90\nmax_connections = 500\n")
            .expect("write");
        let file_s = file.display().to_string();
        let c = load(&[
            ("TESSERA_CONFIG", &file_s),
            ("TESSERA_REQUEST_BODY_TIMEOUT", "1m"),
            ("TESSERA_MAX_CONNECTIONS", "64"),
        ])
        .expect("limits");
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.limits.request_body_timeout, Duration::from_secs(60));
        assert_eq!(c.limits.max_connections, 64);

        for (pairs, want) in [
            (
                ("TESSERA_IDLE_TIMEOUT", "0s"),
                "TESSERA_IDLE_TIMEOUT: invalid value for 'idle_timeout': invalid duration '0s'",
            ),
            (("TESSERA_HEADER_READ_TIMEOUT", "soon"), "invalid value for 'header_read_timeout'"),
            (("TESSERA_MAX_CONNECTIONS", "0"), "invalid value 0 for 'max_connections'"),
            (("TESSERA_MAX_CONNECTIONS", "-3"), "invalid value -3 for 'max_connections'"),
            (("TESSERA_MAX_CONNECTIONS", "many"), "TESSERA_MAX_CONNECTIONS=\"many\": expected a whole number"),
        ] {
            let err = load(&[pairs]).expect_err(want);
            assert!(format!("{err:#}").contains(want), "{err:#}");
        }
        std::fs::write(&file, "request_body_timeout = true\n").expect("write");
        let err = load(&[("TESSERA_CONFIG", &file_s)]).expect_err("bool");
        assert!(format!("{err:#}").contains("'request_body_timeout' must be a duration"), "{err:#}");
    }

    #[test]
    fn usage_and_metrics_keys() {
        let c = load(&[]).expect("defaults");
        assert!(c.usage && c.metrics_bind.is_none());
        assert_eq!(c.usage_retention, chrono::TimeDelta::days(400));
        let c = load(&[
            ("TESSERA_USAGE", "false"),
            ("TESSERA_USAGE_RETENTION", "30d"),
            ("TESSERA_METRICS_BIND", "127.0.0.1:9464"),
        ])
        .expect("set");
        assert!(!c.usage);
        assert_eq!(c.usage_retention, chrono::TimeDelta::days(30));
        assert_eq!(c.metrics_bind.map(|a| a.port()), Some(9464));
        assert!(load(&[("TESSERA_METRICS_BIND", "off")]).expect("off").metrics_bind.is_none());
        let flag = Overrides { metrics_bind: Some("127.0.0.1:1".into()), ..Overrides::default() };
        let c = Config::load_from(&flag, &env(&[("TESSERA_METRICS_BIND", "127.0.0.1:2")])).expect("flag");
        assert_eq!(c.metrics_bind.map(|a| a.port()), Some(1), "the flag wins");
        for (pair, want) in [
            (("TESSERA_METRICS_BIND", "localhost"), "invalid metrics_bind 'localhost'"),
            (("TESSERA_USAGE_RETENTION", "0s"), "invalid value for 'usage_retention'"),
            (("TESSERA_USAGE_RETENTION", "soon"), "invalid value for 'usage_retention'"),
            (("TESSERA_USAGE", "maybe"), "TESSERA_USAGE=\"maybe\": expected true or false"),
        ] {
            let err = load(&[pair]).expect_err(want);
            let msg = format!("{err:#}");
            assert!(msg.contains(want) && !msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn secret_key_is_redacted() {
        let c = load(&[("TESSERA_SECRET_KEY", "00112233")]).expect("config");
        assert!(!format!("{c:?}").contains("00112233"));
        let c = load(&[("TESSERA_SECRET_KEYS", "1:00112233,0:44556677")]).expect("config");
        assert!(!format!("{c:?}").contains("00112233") && !format!("{c:?}").contains("44556677"));
        let err = load(&[("TESSERA_SECRET_KEYS", "1:00"), ("TESSERA_SECRET_KEY_FILE", "/k")]).expect_err("both");
        assert!(err.to_string().contains("secret_keys or secret_key_file, not both"), "{err}");
    }
}
