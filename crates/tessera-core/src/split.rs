//! A store with users and clients in one backend and tokens in another (SQL + Redis).

use crate::model::{AuthToken, Client, ClientId, NewClient, NewToken, NewUser, TokenId, User, UserId};
use crate::store::{ClientStore, ClientUpdate, Invalidation, Store, StoreError, TokenFilter, TokenStore, UserStore};
use crate::token::TokenDigest;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Users and clients (and the invalidation log) in `directory`; tokens in `tokens`. Deleting a user
/// or a client deletes their tokens in both, as a single database would by cascade.
#[derive(Debug, Clone)]
pub struct SplitStore {
    directory: Arc<dyn Store>,
    tokens: Arc<dyn TokenStore>,
}

impl SplitStore {
    /// Users and clients from `directory`, tokens from `tokens`.
    pub fn new(directory: Arc<dyn Store>, tokens: Arc<dyn TokenStore>) -> Self {
        Self { directory, tokens }
    }

    /// What a foreign key would refuse: a token for a user or client that does not exist.
    async fn check_owners(&self, user: UserId, client: ClientId) -> Result<(), StoreError> {
        if self.directory.user_by_id(user).await?.is_none() {
            return Err(StoreError::NotFound(format!("no user with id {user}")));
        }
        if self.directory.client_by_id(client).await?.is_none() {
            return Err(StoreError::NotFound(format!("no client with id {client}")));
        }
        Ok(())
    }
}

#[async_trait]
impl UserStore for SplitStore {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.directory.create_user(user).await
    }
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.directory.user_by_id(id).await
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.directory.user_by_username(username).await
    }
    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.directory.list_users().await
    }
    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError> {
        self.directory.set_password_hash(id, hash).await
    }
    async fn set_active(&self, id: UserId, active: bool) -> Result<(), StoreError> {
        self.directory.set_active(id, active).await
    }
    async fn set_staff(&self, id: UserId, staff: bool) -> Result<(), StoreError> {
        self.directory.set_staff(id, staff).await
    }
    async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
        if self.directory.user_by_id(id).await?.is_none() {
            return Err(StoreError::NotFound(format!("no user with id {id}")));
        }
        self.tokens.delete_tokens(TokenFilter { user: Some(id), client: None }).await?;
        self.directory.delete_user(id).await
    }
}

#[async_trait]
impl ClientStore for SplitStore {
    async fn create_client(&self, client: NewClient) -> Result<Client, StoreError> {
        self.directory.create_client(client).await
    }
    async fn client_by_id(&self, id: ClientId) -> Result<Option<Client>, StoreError> {
        self.directory.client_by_id(id).await
    }
    async fn client_by_name(&self, name: &str) -> Result<Option<Client>, StoreError> {
        self.directory.client_by_name(name).await
    }
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.directory.list_clients().await
    }
    async fn update_client(&self, id: ClientId, update: ClientUpdate) -> Result<Client, StoreError> {
        self.directory.update_client(id, update).await
    }
    async fn delete_client(&self, id: ClientId) -> Result<u64, StoreError> {
        if self.directory.client_by_id(id).await?.is_none() {
            return Err(StoreError::NotFound(format!("no client with id {id}")));
        }
        let deleted = self.tokens.delete_tokens(TokenFilter { user: None, client: Some(id) }).await?;
        self.directory.delete_client(id).await?;
        Ok(deleted.len() as u64)
    }
}

#[async_trait]
impl TokenStore for SplitStore {
    async fn create_token(&self, token: NewToken) -> Result<AuthToken, StoreError> {
        self.check_owners(token.user_id, token.client_id).await?;
        self.tokens.create_token(token).await
    }
    async fn get_or_create_token(&self, token: NewToken) -> Result<(AuthToken, bool), StoreError> {
        self.check_owners(token.user_id, token.client_id).await?;
        self.tokens.get_or_create_token(token).await
    }
    async fn token_by_id(&self, id: TokenId) -> Result<Option<AuthToken>, StoreError> {
        self.tokens.token_by_id(id).await
    }
    async fn token_by_digest(&self, digest: &TokenDigest) -> Result<Option<AuthToken>, StoreError> {
        self.tokens.token_by_digest(digest).await
    }
    async fn token_for(&self, user: UserId, client: ClientId) -> Result<Option<AuthToken>, StoreError> {
        self.tokens.token_for(user, client).await
    }
    async fn list_tokens(&self, filter: TokenFilter) -> Result<Vec<AuthToken>, StoreError> {
        self.tokens.list_tokens(filter).await
    }
    async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError> {
        self.tokens.delete_token(id).await
    }
    async fn delete_tokens(&self, filter: TokenFilter) -> Result<Vec<AuthToken>, StoreError> {
        self.tokens.delete_tokens(filter).await
    }
    async fn extend_expiry(
        &self,
        id: TokenId,
        expiry: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.tokens.extend_expiry(id, expiry, now).await
    }
    async fn set_expiry(&self, id: TokenId, expiry: Option<DateTime<Utc>>) -> Result<bool, StoreError> {
        self.tokens.set_expiry(id, expiry).await
    }
    async fn record_last_used(&self, uses: &[(TokenId, DateTime<Utc>)]) -> Result<(), StoreError> {
        self.tokens.record_last_used(uses).await
    }
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.tokens.purge_expired(now).await
    }
}

#[async_trait]
impl Store for SplitStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.directory.ping().await?;
        // The token store has no ping of its own: a cheap read proves it answers.
        self.tokens.token_by_id(TokenId(0)).await.map(|_| ())
    }
    async fn latest_invalidation(&self) -> Result<i64, StoreError> {
        self.directory.latest_invalidation().await
    }
    async fn invalidations_after(&self, after: i64) -> Result<Vec<(i64, Invalidation)>, StoreError> {
        self.directory.invalidations_after(after).await
    }
    async fn prune_invalidations(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.directory.prune_invalidations(before).await
    }
}
