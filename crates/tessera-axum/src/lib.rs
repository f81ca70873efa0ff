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
//! use tessera_axum::core::{ServerKey, Settings};
//!
//! async fn hello(auth: Authenticated) -> String {
//!     format!("hello {}", auth.user.username)
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = tessera_axum::sql::SqlStore::connect("sqlite://app.db").await?;
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
//!
//! Every login, logout and token or admin change is an [`Event`](core::Event) for the
//! [`on_event`](TesseraBuilder::on_event) hooks; with [`audit`](TesseraBuilder::audit) (the SQL
//! store is a sink) each is also written to an audit log, in batches off the request path, flushed
//! by [`Tessera::shutdown`]. User and client changes go through [`Tessera::create_user`],
//! [`Tessera::update_client`] and their siblings, so they emit their events too.
//!
//! # Rotating the server key
//!
//! The builder takes one [`ServerKey`](core::ServerKey) (a ring of one key, id `0`) or a
//! [`KeyRing`](core::KeyRing): ordered keys with one-character ids, the first current. Every token
//! names its key, so old keys keep verifying their tokens while new ones are made with the current
//! key. Put a new ring in force at run time with [`Tessera::set_key_ring`] (for instance when
//! [`TesseraBuilder::on_unknown_key`] says a token names a key this process has not loaded), and
//! before dropping a key revoke its tokens with [`Tessera::revoke_key_tokens`] so every instance
//! forgets them.
//!
//! ```
//! # fn demo(store: std::sync::Arc<dyn tessera_axum::core::Store>, old: tessera_axum::core::ServerKey) -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_axum::Tessera;
//! use tessera_axum::core::{KeyId, KeyRing};
//!
//! let ring = KeyRing::from(old); // the key tokens were made with so far: id 0
//! let tessera = Tessera::builder(store, ring.clone()).build()?;
//! let (rotated, new_id) = ring.rotated()?; // a fresh random key, current, under the next free id
//! tessera.set_key_ring(rotated.clone()); // new tokens: key `new_id`; key 0 still verifies
//! assert_eq!(tessera.codec().current_key(), new_id);
//! // Later: revoke key 0's tokens (`revoke_key_tokens`), then drop it.
//! tessera.set_key_ring(rotated.without(KeyId::LEGACY)?);
//! # Ok(()) }
//! ```
//!
//! New here? The [`guide`] walks a small service from the first dependency to its first
//! in-process test (it is built with the `testing` feature; docs.rs builds every feature).
//!
//! # Features
//!
//! One dependency is enough: [`core`] is Tessera's domain crate, `sql` and `redis` the stores,
//! each behind its feature. What they cost a minimal service (axum 0.8 + tokio + tessera-axum;
//! crates compiled, and CPU time of a clean debug build on a shared 2-core machine, ±5 s; the
//! guide's first section says more):
//!
//! | features | adds | crates | build CPU |
//! |---|---|---|---|
//! | none | the layer, extractors, guards and routes over a `Store` you bring | 88 | 55 s |
//! | `sqlite` (default) | `sql::SqlStore` on SQLite files, SQLite compiled in | 158 | ~100 s |
//! | `sqlite` + `postgres` | `sql::SqlStore` on PostgreSQL too | 174 | ~108 s |
//! | `sqlite` + `redis` | `redis`: the multi-device token store, the invalidation bus, the shared throttle | 170 | ~121 s |
//! | `testing` | `testing::TestKit` (needs `sqlite`) | +5 | |
//!
//! A backend whose feature is off is not compiled, and a URL for it fails to connect with a
//! `sql::ConnectError::NotCompiledIn` that names the feature.
//!
//! # Map of the crate
//!
//! | file | what it is |
//! |---|---|
//! | `tessera.rs` | [`Tessera`], the handle: layers, guards, the auth router, the token lifecycle for admin tools, the background tasks |
//! | `builder.rs` | [`TesseraBuilder`]: store, key, settings, clock, limiter, renderer, hooks, bus |
//! | `state.rs` | `Core`: what one instance shares between its layers, routes and tasks |
//! | `authn.rs` | verifying a request's token (header, format, cache, store, expiry, user) |
//! | `sliding.rs` | sliding expiry: the one place it is decided |
//! | `tokens.rs` | the token lifecycle: the only path that issues, renews, expires or revokes |
//! | `admin.rs` | user and client changes for the CLI and admin tools, each with its event |
//! | `staff.rs` | staff sessions of the admin UI (`tessera-admin`): tokens of the reserved client [`STAFF_CLIENT`], never valid on the API |
//! | `cache/` | the cached authenticator, and its followers (invalidation log, bus) with every timing that bounds revocation |
//! | `usage.rs` | last-used times and sliding extensions, buffered and flushed once a minute |
//! | `layer.rs`, `extract.rs`, `guard.rs` | the layer, the extractors, client permissions and the throttle |
//! | `error.rs` | [`AuthError`] (every error the library answers), renderers, [`Rejection`] |
//! | `routes/` | durin's auth routes |
//! | `header.rs`, `client_ip.rs`, `events.rs` | the `Authorization` header, the client's address, event hooks |
//! | `forward/` | [`forward`]: forward-auth for nginx, Traefik, Caddy and Envoy — one decision, one adapter per convention |
//! | `serve.rs` | [`serve::serve`]: serving with header, body and idle timeouts and a connection cap |
#![deny(missing_docs)]

/// Tessera's domain crate, re-exported so that a service needs one dependency: `ServerKey`,
/// `Settings`, `User`, `Client`, the store traits, events, ...
pub use tessera_core as core;

mod admin;
mod analytics;
mod audit;
mod authn;
mod builder;
mod cache;
mod client_ip;
mod error;
mod events;
mod extract;
#[cfg(feature = "metrics")]
mod facade;
pub mod forward;
mod guard;
mod header;
mod layer;
mod legacy;
mod meter;
mod principal;
mod routes;
pub mod serve;
mod sliding;
mod staff;
mod state;
mod tessera;
mod tokens;
mod usage;

#[cfg(feature = "testing")]
pub mod testing;

/// Entry points for the cargo-fuzz targets (`fuzz/`): internals, built only with `--cfg fuzzing`.
#[cfg(fuzzing)]
#[doc(hidden)]
#[allow(missing_docs, missing_debug_implementations)]
pub mod fuzzing {
    use serde_json::Value;

    /// What [`authorization`] found.
    #[derive(Debug)]
    pub enum Credentials<'a> {
        Anonymous,
        Token(&'a [u8]),
        Invalid(crate::AuthError),
    }

    fn convert(c: crate::header::Credentials<'_>) -> Credentials<'_> {
        match c {
            crate::header::Credentials::Anonymous => Credentials::Anonymous,
            crate::header::Credentials::Token(t) => Credentials::Token(t),
            crate::header::Credentials::Invalid(e) => Credentials::Invalid(e),
        }
    }

    /// The parse of one `Authorization` value.
    pub fn authorization<'a>(value: Option<&'a [u8]>, keyword: &str) -> Credentials<'a> {
        convert(crate::header::parse(value, keyword))
    }

    /// The credentials of a request's headers (several `Authorization` headers included).
    pub fn credentials<'a>(headers: &'a axum::http::HeaderMap, keyword: &str) -> Credentials<'a> {
        convert(crate::header::credentials(headers, keyword))
    }

    /// The auth routes' body parser.
    pub async fn body(req: axum::extract::Request) -> Result<Value, crate::AuthError> {
        crate::routes::body::parse(req).await
    }

    /// The largest body the auth routes read.
    pub const MAX_BODY_BYTES: usize = crate::routes::body::MAX_BODY_BYTES;
}

#[doc = include_str!("guide.md")]
#[cfg(all(feature = "sqlite", feature = "testing"))]
pub mod guide {}

/// The SQL store (SQLite with the `sqlite` feature, PostgreSQL with `postgres`): `sql::SqlStore`.
/// A URL for a backend whose feature is off fails to connect with
/// [`ConnectError::NotCompiledIn`](tessera_sql::ConnectError::NotCompiledIn), which names the feature.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use tessera_sql as sql;

/// Redis (feature `redis`): the multi-device token store (`redis::RedisTokenStore`), the
/// cross-instance invalidation bus (`redis::RedisBus`) and the shared throttle
/// (`redis::RedisRateLimiter`).
#[cfg(feature = "redis")]
pub use tessera_redis as redis;

pub use analytics::DEFAULT_RETENTION as DEFAULT_USAGE_RETENTION;
pub use audit::DEFAULT_RETENTION as DEFAULT_AUDIT_RETENTION;
pub use builder::{BuildError, TesseraBuilder};
pub use error::{AuthError, DurinErrors, ErrorRenderer, FieldErrors, ProblemJson, Rejection};
pub use events::EventHook;
pub use extract::{Authenticated, MaybeAuthenticated};
pub use guard::{Guard, GuardFuture, GuardService};
pub use layer::{AuthFuture, AuthLayer, AuthService};
pub use principal::Principal;
/// Every path [`Tessera::auth_router`] serves (under its mount point), grouped by view.
pub use routes::PATHS as AUTH_ROUTE_PATHS;
pub use routes::PasswordChecks;
pub use staff::{STAFF_CLIENT, StaffLogin, StaffSessionPolicy, acting_as_staff};
pub use tessera::Tessera;
pub use tessera_core::throttle::{Budget, Decision, Grant, LimiterError, MemoryRateLimiter, RateLimiter, Reservation};
pub use tokens::{IfPairHasToken, PairToken, PairTokenError, PendingToken, TokenRequest};
