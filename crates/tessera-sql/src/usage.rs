//! [`UsageSink`] and [`UsageLog`] on SQL: `usage_daily`, `usage_active_users`, `usage_tokens`
//! (migration 8).
//!
//! A batch is one transaction of multi-row additive upserts: `ON CONFLICT … DO UPDATE SET n = n +
//! excluded.n` for counts, `ON CONFLICT DO NOTHING` for active users — the same SQL text on both
//! backends, so several instances' batches add up exactly, in any order. Sums are cast to `BIGINT`
//! (PostgreSQL's `SUM(bigint)` is `numeric`).

use crate::SqlStore;
use crate::error::from_sqlx;
use crate::rows::RowExt;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use std::fmt::Write;
use tessera_core::usage::{ClientUsage, DailyUsage, LoginCounts, QUERY_DAYS_MAX, RequestCounts, UsageCounts};
use tessera_core::{StoreError, TokenId, UsageBatch, UsageLog, UsageQuery, UsageSink};

/// The count columns of `usage_daily`, in [`UsageCounts`] order (requests, logins, tokens).
const COUNTS: [&str; 11] = [
    "auth_ok",
    "auth_invalid_token",
    "auth_expired",
    "auth_inactive_user",
    "auth_forbidden_client",
    "auth_throttled",
    "login_ok",
    "login_failed",
    "login_throttled",
    "tokens_issued",
    "tokens_revoked",
];
/// Rows in one `INSERT`, well below either backend's limit on bound parameters (13 per row).
const ROWS_PER_INSERT: usize = 100;

/// `($1, $2, …), (…)`: `rows` rows of `width` parameters.
fn values(rows: usize, width: usize) -> String {
    let mut sql = String::new();
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..width {
            let _ = write!(sql, "{}${}", if column == 0 { "" } else { ", " }, row * width + column + 1);
        }
        sql.push(')');
    }
    sql
}

fn daily_sql(rows: usize) -> String {
    let added: Vec<String> = COUNTS.iter().map(|c| format!("{c} = usage_daily.{c} + excluded.{c}")).collect();
    format!(
        "INSERT INTO usage_daily (day, client, {}) VALUES {} ON CONFLICT (day, client) DO UPDATE SET {}",
        COUNTS.join(", "),
        values(rows, COUNTS.len() + 2),
        added.join(", ")
    )
}

fn active_sql(rows: usize) -> String {
    format!(
        "INSERT INTO usage_active_users (day, client, user_id) VALUES {} ON CONFLICT (day, client, user_id) DO NOTHING",
        values(rows, 3)
    )
}

fn tokens_sql(rows: usize) -> String {
    // Scalar MAX (SQLite) and GREATEST (PostgreSQL) differ; CASE is the same on both.
    format!(
        "INSERT INTO usage_tokens (token_id, requests, last_used) VALUES {} ON CONFLICT (token_id) DO UPDATE SET \
         requests = usage_tokens.requests + excluded.requests, last_used = CASE WHEN excluded.last_used > \
         usage_tokens.last_used THEN excluded.last_used ELSE usage_tokens.last_used END",
        values(rows, 3)
    )
}

/// The stored form of a day: its midnight (UTC) in microseconds, like every time in the schema.
fn day_micros(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp_micros()
}

fn day_of(micros: i64) -> Result<NaiveDate, StoreError> {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|at| at.date_naive())
        .ok_or_else(|| StoreError::Backend(format!("a usage row has an invalid day: {micros}")))
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Reads 11 counts from column `first` on.
fn counts(row: &impl RowExt, first: usize) -> Result<UsageCounts, StoreError> {
    let mut n = [0u64; 11];
    for (i, slot) in n.iter_mut().enumerate() {
        *slot = u64::try_from(row.int(first + i)?).unwrap_or(0);
    }
    Ok(UsageCounts {
        requests: RequestCounts::from_array([n[0], n[1], n[2], n[3], n[4], n[5]]),
        logins: LoginCounts::from_array([n[6], n[7], n[8]]),
        tokens_issued: n[9],
        tokens_revoked: n[10],
    })
}

fn check(query: &UsageQuery) -> Result<(), StoreError> {
    if query.to < query.from || (query.to - query.from).num_days() > QUERY_DAYS_MAX {
        return Err(StoreError::Backend(format!(
            "a usage query spans {} to {}: it must end on or after its start and span at most {QUERY_DAYS_MAX} days",
            query.from, query.to
        )));
    }
    Ok(())
}

fn by_day_sql(client: bool) -> String {
    format!(
        "SELECT d.day, d.client, {}, (SELECT COUNT(*) FROM usage_active_users a WHERE a.day = d.day AND a.client = \
         d.client) FROM usage_daily d WHERE d.day >= $1 AND d.day <= $2{} ORDER BY d.day, d.client",
        COUNTS.map(|c| format!("d.{c}")).join(", "),
        if client { " AND d.client = $3" } else { "" }
    )
}

fn totals_sql(client: bool) -> String {
    format!(
        "SELECT d.client, {}, (SELECT COUNT(DISTINCT a.user_id) FROM usage_active_users a WHERE a.client = d.client \
         AND a.day >= $1 AND a.day <= $2) FROM usage_daily d WHERE d.day >= $1 AND d.day <= $2{} GROUP BY d.client \
         ORDER BY d.client",
        COUNTS.map(|c| format!("CAST(SUM(d.{c}) AS BIGINT)")).join(", "),
        if client { " AND d.client = $3" } else { "" }
    )
}

#[async_trait]
impl UsageSink for SqlStore {
    async fn write_usage(&self, batch: &UsageBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        in_write_transaction!(self, |tx| {
            async {
                for chunk in batch.counts.chunks(ROWS_PER_INSERT) {
                    let sql = daily_sql(chunk.len());
                    let mut insert = sqlx::query(&sql);
                    for (day, client, c) in chunk {
                        insert = insert.bind(day_micros(*day)).bind(client.as_str());
                        let mut all = c.requests.to_array().to_vec();
                        all.extend(c.logins.to_array());
                        all.extend([c.tokens_issued, c.tokens_revoked]);
                        for n in all {
                            insert = insert.bind(count(n));
                        }
                    }
                    insert.execute(&mut *tx).await.map_err(from_sqlx)?;
                }
                for chunk in batch.active_users.chunks(ROWS_PER_INSERT) {
                    let sql = active_sql(chunk.len());
                    let mut insert = sqlx::query(&sql);
                    for (day, client, user) in chunk {
                        insert = insert.bind(day_micros(*day)).bind(client.as_str()).bind(user.0);
                    }
                    insert.execute(&mut *tx).await.map_err(from_sqlx)?;
                }
                for chunk in batch.token_requests.chunks(ROWS_PER_INSERT) {
                    let sql = tokens_sql(chunk.len());
                    let mut insert = sqlx::query(&sql);
                    for (token, requests, last_used) in chunk {
                        insert = insert.bind(token.0).bind(count(*requests)).bind(last_used.timestamp_micros());
                    }
                    insert.execute(&mut *tx).await.map_err(from_sqlx)?;
                }
                Ok(())
            }
            .await
        })
    }

    async fn prune_usage(&self, before: NaiveDate) -> Result<u64, StoreError> {
        let cutoff = day_micros(before);
        in_write_transaction!(self, |tx| {
            async {
                let mut pruned = 0;
                for sql in [
                    "DELETE FROM usage_daily WHERE day < $1",
                    "DELETE FROM usage_active_users WHERE day < $1",
                    "DELETE FROM usage_tokens WHERE last_used < $1",
                ] {
                    pruned += sqlx::query(sql).bind(cutoff).execute(&mut *tx).await.map_err(from_sqlx)?.rows_affected();
                }
                Ok(pruned)
            }
            .await
        })
    }
}

#[async_trait]
impl UsageLog for SqlStore {
    async fn usage_by_day(&self, query: &UsageQuery) -> Result<Vec<DailyUsage>, StoreError> {
        check(query)?;
        let sql = by_day_sql(query.client.is_some());
        with_reader!(self, |pool| {
            let mut select = sqlx::query(&sql).bind(day_micros(query.from)).bind(day_micros(query.to));
            if let Some(client) = &query.client {
                select = select.bind(client.as_str());
            }
            let rows = select.fetch_all(pool).await.map_err(from_sqlx)?;
            rows.iter()
                .map(|row| {
                    Ok(DailyUsage {
                        day: day_of(row.int(0)?)?,
                        client: row.text(1)?,
                        counts: counts(row, 2)?,
                        active_users: u64::try_from(row.int(13)?).unwrap_or(0),
                    })
                })
                .collect()
        })
    }

    async fn usage_totals(&self, query: &UsageQuery) -> Result<Vec<ClientUsage>, StoreError> {
        check(query)?;
        let sql = totals_sql(query.client.is_some());
        with_reader!(self, |pool| {
            let mut select = sqlx::query(&sql).bind(day_micros(query.from)).bind(day_micros(query.to));
            if let Some(client) = &query.client {
                select = select.bind(client.as_str());
            }
            let rows = select.fetch_all(pool).await.map_err(from_sqlx)?;
            rows.iter()
                .map(|row| {
                    Ok(ClientUsage {
                        client: row.text(0)?,
                        counts: counts(row, 1)?,
                        active_users: u64::try_from(row.int(12)?).unwrap_or(0),
                    })
                })
                .collect()
        })
    }

    async fn token_requests(&self, tokens: &[TokenId]) -> Result<Vec<(TokenId, u64)>, StoreError> {
        let mut found = Vec::new();
        for chunk in tokens.chunks(ROWS_PER_INSERT) {
            let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT token_id, requests FROM usage_tokens WHERE token_id IN ({}) ORDER BY token_id",
                params.join(", ")
            );
            with_reader!(self, |pool| {
                let mut select = sqlx::query(&sql);
                for token in chunk {
                    select = select.bind(token.0);
                }
                for row in &select.fetch_all(pool).await.map_err(from_sqlx)? {
                    found.push((TokenId(row.int(0)?), u64::try_from(row.int(1)?).unwrap_or(0)));
                }
            });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_parameters_in_binding_order() {
        assert_eq!(values(2, 3), "($1, $2, $3), ($4, $5, $6)");
        let daily = daily_sql(1);
        assert!(daily.contains("VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT"));
        assert!(daily.ends_with("tokens_revoked = usage_daily.tokens_revoked + excluded.tokens_revoked"));
        assert!(by_day_sql(true).ends_with("AND d.client = $3 ORDER BY d.day, d.client"));
        let day = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap_or_default();
        assert_eq!(day_of(day_micros(day)).ok(), Some(day));
    }
}
