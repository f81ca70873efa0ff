//! The dashboard's figures, in one place: what the store gives (tokens per client, unused tokens),
//! the usage analytics (authentications and logins per day by outcome, per-client totals with
//! throttled requests and distinct active users) when a [`UsageLog`] is configured, and otherwise
//! the audit log's logins per day.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use std::collections::BTreeMap;
use tessera_axum::{STAFF_CLIENT, Tessera};
use tessera_core::usage::ClientUsage;
use tessera_core::{AuditLog, AuditQuery, StoreError, TokenFilter, UsageLog, UsageQuery};

/// How far back "unused" and the login chart look.
pub(crate) const UNUSED_DAYS: i64 = 30;
/// Days in the login chart.
pub(crate) const CHART_DAYS: i64 = 14;

/// One client's line.
#[derive(Debug)]
pub(crate) struct ClientFigures {
    pub(crate) name: String,
    pub(crate) live: u64,
    pub(crate) expired: u64,
    pub(crate) unused: u64,
    pub(crate) users: u64,
}

/// Everything the dashboard shows.
#[derive(Debug)]
pub(crate) struct Figures {
    pub(crate) clients: Vec<ClientFigures>,
    pub(crate) users: usize,
    pub(crate) staff_sessions: u64,
    /// Logins (successful, failed) per day, oldest first; `None` without an audit log.
    pub(crate) logins: Option<Vec<(NaiveDate, u64, u64)>>,
    /// The usage analytics; `None` without a usage log.
    pub(crate) usage: Option<Usage>,
}

/// What the usage analytics say, without the admin's own sessions (the staff client).
#[derive(Debug)]
pub(crate) struct Usage {
    /// Authentications per day, in `AuthOutcome::ALL` order, oldest first, every chart day.
    pub(crate) requests: Vec<(NaiveDate, [u64; 6])>,
    /// Logins per day, in `LoginOutcome::ALL` order, oldest first, every chart day.
    pub(crate) logins: Vec<(NaiveDate, [u64; 3])>,
    /// Per client over the last [`UNUSED_DAYS`] days (incl. `unknown`), clients by name.
    pub(crate) totals: Vec<ClientUsage>,
}

pub(crate) async fn figures(
    tessera: &Tessera,
    audit: Option<&dyn AuditLog>,
    usage: Option<&dyn UsageLog>,
) -> Result<Figures, StoreError> {
    let store = tessera.store();
    let now = Utc::now();
    let cutoff = now - TimeDelta::days(UNUSED_DAYS);
    let users = store.list_users().await?.len();
    let mut clients = Vec::new();
    let mut staff_sessions = 0;
    for client in store.list_clients().await? {
        let tokens = store.list_tokens(TokenFilter { client: Some(client.id), ..TokenFilter::default() }).await?;
        if client.name.as_str() == STAFF_CLIENT {
            staff_sessions = tokens.iter().filter(|t| !t.has_expired(now)).count() as u64;
            continue;
        }
        let live: Vec<_> = tokens.iter().filter(|t| !t.has_expired(now)).collect();
        let mut active_users: Vec<_> =
            live.iter().filter(|t| t.last_used.is_some_and(|u| u > cutoff)).map(|t| t.user_id).collect();
        active_users.sort();
        active_users.dedup();
        clients.push(ClientFigures {
            name: client.name.to_string(),
            live: live.len() as u64,
            expired: (tokens.len() - live.len()) as u64,
            unused: live.iter().filter(|t| t.last_used.unwrap_or(t.created) <= cutoff).count() as u64,
            users: active_users.len() as u64,
        });
    }
    let usage = match usage {
        Some(log) => Some(usage_figures(log, now).await?),
        None => None,
    };
    // The audit log's logins only when the usage analytics do not count them.
    let logins = match audit {
        Some(log) if usage.is_none() => Some(logins_per_day(log, now).await?),
        _ => None,
    };
    Ok(Figures { clients, users, staff_sessions, logins, usage })
}

async fn usage_figures(log: &dyn UsageLog, now: DateTime<Utc>) -> Result<Usage, StoreError> {
    let today = now.date_naive();
    let first = today - TimeDelta::days(CHART_DAYS - 1);
    let mut requests: BTreeMap<NaiveDate, [u64; 6]> =
        (0..CHART_DAYS).map(|d| (first + TimeDelta::days(d), [0; 6])).collect();
    let mut logins: BTreeMap<NaiveDate, [u64; 3]> =
        (0..CHART_DAYS).map(|d| (first + TimeDelta::days(d), [0; 3])).collect();
    let chart = UsageQuery { client: None, from: first, to: today };
    for row in log.usage_by_day(&chart).await?.into_iter().filter(|r| r.client != STAFF_CLIENT) {
        if let Some(day) = requests.get_mut(&row.day) {
            day.iter_mut().zip(row.counts.requests.to_array()).for_each(|(d, n)| *d = d.saturating_add(n));
        }
        if let Some(day) = logins.get_mut(&row.day) {
            day.iter_mut().zip(row.counts.logins.to_array()).for_each(|(d, n)| *d = d.saturating_add(n));
        }
    }
    let month = UsageQuery { client: None, from: today - TimeDelta::days(UNUSED_DAYS - 1), to: today };
    let totals = log.usage_totals(&month).await?.into_iter().filter(|t| t.client != STAFF_CLIENT).collect();
    Ok(Usage { requests: requests.into_iter().collect(), logins: logins.into_iter().collect(), totals })
}

async fn logins_per_day(log: &dyn AuditLog, now: DateTime<Utc>) -> Result<Vec<(NaiveDate, u64, u64)>, StoreError> {
    let first = now.date_naive() - TimeDelta::days(CHART_DAYS - 1);
    let since = first.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let mut days: BTreeMap<NaiveDate, (u64, u64)> =
        (0..CHART_DAYS).map(|d| (first + TimeDelta::days(d), (0, 0))).collect();
    for (kind, ok) in [("user_logged_in", true), ("login_failed", false)] {
        let query = AuditQuery {
            kind: Some(kind.into()),
            since,
            limit: tessera_core::audit::QUERY_LIMIT_MAX,
            ..AuditQuery::default()
        };
        for record in log.audit_events(&query).await? {
            if let Some(day) = days.get_mut(&record.at.date_naive()) {
                if ok { day.0 += 1 } else { day.1 += 1 }
            }
        }
    }
    Ok(days.into_iter().map(|(d, (ok, failed))| (d, ok, failed)).collect())
}
