//! [`PgListenBus`]: invalidations pushed to every instance by PostgreSQL's `LISTEN`/`NOTIFY`.

use crate::{Pools, SqlStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::convert::Infallible;
use std::time::Duration;
use tessera_core::bus::{BusError, BusMessage, InvalidationBus};
use tessera_core::store::Invalidation;

/// Whether the server still runs the backend of the LISTEN connection.
const LISTENER_ALIVE: &str = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)";

/// The channel the schema's invalidation triggers notify (migration 7).
pub const INVALIDATION_CHANNEL: &str = "tessera_invalidations";

/// An [`InvalidationBus`] on PostgreSQL's `LISTEN`/`NOTIFY`: the bus of a deployment on
/// PostgreSQL without Redis.
///
/// The schema's triggers (migration 7) notify the channel [`INVALIDATION_CHANNEL`] in the same
/// transaction as every change that writes the invalidation log — whoever makes it: a server,
/// the CLI, an operator's `DELETE FROM auth_tokens` in a SQL shell. PostgreSQL delivers the
/// notification when that transaction commits (never for one rolled back), so an instance that
/// listens drops the stale entries from its cache within milliseconds of the commit instead of at
/// its next read of the log. A payload is the log entry's position then the change:
/// `<seq> at:<µs> t:<hex digest>`, `<seq> at:<µs> u:<id>` or `<seq> at:<µs> c:<id>`, where `at:` is
/// when the trigger ran, in Unix microseconds by the database server's clock (migration 11).
///
/// [`publish`](InvalidationBus::publish) does nothing: the triggers publish. So the store needs
/// no [`NotifyingStore`](tessera_core::bus::NotifyingStore) around it for this bus.
///
/// [`subscribe`](InvalidationBus::subscribe) holds one connection of its own (taken from the
/// store's pool, then kept out of it) and returns as soon as that connection is lost — the
/// server closed it, `pg_terminate_backend`, a network error — or when, checked every
/// `ping_interval` (1 s) through the pool, the server no longer runs that connection's backend or
/// does not answer within 1 s: what was notified meanwhile is lost, so the cache must be
/// distrusted until the next subscription is in place. It never reconnects silently.
///
/// For a library user on PostgreSQL:
///
/// ```no_run
/// # async fn demo(keys: tessera_core::KeyRing) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tessera_sql::{PgListenBus, SqlStore};
///
/// let store = SqlStore::connect("postgres://tessera@db.internal/tessera").await?;
/// store.migrate().await?;
/// let bus = PgListenBus::new(&store).expect("a PostgreSQL store");
/// // tessera_axum::Tessera::builder(Arc::new(store), keys).bus(Arc::new(bus)).build()?;
/// # let _ = (Arc::new(bus), keys);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgListenBus {
    pool: PgPool,
    ping_interval: Duration,
    ping_timeout: Duration,
}

impl PgListenBus {
    /// A bus on `store`'s database, or `None` when the store is not on PostgreSQL.
    pub fn new(store: &SqlStore) -> Option<Self> {
        #[allow(unreachable_patterns)]
        match &store.pools {
            Pools::Postgres(pool) => Some(Self {
                pool: pool.clone(),
                ping_interval: Duration::from_secs(1),
                ping_timeout: Duration::from_secs(1),
            }),
            _ => None,
        }
    }

    /// How often the subscription checks its connection (default 1 s, at least 10 ms).
    pub fn with_ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval.max(Duration::from_millis(10));
        self
    }

    async fn listen(
        &self,
        on_ready: &(dyn Fn() + Send + Sync),
        on_change: &(dyn Fn(Invalidation, Option<DateTime<Utc>>) + Send + Sync),
    ) -> Result<Infallible, BusError> {
        let lost = |what: &str, e: sqlx::Error| BusError(format!("PostgreSQL LISTEN connection: {what}: {e}"));
        let mut listener = PgListener::connect_with(&self.pool).await.map_err(|e| lost("connect", e))?;
        // Reconnecting is this bus's caller's decision (after distrusting the cache), never sqlx's.
        listener.eager_reconnect(false);
        listener.ignore_pool_close_event(false);
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut listener)
            .await
            .map_err(|e| lost("connect", e))?;
        listener.listen(INVALIDATION_CHANNEL).await.map_err(|e| lost("LISTEN", e))?;
        on_ready();
        loop {
            // Dropping `try_recv` at the timeout loses nothing: sqlx reads a message off the socket
            // cancel-safely, and the next `try_recv` reads what arrived meanwhile.
            match tokio::time::timeout(self.ping_interval, listener.try_recv()).await {
                Ok(Ok(Some(notification))) => {
                    let decoded = decode(notification.payload());
                    for change in decoded.changes {
                        on_change(change, decoded.sent_at);
                    }
                }
                Ok(Ok(None)) => return Err(BusError("the PostgreSQL LISTEN connection was closed".into())),
                Ok(Err(e)) => return Err(lost("receive", e)),
                Err(_quiet) => {
                    // Checked from the pool, never on the LISTEN connection itself: a query there
                    // delayed the notifications that arrived meanwhile by tens of milliseconds.
                    let alive = sqlx::query_scalar::<_, bool>(LISTENER_ALIVE).bind(pid).fetch_one(&self.pool);
                    match tokio::time::timeout(self.ping_timeout, alive).await {
                        Ok(Ok(true)) => {}
                        Ok(Ok(false)) => {
                            return Err(BusError("the PostgreSQL LISTEN connection is gone on the server".into()));
                        }
                        Ok(Err(e)) => return Err(lost("check", e)),
                        Err(_) => {
                            return Err(BusError(format!(
                                "PostgreSQL did not confirm the LISTEN connection within {} ms",
                                self.ping_timeout.as_millis()
                            )));
                        }
                    }
                }
            }
        }
    }
}

#[async_trait]
impl InvalidationBus for PgListenBus {
    /// Nothing to do: the schema's triggers notify, at commit, for every change.
    async fn publish(&self, _changes: &[Invalidation]) -> Result<(), BusError> {
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

/// The changes in a notification's payload and when it was sent: the log position, then the items
/// every bus carries (`at:` since migration 11).
pub(crate) fn decode(payload: &str) -> BusMessage {
    tessera_core::bus::decode_message(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::{ClientId, TokenDigest, UserId};

    #[test]
    fn payloads_decode() {
        let hex = "0a".repeat(32);
        let changes = |payload: &str| decode(payload).changes;
        assert_eq!(changes(&format!("17 t:{hex}")), vec![Invalidation::Token(TokenDigest([10; 32]))]);
        assert_eq!(changes(&format!("17 t:{}", hex.to_uppercase())), vec![Invalidation::Token(TokenDigest([10; 32]))]);
        assert_eq!(changes("18 u:-42"), vec![Invalidation::User(UserId(-42))]);
        assert_eq!(changes("19 c:7"), vec![Invalidation::Client(ClientId(7))]);
        assert_eq!(changes("x:1 t:zz t:0a u:x 20  c:3\n"), vec![Invalidation::Client(ClientId(3))]);
        let sent = decode("21 at:1764850000000001 c:7");
        assert_eq!(sent.changes, vec![Invalidation::Client(ClientId(7))]);
        assert_eq!(sent.sent_at.map(|t| t.timestamp_micros()), Some(1_764_850_000_000_001));
        assert_eq!(decode("19 c:7").sent_at, None, "migration 7's payload says no time");
        assert!(decode("").changes.is_empty());
    }
}
