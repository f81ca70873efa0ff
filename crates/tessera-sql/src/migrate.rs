//! A small migrator: numbered SQL files per backend, embedded in the binary, applied in order and
//! recorded in `tessera_migrations(version, applied_at)`.
//!
//! Two processes may start at once (two server instances, or the server and `tessera migrate`), so
//! the whole check-and-apply runs under one lock: PostgreSQL takes a transaction-scoped advisory
//! lock, SQLite runs in a `BEGIN IMMEDIATE` transaction (the database's write lock). The second
//! process waits, then finds everything applied. DDL is transactional on both backends, so a
//! migration that fails leaves nothing behind.

use crate::error::from_sqlx;
use crate::{Pools, SqlStore};
use chrono::Utc;
use sqlx::Row;
use tessera_core::StoreError;

/// One schema change.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

#[cfg(feature = "sqlite")]
const SQLITE: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/sqlite/0001_init.sql") },
    Migration { version: 2, name: "invalidations", sql: include_str!("../migrations/sqlite/0002_invalidations.sql") },
    Migration { version: 3, name: "random_ids", sql: include_str!("../migrations/sqlite/0003_random_ids.sql") },
    Migration { version: 4, name: "devices", sql: include_str!("../migrations/sqlite/0004_devices.sql") },
    Migration { version: 5, name: "audit_events", sql: include_str!("../migrations/sqlite/0005_audit_events.sql") },
    Migration { version: 6, name: "key_ids", sql: include_str!("../migrations/sqlite/0006_key_ids.sql") },
    Migration { version: 7, name: "notify", sql: include_str!("../migrations/sqlite/0007_notify.sql") },
    Migration { version: 8, name: "usage", sql: include_str!("../migrations/sqlite/0008_usage.sql") },
    Migration { version: 9, name: "token_search", sql: include_str!("../migrations/sqlite/0009_token_search.sql") },
    Migration {
        version: 10,
        name: "audit_actor_name",
        sql: include_str!("../migrations/sqlite/0010_audit_actor_name.sql"),
    },
    Migration {
        version: 11,
        name: "notify_sent_at",
        sql: include_str!("../migrations/sqlite/0011_notify_sent_at.sql"),
    },
    Migration { version: 12, name: "legacy_tokens", sql: include_str!("../migrations/sqlite/0012_legacy_tokens.sql") },
];

#[cfg(feature = "postgres")]
const POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/postgres/0001_init.sql") },
    Migration { version: 2, name: "invalidations", sql: include_str!("../migrations/postgres/0002_invalidations.sql") },
    Migration { version: 3, name: "random_ids", sql: include_str!("../migrations/postgres/0003_random_ids.sql") },
    Migration { version: 4, name: "devices", sql: include_str!("../migrations/postgres/0004_devices.sql") },
    Migration { version: 5, name: "audit_events", sql: include_str!("../migrations/postgres/0005_audit_events.sql") },
    Migration { version: 6, name: "key_ids", sql: include_str!("../migrations/postgres/0006_key_ids.sql") },
    Migration { version: 7, name: "notify", sql: include_str!("../migrations/postgres/0007_notify.sql") },
    Migration { version: 8, name: "usage", sql: include_str!("../migrations/postgres/0008_usage.sql") },
    Migration { version: 9, name: "token_search", sql: include_str!("../migrations/postgres/0009_token_search.sql") },
    Migration {
        version: 10,
        name: "audit_actor_name",
        sql: include_str!("../migrations/postgres/0010_audit_actor_name.sql"),
    },
    Migration {
        version: 11,
        name: "notify_sent_at",
        sql: include_str!("../migrations/postgres/0011_notify_sent_at.sql"),
    },
    Migration {
        version: 12,
        name: "legacy_tokens",
        sql: include_str!("../migrations/postgres/0012_legacy_tokens.sql"),
    },
];

/// The key of the PostgreSQL advisory lock held while migrating ("tessera" in ASCII).
const PG_MIGRATION_LOCK: i64 = 0x0074_6573_7365_7261;
/// Waits for, then holds until the transaction ends, the advisory lock.
#[cfg(feature = "postgres")]
const PG_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";

#[cfg(feature = "sqlite")]
const SQLITE_CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS tessera_migrations (\
     version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT";
#[cfg(feature = "postgres")]
const PG_CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS tessera_migrations (\
     version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";
const APPLIED: &str = "SELECT version FROM tessera_migrations ORDER BY version";
const RECORD: &str = "INSERT INTO tessera_migrations (version, applied_at) VALUES ($1, $2)";

const SCHEMA_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM tessera_migrations";

impl SqlStore {
    /// The schema version this binary expects (its newest migration).
    pub fn expected_schema_version(&self) -> i64 {
        let migrations = match self.pools {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite { .. } => SQLITE,
            #[cfg(feature = "postgres")]
            Pools::Postgres(_) => POSTGRES,
        };
        migrations.last().map_or(0, |m| m.version)
    }

    /// `Ok` when the database answers and holds exactly the schema this binary expects; else
    /// [`StoreError::Unavailable`] saying what is wrong (unreachable, not migrated, behind, ahead).
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        let expected = self.expected_schema_version();
        let found: Result<i64, sqlx::Error> =
            with_reader!(self, |pool| sqlx::query_scalar::<_, i64>(SCHEMA_VERSION).fetch_one(pool).await);
        let found = match found {
            Ok(version) => version,
            Err(sqlx::Error::Database(_)) => {
                return Err(StoreError::Unavailable("the database is not migrated: run `tessera migrate`".into()));
            }
            Err(e) => return Err(from_sqlx(e)),
        };
        match found.cmp(&expected) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(StoreError::Unavailable(format!(
                "the database schema is at version {found}, this binary needs {expected}: run `tessera migrate`"
            ))),
            std::cmp::Ordering::Greater => Err(StoreError::Unavailable(format!(
                "the database schema is at version {found}, newer than this binary's {expected}: upgrade Tessera"
            ))),
        }
    }

    /// Brings the schema up to date; a no-op when it is. Safe to run from several processes at
    /// once. Fails when the database was migrated by a newer Tessera than this one.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        // What differs between the backends is data; the steps are the same.
        let (migrations, create_table, lock) = match self.pools {
            // `BEGIN IMMEDIATE` (in_write_transaction) already holds the database's write lock.
            #[cfg(feature = "sqlite")]
            Pools::Sqlite { .. } => (SQLITE, SQLITE_CREATE_TABLE, None),
            #[cfg(feature = "postgres")]
            Pools::Postgres(_) => (POSTGRES, PG_CREATE_TABLE, Some(PG_LOCK)),
        };
        let applied = in_write_transaction!(self, |tx| {
            async {
                if let Some(lock) = lock {
                    sqlx::query(lock).bind(PG_MIGRATION_LOCK).execute(&mut *tx).await.map_err(from_sqlx)?;
                }
                sqlx::query(create_table).execute(&mut *tx).await.map_err(from_sqlx)?;
                let done = sqlx::query(APPLIED).fetch_all(&mut *tx).await.map_err(from_sqlx)?;
                let done = done.iter().map(|r| r.try_get::<i64, _>(0)).collect::<Result<Vec<_>, _>>();
                let pending = pending(migrations, &done.map_err(from_sqlx)?)?;
                for m in &pending {
                    sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(|e| failed(m, e))?;
                    sqlx::query(RECORD)
                        .bind(m.version)
                        .bind(Utc::now().timestamp_micros())
                        .execute(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                }
                Ok(pending)
            }
            .await
        })?;
        for m in applied {
            tracing::info!(backend = %self.backend(), version = m.version, name = m.name, "applied migration");
        }
        Ok(())
    }
}

/// The migrations of `all` not yet in `done`, in order.
fn pending(all: &'static [Migration], done: &[i64]) -> Result<Vec<&'static Migration>, StoreError> {
    let known = all.last().map_or(0, |m| m.version);
    if let Some(newer) = done.iter().find(|v| **v > known) {
        return Err(StoreError::Backend(format!(
            "the database has schema version {newer}, newer than this Tessera knows ({known}); \
             upgrade Tessera instead of running an older one against it"
        )));
    }
    Ok(all.iter().filter(|m| !done.contains(&m.version)).collect())
}

fn failed(m: &Migration, err: sqlx::Error) -> StoreError {
    match from_sqlx(err) {
        StoreError::Backend(msg) => StoreError::Backend(format!("migration {:04}_{} failed: {msg}", m.version, m.name)),
        other => other,
    }
}
