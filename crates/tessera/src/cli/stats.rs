//! `tessera stats`: usage per client per day, from the usage analytics.

use super::output;
use crate::app::App;
use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;
use tessera_core::usage::{ClientUsage, DailyUsage, QUERY_DAYS_MAX};
use tessera_core::{ClientName, UsageLog, UsageQuery};

#[derive(Debug, Args)]
pub struct StatsCommand {
    /// Only this client ("unknown": invalid tokens and failed logins)
    #[arg(long, value_name = "NAME")]
    client: Option<String>,
    /// The last N days, today (UTC) included [max: 3660]
    #[arg(long, value_name = "N", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=QUERY_DAYS_MAX))]
    days: u32,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

/// `--json`'s document: stable (fields are only ever added).
#[derive(Debug, Serialize)]
struct Report {
    /// The first day (UTC), `YYYY-MM-DD`.
    from: chrono::NaiveDate,
    /// The last day (UTC, today).
    to: chrono::NaiveDate,
    /// Per client per day, days ascending then clients by name.
    days: Vec<DailyUsage>,
    /// Per client over the whole range (a user active on several days counts once).
    totals: Vec<ClientUsage>,
}

impl StatsCommand {
    pub async fn run(self, app: &App) -> Result<()> {
        let client = match self.client {
            None => None,
            Some(c) if c == tessera_core::usage::UNKNOWN_CLIENT => Some(c),
            Some(c) => match c.parse::<ClientName>() {
                Ok(name) => Some(name.to_string()),
                Err(e) => bail!("invalid --client '{}': {e}", output::clean(&c)),
            },
        };
        let to = app.clock.now().date_naive();
        let from = to - chrono::TimeDelta::days(i64::from(self.days) - 1);
        let query = UsageQuery { client, from, to };
        let days = app.sql.usage_by_day(&query).await?;
        let totals = app.sql.usage_totals(&query).await?;
        if self.json {
            let report = Report { from, to, days, totals };
            return output::json(&report);
        }
        let header = [
            "DAY",
            "CLIENT",
            "OK",
            "INVALID",
            "EXPIRED",
            "INACTIVE",
            "FORBIDDEN",
            "THROTTLED",
            "LOGINS",
            "FAILED",
            "USERS",
            "ISSUED",
            "REVOKED",
        ];
        let row = |day: String, client: &str, c: &tessera_core::UsageCounts, users: u64| {
            let r = c.requests;
            vec![
                day,
                output::clean(client).into_owned(),
                r.ok.to_string(),
                r.invalid_token.to_string(),
                r.expired.to_string(),
                r.inactive_user.to_string(),
                r.forbidden_client.to_string(),
                r.throttled.to_string(),
                c.logins.ok.to_string(),
                (c.logins.failed + c.logins.throttled).to_string(),
                users.to_string(),
                c.tokens_issued.to_string(),
                c.tokens_revoked.to_string(),
            ]
        };
        let mut rows: Vec<Vec<String>> =
            days.iter().map(|d| row(d.day.to_string(), &d.client, &d.counts, d.active_users)).collect();
        rows.extend(totals.iter().map(|t| row("total".into(), &t.client, &t.counts, t.active_users)));
        if rows.is_empty() {
            output::out!("no usage counted from {from} to {to}")?;
            return Ok(());
        }
        output::table(&header, &rows)?;
        Ok(())
    }
}
