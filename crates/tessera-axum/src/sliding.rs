//! Sliding expiry, decided here and nowhere else.
//!
//! On a client with `sliding_expiry`, each use moves the token's expiry to `now + ttl` (capped by
//! the client's `max_lifetime`, see [`Client::expiry_from`](tessera_core::Client::expiry_from)).
//! An ordinary request must not write, so the new expiry is *buffered* (in `usage.rs`, written by
//! the minute's flush with `extend_expiry`) and applied over the stored one when this process
//! reads the token again. Only when the stored expiry is within [`WRITE_THROUGH_MARGIN`] is the
//! extension written at once: other instances judge expiry by the stored value, and would
//! otherwise find the token expired before the flush.
//!
//! A buffered extension never outlives a change made by someone else (an admin's "expire now", from
//! the CLI or another instance):
//! - it remembers the stored expiry it was decided over, and is applied over a fresh read of the
//!   store only while the store still holds exactly that value; otherwise it is dropped (the store
//!   was changed since, by someone else or by our own write — either way the store is the truth,
//!   and the use that read it slides again from there);
//! - an invalidation of the token (its expiry brought forward, from the store's log or the bus)
//!   drops it, together with the cached verdict, within the second the cache allows.

use crate::principal::Principal;
use crate::state::Core;
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use tessera_core::AuthToken;
use tessera_core::store::Invalidation;

/// A sliding extension is written at once, instead of buffered, when the stored expiry is this
/// close: other instances judge expiry by the stored value.
pub(crate) const WRITE_THROUGH_MARGIN: TimeDelta = TimeDelta::minutes(2);

impl Core {
    /// The token just read from the store as this process sees it: its stored expiry, moved by an
    /// extension this process buffered over that same stored expiry and has not written yet.
    pub(crate) fn with_buffered_extension(&self, token: &mut AuthToken) {
        if let Some(slid) = self.usage.extension_over(token.id, token.expiry) {
            token.expiry = token.expiry.map(|e| e.max(slid));
        }
    }

    /// Someone changed a token, a user or a client: the cached verdicts go, and for a token, the
    /// extension this process buffered for it (it was decided before the change).
    pub(crate) fn apply_invalidation(&self, change: &Invalidation) {
        self.cache.invalidate(change);
        if let Invalidation::Token(digest) = change {
            self.usage.drop_extension(digest);
        }
    }

    /// Sliding expiry's decision for a use at `now`, taken without waiting: the token's new
    /// expiry, and whether it must be written at once (the stored expiry is within
    /// [`WRITE_THROUGH_MARGIN`]); `None` when the expiry does not move.
    pub(crate) fn slide_of(&self, principal: &Principal, now: DateTime<Utc>) -> Option<(DateTime<Utc>, bool)> {
        let client = &principal.client;
        let stored = principal.token.expiry?;
        if !client.sliding_expiry {
            return None;
        }
        let new = client.expiry_from(now, principal.token.created)?;
        if new <= stored {
            return None;
        }
        Some((new, stored - now < WRITE_THROUGH_MARGIN))
    }

    /// Applies sliding expiry to a use at `now`: `None` when the expiry does not move, else the
    /// principal with its new expiry. The extension is buffered by the caller (with the use);
    /// it is written here at once when the stored expiry is close.
    pub(crate) async fn slide(&self, principal: &Principal, now: DateTime<Utc>) -> Option<Arc<Principal>> {
        let (new, write_through) = self.slide_of(principal, now)?;
        if write_through {
            // Awaited, not spawned: spawned writes can land out of order (and `extend_expiry`
            // drops one that lands after the stored expiry), or after the next request read
            // the store. It happens once per token per TTL, in its last two minutes.
            if let Err(e) = self.store.extend_expiry(principal.token.id, Some(new), now).await {
                // The buffer still holds it: the next flush writes it.
                tracing::warn!(error = %e, token_id = %principal.token.id, "could not extend a sliding expiry");
            }
        }
        Some(slid_to(principal, new))
    }
}

/// The principal with its token's expiry moved to `new`.
pub(crate) fn slid_to(principal: &Principal, new: DateTime<Utc>) -> Arc<Principal> {
    let mut updated = principal.clone();
    updated.token.expiry = Some(new);
    Arc::new(updated)
}
