//! The audit log's records, and the traits of a place that keeps them.
//!
//! Every [`Event`] becomes one [`AuditRecord`]: when, what, who did it, about which user, client
//! and token, from which address and user agent, and a small JSON detail (the kind's own fields).
//! A record never holds a token or a password: events carry neither, and [`AuditRecord::from_event`]
//! bounds every text it copies. The SQL store keeps them (`audit_events`); tessera-axum's recorder
//! writes them in batches, off the request path.

use crate::event::{Actor, Event};
use crate::model::{TokenId, UserId};
use crate::store::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The most characters kept of a user agent.
pub const USER_AGENT_MAX: usize = 512;
/// The most characters kept of any other text (a username, a client name, an address).
pub const TEXT_MAX: usize = 200;
/// The most records one [`AuditLog::audit_events`] returns, whatever the query's limit.
pub const QUERY_LIMIT_MAX: u32 = 10_000;

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened: one of [`EventKind::NAMES`](crate::EventKind::NAMES).
    pub kind: String,
    /// Who did it.
    pub actor: Actor,
    /// The acting staff member's username, for changes made in the admin UI.
    pub actor_name: Option<String>,
    /// The user it is about, when known.
    pub user_id: Option<UserId>,
    /// Their name (for a failed login: the name tried), kept after the user is deleted.
    pub username: Option<String>,
    /// The client's name, when known.
    pub client: Option<String>,
    /// The token it is about, when there is one.
    pub token_id: Option<TokenId>,
    /// The request's client address, when there was a request.
    pub ip: Option<String>,
    /// The request's user agent, when known.
    pub user_agent: Option<String>,
    /// The kind's own fields (a failed login's reason, how many tokens a logout-all deleted, ...),
    /// a JSON object.
    pub detail: serde_json::Value,
}

impl AuditRecord {
    /// The record of `event`. The kind's fields become the detail (its name and token id have
    /// their own columns); every text is bounded and has no NUL (which PostgreSQL refuses).
    pub fn from_event(event: &Event) -> AuditRecord {
        let mut detail = match serde_json::to_value(&event.kind) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        detail.remove("event");
        detail.remove("token_id");
        for value in detail.values_mut() {
            if let serde_json::Value::String(text) = value {
                *text = bounded(text, TEXT_MAX);
            }
        }
        let text = |t: &Option<String>| t.as_deref().map(|t| bounded(t, TEXT_MAX));
        AuditRecord {
            at: event.at,
            kind: event.kind.name().to_string(),
            actor: event.actor,
            actor_name: text(&event.actor_name),
            user_id: event.user_id,
            username: text(&event.username),
            client: text(&event.client),
            token_id: event.kind.token_id().or(event.token_id),
            ip: text(&event.ip),
            user_agent: event.user_agent.as_deref().map(|ua| bounded(ua, USER_AGENT_MAX)),
            detail: serde_json::Value::Object(detail),
        }
    }
}

/// `text` cut to `max` characters, NULs replaced.
fn bounded(text: &str, max: usize) -> String {
    text.chars().take(max).map(|c| if c == '\0' { char::REPLACEMENT_CHARACTER } else { c }).collect()
}

/// Which records to read: every filter given must match; newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only records about the user of this name.
    pub username: Option<String>,
    /// Only records about the client of this name.
    pub client: Option<String>,
    /// Only records of this kind.
    pub kind: Option<String>,
    /// Only records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only records before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only records by this kind of actor.
    pub actor: Option<Actor>,
    /// Only records by the staff member of this username (changes made in the admin UI).
    pub actor_name: Option<String>,
    /// At most this many (capped at [`QUERY_LIMIT_MAX`]).
    pub limit: u32,
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery {
            username: None,
            client: None,
            kind: None,
            since: None,
            until: None,
            actor: None,
            actor_name: None,
            limit: 100,
        }
    }
}

/// Where audit records are written. Writes come in batches from one background task per
/// process; several processes may write to one sink at once.
#[async_trait]
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Appends `records`, all or none.
    async fn write_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError>;
    /// Deletes the records from before `before`; returns how many.
    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// An audit sink that can be read back (the CLI's `tessera audit`, the admin UI).
#[async_trait]
pub trait AuditLog: AuditSink {
    /// The records matching `query`, newest first (records of one instance with the same time in
    /// the order they were written, the later first).
    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Revoker};

    #[test]
    fn a_record_has_the_kinds_fields_as_detail_and_bounded_text() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let mut event = Event::new(EventKind::TokenRevoked { token_id: TokenId(9), by: Revoker::Cli }, at);
        event.username = Some("alice".into());
        event.user_agent = Some(format!("agent\0{}", "x".repeat(1000)));
        let record = AuditRecord::from_event(&event);
        assert_eq!(record.kind, "token_revoked");
        assert_eq!(record.actor, Actor::Cli);
        assert_eq!(record.token_id, Some(TokenId(9)));
        assert_eq!(record.detail, serde_json::json!({"by": "cli"}));
        let ua = record.user_agent.unwrap_or_default();
        assert_eq!(ua.chars().count(), USER_AGENT_MAX);
        assert!(!ua.contains('\0'));

        let mut logout = Event::new(EventKind::UserLoggedOut, at);
        logout.token_id = Some(TokenId(4));
        let record = AuditRecord::from_event(&logout);
        assert_eq!((record.token_id, record.actor), (Some(TokenId(4)), Actor::User));
        assert_eq!(record.detail, serde_json::json!({}));
    }
}
