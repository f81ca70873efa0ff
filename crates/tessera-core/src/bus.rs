//! Pushing invalidations to every instance at once, and the store decorator that publishes them.
//!
//! The store's invalidation log (followed by polling) already reaches every instance within a
//! second. A bus — Redis pub/sub in `tessera-redis` — gets there in milliseconds, and carries the
//! changes of stores that keep no log (tokens in Redis).

use crate::model::{AuthToken, Client, ClientId, NewClient, NewToken, NewUser, TokenId, User, UserId};
use crate::store::{
    ClientStore, ClientUpdate, Invalidation, Store, StoreError, TokenFilter, TokenStore, TokenWithOwner, UserStore,
};
use crate::token::TokenDigest;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The bus cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalidation bus unavailable: {0}")]
pub struct BusError(pub String);

/// Carries invalidations to every instance.
#[async_trait]
pub trait InvalidationBus: Send + Sync + std::fmt::Debug + 'static {
    /// Publishes changes to every subscriber (this process's own included).
    async fn publish(&self, changes: &[Invalidation]) -> Result<(), BusError>;

    /// Subscribes: calls `on_ready` once the subscription is in place, then `on_change` for every
    /// change published, until the subscription drops. Returns why it dropped. A caller that sees
    /// this return must assume it missed changes.
    async fn subscribe(
        &self,
        on_ready: &(dyn Fn() + Send + Sync),
        on_change: &(dyn Fn(Invalidation) + Send + Sync),
    ) -> BusError;
}

/// A [`Store`] that publishes on a bus every change that makes cached authentications stale, after
/// the change is made. Everything else is the inner store's.
#[derive(Debug, Clone)]
pub struct NotifyingStore {
    inner: Arc<dyn Store>,
    bus: Arc<dyn InvalidationBus>,
}

impl NotifyingStore {
    /// Wraps `inner`, publishing on `bus`.
    pub fn new(inner: Arc<dyn Store>, bus: Arc<dyn InvalidationBus>) -> Self {
        Self { inner, bus }
    }

    async fn publish(&self, changes: &[Invalidation]) {
        if changes.is_empty() {
            return;
        }
        // The change is made; other instances also follow the store's log or distrust their
        // caches while the bus is down, so a lost message costs latency, not safety.
        if let Err(e) = self.bus.publish(changes).await {
            tracing::warn!(error = %e, "could not publish invalidations");
        }
    }

    async fn digest_of(&self, id: TokenId) -> Result<Option<TokenDigest>, StoreError> {
        Ok(self.inner.token_by_id(id).await?.map(|t| t.digest))
    }
}

#[async_trait]
impl UserStore for NotifyingStore {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.inner.create_user(user).await
    }
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.inner.user_by_id(id).await
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.inner.user_by_username(username).await
    }
    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.inner.list_users().await
    }
    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError> {
        self.inner.set_password_hash(id, hash).await
    }
    async fn set_active(&self, id: UserId, active: bool) -> Result<(), StoreError> {
        self.inner.set_active(id, active).await?;
        self.publish(&[Invalidation::User(id)]).await;
        Ok(())
    }
    async fn set_staff(&self, id: UserId, staff: bool) -> Result<(), StoreError> {
        self.inner.set_staff(id, staff).await?;
        self.publish(&[Invalidation::User(id)]).await;
        Ok(())
    }
    async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
        self.inner.delete_user(id).await?;
        self.publish(&[Invalidation::User(id)]).await;
        Ok(())
    }
}

#[async_trait]
impl ClientStore for NotifyingStore {
    async fn create_client(&self, client: NewClient) -> Result<Client, StoreError> {
        self.inner.create_client(client).await
    }
    async fn client_by_id(&self, id: ClientId) -> Result<Option<Client>, StoreError> {
        self.inner.client_by_id(id).await
    }
    async fn client_by_name(&self, name: &str) -> Result<Option<Client>, StoreError> {
        self.inner.client_by_name(name).await
    }
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.inner.list_clients().await
    }
    async fn update_client(&self, id: ClientId, update: ClientUpdate) -> Result<Client, StoreError> {
        let client = self.inner.update_client(id, update).await?;
        self.publish(&[Invalidation::Client(id)]).await;
        Ok(client)
    }
    async fn delete_client(&self, id: ClientId) -> Result<u64, StoreError> {
        let deleted = self.inner.delete_client(id).await?;
        self.publish(&[Invalidation::Client(id)]).await;
        Ok(deleted)
    }
}

#[async_trait]
impl TokenStore for NotifyingStore {
    async fn create_token(&self, token: NewToken) -> Result<AuthToken, StoreError> {
        self.inner.create_token(token).await
    }
    async fn get_or_create_token(&self, token: NewToken) -> Result<(AuthToken, bool), StoreError> {
        self.inner.get_or_create_token(token).await
    }
    async fn token_by_id(&self, id: TokenId) -> Result<Option<AuthToken>, StoreError> {
        self.inner.token_by_id(id).await
    }
    async fn token_by_digest(&self, digest: &TokenDigest) -> Result<Option<AuthToken>, StoreError> {
        self.inner.token_by_digest(digest).await
    }
    async fn token_for(&self, user: UserId, client: ClientId) -> Result<Option<AuthToken>, StoreError> {
        self.inner.token_for(user, client).await
    }
    async fn list_tokens(&self, filter: TokenFilter) -> Result<Vec<AuthToken>, StoreError> {
        self.inner.list_tokens(filter).await
    }
    async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError> {
        let digest = self.digest_of(id).await?;
        let deleted = self.inner.delete_token(id).await?;
        if let (true, Some(digest)) = (deleted, digest) {
            self.publish(&[Invalidation::Token(digest)]).await;
        }
        Ok(deleted)
    }
    async fn delete_tokens(&self, filter: TokenFilter) -> Result<Vec<AuthToken>, StoreError> {
        let deleted = self.inner.delete_tokens(filter).await?;
        let changes: Vec<Invalidation> = deleted.iter().map(|t| Invalidation::Token(t.digest)).collect();
        self.publish(&changes).await;
        Ok(deleted)
    }
    async fn extend_expiry(
        &self,
        id: TokenId,
        expiry: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // A later expiry never makes a cached verdict unsafe: nothing to publish.
        self.inner.extend_expiry(id, expiry, now).await
    }
    async fn set_expiry(&self, id: TokenId, expiry: Option<DateTime<Utc>>) -> Result<bool, StoreError> {
        let digest = self.digest_of(id).await?;
        let changed = self.inner.set_expiry(id, expiry).await?;
        if let (true, Some(digest)) = (changed, digest) {
            self.publish(&[Invalidation::Token(digest)]).await;
        }
        Ok(changed)
    }
    async fn record_last_used(&self, uses: &[(TokenId, DateTime<Utc>)]) -> Result<(), StoreError> {
        self.inner.record_last_used(uses).await
    }
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        // Expired tokens are refused whatever a cache holds.
        self.inner.purge_expired(now).await
    }
}

#[async_trait]
impl Store for NotifyingStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn token_with_owner(&self, digest: &TokenDigest) -> Result<Option<TokenWithOwner>, StoreError> {
        self.inner.token_with_owner(digest).await
    }
    async fn latest_invalidation(&self) -> Result<i64, StoreError> {
        self.inner.latest_invalidation().await
    }
    async fn invalidations_after(&self, after: i64) -> Result<Vec<(i64, Invalidation)>, StoreError> {
        self.inner.invalidations_after(after).await
    }
    async fn prune_invalidations(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.prune_invalidations(before).await
    }
}
