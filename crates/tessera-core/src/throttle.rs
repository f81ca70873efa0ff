//! Rate limiting with DRF's semantics: a request is refused when `N` requests were already allowed
//! in the preceding period; the wait is until the oldest of them leaves the window.
//!
//! [`RateLimiter`] is the seam: [`MemoryRateLimiter`] decides in-process (bounded memory, idle keys
//! dropped); a shared implementation (Redis, in `tessera-redis`) decides for several instances at
//! once.

use crate::rate::Rate;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

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

/// A limiter could not decide (a shared backend is down).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct LimiterError(pub String);

/// Decides whether a request under a key may go ahead.
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug + 'static {
    /// Allows and records the request, or refuses it without recording.
    async fn acquire(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<Decision, LimiterError>;
    /// Tells whether a request would be allowed, recording nothing.
    async fn check(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<Decision, LimiterError>;
    /// Records a request whatever the budget (for counting failures after the fact).
    async fn record(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<(), LimiterError>;
    /// Forgets everything (tests).
    async fn reset(&self);
}

const SHARDS: usize = 16;

/// The in-process limiter: a sliding log of request times per key, in 16 shards. Memory is bounded
/// by `max_keys` and by the rates (a key keeps at most `N` timestamps); keys idle for a whole period
/// are dropped.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    shards: Vec<Mutex<Shard>>,
    max_keys_per_shard: usize,
}

#[derive(Debug, Default)]
struct Shard {
    keys: HashMap<String, Log>,
    ops_since_sweep: usize,
}

#[derive(Debug)]
struct Log {
    /// Allowed request times (µs), oldest first.
    times: VecDeque<i64>,
    /// The window of the rate last used with this key (µs).
    window: i64,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

impl MemoryRateLimiter {
    /// A limiter that tracks at most about `max_keys` keys at once.
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            max_keys_per_shard: (max_keys / SHARDS).max(1),
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

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    fn decide(&self, key: &str, rate: Rate, now: DateTime<Utc>, mode: Mode) -> Decision {
        let now = now.timestamp_micros();
        let window = rate.period().seconds() as i64 * 1_000_000;
        let limit = rate.requests() as usize;
        let mut shard = lock(self.shard(key));
        shard.ops_since_sweep += 1;
        if shard.ops_since_sweep >= 4_096 || shard.keys.len() >= self.max_keys_per_shard {
            shard.sweep(now);
        }
        if !shard.keys.contains_key(key) {
            if mode == Mode::Check {
                return Decision::Allowed;
            }
            if shard.keys.len() >= self.max_keys_per_shard {
                // Every tracked key is active: refusing strangers would let a flood of new keys
                // lock out everyone, so the limiter stops tracking new keys until some go idle.
                tracing::warn!("the in-process rate limiter is full; a new key is not tracked");
                return Decision::Allowed;
            }
            shard.keys.insert(key.to_string(), Log { times: VecDeque::new(), window });
        }
        let Some(log) = shard.keys.get_mut(key) else { return Decision::Allowed };
        log.window = window;
        while log.times.front().is_some_and(|t| *t <= now - window) {
            log.times.pop_front();
        }
        let decision = if log.times.len() >= limit {
            let oldest = log.times.front().copied().unwrap_or(now);
            let wait_micros = (window - (now - oldest)).max(1);
            Decision::Throttled { wait_secs: (wait_micros as u64).div_ceil(1_000_000) }
        } else {
            Decision::Allowed
        };
        let record = match mode {
            Mode::Acquire => decision == Decision::Allowed,
            Mode::Record => true,
            Mode::Check => false,
        };
        if record {
            log.times.push_back(now);
            while log.times.len() > limit {
                log.times.pop_front();
            }
        }
        decision
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Acquire,
    Check,
    Record,
}

impl Shard {
    /// Drops keys whose newest request left its window.
    fn sweep(&mut self, now: i64) {
        self.ops_since_sweep = 0;
        self.keys.retain(|_, log| log.times.back().is_some_and(|t| *t > now - log.window));
    }
}

fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn acquire(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<Decision, LimiterError> {
        Ok(self.decide(key, rate, now, Mode::Acquire))
    }

    async fn check(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<Decision, LimiterError> {
        Ok(self.decide(key, rate, now, Mode::Check))
    }

    async fn record(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<(), LimiterError> {
        self.decide(key, rate, now, Mode::Record);
        Ok(())
    }

    async fn reset(&self) {
        for shard in &self.shards {
            lock(shard).keys.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    /// The in-memory limiter never awaits anything: poll its futures once.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => unreachable!("the in-memory limiter does not wait"),
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    fn rate(s: &str) -> Rate {
        s.parse().unwrap_or_else(|_| unreachable!())
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
    fn memory_is_bounded_and_idle_keys_are_dropped() {
        let limiter = MemoryRateLimiter::new(SHARDS * 10);
        let r = rate("1/s");
        for i in 0..1_000 {
            block_on(limiter.acquire(&format!("k{i}"), r, t0())).ok();
        }
        assert!(limiter.len() <= SHARDS * 10, "bounded: {}", limiter.len());
        // A period later every key is idle: new keys sweep them away.
        let later = t0() + TimeDelta::seconds(2);
        for i in 0..1_000 {
            block_on(limiter.acquire(&format!("n{i}"), r, later)).ok();
        }
        assert!(limiter.len() <= SHARDS * 10);
        assert_eq!(block_on(limiter.acquire("fresh", r, later)), Ok(Decision::Allowed));
        block_on(limiter.reset());
        assert!(limiter.is_empty());
    }
}
