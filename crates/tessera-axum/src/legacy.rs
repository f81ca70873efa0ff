//! Whether durin tokens brought in by `tessera import durin` (legacy tokens) are looked up:
//! `accept_legacy_tokens`, and for its `auto` value, whether the store holds any.
//!
//! A 64-hex string that is not a native token is refused without a lookup unless legacy tokens are
//! accepted: native tokens' fast rejection of malformed input stays for everyone who never
//! imported. With `auto`, the store is asked (a count of legacy tokens, from their partial index)
//! the first time such a string arrives and again at most once a minute while it held none, by one
//! request while the others wait for its answer; once it held some, the answer stays yes until the
//! process restarts (turning them off is `accept_legacy_tokens = false`, or revoking them: none is
//! found then, whatever the gate says).

use crate::error::AuthError;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tessera_core::LegacyTokens;
use tessera_core::store::{Store, TokenFilter};

/// How long "the store holds no legacy token" is believed.
const RECHECK_NONE: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct LegacyGate {
    /// `auto`'s last answer: `true` (for good), or `false` as of when.
    known: Mutex<Option<(bool, Instant)>>,
    /// Held while the store is asked: concurrent requests wait for that one answer instead of
    /// each asking (a burst of 64-hex strings must not become a burst of queries).
    asking: tokio::sync::Mutex<()>,
    /// When asking last failed (the store down): for a second after, the requests that waited are
    /// refused at once rather than each waiting out the store's timeout in turn.
    failed: Mutex<Option<Instant>>,
}

/// How long after a failed question the gate refuses without asking again.
const RETRY_FAILED: Duration = Duration::from_secs(1);

impl LegacyGate {
    /// Whether a durin token should be looked up now.
    pub(crate) async fn open(&self, setting: LegacyTokens, store: &dyn Store) -> Result<bool, AuthError> {
        match setting {
            LegacyTokens::On => return Ok(true),
            LegacyTokens::Off => return Ok(false),
            LegacyTokens::Auto => {}
        }
        if let Some(known) = self.known() {
            return Ok(known);
        }
        let _asking = self.asking.lock().await;
        // Another request may have asked while this one waited.
        if let Some(known) = self.known() {
            return Ok(known);
        }
        let failed = *self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed.is_some_and(|at| at.elapsed() < RETRY_FAILED) {
            // Fail closed, as a lookup with the store down does.
            return Err(AuthError::Unavailable);
        }
        // One index read (the partial index of legacy tokens), however large the store.
        let filter = TokenFilter { legacy: true, ..TokenFilter::default() };
        let any = match store.count_tokens(filter).await {
            Ok(n) => n > 0,
            Err(e) => {
                *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                return Err(AuthError::from_store(e));
            }
        };
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = Some((any, Instant::now()));
        Ok(any)
    }

    /// `auto`'s answer while it is still believed.
    fn known(&self) -> Option<bool> {
        match *self.known.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((true, _)) => Some(true),
            Some((false, at)) if at.elapsed() < RECHECK_NONE => Some(false),
            _ => None,
        }
    }
}
