//! The storage traits. Every backend (SQLite, PostgreSQL, Redis for tokens) implements them and
//! passes the one shared store test suite.
//!
//! Stores never see a usable token: [`NewToken`] carries the keyed digest and the seed only.
//!
//! No method has a default body. A store that wraps another one (see [`forward_store!`]) must
//! therefore say, for every method, whether it forwards it or does something of its own: a method
//! added here breaks every wrapper's build until each one has decided.
//!
//! [`forward_store!`]: crate::forward_store

use crate::duration::Ttl;
use crate::model::{
    AuthToken, Client, ClientId, ClientName, Devices, NewClient, NewToken, NewUser, OnDeviceLimit, TokenId, User,
    UserId, Username,
};
use crate::rate::Rate;
use crate::search::{TokenPage, TokenSearch, UserPage, UserSearch};
use crate::token::{KeyId, TokenDigest};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// What went wrong in a store. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken: the thing already exists.
    #[error("{0}")]
    Conflict(String),
    /// The thing to change does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The backend cannot be reached right now (the server answers 503).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported.
    #[error("store error: {0}")]
    Backend(String),
}

/// The most invalidation-log entries one `invalidations_after` returns: a reader that gets this
/// many reads again from the last one.
pub const MAX_INVALIDATIONS_PER_READ: usize = 10_000;

/// Which tokens a listing or bulk deletion covers. All `None` means every token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenFilter {
    /// Only this user's tokens.
    pub user: Option<UserId>,
    /// Only this client's tokens.
    pub client: Option<ClientId>,
    /// Only the tokens made with this server key (to count them, or to revoke them before the
    /// key is retired).
    pub key: Option<KeyId>,
    /// Only legacy tokens (durin's, imported; see [`AuthToken::is_legacy`](crate::AuthToken::is_legacy)).
    pub legacy: bool,
}

impl TokenFilter {
    /// Whether `token` matches the filter.
    pub fn matches(&self, token: &AuthToken) -> bool {
        self.user.is_none_or(|u| u == token.user_id)
            && self.client.is_none_or(|c| c == token.client_id)
            && self.key.is_none_or(|k| k == token.key_id)
            && (!self.legacy || token.is_legacy())
    }
}

/// Changes to a client; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ClientUpdate {
    /// New name.
    pub name: Option<ClientName>,
    /// New TTL (applies to tokens issued or renewed from now on).
    pub token_ttl: Option<Ttl>,
    /// New throttle rate; `Some(None)` clears it.
    pub throttle_rate: Option<Option<Rate>>,
    /// Sliding expiry on or off.
    pub sliding_expiry: Option<bool>,
    /// New lifetime cap; `Some(None)` clears it.
    pub max_lifetime: Option<Option<Ttl>>,
    /// New description.
    pub description: Option<String>,
    /// New device policy. From `many` to `one`, follow with
    /// [`TokenStore::keep_one_token_per_pair`].
    pub devices: Option<Devices>,
}

impl ClientUpdate {
    /// Applies the changes to `client`.
    pub fn apply(&self, client: &mut Client) {
        if let Some(name) = &self.name {
            client.name = name.clone();
        }
        if let Some(ttl) = self.token_ttl {
            client.token_ttl = ttl;
        }
        if let Some(rate) = self.throttle_rate {
            client.throttle_rate = rate;
        }
        if let Some(sliding) = self.sliding_expiry {
            client.sliding_expiry = sliding;
        }
        if let Some(cap) = self.max_lifetime {
            client.max_lifetime = cap;
        }
        if let Some(description) = &self.description {
            client.description = description.clone();
        }
        if let Some(devices) = self.devices {
            client.devices = devices;
        }
    }
}

/// A change that makes cached authentications stale, from the store's invalidation log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// This token was deleted or its expiry brought forward.
    Token(TokenDigest),
    /// This user was changed (deactivated, renamed, staff flag) or deleted.
    User(UserId),
    /// This client was changed or deleted.
    Client(ClientId),
}

/// A token with the user and client it belongs to: everything authentication needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenWithOwner {
    /// The token.
    pub token: AuthToken,
    /// Its user.
    pub user: User,
    /// Its client.
    pub client: Client,
}

/// Users.
#[async_trait]
pub trait UserStore: Send + Sync + std::fmt::Debug {
    /// Creates a user; [`StoreError::Conflict`] when the username is taken.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;
    /// A user by id.
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// A user by exact username.
    async fn user_by_username(&self, username: &Username) -> Result<Option<User>, StoreError>;
    /// Every user, by username.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// One page of users by username, filtered (the admin's user list); a store without a query
    /// language may use [`search_users_in_memory`](crate::search::search_users_in_memory).
    async fn search_users(&self, search: &UserSearch) -> Result<UserPage, StoreError>;
    /// Replaces the password hash.
    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError>;
    /// Replaces the password hash only while it is still `old` (an imported Django hash re-hashed
    /// on login must not undo a password change made meanwhile); `false` when it was not.
    async fn upgrade_password_hash(&self, id: UserId, old: &str, new: &str) -> Result<bool, StoreError>;
    /// Activates or deactivates. An inactive user's tokens stop authenticating.
    async fn set_active(&self, id: UserId, active: bool) -> Result<(), StoreError>;
    /// Sets the staff flag.
    async fn set_staff(&self, id: UserId, staff: bool) -> Result<(), StoreError>;
    /// Deletes the user and all their tokens.
    async fn delete_user(&self, id: UserId) -> Result<(), StoreError>;
}

/// API clients.
#[async_trait]
pub trait ClientStore: Send + Sync + std::fmt::Debug {
    /// Creates a client; [`StoreError::Conflict`] when the name is taken.
    async fn create_client(&self, client: NewClient) -> Result<Client, StoreError>;
    /// A client by id.
    async fn client_by_id(&self, id: ClientId) -> Result<Option<Client>, StoreError>;
    /// A client by exact name.
    async fn client_by_name(&self, name: &ClientName) -> Result<Option<Client>, StoreError>;
    /// Every client, by name.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;
    /// Changes a client and returns it as stored.
    async fn update_client(&self, id: ClientId, update: ClientUpdate) -> Result<Client, StoreError>;
    /// Deletes a client and all its tokens; returns how many tokens went with it.
    async fn delete_client(&self, id: ClientId) -> Result<u64, StoreError>;
}

/// What [`TokenStore::create_device_token`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceToken {
    /// The token was stored; to make room, these (the user's least recently used tokens on the
    /// client) were deleted.
    Created {
        /// The new token.
        token: AuthToken,
        /// The tokens deleted to stay within the limit.
        evicted: Vec<AuthToken>,
    },
    /// The user holds the limit already and the policy is [`OnDeviceLimit::Refuse`]: nothing
    /// changed.
    AtLimit,
}

/// Tokens, by digest. On a `devices = one` client at most one per (user, client) — the pair's
/// token; on a `many` client one per device, at most `max_devices` per (user, client).
#[async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// Checks that the backend answers (for `/ready`), with the cheapest request it has.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Stores a token; [`StoreError::Conflict`] when the (user, client) pair already has one.
    async fn create_token(&self, token: NewToken) -> Result<AuthToken, StoreError>;
    /// Stores `token` unless the pair already has one, atomically; returns the pair's token and
    /// whether it was created now. Concurrent calls for one pair create exactly one token.
    async fn get_or_create_token(&self, token: NewToken) -> Result<(AuthToken, bool), StoreError>;
    /// A token by id.
    async fn token_by_id(&self, id: TokenId) -> Result<Option<AuthToken>, StoreError>;
    /// A token by digest.
    async fn token_by_digest(&self, digest: &TokenDigest) -> Result<Option<AuthToken>, StoreError>;
    /// The pair's token of a (user, client) pair (device tokens of a `many` client are not it).
    async fn token_for(&self, user: UserId, client: ClientId) -> Result<Option<AuthToken>, StoreError>;
    /// Tokens matching the filter, oldest first.
    async fn list_tokens(&self, filter: TokenFilter) -> Result<Vec<AuthToken>, StoreError>;
    /// How many tokens match the filter: what `list_tokens` would return, without holding them all
    /// (`tessera key list` counts a key's tokens with it).
    async fn count_tokens(&self, filter: TokenFilter) -> Result<u64, StoreError>;
    /// Stores a device token of a `many` client (never the pair's token), atomically keeping the
    /// user at most `max_devices` tokens on the client: at the limit, the least recently used
    /// (last use, else creation) go first with [`OnDeviceLimit::EvictOldest`], or nothing changes
    /// with [`OnDeviceLimit::Refuse`]. Concurrent calls never leave more than `max_devices`.
    async fn create_device_token(
        &self,
        token: NewToken,
        max_devices: u32,
        on_limit: OnDeviceLimit,
    ) -> Result<DeviceToken, StoreError>;
    /// After a client went from `many` to `one`: for each user, keeps their most recently used
    /// token on the client as the pair's token and deletes the others, atomically; returns those
    /// deleted.
    async fn keep_one_token_per_pair(&self, client: ClientId) -> Result<Vec<AuthToken>, StoreError>;
    /// Deletes one token; `false` when it did not exist.
    async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError>;
    /// Deletes every token matching the filter and returns them.
    async fn delete_tokens(&self, filter: TokenFilter) -> Result<Vec<AuthToken>, StoreError>;
    /// Extends (or otherwise sets) the expiry of a token that has not expired at `now`; `false`
    /// when the token is gone or already expired. Renewals use this, so a renewal racing an
    /// admin's "expire now" cannot bring the token back.
    async fn extend_expiry(
        &self,
        id: TokenId,
        expiry: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Sets a token's expiry (`None`: never); `false` when it did not exist.
    async fn set_expiry(&self, id: TokenId, expiry: Option<DateTime<Utc>>) -> Result<bool, StoreError>;
    /// Records last-used times, in one batch.
    async fn record_last_used(&self, uses: &[(TokenId, DateTime<Utc>)]) -> Result<(), StoreError>;
    /// Deletes every token whose expiry is at or before `now`; returns how many.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Everything Tessera stores.
#[async_trait]
pub trait Store: UserStore + ClientStore + TokenStore {
    /// The position of the newest entry of the invalidation log (0 when it is empty).
    async fn latest_invalidation(&self) -> Result<i64, StoreError>;

    /// Invalidation-log entries after position `after`, oldest first, at most
    /// [`MAX_INVALIDATIONS_PER_READ`].
    async fn invalidations_after(&self, after: i64) -> Result<Vec<(i64, Invalidation)>, StoreError>;

    /// Deletes invalidation-log entries written before `before`, except the newest entry (so that
    /// [`latest_invalidation`](Store::latest_invalidation) never moves back but by a restore, which
    /// followers detect that way); returns how many.
    async fn prune_invalidations(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// The token with this digest, with its user and client: everything authentication needs, in
    /// as few round trips as the backend allows (one on SQL; one per backend when tokens live
    /// elsewhere). `None` when the token, its user or its client does not exist.
    async fn token_with_owner(&self, digest: &TokenDigest) -> Result<Option<TokenWithOwner>, StoreError>;

    /// A user and a client by id, read together (one round trip on SQL). Either is `None` when it
    /// does not exist.
    async fn user_and_client(
        &self,
        user: UserId,
        client: ClientId,
    ) -> Result<(Option<User>, Option<Client>), StoreError>;

    /// One page of a token search (the admin's token list): filtered, sorted with the id as
    /// tie-break, addressed by a keyset cursor, with the count of all matching tokens. SQL stores
    /// answer from indexes; a store without a query language may use
    /// [`search_tokens_in_memory`](crate::search::search_tokens_in_memory).
    async fn search_tokens(&self, search: &TokenSearch) -> Result<TokenPage, StoreError>;
}
