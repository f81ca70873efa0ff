//! `Core`: everything one Tessera instance shares between its layers, guards, routes and
//! background tasks. The token lifecycle (`tokens.rs`), verification (`authn.rs`) and sliding
//! expiry (`sliding.rs`) are methods on it, each in the file named for it.

use crate::analytics::UsageRecorder;
use crate::audit::AuditRecorder;
use crate::cache::TokenCache;
use crate::error::{AuthError, ErrorRenderer, Rejection};
use crate::events::Events;
use crate::meter::{Meter, StoreOp};
use crate::usage::UsageBuffer;
use chrono::{DateTime, Utc};
use std::sync::{Arc, RwLock};
use tessera_core::bus::InvalidationBus;
use tessera_core::store::Store;
use tessera_core::throttle::RateLimiter;
use tessera_core::{Actor, AuthToken, Clock, Event, EventKind, KeyId, KeyRing, Settings, TokenCodec, User};

/// The server keys in force and the codec made from them, swapped whole when the ring changes
/// (a rotation picked up at run time): a request reads the codec once, under a read lock held for
/// an `Arc` clone.
pub(crate) struct Keys {
    in_force: RwLock<(KeyRing, Arc<TokenCodec>)>,
    /// Told when a presented token names a key id the ring does not hold (it may have been added
    /// by a rotation elsewhere): a cheap, non-blocking call on the request path.
    pub(crate) on_unknown: Option<Arc<dyn Fn(KeyId) + Send + Sync>>,
}

impl Keys {
    pub(crate) fn new(ring: KeyRing, codec: TokenCodec, on_unknown: Option<Arc<dyn Fn(KeyId) + Send + Sync>>) -> Self {
        Self { in_force: RwLock::new((ring, Arc::new(codec))), on_unknown }
    }

    pub(crate) fn codec(&self) -> Arc<TokenCodec> {
        // A poisoned lock still holds a complete value: the write is one assignment.
        self.in_force.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// Whether the ring in force holds the key `id`, without cloning the codec: a cache hit asks
    /// it instead of checking the token again (see `cache::Presented`).
    pub(crate) fn holds(&self, id: KeyId) -> bool {
        self.in_force.read().unwrap_or_else(|p| p.into_inner()).1.has_key(id)
    }

    pub(crate) fn ring(&self) -> KeyRing {
        self.in_force.read().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Puts `ring` in force (same token format); `false` when it is the ring already in force.
    pub(crate) fn replace(&self, ring: KeyRing) -> bool {
        let mut in_force = self.in_force.write().unwrap_or_else(|p| p.into_inner());
        if in_force.0.same_as(&ring) {
            return false;
        }
        let codec = Arc::new(in_force.1.with_keys(ring.clone()));
        *in_force = (ring, codec);
        true
    }
}

pub(crate) struct Core {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: Keys,
    pub(crate) settings: Settings,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cache: TokenCache,
    pub(crate) bus: Option<Arc<dyn InvalidationBus>>,
    pub(crate) cached_auth_routes: bool,
    pub(crate) usage: UsageBuffer,
    pub(crate) events: Events,
    /// The audit log's recorder, when one was configured.
    pub(crate) audit: Option<AuditRecorder>,
    /// The counters behind the metrics and the usage analytics, when either is on.
    pub(crate) meter: Option<Arc<Meter>>,
    /// The usage analytics' recorder, when a usage sink was configured.
    pub(crate) analytics: Option<UsageRecorder>,
    pub(crate) limiter: Arc<dyn RateLimiter>,
    /// The login throttle's limiter: `limiter` itself when one was configured, else its own.
    pub(crate) login_limiter: Arc<dyn RateLimiter>,
    pub(crate) password_checks: crate::routes::PasswordChecks,
    pub(crate) renderer: Arc<dyn ErrorRenderer>,
    pub(crate) www_authenticate: Arc<str>,
    /// Whether durin tokens (imported) are looked up (`accept_legacy_tokens`).
    pub(crate) legacy: crate::legacy::LegacyGate,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tessera").field("store", &self.store).field("codec", &self.keys.codec()).finish_non_exhaustive()
    }
}

/// Who an event is about: a user on a client.
pub(crate) type Who<'a> = Option<(&'a User, &'a str)>;

impl Core {
    /// The token codec in force (cheap: the codec shares its keys).
    pub(crate) fn codec(&self) -> Arc<TokenCodec> {
        self.keys.codec()
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// `error`, to be rendered by the configured renderer.
    pub(crate) fn reject(&self, error: AuthError) -> Rejection {
        Rejection::new(error, self.renderer.clone(), self.www_authenticate.clone())
    }

    /// Emits `kind` about `who`, by its default actor ([`Actor::default_for`]).
    pub(crate) fn emit(&self, kind: EventKind, who: Who<'_>, ip: Option<String>) {
        let actor = Actor::default_for(&kind);
        self.publish(self.event(kind, who, ip, actor));
    }

    /// The event of `kind` about `who`, now, by `actor`: to fill in further, then [`Core::publish`].
    pub(crate) fn event(&self, kind: EventKind, who: Who<'_>, ip: Option<String>, actor: Actor) -> Event {
        Event {
            user_id: who.map(|(u, _)| u.id),
            username: who.map(|(u, _)| u.username.to_string()),
            client: who.map(|(_, c)| c.to_string()),
            ip,
            actor,
            ..Event::new(kind, self.now())
        }
    }

    /// Hands `event` to the hooks, then to the audit recorder (which only buffers it) and the
    /// counters (logins, tokens issued and revoked).
    pub(crate) fn publish(&self, mut event: Event) {
        if event.actor == Actor::Admin
            && event.actor_name.is_none()
            && let Some((name, ip)) = crate::staff::acting_staff()
        {
            event.actor_name = Some(name);
            // The admin's own address: the change was made from there.
            event.ip = event.ip.or_else(|| ip.map(|ip| ip.to_string()));
        }
        self.events.emit(&event);
        if let Some(meter) = &self.meter {
            meter.event(&event);
        }
        if let Some(audit) = &self.audit {
            audit.record(&event);
        }
        if let (Some(analytics), EventKind::UserLoggedIn, Some(user), Some(client)) =
            (&self.analytics, &event.kind, event.user_id, &event.client)
        {
            analytics.logged_in(event.at.date_naive(), client, user);
        }
    }

    /// Counts a store error (metrics on).
    pub(crate) fn store_error(&self, op: StoreOp) {
        if let Some(meter) = &self.meter {
            meter.store_error(op);
        }
    }

    /// The per-(user, client) throttle, as guards apply it: the client's rate, else
    /// `default_throttle_rate`; with neither the request passes (and `warn_once`, when given, says
    /// so once). A limiter that cannot decide refuses (a FallbackRateLimiter decides in-process
    /// instead, when that is the configured policy).
    pub(crate) async fn throttle(
        &self,
        principal: &crate::principal::Principal,
        warn_once: Option<&std::sync::atomic::AtomicBool>,
    ) -> Result<(), AuthError> {
        let Some(rate) = self.throttle_rate(principal, warn_once) else { return Ok(()) };
        let key = ThrottleKey::of(principal);
        throttle_verdict(self.limiter.acquire(key.as_str(), rate, self.now()).await)
    }

    /// [`Core::throttle`] without waiting, when the limiter can answer at once (the in-process
    /// one): `None` when it must be asked ([`Core::throttle`]; Redis).
    pub(crate) fn throttle_now(
        &self,
        principal: &crate::principal::Principal,
        warn_once: Option<&std::sync::atomic::AtomicBool>,
    ) -> Option<Result<(), AuthError>> {
        let Some(rate) = self.throttle_rate(principal, warn_once) else { return Some(Ok(())) };
        let key = ThrottleKey::of(principal);
        self.limiter.acquire_now(key.as_str(), rate, self.now()).map(throttle_verdict)
    }

    /// The rate a throttled guard applies to `principal`'s requests, if any (see [`Core::throttle`]).
    fn throttle_rate(
        &self,
        principal: &crate::principal::Principal,
        warn_once: Option<&std::sync::atomic::AtomicBool>,
    ) -> Option<tessera_core::Rate> {
        let rate = principal.client.throttle_rate.or(self.settings.default_throttle_rate);
        if rate.is_none()
            && let Some(warned) = warn_once
            && !warned.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                client = %principal.client.name,
                "a throttled guard has no rate to apply: client '{}' has no throttle rate and \
                 `default_throttle_rate` is not set, so its requests are not throttled",
                principal.client.name
            );
        }
        rate
    }

    /// Forgets a token this process just deleted or changed: the cache entry and what is buffered.
    pub(crate) fn forget(&self, token: &AuthToken) {
        self.cache.remove(&token.digest);
        self.usage.forget(token.id);
    }
}

/// Appends `n` in decimal, as `Display` would write it.
/// The throttle's answer as the guard's.
fn throttle_verdict(
    decision: Result<tessera_core::throttle::Decision, tessera_core::throttle::LimiterError>,
) -> Result<(), AuthError> {
    use tessera_core::throttle::Decision;
    match decision {
        Ok(Decision::Allowed) => Ok(()),
        Ok(Decision::Throttled { wait_secs }) => Err(AuthError::Throttled { wait_secs }),
        Err(e) => {
            tracing::warn!(error = %e, "throttle unavailable");
            Err(AuthError::Unavailable)
        }
    }
}

/// `throttle:{user}:{client}`, written on the stack without the formatting machinery (this runs
/// on every throttled request): at most 9 + 20 + 1 + 20 bytes.
struct ThrottleKey {
    bytes: [u8; 50],
    len: usize,
}

impl ThrottleKey {
    fn of(principal: &crate::principal::Principal) -> Self {
        Self::new(principal.user.id.0, principal.client.id.0)
    }

    fn new(user: i64, client: i64) -> Self {
        let mut key = ThrottleKey { bytes: [0; 50], len: 0 };
        key.push(b"throttle:");
        key.push_decimal(user);
        key.push(b":");
        key.push_decimal(client);
        key
    }

    fn push(&mut self, bytes: &[u8]) {
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// `n` in decimal (`itoa`: four digits per division, no `fmt`; ids are 16 digits, and this
    /// was most of the key's cost).
    fn push_decimal(&mut self, n: i64) {
        self.push(itoa::Buffer::new().format(n).as_bytes());
    }

    fn as_str(&self) -> &str {
        // ASCII only: always UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn throttle_keys_are_written_as_format_writes_them() {
        let numbers = [0, 1, 9, 10, 42, 99, 100, 101, 1_000_000, 6_821_094_837_697_730, -1, -907, i64::MAX, i64::MIN];
        for user in numbers {
            for client in numbers {
                let key = super::ThrottleKey::new(user, client);
                assert_eq!(key.as_str(), format!("throttle:{user}:{client}"));
            }
        }
    }
}
