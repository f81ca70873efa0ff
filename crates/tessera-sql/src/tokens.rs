//! [`TokenStore`] and [`Store`] on SQL.

use crate::error::{from_sqlx, insert_failed, is_foreign_key_violation, is_unique_violation};
use crate::rows::{self, RowExt, TOKEN_WIDTH, USER_WIDTH, micros, token_columns};
use crate::{Backend, SqlStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tessera_core::store::{
    ClientStore, DeviceToken, Invalidation, Store, StoreError, TokenFilter, TokenStore, TokenWithOwner, UserStore,
};
use tessera_core::{AuthToken, Client, ClientId, NewToken, OnDeviceLimit, TokenDigest, TokenId, User, UserId};

const INSERT: &str = concat!(
    "INSERT INTO auth_tokens (id, user_id, client_id, digest, seed, created, expiry, user_agent, ip, key_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
    token_columns!()
);
const INSERT_IF_ABSENT: &str = concat!(
    "INSERT INTO auth_tokens (id, user_id, client_id, digest, seed, created, expiry, user_agent, ip, key_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (user_id, client_id) WHERE per_device = 0 \
     DO NOTHING RETURNING ",
    token_columns!()
);
const BY_ID: &str = concat!("SELECT ", token_columns!(), " FROM auth_tokens WHERE id = $1");
const BY_DIGEST: &str = concat!("SELECT ", token_columns!(), " FROM auth_tokens WHERE digest = $1");
const FOR_PAIR: &str =
    concat!("SELECT ", token_columns!(), " FROM auth_tokens WHERE user_id = $1 AND client_id = $2 AND per_device = 0");
/// A device token: never the pair's.
const INSERT_DEVICE: &str = concat!(
    "INSERT INTO auth_tokens (id, user_id, client_id, digest, seed, created, expiry, user_agent, ip, key_id, \
     per_device) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1) RETURNING ",
    token_columns!()
);
/// Serialises a user's device logins on PostgreSQL (SQLite's `BEGIN IMMEDIATE` already does).
const LOCK_USER: &str = "SELECT id FROM users WHERE id = $1 FOR UPDATE";
/// A user's tokens on a client, least recently used first: the order of eviction.
const DEVICES_LRU: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM auth_tokens WHERE user_id = $1 AND client_id = $2 ORDER BY COALESCE(last_used, created), created, id"
);
/// Of each user's tokens on a client, all but the most recently used.
const DELETE_ALL_BUT_LATEST: &str = concat!(
    "DELETE FROM auth_tokens WHERE client_id = $1 AND id NOT IN (\
       SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY user_id \
         ORDER BY COALESCE(last_used, created) DESC, created DESC, id DESC) AS n \
       FROM auth_tokens WHERE client_id = $1) AS ranked WHERE n = 1) RETURNING ",
    token_columns!()
);
const MAKE_PAIR_TOKENS: &str = "UPDATE auth_tokens SET per_device = 0 WHERE client_id = $1 AND per_device = 1";
const DELETE: &str = "DELETE FROM auth_tokens WHERE id = $1";
const SET_EXPIRY: &str = "UPDATE auth_tokens SET expiry = $2 WHERE id = $1";
const EXTEND_EXPIRY: &str = "UPDATE auth_tokens SET expiry = $2 WHERE id = $1 AND (expiry IS NULL OR expiry > $3)";
const LATEST_INVALIDATION: &str = "SELECT COALESCE(MAX(seq), 0) FROM invalidations";
/// The limit is `tessera_core::store::MAX_INVALIDATIONS_PER_READ` (a test checks).
const INVALIDATIONS_AFTER: &str = "SELECT seq, digest, user_id, client_id FROM invalidations \
     WHERE seq > $1 ORDER BY seq LIMIT 10000";
/// The newest entry stays, however old: the log's end never moves back except by a restore,
/// which is how followers notice one.
const PRUNE_INVALIDATIONS: &str =
    "DELETE FROM invalidations WHERE created < $1 AND seq < (SELECT MAX(seq) FROM invalidations)";
/// Last-used times only move forward: instances flush their buffers in any order.
const TOUCH: &str = "UPDATE auth_tokens SET last_used = $2 WHERE id = $1 AND (last_used IS NULL OR last_used < $2)";
const PURGE: &str = "DELETE FROM auth_tokens WHERE expiry IS NOT NULL AND expiry <= $1";
/// The columns of a user `u` and a client `c`, in the order [`rows::user`] then [`rows::client`]
/// decode them.
macro_rules! owner_columns {
    () => {
        "u.id, u.username, u.password_hash, u.is_active, u.is_staff, u.created, \
         c.id, c.name, c.token_ttl_secs, c.throttle_rate, c.sliding_expiry, c.max_lifetime_secs, c.description, c.created, \
         c.devices, c.max_devices, c.on_device_limit"
    };
}
pub(crate) const WITH_OWNER: &str = concat!(
    "SELECT t.id, t.user_id, t.client_id, t.digest, t.seed, t.created, t.expiry, t.last_used, t.user_agent, t.ip, \
     t.key_id, ",
    owner_columns!(),
    " FROM auth_tokens t JOIN users u ON u.id = t.user_id JOIN clients c ON c.id = t.client_id WHERE t.digest = $1"
);

/// A user and a client by id in one query. Joining both onto a one-row table keeps the row when
/// either (or both) is missing.
const USER_AND_CLIENT: &str = concat!(
    "SELECT ",
    owner_columns!(),
    " FROM (SELECT 1 AS one) AS pair LEFT JOIN users u ON u.id = $1 LEFT JOIN clients c ON c.id = $2"
);

/// Binds a fresh id and a [`NewToken`]'s columns in the order of the INSERT statements'
/// placeholders. A macro, not a function: each expansion is typed against one driver's query.
macro_rules! bind_new_token {
    ($query:expr, $id:expr, $token:expr) => {
        $query
            .bind($id)
            .bind($token.user_id.0)
            .bind($token.client_id.0)
            .bind(&$token.digest.as_bytes()[..])
            .bind(&$token.seed.as_bytes()[..])
            .bind(micros($token.created))
            .bind($token.expiry.map(micros))
            .bind($token.user_agent.as_deref())
            .bind($token.ip.as_deref())
            .bind($token.key_id.to_string())
    };
}

/// `WHERE` for a filter; the values are bound in the order of [`bind_filter`]. A statement per
/// shape (rather than `$1 IS NULL OR user_id = $1`) lets PostgreSQL use the indexes.
fn filter_clause(filter: TokenFilter, backend: Backend) -> String {
    let mut conditions = Vec::new();
    for (column, present) in
        [("user_id", filter.user.is_some()), ("client_id", filter.client.is_some()), ("key_id", filter.key.is_some())]
    {
        if present {
            conditions.push(format!("{column} = ${}", conditions.len() + 1));
        }
    }
    if filter.legacy {
        // Legacy tokens have no seed (`TokenSeed::NONE`). Written as the literal of the partial
        // index `auth_tokens_legacy` (migration 12), not bound: a planner uses a partial index only
        // when it can see that the query's condition is the index's.
        conditions.push(
            match backend {
                Backend::Sqlite => LEGACY_SQLITE,
                Backend::Postgres => LEGACY_POSTGRES,
            }
            .to_string(),
        );
    }
    if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) }
}

/// The condition of a legacy token, as migration 12's partial index states it on SQLite...
const LEGACY_SQLITE: &str = "seed = X'0000000000000000000000000000000000000000000000000000000000000000'";
/// ... and on PostgreSQL.
const LEGACY_POSTGRES: &str = "seed = '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea";

/// Binds a filter's values in the order of [`filter_clause`]'s placeholders. A macro for the
/// same reason as [`bind_new_token`].
macro_rules! bind_filter {
    ($query:expr, $filter:expr) => {{
        let mut query = $query;
        for id in $filter.user.map(|u| u.0).into_iter().chain($filter.client.map(|c| c.0)) {
            query = query.bind(id);
        }
        if let Some(key) = $filter.key {
            query = query.bind(key.to_string());
        }
        query
    }};
}

/// Why inserting `token` failed, as far as the error alone tells.
fn insert_error(err: sqlx::Error, token: &NewToken) -> StoreError {
    insert_failed(err, |err| owner_or_pair_error(err, token))
}

fn owner_or_pair_error(err: sqlx::Error, token: &NewToken) -> StoreError {
    if is_unique_violation(&err) {
        let on_digest = match &err {
            sqlx::Error::Database(db) => {
                db.message().contains("digest") || db.constraint().is_some_and(|c| c.contains("digest"))
            }
            _ => false,
        };
        return StoreError::Conflict(if on_digest {
            "a token with this digest already exists".to_string()
        } else {
            format!("user {} already has a token for client {}", token.user_id, token.client_id)
        });
    }
    if is_foreign_key_violation(&err) {
        // Refined by `missing_owner` once the transaction is over.
        return StoreError::NotFound(format!(
            "no user with id {} or no client with id {}",
            token.user_id, token.client_id
        ));
    }
    from_sqlx(err)
}

/// The database's plan for [`TokenStore::count_tokens`] with `filter` (`EXPLAIN QUERY PLAN` on
/// SQLite, `EXPLAIN` on PostgreSQL): for the test that counting legacy tokens reads their index.
#[cfg(feature = "testing")]
pub async fn count_plan(store: &SqlStore, filter: TokenFilter) -> Result<Vec<String>, StoreError> {
    let sql = format!("SELECT COUNT(*) FROM auth_tokens{}", filter_clause(filter, store.backend()));
    let column = match store.backend() {
        Backend::Sqlite => 3,
        Backend::Postgres => 0,
    };
    let explain = match store.backend() {
        Backend::Sqlite => format!("EXPLAIN QUERY PLAN {sql}"),
        Backend::Postgres => format!("EXPLAIN {sql}"),
    };
    with_reader!(store, |pool| {
        let found = bind_filter!(sqlx::query(&explain), filter).fetch_all(pool).await.map_err(from_sqlx)?;
        found.iter().map(|r| r.text(column)).collect()
    })
}

impl SqlStore {
    /// Says which of the token's owners does not exist, after a foreign-key violation.
    async fn missing_owner(&self, user: UserId, client: ClientId, fallback: StoreError) -> StoreError {
        match (self.user_by_id(user).await, self.client_by_id(client).await) {
            (Ok(None), _) => StoreError::NotFound(format!("no user with id {user}")),
            (_, Ok(None)) => StoreError::NotFound(format!("no client with id {client}")),
            _ => fallback,
        }
    }

    async fn try_get_or_create(&self, id: i64, token: &NewToken) -> Result<Option<(AuthToken, bool)>, StoreError> {
        in_write_transaction!(self, |tx| {
            async {
                let inserted = bind_new_token!(sqlx::query(INSERT_IF_ABSENT), id, token)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| insert_error(e, token))?;
                if let Some(row) = inserted {
                    return Ok(Some((rows::token(&row, 0)?, true)));
                }
                // The pair has a token. On PostgreSQL (READ COMMITTED) this statement sees the
                // row a concurrent transaction committed, even though ours began before it.
                let existing = sqlx::query(FOR_PAIR)
                    .bind(token.user_id.0)
                    .bind(token.client_id.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                Ok(rows::maybe(existing, rows::token)?.map(|t| (t, false)))
            }
            .await
        })
    }
}

impl SqlStore {
    /// One attempt of [`TokenStore::create_device_token`] with the id `id`.
    async fn try_create_device(
        &self,
        id: i64,
        token: &NewToken,
        max_devices: u32,
        on_limit: OnDeviceLimit,
    ) -> Result<DeviceToken, StoreError> {
        let lock_user = self.backend() == crate::Backend::Postgres;
        in_write_transaction!(self, |tx| {
            async {
                if lock_user {
                    sqlx::query(LOCK_USER).bind(token.user_id.0).fetch_optional(&mut *tx).await.map_err(from_sqlx)?;
                }
                let held = sqlx::query(DEVICES_LRU)
                    .bind(token.user_id.0)
                    .bind(token.client_id.0)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                let held = rows::all(&held, rows::token)?;
                let excess = (held.len() + 1).saturating_sub(max_devices as usize);
                if excess > 0 && on_limit == OnDeviceLimit::Refuse {
                    return Ok(DeviceToken::AtLimit);
                }
                let evicted: Vec<AuthToken> = held.into_iter().take(excess).collect();
                for old in &evicted {
                    sqlx::query(DELETE).bind(old.id.0).execute(&mut *tx).await.map_err(from_sqlx)?;
                }
                let row = bind_new_token!(sqlx::query(INSERT_DEVICE), id, token)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| insert_error(e, token))?;
                Ok(DeviceToken::Created { token: rows::token(&row, 0)?, evicted })
            }
            .await
        })
    }
}

#[async_trait]
impl TokenStore for SqlStore {
    /// Answers only when the database is reachable *and* its schema is the one this binary
    /// expects: a reachable but empty, unmigrated or newer database is not ready.
    async fn ping(&self) -> Result<(), StoreError> {
        self.check_schema().await
    }

    async fn create_token(&self, token: NewToken) -> Result<AuthToken, StoreError> {
        let result = with_fresh_id!(|id| {
            with_writer!(self, |pool| {
                match bind_new_token!(sqlx::query(INSERT), id, token).fetch_one(pool).await {
                    Ok(row) => rows::token(&row, 0),
                    Err(e) => Err(insert_error(e, &token)),
                }
            })
        });
        match result {
            Err(e @ StoreError::NotFound(_)) => Err(self.missing_owner(token.user_id, token.client_id, e).await),
            other => other,
        }
    }

    async fn get_or_create_token(&self, token: NewToken) -> Result<(AuthToken, bool), StoreError> {
        // Only PostgreSQL can come back empty-handed: the pair's token was deleted between our
        // INSERT finding it and our SELECT looking for it. Trying again then inserts ours.
        for _ in 0..3 {
            match with_fresh_id!(|id| self.try_get_or_create(id, &token).await) {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => continue,
                Err(e @ StoreError::NotFound(_)) => {
                    return Err(self.missing_owner(token.user_id, token.client_id, e).await);
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(format!(
            "the token of user {} for client {} kept changing; try again",
            token.user_id, token.client_id
        )))
    }

    async fn create_device_token(
        &self,
        token: NewToken,
        max_devices: u32,
        on_limit: OnDeviceLimit,
    ) -> Result<DeviceToken, StoreError> {
        // SQLite: BEGIN IMMEDIATE runs one writer at a time. PostgreSQL: the user's row lock
        // serialises the user's device logins (READ COMMITTED then sees every committed token).
        let result = with_fresh_id!(|id| self.try_create_device(id, &token, max_devices, on_limit).await);
        match result {
            Err(e @ StoreError::NotFound(_)) => Err(self.missing_owner(token.user_id, token.client_id, e).await),
            other => other,
        }
    }

    async fn keep_one_token_per_pair(&self, client: ClientId) -> Result<Vec<AuthToken>, StoreError> {
        let mut deleted = in_write_transaction!(self, |tx| {
            async {
                let gone = sqlx::query(DELETE_ALL_BUT_LATEST).bind(client.0).fetch_all(&mut *tx).await;
                let gone = rows::all(&gone.map_err(from_sqlx)?, rows::token)?;
                sqlx::query(MAKE_PAIR_TOKENS).bind(client.0).execute(&mut *tx).await.map_err(from_sqlx)?;
                Ok(gone)
            }
            .await
        })?;
        deleted.sort_by_key(|t| (t.created, t.id));
        Ok(deleted)
    }

    async fn token_by_id(&self, id: TokenId) -> Result<Option<AuthToken>, StoreError> {
        with_reader!(self, |pool| {
            rows::maybe(sqlx::query(BY_ID).bind(id.0).fetch_optional(pool).await.map_err(from_sqlx)?, rows::token)
        })
    }

    async fn token_by_digest(&self, digest: &TokenDigest) -> Result<Option<AuthToken>, StoreError> {
        with_reader!(self, |pool| {
            rows::maybe(
                sqlx::query(BY_DIGEST).bind(&digest.as_bytes()[..]).fetch_optional(pool).await.map_err(from_sqlx)?,
                rows::token,
            )
        })
    }

    async fn token_for(&self, user: UserId, client: ClientId) -> Result<Option<AuthToken>, StoreError> {
        with_reader!(self, |pool| {
            rows::maybe(
                sqlx::query(FOR_PAIR).bind(user.0).bind(client.0).fetch_optional(pool).await.map_err(from_sqlx)?,
                rows::token,
            )
        })
    }

    async fn list_tokens(&self, filter: TokenFilter) -> Result<Vec<AuthToken>, StoreError> {
        let sql = format!(
            concat!("SELECT ", token_columns!(), " FROM auth_tokens{} ORDER BY created, id"),
            filter_clause(filter, self.backend())
        );
        with_reader!(self, |pool| {
            let query = bind_filter!(sqlx::query(&sql), filter);
            rows::all(&query.fetch_all(pool).await.map_err(from_sqlx)?, rows::token)
        })
    }

    async fn count_tokens(&self, filter: TokenFilter) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM auth_tokens{}", filter_clause(filter, self.backend()));
        let count: i64 = with_reader!(self, |pool| {
            bind_filter!(sqlx::query_scalar::<_, i64>(&sql), filter).fetch_one(pool).await.map_err(from_sqlx)?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError> {
        with_writer!(self, |pool| {
            Ok(sqlx::query(DELETE).bind(id.0).execute(pool).await.map_err(from_sqlx)?.rows_affected() > 0)
        })
    }

    async fn delete_tokens(&self, filter: TokenFilter) -> Result<Vec<AuthToken>, StoreError> {
        let sql = format!(
            concat!("DELETE FROM auth_tokens{} RETURNING ", token_columns!()),
            filter_clause(filter, self.backend())
        );
        let mut deleted = with_writer!(self, |pool| {
            let query = bind_filter!(sqlx::query(&sql), filter);
            rows::all(&query.fetch_all(pool).await.map_err(from_sqlx)?, rows::token)?
        });
        // RETURNING promises no order; callers get the listing order.
        deleted.sort_by_key(|t| (t.created, t.id));
        Ok(deleted)
    }

    async fn extend_expiry(
        &self,
        id: TokenId,
        expiry: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_writer!(self, |pool| {
            let done =
                sqlx::query(EXTEND_EXPIRY).bind(id.0).bind(expiry.map(micros)).bind(micros(now)).execute(pool).await;
            Ok(done.map_err(from_sqlx)?.rows_affected() > 0)
        })
    }

    async fn set_expiry(&self, id: TokenId, expiry: Option<DateTime<Utc>>) -> Result<bool, StoreError> {
        with_writer!(self, |pool| {
            let done = sqlx::query(SET_EXPIRY).bind(id.0).bind(expiry.map(micros)).execute(pool).await;
            Ok(done.map_err(from_sqlx)?.rows_affected() > 0)
        })
    }

    async fn record_last_used(&self, uses: &[(TokenId, DateTime<Utc>)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        // Tokens deleted since their use was buffered simply match no row.
        in_write_transaction!(self, |tx| {
            async {
                for (id, at) in uses {
                    sqlx::query(TOUCH).bind(id.0).bind(micros(*at)).execute(&mut *tx).await.map_err(from_sqlx)?;
                }
                Ok(())
            }
            .await
        })
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        with_writer!(self, |pool| {
            Ok(sqlx::query(PURGE).bind(micros(now)).execute(pool).await.map_err(from_sqlx)?.rows_affected())
        })
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn latest_invalidation(&self) -> Result<i64, StoreError> {
        with_reader!(self, |pool| {
            sqlx::query_scalar::<_, i64>(LATEST_INVALIDATION).fetch_one(pool).await.map_err(from_sqlx)
        })
    }

    async fn invalidations_after(&self, after: i64) -> Result<Vec<(i64, Invalidation)>, StoreError> {
        with_reader!(self, |pool| {
            let found = sqlx::query(INVALIDATIONS_AFTER).bind(after).fetch_all(pool).await.map_err(from_sqlx)?;
            rows::all(&found, rows::invalidation)
        })
    }

    async fn prune_invalidations(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        with_writer!(self, |pool| {
            Ok(sqlx::query(PRUNE_INVALIDATIONS)
                .bind(before.timestamp())
                .execute(pool)
                .await
                .map_err(from_sqlx)?
                .rows_affected())
        })
    }

    /// One round trip: the token joined with its user and client.
    async fn token_with_owner(&self, digest: &TokenDigest) -> Result<Option<TokenWithOwner>, StoreError> {
        #[cfg(feature = "sqlite")]
        if let crate::Pools::Sqlite { lookup, .. } = &self.pools
            && let Some(answer) = lookup.token_with_owner(digest)
        {
            return answer;
        }
        with_reader!(self, |pool| {
            let row =
                sqlx::query(WITH_OWNER).bind(&digest.as_bytes()[..]).fetch_optional(pool).await.map_err(from_sqlx)?;
            rows::maybe(row, |row, _| {
                Ok(TokenWithOwner {
                    token: rows::token(row, 0)?,
                    user: rows::user(row, TOKEN_WIDTH)?,
                    client: rows::client(row, TOKEN_WIDTH + USER_WIDTH)?,
                })
            })
        })
    }

    async fn search_tokens(&self, search: &tessera_core::TokenSearch) -> Result<tessera_core::TokenPage, StoreError> {
        crate::search::search_tokens(self, search).await
    }

    /// One round trip: both rows side by side, either half NULL when that row does not exist.
    async fn user_and_client(
        &self,
        user: UserId,
        client: ClientId,
    ) -> Result<(Option<User>, Option<Client>), StoreError> {
        with_reader!(self, |pool| {
            let row =
                sqlx::query(USER_AND_CLIENT).bind(user.0).bind(client.0).fetch_one(pool).await.map_err(from_sqlx)?;
            // The id columns are NOT NULL in their tables: NULL here means "no such row".
            let user = match row.opt_int(0)? {
                Some(_) => Some(rows::user(&row, 0)?),
                None => None,
            };
            let client = match row.opt_int(USER_WIDTH)? {
                Some(_) => Some(rows::client(&row, USER_WIDTH)?),
                None => None,
            };
            Ok((user, client))
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_invalidation_read_limit_is_the_core_constant() {
        let limit = format!("LIMIT {}", tessera_core::store::MAX_INVALIDATIONS_PER_READ);
        assert!(super::INVALIDATIONS_AFTER.ends_with(&limit), "{}", super::INVALIDATIONS_AFTER);
    }
}
