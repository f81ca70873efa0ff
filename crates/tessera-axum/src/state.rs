//! `Core`: everything one Tessera instance shares between its layers, guards, routes and
//! background tasks. The token lifecycle (`tokens.rs`), verification (`authn.rs`) and sliding
//! expiry (`sliding.rs`) are methods on it, each in the file named for it.

use crate::cache::TokenCache;
use crate::error::{AuthError, ErrorRenderer, Rejection};
use crate::events::Events;
use crate::usage::UsageBuffer;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tessera_core::bus::InvalidationBus;
use tessera_core::store::Store;
use tessera_core::throttle::RateLimiter;
use tessera_core::{AuthToken, Clock, Event, EventKind, Settings, TokenCodec, User};

pub(crate) struct Core {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) codec: TokenCodec,
    pub(crate) settings: Settings,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cache: TokenCache,
    pub(crate) bus: Option<Arc<dyn InvalidationBus>>,
    pub(crate) cached_auth_routes: bool,
    pub(crate) usage: UsageBuffer,
    pub(crate) events: Events,
    pub(crate) limiter: Arc<dyn RateLimiter>,
    /// The login throttle's limiter: `limiter` itself when one was configured, else its own.
    pub(crate) login_limiter: Arc<dyn RateLimiter>,
    pub(crate) password_checks: crate::routes::PasswordChecks,
    pub(crate) renderer: Arc<dyn ErrorRenderer>,
    pub(crate) www_authenticate: Arc<str>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tessera").field("store", &self.store).field("codec", &self.codec).finish_non_exhaustive()
    }
}

/// Who an event is about: a user on a client.
pub(crate) type Who<'a> = Option<(&'a User, &'a str)>;

impl Core {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// `error`, to be rendered by the configured renderer.
    pub(crate) fn reject(&self, error: AuthError) -> Rejection {
        Rejection::new(error, self.renderer.clone(), self.www_authenticate.clone())
    }

    pub(crate) fn emit(&self, kind: EventKind, who: Who<'_>, ip: Option<String>) {
        self.events.emit(Event {
            kind,
            user_id: who.map(|(u, _)| u.id),
            username: who.map(|(u, _)| u.username.to_string()),
            client: who.map(|(_, c)| c.to_string()),
            ip,
            at: self.now(),
        });
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
        use tessera_core::throttle::Decision;
        let Some(rate) = principal.client.throttle_rate.or(self.settings.default_throttle_rate) else {
            if let Some(warned) = warn_once
                && !warned.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(
                    client = %principal.client.name,
                    "a throttled guard has no rate to apply: client '{}' has no throttle rate and \
                     `default_throttle_rate` is not set, so its requests are not throttled",
                    principal.client.name
                );
            }
            return Ok(());
        };
        let key = format!("throttle:{}:{}", principal.user.id, principal.client.id);
        match self.limiter.acquire(&key, rate, self.now()).await {
            Ok(Decision::Allowed) => Ok(()),
            Ok(Decision::Throttled { wait_secs }) => Err(AuthError::Throttled { wait_secs }),
            Err(e) => {
                tracing::warn!(error = %e, "throttle unavailable");
                Err(AuthError::Unavailable)
            }
        }
    }

    /// Forgets a token this process just deleted or changed: the cache entry and what is buffered.
    pub(crate) fn forget(&self, token: &AuthToken) {
        self.cache.remove(&token.digest);
        self.usage.forget(token.id);
    }
}
