//! The invalidation bus: every published change arrives, a killed subscription makes `subscribe`
//! return within about a second, and the token store's scripts publish what they revoke.

use crate::support::{Proxy, redis_host_port, url_via};
use chrono::{DateTime, TimeDelta, Utc};
use std::time::{Duration, Instant};
use tessera_core::bus::{BusError, InvalidationBus};
use tessera_core::store::{Invalidation, TokenFilter, TokenStore};
use tessera_core::{ClientId, NewToken, ServerKey, TokenCodec, TokenDigest, UserId};
use tessera_redis::testing::TestRedis;
use tessera_redis::{RedisBus, RedisConnection, RedisTokenStore, RedisTokenStoreConfig};
use tokio::sync::{mpsc, oneshot};

/// A running subscription: its changes, and how it ended.
pub(crate) struct Subscription {
    pub(crate) changes: mpsc::UnboundedReceiver<Invalidation>,
    /// Each change's message's publish time, in the order of `changes`.
    sent: mpsc::UnboundedReceiver<Option<DateTime<Utc>>>,
    /// The publish time of the change [`next_change`] returned last.
    last_sent: Option<DateTime<Utc>>,
    ended: oneshot::Receiver<BusError>,
}

/// Subscribes on `bus` in a task and waits until the subscription is in place.
pub(crate) async fn subscribe(bus: RedisBus) -> Subscription {
    let (ready_tx, ready_rx) = oneshot::channel::<()>();
    let (change_tx, changes) = mpsc::unbounded_channel();
    let (sent_tx, sent) = mpsc::unbounded_channel();
    let (end_tx, ended) = oneshot::channel();
    tokio::spawn(async move {
        let ready = std::sync::Mutex::new(Some(ready_tx));
        let on_ready = move || {
            if let Some(tx) = ready.lock().unwrap().take() {
                let _ = tx.send(());
            }
        };
        let on_change = move |change, sent_at| {
            let _ = sent_tx.send(sent_at);
            let _ = change_tx.send(change);
        };
        let error = bus.subscribe(&on_ready, &on_change).await;
        let _ = end_tx.send(error);
    });
    tokio::time::timeout(Duration::from_secs(5), ready_rx).await.expect("subscribed in time").expect("ready");
    Subscription { changes, sent, last_sent: None, ended }
}

/// The publish time of the message of the change [`next_change`] returned last: `Some` and within a
/// day of now (microseconds, not another unit), or the test fails.
pub(crate) fn sent_at_of_last(sub: &mut Subscription) -> DateTime<Utc> {
    let at = sub.last_sent.expect("the message says when it was sent");
    assert!((Utc::now() - at).abs() < TimeDelta::days(1), "implausible publish time {at}");
    at
}

pub(crate) async fn next_change(sub: &mut Subscription) -> Invalidation {
    let change = tokio::time::timeout(Duration::from_secs(5), sub.changes.recv())
        .await
        .expect("a change in time")
        .expect("open");
    // Sent before the change, on a channel of its own.
    sub.last_sent = sub.sent.try_recv().expect("a publish time per change");
    change
}

fn new_token(user: i64, client: i64, expiry: Option<DateTime<Utc>>) -> NewToken {
    let issued = TokenCodec::new(ServerKey::generate(), "tsr_", 64).unwrap().issue();
    let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    NewToken {
        user_id: UserId(user),
        client_id: ClientId(client),
        digest: issued.digest,
        seed: issued.seed,
        key_id: issued.key_id,
        created: now,
        expiry,
        user_agent: None,
        ip: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_receive_every_published_change() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let mut first = subscribe(RedisBus::new(redis.conn.clone())).await;
    let mut second = subscribe(RedisBus::new(redis.connect_again())).await;
    let changes: Vec<Invalidation> = (0..600)
        .map(|i| match i % 3 {
            0 => Invalidation::Token(TokenDigest([(i % 256) as u8; 32])),
            1 => Invalidation::User(UserId(i)),
            _ => Invalidation::Client(ClientId(i)),
        })
        .collect();
    let publisher = RedisBus::new(redis.connect_again());
    publisher.publish(&changes[..1]).await.unwrap();
    publisher.publish(&changes[1..]).await.unwrap();
    publisher.publish(&[]).await.unwrap();
    for sub in [&mut first, &mut second] {
        for want in &changes {
            assert_eq!(&next_change(sub).await, want);
            sent_at_of_last(sub);
        }
    }
    // Another prefix is another channel.
    let other = RedisConnection::new(&tessera_redis::RedisConfig {
        key_prefix: tessera_redis::testing::unique_prefix(),
        ..redis.config.clone()
    })
    .unwrap();
    RedisBus::new(other).publish(&[Invalidation::User(UserId(1))]).await.unwrap();
    publisher.publish(&[Invalidation::Client(ClientId(9))]).await.unwrap();
    assert_eq!(next_change(&mut first).await, Invalidation::Client(ClientId(9)));
}

/// A Redis user of the test's own, so that killing "its" connections touches no one else's.
struct TestUser {
    url: String,
    name: String,
}

impl TestUser {
    async fn create(redis: &TestRedis) -> TestUser {
        let name = format!("tessera-test-{}", redis.config.key_prefix.trim_end_matches(':').replace(':', "-"));
        let mut raw = redis.raw().await;
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&name)
            .arg("on")
            .arg(">s3cret-bus-pw")
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .exec_async(&mut raw)
            .await
            .unwrap();
        let (scheme, rest) = redis.config.url.split_once("://").unwrap();
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        TestUser { url: format!("{scheme}://{name}:s3cret-bus-pw@{rest}"), name }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let deleted = redis::Client::open(tessera_redis::testing::redis_url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut c| redis::cmd("ACL").arg("DELUSER").arg(&self.name).exec(&mut c));
        if let Err(e) = deleted {
            eprintln!("warning: could not delete the test user {}: {e}", self.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscription_returns_within_a_second() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let user = TestUser::create(&redis).await;
    let config = tessera_redis::RedisConfig { url: user.url.clone(), ..redis.config.clone() };
    let sub = subscribe(RedisBus::new(RedisConnection::new(&config).unwrap())).await;

    let mut raw = redis.raw().await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .arg("USER")
        .arg(&user.name)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    let started = Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(3), sub.ended).await.expect("subscribe returned").unwrap();
    assert!(started.elapsed() < Duration::from_millis(1_500), "noticed after {:?}", started.elapsed());
    let message = error.to_string();
    assert!(message.contains("invalidation bus unavailable"), "{message}");
    assert!(!message.contains("s3cret-bus-pw"), "the password leaked: {message}");

    // Subscribing again works at once.
    let mut again = subscribe(RedisBus::new(RedisConnection::new(&config).unwrap())).await;
    RedisBus::new(redis.conn.clone()).publish(&[Invalidation::User(UserId(3))]).await.unwrap();
    assert_eq!(next_change(&mut again).await, Invalidation::User(UserId(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_store_publishes_what_it_revokes() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let mut sub = subscribe(RedisBus::new(redis.connect_again())).await;
    let store = RedisTokenStore::new(redis.conn.clone(), RedisTokenStoreConfig::default());
    let in_an_hour = Utc::now() + TimeDelta::hours(1);
    let t = |n| new_token(1, n, Some(in_an_hour));

    // Creating, renewing and recording uses publish nothing; deleting does.
    let a = store.create_token(t(1)).await.unwrap();
    assert!(store.extend_expiry(a.id, Some(in_an_hour + TimeDelta::hours(1)), Utc::now()).await.unwrap());
    store.record_last_used(&[(a.id, Utc::now())]).await.unwrap();
    assert!(store.delete_token(a.id).await.unwrap());
    assert_eq!(next_change(&mut sub).await, Invalidation::Token(a.digest));
    sent_at_of_last(&mut sub); // the script stamps its messages with Redis's TIME

    // Bringing an expiry forward publishes; so does an admin's set_expiry.
    let b = store.create_token(t(2)).await.unwrap();
    assert!(store.extend_expiry(b.id, Some(Utc::now()), Utc::now()).await.unwrap());
    assert_eq!(next_change(&mut sub).await, Invalidation::Token(b.digest));
    assert!(store.set_expiry(b.id, None).await.unwrap());
    assert_eq!(next_change(&mut sub).await, Invalidation::Token(b.digest));

    // Logout-all: every token of the user, in one message.
    let c = store.create_token(t(3)).await.unwrap();
    let gone = store
        .delete_tokens(TokenFilter { user: Some(UserId(1)), client: None, key: None, legacy: false })
        .await
        .unwrap();
    assert_eq!(gone.len(), 2);
    let mut got = vec![next_change(&mut sub).await];
    sent_at_of_last(&mut sub);
    got.push(next_change(&mut sub).await);
    got.sort_by_key(|c| format!("{c:?}"));
    let mut want = vec![Invalidation::Token(b.digest), Invalidation::Token(c.digest)];
    want.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(got, want);

    // Purging expired tokens publishes them.
    let expired = store.create_token(new_token(2, 1, Some(Utc::now() - TimeDelta::seconds(1)))).await.unwrap();
    store.create_token(new_token(2, 2, Some(in_an_hour))).await.unwrap();
    assert_eq!(store.purge_expired(Utc::now()).await.unwrap(), 1);
    assert_eq!(next_change(&mut sub).await, Invalidation::Token(expired.digest));
    sent_at_of_last(&mut sub);
    assert!(sub.changes.try_recv().is_err(), "nothing else was published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_subscription_stays_up_and_a_silent_drop_is_noticed() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let proxy = Proxy::start(redis_host_port(&redis.config.url)).await;
    let config = tessera_redis::RedisConfig { url: url_via(&redis.config.url, proxy.addr), ..redis.config.clone() };
    let bus = RedisBus::new(RedisConnection::new(&config).unwrap()).with_ping_interval(Duration::from_millis(50));
    let mut sub = subscribe(bus).await;
    // Many pings answered: still subscribed, still delivering.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(sub.ended.try_recv().is_err(), "the subscription ended while idle");
    RedisBus::new(redis.conn.clone()).publish(&[Invalidation::Client(ClientId(5))]).await.unwrap();
    assert_eq!(next_change(&mut sub).await, Invalidation::Client(ClientId(5)));

    // The connection stays open but nothing comes through: the next ping goes unanswered.
    proxy.freeze();
    let started = Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(3), sub.ended).await.expect("subscribe returned").unwrap();
    assert!(started.elapsed() < Duration::from_millis(1_500), "noticed after {:?}", started.elapsed());
    assert!(error.to_string().contains("did not answer the subscription's ping"), "{error}");
}
