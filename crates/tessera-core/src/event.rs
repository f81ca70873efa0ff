//! Events: durin's signals and Tessera's additions. The library hands them to hooks; the server
//! logs each as a line (`auth event`).

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
        };
        let json = serde_json::to_value(&event).expect("json");
        assert_eq!(json["event"], "token_revoked");
        assert_eq!(json["token_id"], 7);
        assert_eq!(json["by"], "cli");
        assert_eq!(json["username"], "alice");
    }
}
