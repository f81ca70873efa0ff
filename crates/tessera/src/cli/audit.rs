//! `tessera audit`: the audit log, newest first, filtered.

use super::output;
use crate::app::App;
use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use tessera_core::audit::QUERY_LIMIT_MAX;
use tessera_core::{AuditLog, AuditQuery, ClientName, EventKind, Username};

#[derive(Debug, Args)]
pub struct AuditCommand {
    /// Only events about this user (also a deleted one, or the name a failed login tried)
    #[arg(long, value_name = "USERNAME")]
    user: Option<String>,
    /// Only events about this client
    #[arg(long, value_name = "NAME")]
    client: Option<String>,
    /// Only events of this kind (login_failed, token_revoked, ...; a wrong one lists them all)
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
    /// Only events at or after this: a duration ago (7d, 12h, "1d 2h") or a date / time in UTC
    /// (2026-12-01, 2026-12-01T10:00:00Z)
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    since: Option<String>,
    /// Only events before this (same forms as --since; a date means its midnight, UTC)
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    until: Option<String>,
    /// At most this many events, the newest [max: 10000]
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=i64::from(QUERY_LIMIT_MAX)))]
    limit: u32,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

impl AuditCommand {
    pub async fn run(self, app: &App) -> Result<()> {
        // Every filter is checked before the database is read.
        let now = app.clock.now();
        let query = AuditQuery {
            username: self.user.map(|u| u.parse::<Username>().map(|n| n.to_string()).unwrap_or(u)),
            client: self.client.map(|c| c.parse::<ClientName>().map(|n| n.to_string()).unwrap_or(c)),
            kind: self.kind.map(|k| kind(&k)).transpose()?,
            since: self.since.map(|s| when("--since", &s, now)).transpose()?,
            until: self.until.map(|u| when("--until", &u, now)).transpose()?,
            actor: None,
            actor_name: None,
            limit: self.limit,
        };
        if let (Some(since), Some(until)) = (query.since, query.until)
            && since >= until
        {
            bail!(
                "--since ({}) is not before --until ({}): no event can match",
                output::time(since),
                output::time(until)
            );
        }
        let records = app.sql.audit_events(&query).await?;
        let header = ["TIME", "KIND", "ACTOR", "USER", "CLIENT", "TOKEN", "IP", "DETAIL"];
        output::listing(&records, self.json, &header, |r| {
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let detail = match r.detail.as_object() {
                Some(map) if map.is_empty() => "-".into(),
                _ => r.detail.to_string(),
            };
            vec![
                output::time(r.at),
                r.kind.clone(),
                match &r.actor_name {
                    Some(name) => format!("{} ({})", r.actor.as_str(), output::clean(name)),
                    None => r.actor.as_str().into(),
                },
                dash(&r.username),
                dash(&r.client),
                r.token_id.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                dash(&r.ip),
                detail,
            ]
        })
    }
}

/// `--kind`: one of the event kinds.
fn kind(given: &str) -> Result<String> {
    match EventKind::NAMES.iter().find(|k| **k == given) {
        Some(k) => Ok(k.to_string()),
        None => bail!("invalid --kind '{}': the kinds are {}", output::clean(given), EventKind::NAMES.join(", ")),
    }
}

/// `--since` / `--until`: a duration before `now`, a date (its midnight, UTC) or an RFC 3339 time.
fn when(flag: &str, given: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let text = given.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let looks_like_a_date =
        text.len() >= 8 && text.chars().take(4).all(|c| c.is_ascii_digit()) && text[4..].starts_with('-');
    if looks_like_a_date {
        bail!(
            "invalid {flag} '{}': not a date; use YYYY-MM-DD or an RFC 3339 time such as 2026-12-01T10:00:00Z",
            output::clean(given)
        );
    }
    match tessera_core::parse_duration(text) {
        Ok(ago) => now
            .checked_sub_signed(ago)
            .ok_or_else(|| anyhow!("invalid {flag} '{}': too long ago", output::clean(given))),
        Err(e) => bail!(
            "invalid {flag} '{}': expected a duration ago (7d, 12h, \"1d 2h\") or a date (2026-12-01, 2026-12-01T10:00:00Z): {e}",
            output::clean(given)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_reads_durations_dates_and_times() {
        let now =
            DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z").map(|d| d.with_timezone(&Utc)).unwrap_or_default();
        let at = |s: &str| when("--since", s, now).map(output::time).map_err(|e| e.to_string());
        assert_eq!(at("7d"), Ok("2026-11-27T12:00:00Z".into()));
        assert_eq!(at("1d 2h"), Ok("2026-12-03T10:00:00Z".into()));
        assert_eq!(at("2026-12-01"), Ok("2026-12-01T00:00:00Z".into()));
        assert_eq!(at("2026-12-01T10:00:00+01:00"), Ok("2026-12-01T09:00:00Z".into()));
        for bad in ["2026-13-01", "yesterday", "-7d", ""] {
            let err = at(bad).expect_err(bad);
            assert!(err.contains("invalid --since"), "{err}");
        }
        assert!(at("2026-13-01").expect_err("month 13").contains("not a date"));
        assert!(kind("token_revoked").is_ok());
        let err = kind("token_stolen").expect_err("unknown kind").to_string();
        assert!(
            err.contains("'token_stolen'") && err.contains("login_failed") && err.contains("client_deleted"),
            "{err}"
        );
    }
}
