//! `Core`: everything one Tessera instance shares between its layers, guards, routes and
//! background tasks. The token lifecycle (`tokens.rs`), verification (`authn.rs`) and sliding
//! expiry (`sliding.rs`) are methods on it, each in the file named for it.

use crate::audit::AuditRecorder;
use crate::cache::TokenCache;
use crate::error::{AuthError, ErrorRenderer, Rejection};
use crate::events::Events;
use crate::usage::UsageBuffer;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tessera_core::bus::InvalidationBus;
use tessera_core::store::Store;
use tessera_core::throttle::RateLimiter;
use tessera_core::{Actor, AuthToken, Clock, Event, EventKind, Settings, TokenCodec, User};

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
    /// The audit log's recorder, when one was configured.
    pub(crate) audit: Option<AuditRecorder>,
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

    /// Hands `event` to the hooks, then to the audit recorder (which only buffers it).
    pub(crate) fn publish(&self, event: Event) {
        self.events.emit(&event);
        if let Some(audit) = &self.audit {
            audit.record(&event);
        }
    }

    /// Forgets a token this process just deleted or changed: the cache entry and what is buffered.
    pub(crate) fn forget(&self, token: &AuthToken) {
        self.cache.remove(&token.digest);
        self.usage.forget(token.id);
    }
}
