//! Configuring a [`Tessera`]: the builder and what it checks.

use crate::analytics::UsageRecorder;
use crate::audit::{AuditRecorder, DEFAULT_RETENTION};
use crate::cache::TokenCache;
use crate::error::{DurinErrors, ErrorRenderer, remember_process_renderer};
use crate::events;
use crate::state::Core;
use crate::tessera::Tessera;
use crate::usage;
use chrono::TimeDelta;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::bus::InvalidationBus;
use tessera_core::store::Store;
use tessera_core::throttle::{MemoryRateLimiter, RateLimiter};
use tessera_core::token::FormatError;
use tessera_core::{AuditSink, Clock, Event, KeyId, KeyRing, Settings, SystemClock, TokenCodec, UsageSink};

/// Why a [`TesseraBuilder`] refused its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A setting is wrong.
    #[error(transparent)]
    Settings(#[from] tessera_core::settings::SettingsError),
    /// The token format is impossible.
    #[error(transparent)]
    TokenFormat(#[from] FormatError),
}

/// Configures a [`Tessera`].
pub struct TesseraBuilder {
    store: Arc<dyn Store>,
    keys: KeyRing,
    on_unknown_key: Option<Arc<dyn Fn(KeyId) + Send + Sync>>,
    settings: Settings,
    clock: Arc<dyn Clock>,
    limiter: Arc<dyn RateLimiter>,
    login_limiter: Option<Arc<dyn RateLimiter>>,
    password_checks: usize,
    renderer: Arc<dyn ErrorRenderer>,
    events: events::Events,
    cache_capacity: usize,
    bus: Option<Arc<dyn InvalidationBus>>,
    cached_auth_routes: bool,
    audit: Option<Arc<dyn AuditSink>>,
    audit_retention: TimeDelta,
    usage: Option<Arc<dyn UsageSink>>,
    usage_retention: TimeDelta,
    metrics: bool,
    #[cfg(feature = "metrics")]
    metrics_facade: bool,
}

impl std::fmt::Debug for TesseraBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TesseraBuilder").field("store", &self.store).finish_non_exhaustive()
    }
}

impl TesseraBuilder {
    pub(crate) fn new(store: Arc<dyn Store>, keys: KeyRing) -> TesseraBuilder {
        TesseraBuilder {
            store,
            keys,
            on_unknown_key: None,
            settings: Settings::default(),
            clock: Arc::new(SystemClock),
            limiter: Arc::new(MemoryRateLimiter::default()),
            login_limiter: None,
            password_checks: crate::routes::PasswordChecks::default_limit(),
            renderer: Arc::new(DurinErrors),
            events: events::Events::default(),
            cache_capacity: 100_000,
            bus: None,
            cached_auth_routes: false,
            audit: None,
            audit_retention: DEFAULT_RETENTION,
            usage: None,
            usage_retention: crate::analytics::DEFAULT_RETENTION,
            metrics: false,
            #[cfg(feature = "metrics")]
            metrics_facade: false,
        }
    }

    /// The settings (durin's and Tessera's); default: [`Settings::default`].
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Calls `hook` when a presented token names a key id the ring does not hold — the token is
    /// refused as invalid either way, without a store lookup. A server whose keys can change at run
    /// time (a key file another process rotates) uses it to reload its ring early, then puts the
    /// new ring in force with [`Tessera::set_key_ring`]. It runs on the request path, for every
    /// such token: keep it cheap and non-blocking (wake a task; rate-limit the reload there).
    pub fn on_unknown_key(mut self, hook: impl Fn(KeyId) + Send + Sync + 'static) -> Self {
        self.on_unknown_key = Some(Arc::new(hook));
        self
    }

    /// The clock; default: the system clock. Tests inject a [`tessera_core::ManualClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The rate limiter behind the throttle and the login throttle; default: in-process, one
    /// for each (so that anonymous login traffic, however much of it, cannot fill the memory of
    /// the authenticated routes' throttle).
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.login_limiter = Some(limiter.clone());
        self.limiter = limiter;
        self
    }

    /// How many password checks (Argon2id: 19 MiB each) login runs at once; default: two per
    /// core. Logins beyond it wait for a free slot.
    pub fn password_check_limit(mut self, limit: usize) -> Self {
        self.password_checks = limit;
        self
    }

    /// How every error the library answers is rendered — the layer's, the guards', the
    /// extractors' and every auth route's; default: durin's `{"detail": ...}` ([`DurinErrors`]).
    /// [`ProblemJson`](crate::ProblemJson) answers RFC 9457 problem+json; a closure is a renderer
    /// too, with its argument's type spelled out:
    ///
    /// ```
    /// # fn demo(store: std::sync::Arc<dyn tessera_axum::core::Store>) -> Result<(), tessera_axum::BuildError> {
    /// use axum::response::{IntoResponse, Response};
    /// use tessera_axum::{AuthError, ProblemJson, Tessera, core::ServerKey};
    ///
    /// let problems = Tessera::builder(store.clone(), ServerKey::generate()).error_renderer(ProblemJson::default()).build()?;
    /// let plain = Tessera::builder(store, ServerKey::generate())
    ///     .error_renderer(|e: &AuthError| -> Response { format!("{}: {e}", e.code()).into_response() })
    ///     .build()?;
    /// # let _ = (problems, plain); Ok(()) }
    /// ```
    pub fn error_renderer(mut self, renderer: impl ErrorRenderer) -> Self {
        self.renderer = Arc::new(renderer);
        self
    }

    /// Calls `hook` with every event (login, logout, token created / renewed / expired / revoked, ...).
    pub fn on_event(mut self, hook: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.events.add(Arc::new(hook));
        self
    }

    /// Records every event in an audit log (`sql::SqlStore` is one: its `audit_events` table);
    /// default: none, events go to the hooks only. Records are buffered and written once a second
    /// by a background task (started with the other background tasks: by [`Tessera::start`] or the
    /// first layer or router), never by the request that caused them, and by
    /// [`Tessera::shutdown`] — which an admin tool that serves nothing must call before it exits.
    /// They carry no token and no password.
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// How long audit records are kept (default [`DEFAULT_AUDIT_RETENTION`](crate::DEFAULT_AUDIT_RETENTION),
    /// 90 days); older ones are pruned in the background, once an hour.
    pub fn audit_retention(mut self, retention: TimeDelta) -> Self {
        self.audit_retention = retention;
        self
    }

    /// Keeps usage analytics in `sink` (`sql::SqlStore` is one: its `usage_daily` tables): per
    /// client per UTC day, requests by outcome, logins by outcome, tokens issued and revoked,
    /// distinct active users, and per token a request count; default: none. Requests are counted
    /// with a few atomic increments; the counts are added to the sink once a minute by the
    /// background task, and by [`Tessera::shutdown`]. Turns counting on, as
    /// [`metrics`](Self::metrics) does.
    pub fn usage(mut self, sink: Arc<dyn UsageSink>) -> Self {
        self.usage = Some(sink);
        self
    }

    /// How long usage counts are kept (default
    /// [`DEFAULT_USAGE_RETENTION`](crate::DEFAULT_USAGE_RETENTION), 400 days); older days are
    /// pruned in the background, once an hour.
    pub fn usage_retention(mut self, retention: TimeDelta) -> Self {
        self.usage_retention = retention;
        self
    }

    /// Counts for Prometheus ([`Tessera::render_metrics`], [`Tessera::metrics_router`]): default
    /// off, and then nothing is counted on the request path (unless [`usage`](Self::usage) is set).
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Every metric also through the [`metrics`](https://docs.rs/metrics) facade, to the recorder
    /// the service installs (before [`Tessera::start`]): the names, labels, units and help texts
    /// of [`Tessera::render_metrics`]. Default off. Turns counting on, as
    /// [`metrics`](Self::metrics) does. Counters and gauges are pushed by a background task once a
    /// second (and at [`Tessera::shutdown`]), never from a request; histogram observations are
    /// recorded as they are made. Feature `metrics`.
    ///
    /// ```no_run
    /// # fn demo(store: std::sync::Arc<dyn tessera_core::store::Store>, key: tessera_core::ServerKey) {
    /// // metrics::set_global_recorder(my_exporter)?;  (before start)
    /// let tessera = tessera_axum::Tessera::builder(store, key).metrics_facade(true).build();
    /// # let _ = tessera; }
    /// ```
    #[cfg(feature = "metrics")]
    pub fn metrics_facade(mut self, on: bool) -> Self {
        self.metrics_facade = on;
        self
    }

    /// The most lookups the cached authenticator keeps (default 100,000).
    pub fn cache_capacity(mut self, entries: usize) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// A bus that pushes invalidations to every instance: Redis pub/sub (`redis::RedisBus`, feature
    /// `redis`), or on PostgreSQL without Redis its `LISTEN`/`NOTIFY` (`sql::PgListenBus`, feature
    /// `postgres`: `.bus(Arc::new(PgListenBus::new(&sql_store).expect("PostgreSQL")))`).
    /// With a bus, the cached authenticator trusts its cache only while subscribed, and the store
    /// should publish its changes on the same bus (`tessera_core::bus::NotifyingStore`) — except
    /// for `PgListenBus`, whose database triggers publish every change themselves.
    pub fn bus(mut self, bus: Arc<dyn InvalidationBus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Authenticate durin's routes through the cached authenticator (default: every request reads
    /// the store). Safe either way: the routes forget what they change at once.
    pub fn cached_auth_routes(mut self, cached: bool) -> Self {
        self.cached_auth_routes = cached;
        self
    }

    /// Checks the configuration and builds.
    pub fn build(self) -> Result<Tessera, BuildError> {
        self.settings.validate()?;
        let codec =
            TokenCodec::new(self.keys.clone(), &self.settings.token_prefix, self.settings.token_character_length)?;
        let ttl = self.settings.token_cache_timeout.to_std().unwrap_or(Duration::from_secs(60));
        let www_authenticate: Arc<str> = Arc::from(self.settings.auth_header_prefix.as_str());
        let cache = TokenCache::new(self.cache_capacity, ttl);
        if self.bus.is_some() {
            cache.expect_bus();
        }
        let core = Core {
            store: self.store,
            keys: crate::state::Keys::new(self.keys, codec, self.on_unknown_key),
            cache,
            bus: self.bus,
            cached_auth_routes: self.cached_auth_routes,
            settings: self.settings,
            clock: self.clock,
            usage: usage::UsageBuffer::default(),
            events: self.events,
            audit: self.audit.map(|sink| AuditRecorder::new(sink, self.audit_retention)),
            meter: {
                #[cfg(not(feature = "metrics"))]
                let facade = false;
                #[cfg(feature = "metrics")]
                let facade = self.metrics_facade;
                (self.metrics || self.usage.is_some() || facade).then(|| {
                    #[cfg_attr(not(feature = "metrics"), allow(unused_mut))]
                    let mut meter = crate::meter::Meter::default();
                    meter.exported = self.metrics || facade;
                    #[cfg(feature = "metrics")]
                    {
                        meter.to_facade = facade;
                    }
                    Arc::new(meter)
                })
            },
            analytics: self.usage.map(|sink| UsageRecorder::new(sink, self.usage_retention)),
            limiter: self.limiter,
            login_limiter: self.login_limiter.unwrap_or_else(|| Arc::new(MemoryRateLimiter::default())),
            password_checks: crate::routes::PasswordChecks::new(self.password_checks),
            renderer: self.renderer,
            www_authenticate,
            legacy: Default::default(),
        };
        remember_process_renderer(&core.renderer, &core.www_authenticate);
        Ok(Tessera::from_core(core))
    }
}
