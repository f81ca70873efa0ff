//! Staff sessions: the admin UI's logins. A staff session is an ordinary Tessera token of one
//! reserved client, [`STAFF_CLIENT`], so it is stored only as a digest, survives restarts, works on
//! every instance, is listed with the user's tokens and is revoked like any token (every instance
//! refuses it within a second).
//!
//! What keeps such a token off the API: authentication refuses it there as an invalid token, before
//! anything about it is checked or changed (`TokenUse` in `authn.rs`); login refuses to issue one
//! (the client is "unknown" to it); and no admin path creates, renames into or edits the reserved
//! client (`Tessera::create_client` / `update_client` answer a conflict). Conversely the admin UI
//! accepts only tokens of that client, and only while their user is active and staff.
//!
//! Idle and absolute timeouts are the client's own settings: the token lives `idle` (sliding: every
//! admin request extends it) and at most `absolute` from the login (`max_lifetime`).

use crate::error::AuthError;
use crate::principal::Principal;
use crate::routes::{Attempt, throttle_source, verify_credentials};
use crate::state::Core;
use crate::tessera::Tessera;
use crate::tokens::{PairTokenError, Revocation, TokenRequest};
use chrono::TimeDelta;
use std::net::IpAddr;
use std::sync::Arc;
use tessera_core::net::IpNet;
use tessera_core::store::{ClientUpdate, StoreError};
use tessera_core::{Client, ClientName, Devices, EventKind, NewClient, OnDeviceLimit, Revoker, TokenSecret, Ttl, User};

/// The reserved client whose tokens are staff sessions of the admin UI.
pub const STAFF_CLIENT: &str = "tessera-admin";

/// How many admin sessions (browsers) one staff user holds at once; a further login ends the
/// least recently used.
const MAX_SESSIONS_PER_USER: u32 = 10;

/// Whether `name` is the reserved staff-session client.
pub(crate) fn is_staff_client(name: &ClientName) -> bool {
    name.as_str() == STAFF_CLIENT
}

/// How long staff sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaffSessionPolicy {
    /// A session unused this long ends.
    pub idle: TimeDelta,
    /// A session ends this long after its login, however busy.
    pub absolute: TimeDelta,
}

impl Default for StaffSessionPolicy {
    /// 30 minutes idle, 12 hours absolute.
    fn default() -> Self {
        StaffSessionPolicy { idle: TimeDelta::minutes(30), absolute: TimeDelta::hours(12) }
    }
}

/// A staff login attempt: the credentials and where they come from.
#[derive(Debug, Clone)]
pub struct StaffLogin<'a> {
    /// The username as typed.
    pub username: &'a str,
    /// The password as typed.
    pub password: String,
    /// The client's address (for the login throttle and the events).
    pub ip: Option<IpAddr>,
    /// The browser's user agent.
    pub user_agent: Option<String>,
}

impl Tessera {
    /// Logs a staff user in to the admin UI: the login throttle, one password verification, then a
    /// fresh session token. Unknown user, wrong password, inactive and non-staff user all answer
    /// [`AuthError::BadCredentials`] (each with a `LoginFailed` event giving the reason).
    pub async fn staff_login(
        &self,
        login: StaffLogin<'_>,
        policy: StaffSessionPolicy,
    ) -> Result<(User, TokenSecret), AuthError> {
        let core = &self.core;
        let now = core.now();
        let source = login.ip.map(IpNet::subscriber);
        throttle_source(core, source, &axum::http::Extensions::new(), now).await?;
        let ip = login.ip.map(|ip| ip.to_string());
        let attempt = Attempt { source, ip: ip.clone(), user_agent: login.user_agent.clone(), now };
        let user = verify_credentials(core, &attempt, login.username, login.password).await?;
        if !user.is_staff {
            core.publish(tessera_core::Event {
                username: Some(user.username.to_string()),
                ip,
                user_agent: login.user_agent,
                ..tessera_core::Event::new(EventKind::LoginFailed { reason: "not staff (admin UI)".into() }, now)
            });
            return Err(AuthError::BadCredentials);
        }
        let client = staff_client(core, policy).await.map_err(AuthError::from_store)?;
        let request = TokenRequest::new(&user, &client)
            .device(login.user_agent, ip.clone())
            .by(Revoker::User)
            .source("admin login");
        let pair = core.token_for_pair(request).await.map_err(|e| match e {
            PairTokenError::Store(e) => AuthError::from_store(e),
            PairTokenError::Exists(_) | PairTokenError::DeviceLimit { .. } => AuthError::Unavailable,
        })?;
        let mut event = core.event(EventKind::UserLoggedIn, Some((&user, STAFF_CLIENT)), ip, tessera_core::Actor::User);
        event.token_id = Some(pair.token.id);
        core.publish(event);
        Ok((user, pair.secret))
    }

    /// The staff session a token (from the admin UI's cookie) stands for: a token of the reserved
    /// client, not expired, its user active and staff. Read from the store every time, never from
    /// the cache, so that a revoked session or a demoted user is refused at once everywhere; each
    /// use slides its expiry (the idle timeout).
    pub async fn staff_session(&self, token: &str, ip: Option<IpAddr>) -> Result<Arc<Principal>, AuthError> {
        let principal = self
            .core
            .authenticate_token(token, crate::authn::TokenUse::StaffSession, false, ip, &mut Default::default())
            .await?;
        if !principal.user.is_staff {
            return Err(AuthError::InvalidToken);
        }
        Ok(principal)
    }

    /// Ends a staff session (a `UserLoggedOut` event).
    pub async fn staff_logout(&self, session: &Principal) -> Result<(), StoreError> {
        let who = Some((&session.user, STAFF_CLIENT));
        self.core.revoke(&session.token, Revocation::Logout, who, None).await?;
        Ok(())
    }
}

/// The reserved client, created on first use and kept to `policy` (a changed configuration applies
/// to sessions from their next login or use).
async fn staff_client(core: &Core, policy: StaffSessionPolicy) -> Result<Client, StoreError> {
    let name: ClientName = STAFF_CLIENT.parse().map_err(|e| StoreError::Backend(format!("{e}")))?;
    let wanted = NewClient {
        name: name.clone(),
        token_ttl: Ttl::After(policy.idle),
        throttle_rate: None,
        sliding_expiry: true,
        max_lifetime: Some(Ttl::After(policy.absolute)),
        description: "Staff sessions of the admin UI (reserved).".into(),
        devices: Devices::Many { max_devices: MAX_SESSIONS_PER_USER, on_device_limit: OnDeviceLimit::EvictOldest },
    };
    let client = match core.store.client_by_name(&name).await? {
        Some(client) => client,
        None => match core.store.create_client(wanted.clone()).await {
            Ok(client) => {
                core.publish(core.client_event(EventKind::ClientCreated, &client, Revoker::Admin));
                return Ok(client);
            }
            // Another instance created it first.
            Err(StoreError::Conflict(_)) => core
                .store
                .client_by_name(&name)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("client '{STAFF_CLIENT}'")))?,
            Err(e) => return Err(e),
        },
    };
    let fits = client.token_ttl == wanted.token_ttl
        && client.sliding_expiry
        && client.max_lifetime == wanted.max_lifetime
        && client.devices == wanted.devices;
    if fits {
        return Ok(client);
    }
    let update = ClientUpdate {
        token_ttl: Some(wanted.token_ttl),
        sliding_expiry: Some(true),
        max_lifetime: Some(wanted.max_lifetime),
        devices: Some(wanted.devices),
        ..ClientUpdate::default()
    };
    core.store.update_client(client.id, update).await
}

/// Who an admin request acts for: the staff member's name and the address the request came from.
struct ActingStaff {
    username: Arc<str>,
    ip: Option<std::net::IpAddr>,
}

tokio::task_local! {
    /// The staff member the current admin request acts for (see [`acting_as_staff`]).
    static ACTING_STAFF: ActingStaff;
}

/// Runs `work` on behalf of the staff member `username`, whose request came from `ip` (the client
/// address as [`Tessera::client_ip`](crate::Tessera::client_ip) finds it): every event it publishes
/// with the actor [`Actor::Admin`](tessera_core::Actor::Admin) names them as `actor_name` and, when
/// the event has no address of its own, carries `ip` (audit log, hooks), without each admin path
/// passing them along. The admin UI wraps each signed-in request in it.
pub async fn acting_as_staff<F: std::future::Future>(
    username: &str,
    ip: Option<std::net::IpAddr>,
    work: F,
) -> F::Output {
    ACTING_STAFF.scope(ActingStaff { username: Arc::from(username), ip }, work).await
}

/// The staff member the current task acts for, and their request's address, if any.
pub(crate) fn acting_staff() -> Option<(String, Option<std::net::IpAddr>)> {
    ACTING_STAFF.try_with(|acting| (acting.username.to_string(), acting.ip)).ok()
}
