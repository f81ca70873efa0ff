//! Last-used times and sliding-expiry extensions, buffered in memory and written in one batch a
//! minute (and at shutdown), so an ordinary authenticated request never writes to the database.

use crate::state::Core;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;
use tessera_core::TokenId;
use tessera_core::store::{Store, StoreError};

/// How often buffered last-used times and sliding expiries are written.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct UsageBuffer {
    pending: Mutex<HashMap<TokenId, Pending>>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    last_used: DateTime<Utc>,
    /// A sliding-expiry extension not yet written.
    expiry: Option<DateTime<Utc>>,
}

impl UsageBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenId, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a use, and a sliding extension when there is one.
    pub(crate) fn note(&self, id: TokenId, at: DateTime<Utc>, expiry: Option<DateTime<Utc>>) {
        let mut pending = self.lock();
        let entry = pending.entry(id).or_insert(Pending { last_used: at, expiry: None });
        entry.last_used = entry.last_used.max(at);
        if let Some(new) = expiry {
            entry.expiry = Some(entry.expiry.map_or(new, |old| old.max(new)));
        }
    }

    /// A sliding extension of this token that is not written yet.
    pub(crate) fn pending_expiry(&self, id: TokenId) -> Option<DateTime<Utc>> {
        self.lock().get(&id).and_then(|p| p.expiry)
    }

    /// Forgets a token (deleted: nothing to write).
    pub(crate) fn forget(&self, id: TokenId) {
        self.lock().remove(&id);
    }

    /// Writes everything buffered. What fails to write is put back for the next flush.
    pub(crate) async fn flush(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let batch: Vec<(TokenId, Pending)> = self.lock().drain().collect();
        if batch.is_empty() {
            return Ok(0);
        }
        let uses: Vec<(TokenId, DateTime<Utc>)> = batch.iter().map(|(id, p)| (*id, p.last_used)).collect();
        let result = async {
            store.record_last_used(&uses).await?;
            for (id, p) in &batch {
                if let Some(expiry) = p.expiry {
                    store.extend_expiry(*id, Some(expiry), now).await?;
                }
            }
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = result {
            let mut pending = self.lock();
            for (id, p) in batch {
                let entry = pending.entry(id).or_insert(p);
                entry.last_used = entry.last_used.max(p.last_used);
                entry.expiry = entry.expiry.max(p.expiry);
            }
            return Err(e);
        }
        Ok(batch.len())
    }
}

/// Writes last-used times and sliding expiries once a minute, while the `Tessera` lives.
pub(crate) async fn flush_usage(core: Weak<Core>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(core) = core.upgrade() else { return };
        if let Err(e) = core.usage.flush(core.store.as_ref(), core.now()).await {
            tracing::warn!(error = %e, "could not write last-used times; will retry");
        }
    }
}
