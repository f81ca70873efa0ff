//! Tessera for axum: per-API-client token authentication with durin's wire contract.
//!
//! Build a [`Tessera`] from a store and the server key, then
//! - add its authentication [layer](Tessera::layer) (or the [cached](Tessera::cached_layer) one)
//!   to the routes that may see tokens,
//! - read the caller with the [`Authenticated`] / [`MaybeAuthenticated`] extractors,
//! - restrict routes to clients and throttle them with a [`Guard`],
//! - and mount durin's routes (login, refresh, logout, logoutall, sessions, apiaccess) with
//!   [`Tessera::auth_router`].
//!
//! ```
//! use axum::{Router, routing::get};
//! use std::sync::Arc;
//! use tessera_axum::{Authenticated, Tessera};
//! use tessera_core::{ServerKey, Settings};
//!
//! async fn hello(auth: Authenticated) -> String {
//!     format!("hello {}", auth.user.username)
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = tessera_sql::SqlStore::connect("sqlite://app.db").await?;
//! store.migrate().await?;
//! let tessera = Tessera::builder(Arc::new(store), ServerKey::generate())
//!     .settings(Settings::default())
//!     .on_event(|event| tracing::info!(?event, "auth event"))
//!     .build()?;
//! tessera.start().await?;
//!
//! let app: Router = Router::new()
//!     .route("/hello", get(hello))
//!     .route("/web-only", get(hello).route_layer(tessera.guard().allow_clients(["web"]).throttled()))
//!     .layer(tessera.cached_layer())
//!     .nest("/api/auth", tessera.auth_router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let _ = (app, listener);
//! // axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! Serve with `into_make_service_with_connect_info::<SocketAddr>()` so logins record the client's
//! address and the login throttle can key on it.
#![deny(missing_docs)]
// Handlers return `Result<_, Response>`: an early response is the idiomatic axum error.
#![allow(clippy::result_large_err)]

mod authn;
mod cache;
mod client_ip;
mod error;
mod events;
mod extract;
mod guard;
mod header;
mod layer;
mod routes;
pub mod throttle;
mod usage;

pub use error::{AuthError, DurinErrors, ErrorRenderer, Rejection};
pub use events::EventHook;
pub use extract::{Authenticated, MaybeAuthenticated};
pub use guard::{Guard, GuardService};
pub use layer::{AuthLayer, AuthService};

use authn::Core;
use axum::Router;
use cache::TokenCache;
use chrono::TimeDelta;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tessera_core::bus::InvalidationBus;
use tessera_core::store::{Store, StoreError};
use tessera_core::token::FormatError;
use tessera_core::{AuthToken, Client, Clock, Event, ServerKey, Settings, SystemClock, TokenCodec, TokenSecret, User};
use throttle::{MemoryRateLimiter, RateLimiter};

/// Who is calling: the authenticated user, the client and the token of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user: User,
    /// The API client the token belongs to.
    pub client: Client,
    /// The token (never the secret: its digest and metadata).
    pub token: AuthToken,
}

/// How often buffered last-used times and sliding expiries are written.
const FLUSH_EVERY: Duration = Duration::from_secs(60);
/// How often the invalidation log is read.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);
/// Invalidations are re-read for this long, so that a change committed late (PostgreSQL assigns
/// sequence numbers before commit) or a lookup that raced a change is still corrected.
const FOLLOW_OVERLAP: Duration = Duration::from_secs(3);
/// Invalidation log rows older than this are pruned.
const INVALIDATION_RETENTION: TimeDelta = TimeDelta::hours(1);

/// Tessera for one axum application. Cheap to clone.
#[derive(Clone)]
pub struct Tessera {
    core: Arc<Core>,
    background: Arc<OnceLock<()>>,
}

impl std::fmt::Debug for Tessera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

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
    key: ServerKey,
    settings: Settings,
    clock: Arc<dyn Clock>,
    limiter: Arc<dyn RateLimiter>,
    renderer: Arc<dyn ErrorRenderer>,
    events: events::Events,
    cache_capacity: usize,
    bus: Option<Arc<dyn InvalidationBus>>,
    cached_auth_routes: bool,
}

impl std::fmt::Debug for TesseraBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TesseraBuilder").field("store", &self.store).finish_non_exhaustive()
    }
}

impl TesseraBuilder {
    /// The settings (durin's and Tessera's); default: [`Settings::default`].
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The clock; default: the system clock. Tests inject a [`tessera_core::ManualClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The rate limiter behind the throttle and the login throttle; default: in-process.
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// How every rejection is rendered; default: durin's `{"detail": ...}`.
    pub fn error_renderer(mut self, renderer: impl ErrorRenderer) -> Self {
        self.renderer = Arc::new(renderer);
        self
    }

    /// Calls `hook` with every event (login, logout, token created / renewed / expired / revoked, ...).
    pub fn on_event(mut self, hook: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.events.add(Arc::new(hook));
        self
    }

    /// The most lookups the cached authenticator keeps (default 100,000).
    pub fn cache_capacity(mut self, entries: usize) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// A bus that pushes invalidations to every instance (Redis pub/sub with `tessera-redis`).
    /// With a bus, the cached authenticator trusts its cache only while subscribed, and the store
    /// should publish its changes on the same bus (`tessera_core::bus::NotifyingStore`).
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
        let codec = TokenCodec::new(self.key, &self.settings.token_prefix, self.settings.token_character_length)?;
        let ttl = self.settings.token_cache_timeout.to_std().unwrap_or(Duration::from_secs(60));
        let www_authenticate: Arc<str> = Arc::from(self.settings.auth_header_prefix.as_str());
        let cache = TokenCache::new(self.cache_capacity, ttl);
        if self.bus.is_some() {
            cache.expect_bus();
        }
        let core = Core {
            store: self.store,
            codec,
            cache,
            bus: self.bus,
            cached_auth_routes: self.cached_auth_routes,
            settings: self.settings,
            clock: self.clock,
            usage: usage::UsageBuffer::default(),
            events: self.events,
            limiter: self.limiter,
            renderer: self.renderer,
            www_authenticate,
        };
        Ok(Tessera { core: Arc::new(core), background: Arc::new(OnceLock::new()) })
    }
}

impl Tessera {
    /// Starts configuring Tessera over `store`, with the server `key`.
    pub fn builder(store: Arc<dyn Store>, key: ServerKey) -> TesseraBuilder {
        TesseraBuilder {
            store,
            key,
            settings: Settings::default(),
            clock: Arc::new(SystemClock),
            limiter: Arc::new(MemoryRateLimiter::default()),
            renderer: Arc::new(DurinErrors),
            events: events::Events::default(),
            cache_capacity: 100_000,
            bus: None,
            cached_auth_routes: false,
        }
    }

    /// Prepares for serving: creates the API-access client when one is configured and missing,
    /// and starts the background tasks (the last-used writer and the invalidation follower).
    /// Call it once at start-up; layers start the tasks themselves if it was not called.
    pub async fn start(&self) -> Result<(), StoreError> {
        routes::api_access_client(&self.core).await?;
        self.ensure_background();
        Ok(())
    }

    /// Writes what is buffered (last-used times, sliding expiries). Call it at graceful shutdown.
    pub async fn shutdown(&self) {
        if let Err(e) = self.core.usage.flush(self.core.store.as_ref(), self.core.now()).await {
            tracing::warn!(error = %e, "could not write last-used times at shutdown");
        }
    }

    /// The authentication layer, reading the store on every request.
    pub fn layer(&self) -> AuthLayer {
        self.ensure_background();
        AuthLayer::new(self.core.clone(), false)
    }

    /// The authentication layer with the cached authenticator: verified lookups are kept up to
    /// `token_cache_timeout`, and dropped at once when this process changes a token and within a
    /// second when another process does.
    pub fn cached_layer(&self) -> AuthLayer {
        self.ensure_background();
        AuthLayer::new(self.core.clone(), true)
    }

    /// A guard to restrict a route to clients and throttle it (apply inside the layer).
    pub fn guard(&self) -> Guard {
        Guard::new()
    }

    /// durin's routes, to mount with `Router::nest` (the server uses `/api/auth`). They carry
    /// their own authentication and the per-(user, client) throttle.
    pub fn auth_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        self.ensure_background();
        routes::router(self.core.clone())
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.core.settings
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.core.store
    }

    /// The token codec (to issue tokens outside the login route, e.g. from an admin tool).
    pub fn codec(&self) -> &TokenCodec {
        &self.core.codec
    }

    /// Issues a token for `user` on `client` outside the login route — an admin tool, or a test that
    /// needs a token in one line. Like login it returns the pair's token when one exists (the same
    /// token, re-derived), and a fresh one when there is none or it has expired.
    pub async fn issue_token(&self, user: &User, client: &Client) -> Result<(AuthToken, TokenSecret), StoreError> {
        let now = self.core.now();
        if let Some(existing) = self.core.store.token_for(user.id, client.id).await? {
            if !existing.has_expired(now) {
                let secret = self.core.codec.derive(&existing.seed);
                return Ok((existing, secret));
            }
            self.core.store.delete_token(existing.id).await?;
            self.core.forget(&existing);
        }
        let issued = self.core.codec.issue();
        let new = tessera_core::NewToken::issued(&issued, user.id, client, now);
        let (token, created) = self.core.store.get_or_create_token(new).await?;
        let secret = if created { issued.token } else { self.core.codec.derive(&token.seed) };
        Ok((token, secret))
    }

    /// Forgets everything the throttle counted (tests; an admin "reset").
    pub async fn reset_throttle(&self) {
        self.core.limiter.reset().await;
    }

    /// How many lookups the cache holds now.
    pub fn cached_entries(&self) -> usize {
        self.core.cache.len()
    }

    /// Drops every cached lookup.
    pub fn clear_cache(&self) {
        self.core.cache.clear();
    }

    fn ensure_background(&self) {
        if self.background.get().is_some() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if self.background.set(()).is_err() {
            return;
        }
        tokio::spawn(flush_usage(Arc::downgrade(&self.core)));
        tokio::spawn(follow_invalidations(Arc::downgrade(&self.core)));
        if let Some(bus) = self.core.bus.clone() {
            tokio::spawn(follow_bus(bus, Arc::downgrade(&self.core)));
        }
    }
}

/// Keeps a subscription to the bus, applying every change to the cache; while it is down the cache
/// is not trusted. Resubscribes by itself, pausing 100 ms to 2 s between attempts. Logs a warning
/// once per outage and an info line when the subscription is back.
async fn follow_bus(bus: Arc<dyn InvalidationBus>, core: Weak<Core>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let in_outage = AtomicBool::new(false);
    let mut pause = Duration::from_millis(100);
    loop {
        if core.strong_count() == 0 {
            return;
        }
        let subscribed = AtomicBool::new(false);
        let on_ready = || {
            subscribed.store(true, Ordering::Release);
            if let Some(core) = core.upgrade() {
                core.cache.set_subscribed(true);
            }
            if in_outage.swap(false, Ordering::AcqRel) {
                tracing::info!("invalidation bus subscribed again; the token cache is trusted again");
            }
        };
        let on_change = |change: tessera_core::Invalidation| {
            if let Some(core) = core.upgrade() {
                core.cache.invalidate(&change);
            }
        };
        let error = bus.subscribe(&on_ready, &on_change).await;
        match core.upgrade() {
            Some(core) => core.cache.set_subscribed(false),
            None => return,
        }
        if subscribed.load(Ordering::Acquire) {
            pause = Duration::from_millis(100);
        }
        if !in_outage.swap(true, Ordering::AcqRel) {
            tracing::warn!(error = %error, "no invalidation bus; the token cache is bypassed until it is back");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Writes last-used times and sliding expiries once a minute, while the `Tessera` lives.
async fn flush_usage(core: Weak<Core>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(core) = core.upgrade() else { return };
        if let Err(e) = core.usage.flush(core.store.as_ref(), core.now()).await {
            tracing::warn!(error = %e, "could not write last-used times; will retry");
        }
    }
}

/// Follows the store's invalidation log so that changes made by other processes reach the cache.
async fn follow_invalidations(core: Weak<Core>) {
    let mut seen: std::collections::VecDeque<(std::time::Instant, i64)> = std::collections::VecDeque::new();
    let mut last_prune = std::time::Instant::now();
    let mut failing = false;
    loop {
        let Some(core) = core.upgrade() else { return };
        let result = async {
            if seen.is_empty() {
                let latest = core.store.latest_invalidation().await?;
                seen.push_back((std::time::Instant::now(), latest));
            }
            // Re-read from the newest position that is at least FOLLOW_OVERLAP old.
            while seen.len() > 1 && seen[1].0.elapsed() >= FOLLOW_OVERLAP {
                seen.pop_front();
            }
            let from = seen.front().map(|(_, seq)| *seq).unwrap_or(0);
            let changes = core.store.invalidations_after(from).await?;
            let newest = changes.iter().map(|(seq, _)| *seq).max().unwrap_or(from);
            for (_, change) in &changes {
                core.cache.invalidate(change);
            }
            seen.push_back((std::time::Instant::now(), newest.max(seen.back().map(|s| s.1).unwrap_or(0))));
            Ok::<_, StoreError>(())
        }
        .await;
        match result {
            Ok(()) => {
                core.cache.mark_synced();
                if failing {
                    tracing::info!("invalidation log reachable again; the token cache is trusted again");
                    failing = false;
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read the invalidation log; the token cache is bypassed until it can");
                    failing = true;
                }
            }
        }
        if last_prune.elapsed() >= Duration::from_secs(300) {
            last_prune = std::time::Instant::now();
            let before = core.now() - INVALIDATION_RETENTION;
            if let Err(e) = core.store.prune_invalidations(before).await {
                tracing::debug!(error = %e, "could not prune the invalidation log");
            }
        }
        drop(core);
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}
