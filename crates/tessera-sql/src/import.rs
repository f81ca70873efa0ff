//! Bulk import (`tessera import durin`): users, clients and legacy tokens written in **one write
//! transaction**, so that an error (or a dry run) leaves nothing behind, and a second run finds
//! everything in place and imports nothing new.
//!
//! This is a store-level path, not the per-row one (`tessera-axum`'s `admin.rs`, which emits an
//! event per change): those methods each commit on their own, so an import through them could
//! stop half-way. The caller records one summarising `Imported` event instead.
//!
//! Rows that exist already (by username, client name, token digest) are compared: identical, they
//! are "already imported"; different, they are a conflict — skipped, or overwritten with
//! `update`. A token whose (user, client) pair already holds a Tessera token is skipped: at most
//! one pair's token per (user, client).

use crate::SqlStore;
use crate::error::from_sqlx;
use crate::rows::{micros, ttl_secs};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;
use tessera_core::model::fresh_id;
use tessera_core::store::StoreError;
use tessera_core::{ClientName, KeyId, NewClient, TokenDigest, TokenSeed, Username};

/// A user to import, with its hash as the source stored it (a Django format, or a "must reset"
/// marker).
#[derive(Clone)]
pub struct ImportUser {
    /// The username.
    pub username: Username,
    /// The password hash to store.
    pub password_hash: String,
    /// Active flag.
    pub is_active: bool,
    /// Staff flag.
    pub is_staff: bool,
    /// When the user joined.
    pub created: DateTime<Utc>,
}

impl std::fmt::Debug for ImportUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportUser").field("username", &self.username).finish_non_exhaustive()
    }
}

/// A client to import.
#[derive(Debug, Clone)]
pub struct ImportClient {
    /// The client.
    pub client: NewClient,
    /// When it was created (durin keeps no such time: the import's).
    pub created: DateTime<Utc>,
}

/// A legacy token to import: its keyed digest (never the token).
#[derive(Debug, Clone)]
pub struct ImportToken {
    /// Its user.
    pub username: Username,
    /// Its client.
    pub client: ClientName,
    /// The keyed digest of the durin token.
    pub digest: TokenDigest,
    /// The server key the digest was made with.
    pub key_id: KeyId,
    /// When durin created it.
    pub created: DateTime<Utc>,
    /// When it expires.
    pub expiry: Option<DateTime<Utc>>,
}

/// Everything to import.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    /// Users.
    pub users: Vec<ImportUser>,
    /// Clients.
    pub clients: Vec<ImportClient>,
    /// Legacy tokens.
    pub tokens: Vec<ImportToken>,
}

/// What the import did with one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Created.
    Created,
    /// Existed with other values and was overwritten (`update`).
    Updated,
    /// Existed with the same values: nothing to do.
    AlreadyImported,
    /// Not imported, and why.
    Skipped(String),
}

/// What an import did (or, dry, would do), row by row.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Users by name.
    pub users: Vec<(String, Outcome)>,
    /// Clients by name.
    pub clients: Vec<(String, Outcome)>,
    /// Tokens by (user, client).
    pub tokens: Vec<(String, String, Outcome)>,
}

impl ImportReport {
    /// How many rows of `rows` had `outcome`.
    pub fn count<'a>(rows: impl IntoIterator<Item = &'a Outcome>, outcome: &Outcome) -> u64 {
        rows.into_iter().filter(|o| *o == outcome).count() as u64
    }
}

const USER_BY_NAME: &str = "SELECT id, password_hash, is_active, is_staff FROM users WHERE username = $1";
const INSERT_USER: &str =
    "INSERT INTO users (id, username, password_hash, is_active, is_staff, created) VALUES ($1, $2, $3, $4, $5, $6)";
const UPDATE_USER: &str = "UPDATE users SET password_hash = $2, is_active = $3, is_staff = $4 WHERE id = $1";
const CLIENT_BY_NAME: &str = "SELECT id, token_ttl_secs, throttle_rate FROM clients WHERE name = $1";
const INSERT_CLIENT: &str = "INSERT INTO clients (id, name, token_ttl_secs, throttle_rate, sliding_expiry, \
     max_lifetime_secs, description, created, devices, max_devices, on_device_limit) \
     VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, 'one', 10, 'evict-oldest')";
const UPDATE_CLIENT: &str = "UPDATE clients SET token_ttl_secs = $2, throttle_rate = $3 WHERE id = $1";
const TOKEN_BY_DIGEST: &str = "SELECT user_id, client_id FROM auth_tokens WHERE digest = $1";
const PAIR_TOKEN: &str = "SELECT id FROM auth_tokens WHERE user_id = $1 AND client_id = $2 AND per_device = 0";
const INSERT_TOKEN: &str = "INSERT INTO auth_tokens (id, user_id, client_id, digest, seed, created, expiry, key_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// `self`, after `f` saw it.
trait Also: Sized {
    fn also(self, f: impl FnOnce(&Self)) -> Self {
        f(&self);
        self
    }
}

impl Also for Outcome {}

/// The marker of a dry run's deliberate rollback.
const DRY_RUN: &str = "dry run: rolled back";

impl SqlStore {
    /// Imports `batch` in one write transaction; with `dry_run` the same transaction is rolled
    /// back, so the report says exactly what a real run would do. `update` overwrites users and
    /// clients that exist with other values. With `tokens` off, tokens are only resolved (a
    /// deployment that keeps tokens in Redis stores them there, after this commits).
    pub async fn import(
        &self,
        batch: &ImportBatch,
        update: bool,
        dry_run: bool,
        tokens: bool,
    ) -> Result<(ImportReport, Vec<ResolvedToken>), StoreError> {
        let mut out = None;
        let result = in_write_transaction!(self, |tx| {
            async {
                let mut report = ImportReport::default();
                let mut user_ids: HashMap<String, i64> = HashMap::new();
                for u in &batch.users {
                    let name = u.username.as_str();
                    let existing =
                        sqlx::query(USER_BY_NAME).bind(name).fetch_optional(&mut *tx).await.map_err(from_sqlx)?;
                    let outcome = match existing {
                        None => {
                            let id = fresh_id();
                            sqlx::query(INSERT_USER)
                                .bind(id)
                                .bind(name)
                                .bind(&u.password_hash)
                                .bind(u.is_active)
                                .bind(u.is_staff)
                                .bind(micros(u.created))
                                .execute(&mut *tx)
                                .await
                                .map_err(from_sqlx)?;
                            user_ids.insert(name.to_string(), id);
                            Outcome::Created
                        }
                        Some(row) => {
                            let id: i64 = row.try_get(0).map_err(from_sqlx)?;
                            let hash: String = row.try_get(1).map_err(from_sqlx)?;
                            let active: bool = row.try_get(2).map_err(from_sqlx)?;
                            let staff: bool = row.try_get(3).map_err(from_sqlx)?;
                            if (hash.as_str(), active, staff) == (u.password_hash.as_str(), u.is_active, u.is_staff) {
                                Outcome::AlreadyImported
                            } else if update {
                                sqlx::query(UPDATE_USER)
                                    .bind(id)
                                    .bind(&u.password_hash)
                                    .bind(u.is_active)
                                    .bind(u.is_staff)
                                    .execute(&mut *tx)
                                    .await
                                    .map_err(from_sqlx)?;
                                Outcome::Updated
                            } else {
                                Outcome::Skipped(
                                    "a user of this name exists in Tessera with another password or flags (--update \
                                     overwrites it)"
                                        .into(),
                                )
                            }
                            .also(|o| {
                                // A conflicting user may be someone else: their durin tokens must
                                // not open the Tessera account, so they are skipped with the user.
                                if !matches!(o, Outcome::Skipped(_)) {
                                    user_ids.insert(name.to_string(), id);
                                }
                            })
                        }
                    };
                    report.users.push((name.to_string(), outcome));
                }

                let mut client_ids: HashMap<String, i64> = HashMap::new();
                for c in &batch.clients {
                    let name = c.client.name.as_str();
                    let ttl = ttl_secs(c.client.token_ttl);
                    let rate = c.client.throttle_rate.map(|r| r.to_string());
                    let existing =
                        sqlx::query(CLIENT_BY_NAME).bind(name).fetch_optional(&mut *tx).await.map_err(from_sqlx)?;
                    let outcome = match existing {
                        None => {
                            let id = fresh_id();
                            sqlx::query(INSERT_CLIENT)
                                .bind(id)
                                .bind(name)
                                .bind(ttl)
                                .bind(rate.as_deref())
                                .bind(c.client.sliding_expiry)
                                .bind(&c.client.description)
                                .bind(micros(c.created))
                                .execute(&mut *tx)
                                .await
                                .map_err(from_sqlx)?;
                            client_ids.insert(name.to_string(), id);
                            Outcome::Created
                        }
                        Some(row) => {
                            let id: i64 = row.try_get(0).map_err(from_sqlx)?;
                            let have_ttl: Option<i64> = row.try_get(1).map_err(from_sqlx)?;
                            let have_rate: Option<String> = row.try_get(2).map_err(from_sqlx)?;
                            if (have_ttl, have_rate.as_deref()) == (ttl, rate.as_deref()) {
                                Outcome::AlreadyImported
                            } else if update {
                                sqlx::query(UPDATE_CLIENT)
                                    .bind(id)
                                    .bind(ttl)
                                    .bind(rate.as_deref())
                                    .execute(&mut *tx)
                                    .await
                                    .map_err(from_sqlx)?;
                                Outcome::Updated
                            } else {
                                Outcome::Skipped(
                                    "a client of this name exists in Tessera with another TTL or rate (--update \
                                     overwrites it)"
                                        .into(),
                                )
                            }
                            .also(|o| {
                                if !matches!(o, Outcome::Skipped(_)) {
                                    client_ids.insert(name.to_string(), id);
                                }
                            })
                        }
                    };
                    report.clients.push((name.to_string(), outcome));
                }

                let mut resolved = Vec::new();
                for t in &batch.tokens {
                    let (user, client) = (t.username.as_str(), t.client.as_str());
                    let ids = user_ids.get(user).copied().zip(client_ids.get(client).copied());
                    let outcome = match ids {
                        None => Outcome::Skipped("its user or client was not imported (see above)".into()),
                        Some((user_id, client_id)) => {
                            let digest = &t.digest.as_bytes()[..];
                            let by_digest = sqlx::query(TOKEN_BY_DIGEST)
                                .bind(digest)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(from_sqlx)?;
                            let pair = sqlx::query(PAIR_TOKEN)
                                .bind(user_id)
                                .bind(client_id)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(from_sqlx)?;
                            if by_digest.is_some() {
                                Outcome::AlreadyImported
                            } else if pair.is_some() {
                                Outcome::Skipped("the user already holds a Tessera token for this client".into())
                            } else if tokens {
                                sqlx::query(INSERT_TOKEN)
                                    .bind(fresh_id())
                                    .bind(user_id)
                                    .bind(client_id)
                                    .bind(digest)
                                    .bind(&TokenSeed::NONE.as_bytes()[..])
                                    .bind(micros(t.created))
                                    .bind(t.expiry.map(micros))
                                    .bind(t.key_id.to_string())
                                    .execute(&mut *tx)
                                    .await
                                    .map_err(from_sqlx)?;
                                Outcome::Created
                            } else {
                                resolved.push(ResolvedToken {
                                    user_id: tessera_core::UserId(user_id),
                                    client_id: tessera_core::ClientId(client_id),
                                    token: t.clone(),
                                });
                                Outcome::Created
                            }
                        }
                    };
                    report.tokens.push((user.to_string(), client.to_string(), outcome));
                }
                out = Some((report, resolved));
                if dry_run { Err(StoreError::Backend(DRY_RUN.into())) } else { Ok(()) }
            }
            .await
        });
        match (result, out) {
            (Ok(()), Some(out)) => Ok(out),
            (Err(StoreError::Backend(msg)), Some(out)) if dry_run && msg == DRY_RUN => Ok(out),
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(StoreError::Backend("the import produced no report".into())),
        }
    }
}

/// A token resolved to its owner's ids, for a token store outside this database.
#[derive(Debug, Clone)]
pub struct ResolvedToken {
    /// The user's id in Tessera.
    pub user_id: tessera_core::UserId,
    /// The client's id in Tessera.
    pub client_id: tessera_core::ClientId,
    /// The token.
    pub token: ImportToken,
}
