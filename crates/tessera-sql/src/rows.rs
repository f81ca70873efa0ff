//! Rows to domain types and back. Both drivers decode through [`RowExt`], so the mapping is written
//! once; a stored value that does not make sense (a corrupt rate, a 31-byte digest, a TTL of zero)
//! becomes a [`StoreError::Backend`] naming the row and column, never a panic and never a silently
//! different value.

use chrono::{DateTime, Utc};
use sqlx::Row;
#[cfg(feature = "postgres")]
use sqlx::postgres::PgRow;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::SqliteRow;
use tessera_core::store::{Invalidation, StoreError};
use tessera_core::{
    AuthToken, Client, ClientId, ClientName, Devices, KeyId, Rate, TokenDigest, TokenId, TokenSeed, Ttl, User, UserId,
    Username,
};

/// The columns of `users`, in the order [`user`] decodes them.
macro_rules! user_columns {
    () => {
        "id, username, password_hash, is_active, is_staff, created"
    };
}

/// The columns of `clients`, in the order [`client`] decodes them.
macro_rules! client_columns {
    () => {
        "id, name, token_ttl_secs, throttle_rate, sliding_expiry, max_lifetime_secs, description, created, devices, \
         max_devices, on_device_limit"
    };
}

/// The columns of `auth_tokens`, in the order [`token`] decodes them.
macro_rules! token_columns {
    () => {
        "id, user_id, client_id, digest, seed, created, expiry, last_used, user_agent, ip, key_id"
    };
}

pub(crate) use {client_columns, token_columns, user_columns};

/// How many columns [`user`] reads.
pub(crate) const USER_WIDTH: usize = 6;
/// How many columns [`token`] reads.
pub(crate) const TOKEN_WIDTH: usize = 11;

/// Typed column access shared by both drivers' rows. `str` and `blob` borrow from the row: a
/// column that is parsed (a name, a rate, a key id) or copied into a fixed array (a digest) needs
/// no `String` or `Vec` of its own — on the uncached authenticator's path, per request.
pub(crate) trait RowExt {
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn str(&self, i: usize) -> Result<&str, StoreError>;
    fn opt_str(&self, i: usize) -> Result<Option<&str>, StoreError>;
    fn blob(&self, i: usize) -> Result<&[u8], StoreError>;
    fn flag(&self, i: usize) -> Result<bool, StoreError>;
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError>;
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn int(&self, i: usize) -> Result<i64, StoreError> {
                self.try_get(i).map_err(decode_error)
            }
            fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
                self.try_get(i).map_err(decode_error)
            }
            fn text(&self, i: usize) -> Result<String, StoreError> {
                self.try_get(i).map_err(decode_error)
            }
            fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
                self.try_get(i).map_err(decode_error)
            }
            fn str(&self, i: usize) -> Result<&str, StoreError> {
                self.try_get(i).map_err(decode_error)
            }
            fn opt_str(&self, i: usize) -> Result<Option<&str>, StoreError> {
                self.try_get(i).map_err(decode_error)
            }
            fn blob(&self, i: usize) -> Result<&[u8], StoreError> {
                self.try_get(i).map_err(decode_error)
            }
            fn flag(&self, i: usize) -> Result<bool, StoreError> {
                self.try_get(i).map_err(decode_error)
            }
            fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
                self.try_get(i).map_err(decode_error)
            }
        }
    };
}

#[cfg(feature = "sqlite")]
impl_row_ext!(SqliteRow);
#[cfg(feature = "postgres")]
impl_row_ext!(PgRow);

fn decode_error(err: sqlx::Error) -> StoreError {
    StoreError::Backend(format!("a stored row could not be read: {err}"))
}

fn corrupt(table: &str, id: i64, column: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{table} row {id} has an invalid {column}: {why}"))
}

/// A timestamp as stored: microseconds since the Unix epoch. Sub-microsecond precision is dropped.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A lifetime as stored: whole seconds, `None` for never.
pub(crate) fn ttl_secs(ttl: Ttl) -> Option<i64> {
    ttl.as_secs()
}

/// A cap on the lifetime as stored. `Some(Ttl::Never)` — no cap — is stored like `None`.
pub(crate) fn cap_secs(cap: Option<Ttl>) -> Option<i64> {
    cap.and_then(|c| c.as_secs())
}

fn time(table: &str, id: i64, column: &str, v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| corrupt(table, id, column, format!("{v} is out of range")))
}

fn opt_time(table: &str, id: i64, column: &str, v: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    v.map(|v| time(table, id, column, v)).transpose()
}

/// A stored lifetime: `NULL` is never; zero or negative is corruption, not "never" — a corrupt
/// value must not quietly turn into tokens that never expire.
fn ttl(table: &str, id: i64, column: &str, v: Option<i64>) -> Result<Ttl, StoreError> {
    match v {
        None => Ok(Ttl::Never),
        Some(s) if s > 0 => Ok(Ttl::from_secs(Some(s))),
        Some(s) => Err(corrupt(table, id, column, format!("{s} seconds is not a positive lifetime"))),
    }
}

/// Decodes a user from the [`user_columns`] starting at column `at`.
pub(crate) fn user(row: &impl RowExt, at: usize) -> Result<User, StoreError> {
    let id = row.int(at)?;
    Ok(User {
        id: UserId(id),
        username: Username::stored(row.str(at + 1)?).map_err(|e| corrupt("users", id, "username", e))?,
        password_hash: row.text(at + 2)?,
        is_active: row.flag(at + 3)?,
        is_staff: row.flag(at + 4)?,
        created: time("users", id, "created", row.int(at + 5)?)?,
    })
}

/// Decodes a client from the [`client_columns`] starting at column `at`.
pub(crate) fn client(row: &impl RowExt, at: usize) -> Result<Client, StoreError> {
    let id = row.int(at)?;
    let throttle_rate = row
        .opt_str(at + 3)?
        .map(|r| r.parse::<Rate>().map_err(|e| corrupt("clients", id, "throttle_rate", e)))
        .transpose()?;
    let max_lifetime = match row.opt_int(at + 5)? {
        None => None,
        secs => Some(ttl("clients", id, "max_lifetime_secs", secs)?),
    };
    Ok(Client {
        id: ClientId(id),
        name: row.str(at + 1)?.parse::<ClientName>().map_err(|e| corrupt("clients", id, "name", e))?,
        token_ttl: ttl("clients", id, "token_ttl_secs", row.opt_int(at + 2)?)?,
        throttle_rate,
        sliding_expiry: row.flag(at + 4)?,
        max_lifetime,
        description: row.text(at + 6)?,
        created: time("clients", id, "created", row.int(at + 7)?)?,
        devices: devices(id, row.str(at + 8)?, row.int(at + 9)?, row.str(at + 10)?)?,
    })
}

/// A client's device policy from its three columns.
fn devices(id: i64, devices: &str, max_devices: i64, on_limit: &str) -> Result<Devices, StoreError> {
    if devices == "one" {
        return Ok(Devices::One);
    }
    let max_devices = u32::try_from(max_devices).map_err(|e| corrupt("clients", id, "max_devices", e))?;
    let on_limit = on_limit.parse().map_err(|e| corrupt("clients", id, "on_device_limit", e))?;
    Devices::from_parts(devices, Some(max_devices), Some(on_limit)).map_err(|e| corrupt("clients", id, "devices", e))
}

/// A device policy as its three columns (`devices`, `max_devices`, `on_device_limit`); `one`
/// keeps the column defaults for the other two.
pub(crate) fn devices_columns(devices: Devices) -> (&'static str, i64, &'static str) {
    match devices {
        Devices::One => ("one", i64::from(tessera_core::model::DEFAULT_MAX_DEVICES), "evict-oldest"),
        Devices::Many { max_devices, on_device_limit } => ("many", i64::from(max_devices), on_device_limit.as_str()),
    }
}

/// Decodes a token from the [`token_columns`] starting at column `at`.
pub(crate) fn token(row: &impl RowExt, at: usize) -> Result<AuthToken, StoreError> {
    let id = row.int(at)?;
    let digest = row.blob(at + 3)?;
    let seed = row.blob(at + 4)?;
    Ok(AuthToken {
        id: TokenId(id),
        user_id: UserId(row.int(at + 1)?),
        client_id: ClientId(row.int(at + 2)?),
        digest: TokenDigest::from_slice(digest)
            .ok_or_else(|| corrupt("auth_tokens", id, "digest", format!("{} bytes instead of 32", digest.len())))?,
        seed: TokenSeed::from_slice(seed)
            .ok_or_else(|| corrupt("auth_tokens", id, "seed", format!("{} bytes instead of 32", seed.len())))?,
        created: time("auth_tokens", id, "created", row.int(at + 5)?)?,
        expiry: opt_time("auth_tokens", id, "expiry", row.opt_int(at + 6)?)?,
        last_used: opt_time("auth_tokens", id, "last_used", row.opt_int(at + 7)?)?,
        user_agent: row.opt_text(at + 8)?,
        ip: row.opt_text(at + 9)?,
        key_id: row.str(at + 10)?.parse::<KeyId>().map_err(|e| corrupt("auth_tokens", id, "key_id", e))?,
    })
}

/// Decodes every row with `decode`.
pub(crate) fn all<R, T>(rows: &[R], decode: impl Fn(&R, usize) -> Result<T, StoreError>) -> Result<Vec<T>, StoreError> {
    rows.iter().map(|r| decode(r, 0)).collect()
}

/// Decodes the row, if any, with `decode`.
pub(crate) fn maybe<R, T>(
    row: Option<R>,
    decode: impl Fn(&R, usize) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    row.map(|r| decode(&r, 0)).transpose()
}

/// Decodes an invalidation-log row: `seq, digest, user_id, client_id`.
pub(crate) fn invalidation(row: &impl RowExt, at: usize) -> Result<(i64, Invalidation), StoreError> {
    let seq = row.int(at)?;
    let digest: Option<Vec<u8>> = row.opt_bytes(at + 1)?;
    let change = match (digest, row.opt_int(at + 2)?, row.opt_int(at + 3)?) {
        (Some(d), _, _) => Invalidation::Token(
            TokenDigest::from_slice(&d)
                .ok_or_else(|| corrupt("invalidations", seq, "digest", format!("{} bytes instead of 32", d.len())))?,
        ),
        (None, Some(user), _) => Invalidation::User(UserId(user)),
        (None, None, Some(client)) => Invalidation::Client(ClientId(client)),
        (None, None, None) => return Err(corrupt("invalidations", seq, "row", "it names nothing")),
    };
    Ok((seq, change))
}
