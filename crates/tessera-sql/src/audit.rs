//! [`AuditSink`] and [`AuditLog`] on SQL: the `audit_events` table.
//!
//! A batch is one transaction of multi-row `INSERT`s (at most [`ROWS_PER_INSERT`] rows each, far
//! below either backend's limit on bound parameters). Ids come from the table (SQLite's rowid,
//! PostgreSQL's identity), so writers on several instances never collide.

use crate::SqlStore;
use crate::error::from_sqlx;
use crate::rows::{RowExt, micros};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt::Write;
use tessera_core::audit::QUERY_LIMIT_MAX;
use tessera_core::{Actor, AuditLog, AuditQuery, AuditRecord, AuditSink, StoreError, TokenId, UserId};

/// The columns written and read, in this order.
const COLUMNS: &str = "at, kind, actor, user_id, username, client, token_id, ip, user_agent, detail, actor_name";
const WIDTH: usize = 11;
/// Rows in one `INSERT`: 990 parameters.
const ROWS_PER_INSERT: usize = 90;
const PRUNE: &str = "DELETE FROM audit_events WHERE at < $1";

/// `INSERT … VALUES ($1, …, $11), ($12, …)` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql = format!("INSERT INTO audit_events ({COLUMNS}) VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..WIDTH {
            let sep = if column == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}${}", row * WIDTH + column + 1);
        }
        sql.push(')');
    }
    sql
}

/// The `SELECT` for `query`, its parameters numbered in the order [`AuditLog::audit_events`] binds them.
fn select_sql(query: &AuditQuery) -> String {
    let mut sql = format!("SELECT {COLUMNS} FROM audit_events");
    let mut n = 0;
    let mut and = |sql: &mut String, condition: &str| {
        n += 1;
        let _ = write!(sql, "{} {condition} ${n}", if n == 1 { " WHERE" } else { " AND" });
    };
    if query.username.is_some() {
        and(&mut sql, "username =");
    }
    if query.client.is_some() {
        and(&mut sql, "client =");
    }
    if query.kind.is_some() {
        and(&mut sql, "kind =");
    }
    if query.since.is_some() {
        and(&mut sql, "at >=");
    }
    if query.until.is_some() {
        and(&mut sql, "at <");
    }
    if query.actor.is_some() {
        and(&mut sql, "actor =");
    }
    if query.actor_name.is_some() {
        and(&mut sql, "actor_name =");
    }
    let _ = write!(sql, " ORDER BY at DESC, id DESC LIMIT ${}", n + 1);
    sql
}

fn record(row: &impl RowExt) -> Result<AuditRecord, StoreError> {
    let at = row.int(0)?;
    let corrupt =
        |column: &str, why: String| StoreError::Backend(format!("an audit_events row has an invalid {column}: {why}"));
    let actor = row.text(2)?;
    let detail = row.text(9)?;
    Ok(AuditRecord {
        at: DateTime::from_timestamp_micros(at).ok_or_else(|| corrupt("at", format!("{at} is out of range")))?,
        kind: row.text(1)?,
        actor: Actor::from_name(&actor).ok_or_else(|| corrupt("actor", format!("'{}'", actor.escape_debug())))?,
        user_id: row.opt_int(3)?.map(UserId),
        username: row.opt_text(4)?,
        client: row.opt_text(5)?,
        token_id: row.opt_int(6)?.map(TokenId),
        ip: row.opt_text(7)?,
        user_agent: row.opt_text(8)?,
        detail: serde_json::from_str(&detail).map_err(|e| corrupt("detail", e.to_string()))?,
        actor_name: row.opt_text(10)?,
    })
}

#[async_trait]
impl AuditSink for SqlStore {
    async fn write_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let details: Vec<String> = records.iter().map(|r| r.detail.to_string()).collect();
        in_write_transaction!(self, |tx| {
            async {
                for (chunk, details) in records.chunks(ROWS_PER_INSERT).zip(details.chunks(ROWS_PER_INSERT)) {
                    let sql = insert_sql(chunk.len());
                    let mut insert = sqlx::query(&sql);
                    for (r, detail) in chunk.iter().zip(details) {
                        insert = insert
                            .bind(micros(r.at))
                            .bind(r.kind.as_str())
                            .bind(r.actor.as_str())
                            .bind(r.user_id.map(|u| u.0))
                            .bind(r.username.as_deref())
                            .bind(r.client.as_deref())
                            .bind(r.token_id.map(|t| t.0))
                            .bind(r.ip.as_deref())
                            .bind(r.user_agent.as_deref())
                            .bind(detail.as_str())
                            .bind(r.actor_name.as_deref());
                    }
                    insert.execute(&mut *tx).await.map_err(from_sqlx)?;
                }
                Ok(())
            }
            .await
        })
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(with_writer!(self, |pool| {
            sqlx::query(PRUNE).bind(micros(before)).execute(pool).await.map_err(from_sqlx)?.rows_affected()
        }))
    }
}

#[async_trait]
impl AuditLog for SqlStore {
    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let sql = select_sql(query);
        let limit = i64::from(query.limit.min(QUERY_LIMIT_MAX));
        with_reader!(self, |pool| {
            let mut select = sqlx::query(&sql);
            if let Some(username) = &query.username {
                select = select.bind(username.as_str());
            }
            if let Some(client) = &query.client {
                select = select.bind(client.as_str());
            }
            if let Some(kind) = &query.kind {
                select = select.bind(kind.as_str());
            }
            if let Some(since) = query.since {
                select = select.bind(micros(since));
            }
            if let Some(until) = query.until {
                select = select.bind(micros(until));
            }
            if let Some(actor) = query.actor {
                select = select.bind(actor.as_str());
            }
            if let Some(name) = &query.actor_name {
                select = select.bind(name.as_str());
            }
            let rows = select.bind(limit).fetch_all(pool).await.map_err(from_sqlx)?;
            rows.iter().map(record).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_parameters_in_binding_order() {
        assert!(insert_sql(2).ends_with(
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11), ($12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
        ));
        let query = AuditQuery { client: Some("web".into()), since: Some(Utc::now()), ..AuditQuery::default() };
        assert!(select_sql(&query).ends_with("WHERE client = $1 AND at >= $2 ORDER BY at DESC, id DESC LIMIT $3"));
        assert!(select_sql(&AuditQuery::default()).ends_with("audit_events ORDER BY at DESC, id DESC LIMIT $1"));
    }
}
