//! Usage analytics: what each client's tokens did, per UTC day — authentications by outcome, logins
//! by outcome, tokens issued and revoked, distinct active users — and per token a request count.
//!
//! tessera-axum counts on the request path (atomic counters, no lock shared by all requests) and
//! hands a [`UsageBatch`] to a [`UsageSink`] once a minute; the SQL store adds each batch to what
//! is stored (`INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n`), so instances writing to one
//! database add up exactly. Distinct active users add up without double counting because the sink
//! keeps one row per (day, client, user) and a second instance's row for the same user is a no-op.
//!
//! Label values are client names (admin-created) or [`UNKNOWN_CLIENT`]: an invalid token names no
//! client, and neither does a login that failed before its client was read.

use crate::model::{TokenId, UserId};
use crate::store::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// The client name counts go under when no client can be named (an invalid token, a failed login).
pub const UNKNOWN_CLIENT: &str = "unknown";

/// The most days one [`UsageQuery`] may span.
pub const QUERY_DAYS_MAX: i64 = 3660;

/// How one authenticated request ended: what the token was worth, then what the guard said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthOutcome {
    /// Authenticated (and, behind a guard, let through).
    Ok,
    /// Malformed, unknown or revoked: no client can be named.
    InvalidToken,
    /// The token had expired.
    Expired,
    /// The token's user is deactivated.
    InactiveUser,
    /// A guard does not allow the token's client on the route.
    ForbiddenClient,
    /// The per-(user, client) throttle refused it.
    Throttled,
}

impl AuthOutcome {
    /// Every outcome, in [`AuthOutcome::index`] order.
    pub const ALL: [AuthOutcome; 6] = [
        AuthOutcome::Ok,
        AuthOutcome::InvalidToken,
        AuthOutcome::Expired,
        AuthOutcome::InactiveUser,
        AuthOutcome::ForbiddenClient,
        AuthOutcome::Throttled,
    ];

    /// Its name, as metrics label it and `tessera stats --json` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthOutcome::Ok => "ok",
            AuthOutcome::InvalidToken => "invalid_token",
            AuthOutcome::Expired => "expired",
            AuthOutcome::InactiveUser => "inactive_user",
            AuthOutcome::ForbiddenClient => "forbidden_client",
            AuthOutcome::Throttled => "throttled",
        }
    }

    /// Its position in [`AuthOutcome::ALL`] (an index into a counter array).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How one login attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginOutcome {
    /// A token was handed out.
    Ok,
    /// Wrong credentials, an unknown or inactive user (one answer for all: no enumeration).
    Failed,
    /// The login throttle refused it.
    Throttled,
}

impl LoginOutcome {
    /// Every outcome, in [`LoginOutcome::index`] order.
    pub const ALL: [LoginOutcome; 3] = [LoginOutcome::Ok, LoginOutcome::Failed, LoginOutcome::Throttled];

    /// Its name, as metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Ok => "ok",
            LoginOutcome::Failed => "failed",
            LoginOutcome::Throttled => "throttled",
        }
    }

    /// Its position in [`LoginOutcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Authenticated requests by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    /// Authenticated and let through.
    pub ok: u64,
    /// Invalid tokens (counted under [`UNKNOWN_CLIENT`]).
    pub invalid_token: u64,
    /// Expired tokens.
    pub expired: u64,
    /// Tokens of deactivated users.
    pub inactive_user: u64,
    /// Refused by a guard's client rule.
    pub forbidden_client: u64,
    /// Refused by the throttle.
    pub throttled: u64,
}

impl RequestCounts {
    /// The counts of `counts`, in [`AuthOutcome::ALL`] order.
    pub fn from_array(counts: [u64; 6]) -> Self {
        let [ok, invalid_token, expired, inactive_user, forbidden_client, throttled] = counts;
        RequestCounts { ok, invalid_token, expired, inactive_user, forbidden_client, throttled }
    }

    /// The counts in [`AuthOutcome::ALL`] order.
    pub fn to_array(self) -> [u64; 6] {
        [self.ok, self.invalid_token, self.expired, self.inactive_user, self.forbidden_client, self.throttled]
    }

    /// Every request, whatever its outcome.
    pub fn total(self) -> u64 {
        self.to_array().iter().sum()
    }
}

/// Login attempts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LoginCounts {
    /// Succeeded.
    pub ok: u64,
    /// Failed (wrong credentials, unknown or inactive user).
    pub failed: u64,
    /// Refused by the login throttle.
    pub throttled: u64,
}

impl LoginCounts {
    /// The counts of `counts`, in [`LoginOutcome::ALL`] order.
    pub fn from_array(counts: [u64; 3]) -> Self {
        let [ok, failed, throttled] = counts;
        LoginCounts { ok, failed, throttled }
    }

    /// The counts in [`LoginOutcome::ALL`] order.
    pub fn to_array(self) -> [u64; 3] {
        [self.ok, self.failed, self.throttled]
    }
}

/// What one client's tokens did over some time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UsageCounts {
    /// Authenticated requests by outcome.
    pub requests: RequestCounts,
    /// Login attempts by outcome.
    pub logins: LoginCounts,
    /// Tokens issued (login, the API-access view, the CLI, an admin).
    pub tokens_issued: u64,
    /// Tokens revoked (by their user, an admin, the CLI, the device limit).
    pub tokens_revoked: u64,
}

impl UsageCounts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &UsageCounts) {
        let (mut mine, theirs) = (self.requests.to_array(), other.requests.to_array());
        mine.iter_mut().zip(theirs).for_each(|(m, t)| *m = m.saturating_add(t));
        self.requests = RequestCounts::from_array(mine);
        let (mut mine, theirs) = (self.logins.to_array(), other.logins.to_array());
        mine.iter_mut().zip(theirs).for_each(|(m, t)| *m = m.saturating_add(t));
        self.logins = LoginCounts::from_array(mine);
        self.tokens_issued = self.tokens_issued.saturating_add(other.tokens_issued);
        self.tokens_revoked = self.tokens_revoked.saturating_add(other.tokens_revoked);
    }

    /// Whether nothing was counted.
    pub fn is_zero(&self) -> bool {
        *self == UsageCounts::default()
    }
}

/// One client's usage on one UTC day, as [`UsageLog::usage_by_day`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyUsage {
    /// The day (UTC).
    pub day: NaiveDate,
    /// The client's name, or [`UNKNOWN_CLIENT`].
    pub client: String,
    /// What was counted.
    #[serde(flatten)]
    pub counts: UsageCounts,
    /// How many distinct users authenticated with this client's tokens that day.
    pub active_users: u64,
}

/// One client's usage over a query's whole range, as [`UsageLog::usage_totals`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientUsage {
    /// The client's name, or [`UNKNOWN_CLIENT`].
    pub client: String,
    /// What was counted.
    #[serde(flatten)]
    pub counts: UsageCounts,
    /// How many distinct users authenticated with this client's tokens in the range (a user
    /// active on several days counts once).
    pub active_users: u64,
}

/// What one instance counted since its last write: added to what the sink holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageBatch {
    /// Counts per (day, client).
    pub counts: Vec<(NaiveDate, String, UsageCounts)>,
    /// Users seen authenticating, per (day, client); the sink keeps each once.
    pub active_users: Vec<(NaiveDate, String, UserId)>,
    /// Requests per token, with the latest use among them.
    pub token_requests: Vec<(TokenId, u64, DateTime<Utc>)>,
}

impl UsageBatch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.active_users.is_empty() && self.token_requests.is_empty()
    }
}

/// Which days and clients to read: `from` to `to`, both included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// Only this client (a name, or [`UNKNOWN_CLIENT`]).
    pub client: Option<String>,
    /// The first day.
    pub from: NaiveDate,
    /// The last day.
    pub to: NaiveDate,
}

/// Where usage counts are written. Writes come from one background task per process; several
/// processes may write to one sink at once, and their counts add up.
#[async_trait]
pub trait UsageSink: Send + Sync + std::fmt::Debug {
    /// Adds `batch` to what is stored, all or none.
    async fn write_usage(&self, batch: &UsageBatch) -> Result<(), StoreError>;
    /// Deletes the counts of days before `before` (and the request counts of tokens last used
    /// before it); returns how many rows.
    async fn prune_usage(&self, before: NaiveDate) -> Result<u64, StoreError>;
}

/// A usage sink that can be read back (`tessera stats`, the admin UI).
#[async_trait]
pub trait UsageLog: UsageSink {
    /// Per client per day in the query's range: days ascending, then clients by name. Days and
    /// clients with nothing counted are absent.
    async fn usage_by_day(&self, query: &UsageQuery) -> Result<Vec<DailyUsage>, StoreError>;
    /// Per client over the query's whole range, clients by name.
    async fn usage_totals(&self, query: &UsageQuery) -> Result<Vec<ClientUsage>, StoreError>;
    /// How many requests each of these tokens has made (absent: none counted, or pruned).
    async fn token_requests(&self, tokens: &[TokenId]) -> Result<Vec<(TokenId, u64)>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_and_name_their_outcomes() {
        let mut a = UsageCounts { tokens_issued: 1, ..UsageCounts::default() };
        a.requests.ok = 3;
        let mut b = UsageCounts { tokens_revoked: 2, ..UsageCounts::default() };
        b.requests.ok = 4;
        b.logins.failed = 5;
        a.add(&b);
        assert_eq!((a.requests.ok, a.logins.failed, a.tokens_issued, a.tokens_revoked), (7, 5, 1, 2));
        assert_eq!(a.requests.total(), 7);
        let names: Vec<&str> = AuthOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(names, ["ok", "invalid_token", "expired", "inactive_user", "forbidden_client", "throttled"]);
        assert!(AuthOutcome::ALL.iter().enumerate().all(|(i, o)| o.index() == i));
        assert!(LoginOutcome::ALL.iter().enumerate().all(|(i, o)| o.index() == i));
        let json = serde_json::to_value(a.requests).unwrap_or_default();
        let keys: Vec<&String> = json.as_object().map(|m| m.keys().collect()).unwrap_or_default();
        assert_eq!(keys.len(), 6, "{json}");
        assert!(UsageCounts::default().is_zero() && !a.is_zero());
    }
}
