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

use crate::meter::ClientMeter;
use crate::principal::Principal;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_core::store::Invalidation;
use tessera_core::{KeyId, TokenDigest};

mod follow;
mod siphash;

pub(crate) use follow::{follow_bus, follow_invalidations};

const SHARDS: usize = 16;

/// How stale the invalidation log may be before the cache stops being trusted.
pub(crate) const MAX_SYNC_AGE: Duration = Duration::from_secs(1);

/// How long a removal is remembered: longer than any store read can take, so a lookup that read
/// the store before a revocation cannot put its stale verdict back after the revocation removed it.
const TOMBSTONE_KEEP: Duration = Duration::from_secs(30);

/// A presented token's name in the cache: the SipHash-1-3 128-bit tag of its text under a random
/// 128-bit key of this process (`siphash.rs`). A cache hit finds the token's digest through it, so
/// that a verdict already cached costs no HMAC: the keyed digest (three SHA-256 blocks) is computed
/// on a miss only. It is a keyed hash, not a digest: it never leaves the process, and to make a
/// forged token share a cached token's name one would need the key (a blind guess succeeds with
/// odds of about 2^-128 per entry). What it names is the digest the token had when it was checked
/// in full, and the server key its text named; every removal, tombstone and invalidation still
/// works on digests.
///
/// Because a name stands for one exact text that passed `TokenCodec::check` (format, checksum, a
/// key of the ring), a hit needs neither that check again nor even UTF-8 validation: only that the
/// key it named is still in the ring, which the caller asks (a ring can lose a key at run time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Presented(u64, u64);

/// Hashes keys that are already uniformly random and not chosen by a caller — keyed digests and
/// [`Presented`] names — by taking their bits as they are, instead of hashing them again.
#[derive(Default, Clone, Copy)]
struct Random;

impl std::hash::BuildHasher for Random {
    type Hasher = RandomBits;

    fn build_hasher(&self) -> RandomBits {
        RandomBits(0)
    }
}

#[derive(Default)]
struct RandomBits(u64);

impl std::hash::Hasher for RandomBits {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A digest: its first eight bytes (a length prefix, if any, arrives through write_usize).
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(29) ^ n;
    }

    fn write_usize(&mut self, _length: usize) {
        // Slices' length prefixes: the same for every key of a map here.
    }
}

#[derive(Default)]
struct Shard {
    entries: HashMap<TokenDigest, Entry, Random>,
    /// Tokens removed recently, and when.
    removed: HashMap<TokenDigest, Instant, Random>,
    /// Presented tokens' names, to their digests and the key their text named (see
    /// [`Presented`]). Not cleaned when an entry goes: a name whose digest has no entry is a miss,
    /// after which the token is checked in full.
    aliases: HashMap<Presented, (TokenDigest, KeyId), Random>,
}

/// An instant as the cache reads it: whole milliseconds since its epoch ([`TokenCache::moment`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moment(u64);

/// What [`TokenCache::get`] finds: the principal, the expiry the store held when it was read, and
/// the client's counters (with metrics or analytics on).
pub(crate) type Cached = (Arc<Principal>, Option<DateTime<Utc>>, Option<Arc<ClientMeter>>);

pub(crate) struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    /// The key of [`Presented`] names: random, drawn for each cache.
    name_key: (u64, u64),
    /// Milliseconds since `epoch` of the last change that touched every entry (a user or client
    /// invalidated, the cache cleared): a lookup that read the store before it is not kept.
    owners_changed_at: AtomicU64,
    max_per_shard: usize,
    ttl: Duration,
    /// `ttl` in whole milliseconds, for [`TokenCache::get_at`]'s comparison.
    ttl_ms: u64,
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
    /// `inserted` in milliseconds since the cache's epoch, for [`TokenCache::get_at`]: the
    /// request's [`Moment`] is then all the clock a lookup needs.
    inserted_ms: u64,
    /// The client's counters (metrics and analytics on), resolved once per entry, not per request.
    meter: Option<Arc<ClientMeter>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("len", &self.len()).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl TokenCache {
    pub(crate) fn new(max_entries: usize, ttl: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            name_key: random_key(),
            owners_changed_at: AtomicU64::new(0),
            max_per_shard: (max_entries / SHARDS).max(1),
            ttl,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            synced_at: AtomicU64::new(0),
            bus_configured: AtomicBool::new(false),
            bus_subscribed: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    fn shard(&self, digest: &TokenDigest) -> std::sync::MutexGuard<'_, Shard> {
        // The digest is already uniformly random: its first byte picks the shard.
        let m = &self.shards[digest.0[0] as usize % SHARDS];
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether entries may be trusted: the invalidation log was read recently enough and, with a
    /// bus, its subscription is in place (a dropped subscription may have missed messages).
    pub(crate) fn trusted(&self) -> bool {
        self.trusted_at(self.moment(Instant::now()))
    }

    /// [`TokenCache::trusted`] at `now`, read by the caller: a request reads the clock once.
    /// Whole milliseconds lose nothing here: `synced_at` is whole milliseconds too, and for a whole
    /// `s`, `floor(t) - s < 1000` exactly when `t - s < 1000`.
    pub(crate) fn trusted_at(&self, now: Moment) -> bool {
        let at = self.synced_at.load(Ordering::Acquire);
        let log_fresh = at != 0 && now.0.saturating_sub(at) < MAX_SYNC_AGE.as_millis() as u64;
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
        self.synced_at.store(self.now_ms(), Ordering::Release);
    }

    /// Milliseconds since `epoch`, at least 1 (0 means "never").
    fn now_ms(&self) -> u64 {
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    fn ms_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// `at` as this cache's lookups read it: one subtraction of instants per request, shared by
    /// [`TokenCache::trusted_at`] and [`TokenCache::get_at`].
    pub(crate) fn moment(&self, at: Instant) -> Moment {
        Moment(self.ms_of(at))
    }

    /// The cache's name for a presented token: its bytes as presented, checked or not (only a
    /// checked token's name is ever given a digest, see [`TokenCache::name_digest`]).
    pub(crate) fn name(&self, token: &[u8]) -> Presented {
        let (a, b) = siphash::siphash13_128(self.name_key, token);
        Presented(a, b)
    }

    fn alias_shard(&self, name: &Presented) -> std::sync::MutexGuard<'_, Shard> {
        let m = &self.shards[name.0 as usize % SHARDS];
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key the token with this name named, and its principal as [`TokenCache::get_at`] gives
    /// it; `None` when the name or its entry is not cached.
    pub(crate) fn get_named(&self, name: &Presented, now: Moment) -> Option<(KeyId, Cached)> {
        let (digest, key) = *self.alias_shard(name).aliases.get(name)?;
        self.get_at(&digest, now).map(|cached| (key, cached))
    }

    /// Remembers that the token named `name` has `digest` and named the server key `key`, once its
    /// verdict is cached: only ever for a token that passed `TokenCodec::check`.
    pub(crate) fn name_digest(&self, name: Presented, digest: TokenDigest, key: KeyId) {
        let mut shard = self.alias_shard(&name);
        if shard.aliases.len() >= self.max_per_shard * 2
            && !shard.aliases.contains_key(&name)
            && let Some(victim) = shard.aliases.keys().next().copied()
        {
            shard.aliases.remove(&victim);
        }
        shard.aliases.insert(name, (digest, key));
    }

    /// The principal, the expiry the store held when it was read, and the client's counters.
    pub(crate) fn get(&self, digest: &TokenDigest) -> Option<Cached> {
        self.get_at(digest, self.moment(Instant::now()))
    }

    /// [`TokenCache::get`] at `now`, read by the caller. In whole milliseconds an entry can only
    /// time out early, never late: `floor(now) - floor(inserted)` is at least `floor(now - inserted)`.
    pub(crate) fn get_at(&self, digest: &TokenDigest, now: Moment) -> Option<Cached> {
        let mut shard = self.shard(digest);
        let entry = shard.entries.get(digest)?;
        if now.0.saturating_sub(entry.inserted_ms) >= self.ttl_ms {
            shard.entries.remove(digest);
            return None;
        }
        Some((entry.principal.clone(), entry.stored_expiry, entry.meter.clone()))
    }

    /// Keeps a verdict read from the store — unless the token, its user or its client was
    /// invalidated after `read_started` (the read may predate the change: keeping it would bring a
    /// revoked token back until the entry times out).
    pub(crate) fn insert(
        &self,
        digest: TokenDigest,
        principal: Arc<Principal>,
        stored_expiry: Option<DateTime<Utc>>,
        read_started: Instant,
        meter: Option<Arc<ClientMeter>>,
    ) {
        // Millisecond resolution: a read that began in the same millisecond as the change is
        // treated as older (not kept), never the other way round.
        let changed_ms = self.owners_changed_at.load(Ordering::Acquire);
        if changed_ms != 0 && changed_ms >= self.ms_of(read_started) {
            return;
        }
        let mut shard = self.shard(&digest);
        if shard.removed.get(&digest).is_some_and(|at| *at >= read_started) {
            return;
        }
        if shard.entries.len() >= self.max_per_shard && !shard.entries.contains_key(&digest) {
            let ttl = self.ttl;
            shard.entries.retain(|_, e| e.inserted.elapsed() < ttl);
            if shard.entries.len() >= self.max_per_shard
                && let Some(victim) = shard.entries.keys().next().copied()
            {
                shard.entries.remove(&victim);
            }
        }
        let inserted = Instant::now();
        let inserted_ms = self.ms_of(inserted);
        shard.entries.insert(digest, Entry { principal, stored_expiry, inserted, inserted_ms, meter });
    }

    /// Replaces an entry's principal, keeping its age; nothing when the entry is gone.
    pub(crate) fn replace(&self, digest: TokenDigest, principal: Arc<Principal>) {
        if let Some(entry) = self.shard(&digest).entries.get_mut(&digest) {
            entry.principal = principal;
        }
    }

    /// Drops the token's entry, and remembers when, so that a lookup already under way cannot put
    /// it back.
    pub(crate) fn remove(&self, digest: &TokenDigest) {
        let now = Instant::now();
        let mut shard = self.shard(digest);
        shard.entries.remove(digest);
        if shard.removed.len() >= 1024 {
            shard.removed.retain(|_, at| now.saturating_duration_since(*at) < TOMBSTONE_KEEP);
        }
        shard.removed.insert(*digest, now);
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
        self.owners_changed_at.store(self.now_ms(), Ordering::Release);
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|p| p.into_inner()).entries.retain(|_, e| keep(&e.principal));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).entries.len()).sum()
    }

    pub(crate) fn clear(&self) {
        self.owners_changed_at.store(self.now_ms(), Ordering::Release);
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.entries.clear();
            shard.aliases.clear();
        }
    }
}

/// A random key for [`Presented`] names, from the OS generator (as std's `RandomState` draws its).
fn random_key() -> (u64, u64) {
    let mut bytes = [0u8; 16];
    if let Err(e) = getrandom::getrandom(&mut bytes) {
        panic!("the operating system's random number generator failed: {e}");
    }
    let (a, b) = bytes.split_at(8);
    let word = |half: &[u8]| half.iter().rev().fold(0u64, |w, b| (w << 8) | u64::from(*b));
    (word(a), word(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::{AuthToken, Client, ClientId, NewToken, ServerKey, TokenCodec, Ttl, User, UserId};

    fn principal() -> Arc<Principal> {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let codec = TokenCodec::new(ServerKey::generate(), "tsr_", 64).expect("codec");
        let client = Client {
            id: ClientId(1),
            name: "web".parse().expect("name"),
            token_ttl: Ttl::Never,
            throttle_rate: None,
            sliding_expiry: false,
            max_lifetime: None,
            description: String::new(),
            devices: tessera_core::Devices::One,
            created: at,
        };
        let new = NewToken::issued(&codec.issue(), UserId(1), &client, at);
        let token = AuthToken {
            id: tessera_core::TokenId(1),
            user_id: new.user_id,
            client_id: new.client_id,
            digest: new.digest,
            seed: new.seed,
            key_id: new.key_id,
            created: at,
            expiry: None,
            last_used: None,
            user_agent: None,
            ip: None,
        };
        let user = User {
            id: UserId(1),
            username: "alice".parse().expect("name"),
            password_hash: String::new(),
            is_active: true,
            is_staff: false,
            created: at,
        };
        Arc::new(Principal { user, client, token })
    }

    #[test]
    fn a_lookup_that_read_the_store_before_a_removal_is_not_kept() {
        let cache = TokenCache::new(100, Duration::from_secs(60));
        let p = principal();
        let digest = p.token.digest;
        let read_started = Instant::now();
        cache.invalidate(&Invalidation::Token(digest));
        cache.insert(digest, p.clone(), None, read_started, None);
        assert!(cache.get(&digest).is_none(), "a read that began before the revocation is stale");
        // A read that began after it is kept.
        cache.insert(digest, p.clone(), None, Instant::now(), None);
        assert!(cache.get(&digest).is_some());
    }

    #[test]
    fn a_name_finds_its_entry_only_while_the_entry_stands() {
        let cache = TokenCache::new(100, Duration::from_secs(60));
        let p = principal();
        let digest = p.token.digest;
        let name = cache.name(b"tsr_the presented text");
        assert_eq!(name, cache.name(b"tsr_the presented text"), "a name is a function of the text");
        assert!(name != cache.name(b"tsr_the presented texT"));
        let other = TokenCache::new(100, Duration::from_secs(60));
        assert!(name != other.name(b"tsr_the presented text"), "each cache has keys of its own");

        assert!(cache.get_named(&name, cache.moment(Instant::now())).is_none());
        cache.insert(digest, p.clone(), None, Instant::now(), None);
        assert!(cache.get_named(&name, cache.moment(Instant::now())).is_none(), "no name until one is given");
        cache.name_digest(name, digest, KeyId::LEGACY);
        assert!(
            cache
                .get_named(&name, cache.moment(Instant::now()))
                .is_some_and(|(_, (found, _, _))| Arc::ptr_eq(&found, &p))
        );
        // A revocation removes the entry by digest; the name then finds nothing.
        cache.invalidate(&Invalidation::Token(digest));
        assert!(cache.get_named(&name, cache.moment(Instant::now())).is_none());
        cache.insert(digest, p.clone(), None, Instant::now(), None);
        assert!(cache.get_named(&name, cache.moment(Instant::now())).is_some());
        cache.invalidate(&Invalidation::User(UserId(1)));
        assert!(cache.get_named(&name, cache.moment(Instant::now())).is_none(), "an owner's change removes it too");
        cache.insert(digest, p.clone(), None, Instant::now() + Duration::from_millis(5), None);
        cache.name_digest(name, digest, KeyId::LEGACY);
        cache.clear();
        assert!(cache.get_named(&name, cache.moment(Instant::now())).is_none());
    }

    #[test]
    fn names_are_bounded() {
        let cache = TokenCache::new(SHARDS, Duration::from_secs(60));
        let digest = principal().token.digest;
        for i in 0..10_000 {
            cache.name_digest(cache.name(format!("token {i}").as_bytes()), digest, KeyId::LEGACY);
        }
        let names: usize = cache.shards.iter().map(|s| s.lock().map(|s| s.aliases.len()).unwrap_or(0)).sum();
        assert!(names <= SHARDS * 2, "{names} names kept");
    }

    #[test]
    fn a_lookup_that_read_the_store_before_an_owner_change_is_not_kept() {
        let cache = TokenCache::new(100, Duration::from_secs(60));
        let p = principal();
        let read_started = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        cache.invalidate(&Invalidation::User(UserId(1)));
        cache.insert(p.token.digest, p.clone(), None, read_started, None);
        assert!(cache.get(&p.token.digest).is_none());
        std::thread::sleep(Duration::from_millis(2));
        cache.insert(p.token.digest, p.clone(), None, Instant::now(), None);
        assert!(cache.get(&p.token.digest).is_some());
    }
}
