//! Redis's own expiry: every key of a token expires at its expiry plus the grace period, never
//! expiring tokens have no TTL, and a token Redis forgot is gone everywhere.

use chrono::{DateTime, TimeDelta, Utc};
use redis::AsyncCommands;
use std::time::Duration;
use tessera_core::store::{TokenFilter, TokenStore};
use tessera_core::{ClientId, NewToken, ServerKey, TokenCodec, UserId};
use tessera_redis::testing::TestRedis;
use tessera_redis::{RedisTokenStore, RedisTokenStoreConfig};

fn now_micros() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap()
}

fn new_token(user: i64, client: i64, expiry: Option<DateTime<Utc>>) -> NewToken {
    let issued = TokenCodec::new(ServerKey::generate(), "tsr_", 64).unwrap().issue();
    NewToken {
        user_id: UserId(user),
        client_id: ClientId(client),
        digest: issued.digest,
        seed: issued.seed,
        key_id: issued.key_id,
        created: now_micros(),
        expiry,
        user_agent: None,
        ip: None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// PEXPIRETIME of each key: ms since the epoch, -1 no expiry, -2 no key.
async fn expire_times(redis: &TestRedis, keys: &[String]) -> Vec<i64> {
    let mut raw = redis.raw().await;
    let mut out = Vec::new();
    for key in keys {
        out.push(redis::cmd("PEXPIRETIME").arg(key).query_async(&mut raw).await.unwrap());
    }
    out
}

fn token_keys(redis: &TestRedis, digest: &str, id: i64, user: i64, client: i64) -> Vec<String> {
    let p = &redis.config.key_prefix;
    vec![format!("{p}tok:{digest}"), format!("{p}pair:{user}:{client}"), format!("{p}id:{id}")]
}

fn ms_ceil(t: DateTime<Utc>) -> i64 {
    (t.timestamp_micros() + 999).div_euclid(1000)
}

#[tokio::test]
async fn keys_expire_at_expiry_plus_grace_and_never_means_no_ttl() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let store = RedisTokenStore::new(redis.conn.clone(), RedisTokenStoreConfig::default());
    let day = 24 * 3600 * 1000;
    let expiry = now_micros() + TimeDelta::hours(1) + TimeDelta::microseconds(1);
    let token = store.create_token(new_token(1, 2, Some(expiry))).await.unwrap();
    let keys = token_keys(&redis, &hex(token.digest.as_bytes()), token.id.0, 1, 2);
    let want = ms_ceil(expiry) + day;
    assert_eq!(expire_times(&redis, &keys).await, vec![want; 3]);
    let p = &redis.config.key_prefix;
    let sets = [format!("{p}user:1"), format!("{p}client:2")];
    assert_eq!(expire_times(&redis, &sets).await, vec![want; 2], "index sets live as long as their member");

    // Extending moves every expiry; the index sets follow upward only.
    let later = expiry + TimeDelta::hours(2);
    assert!(store.extend_expiry(token.id, Some(later), now_micros()).await.unwrap());
    assert_eq!(expire_times(&redis, &keys).await, vec![ms_ceil(later) + day; 3]);
    assert!(store.set_expiry(token.id, Some(expiry)).await.unwrap());
    assert_eq!(expire_times(&redis, &keys).await, vec![want; 3]);
    assert_eq!(expire_times(&redis, &sets).await, vec![ms_ceil(later) + day; 2]);

    // Never: no TTL anywhere, the index sets included.
    assert!(store.set_expiry(token.id, None).await.unwrap());
    assert_eq!(expire_times(&redis, &keys).await, vec![-1; 3]);
    assert_eq!(expire_times(&redis, &sets).await, vec![-1; 2]);
    let never = store.create_token(new_token(1, 3, None)).await.unwrap();
    let never_keys = token_keys(&redis, &hex(never.digest.as_bytes()), never.id.0, 1, 3);
    assert_eq!(expire_times(&redis, &never_keys).await, vec![-1; 3]);
    assert_eq!(expire_times(&redis, &[format!("{p}client:3")]).await, vec![-1]);
    // A persistent user set stays persistent when a mortal token joins it.
    store.create_token(new_token(1, 4, Some(expiry))).await.unwrap();
    assert_eq!(expire_times(&redis, &[format!("{p}user:1")]).await, vec![-1]);
}

#[tokio::test]
async fn an_expired_token_is_reported_during_the_grace_period() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let store = RedisTokenStore::new(redis.conn.clone(), RedisTokenStoreConfig::default());
    let expired_at = now_micros() - TimeDelta::minutes(5);
    let token = store.create_token(new_token(1, 2, Some(expired_at))).await.unwrap();
    let found = store.token_by_digest(&token.digest).await.unwrap().expect("kept for the grace period");
    assert!(found.has_expired(now_micros()));
    // Renewal refuses it, and purging removes it.
    assert!(!store.extend_expiry(token.id, Some(now_micros() + TimeDelta::hours(1)), now_micros()).await.unwrap());
    assert_eq!(store.purge_expired(now_micros()).await.unwrap(), 1);
    assert_eq!(store.token_by_id(token.id).await.unwrap(), None);
    // Nothing is left behind: no counter either (ids are random).
    assert_eq!(redis.keys().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_token_redis_forgot_is_gone_everywhere() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let store = RedisTokenStore::new(redis.conn.clone(), RedisTokenStoreConfig { expired_grace: Duration::ZERO });
    // One token that stays (so the user's and client's sets stay), one that Redis forgets.
    let kept = store.create_token(new_token(7, 8, None)).await.unwrap();
    let short = store.create_token(new_token(7, 9, Some(now_micros() + TimeDelta::milliseconds(300)))).await.unwrap();
    let other = store.create_token(new_token(6, 8, Some(now_micros() + TimeDelta::milliseconds(300)))).await.unwrap();
    assert_eq!(store.list_tokens(TokenFilter::default()).await.unwrap().len(), 3);
    tokio::time::sleep(Duration::from_millis(450)).await;

    assert_eq!(store.token_by_id(short.id).await.unwrap(), None);
    assert_eq!(store.token_by_digest(&short.digest).await.unwrap(), None);
    assert_eq!(store.token_for(UserId(7), ClientId(9)).await.unwrap(), None);
    let p = &redis.config.key_prefix;
    let mut raw = redis.raw().await;
    let short_hex = hex(short.digest.as_bytes());
    let user_set = format!("{p}user:7");
    let client_set = format!("{p}client:8");
    let stale: bool = raw.sismember(&user_set, &short_hex).await.unwrap();
    assert!(stale, "the index set still names the forgotten token");

    // Reading the user's and the client's tokens drops the stale members.
    let filter = TokenFilter { user: Some(UserId(7)), client: None, key: None, legacy: false };
    assert_eq!(store.list_tokens(filter).await.unwrap(), vec![kept.clone()]);
    let stale: bool = raw.sismember(&user_set, &short_hex).await.unwrap();
    assert!(!stale);
    let filter = TokenFilter { user: None, client: Some(ClientId(8)), key: None, legacy: false };
    assert_eq!(store.delete_tokens(filter).await.unwrap(), vec![kept]);
    let client_set_exists: bool = raw.exists(&client_set).await.unwrap();
    assert!(!client_set_exists, "the forgotten member {:?} was dropped with the deleted one", other.id);

    // The pair is free again: get_or_create makes a new token.
    let (again, created) = store.get_or_create_token(new_token(7, 9, None)).await.unwrap();
    assert!(created);
    assert_ne!(again.id, short.id);
    assert_eq!(store.list_tokens(TokenFilter::default()).await.unwrap(), vec![again]);
}
