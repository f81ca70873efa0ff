//! Rate limiting with DRF's semantics: a request is refused when `N` requests were already allowed
//! in the preceding period; the wait is until the oldest of them leaves the window.
//!
//! [`RateLimiter`] is the seam: [`MemoryRateLimiter`] decides in-process (memory bounded in bytes,
//! idle keys dropped); a shared implementation (Redis, in `tessera-redis`) decides for several
//! instances at once.
//!
//! Besides one request under one key ([`RateLimiter::acquire`]), a limiter takes a *reservation*
//! in several budgets at once ([`RateLimiter::reserve`]): all or nothing, atomically, so that
//! concurrent requests cannot all pass a check made before any of them is recorded. Login reserves
//! a slot before it verifies a password and gives it back ([`RateLimiter::release`]) when the
//! password was right: only failures stay counted, and no more verifications run than the budget.
//! Keys longer than [`KEY_MAX_BYTES`] are replaced by their SHA-256 ([`bounded_key`]), so a key
//! costs a bounded number of bytes whatever the input it was made from.

use crate::rate::Rate;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// A limiter's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// Refused; a request will be allowed in this many seconds (rounded up, at least 1).
    Throttled {
        /// Seconds to wait.
        wait_secs: u64,
    },
}

/// A limiter could not decide (a shared backend is down, or the in-process limiter is full).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct LimiterError(pub String);

/// One budget of a [`RateLimiter::reserve`]: a key and its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget<'a> {
    /// The key.
    pub key: &'a str,
    /// The rate.
    pub rate: Rate,
}

/// The verdict of [`RateLimiter::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// A slot was taken in every budget; [`RateLimiter::release`] gives them back.
    Granted(Grant),
    /// Some budget is spent: nothing was taken. The wait is the longest of the spent budgets'.
    Throttled {
        /// Seconds to wait.
        wait_secs: u64,
    },
}

/// The slots one reservation took, as the limiter that granted them names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant(String);

impl Grant {
    /// A grant with the limiter's own identifier of the slots.
    pub fn new(id: impl Into<String>) -> Self {
        Grant(id.into())
    }

    /// The limiter's identifier of the slots.
    pub fn id(&self) -> &str {
        &self.0
    }
}

/// The longest key a limiter stores as it is; longer keys are stored as their SHA-256.
pub const KEY_MAX_BYTES: usize = 64;

/// `key`, or — when it is longer than [`KEY_MAX_BYTES`] — `sha256:` and its SHA-256 in hex
/// (71 bytes): every key a limiter holds costs a bounded number of bytes, whatever a client sent.
///
/// ```
/// use tessera_core::throttle::bounded_key;
/// assert_eq!(bounded_key("login:user:alice"), "login:user:alice");
/// assert_eq!(bounded_key(&"x".repeat(65_000)).len(), 71);
/// ```
pub fn bounded_key(key: &str) -> Cow<'_, str> {
    if key.len() <= KEY_MAX_BYTES {
        return Cow::Borrowed(key);
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    Cow::Owned(out)
}

/// Decides whether a request under a key may go ahead.
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug + 'static {
    /// Allows and records the request, or refuses it without recording.
    async fn acquire(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<Decision, LimiterError>;
    /// [`RateLimiter::acquire`] without waiting, for a limiter that can answer at once (an
    /// in-process one): `None` when this limiter must be asked with `acquire` (a shared store).
    /// The default answers `None`.
    fn acquire_now(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Option<Result<Decision, LimiterError>> {
        let _ = (key, rate, now);
        None
    }
    /// Tells whether a request would be allowed, recording nothing.
    async fn check(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<Decision, LimiterError>;
    /// Records a request whatever the budget (for counting failures after the fact).
    async fn record(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<(), LimiterError>;
    /// Takes one slot in every budget, or — when any of them is spent — none: atomically, so that
    /// of any number of concurrent reservations at most `N` per budget and window are granted.
    async fn reserve(&self, budgets: &[Budget<'_>], now: DateTime<Utc>) -> Result<Reservation, LimiterError>;
    /// Gives back the slots of a granted reservation (the same budgets), as if it had never been
    /// made. Slots that already left their window are ignored.
    async fn release(&self, budgets: &[Budget<'_>], grant: &Grant, now: DateTime<Utc>) -> Result<(), LimiterError>;
    /// Remembers `key` for `ttl` (a marker, such as "this address logged in as this user").
    async fn remember(&self, key: &str, ttl: Duration, now: DateTime<Utc>) -> Result<(), LimiterError>;
    /// Whether `key` was remembered less than its `ttl` ago.
    async fn remembers(&self, key: &str, now: DateTime<Utc>) -> Result<bool, LimiterError>;
    /// Forgets everything (tests).
    async fn reset(&self);
}

const SHARDS: usize = 16;
/// What a tracked key costs besides its name and its times: its map slot and the headers of the
/// boxed name and of the deque, rounded up.
const ENTRY_OVERHEAD: usize = 80;
/// What one recorded time costs.
const STAMP: usize = std::mem::size_of::<i64>();

/// The in-process limiter: a sliding log of request times per key, in 16 shards.
///
/// Memory is bounded in bytes ([`MemoryRateLimiter::with_max_bytes`]; default 64 MiB): a key costs
/// its name (at most 71 bytes, see [`bounded_key`]), 8 bytes per time it holds (at most the rate's
/// `N`) and a fixed overhead. Keys idle for a whole period are dropped; when room is still
/// needed, remembered keys ([`RateLimiter::remember`]) are evicted — forgetting one only takes an
/// exemption away. When a shard is full of budgets that are all still in their window, the
/// limiter **refuses** (a [`LimiterError`], which callers answer with 503) instead of letting an
/// untracked request through: a flood of new keys must not switch the throttle off.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    shards: Vec<Mutex<Shard>>,
    max_bytes_per_shard: usize,
}

#[derive(Debug, Default)]
struct Shard {
    keys: HashMap<Box<str>, Log>,
    /// What `keys` costs, by [`Log::cost`].
    bytes: usize,
    ops_since_sweep: usize,
}

#[derive(Debug)]
struct Log {
    /// Recorded times (µs), oldest first.
    times: VecDeque<i64>,
    /// The window of the rate last used with this key (µs).
    window: i64,
    /// A remembered key ([`RateLimiter::remember`]) rather than a budget: the first to go when
    /// room is needed, since forgetting one only takes away an exemption.
    marker: bool,
}

impl Log {
    fn cost(&self, key: &str) -> usize {
        ENTRY_OVERHEAD + key.len() + self.times.capacity() * STAMP
    }
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::with_max_bytes(64 << 20)
    }
}

impl MemoryRateLimiter {
    /// A limiter whose keys take at most about `max_bytes` (split evenly between its 16 shards).
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            max_bytes_per_shard: (max_bytes / SHARDS).max(ENTRY_OVERHEAD + 71 + 4 * STAMP),
        }
    }

    /// How many keys are tracked now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).keys.len()).sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the tracked keys cost now, in bytes (never more than [`MemoryRateLimiter::max_bytes`]).
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| lock(s).bytes).sum()
    }

    /// The bound on [`MemoryRateLimiter::bytes`].
    pub fn max_bytes(&self) -> usize {
        self.max_bytes_per_shard * SHARDS
    }

    /// The shard a key lives in. Only spreads keys over the locks, so a multiplicative hash of the
    /// key's words does: a caller who chose keys to share a shard would only make them share a
    /// lock. (The shard's map hashes with the standard library's keyed SipHash, which is what
    /// keeps chosen keys from degrading its lookups; hashing the key a second time with it here was
    /// about a quarter of a throttled request's limiter cost.)
    fn shard_of(&self, key: &str) -> usize {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let bytes = key.as_bytes();
        let mut h = bytes.len() as u64;
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in words.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
        // A word's high bytes only carry upwards in the multiplication: MurmurHash3's finaliser
        // lets every bit of the key reach the bits that choose the shard.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        h as usize % SHARDS
    }

    /// Locks the shards of `keys`, each once and in index order (so that two reservations never
    /// wait for each other), and says which guard holds each key.
    fn lock_all(&self, keys: &[Cow<'_, str>]) -> (Vec<MutexGuard<'_, Shard>>, Vec<usize>) {
        let indices: Vec<usize> = keys.iter().map(|k| self.shard_of(k)).collect();
        let mut order = indices.clone();
        order.sort_unstable();
        order.dedup();
        let guards = order.iter().map(|i| lock(&self.shards[*i])).collect();
        let positions = indices.iter().map(|i| order.iter().position(|o| o == i).unwrap_or(0)).collect();
        (guards, positions)
    }

    fn with_shard<T>(&self, key: &str, now: i64, f: impl FnOnce(&mut Shard) -> T) -> T {
        let mut shard = lock(&self.shards[self.shard_of(key)]);
        shard.tick(now);
        f(&mut shard)
    }
}

fn window_of(rate: Rate) -> i64 {
    rate.period().seconds() as i64 * 1_000_000
}

fn limit_of(rate: Rate) -> usize {
    rate.requests() as usize
}

fn full() -> LimiterError {
    LimiterError("the in-process rate limiter is full".into())
}

impl Shard {
    fn tick(&mut self, now: i64) {
        self.ops_since_sweep += 1;
        if self.ops_since_sweep >= 4_096 {
            self.sweep(now);
        }
    }

    /// Drops keys whose newest time left its window.
    fn sweep(&mut self, now: i64) {
        self.ops_since_sweep = 0;
        self.keys.retain(|_, log| log.times.back().is_some_and(|t| *t > now - log.window));
        self.bytes = self.keys.iter().map(|(k, log)| log.cost(k)).sum();
    }

    /// Drops the key's times that left the window; the seconds until it has room for one more
    /// under `limit` (0: room now).
    fn wait(&mut self, key: &str, window: i64, limit: usize, now: i64) -> u64 {
        let Some(log) = self.keys.get_mut(key) else { return 0 };
        while log.times.front().is_some_and(|t| *t <= now - window) {
            log.times.pop_front();
        }
        if log.times.len() < limit {
            return 0;
        }
        let oldest = log.times.front().copied().unwrap_or(now);
        let wait_micros = (window - (now - oldest)).max(1);
        (wait_micros as u64).div_ceil(1_000_000)
    }

    /// `wait`, then — when there is room (0) — `push` (not a marker): one request's acquisition.
    /// A tracked key whose log has spare capacity takes one lookup; anything else goes the long way.
    fn take(&mut self, key: &str, window: i64, limit: usize, now: i64, max: usize) -> Result<u64, LimiterError> {
        if let Some(log) = self.keys.get_mut(key) {
            while log.times.front().is_some_and(|t| *t <= now - window) {
                log.times.pop_front();
            }
            if log.times.len() >= limit {
                let oldest = log.times.front().copied().unwrap_or(now);
                let wait_micros = (window - (now - oldest)).max(1);
                return Ok((wait_micros as u64).div_ceil(1_000_000));
            }
            if log.times.len() < log.times.capacity() {
                // The capacity, and so the key's cost, does not change.
                log.window = window;
                log.marker = false;
                log.times.push_back(now);
                while log.times.len() > limit.max(1) {
                    log.times.pop_front();
                }
                return Ok(0);
            }
        }
        let wait = self.wait(key, window, limit, now);
        if wait > 0 {
            return Ok(wait);
        }
        self.push(key, window, limit, now, max, false)?;
        Ok(0)
    }

    /// Records `now` under the key, keeping at most `limit` times; refuses when that would take
    /// the shard over `max` bytes even after dropping idle keys and evicting remembered ones.
    fn push(
        &mut self,
        key: &str,
        window: i64,
        limit: usize,
        now: i64,
        max: usize,
        marker: bool,
    ) -> Result<(), LimiterError> {
        let grow = match self.keys.get(key) {
            None => ENTRY_OVERHEAD + key.len() + 4 * STAMP,
            Some(log) if log.times.len() == log.times.capacity() => log.times.capacity().max(4) * STAMP,
            Some(_) => 0,
        };
        if grow > 0 && self.bytes + grow > max {
            self.sweep(now);
            self.evict_markers(key, (self.bytes + grow).saturating_sub(max));
            if self.bytes + grow > max {
                tracing::warn!("the in-process rate limiter is full: refusing until keys go idle");
                return Err(full());
            }
        }
        let before = self.keys.get(key).map_or(0, |log| log.cost(key));
        let log = self.keys.entry(Box::from(key)).or_insert_with(|| Log { times: VecDeque::new(), window, marker });
        log.window = window;
        log.marker = marker;
        log.times.push_back(now);
        while log.times.len() > limit.max(1) {
            log.times.pop_front();
        }
        let after = log.cost(key);
        self.bytes = (self.bytes + after).saturating_sub(before);
        Ok(())
    }

    /// Evicts remembered keys other than `keep` until `needed` bytes are freed (or none is left).
    fn evict_markers(&mut self, keep: &str, needed: usize) {
        if needed == 0 {
            return;
        }
        let mut freed = 0;
        self.keys.retain(|k, log| {
            if freed >= needed || !log.marker || &**k == keep {
                return true;
            }
            freed += log.cost(k);
            false
        });
        self.bytes = self.bytes.saturating_sub(freed);
    }

    /// Removes one time `stamp` from the key (a released reservation).
    fn unpush(&mut self, key: &str, stamp: i64) {
        if let Some(log) = self.keys.get_mut(key)
            && let Some(i) = log.times.iter().rposition(|t| *t == stamp)
        {
            log.times.remove(i);
        }
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryRateLimiter {
    /// [`RateLimiter::acquire`], which never waits here: `reserve` of this one budget, without its
    /// vectors of keys, shards and guards and its grant's string — one lock, and one map lookup
    /// when the key is tracked and has room.
    fn take(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<Decision, LimiterError> {
        let key = bounded_key(key);
        let now = now.timestamp_micros();
        let (window, limit) = (window_of(rate), limit_of(rate));
        let max = self.max_bytes_per_shard;
        let wait = self.with_shard(&key, now, |shard| shard.take(&key, window, limit, now, max))?;
        Ok(if wait == 0 { Decision::Allowed } else { Decision::Throttled { wait_secs: wait } })
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn acquire(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<Decision, LimiterError> {
        self.take(key, rate, now)
    }

    fn acquire_now(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Option<Result<Decision, LimiterError>> {
        Some(self.take(key, rate, now))
    }

    async fn check(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<Decision, LimiterError> {
        let key = bounded_key(key);
        let now = now.timestamp_micros();
        let wait = self.with_shard(&key, now, |shard| shard.wait(&key, window_of(rate), limit_of(rate), now));
        Ok(if wait == 0 { Decision::Allowed } else { Decision::Throttled { wait_secs: wait } })
    }

    async fn record(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<(), LimiterError> {
        let key = bounded_key(key);
        let now = now.timestamp_micros();
        let max = self.max_bytes_per_shard;
        self.with_shard(&key, now, |shard| {
            let (window, limit) = (window_of(rate), limit_of(rate));
            shard.wait(&key, window, limit, now);
            shard.push(&key, window, limit, now, max, false)
        })
    }

    async fn reserve(&self, budgets: &[Budget<'_>], now: DateTime<Utc>) -> Result<Reservation, LimiterError> {
        let keys: Vec<Cow<'_, str>> = budgets.iter().map(|b| bounded_key(b.key)).collect();
        let now = now.timestamp_micros();
        let (mut guards, at) = self.lock_all(&keys);
        for guard in guards.iter_mut() {
            guard.tick(now);
        }
        let mut wait = 0;
        for (i, (budget, key)) in budgets.iter().zip(&keys).enumerate() {
            wait = wait.max(guards[at[i]].wait(key, window_of(budget.rate), limit_of(budget.rate), now));
        }
        if wait > 0 {
            return Ok(Reservation::Throttled { wait_secs: wait });
        }
        for (i, (budget, key)) in budgets.iter().zip(&keys).enumerate() {
            let (window, limit) = (window_of(budget.rate), limit_of(budget.rate));
            let pushed = guards[at[i]].push(key, window, limit, now, self.max_bytes_per_shard, false);
            if let Err(e) = pushed {
                // All or nothing: take back what this reservation already took.
                for (j, key) in keys.iter().enumerate().take(i) {
                    guards[at[j]].unpush(key, now);
                }
                return Err(e);
            }
        }
        Ok(Reservation::Granted(Grant::new(now.to_string())))
    }

    async fn release(&self, budgets: &[Budget<'_>], grant: &Grant, now: DateTime<Utc>) -> Result<(), LimiterError> {
        // A grant of another limiter (a FallbackRateLimiter's Redis) is not ours: nothing to give back.
        let Ok(stamp) = grant.id().parse::<i64>() else { return Ok(()) };
        let now = now.timestamp_micros();
        for budget in budgets {
            let key = bounded_key(budget.key);
            self.with_shard(&key, now, |shard| shard.unpush(&key, stamp));
        }
        Ok(())
    }

    async fn remember(&self, key: &str, ttl: Duration, now: DateTime<Utc>) -> Result<(), LimiterError> {
        let key = bounded_key(key);
        let now = now.timestamp_micros();
        let window = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX / 2).max(1);
        let max = self.max_bytes_per_shard;
        self.with_shard(&key, now, |shard| shard.push(&key, window, 1, now, max, true))
    }

    async fn remembers(&self, key: &str, now: DateTime<Utc>) -> Result<bool, LimiterError> {
        let key = bounded_key(key);
        let now = now.timestamp_micros();
        Ok(self.with_shard(&key, now, |shard| {
            shard.keys.get(&*key).is_some_and(|log| log.times.back().is_some_and(|t| *t > now - log.window))
        }))
    }

    async fn reset(&self) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.keys.clear();
            shard.bytes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use std::sync::Arc;

    /// The in-memory limiter never awaits anything: poll its futures once.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => unreachable!("the in-memory limiter does not wait"),
        }
    }

    /// The shards' locks share the load: the keys a server makes (every user of a client, the
    /// per-IP and per-username login keys) spread over all of them, none with twice its share.
    #[test]
    fn keys_spread_over_the_shards() {
        let limiter = MemoryRateLimiter::default();
        let families: [&dyn Fn(u64) -> String; 4] = [
            // Keys that differ only in an eight-byte word's last byte (`budget:0` to `budget:9`).
            &|i| format!("budget:{i}"),
            &|i| format!("throttle:{}:{}", 7_300_000_000_000_000 + i * 4_096, 12),
            &|i| format!("login:ip:10.0.{}.{}", i / 256, i % 256),
            &|i| format!("login:user:user{i}"),
        ];
        for keys in families {
            let mut counts = [0usize; SHARDS];
            for i in 0..1_600 {
                counts[limiter.shard_of(&keys(i))] += 1;
            }
            let (least, most) = (counts.iter().min(), counts.iter().max());
            assert!(least > Some(&50) && most < Some(&200), "{counts:?}");
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    fn rate(s: &str) -> Rate {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    fn granted(r: Result<Reservation, LimiterError>) -> Grant {
        match r {
            Ok(Reservation::Granted(g)) => g,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    #[test]
    fn allows_n_per_period_then_waits_for_the_oldest() {
        let limiter = MemoryRateLimiter::default();
        let r = rate("3/m");
        for i in 0..3 {
            let at = t0() + TimeDelta::seconds(i * 10);
            assert_eq!(block_on(limiter.acquire("k", r, at)), Ok(Decision::Allowed));
        }
        // 30 s after the first: it leaves the window at 60 s, so wait 30 s.
        let at = t0() + TimeDelta::seconds(30);
        assert_eq!(block_on(limiter.acquire("k", r, at)), Ok(Decision::Throttled { wait_secs: 30 }));
        // Refused requests are not recorded: at 60 s the first has left, one slot is free.
        let at = t0() + TimeDelta::seconds(60);
        assert_eq!(block_on(limiter.acquire("k", r, at)), Ok(Decision::Allowed));
        assert_eq!(block_on(limiter.acquire("k", r, at)), Ok(Decision::Throttled { wait_secs: 10 }));
        // Other keys are independent.
        assert_eq!(block_on(limiter.acquire("other", r, at)), Ok(Decision::Allowed));
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        let limiter = MemoryRateLimiter::default();
        let r = rate("1/s");
        assert_eq!(block_on(limiter.acquire("k", r, t0())), Ok(Decision::Allowed));
        let at = t0() + TimeDelta::milliseconds(999);
        assert_eq!(block_on(limiter.acquire("k", r, at)), Ok(Decision::Throttled { wait_secs: 1 }));
        let at = t0() + TimeDelta::milliseconds(1000);
        assert_eq!(block_on(limiter.acquire("k", r, at)), Ok(Decision::Allowed));
    }

    #[test]
    fn check_records_nothing_and_record_always_counts() {
        let limiter = MemoryRateLimiter::default();
        let r = rate("2/h");
        assert_eq!(block_on(limiter.check("k", r, t0())), Ok(Decision::Allowed));
        assert!(limiter.is_empty());
        for _ in 0..3 {
            assert_eq!(block_on(limiter.record("k", r, t0())), Ok(()));
        }
        assert_eq!(block_on(limiter.check("k", r, t0())), Ok(Decision::Throttled { wait_secs: 3_600 }));
    }

    #[test]
    fn a_reservation_takes_every_budget_or_none_and_release_gives_them_back() {
        let limiter = MemoryRateLimiter::default();
        let hour = rate("5/h");
        let small = Budget { key: "small", rate: rate("1/m") };
        let large = Budget { key: "large", rate: hour };
        let grant = granted(block_on(limiter.reserve(&[small, large], t0())));
        // `small` is spent: the next reservation takes nothing, not even from `large`.
        let at = t0() + TimeDelta::seconds(20);
        assert_eq!(block_on(limiter.reserve(&[small, large], at)), Ok(Reservation::Throttled { wait_secs: 40 }));
        for _ in 0..4 {
            granted(block_on(limiter.reserve(&[large], at)));
        }
        assert_eq!(block_on(limiter.check("large", large.rate, at)), Ok(Decision::Throttled { wait_secs: 3_580 }));
        // Giving the first reservation back frees a slot in both.
        assert_eq!(block_on(limiter.release(&[small, large], &grant, at)), Ok(()));
        assert_eq!(block_on(limiter.check("small", small.rate, at)), Ok(Decision::Allowed));
        granted(block_on(limiter.reserve(&[small, large], at)));
        // A grant that is not this limiter's releases nothing.
        assert_eq!(block_on(limiter.release(&[large], &Grant::new("redis-member"), at)), Ok(()));
        assert!(matches!(block_on(limiter.reserve(&[large], at)), Ok(Reservation::Throttled { .. })));
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_budget() {
        let limiter = Arc::new(MemoryRateLimiter::default());
        let r = rate("7/m");
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    let ip = format!("ip:{i}");
                    let wide = rate("100/m");
                    let budgets = [Budget { key: "user:alice", rate: r }, Budget { key: &ip, rate: wide }];
                    (0..50)
                        .filter(|_| matches!(block_on(limiter.reserve(&budgets, t0())), Ok(Reservation::Granted(_))))
                        .count()
                })
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(granted, 7);
    }

    #[test]
    fn memory_is_bounded_in_bytes_and_a_full_limiter_refuses() {
        let limiter = MemoryRateLimiter::with_max_bytes(64 * 1024);
        let r = rate("5/s");
        // Keys made of 60 KB usernames cost no more than short keys.
        let mut refused = 0;
        let long = "x".repeat(60_000);
        for i in 0..1_000 {
            let key = if i % 10 == 0 { format!("login:user:{i}{long}") } else { format!("login:user:{i}") };
            match block_on(limiter.acquire(&key, r, t0())) {
                Ok(Decision::Allowed) => {}
                Err(e) => {
                    assert!(e.to_string().contains("full"), "{e}");
                    refused += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(limiter.bytes() <= limiter.max_bytes(), "{} > {}", limiter.bytes(), limiter.max_bytes());
        assert!(limiter.len() > 200, "about 64 KiB / 180 B keys: {}", limiter.len());
        // Full of live keys, it refuses new keys rather than letting them through untracked.
        assert!(refused > 0);
        assert!(block_on(limiter.acquire("fresh", r, t0())).is_err());
        // A period later every key is idle: they are swept away to make room.
        let later = t0() + TimeDelta::seconds(2);
        assert_eq!(block_on(limiter.acquire("fresh", r, later)), Ok(Decision::Allowed));
        assert_eq!(block_on(limiter.remember("device", Duration::from_secs(60), later)), Ok(()));
        assert!(limiter.bytes() <= limiter.max_bytes());
        block_on(limiter.reset());
        assert!(limiter.is_empty());
        assert_eq!(limiter.bytes(), 0);
    }

    #[test]
    fn a_log_growing_past_the_bound_is_refused_too() {
        let limiter = MemoryRateLimiter::with_max_bytes(SHARDS * 400);
        let r = rate("1000/h");
        let allowed =
            (0..1_000).take_while(|_| block_on(limiter.acquire("k", r, t0())) == Ok(Decision::Allowed)).count();
        assert!(allowed < 1_000, "{allowed}");
        assert!(limiter.bytes() <= limiter.max_bytes());
        assert!(block_on(limiter.acquire("k", r, t0())).is_err());
    }

    #[test]
    fn remembered_keys_make_room_for_budgets() {
        let limiter = MemoryRateLimiter::with_max_bytes(SHARDS * 1_000);
        let month = Duration::from_secs(30 * 86_400);
        for i in 0..1_000 {
            let _ = block_on(limiter.remember(&format!("known:{i}"), month, t0()));
        }
        // Full of remembered keys, the limiter still takes new budgets: it forgets some of them.
        let r = rate("5/h");
        for i in 0..40 {
            assert_eq!(block_on(limiter.acquire(&format!("budget:{i}"), r, t0())), Ok(Decision::Allowed), "{i}");
        }
        assert!(limiter.bytes() <= limiter.max_bytes());
        // Budgets are never evicted: full of them, it refuses.
        let refused =
            (40..2_000).filter(|i| block_on(limiter.acquire(&format!("budget:{i}"), r, t0())).is_err()).count();
        assert!(refused > 0);
        for _ in 0..4 {
            assert_eq!(block_on(limiter.acquire("budget:0", r, t0())), Ok(Decision::Allowed));
        }
        assert_eq!(block_on(limiter.acquire("budget:0", r, t0())), Ok(Decision::Throttled { wait_secs: 3_600 }));
    }

    #[test]
    fn remembered_keys_last_their_ttl() {
        let limiter = MemoryRateLimiter::default();
        assert_eq!(block_on(limiter.remembers("known", t0())), Ok(false));
        assert_eq!(block_on(limiter.remember("known", Duration::from_secs(30 * 86_400), t0())), Ok(()));
        let later = t0() + TimeDelta::days(29);
        assert_eq!(block_on(limiter.remembers("known", later)), Ok(true));
        assert_eq!(block_on(limiter.remembers("known", t0() + TimeDelta::days(30))), Ok(false));
    }

    #[test]
    fn long_keys_are_hashed() {
        assert_eq!(bounded_key(&"k".repeat(64)), "k".repeat(64));
        let long = bounded_key(&"k".repeat(65)).into_owned();
        assert!(long.starts_with("sha256:") && long.len() == 71, "{long}");
        assert_ne!(bounded_key(&"k".repeat(66)), long);
    }
}
