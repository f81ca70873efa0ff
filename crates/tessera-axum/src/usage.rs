//! Last-used times and sliding-expiry extensions, buffered in memory and written in one batch a
//! minute (and at shutdown), so an ordinary authenticated request never writes to the database.
//! Each token's entry also counts its requests and remembers its user and client: at the flush they
//! go to the usage analytics (per-token request counts, distinct active users), at no extra cost
//! on the request path, whose entry is written anyway.

use crate::analytics::{TokenUses, UsageRecorder};
use crate::meter::StoreOp;
use crate::principal::Principal;
use crate::state::Core;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
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
    /// By token id: a number the store assigned, never one a caller chose, so it is hashed by a
    /// multiplication rather than SipHash (this map is written on every authenticated request).
    pending: HashMap<TokenId, Pending, IdHash>,
    /// The tokens with a pending extension, by digest: invalidations name tokens by digest.
    extended: HashMap<TokenDigest, TokenId>,
    /// Tokens forgotten (deleted) with uses not yet handed to the analytics: nothing to write to
    /// them, but their uses still count. Bounded by [`RETIRED_MAX`].
    retired: Vec<(TokenId, Pending)>,
}

/// Hashes [`TokenId`]s, which the store assigns (sequences, or random ids): Fibonacci hashing,
/// a multiplication that spreads consecutive ids over the table's buckets and its control bits.
/// Not for keys a caller can choose: it offers no defence against collisions made on purpose.
#[derive(Debug, Default, Clone, Copy)]
struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for an `i64` id; correct, if slow, for anything else.
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

/// The most forgotten tokens whose uses wait for the next flush.
const RETIRED_MAX: usize = 100_000;

#[derive(Debug, Clone)]
struct Pending {
    digest: TokenDigest,
    last_used: DateTime<Utc>,
    /// For the analytics: whose token, on which client, how many requests since `first_used`.
    user: tessera_core::UserId,
    client: Arc<str>,
    requests: u64,
    first_used: DateTime<Utc>,
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
        principal: &Principal,
        at: DateTime<Utc>,
        extension: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) {
        let (id, digest) = (principal.token.id, principal.token.digest);
        let mut buffered = self.lock();
        let entry = buffered.pending.entry(id).or_insert_with(|| Pending {
            digest,
            last_used: at,
            user: principal.user.id,
            client: Arc::from(principal.client.name.as_str()),
            requests: 0,
            first_used: at,
            extension: None,
        });
        entry.last_used = entry.last_used.max(at);
        entry.requests += 1;
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

    /// Forgets a token (deleted: nothing to write; its uses still go to the analytics).
    pub(crate) fn forget(&self, id: TokenId) {
        let mut buffered = self.lock();
        if let Some(pending) = buffered.pending.remove(&id) {
            buffered.extended.remove(&pending.digest);
            if pending.requests > 0 && buffered.retired.len() < RETIRED_MAX {
                buffered.retired.push((id, pending));
            }
        }
    }

    /// Writes everything buffered. What fails to write is put back for the next flush. The
    /// requests counted go to `analytics` (when there is one) whether or not the write succeeds.
    pub(crate) async fn flush(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
        analytics: Option<&UsageRecorder>,
    ) -> Result<usize, StoreError> {
        let (mut batch, extended, retired): (_, _, Vec<(TokenId, Pending)>) = {
            let mut buffered = self.lock();
            let (batch, extended): Batch = (buffered.pending.drain().collect(), buffered.extended.drain().collect());
            (batch, extended, std::mem::take(&mut buffered.retired))
        };
        if let Some(analytics) = analytics {
            let uses = batch.iter().chain(&retired).map(|(id, p)| TokenUses {
                token: *id,
                user: p.user,
                client: p.client.clone(),
                requests: p.requests,
                first: p.first_used,
                last: p.last_used,
            });
            analytics.absorb(uses.collect());
        }
        // Handed over: a batch put back must not count them twice.
        for (_, p) in &mut batch {
            p.requests = 0;
            p.first_used = p.last_used;
        }
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
                let last_used = p.last_used;
                let extension = p.extension;
                let entry = buffered.pending.entry(id).or_insert(p);
                entry.last_used = entry.last_used.max(last_used);
                if entry.extension.is_none() {
                    entry.extension = extension;
                }
            }
            buffered.extended.extend(extended);
            return Err(e);
        }
        Ok(batch.len())
    }
}

/// Writes last-used times and sliding expiries once a minute, while the `Tessera` lives; then the
/// usage analytics (pruned hourly) and, with metrics on, counts the live tokens per client.
pub(crate) async fn flush_usage(core: Weak<Core>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.tick().await;
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        if let Some(core) = core.upgrade() {
            core.count_active_tokens().await;
        }
        tick.tick().await;
        let Some(core) = core.upgrade() else { return };
        core.flush_buffers().await;
        if let Some(analytics) = &core.analytics
            && last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY)
        {
            last_prune = Some(tokio::time::Instant::now());
            match analytics.prune(core.now()).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned usage counts past their retention"),
                Err(e) => tracing::warn!(error = %e, "could not prune usage counts; will retry"),
            }
        }
    }
}

/// How often usage counts older than the retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Core {
    /// Writes the last-used buffer, then the usage analytics (which the former feeds).
    pub(crate) async fn flush_buffers(&self) {
        let now = self.now();
        if let Err(e) = self.usage.flush(self.store.as_ref(), now, self.analytics.as_ref()).await {
            self.store_error(StoreOp::LastUsed);
            tracing::warn!(error = %e, "could not write last-used times; will retry");
        }
        if let (Some(analytics), Some(meter)) = (&self.analytics, &self.meter)
            && let Err(e) = analytics.flush(meter, now).await
        {
            tracing::warn!(error = %e, "could not write usage analytics; will retry");
        }
    }

    /// Counts the live tokens of every client for `tessera_active_tokens` (metrics on only: with
    /// usage analytics alone nothing reads them, and on a store of a million tokens the count reads
    /// a million index entries).
    pub(crate) async fn count_active_tokens(&self) {
        let Some(meter) = self.meter.as_ref().filter(|m| m.exported) else { return };
        let counted = async {
            let mut counts = Vec::new();
            for client in self.store.list_clients().await? {
                let filter = tessera_core::TokenFilter { client: Some(client.id), ..Default::default() };
                counts.push((client.name.to_string(), self.store.count_tokens(filter).await?));
            }
            Ok::<_, StoreError>(counts)
        }
        .await;
        match counted {
            Ok(counts) => meter.set_active_tokens(counts),
            Err(e) => {
                meter.store_error(StoreOp::CountTokens);
                tracing::debug!(error = %e, "could not count the live tokens");
            }
        }
    }
}
