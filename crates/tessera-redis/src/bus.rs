//! [`RedisBus`]: invalidations pushed to every instance over Redis pub/sub.

use crate::connection::RedisConnection;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_core::Stream;
use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;
use tessera_core::TokenDigest;
use tessera_core::bus::{BusError, BusMessage, InvalidationBus};
use tessera_core::store::Invalidation;

/// Changes per published message.
const PER_MESSAGE: usize = 256;

/// An [`InvalidationBus`] on Redis pub/sub, channel `{prefix}invalidations`.
///
/// A message is a space-separated list of changes: `t:<hex digest>` (a token deleted or its expiry
/// brought forward), `u:<id>` (a user changed), `c:<id>` (a client changed). The token store's
/// scripts publish on the same channel, in the same format.
///
/// Pub/sub delivers only to those subscribed at the moment of publishing; a subscriber that
/// dropped has missed what was sent meanwhile, which is why [`InvalidationBus::subscribe`]
/// returns when the connection drops. It notices a silent drop too: it pings the server every
/// `ping_interval` (500 ms) and gives up when an answer takes longer than 1 s.
///
/// **Tokens that leave Redis behind Tessera's back.** With [`RedisBus::following_token_keys`] the
/// subscription also listens to Redis's keyspace notifications for the connection's database —
/// the keyevent channels `del` (DEL and UNLINK), `expired` and `evicted` — and turns every
/// `P tok:<hex digest>` key among them into a token invalidation: an operator who deletes token
/// keys by hand is honoured by every instance's cache at once. Redis publishes those events only
/// when its `notify-keyspace-events` has the classes `E` and `g` (`x`, `e` for the others; see
/// [`crate::server_config`]). FLUSHDB, FLUSHALL, a restore and a failover emit no per-key event.
#[derive(Debug, Clone)]
pub struct RedisBus {
    conn: RedisConnection,
    channel: String,
    /// `__keyevent@<db>__:`, when following token keys.
    keyevents: Option<String>,
    ping_interval: Duration,
    ping_timeout: Duration,
}

/// The keyevent notifications that mean a key is gone.
const GONE_EVENTS: [&str; 3] = ["del", "expired", "evicted"];

impl RedisBus {
    /// A bus on `conn`'s server, on the channel under its key prefix.
    pub fn new(conn: RedisConnection) -> Self {
        let channel = format!("{}invalidations", conn.key_prefix());
        let ping_timeout = conn.response_timeout().min(Duration::from_secs(1));
        Self { conn, channel, keyevents: None, ping_interval: Duration::from_millis(500), ping_timeout }
    }

    /// Also follows token keys that leave Redis by any path — DEL, UNLINK, expiry, eviction —
    /// through the server's keyspace notifications (see the type's docs), so a cache forgets
    /// their tokens. Useless unless the server emits them.
    pub fn following_token_keys(mut self) -> Self {
        self.keyevents = Some(format!("__keyevent@{}__:", self.conn.database()));
        self
    }

    /// Whether it follows token keys.
    pub fn follows_token_keys(&self) -> bool {
        self.keyevents.is_some()
    }

    /// How often the subscription checks its connection (default 500 ms).
    pub fn with_ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    async fn listen(
        &self,
        on_ready: &(dyn Fn() + Send + Sync),
        on_change: &(dyn Fn(Invalidation, Option<DateTime<Utc>>) + Send + Sync),
    ) -> Result<Infallible, BusError> {
        let server = self.conn.server();
        let connect = tokio::time::timeout(self.conn.deadline(), self.conn.client().get_async_pubsub());
        let pubsub = match connect.await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => return Err(self.conn.map_error("subscribe to invalidations", &e).into()),
            Err(_) => {
                return Err(BusError(format!(
                    "could not connect to Redis at {server} within {} ms to subscribe",
                    self.conn.deadline().as_millis()
                )));
            }
        };
        let (mut sink, stream) = pubsub.split();
        let mut channels = vec![self.channel.clone()];
        if let Some(keyevents) = &self.keyevents {
            channels.extend(GONE_EVENTS.iter().map(|event| format!("{keyevents}{event}")));
        }
        match tokio::time::timeout(self.conn.response_timeout(), sink.subscribe(&channels)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.conn.map_error("subscribe to invalidations", &e).into()),
            Err(_) => return Err(BusError(format!("Redis at {server} did not confirm the subscription in time"))),
        }
        on_ready();
        let mut stream = std::pin::pin!(stream);
        let mut pings = tokio::time::interval(self.ping_interval);
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        pings.tick().await;
        loop {
            tokio::select! {
                message = next(stream.as_mut()) => {
                    let Some(message) = message else {
                        return Err(BusError(format!("the subscription connection to Redis at {server} was closed")));
                    };
                    if message.get_channel_name() == self.channel {
                        let decoded = decode(message.get_payload_bytes());
                        for change in decoded.changes {
                            on_change(change, decoded.sent_at);
                        }
                    } else if let Some(change) = self.gone_token(message.get_channel_name(), message.get_payload_bytes()) {
                        // Redis's keyspace events say no time.
                        on_change(change, None);
                    }
                }
                _ = pings.tick() => {
                    match tokio::time::timeout(self.ping_timeout, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(self.conn.map_error("ping the subscription", &e).into()),
                        Err(_) => {
                            return Err(BusError(format!(
                                "Redis at {server} did not answer the subscription's ping within {} ms",
                                self.ping_timeout.as_millis()
                            )));
                        }
                    }
                }
            }
        }
    }
}

impl RedisBus {
    /// The token whose key a keyevent notification says is gone (the payload is the key's name),
    /// or `None` for every other key and channel.
    fn gone_token(&self, channel: &str, key: &[u8]) -> Option<Invalidation> {
        let event = channel.strip_prefix(self.keyevents.as_deref()?)?;
        if !GONE_EVENTS.contains(&event) {
            return None;
        }
        let hex = key.strip_prefix(self.conn.key_prefix().as_bytes())?.strip_prefix(b"tok:")?;
        let digest = crate::store::unhex32(std::str::from_utf8(hex).ok()?)?;
        Some(Invalidation::Token(TokenDigest(digest)))
    }
}

/// The next message; `None` once the connection is gone.
async fn next<S: Stream>(mut stream: Pin<&mut S>) -> Option<S::Item> {
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}

#[async_trait]
impl InvalidationBus for RedisBus {
    async fn publish(&self, changes: &[Invalidation]) -> Result<(), BusError> {
        for payload in encode(changes, Utc::now()) {
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(&self.channel).arg(payload);
            let _receivers: i64 = self.conn.query("publish invalidations", cmd).await?;
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        on_ready: &(dyn Fn() + Send + Sync),
        on_change: &(dyn Fn(Invalidation, Option<DateTime<Utc>>) + Send + Sync),
    ) -> BusError {
        match self.listen(on_ready, on_change).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }
}

/// The messages that carry `changes`, each saying it was published `at`.
pub(crate) fn encode(changes: &[Invalidation], at: DateTime<Utc>) -> Vec<String> {
    let sent = tessera_core::bus::sent_at_item(at);
    changes
        .chunks(PER_MESSAGE)
        .map(|chunk| {
            std::iter::once(sent.clone())
                .chain(chunk.iter().map(|change| match change {
                    Invalidation::Token(digest) => format!("t:{}", crate::store::hex(digest.as_bytes())),
                    Invalidation::User(id) => format!("u:{id}"),
                    Invalidation::Client(id) => format!("c:{id}"),
                }))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The changes in a message and its publish time (see [`tessera_core::bus::decode_message`]).
pub(crate) fn decode(payload: &[u8]) -> BusMessage {
    tessera_core::bus::decode_message(&String::from_utf8_lossy(payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::{ClientId, UserId};

    #[test]
    fn payloads_round_trip_and_stay_compact() {
        let changes: Vec<Invalidation> = (0..300)
            .map(|i| match i % 3 {
                0 => Invalidation::Token(TokenDigest([i as u8; 32])),
                1 => Invalidation::User(UserId(i)),
                _ => Invalidation::Client(ClientId(-i)),
            })
            .collect();
        let at = DateTime::<Utc>::from_timestamp_micros(1_764_850_000_000_007).expect("time");
        let messages = encode(&changes, at);
        assert_eq!(messages.len(), 2);
        assert!(
            messages[0].starts_with(&format!("at:1764850000000007 t:{} u:1 c:-2 ", "00".repeat(32))),
            "{}",
            &messages[0][..80]
        );
        assert!(messages.iter().all(|m| decode(m.as_bytes()).sent_at == Some(at)));
        let decoded: Vec<Invalidation> = messages.iter().flat_map(|m| decode(m.as_bytes()).changes).collect();
        assert_eq!(decoded, changes);
        let old = decode(b"x:1 t:zz u:7 u:x  c:3\n");
        assert_eq!(old.changes, vec![Invalidation::User(UserId(7)), Invalidation::Client(ClientId(3))]);
        assert_eq!(old.sent_at, None, "an older publisher's message says no time");
        assert!(encode(&[], at).is_empty());
    }
}
