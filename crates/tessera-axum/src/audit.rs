//! The audit recorder: every event, as an [`AuditRecord`], buffered in memory and written to the
//! configured [`AuditSink`] in one batch a second (and at shutdown) by a background task, so no
//! request waits for the audit log, and a sink that is slow or down never fails one.
//!
//! Only events are recorded, and an ordinary authenticated request emits none: its path does not
//! touch the recorder. The buffer is bounded ([`BUFFER_MAX`]): when the sink cannot keep up, new
//! records are dropped, counted, and the count is logged at the next flush.

use crate::state::Core;
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tessera_core::{AuditRecord, AuditSink, Event, StoreError};

/// How often buffered records are written: what a `kill -9` can lose at most (plus a batch being
/// written at that moment).
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often records older than the retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The most records held for writing; beyond it new records are dropped (and counted).
pub(crate) const BUFFER_MAX: usize = 10_000;

/// How long audit records are kept by default: 90 days.
pub const DEFAULT_RETENTION: TimeDelta = TimeDelta::days(90);

/// What a [`Tessera`](crate::Tessera) records events to.
pub(crate) struct AuditRecorder {
    sink: Arc<dyn AuditSink>,
    retention: TimeDelta,
    buffer: Mutex<Vec<AuditRecord>>,
    dropped: AtomicU64,
    /// Held while a batch is written, so that a flush at shutdown waits for one in flight.
    writing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AuditRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditRecorder").field("sink", &self.sink).field("retention", &self.retention).finish()
    }
}

impl AuditRecorder {
    pub(crate) fn new(sink: Arc<dyn AuditSink>, retention: TimeDelta) -> Self {
        AuditRecorder {
            sink,
            retention,
            buffer: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AuditRecord>> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Buffers the record of `event`; never waits for the sink.
    pub(crate) fn record(&self, event: &Event) {
        let record = AuditRecord::from_event(event);
        let mut buffer = self.lock();
        if buffer.len() >= BUFFER_MAX {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buffer.push(record);
    }

    /// Writes everything buffered, in one batch; returns how many records. A batch that fails
    /// goes back in front of the buffer for the next flush (what no longer fits is dropped and
    /// counted).
    pub(crate) async fn flush(&self) -> Result<usize, StoreError> {
        let _writing = self.writing.lock().await;
        let batch = std::mem::take(&mut *self.lock());
        let result = if batch.is_empty() { Ok(0) } else { self.sink.write_audit(&batch).await.map(|()| batch.len()) };
        if result.is_err() {
            let mut buffer = self.lock();
            let newer = std::mem::replace(&mut *buffer, batch);
            buffer.extend(newer);
            if buffer.len() > BUFFER_MAX {
                let over = buffer.len() - BUFFER_MAX;
                buffer.truncate(BUFFER_MAX);
                self.dropped.fetch_add(over as u64, Ordering::Relaxed);
            }
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "the audit buffer was full: events were not recorded");
        }
        result
    }

    /// Deletes the records older than the retention.
    pub(crate) async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.sink.prune_audit(now - self.retention).await
    }
}

/// Writes audit records every second and prunes old ones every hour, while the `Tessera` lives.
pub(crate) async fn record_audit(core: Weak<Core>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let Some(core) = core.upgrade() else { return };
        let Some(audit) = core.audit.as_ref() else { return };
        if let Err(e) = audit.flush().await {
            core.store_error(crate::meter::StoreOp::Audit);
            tracing::warn!(error = %e, "could not write the audit log; will retry");
        }
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(tokio::time::Instant::now());
            match audit.prune(core.now()).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned audit records past their retention"),
                Err(e) => tracing::warn!(error = %e, "could not prune the audit log; will retry"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use tessera_core::EventKind;

    /// A sink that keeps what it is given, or fails while `down`.
    #[derive(Debug, Default)]
    struct Sink {
        down: AtomicBool,
        written: Mutex<Vec<AuditRecord>>,
    }

    #[async_trait::async_trait]
    impl AuditSink for Sink {
        async fn write_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(StoreError::Unavailable("down".into()));
            }
            self.written.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(records);
            Ok(())
        }
        async fn prune_audit(&self, _before: DateTime<Utc>) -> Result<u64, StoreError> {
            Ok(0)
        }
    }

    fn event(n: i64) -> Event {
        Event::new(EventKind::LogoutAll { tokens: n as u64 }, DateTime::from_timestamp(n, 0).unwrap_or_default())
    }

    #[tokio::test]
    async fn a_full_buffer_drops_new_records_and_a_failed_batch_is_kept_in_order() {
        let sink = Arc::new(Sink::default());
        let recorder = AuditRecorder::new(sink.clone(), DEFAULT_RETENTION);
        sink.down.store(true, Ordering::Relaxed);
        for n in 0..(BUFFER_MAX as i64 + 5) {
            recorder.record(&event(n));
        }
        assert_eq!(recorder.lock().len(), BUFFER_MAX);
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 5);
        assert!(recorder.flush().await.is_err());
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 0, "reported by the flush");
        // Recorded while the sink was down: after the failed batch, which is kept in front.
        recorder.record(&event(-1));
        assert_eq!(recorder.lock().len(), BUFFER_MAX, "the newest is dropped when full");
        sink.down.store(false, Ordering::Relaxed);
        assert_eq!(recorder.flush().await, Ok(BUFFER_MAX));
        let written = sink.written.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let order: Vec<i64> = written.iter().map(|r| r.at.timestamp()).collect();
        assert_eq!(order, (0..BUFFER_MAX as i64).collect::<Vec<_>>());
        assert_eq!(recorder.flush().await, Ok(0));
    }
}
