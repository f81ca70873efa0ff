//! Mapping sqlx errors onto [`StoreError`]: what a caller can act on (conflict, not found, try
//! again later) is told apart from everything else.

use sqlx::error::ErrorKind;
use sqlx::{Database, Transaction};
use tessera_core::StoreError;

/// Classifies an error that is not a uniqueness or foreign-key violation the caller expected.
pub(crate) fn from_sqlx(err: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match &err {
        E::PoolTimedOut => StoreError::Unavailable("timed out waiting for a database connection".into()),
        E::PoolClosed => StoreError::Unavailable("the connection pool is closed".into()),
        E::Io(e) => StoreError::Unavailable(format!("i/o error talking to the database: {e}")),
        E::Tls(e) => StoreError::Unavailable(format!("TLS error talking to the database: {e}")),
        E::WorkerCrashed => StoreError::Unavailable("the SQLite worker thread stopped".into()),
        E::Database(db) if is_transient(db.code().as_deref()) => StoreError::Unavailable(db.message().to_string()),
        E::Database(db) => StoreError::Backend(db.message().to_string()),
        _ => StoreError::Backend(err.to_string()),
    }
}

/// Whether a database error code says "try again later" rather than "this request is wrong".
fn is_transient(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    // SQLite reports its (extended) result code as a number; the low byte is the primary code.
    if let Ok(n) = code.parse::<i64>() {
        const BUSY: i64 = 5;
        const LOCKED: i64 = 6;
        const IOERR: i64 = 10;
        const FULL: i64 = 13;
        const CANTOPEN: i64 = 14;
        return matches!(n & 0xff, BUSY | LOCKED | IOERR | FULL | CANTOPEN);
    }
    // PostgreSQL SQLSTATE classes: connection exception, insufficient resources, transaction
    // rollback (serialization failure, deadlock), operator intervention (shutdown, starting up).
    code.starts_with("08") || code.starts_with("53") || code.starts_with("40") || code.starts_with("57P")
}

/// Whether `err` is a uniqueness violation.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation)
}

/// Whether `err` is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

/// What an insert reports when the random id it drew is taken; [`with_fresh_id!`] draws again.
const ID_TAKEN: &str = "every freshly drawn id was taken; try again";

/// Whether `err` is a uniqueness violation of a primary key `id`: the fresh id collided.
/// PostgreSQL names the constraint `<table>_pkey`; SQLite says `UNIQUE constraint failed: <table>.id`.
pub(crate) fn is_id_collision(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
            db.constraint().is_some_and(|c| c.ends_with("_pkey")) || db.message().ends_with(".id")
        }
        _ => false,
    }
}

/// An insert's error: an id collision as [`ID_TAKEN`], anything else through `other`.
pub(crate) fn insert_failed(err: sqlx::Error, other: impl FnOnce(sqlx::Error) -> StoreError) -> StoreError {
    if is_id_collision(&err) { StoreError::Unavailable(ID_TAKEN.into()) } else { other(err) }
}

/// Whether an insert failed only because its fresh id was taken: [`with_fresh_id!`] draws again.
pub(crate) fn id_taken(err: &StoreError) -> bool {
    matches!(err, StoreError::Unavailable(m) if m == ID_TAKEN)
}

/// Maps a uniqueness violation to [`StoreError::Conflict`] with `message`, anything else as usual.
pub(crate) fn conflict_or(err: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    if is_unique_violation(&err) { StoreError::Conflict(message()) } else { from_sqlx(err) }
}

/// Commits `tx` when `result` is `Ok`, rolls it back otherwise.
pub(crate) async fn finish<DB: Database, T>(
    tx: Transaction<'static, DB>,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            tx.commit().await.map_err(from_sqlx)?;
            Ok(value)
        }
        Err(e) => {
            // The error that made us roll back is the one worth reporting; a failed rollback
            // leaves the connection to be discarded by the pool.
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a failed transaction failed");
            }
            Err(e)
        }
    }
}

/// "no user with id 3".
pub(crate) fn no_such(what: &str, id: i64) -> StoreError {
    StoreError::NotFound(format!("no {what} with id {id}"))
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::is_id_collision;
    use tessera_core::NewUser;
    use tessera_core::store::UserStore;

    /// A drawn id that is taken is told apart from every other uniqueness violation, on each
    /// backend's own error.
    async fn collisions_are_recognised(db: crate::testing::TestDb) {
        let new = |name: &str| NewUser {
            username: name.parse().expect("username"),
            password_hash: "x".into(),
            is_active: true,
            is_staff: false,
        };
        let alice = db.store.create_user(new("alice")).await.expect("alice");
        let insert = |id: i64, name: &'static str| {
            let store = db.store.clone();
            async move {
                with_writer!(store, |pool| {
                    sqlx::query("INSERT INTO users (id, username, password_hash, created) VALUES ($1, $2, 'x', 0)")
                        .bind(id)
                        .bind(name)
                        .execute(pool)
                        .await
                        .expect_err("a duplicate")
                })
            }
        };
        assert!(is_id_collision(&insert(alice.id.0, "bob").await), "the same id");
        assert!(!is_id_collision(&insert(alice.id.0 + 1, "alice").await), "the same name");
        db.close().await;
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn on_sqlite() {
        collisions_are_recognised(crate::testing::sqlite().await).await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn on_postgres() {
        if let Some(db) = crate::testing::postgres().await {
            collisions_are_recognised(db).await;
        }
    }
}
