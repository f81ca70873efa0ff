//! Verifying a request's credentials: header, token format, lookup (through the cache when asked),
//! expiry, the user's state; then the use is recorded and sliding expiry applied.
//!
//! A durin token imported by `tessera import durin` (64 hex characters, not a native token) goes
//! the same way once its digest is made, when legacy tokens are accepted (`legacy.rs`): its digest
//! under each server key of the ring, the current key first (it was made with the key current at
//! the import), one lookup each until one is found.

use crate::error::AuthError;
use crate::header::{self, Credentials};
use crate::principal::Principal;
use crate::state::Core;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tessera_core::store::TokenWithOwner;
use tessera_core::{EventKind, MalformedToken, TokenCodec, TokenDigest};

impl Core {
    /// Authenticates a request by its `Authorization` header: `Ok(None)` is anonymous.
    pub(crate) async fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
        cached: bool,
        ip: Option<std::net::IpAddr>,
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        let token = match header::credentials(headers, &self.settings.auth_header_prefix) {
            Credentials::Anonymous => return Ok(None),
            Credentials::Invalid(e) => return Err(e),
            Credentials::Token(bytes) => bytes,
        };
        // durin answers 500 for non-UTF-8 bytes; it is simply not a token.
        let token = std::str::from_utf8(token).map_err(|_| AuthError::InvalidToken)?;
        let digest = match self.codec().parse(token) {
            Ok(digest) => digest,
            Err(MalformedToken::UnknownKey(id)) => {
                // Refused like any invalid token, without a lookup; the key may be a rotation's
                // new key this process has not loaded yet, so whoever reloads the ring is told.
                if let Some(hook) = &self.keys.on_unknown {
                    hook(id);
                }
                return Err(AuthError::InvalidToken);
            }
            Err(_)
                if TokenCodec::is_durin_token(token)
                    && self.legacy.open(self.settings.accept_legacy_tokens, self.store.as_ref()).await? =>
            {
                let codec = self.codec();
                for (_, digest) in codec.legacy_digests(token) {
                    match self.verify_digest(digest, true, cached, ip).await {
                        Err(AuthError::InvalidToken) => continue,
                        verdict => return verdict,
                    }
                }
                return Err(AuthError::InvalidToken);
            }
            Err(_) => return Err(AuthError::InvalidToken),
        };
        self.verify_digest(digest, false, cached, ip).await
    }

    /// Authenticates the token whose digest this is; `legacy`: it was presented as a durin token
    /// (and must be stored as one).
    async fn verify_digest(
        &self,
        digest: TokenDigest,
        legacy: bool,
        cached: bool,
        ip: Option<std::net::IpAddr>,
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        let now = self.now();

        if cached
            && self.cache.trusted()
            && let Some((principal, stored_expiry)) = self.cache.get(&digest)
            && principal.token.is_legacy() == legacy
            && !principal.token.has_expired(now)
            && principal.user.is_active
        {
            return Ok(Some(self.after_use(principal, stored_expiry, now, None).await));
        }

        let read_started = std::time::Instant::now();
        let found = self.store.token_with_owner(&digest).await.map_err(AuthError::from_store)?;
        let Some(TokenWithOwner { mut token, user, client }) = found else {
            return Err(AuthError::InvalidToken);
        };
        if !token.digest.ct_eq(&digest) || token.is_legacy() != legacy {
            return Err(AuthError::InvalidToken);
        }
        let stored_expiry = token.expiry;
        self.with_buffered_extension(&mut token);
        if token.has_expired(now) {
            // durin deletes the expired token and tells the client once; the next use is "Invalid token."
            self.store.delete_token(token.id).await.map_err(AuthError::from_store)?;
            self.forget(&token);
            self.emit(
                EventKind::TokenExpired { token_id: token.id, source: "authentication".into() },
                Some((&user, client.name.as_str())),
                ip.map(|ip| ip.to_string()),
            );
            return Err(AuthError::ExpiredToken);
        }
        if !user.is_active {
            return Err(AuthError::InactiveUser);
        }
        let principal = Arc::new(Principal { user, client, token });
        Ok(Some(self.after_use(principal, stored_expiry, now, cached.then_some(read_started)).await))
    }

    /// Records the use and applies sliding expiry; returns the principal as it now stands.
    /// `stored_expiry`: the expiry the store held when the principal was read. `cache_from`: the
    /// principal was just read from the store for the cached authenticator, in a read that began
    /// then; `None`: it came from the cache (or is not to be cached).
    async fn after_use(
        &self,
        principal: Arc<Principal>,
        stored_expiry: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        cache_from: Option<std::time::Instant>,
    ) -> Arc<Principal> {
        let slid = self.slide(&principal, now).await;
        // Buffered even when written through: a concurrent request that read the store before the
        // write must still see the extension (else it deletes the token as expired).
        let extension = slid.as_ref().and_then(|p| p.token.expiry).zip(stored_expiry);
        self.usage.note(principal.token.id, principal.token.digest, now, extension);
        let changed = slid.is_some();
        let principal = slid.unwrap_or(principal);
        if let Some(read_started) = cache_from {
            self.cache.insert(principal.token.digest, principal.clone(), stored_expiry, read_started);
        } else if changed {
            // Keep the entry's age: the cache timeout counts from the store read.
            self.cache.replace(principal.token.digest, principal.clone());
        }
        principal
    }
}
