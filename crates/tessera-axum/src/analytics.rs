//! The usage analytics recorder: once a minute (and at shutdown) it takes what the [`Meter`]
//! counted since its last write — the difference of each client's cumulative counters — together
//! with the tokens' request counts and active users that rode along with the last-used buffer
//! (`usage.rs`), and adds them to the configured [`UsageSink`] in one batch. Nothing here runs on
//! the request path.
//!
//! Counts are attributed to the UTC day of the flush that takes them (by the Tessera's clock): the
//! requests of the last minute before midnight may land on the next day. Active users and token
//! requests carry the days of their own uses. A batch that fails to write is kept for the next
//! flush, merged with newer counts (bounded: past [`PENDING_MAX`] users or tokens, new ones are
//! dropped and the drop is logged).

use crate::meter::{Meter, Snapshot, StoreOp};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tessera_core::usage::{LoginCounts, RequestCounts, UsageCounts};
use tessera_core::{StoreError, TokenId, UsageBatch, UsageSink, UserId};

/// How long usage counts are kept by default: 400 days.
pub const DEFAULT_RETENTION: TimeDelta = TimeDelta::days(400);
/// The most active users, and separately tokens, held for a write that keeps failing.
pub(crate) const PENDING_MAX: usize = 100_000;

/// One token's uses since the last flush, as the last-used buffer hands them over.
#[derive(Debug, Clone)]
pub(crate) struct TokenUses {
    pub(crate) token: TokenId,
    pub(crate) user: UserId,
    pub(crate) client: Arc<str>,
    pub(crate) requests: u64,
    pub(crate) first: DateTime<Utc>,
    pub(crate) last: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Pending {
    counts: HashMap<(NaiveDate, Arc<str>), UsageCounts>,
    active: HashSet<(NaiveDate, Arc<str>, UserId)>,
    tokens: HashMap<TokenId, (u64, DateTime<Utc>)>,
    dropped: u64,
}

impl Pending {
    fn merge(&mut self, other: Pending) {
        for (key, counts) in other.counts {
            self.counts.entry(key).or_default().add(&counts);
        }
        for user in other.active {
            if self.active.len() < PENDING_MAX || self.active.contains(&user) {
                self.active.insert(user);
            } else {
                self.dropped += 1;
            }
        }
        for (token, (n, last)) in other.tokens {
            self.add_token(token, n, last);
        }
        self.dropped += other.dropped;
    }

    fn add_token(&mut self, token: TokenId, n: u64, last: DateTime<Utc>) {
        if self.tokens.len() >= PENDING_MAX && !self.tokens.contains_key(&token) {
            self.dropped += 1;
            return;
        }
        let entry = self.tokens.entry(token).or_insert((0, last));
        entry.0 += n;
        entry.1 = entry.1.max(last);
    }

    fn batch(&self) -> UsageBatch {
        UsageBatch {
            counts: self.counts.iter().map(|((day, client), c)| (*day, client.to_string(), *c)).collect(),
            active_users: self.active.iter().map(|(day, client, user)| (*day, client.to_string(), *user)).collect(),
            token_requests: self.tokens.iter().map(|(t, (n, last))| (*t, *n, *last)).collect(),
        }
    }
}

/// Writes a Tessera's usage counts to its sink.
pub(crate) struct UsageRecorder {
    sink: Arc<dyn UsageSink>,
    retention: TimeDelta,
    pending: Mutex<Pending>,
    /// Each client's counters as of the last flush (only the flush reads and writes it).
    flushed: Mutex<HashMap<Arc<str>, Snapshot>>,
    /// Held while a batch is written, so that a flush at shutdown waits for one in flight.
    writing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for UsageRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageRecorder").field("sink", &self.sink).field("retention", &self.retention).finish()
    }
}

fn counts_of(d: Snapshot) -> UsageCounts {
    UsageCounts {
        requests: RequestCounts::from_array([d[0], d[1], d[2], d[3], d[4], d[5]]),
        logins: LoginCounts::from_array([d[6], d[7], d[8]]),
        tokens_issued: d[9],
        tokens_revoked: d[10],
    }
}

impl UsageRecorder {
    pub(crate) fn new(sink: Arc<dyn UsageSink>, retention: TimeDelta) -> Self {
        UsageRecorder {
            sink,
            retention,
            pending: Mutex::new(Pending::default()),
            flushed: Mutex::new(HashMap::new()),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes over the tokens' uses drained from the last-used buffer.
    pub(crate) fn absorb(&self, uses: Vec<TokenUses>) {
        let mut pending = self.pending();
        for u in uses {
            for day in [u.first.date_naive(), u.last.date_naive()] {
                let key = (day, u.client.clone(), u.user);
                if pending.active.len() < PENDING_MAX || pending.active.contains(&key) {
                    pending.active.insert(key);
                } else {
                    pending.dropped += 1;
                }
            }
            pending.add_token(u.token, u.requests, u.last);
        }
    }

    /// Counts `user` active on `client` on `day` without a request: a successful login is use of
    /// the client even when no authenticated request follows it that day.
    pub(crate) fn logged_in(&self, day: NaiveDate, client: &str, user: UserId) {
        let mut pending = self.pending();
        let key = (day, Arc::from(client), user);
        if pending.active.len() < PENDING_MAX || pending.active.contains(&key) {
            pending.active.insert(key);
        } else {
            pending.dropped += 1;
        }
    }

    /// Takes the counters' growth since the last flush into the pending batch, under `today`.
    fn take_counts(&self, meter: &Meter, today: NaiveDate) {
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        let mut fresh = Vec::new();
        for client in meter.all_clients() {
            let now = client.snapshot();
            let before = flushed.get(&client.name).copied().unwrap_or_default();
            let mut delta = [0u64; 11];
            for (d, (n, b)) in delta.iter_mut().zip(now.iter().zip(before)) {
                *d = n.saturating_sub(b);
            }
            flushed.insert(client.name.clone(), now);
            let counts = counts_of(delta);
            if !counts.is_zero() {
                fresh.push(((today, client.name.clone()), counts));
            }
        }
        drop(flushed);
        let mut pending = self.pending();
        for (key, counts) in fresh {
            pending.counts.entry(key).or_default().add(&counts);
        }
    }

    /// Writes everything counted so far, in one batch; how many rows it held. A batch that
    /// fails goes back to be merged into the next.
    pub(crate) async fn flush(&self, meter: &Meter, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let _writing = self.writing.lock().await;
        self.take_counts(meter, now.date_naive());
        let taken = std::mem::take(&mut *self.pending());
        if taken.dropped > 0 {
            tracing::warn!(dropped = taken.dropped, "usage analytics could not keep every user and token: dropped");
        }
        let batch = taken.batch();
        if batch.is_empty() {
            return Ok(0);
        }
        let rows = batch.counts.len() + batch.active_users.len() + batch.token_requests.len();
        match self.sink.write_usage(&batch).await {
            Ok(()) => Ok(rows),
            Err(e) => {
                meter.store_error(StoreOp::Usage);
                let mut pending = self.pending();
                let newer = std::mem::take(&mut *pending);
                *pending = Pending { dropped: 0, ..taken };
                pending.merge(newer);
                Err(e)
            }
        }
    }

    /// Deletes the days older than the retention.
    pub(crate) async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.sink.prune_usage((now - self.retention).date_naive()).await
    }
}
