//! The cache's followers: the background tasks that keep the cache true to the store. One reads
//! the store's invalidation log (every instance, always); one listens on the bus (Redis pub/sub,
//! or PostgreSQL's `LISTEN`/`NOTIFY`).
//! Every timing that bounds how long a revocation can be missed is here and in `mod.rs`
//! ([`MAX_SYNC_AGE`](super::MAX_SYNC_AGE)).

use crate::state::Core;
use chrono::TimeDelta;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tessera_core::bus::InvalidationBus;
use tessera_core::store::{MAX_INVALIDATIONS_PER_READ, StoreError};

/// How often the invalidation log is read.
pub(crate) const FOLLOW_EVERY: Duration = Duration::from_millis(200);
/// Invalidations are re-read for this long, so that a change committed late (PostgreSQL assigns
/// sequence numbers before commit) or a lookup that raced a change is still corrected.
pub(crate) const FOLLOW_OVERLAP: Duration = Duration::from_secs(3);
/// Invalidation log rows older than this are pruned.
pub(crate) const INVALIDATION_RETENTION: TimeDelta = TimeDelta::hours(1);
/// How often old invalidation log rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// Keeps a subscription to the bus, applying every change to the cache; while it is down the cache
/// is not trusted. Resubscribes by itself, pausing 100 ms to 2 s between attempts. Logs a warning
/// once per outage and an info line when the subscription is back.
pub(crate) async fn follow_bus(bus: Arc<dyn InvalidationBus>, core: Weak<Core>) {
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
        let on_change = |change: tessera_core::Invalidation, sent_at: Option<chrono::DateTime<chrono::Utc>>| {
            if let Some(core) = core.upgrade() {
                core.apply_invalidation(&change);
                // By the wall clock, not the injected one: the publisher stamped it by its own.
                // A publisher whose clock runs ahead counts as no lag, never a negative one.
                if let (Some(meter), Some(sent_at)) = (&core.meter, sent_at) {
                    let age = (chrono::Utc::now() - sent_at).to_std().unwrap_or_default();
                    meter.invalidation_lag_bus.observe(age);
                }
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

/// Follows the store's invalidation log so that changes made by other processes reach the cache.
pub(crate) async fn follow_invalidations(core: Weak<Core>) {
    let mut seen: std::collections::VecDeque<(std::time::Instant, i64)> = std::collections::VecDeque::new();
    let mut last_prune = std::time::Instant::now();
    let mut failing = false;
    // When the log was last read to its end: a new entry waited at most since then.
    let mut last_read: Option<std::time::Instant> = None;
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
            let mut from = seen.front().map(|(_, seq)| *seq).unwrap_or(0);
            let furthest = seen.back().map(|(_, seq)| *seq).unwrap_or(0);
            // Read to the end of the log before calling the cache synced: a read returns at most
            // MAX_INVALIDATIONS_PER_READ entries, and a flood (a mass revocation) can hold more.
            let mut read_any = false;
            let read_started = std::time::Instant::now();
            loop {
                let changes = core.store.invalidations_after(from).await?;
                read_any |= !changes.is_empty();
                for (seq, change) in &changes {
                    core.apply_invalidation(change);
                    if let (Some(meter), Some(at)) = (&core.meter, last_read)
                        && *seq > furthest
                    {
                        meter.invalidation_lag_log.observe(at.elapsed());
                    }
                }
                let newest = changes.iter().map(|(seq, _)| *seq).max().unwrap_or(from);
                if changes.len() < MAX_INVALIDATIONS_PER_READ || newest <= from {
                    from = newest;
                    break;
                }
                from = newest;
            }
            // Entries already read never disappear (pruning keeps the newest one), so a log that
            // ends before a position already read was wound back: a restored backup, a truncated
            // table. Entries written since then reuse old positions and would be skipped, and any
            // cached verdict may predate the restore: start again from the log's end, with nothing
            // cached. A quiet log (nothing after `from`) is asked where it ends.
            let end = if read_any { from } else { core.store.latest_invalidation().await? };
            if end < furthest {
                tracing::warn!(
                    position = furthest,
                    end,
                    "the invalidation log was wound back (a restore?); the token cache is emptied"
                );
                core.cache.clear();
                seen.clear();
                seen.push_back((std::time::Instant::now(), end));
                return Ok(());
            }
            seen.push_back((std::time::Instant::now(), from.max(furthest)));
            last_read = Some(read_started);
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
        if last_prune.elapsed() >= PRUNE_EVERY {
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
