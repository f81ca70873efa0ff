//! Verifying a request's credentials: header, token format, lookup (through the cache when asked),
//! expiry, the user's state; then the use is recorded and sliding expiry applied. With metrics or
//! analytics on, what was found is noted in an [`Observed`] for the caller to count once the
//! request's outcome is known.
//!
//! A durin token imported by `tessera import durin` (64 hex characters, not a native token) goes
//! the same way once its digest is made, when legacy tokens are accepted (`legacy.rs`): its digest
//! under each server key of the ring, the current key first (it was made with the key current at
//! the import), one lookup each until one is found.

use crate::cache::Presented;
use crate::error::AuthError;
use crate::header::{self, Credentials};
use crate::meter::{CacheResult, ClientMeter, Observed, StoreOp};
use crate::principal::Principal;
use crate::state::Core;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tessera_core::store::TokenWithOwner;
use tessera_core::{EventKind, KeyId, MalformedToken, TokenCodec, TokenDigest};

/// What a token is presented for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenUse {
    /// The API (the layer, forward-auth): any client's token but a staff session's.
    Api,
    /// The admin UI: a staff session's token only.
    StaffSession,
}

/// Whether a token of `client` may be used for `purpose`: staff sessions only in the admin UI,
/// and only they there.
fn fits(purpose: TokenUse, client: &tessera_core::Client) -> bool {
    crate::staff::is_staff_client(&client.name) == (purpose == TokenUse::StaffSession)
}

/// What [`Core::authenticate_now`] decided: a request's verdict (`Ok(None)`: anonymous).
pub(crate) type Verdict = Result<Option<Arc<Principal>>, AuthError>;

impl Core {
    /// Authenticates a request by its `Authorization` header without waiting, when that can be
    /// done: no credentials, a malformed header, or — for the cached authenticator, while the
    /// cache is trusted — a token whose verdict the cache holds and whose use needs no write.
    /// `None`: the request needs [`Core::authenticate`] (a lookup, a sliding expiry to write, a
    /// token to check in full and refuse). `at`: the request's reading of the monotonic clock.
    ///
    /// This is the whole of a cached request's verification, and what lets the layer call the
    /// inner service at once instead of boxing a future around the request; it decides exactly as
    /// [`Core::authenticate`] would.
    pub(crate) fn authenticate_now(
        &self,
        headers: &axum::http::HeaderMap,
        cached: bool,
        at: std::time::Instant,
        observed: &mut Observed,
    ) -> Option<Verdict> {
        let token = match header::credentials(headers, &self.settings.auth_header_prefix) {
            Credentials::Anonymous => return Some(Ok(None)),
            Credentials::Invalid(e) => return Some(Err(e)),
            Credentials::Token(bytes) => bytes,
        };
        if !cached {
            return None;
        }
        let moment = self.cache.moment(at);
        if !self.cache.trusted_at(moment) {
            return None;
        }
        let now = self.now();
        let (principal, stored_expiry, meter) = self.cache_hit(&self.cache.name(token), TokenUse::Api, now, moment)?;
        let slid = match self.slide_of(&principal, now) {
            None => None,
            Some((new, false)) => Some(crate::sliding::slid_to(&principal, new)),
            // The stored expiry is close: the extension is written before the request goes on.
            Some((_, true)) => return None,
        };
        observed.cache = Some(CacheResult::Hit);
        observed.client = meter;
        Some(Ok(Some(self.record_use(principal, slid, stored_expiry, now, None, None))))
    }

    /// The cached verdict of the presented token named `name`, when it may be used for `purpose`
    /// at `now` (`at` on the monotonic clock): a native token whose key is still in the ring, not
    /// expired, of an active user. Trusting the cache is the caller's decision.
    fn cache_hit(
        &self,
        name: &crate::cache::Presented,
        purpose: TokenUse,
        now: DateTime<Utc>,
        at: crate::cache::Moment,
    ) -> Option<crate::cache::Cached> {
        let (key, cached) = self.cache.get_named(name, at)?;
        let principal = &cached.0;
        let usable = !principal.token.is_legacy()
            && !principal.token.has_expired(now)
            && principal.user.is_active
            && fits(purpose, &principal.client)
            && self.keys.holds(key);
        usable.then_some(cached)
    }

    /// Authenticates a request by its `Authorization` header: `Ok(None)` is anonymous.
    pub(crate) async fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
        cached: bool,
        ip: Option<std::net::IpAddr>,
        observed: &mut Observed,
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        let token = match header::credentials(headers, &self.settings.auth_header_prefix) {
            Credentials::Anonymous => return Ok(None),
            Credentials::Invalid(e) => return Err(e),
            Credentials::Token(bytes) => bytes,
        };
        // durin answers 500 for non-UTF-8 bytes; it is simply not a token.
        let token = std::str::from_utf8(token).map_err(|_| AuthError::InvalidToken)?;
        self.authenticate_token(token, TokenUse::Api, cached, ip, observed).await.map(Some)
    }

    /// Authenticates one token for `purpose`: a staff session's token is refused on the API (as
    /// an invalid token, before anything about it is checked or changed), and only a staff
    /// session's token is accepted for the admin UI.
    pub(crate) async fn authenticate_token(
        &self,
        token: &str,
        purpose: TokenUse,
        cached: bool,
        ip: Option<std::net::IpAddr>,
        observed: &mut Observed,
    ) -> Result<Arc<Principal>, AuthError> {
        // The cache finds a native token's verdict by its name (a keyed hash, see
        // `cache::Presented`), so a hit costs no HMAC, and no format check either: a name is only
        // ever given to a token that passed one. A miss checks the token, then computes the digest.
        let now = self.now();
        // The monotonic clock is read for the cached authenticator only.
        let at = cached.then(|| self.cache.moment(std::time::Instant::now())).filter(|at| self.cache.trusted_at(*at));
        let name = at.map(|_| self.cache.name(token.as_bytes()));
        if let (Some(name), Some(at)) = (&name, at)
            && let Some((principal, stored_expiry, meter)) = self.cache_hit(name, purpose, now, at)
        {
            observed.cache = Some(CacheResult::Hit);
            observed.client = meter;
            return Ok(self.after_use(principal, stored_expiry, now, None, None).await);
        }
        let codec = self.codec();
        let key = match codec.check(token) {
            Ok(key) => key,
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
                for (_, digest) in codec.legacy_digests(token) {
                    match self.verify_digest(digest, true, None, purpose, cached, ip, observed).await {
                        Err(AuthError::InvalidToken) => continue,
                        verdict => return verdict,
                    }
                }
                return Err(AuthError::InvalidToken);
            }
            Err(_) => return Err(AuthError::InvalidToken),
        };

        let digest = codec.digest_of(key, token);
        drop(codec);
        self.verify_digest(digest, false, name.map(|n| (n, key)), purpose, cached, ip, observed).await
    }

    /// Authenticates the token whose digest this is; `legacy`: it was presented as a durin token
    /// (and must be stored as one); `name`: the cache's name for the presented token and the key
    /// it named, to be given the digest once its verdict is cached (native tokens that passed
    /// `TokenCodec::check`, with the cache trusted).
    #[allow(clippy::too_many_arguments)]
    async fn verify_digest(
        &self,
        digest: TokenDigest,
        legacy: bool,
        name: Option<(Presented, KeyId)>,
        purpose: TokenUse,
        cached: bool,
        ip: Option<std::net::IpAddr>,
        observed: &mut Observed,
    ) -> Result<Arc<Principal>, AuthError> {
        let fits = |client: &tessera_core::Client| fits(purpose, client);
        let now = self.now();

        let trusted = cached && self.cache.trusted();
        if trusted
            && let Some((principal, stored_expiry, meter)) = self.cache.get(&digest)
            && principal.token.is_legacy() == legacy
            && !principal.token.has_expired(now)
            && principal.user.is_active
            && fits(&principal.client)
        {
            if let Some((name, key)) = name {
                // Cached under its digest, but its name was not (yet, or no longer: a full shard).
                self.cache.name_digest(name, digest, key);
            }
            observed.cache = Some(CacheResult::Hit);
            observed.client = meter;
            return Ok(self.after_use(principal, stored_expiry, now, None, None).await);
        }
        observed.cache = Some(if trusted { CacheResult::Miss } else { CacheResult::Bypass });

        let read_started = std::time::Instant::now();
        let found = self.store.token_with_owner(&digest).await.map_err(|e| {
            self.store_error(StoreOp::Authenticate);
            AuthError::from_store(e)
        })?;
        let Some(TokenWithOwner { mut token, user, client }) = found else {
            return Err(AuthError::InvalidToken);
        };
        if !token.digest.ct_eq(&digest) || token.is_legacy() != legacy || !fits(&client) {
            return Err(AuthError::InvalidToken);
        }
        let stored_expiry = token.expiry;
        // Resolved once here, then kept with the cache entry.
        observed.client = self.meter.as_ref().map(|m| m.client(client.name.as_str()));
        self.with_buffered_extension(&mut token);
        if token.has_expired(now) {
            // durin deletes the expired token and tells the client once; the next use is "Invalid token."
            self.store.delete_token(token.id).await.map_err(|e| {
                self.store_error(StoreOp::Authenticate);
                AuthError::from_store(e)
            })?;
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
        let meter = observed.client.clone();
        let principal = self.after_use(principal, stored_expiry, now, cached.then_some(read_started), meter).await;
        if let Some((name, key)) = name {
            // Harmless when the cache refused the verdict: a name without an entry is a miss.
            self.cache.name_digest(name, digest, key);
        }
        Ok(principal)
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
        meter: Option<Arc<ClientMeter>>,
    ) -> Arc<Principal> {
        let slid = self.slide(&principal, now).await;
        self.record_use(principal, slid, stored_expiry, now, cache_from, meter)
    }

    /// [`Core::after_use`] once sliding expiry was applied (`slid`: the principal with its new
    /// expiry, when it moved): notes the use, and caches or updates the verdict.
    fn record_use(
        &self,
        principal: Arc<Principal>,
        slid: Option<Arc<Principal>>,
        stored_expiry: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        cache_from: Option<std::time::Instant>,
        meter: Option<Arc<ClientMeter>>,
    ) -> Arc<Principal> {
        // Buffered even when written through: a concurrent request that read the store before the
        // write must still see the extension (else it deletes the token as expired).
        let extension = slid.as_ref().and_then(|p| p.token.expiry).zip(stored_expiry);
        self.usage.note(&principal, now, extension);
        let changed = slid.is_some();
        let principal = slid.unwrap_or(principal);
        if let Some(read_started) = cache_from {
            self.cache.insert(principal.token.digest, principal.clone(), stored_expiry, read_started, meter);
        } else if changed {
            // Keep the entry's age: the cache timeout counts from the store read.
            self.cache.replace(principal.token.digest, principal.clone());
        }
        principal
    }
}
