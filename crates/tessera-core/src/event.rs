//! Events: durin's signals and Tessera's additions. The library hands them to hooks; the server
//! logs each as a line (`auth event`) and writes each to its audit log ([`crate::audit`]).

use crate::model::{TokenId, UserId};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Who revoked a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Revoker {
    /// The token's owner (sessions API, API-access view).
    User,
    /// An admin in the admin UI.
    Admin,
    /// The admin CLI.
    Cli,
    /// The device limit of a `many` client: the user's least recently used token there made room
    /// for a new login.
    DeviceLimit,
}

/// Who did what an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The user the event is about (login, logout, refresh, the sessions API), or for a failed
    /// login whoever tried.
    #[default]
    User,
    /// An admin (the admin UI, or a library user's admin tool).
    Admin,
    /// The admin CLI.
    Cli,
    /// Tessera itself: an expired token found and deleted.
    System,
}

impl Actor {
    /// Every actor's name, as stored and as `--json` prints it.
    pub const NAMES: &'static [&'static str] = &["user", "admin", "cli", "system"];

    /// The actor's name: `user`, `admin`, `cli`, `system`.
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::User => "user",
            Actor::Admin => "admin",
            Actor::Cli => "cli",
            Actor::System => "system",
        }
    }

    /// The actor named `name` (see [`Actor::NAMES`]).
    pub fn from_name(name: &str) -> Option<Actor> {
        [Actor::User, Actor::Admin, Actor::Cli, Actor::System].into_iter().find(|a| a.as_str() == name)
    }

    /// Who did what `kind` reports when nobody said: its revoker for a revocation, Tessera itself
    /// for an expiry, else the user.
    pub fn default_for(kind: &EventKind) -> Actor {
        match kind {
            EventKind::TokenRevoked { by, .. } => (*by).into(),
            EventKind::TokenExpired { .. } => Actor::System,
            _ => Actor::User,
        }
    }
}

impl Revoker {
    /// The revoker's name, as serialized: `user`, `admin`, `cli`, `device_limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Revoker::User => "user",
            Revoker::Admin => "admin",
            Revoker::Cli => "cli",
            Revoker::DeviceLimit => "device_limit",
        }
    }
}

impl From<Revoker> for Actor {
    fn from(by: Revoker) -> Actor {
        match by {
            Revoker::User => Actor::User,
            Revoker::Admin => Actor::Admin,
            Revoker::Cli => Actor::Cli,
            // A device limit is Tessera's own rule, applied on a login.
            Revoker::DeviceLimit => Actor::System,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A user logged in (durin: `user_logged_in`).
    UserLoggedIn,
    /// A user logged out one token (durin: `user_logged_out`).
    UserLoggedOut,
    /// A user logged out every token.
    LogoutAll {
        /// How many tokens were deleted.
        tokens: u64,
    },
    /// A token was issued.
    TokenCreated {
        /// The new token's id.
        token_id: TokenId,
    },
    /// A token's expiry was extended (durin: `token_renewed`).
    TokenRenewed {
        /// The token.
        token_id: TokenId,
        /// The new expiry.
        new_expiry: Option<DateTime<Utc>>,
    },
    /// An expired token was presented and deleted (durin: `token_expired`).
    TokenExpired {
        /// The token.
        token_id: TokenId,
        /// Where it was found expired ("authentication", "login", ...).
        source: String,
    },
    /// A token was revoked by its owner, an admin or the CLI.
    TokenRevoked {
        /// The token.
        token_id: TokenId,
        /// By whom.
        by: Revoker,
    },
    /// A login attempt failed.
    LoginFailed {
        /// Why, for the operator (never shown to the client).
        reason: String,
    },
    /// A user was created.
    UserCreated {
        /// Whether as staff.
        staff: bool,
    },
    /// A deactivated user was let in again.
    UserActivated,
    /// A user was stopped from logging in; their tokens stop working.
    UserDeactivated,
    /// A user was deleted, with their tokens.
    UserDeleted {
        /// How many tokens went with them.
        tokens: u64,
    },
    /// A user's password was changed.
    PasswordChanged {
        /// How many of their tokens were revoked with it (`revoke_tokens_on_password_change`).
        tokens_revoked: u64,
    },
    /// An API client was created.
    ClientCreated,
    /// An API client was changed.
    ClientChanged {
        /// The names of the fields that changed (`name`, `token_ttl`, `throttle_rate`,
        /// `sliding_expiry`, `max_lifetime`, `description`).
        fields: Vec<String>,
        /// The client's name before a rename (the event's `client` is the new one).
        renamed_from: Option<String>,
    },
    /// An API client was deleted, with its tokens.
    ClientDeleted {
        /// How many tokens went with it.
        tokens: u64,
    },
    /// A new current server key was added to the key ring (`tessera key rotate`): new tokens are
    /// made with it; the others only verify.
    KeyRotated {
        /// The new current key's id (never the key).
        key: String,
        /// The ids of the keys that now only verify.
        verify_only: Vec<String>,
    },
    /// A server key was removed from the key ring (`tessera key retire`).
    KeyRetired {
        /// The retired key's id.
        key: String,
        /// How many tokens made with it were revoked first (`--revoke`).
        tokens_revoked: u64,
    },
    /// Users, clients and tokens were imported in bulk (`tessera import durin`): one event for the
    /// whole import, which is one transaction, rather than one per row.
    Imported {
        /// What was imported from (`durin`, with the database URL's secrets masked).
        source: String,
        /// Users created.
        users_created: u64,
        /// Users overwritten (`--update`).
        users_updated: u64,
        /// Clients created.
        clients_created: u64,
        /// Clients overwritten (`--update`).
        clients_updated: u64,
        /// Legacy tokens imported.
        tokens: u64,
    },
}

impl EventKind {
    /// Every kind's name, as the hook's JSON (`event`), the audit log and `tessera audit --kind`
    /// spell it.
    pub const NAMES: &'static [&'static str] = &[
        "user_logged_in",
        "user_logged_out",
        "logout_all",
        "token_created",
        "token_renewed",
        "token_expired",
        "token_revoked",
        "login_failed",
        "user_created",
        "user_activated",
        "user_deactivated",
        "user_deleted",
        "password_changed",
        "client_created",
        "client_changed",
        "client_deleted",
        "key_rotated",
        "key_retired",
        "imported",
    ];

    /// This kind's name (one of [`EventKind::NAMES`]).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::UserLoggedIn => "user_logged_in",
            EventKind::UserLoggedOut => "user_logged_out",
            EventKind::LogoutAll { .. } => "logout_all",
            EventKind::TokenCreated { .. } => "token_created",
            EventKind::TokenRenewed { .. } => "token_renewed",
            EventKind::TokenExpired { .. } => "token_expired",
            EventKind::TokenRevoked { .. } => "token_revoked",
            EventKind::LoginFailed { .. } => "login_failed",
            EventKind::UserCreated { .. } => "user_created",
            EventKind::UserActivated => "user_activated",
            EventKind::UserDeactivated => "user_deactivated",
            EventKind::UserDeleted { .. } => "user_deleted",
            EventKind::PasswordChanged { .. } => "password_changed",
            EventKind::ClientCreated => "client_created",
            EventKind::ClientChanged { .. } => "client_changed",
            EventKind::ClientDeleted { .. } => "client_deleted",
            EventKind::KeyRotated { .. } => "key_rotated",
            EventKind::KeyRetired { .. } => "key_retired",
            EventKind::Imported { .. } => "imported",
        }
    }

    /// The token this kind names, if it names one.
    pub fn token_id(&self) -> Option<TokenId> {
        match self {
            EventKind::TokenCreated { token_id }
            | EventKind::TokenRenewed { token_id, .. }
            | EventKind::TokenExpired { token_id, .. }
            | EventKind::TokenRevoked { token_id, .. } => Some(*token_id),
            _ => None,
        }
    }
}

/// An event with its context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// The user, when known.
    pub user_id: Option<UserId>,
    /// The username, when known (for a failed login: the name that was tried).
    pub username: Option<String>,
    /// The client's name, when known.
    pub client: Option<String>,
    /// The request's client IP, when there was a request.
    pub ip: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// Who did it. Not in the hook's JSON, whose shape is durin's signals' (a revocation names its
    /// revoker there as `by`).
    #[serde(skip)]
    pub actor: Actor,
    /// The username of the staff member who acted, when `actor` is [`Actor::Admin`] and the change
    /// came through the admin UI (tessera-axum fills it in from the request's staff session).
    #[serde(skip)]
    pub actor_name: Option<String>,
    /// The request's user agent, where known (a login; the token's own for a logout). Not in the
    /// hook's JSON.
    #[serde(skip)]
    pub user_agent: Option<String>,
    /// The token the request was made with, for kinds that name none themselves (a logout). Not
    /// in the hook's JSON.
    #[serde(skip)]
    pub token_id: Option<TokenId>,
}

impl Event {
    /// An event about `kind` at `at`, with no one named yet and its default actor.
    pub fn new(kind: EventKind, at: DateTime<Utc>) -> Event {
        let actor = Actor::default_for(&kind);
        Event {
            kind,
            user_id: None,
            username: None,
            client: None,
            ip: None,
            at,
            actor,
            actor_name: None,
            user_agent: None,
            token_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_flat_with_their_kind() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let event = Event {
            kind: EventKind::TokenRevoked { token_id: TokenId(7), by: Revoker::Cli },
            user_id: Some(UserId(1)),
            username: Some("alice".into()),
            client: Some("web".into()),
            ip: None,
            at,
            actor: Actor::Cli,
            actor_name: None,
            user_agent: Some("curl/8".into()),
            token_id: None,
        };
        let json = serde_json::to_value(&event).expect("json");
        // The hook's shape is durin's signals': who, where, when, and the kind's own fields.
        let keys: Vec<&str> = json.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        assert_eq!(keys.len(), 8, "{keys:?}");
        assert_eq!(json["event"], "token_revoked");
        assert_eq!(json["token_id"], 7);
        assert_eq!(json["by"], "cli");
        assert_eq!(json["username"], "alice");
    }

    #[test]
    fn every_kind_is_named_as_it_serializes() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let kinds = [
            EventKind::UserLoggedIn,
            EventKind::UserLoggedOut,
            EventKind::LogoutAll { tokens: 1 },
            EventKind::TokenCreated { token_id: TokenId(1) },
            EventKind::TokenRenewed { token_id: TokenId(1), new_expiry: None },
            EventKind::TokenExpired { token_id: TokenId(1), source: "login".into() },
            EventKind::TokenRevoked { token_id: TokenId(1), by: Revoker::User },
            EventKind::LoginFailed { reason: "unknown user".into() },
            EventKind::UserCreated { staff: false },
            EventKind::UserActivated,
            EventKind::UserDeactivated,
            EventKind::UserDeleted { tokens: 0 },
            EventKind::PasswordChanged { tokens_revoked: 0 },
            EventKind::ClientCreated,
            EventKind::ClientChanged { fields: vec!["name".into()], renamed_from: Some("web".into()) },
            EventKind::ClientDeleted { tokens: 0 },
            EventKind::KeyRotated { key: "1".into(), verify_only: vec!["0".into()] },
            EventKind::KeyRetired { key: "0".into(), tokens_revoked: 2 },
            EventKind::Imported {
                source: "durin sqlite:///db.sqlite3".into(),
                users_created: 1,
                users_updated: 0,
                clients_created: 1,
                clients_updated: 0,
                tokens: 1,
            },
        ];
        assert_eq!(kinds.len(), EventKind::NAMES.len());
        for (kind, name) in kinds.into_iter().zip(EventKind::NAMES) {
            assert_eq!(kind.name(), *name);
            let json = serde_json::to_value(Event::new(kind, at)).expect("json");
            assert_eq!(json["event"], *name);
        }
        for name in Actor::NAMES {
            assert_eq!(Actor::from_name(name).map(Actor::as_str), Some(*name));
        }
    }
}
