//! The shared throttle: [`RedisRateLimiter`] decides in Redis for every instance at once, and
//! [`FallbackRateLimiter`] keeps deciding (or refuses, as configured) while Redis is down.

use crate::connection::{RedisConnection, RedisError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tessera_core::Rate;
use tessera_core::throttle::{
    Budget, Decision, Grant, LimiterError, MemoryRateLimiter, RateLimiter, Reservation, bounded_key,
};

/// KEYS[1]: the key's sorted set. ARGV: limit, window (µs), mode (`acquire` | `check` |
/// `record`), a member suffix unique to this call. Returns 0 (allowed) or the seconds to wait.
///
/// The set holds one member per allowed request, scored by its time in µs (exact as a double until
/// the year 2255); members leave when they fall out of the window, and the set expires a window
/// after its last write, so idle keys cost nothing. Numbers are formatted with `%d`: Lua's own
/// formatting would round them.
static DECIDE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local mode = ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - window))
local count = redis.call('ZCARD', key)
local wait = 0
if count >= limit then
  local oldest = now
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then oldest = tonumber(first[2]) end
  local wait_us = window - (now - oldest)
  if wait_us < 1 then wait_us = 1 end
  wait = math.ceil(wait_us / 1000000)
end
if (mode == 'acquire' and wait == 0) or mode == 'record' then
  local stamp = string.format('%d', now)
  redis.call('ZADD', key, stamp, stamp .. '-' .. ARGV[4])
  if count + 1 > limit then
    redis.call('ZREMRANGEBYRANK', key, 0, count - limit)
  end
  redis.call('PEXPIRE', key, string.format('%d', math.ceil(window / 1000)))
end
return wait
"#,
    )
});

/// KEYS: the budgets' sorted sets. ARGV[1]: the member this reservation adds (unique to the call);
/// then, per key, its limit and window (µs). Returns 0 when a slot was taken in every set, else
/// the longest wait (seconds) of the spent ones, having taken nothing: check and record are one
/// atomic step, so concurrent reservations cannot all pass.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - window))
  if redis.call('ZCARD', key) >= limit then
    local oldest = now
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then oldest = tonumber(first[2]) end
    local wait_us = window - (now - oldest)
    if wait_us < 1 then wait_us = 1 end
    local w = math.ceil(wait_us / 1000000)
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
local stamp = string.format('%d', now)
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, stamp, ARGV[1])
  redis.call('PEXPIRE', key, string.format('%d', math.ceil(tonumber(ARGV[2 * i + 1]) / 1000)))
end
return 0
"#,
    )
});

/// KEYS: the budgets' sorted sets; ARGV[1]: the member a reservation added. Removes it.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
for _, key in ipairs(KEYS) do
  redis.call('ZREM', key, ARGV[1])
end
return 0
"#,
    )
});

/// A [`RateLimiter`] in Redis, with the semantics of
/// [`MemoryRateLimiter`](tessera_core::throttle::MemoryRateLimiter) (DRF's): a request is refused
/// when `N` were already allowed in the preceding period, and the wait is until the oldest of them
/// leaves the window (whole seconds, at least 1). Each decision is one Lua script — one round
/// trip, atomic — so any number of instances together allow exactly the budget.
///
/// **The caller's `now` is ignored**: the script reads Redis's clock (`TIME`). Instances' clocks
/// differ; if each stamped requests with its own, a server whose clock runs behind would see the
/// others' requests in its future, and one running ahead would age them out early — the shared
/// budget would depend on clock skew. One clock for every instance makes the window exact. (Tests
/// that need an injected clock use the in-process limiter.)
///
/// Keys are `{prefix}throttle:{key}` (a key longer than 64 bytes by its SHA-256, see
/// [`bounded_key`]): a sorted set of at most `N` request times that expires a window after its
/// last write, or — for [`RateLimiter::remember`] — a string with the marker's TTL.
#[derive(Debug)]
pub struct RedisRateLimiter {
    conn: RedisConnection,
    /// Random per limiter: with the counter, makes every recorded request a distinct member even
    /// when two instances record in the same microsecond.
    nonce: String,
    counter: AtomicU64,
}

impl RedisRateLimiter {
    /// A limiter on `conn` (its key prefix included).
    pub fn new(conn: RedisConnection) -> Self {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
        );
        Self { conn, nonce: format!("{:016x}", hasher.finish()), counter: AtomicU64::new(0) }
    }

    /// The connection.
    pub fn connection(&self) -> &RedisConnection {
        &self.conn
    }

    fn key(&self, key: &str) -> String {
        format!("{}throttle:{}", self.conn.key_prefix(), bounded_key(key))
    }

    /// A member name no other call of any instance uses.
    fn unique(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}{n:x}", self.nonce)
    }

    async fn decide(&self, key: &str, rate: Rate, mode: &str) -> Result<Decision, RedisError> {
        let keys = [self.key(key)];
        let args = [rate.requests().to_string(), window_micros(rate), mode.to_string(), self.unique()];
        let wait: u64 = self.conn.eval("decide a rate limit", &DECIDE, &keys, &args).await?;
        Ok(if wait == 0 { Decision::Allowed } else { Decision::Throttled { wait_secs: wait } })
    }
}

fn window_micros(rate: Rate) -> String {
    (rate.period().seconds() as u128 * 1_000_000).to_string()
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(&self, key: &str, rate: Rate, _now: DateTime<Utc>) -> Result<Decision, LimiterError> {
        Ok(self.decide(key, rate, "acquire").await?)
    }

    async fn check(&self, key: &str, rate: Rate, _now: DateTime<Utc>) -> Result<Decision, LimiterError> {
        Ok(self.decide(key, rate, "check").await?)
    }

    async fn record(&self, key: &str, rate: Rate, _now: DateTime<Utc>) -> Result<(), LimiterError> {
        self.decide(key, rate, "record").await?;
        Ok(())
    }

    async fn reserve(&self, budgets: &[Budget<'_>], _now: DateTime<Utc>) -> Result<Reservation, LimiterError> {
        let keys: Vec<String> = budgets.iter().map(|b| self.key(b.key)).collect();
        let member = format!("r{}", self.unique());
        let mut args = vec![member.clone()];
        for budget in budgets {
            args.push(budget.rate.requests().to_string());
            args.push(window_micros(budget.rate));
        }
        let wait: u64 = self.conn.eval("reserve a rate limit", &RESERVE, &keys, &args).await?;
        Ok(if wait == 0 {
            Reservation::Granted(Grant::new(member))
        } else {
            Reservation::Throttled { wait_secs: wait }
        })
    }

    async fn release(&self, budgets: &[Budget<'_>], grant: &Grant, _now: DateTime<Utc>) -> Result<(), LimiterError> {
        let keys: Vec<String> = budgets.iter().map(|b| self.key(b.key)).collect();
        let args = [grant.id().to_string()];
        let _: u64 = self.conn.eval("release a rate limit", &RELEASE, &keys, &args).await?;
        Ok(())
    }

    async fn remember(&self, key: &str, ttl: Duration, _now: DateTime<Utc>) -> Result<(), LimiterError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(1).arg("PX").arg(ttl.as_millis().max(1) as u64);
        let _: () = self.conn.query("SET", cmd).await?;
        Ok(())
    }

    async fn remembers(&self, key: &str, _now: DateTime<Utc>) -> Result<bool, LimiterError> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.key(key));
        let n: u64 = self.conn.query("EXISTS", cmd).await?;
        Ok(n > 0)
    }

    /// Deletes every throttle key under the prefix (for tests).
    async fn reset(&self) {
        if let Err(e) = crate::delete_keys(&self.conn, &self.conn.key_pattern("throttle:*")).await {
            tracing::warn!(error = %e, "could not reset the Redis rate limiter");
        }
    }
}

/// What [`FallbackRateLimiter`] does while Redis cannot decide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FallbackMode {
    /// Decide in-process, per instance (each instance then allows the whole budget).
    #[default]
    Fallback,
    /// Return the error: the caller answers 503.
    Refuse,
}

/// Redis first; while Redis fails, an in-process [`MemoryRateLimiter`] (or an error, in
/// [`FallbackMode::Refuse`]).
///
/// When a call fails, the limiter is *down*: calls go straight to the fallback (no request waits
/// for a timeout) and a background task tries Redis every `probe_interval` (1 s) until it answers,
/// which ends the outage with no restart and whether or not requests come in. A warning is logged
/// once per outage and an info line when Redis answers again.
#[derive(Debug)]
pub struct FallbackRateLimiter {
    primary: Arc<dyn RateLimiter>,
    memory: MemoryRateLimiter,
    mode: FallbackMode,
    probe_interval: Duration,
    health: Arc<Health>,
}

#[derive(Debug, Default)]
struct Health {
    down: AtomicBool,
    probing: AtomicBool,
}

impl FallbackRateLimiter {
    /// `primary` (normally a [`RedisRateLimiter`]) backed by an in-process limiter, in `mode`.
    pub fn new(primary: Arc<dyn RateLimiter>, mode: FallbackMode) -> Self {
        Self {
            primary,
            memory: MemoryRateLimiter::default(),
            mode,
            probe_interval: Duration::from_secs(1),
            health: Arc::default(),
        }
    }

    /// How often Redis is tried again during an outage (default 1 s).
    pub fn with_probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// The mode.
    pub fn mode(&self) -> FallbackMode {
        self.mode
    }

    /// Whether Redis is considered down.
    pub fn is_degraded(&self) -> bool {
        self.health.down.load(Ordering::Acquire)
    }

    fn failed(&self, error: &LimiterError) {
        if !self.health.down.swap(true, Ordering::AcqRel) {
            match self.mode {
                FallbackMode::Fallback => {
                    tracing::warn!(%error, "the shared rate limiter failed; using in-process limits until it answers")
                }
                FallbackMode::Refuse => {
                    tracing::warn!(%error, "the shared rate limiter failed; refusing throttled requests until it answers")
                }
            }
        }
        self.start_probing();
    }

    /// Starts the task that tries Redis until it answers (one at a time; it ends with the limiter).
    fn start_probing(&self) {
        if self.health.probing.swap(true, Ordering::AcqRel) || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let health = Arc::downgrade(&self.health);
        let primary = self.primary.clone();
        let interval = self.probe_interval;
        let Some(probe_rate) = Rate::new(1, tessera_core::Period::Second) else { return };
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let answered = primary.check("probe", probe_rate, Utc::now()).await.is_ok();
                let Some(health) = health.upgrade() else { return };
                if answered {
                    health.probing.store(false, Ordering::Release);
                    if health.down.swap(false, Ordering::AcqRel) {
                        tracing::info!("the shared rate limiter answers again");
                    }
                    return;
                }
            }
        });
    }

    async fn run<T>(
        &self,
        primary: impl Future<Output = Result<T, LimiterError>>,
        memory: impl Future<Output = Result<T, LimiterError>>,
    ) -> Result<T, LimiterError> {
        let error = if self.is_degraded() {
            LimiterError("the shared rate limiter is down".into())
        } else {
            match primary.await {
                Ok(value) => return Ok(value),
                Err(e) => {
                    self.failed(&e);
                    e
                }
            }
        };
        match self.mode {
            FallbackMode::Fallback => memory.await,
            FallbackMode::Refuse => Err(error),
        }
    }
}

#[async_trait]
impl RateLimiter for FallbackRateLimiter {
    async fn acquire(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<Decision, LimiterError> {
        self.run(self.primary.acquire(key, rate, now), self.memory.acquire(key, rate, now)).await
    }

    async fn check(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<Decision, LimiterError> {
        self.run(self.primary.check(key, rate, now), self.memory.check(key, rate, now)).await
    }

    async fn record(&self, key: &str, rate: Rate, now: DateTime<Utc>) -> Result<(), LimiterError> {
        self.run(self.primary.record(key, rate, now), self.memory.record(key, rate, now)).await
    }

    async fn reserve(&self, budgets: &[Budget<'_>], now: DateTime<Utc>) -> Result<Reservation, LimiterError> {
        self.run(self.primary.reserve(budgets, now), self.memory.reserve(budgets, now)).await
    }

    /// Gives the slots back where they are now counted: a grant of Redis that the in-process
    /// limiter does not know (or the reverse, across an outage's edge) releases nothing.
    async fn release(&self, budgets: &[Budget<'_>], grant: &Grant, now: DateTime<Utc>) -> Result<(), LimiterError> {
        self.run(self.primary.release(budgets, grant, now), self.memory.release(budgets, grant, now)).await
    }

    async fn remember(&self, key: &str, ttl: Duration, now: DateTime<Utc>) -> Result<(), LimiterError> {
        self.run(self.primary.remember(key, ttl, now), self.memory.remember(key, ttl, now)).await
    }

    async fn remembers(&self, key: &str, now: DateTime<Utc>) -> Result<bool, LimiterError> {
        self.run(self.primary.remembers(key, now), self.memory.remembers(key, now)).await
    }

    async fn reset(&self) {
        self.primary.reset().await;
        self.memory.reset().await;
    }
}
