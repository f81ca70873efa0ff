//! Whether durin tokens brought in by `tessera import durin` (legacy tokens) are looked up:
//! `accept_legacy_tokens`, and for its `auto` value, whether the store holds any.
//!
//! A 64-hex string that is not a native token is refused without a lookup unless legacy tokens are
//! accepted: native tokens' fast rejection of malformed input stays for everyone who never
//! imported. With `auto`, the store is asked (a count of legacy tokens) the first time such a
//! string arrives and again at most once a minute while it held none; once it held some, the
//! answer stays yes until the process restarts (turning them off is `accept_legacy_tokens =
//! false`, or revoking them: none is found then, whatever the gate says).

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
}

impl LegacyGate {
    /// Whether a durin token should be looked up now.
    pub(crate) async fn open(&self, setting: LegacyTokens, store: &dyn Store) -> Result<bool, AuthError> {
        match setting {
            LegacyTokens::On => return Ok(true),
            LegacyTokens::Off => return Ok(false),
            LegacyTokens::Auto => {}
        }
        let known = *self.known.lock().unwrap_or_else(|p| p.into_inner());
        match known {
            Some((true, _)) => return Ok(true),
            Some((false, at)) if at.elapsed() < RECHECK_NONE => return Ok(false),
            _ => {}
        }
        // Concurrent first requests may each count once; the answer is the same.
        let filter = TokenFilter { legacy: true, ..TokenFilter::default() };
        let any = store.count_tokens(filter).await.map_err(AuthError::from_store)? > 0;
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = Some((any, Instant::now()));
        Ok(any)
    }
}
