//! Tessera on Redis: the multi-device token store ([`RedisTokenStore`]), the cross-instance
//! invalidation bus ([`RedisBus`]) and the shared throttle ([`RedisRateLimiter`], with
//! [`FallbackRateLimiter`] for when Redis is down).
//!
//! All three share one [`RedisConnection`]: a cheap-to-clone handle that reconnects by itself and
//! gives every command a deadline, so nothing waits for Redis forever. Failures surface as
//! [`StoreError::Unavailable`](tessera_core::StoreError::Unavailable) (the server answers 503),
//! [`LimiterError`](tessera_core::throttle::LimiterError) or
//! [`BusError`](tessera_core::bus::BusError), with the URL's password masked.
//!
//! ```no_run
//! # async fn demo(sql: std::sync::Arc<dyn tessera_core::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tessera_core::split::SplitStore;
//! use tessera_redis::{RedisBus, RedisConfig, RedisConnection, RedisRateLimiter, RedisTokenStore};
//!
//! let conn = RedisConnection::new(&RedisConfig { url: "redis://127.0.0.1:6379".into(), ..Default::default() })?;
//! // Users and clients stay in SQL; tokens go to Redis.
//! let tokens = RedisTokenStore::new(conn.clone(), Default::default());
//! let store = SplitStore::new(sql, Arc::new(tokens));
//! let bus = RedisBus::new(conn.clone());
//! let limiter = RedisRateLimiter::new(conn);
//! # let _ = (store, bus, limiter); Ok(()) }
//! ```
//!
//! # Key layout
//!
//! Every key starts with the configured prefix `P` (default `tessera:`). No key or value holds a
//! token: tokens are found by their keyed digest (HMAC-SHA256 under the server key), and the seed
//! stored with them is useless without that key.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P tok:<hex digest>` | hash | `id`, `user_id`, `client_id`, `seed` (hex), `created`, `expiry`, `last_used` (µs since the epoch; absent = never / not yet), `user_agent`, `ip` (absent = none), `key_id` (the server key the token was made with; absent = `0`, a token stored before tokens carried a key id) |
//! | `P pair:<user>:<client>` | string | the digest of the pair's token: one token per (user, client) |
//! | `P id:<id>` | string | the digest of token `id` (ids are random, never a counter: see [`tessera_core::model::fresh_id`]) |
//! | `P user:<user>` | set | the digests of the user's tokens (sessions, logout-all) |
//! | `P client:<client>` | set | the digests of the client's tokens (deleting a client) |
//! | `P throttle:<key>` | sorted set | allowed request times (µs, Redis's clock) of a throttle key |
//! | channel `P invalidations` | pub/sub | `t:<hex digest>`, `u:<id>`, `c:<id>`, space-separated |
//!
//! **Expiry.** All of a token's keys expire (PEXPIREAT) at its expiry plus
//! [`RedisTokenStoreConfig::expired_grace`] (1 day): for that long its owner is told that the
//! token has expired, then Redis forgets it; a token that never expires has no TTL. An index set
//! lives as long as its longest-lived member, and members whose token Redis forgot are dropped
//! when the set is next read. The throttle's sorted sets expire one window after their last write.
//!
//! # Operating it
//!
//! * A standalone Redis (or a primary with replicas); the scripts compute key names, which Redis
//!   Cluster does not allow.
//! * `maxmemory-policy noeviction`: an evicting policy would drop tokens (or parts of them) to
//!   make room — users logged out at random. [`RedisConnection::maxmemory_policy`] reads it and
//!   [`server_config::policy_evicts`] judges it; `tessera serve` refuses to start on an evicting
//!   Redis that holds tokens.
//! * Keyspace notifications (`notify-keyspace-events` with `E` and `g`, plus `x` and `e`) let
//!   [`RedisBus::following_token_keys`] turn token keys deleted by hand, expired or evicted into
//!   token invalidations. FLUSHDB, FLUSHALL, restores and failovers emit no per-key event: nothing
//!   sees them.
//! * Persistence (AOF or RDB) decides what survives a Redis restart: without it, a restart logs
//!   everyone out.
#![deny(missing_docs)]

mod bus;
mod connection;
mod limiter;
pub mod server_config;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use bus::RedisBus;
pub use connection::{DEFAULT_KEY_PREFIX, DEFAULT_URL, RedisConfig, RedisConnection, RedisError};
pub use limiter::{FallbackMode, FallbackRateLimiter, RedisRateLimiter};
pub use store::{RedisTokenStore, RedisTokenStoreConfig};
/// Re-exported from [`tessera_core::net`], where the one set of masking rules lives.
pub use tessera_core::net::redact_url;

pub(crate) use connection::delete_keys;
