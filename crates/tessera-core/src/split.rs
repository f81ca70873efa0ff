//! A store with users and clients in one backend and tokens in another (SQL + Redis).

use crate::model::{AuthToken, ClientId, NewToken, OnDeviceLimit, UserId};
use crate::search::{TokenPage, TokenSearch};
use crate::store::{DeviceToken, Store, StoreError, TokenFilter, TokenStore, TokenWithOwner};
use crate::token::TokenDigest;
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
        match self.directory.user_and_client(user, client).await? {
            (None, _) => Err(StoreError::NotFound(format!("no user with id {user}"))),
            (_, None) => Err(StoreError::NotFound(format!("no client with id {client}"))),
            (Some(_), Some(_)) => Ok(()),
        }
    }
}

// Deleting a user or a client deletes their tokens on the token side first, as a cascade would.
crate::forward_store! {
    impl UserStore for SplitStore {
        forward to directory: create_user, user_by_id, user_by_username, list_users, search_users, set_password_hash,
            upgrade_password_hash, set_active, set_staff;

        async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
            if self.directory.user_by_id(id).await?.is_none() {
                return Err(StoreError::NotFound(format!("no user with id {id}")));
            }
            self.tokens.delete_tokens(TokenFilter { user: Some(id), client: None, key: None, legacy: false }).await?;
            self.directory.delete_user(id).await
        }
    }
}

crate::forward_store! {
    impl ClientStore for SplitStore {
        forward to directory: create_client, client_by_id, client_by_name, list_clients, update_client;

        async fn delete_client(&self, id: ClientId) -> Result<u64, StoreError> {
            if self.directory.client_by_id(id).await?.is_none() {
                return Err(StoreError::NotFound(format!("no client with id {id}")));
            }
            let deleted = self.tokens.delete_tokens(TokenFilter { user: None, client: Some(id), key: None, legacy: false }).await?;
            self.directory.delete_client(id).await?;
            Ok(deleted.len() as u64)
        }
    }
}

crate::forward_store! {
    impl TokenStore for SplitStore {
        forward to tokens: token_by_id, token_by_digest, token_for, list_tokens, count_tokens, delete_token,
            delete_tokens, extend_expiry, set_expiry, record_last_used, purge_expired, keep_one_token_per_pair;

        /// Both backends answer.
        async fn ping(&self) -> Result<(), StoreError> {
            self.directory.ping().await?;
            self.tokens.ping().await
        }
        async fn create_token(&self, token: NewToken) -> Result<AuthToken, StoreError> {
            self.check_owners(token.user_id, token.client_id).await?;
            self.tokens.create_token(token).await
        }
        async fn get_or_create_token(&self, token: NewToken) -> Result<(AuthToken, bool), StoreError> {
            self.check_owners(token.user_id, token.client_id).await?;
            self.tokens.get_or_create_token(token).await
        }
        async fn create_device_token(
            &self,
            token: NewToken,
            max_devices: u32,
            on_limit: OnDeviceLimit,
        ) -> Result<DeviceToken, StoreError> {
            self.check_owners(token.user_id, token.client_id).await?;
            self.tokens.create_device_token(token, max_devices, on_limit).await
        }
    }
}

crate::forward_store! {
    impl Store for SplitStore {
        forward to directory: latest_invalidation, invalidations_after, prune_invalidations, user_and_client;

        /// Tokens in one backend, names in the other: searched in memory.
        async fn search_tokens(&self, search: &TokenSearch) -> Result<TokenPage, StoreError> {
            crate::search::search_tokens_in_memory(self, search).await
        }

        /// Two round trips, one per backend: the token, then its user and client together.
        async fn token_with_owner(&self, digest: &TokenDigest) -> Result<Option<TokenWithOwner>, StoreError> {
            let Some(token) = self.tokens.token_by_digest(digest).await? else {
                return Ok(None);
            };
            match self.directory.user_and_client(token.user_id, token.client_id).await? {
                (Some(user), Some(client)) => Ok(Some(TokenWithOwner { token, user, client })),
                _ => Ok(None),
            }
        }
    }
}
