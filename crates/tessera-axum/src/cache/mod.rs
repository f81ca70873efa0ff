//! The cached authenticator's memory: verified lookups by digest, bounded in size, kept at most
//! `token_cache_timeout`, and dropped as soon as the store says a token, user or client changed.
//!
//! Only *positive* verdicts are cached. A change made by this process removes the entry at once;
//! a change made elsewhere arrives through the store's invalidation log, which a background task
//! follows (every 200 ms). While that task has not heard from the store for a second, the cache is
//! not trusted at all: every request goes to the store. So a revoked token is never accepted from
//! the cache for more than about a second after the revocation, wherever it was made. With a bus
//! (Redis pub/sub) changes arrive in milliseconds; while its subscription is down the cache is not
//! trusted either, and it is emptied when the subscription drops.

use crate::principal::Principal;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_core::TokenDigest;
use tessera_core::store::Invalidation;

mod follow;

pub(crate) use follow::{follow_bus, follow_invalidations};

const SHARDS: usize = 16;

/// How stale the invalidation log may be before the cache stops being trusted.
pub(crate) const MAX_SYNC_AGE: Duration = Duration::from_secs(1);

pub(crate) struct TokenCache {
    shards: Vec<Mutex<HashMap<TokenDigest, Entry>>>,
    max_per_shard: usize,
    ttl: Duration,
    /// Milliseconds since `epoch` of the last successful sync with the invalidation log (0: never).
    synced_at: AtomicU64,
    /// Whether a bus is configured, and whether its subscription is in place.
    bus_configured: AtomicBool,
    bus_subscribed: AtomicBool,
    epoch: Instant,
}

#[derive(Clone)]
struct Entry {
    principal: Arc<Principal>,
    /// The token's expiry as the store held it when the principal was read (the principal's own
    /// may be later: a sliding extension this process has not written yet).
    stored_expiry: Option<DateTime<Utc>>,
    inserted: Instant,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("len", &self.len()).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl TokenCache {
    pub(crate) fn new(max_entries: usize, ttl: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            max_per_shard: (max_entries / SHARDS).max(1),
            ttl,
            synced_at: AtomicU64::new(0),
            bus_configured: AtomicBool::new(false),
            bus_subscribed: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    fn shard(&self, digest: &TokenDigest) -> std::sync::MutexGuard<'_, HashMap<TokenDigest, Entry>> {
        // The digest is already uniformly random: its first byte picks the shard.
        let m = &self.shards[digest.0[0] as usize % SHARDS];
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether entries may be trusted: the invalidation log was read recently enough and, with a
    /// bus, its subscription is in place (a dropped subscription may have missed messages).
    pub(crate) fn trusted(&self) -> bool {
        let at = self.synced_at.load(Ordering::Acquire);
        let log_fresh = at != 0 && self.epoch.elapsed().saturating_sub(Duration::from_millis(at)) < MAX_SYNC_AGE;
        log_fresh && (!self.bus_configured.load(Ordering::Acquire) || self.bus_subscribed.load(Ordering::Acquire))
    }

    /// A bus will carry invalidations: trust the cache only while subscribed.
    pub(crate) fn expect_bus(&self) {
        self.bus_configured.store(true, Ordering::Release);
    }

    /// The bus subscription is in place (`true`) or lost (`false`). Either change empties the
    /// cache: what was published while no subscription listened is gone for good, so nothing read
    /// before the subscription was (re)established can be trusted.
    pub(crate) fn set_subscribed(&self, subscribed: bool) {
        if self.bus_subscribed.swap(subscribed, Ordering::AcqRel) != subscribed {
            self.clear();
        }
    }

    pub(crate) fn mark_synced(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.synced_at.store(ms.max(1), Ordering::Release);
    }

    /// The principal, and the expiry the store held when it was read.
    pub(crate) fn get(&self, digest: &TokenDigest) -> Option<(Arc<Principal>, Option<DateTime<Utc>>)> {
        let mut shard = self.shard(digest);
        let entry = shard.get(digest)?;
        if entry.inserted.elapsed() >= self.ttl {
            shard.remove(digest);
            return None;
        }
        Some((entry.principal.clone(), entry.stored_expiry))
    }

    pub(crate) fn insert(&self, digest: TokenDigest, principal: Arc<Principal>, stored_expiry: Option<DateTime<Utc>>) {
        let mut shard = self.shard(&digest);
        if shard.len() >= self.max_per_shard && !shard.contains_key(&digest) {
            let ttl = self.ttl;
            shard.retain(|_, e| e.inserted.elapsed() < ttl);
            if shard.len() >= self.max_per_shard
                && let Some(victim) = shard.keys().next().copied()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(digest, Entry { principal, stored_expiry, inserted: Instant::now() });
    }

    /// Replaces an entry's principal, keeping its age; nothing when the entry is gone.
    pub(crate) fn replace(&self, digest: TokenDigest, principal: Arc<Principal>) {
        if let Some(entry) = self.shard(&digest).get_mut(&digest) {
            entry.principal = principal;
        }
    }

    pub(crate) fn remove(&self, digest: &TokenDigest) {
        self.shard(digest).remove(digest);
    }

    /// Applies one change from the invalidation log.
    pub(crate) fn invalidate(&self, change: &Invalidation) {
        match change {
            Invalidation::Token(digest) => self.remove(digest),
            Invalidation::User(user) => self.retain(|p| p.user.id != *user),
            Invalidation::Client(client) => self.retain(|p| p.client.id != *client),
        }
    }

    fn retain(&self, keep: impl Fn(&Principal) -> bool) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, e| keep(&e.principal));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }

    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}
