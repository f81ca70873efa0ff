//! Last-used times and sliding-expiry extensions, buffered in memory and written in one batch a
//! minute (and at shutdown), so an ordinary authenticated request never writes to the database.

use crate::state::Core;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;
use tessera_core::store::{Store, StoreError};
use tessera_core::{TokenDigest, TokenId};

/// How often buffered last-used times and sliding expiries are written.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct UsageBuffer {
    inner: Mutex<Buffered>,
}

#[derive(Debug, Default)]
struct Buffered {
    pending: HashMap<TokenId, Pending>,
    /// The tokens with a pending extension, by digest: invalidations name tokens by digest.
    extended: HashMap<TokenDigest, TokenId>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    digest: TokenDigest,
    last_used: DateTime<Utc>,
    /// A sliding-expiry extension not yet written.
    extension: Option<Extension>,
}

/// A sliding extension, with the stored expiry it was decided over: it applies only while the
/// store still holds that expiry (see `sliding.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extension {
    over: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// What a flush takes out of the buffer.
type Batch = (Vec<(TokenId, Pending)>, Vec<(TokenDigest, TokenId)>);

impl UsageBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffered> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a use, and a sliding extension when there is one: `(to, over)`, the new expiry and
    /// the stored expiry it was decided over. The latest note's `over` wins: it is the freshest
    /// view of the store.
    pub(crate) fn note(
        &self,
        id: TokenId,
        digest: TokenDigest,
        at: DateTime<Utc>,
        extension: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) {
        let mut buffered = self.lock();
        let entry = buffered.pending.entry(id).or_insert(Pending { digest, last_used: at, extension: None });
        entry.last_used = entry.last_used.max(at);
        if let Some((to, over)) = extension {
            let to = entry.extension.map_or(to, |old| old.to.max(to));
            entry.extension = Some(Extension { over, to });
            buffered.extended.insert(digest, id);
        }
    }

    /// The sliding extension of this token that is not written yet, if it was decided over
    /// `stored` — the expiry the store holds now. One decided over another value is dropped:
    /// someone else changed the expiry since (an admin, or another instance's write).
    pub(crate) fn extension_over(&self, id: TokenId, stored: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let mut buffered = self.lock();
        let pending = buffered.pending.get_mut(&id)?;
        let extension = pending.extension?;
        if Some(extension.over) == stored {
            return Some(extension.to);
        }
        pending.extension = None;
        let digest = pending.digest;
        buffered.extended.remove(&digest);
        None
    }

    /// Drops the pending extension of the token with this digest (someone else changed its expiry:
    /// an extension decided before that change must not outlive it). Its last use is still written.
    pub(crate) fn drop_extension(&self, digest: &TokenDigest) {
        let mut buffered = self.lock();
        if let Some(id) = buffered.extended.remove(digest)
            && let Some(pending) = buffered.pending.get_mut(&id)
        {
            pending.extension = None;
        }
    }

    /// Forgets a token (deleted: nothing to write).
    pub(crate) fn forget(&self, id: TokenId) {
        let mut buffered = self.lock();
        if let Some(pending) = buffered.pending.remove(&id) {
            buffered.extended.remove(&pending.digest);
        }
    }

    /// Writes everything buffered. What fails to write is put back for the next flush.
    pub(crate) async fn flush(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let (batch, extended): Batch = {
            let mut buffered = self.lock();
            (buffered.pending.drain().collect(), buffered.extended.drain().collect())
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let uses: Vec<(TokenId, DateTime<Utc>)> = batch.iter().map(|(id, p)| (*id, p.last_used)).collect();
        let result = async {
            store.record_last_used(&uses).await?;
            for (id, p) in &batch {
                if let Some(extension) = p.extension {
                    store.extend_expiry(*id, Some(extension.to), now).await?;
                }
            }
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = result {
            let mut buffered = self.lock();
            for (id, p) in batch {
                let entry = buffered.pending.entry(id).or_insert(p);
                entry.last_used = entry.last_used.max(p.last_used);
                if entry.extension.is_none() {
                    entry.extension = p.extension;
                }
            }
            buffered.extended.extend(extended);
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
