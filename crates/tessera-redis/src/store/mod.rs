//! [`RedisTokenStore`]: tokens in Redis, keyed by their digest, with Redis's own expiry.

mod record;
mod scripts;

use crate::connection::{RedisConnection, RedisError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use record::{Row, micros, optional};
use std::collections::HashSet;
use std::time::Duration;
use tessera_core::store::{DeviceToken, StoreError, TokenFilter, TokenStore};
use tessera_core::{AuthToken, ClientId, NewToken, OnDeviceLimit, TokenDigest, TokenId, UserId};

pub(crate) use record::{hex, unhex32};

/// How the token store keeps tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTokenStoreConfig {
    /// How long Redis keeps a token after it expired, so that its owner is still told "The given
    /// token has expired." (durin's message) rather than "Invalid token."; then Redis forgets it.
    /// Default 1 day.
    pub expired_grace: Duration,
}

impl Default for RedisTokenStoreConfig {
    fn default() -> Self {
        Self { expired_grace: Duration::from_secs(24 * 3600) }
    }
}

/// Tokens in Redis: djforge-redis-multitokens' idea (one token per device, in Redis, never in
/// plaintext), with durin's one-token-per-(user, client) rule kept atomically.
///
/// Users and clients stay in the SQL store: combine the two with
/// [`SplitStore`](tessera_core::split::SplitStore). Every mutation is one Lua script; the ones that
/// delete a token or bring its expiry forward publish the invalidation on the bus channel in the
/// same script (see [`crate::RedisBus`]), so a revocation cannot happen without its message.
/// (A [`NotifyingStore`](tessera_core::bus::NotifyingStore) around the whole store publishes them
/// again; the duplicates are harmless.) Token changes do not reach the SQL store's invalidation
/// log: with tokens in Redis, the bus is what tells other instances about revocations.
///
/// Listing or deleting *every* token (no filter) and purging go through the keys with SCAN, a page
/// at a time; everything else reads or writes one token's keys or one index set.
///
/// See the crate docs for the key layout.
#[derive(Debug, Clone)]
pub struct RedisTokenStore {
    conn: RedisConnection,
    grace_ms: i64,
}

/// Last uses per script call.
const BATCH: usize = 500;

impl RedisTokenStore {
    /// A token store on `conn` (its key prefix included).
    pub fn new(conn: RedisConnection, config: RedisTokenStoreConfig) -> Self {
        let grace_ms = i64::try_from(config.expired_grace.as_millis()).unwrap_or(i64::MAX / 4);
        Self { conn, grace_ms }
    }

    /// The connection.
    pub fn connection(&self) -> &RedisConnection {
        &self.conn
    }

    /// When Redis should forget a token expiring at `expiry`: the expiry plus the grace period, in
    /// milliseconds since the epoch, rounded up (never before the expiry); `""` for never.
    fn expire_at(&self, expiry: Option<DateTime<Utc>>) -> String {
        match expiry {
            None => String::new(),
            Some(e) => {
                let ms = e.timestamp_micros().div_euclid(1000) + i64::from(e.timestamp_micros().rem_euclid(1000) > 0);
                // Far-future expiries are clamped to the year 9999, which PEXPIREAT accepts.
                ms.saturating_add(self.grace_ms).min(253_402_300_799_000).to_string()
            }
        }
    }

    fn args(&self, rest: impl IntoIterator<Item = String>) -> Vec<String> {
        std::iter::once(self.conn.key_prefix().to_string()).chain(rest).collect()
    }

    async fn read(&self, what: &str, selection: Vec<String>) -> Result<Vec<AuthToken>, RedisError> {
        let rows: Vec<Row> = self.conn.eval(what, &scripts::READ, &[], &self.args(selection)).await?;
        rows.into_iter().map(record::token).collect()
    }

    async fn read_one(&self, what: &str, selection: Vec<String>) -> Result<Option<AuthToken>, StoreError> {
        Ok(self.read(what, selection).await?.into_iter().next())
    }

    async fn delete(&self, what: &str, selection: Vec<String>) -> Result<Vec<AuthToken>, RedisError> {
        let rows: Vec<Row> = self.conn.eval(what, &scripts::DELETE, &[], &self.args(selection)).await?;
        rows.into_iter().map(record::token).collect()
    }

    /// The digests of every stored token, a SCAN page at a time: `None` when the scan is over.
    async fn digest_page(&self, cursor: &mut Option<u64>) -> Result<Option<Vec<String>>, RedisError> {
        let Some(at) = *cursor else { return Ok(None) };
        let prefix_len = self.conn.key_prefix().len() + "tok:".len();
        let (next, keys) = self.conn.scan_page(&self.conn.key_pattern("tok:*"), at).await?;
        *cursor = (next != 0).then_some(next);
        Ok(Some(keys.into_iter().filter_map(|k| k.get(prefix_len..).map(str::to_string)).collect()))
    }

    /// Lists or deletes every stored token (of one server key, when `filter` says so), a SCAN page
    /// at a time. Each page is atomic; the whole is not, as a SCAN cannot be: a token that exists
    /// throughout is always covered, one created meanwhile may or may not be. (A server key's
    /// tokens are only created while it is current, and `tessera key retire` refuses the current
    /// key, so retiring one misses none.)
    async fn every_token(&self, what: &str, filter: TokenFilter, delete: bool) -> Result<Vec<AuthToken>, StoreError> {
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        self.each_page(what, filter, delete, |batch| found.extend(batch.into_iter().filter(|t| seen.insert(t.id))))
            .await?;
        Ok(found)
    }

    /// Hands `on_page` the tokens of each SCAN page (read, or deleted with `delete`); a SCAN may
    /// return a key twice, so a page may repeat a token of an earlier one.
    async fn each_page(
        &self,
        what: &str,
        filter: TokenFilter,
        delete: bool,
        mut on_page: impl FnMut(Vec<AuthToken>) + Send,
    ) -> Result<(), StoreError> {
        let mut cursor = Some(0);
        while let Some(digests) = self.digest_page(&mut cursor).await? {
            if digests.is_empty() {
                continue;
            }
            let selection: Vec<String> = key_selection(filter)
                .into_iter()
                .chain(std::iter::once("digests".to_string()))
                .chain(digests)
                .collect();
            on_page(if delete { self.delete(what, selection).await? } else { self.read(what, selection).await? });
        }
        Ok(())
    }
}

/// The CREATE script's "at the device limit" status, carried from `insert` to its caller.
const AT_LIMIT: &str = "the user holds the client's device limit";

/// The scripts' selection for a filter on a user or client (`None`: every token, by SCAN), after
/// `key K` when it is for one server key's tokens.
fn selection(filter: TokenFilter) -> Option<Vec<String>> {
    let by_owner: Vec<String> = match (filter.user, filter.client) {
        (None, None) => return None,
        (Some(u), Some(c)) => vec!["user_client".into(), u.to_string(), c.to_string()],
        (Some(u), None) => vec!["user".into(), u.to_string()],
        (None, Some(c)) => vec!["client".into(), c.to_string()],
    };
    Some(key_selection(filter).into_iter().chain(by_owner).collect())
}

/// `key K` for a filter on one server key's tokens, else nothing.
fn key_selection(filter: TokenFilter) -> Vec<String> {
    filter.key.map(|k| vec!["key".to_string(), k.to_string()]).unwrap_or_default()
}

fn listing_order(mut tokens: Vec<AuthToken>) -> Vec<AuthToken> {
    tokens.sort_by_key(|t| (t.created, t.id));
    tokens
}

impl RedisTokenStore {
    /// Stores `token` under a fresh random id, drawing again while the id is taken (a chance of
    /// one in 2^53 per live token); four taken draws in a row report the store unavailable.
    /// `device` is `None` for the pair's token, or the device limit and policy of a `many` client.
    async fn insert(
        &self,
        token: &NewToken,
        mode: &str,
        device: Option<(u32, OnDeviceLimit)>,
    ) -> Result<(AuthToken, bool, Vec<AuthToken>), StoreError> {
        for _ in 0..4 {
            let mut args = self.args([
                mode.to_string(),
                hex(token.digest.as_bytes()),
                token.user_id.to_string(),
                token.client_id.to_string(),
                hex(token.seed.as_bytes()),
                micros(token.created),
                token.expiry.map(micros).unwrap_or_default(),
                optional(token.user_agent.as_deref()),
                optional(token.ip.as_deref()),
                self.expire_at(token.expiry),
                tessera_core::model::fresh_id().to_string(),
                token.key_id.to_string(),
            ]);
            if let Some((max_devices, on_limit)) = device {
                args.extend([max_devices.to_string(), on_limit.as_str().to_string()]);
            }
            let (status, row, evicted): (i64, Row, Vec<Row>) =
                self.conn.eval("store a token", &scripts::CREATE, &[], &args).await?;
            return match status {
                0 | 1 => {
                    let evicted = evicted.into_iter().map(record::token).collect::<Result<Vec<_>, _>>()?;
                    Ok((record::token(row)?, status == 1, evicted))
                }
                2 => Err(StoreError::Conflict(format!(
                    "user {} already has a token for client {}",
                    token.user_id, token.client_id
                ))),
                3 => Err(StoreError::Conflict("a token with this digest already exists".into())),
                4 => continue,
                5 => Err(StoreError::Conflict(AT_LIMIT.into())),
                other => Err(StoreError::Backend(format!("the token script answered status {other}"))),
            };
        }
        Err(StoreError::Unavailable("every freshly drawn token id was taken; try again".into()))
    }

    async fn change_expiry(
        &self,
        what: &str,
        id: TokenId,
        expiry: Option<DateTime<Utc>>,
        now: Option<DateTime<Utc>>,
        publish: &str,
    ) -> Result<bool, StoreError> {
        let args = self.args([
            id.to_string(),
            expiry.map(micros).unwrap_or_default(),
            self.expire_at(expiry),
            now.map(micros).unwrap_or_default(),
            publish.to_string(),
        ]);
        let changed: i64 = self.conn.eval(what, &scripts::SET_EXPIRY, &[], &args).await?;
        Ok(changed == 1)
    }
}

#[async_trait]
impl TokenStore for RedisTokenStore {
    /// One PING.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.conn.ping().await?)
    }

    async fn create_token(&self, token: NewToken) -> Result<AuthToken, StoreError> {
        Ok(self.insert(&token, "create", None).await?.0)
    }

    async fn get_or_create_token(&self, token: NewToken) -> Result<(AuthToken, bool), StoreError> {
        let (token, created, _) = self.insert(&token, "get_or_create", None).await?;
        Ok((token, created))
    }

    async fn create_device_token(
        &self,
        token: NewToken,
        max_devices: u32,
        on_limit: OnDeviceLimit,
    ) -> Result<DeviceToken, StoreError> {
        match self.insert(&token, "device", Some((max_devices, on_limit))).await {
            Ok((token, _, evicted)) => Ok(DeviceToken::Created { token, evicted }),
            Err(StoreError::Conflict(m)) if m == AT_LIMIT => Ok(DeviceToken::AtLimit),
            Err(e) => Err(e),
        }
    }

    async fn keep_one_token_per_pair(&self, client: ClientId) -> Result<Vec<AuthToken>, StoreError> {
        let args = self.args([client.to_string()]);
        let rows: Vec<Row> = self.conn.eval("keep one token per pair", &scripts::KEEP_ONE_PER_PAIR, &[], &args).await?;
        let deleted = rows.into_iter().map(record::token).collect::<Result<Vec<_>, _>>()?;
        Ok(listing_order(deleted))
    }

    async fn token_by_id(&self, id: TokenId) -> Result<Option<AuthToken>, StoreError> {
        self.read_one("read a token by id", vec!["id".into(), id.to_string()]).await
    }

    async fn token_by_digest(&self, digest: &TokenDigest) -> Result<Option<AuthToken>, StoreError> {
        self.read_one("read a token by digest", vec!["digest".into(), hex(digest.as_bytes())]).await
    }

    async fn token_for(&self, user: UserId, client: ClientId) -> Result<Option<AuthToken>, StoreError> {
        self.read_one("read a pair's token", vec!["pair".into(), user.to_string(), client.to_string()]).await
    }

    /// Legacy tokens (`filter.legacy`) have no index of their own: the scripts select by owner
    /// or key, and the seed is checked here.
    async fn list_tokens(&self, filter: TokenFilter) -> Result<Vec<AuthToken>, StoreError> {
        let mut tokens = match selection(filter) {
            Some(selection) => self.read("list tokens", selection).await?,
            None => self.every_token("list tokens", filter, false).await?,
        };
        tokens.retain(|t| filter.matches(t));
        Ok(listing_order(tokens))
    }

    /// With a user or client: that index set's tokens, read and counted. Without: a SCAN, a page at
    /// a time, keeping only the ids seen (a SCAN may return a key twice).
    async fn count_tokens(&self, filter: TokenFilter) -> Result<u64, StoreError> {
        if filter.legacy {
            return Ok(self.list_tokens(filter).await?.len() as u64);
        }
        if let Some(selection) = selection(filter) {
            return Ok(self.read("count tokens", selection).await?.len() as u64);
        }
        let mut seen = HashSet::new();
        self.each_page("count tokens", filter, false, |batch| seen.extend(batch.into_iter().map(|t| t.id))).await?;
        Ok(seen.len() as u64)
    }

    async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError> {
        Ok(!self.delete("delete a token", vec!["id".into(), id.to_string()]).await?.is_empty())
    }

    async fn delete_tokens(&self, filter: TokenFilter) -> Result<Vec<AuthToken>, StoreError> {
        if filter.legacy {
            // The scripts cannot select by seed: the legacy tokens are found, then deleted one by
            // one (each atomically; one created meanwhile may be missed, as with a SCAN).
            let mut deleted = Vec::new();
            for token in self.list_tokens(filter).await? {
                if self.delete_token(token.id).await? {
                    deleted.push(token);
                }
            }
            return Ok(deleted);
        }
        let tokens = match selection(filter) {
            Some(selection) => self.delete("delete tokens", selection).await?,
            None => self.every_token("delete tokens", filter, true).await?,
        };
        Ok(listing_order(tokens))
    }

    async fn extend_expiry(
        &self,
        id: TokenId,
        expiry: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // A later expiry cannot make a cached verdict unsafe; an earlier one is published.
        self.change_expiry("extend a token's expiry", id, expiry, Some(now), "forward").await
    }

    async fn set_expiry(&self, id: TokenId, expiry: Option<DateTime<Utc>>) -> Result<bool, StoreError> {
        // An admin's change: every instance re-reads the token, whichever way it moved.
        self.change_expiry("set a token's expiry", id, expiry, None, "always").await
    }

    async fn record_last_used(&self, uses: &[(TokenId, DateTime<Utc>)]) -> Result<(), StoreError> {
        for chunk in uses.chunks(BATCH) {
            let args = self.args(chunk.iter().flat_map(|(id, at)| [id.to_string(), micros(*at)]));
            let _moved: i64 = self.conn.eval("record last uses", &scripts::RECORD_LAST_USED, &[], &args).await?;
        }
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = micros(now);
        let mut purged: u64 = 0;
        let mut cursor = Some(0);
        while let Some(digests) = self.digest_page(&mut cursor).await? {
            if digests.is_empty() {
                continue;
            }
            let args = self.args(std::iter::once(now.clone()).chain(digests));
            let n: u64 = self.conn.eval("purge expired tokens", &scripts::PURGE, &[], &args).await?;
            purged += n;
        }
        Ok(purged)
    }
}
