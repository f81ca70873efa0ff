//! Verifying a request's credentials: header, token format, lookup (through the cache when asked),
//! expiry, the user's state, sliding expiry and the last-used buffer.

use crate::Principal;
use crate::cache::TokenCache;
use crate::error::{AuthError, ErrorRenderer, Rejection};
use crate::events::Events;
use crate::header::{self, Credentials};
use crate::throttle::RateLimiter;
use crate::usage::UsageBuffer;
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use tessera_core::store::{Store, StoreError, TokenWithOwner};
use tessera_core::{Clock, Event, EventKind, Settings, TokenCodec};

/// A sliding extension is written at once, instead of buffered, when the stored expiry is this
/// close: other instances judge expiry by the stored value.
const WRITE_THROUGH_MARGIN: TimeDelta = TimeDelta::minutes(2);

/// Everything a Tessera instance shares between its layers, guards and routes.
pub(crate) struct Core {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) codec: TokenCodec,
    pub(crate) settings: Settings,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cache: TokenCache,
    pub(crate) bus: Option<Arc<dyn tessera_core::bus::InvalidationBus>>,
    pub(crate) cached_auth_routes: bool,
    pub(crate) usage: UsageBuffer,
    pub(crate) events: Events,
    pub(crate) limiter: Arc<dyn RateLimiter>,
    pub(crate) renderer: Arc<dyn ErrorRenderer>,
    pub(crate) www_authenticate: Arc<str>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tessera").field("store", &self.store).field("codec", &self.codec).finish_non_exhaustive()
    }
}

impl Core {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn reject(&self, error: AuthError) -> Rejection {
        Rejection::new(error, self.renderer.clone(), self.www_authenticate.clone())
    }

    pub(crate) fn emit(&self, kind: EventKind, principal: Option<(&tessera_core::User, &str)>, ip: Option<String>) {
        self.events.emit(Event {
            kind,
            user_id: principal.map(|(u, _)| u.id),
            username: principal.map(|(u, _)| u.username.to_string()),
            client: principal.map(|(_, c)| c.to_string()),
            ip,
            at: self.now(),
        });
    }

    /// Authenticates the `Authorization` header value: `Ok(None)` is anonymous.
    pub(crate) async fn authenticate(
        &self,
        value: Option<&[u8]>,
        cached: bool,
        ip: Option<std::net::IpAddr>,
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        let token = match header::parse(value, &self.settings.auth_header_prefix) {
            Credentials::Anonymous => return Ok(None),
            Credentials::Invalid(e) => return Err(e),
            Credentials::Token(bytes) => bytes,
        };
        // durin answers 500 for non-UTF-8 bytes; it is simply not a token.
        let token = std::str::from_utf8(token).map_err(|_| AuthError::InvalidToken)?;
        let digest = self.codec.parse(token).map_err(|_| AuthError::InvalidToken)?;
        let now = self.now();

        if cached
            && self.cache.trusted()
            && let Some(principal) = self.cache.get(&digest)
            && !principal.token.has_expired(now)
            && principal.user.is_active
        {
            return Ok(Some(self.after_use(principal, now, cached, false).await));
        }

        let found = self.store.token_with_owner(&digest).await.map_err(unavailable)?;
        let Some(TokenWithOwner { mut token, user, client }) = found else {
            return Err(AuthError::InvalidToken);
        };
        if !token.digest.ct_eq(&digest) {
            return Err(AuthError::InvalidToken);
        }
        if let Some(slid) = self.usage.pending_expiry(token.id) {
            token.expiry = token.expiry.map(|e| e.max(slid));
        }
        if token.has_expired(now) {
            // durin deletes the expired token and tells the client once; the next use is "Invalid token."
            self.store.delete_token(token.id).await.map_err(unavailable)?;
            self.cache.remove(&digest);
            self.usage.forget(token.id);
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
        Ok(Some(self.after_use(principal, now, cached, true).await))
    }

    /// Records the use and applies sliding expiry; returns the principal as it now stands.
    /// `from_store`: the principal was just read from the store (not from the cache).
    async fn after_use(
        &self,
        principal: Arc<Principal>,
        now: DateTime<Utc>,
        cached: bool,
        from_store: bool,
    ) -> Arc<Principal> {
        let mut principal = principal;
        let mut extension = None;
        let mut changed = false;
        if principal.client.sliding_expiry
            && let Some(new) = principal.client.expiry_from(now, principal.token.created)
            && principal.token.expiry.is_some_and(|old| new > old)
        {
            let stored = principal.token.expiry;
            let mut updated = (*principal).clone();
            updated.token.expiry = Some(new);
            principal = Arc::new(updated);
            changed = true;
            if stored.is_some_and(|s| s - now < WRITE_THROUGH_MARGIN) {
                // Awaited, not spawned: spawned writes can land out of order (and `extend_expiry`
                // drops one that lands after the stored expiry), or after the next request read
                // the store. It happens once per token per TTL, in its last two minutes.
                self.write_through(principal.token.id, new, now).await;
            }
            // Buffered as well: a concurrent request that read the store before the write must
            // still see the extension (else it deletes the token as expired).
            extension = Some(new);
        }
        self.usage.note(principal.token.id, now, extension);
        if cached && from_store {
            self.cache.insert(principal.token.digest, principal.clone());
        } else if cached && changed {
            // Keep the entry's age: the cache timeout counts from the store read.
            self.cache.replace(principal.token.digest, principal.clone());
        }
        principal
    }

    async fn write_through(&self, id: tessera_core::TokenId, expiry: DateTime<Utc>, now: DateTime<Utc>) {
        if let Err(e) = self.store.extend_expiry(id, Some(expiry), now).await {
            // The buffer still holds it: the next flush writes it.
            tracing::warn!(error = %e, token_id = %id, "could not extend a sliding expiry");
        }
    }

    /// Forgets a token this process just deleted or changed.
    pub(crate) fn forget(&self, token: &tessera_core::AuthToken) {
        self.cache.remove(&token.digest);
        self.usage.forget(token.id);
    }
}

/// A store error on the request path: the client gets 503, the log gets the reason.
pub(crate) fn unavailable(e: StoreError) -> AuthError {
    tracing::error!(error = %e, "store error during authentication");
    AuthError::Unavailable
}
