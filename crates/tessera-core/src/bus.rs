//! Pushing invalidations to every instance at once, and the store decorator that publishes them.
//!
//! The store's invalidation log (followed by polling) already reaches every instance within a
//! second. A bus — Redis pub/sub in `tessera-redis`, or PostgreSQL's `LISTEN`/`NOTIFY` in
//! `tessera-sql` (`PgListenBus`, whose triggers publish: no `NotifyingStore` around the store) — gets
//! there in milliseconds, and Redis's carries the changes of stores that keep no log (tokens in
//! Redis).

use crate::model::{AuthToken, Client, ClientId, NewToken, OnDeviceLimit, TokenId, UserId};
use crate::store::{ClientUpdate, DeviceToken, Invalidation, Store, StoreError, TokenFilter};
use crate::token::TokenDigest;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The bus cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalidation bus unavailable: {0}")]
pub struct BusError(pub String);

/// Reads the invalidations in a bus message, in the one wire format every bus uses:
/// whitespace-separated `t:<hex digest>`, `u:<user id>` and `c:<client id>` items. A bare number (the
/// PostgreSQL log position that precedes them) is skipped; an item this version does not
/// understand is logged and skipped. (The publish time, `at:`, is read by [`decode_message`].)
pub fn decode_invalidations(payload: &str) -> Vec<Invalidation> {
    decode_message(payload).changes
}

/// One bus message, read: its invalidations and, when it says, when it was published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusMessage {
    /// The changes, in order.
    pub changes: Vec<Invalidation>,
    /// When the publisher sent it, by the publisher's clock: the item `at:<Unix microseconds>`.
    /// `None` for a message of an older version, which did not say, or a time that does not parse.
    pub sent_at: Option<DateTime<Utc>>,
}

/// The item that says when a message was published: `at:<Unix microseconds>`.
pub fn sent_at_item(at: DateTime<Utc>) -> String {
    format!("at:{}", at.timestamp_micros())
}

/// Reads a bus message (see [`decode_invalidations`]) with its publish time, the item
/// `at:<Unix microseconds>` that publishers add so that a subscriber can measure how old an
/// invalidation is when it applies it (`tessera_invalidation_lag_seconds`). A message without it
/// — an older publisher's — still reads, with no time.
pub fn decode_message(payload: &str) -> BusMessage {
    let mut message = BusMessage::default();
    for item in payload.split_ascii_whitespace() {
        if item.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let change = match item.split_once(':') {
            Some(("t", hex)) => TokenDigest::from_hex(hex).map(Invalidation::Token),
            Some(("u", id)) => id.parse().ok().map(|id| Invalidation::User(UserId(id))),
            Some(("c", id)) => id.parse().ok().map(|id| Invalidation::Client(ClientId(id))),
            Some(("at", micros)) => {
                message.sent_at = micros.parse().ok().and_then(DateTime::<Utc>::from_timestamp_micros);
                continue;
            }
            _ => None,
        };
        match change {
            Some(change) => message.changes.push(change),
            None => {
                tracing::warn!(item = %item.chars().take(80).collect::<String>(), "ignoring an invalidation this version does not understand")
            }
        }
    }
    message
}

/// Carries invalidations to every instance.
#[async_trait]
pub trait InvalidationBus: Send + Sync + std::fmt::Debug + 'static {
    /// Publishes changes to every subscriber (this process's own included).
    async fn publish(&self, changes: &[Invalidation]) -> Result<(), BusError>;

    /// Subscribes: calls `on_ready` once the subscription is in place, then `on_change` for every
    /// change published, with the time its message was published when the message says (see
    /// [`BusMessage::sent_at`]), until the subscription drops. Returns why it dropped. A caller that
    /// sees this return must assume it missed changes.
    async fn subscribe(
        &self,
        on_ready: &(dyn Fn() + Send + Sync),
        on_change: &(dyn Fn(Invalidation, Option<DateTime<Utc>>) + Send + Sync),
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

    /// Publishes the deletion of these tokens (nothing when there are none).
    async fn publish_tokens(&self, tokens: &[AuthToken]) {
        if !tokens.is_empty() {
            let changes: Vec<Invalidation> = tokens.iter().map(|t| Invalidation::Token(t.digest)).collect();
            self.publish(&changes).await;
        }
    }

    async fn digest_of(&self, id: TokenId) -> Result<Option<TokenDigest>, StoreError> {
        Ok(self.inner.token_by_id(id).await?.map(|t| t.digest))
    }
}

// Only the changes that make a cached verdict stale publish; everything else is the inner store's.
crate::forward_store! {
    impl UserStore for NotifyingStore {
        forward to inner: create_user, user_by_id, user_by_username, list_users, search_users, set_password_hash,
            upgrade_password_hash;

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
}

crate::forward_store! {
    impl ClientStore for NotifyingStore {
        forward to inner: create_client, client_by_id, client_by_name, list_clients;

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
}

crate::forward_store! {
    impl TokenStore for NotifyingStore {
        // A later expiry (extend_expiry) never makes a cached verdict unsafe, and expired tokens
        // (purge_expired) are refused whatever a cache holds: nothing to publish for either.
        forward to inner: ping, create_token, get_or_create_token, token_by_id, token_by_digest, token_for,
            list_tokens, count_tokens, extend_expiry, record_last_used, purge_expired;

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
            self.publish_tokens(&deleted).await;
            Ok(deleted)
        }
        async fn create_device_token(
            &self,
            token: NewToken,
            max_devices: u32,
            on_limit: OnDeviceLimit,
        ) -> Result<DeviceToken, StoreError> {
            let outcome = self.inner.create_device_token(token, max_devices, on_limit).await?;
            if let DeviceToken::Created { evicted, .. } = &outcome {
                self.publish_tokens(evicted).await;
            }
            Ok(outcome)
        }
        async fn keep_one_token_per_pair(&self, client: ClientId) -> Result<Vec<AuthToken>, StoreError> {
            let deleted = self.inner.keep_one_token_per_pair(client).await?;
            self.publish_tokens(&deleted).await;
            Ok(deleted)
        }
        async fn set_expiry(&self, id: TokenId, expiry: Option<DateTime<Utc>>) -> Result<bool, StoreError> {
            let digest = self.digest_of(id).await?;
            let changed = self.inner.set_expiry(id, expiry).await?;
            if let (true, Some(digest)) = (changed, digest) {
                self.publish(&[Invalidation::Token(digest)]).await;
            }
            Ok(changed)
        }
    }
}

crate::forward_store! {
    impl Store for NotifyingStore {
        forward to inner: latest_invalidation, invalidations_after, prune_invalidations, token_with_owner,
            user_and_client, search_tokens;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_publish_time_and_old_ones_still_read() {
        let at = DateTime::<Utc>::from_timestamp_micros(1_764_850_000_123_456).expect("time");
        let hex = "0a".repeat(32);
        let new = format!("17 {} t:{hex} u:3", sent_at_item(at));
        assert_eq!(
            decode_message(&new),
            BusMessage {
                changes: vec![Invalidation::Token(TokenDigest([10; 32])), Invalidation::User(UserId(3))],
                sent_at: Some(at)
            }
        );
        // An older publisher's message: the same changes, no time.
        let old = decode_message(&format!("17 t:{hex} u:3"));
        assert_eq!(old.changes, decode_message(&new).changes);
        assert_eq!(old.sent_at, None);
        assert_eq!(decode_invalidations(&new), old.changes);
        // A time that does not parse, or is out of range, is no time; the changes still read.
        for bad in ["at:", "at:x", "at:-", "at:99999999999999999999999", "at:1e9"] {
            let m = decode_message(&format!("{bad} c:7"));
            assert_eq!(m, BusMessage { changes: vec![Invalidation::Client(ClientId(7))], sent_at: None }, "{bad}");
        }
    }
}
