//! [`UserStore`] on SQL.

use crate::SqlStore;
use crate::error::{conflict_or, from_sqlx, insert_failed, no_such};
use crate::rows::{self, micros, user_columns};
use async_trait::async_trait;
use chrono::Utc;
use tessera_core::store::{StoreError, UserStore};
use tessera_core::{NewUser, User, UserId, Username};

const INSERT: &str = concat!(
    "INSERT INTO users (id, username, password_hash, is_active, is_staff, created) VALUES ($1, $2, $3, $4, $5, $6) \
     RETURNING ",
    user_columns!()
);
const BY_ID: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
const BY_USERNAME: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE username = $1");
const ALL: &str = concat!("SELECT ", user_columns!(), " FROM users ORDER BY username");
const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";
/// Compare-and-set: the hash a login verified is still the stored one.
const UPGRADE_PASSWORD: &str = "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2";
const SET_ACTIVE: &str = "UPDATE users SET is_active = $2 WHERE id = $1";
const SET_STAFF: &str = "UPDATE users SET is_staff = $2 WHERE id = $1";
const DELETE: &str = "DELETE FROM users WHERE id = $1";

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        // NewUser carries no creation time, so the store stamps it.
        let created = micros(Utc::now());
        let row = with_fresh_id!(|id| {
            with_writer!(self, |pool| {
                let row = sqlx::query(INSERT)
                    .bind(id)
                    .bind(user.username.as_str())
                    .bind(&user.password_hash)
                    .bind(user.is_active)
                    .bind(user.is_staff)
                    .bind(created)
                    .fetch_one(pool)
                    .await
                    .map_err(|e| {
                        insert_failed(e, |e| {
                            conflict_or(e, || format!("a user named '{}' already exists", user.username))
                        })
                    })?;
                rows::user(&row, 0)
            })
        })?;
        Ok(row)
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        with_reader!(self, |pool| {
            rows::maybe(sqlx::query(BY_ID).bind(id.0).fetch_optional(pool).await.map_err(from_sqlx)?, rows::user)
        })
    }

    async fn user_by_username(&self, username: &Username) -> Result<Option<User>, StoreError> {
        // A parsed username holds letters, digits and @.+-_ only, so never the NUL that PostgreSQL
        // refuses.
        with_reader!(self, |pool| {
            rows::maybe(
                sqlx::query(BY_USERNAME).bind(username.as_str()).fetch_optional(pool).await.map_err(from_sqlx)?,
                rows::user,
            )
        })
    }

    async fn search_users(&self, search: &tessera_core::UserSearch) -> Result<tessera_core::UserPage, StoreError> {
        crate::search::search_users(self, search).await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        with_reader!(self, |pool| rows::all(&sqlx::query(ALL).fetch_all(pool).await.map_err(from_sqlx)?, rows::user))
    }

    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError> {
        let changed = with_writer!(self, |pool| {
            sqlx::query(SET_PASSWORD).bind(id.0).bind(hash).execute(pool).await.map_err(from_sqlx)?.rows_affected()
        });
        found(changed, id)
    }

    async fn upgrade_password_hash(&self, id: UserId, old: &str, new: &str) -> Result<bool, StoreError> {
        let changed = with_writer!(self, |pool| {
            sqlx::query(UPGRADE_PASSWORD)
                .bind(id.0)
                .bind(old)
                .bind(new)
                .execute(pool)
                .await
                .map_err(from_sqlx)?
                .rows_affected()
        });
        Ok(changed == 1)
    }

    async fn set_active(&self, id: UserId, active: bool) -> Result<(), StoreError> {
        let changed = with_writer!(self, |pool| {
            sqlx::query(SET_ACTIVE).bind(id.0).bind(active).execute(pool).await.map_err(from_sqlx)?.rows_affected()
        });
        found(changed, id)
    }

    async fn set_staff(&self, id: UserId, staff: bool) -> Result<(), StoreError> {
        let changed = with_writer!(self, |pool| {
            sqlx::query(SET_STAFF).bind(id.0).bind(staff).execute(pool).await.map_err(from_sqlx)?.rows_affected()
        });
        found(changed, id)
    }

    async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
        // The user's tokens go with them (ON DELETE CASCADE), in the same statement.
        let changed = with_writer!(self, |pool| {
            sqlx::query(DELETE).bind(id.0).execute(pool).await.map_err(from_sqlx)?.rows_affected()
        });
        found(changed, id)
    }
}

fn found(rows_affected: u64, id: UserId) -> Result<(), StoreError> {
    if rows_affected == 0 { Err(no_such("user", id.0)) } else { Ok(()) }
}
