//! The server's own configuration, read with CONFIG on the real Redis: the eviction policy, and
//! keyspace notifications turning token keys that leave Redis by hand (DEL, UNLINK) or by expiry
//! into token invalidations. Each test changes a server setting through a guard that puts it back,
//! also on panic; tests of this binary that change settings take turns.

use crate::bus::{next_change, subscribe};
use std::time::Duration;
use tessera_core::TokenDigest;
use tessera_core::bus::InvalidationBus;
use tessera_core::store::Invalidation;
use tessera_redis::RedisBus;
use tessera_redis::server_config::{emits_token_deletions, policy_evicts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eviction_policy_is_read_as_the_server_has_it() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    for policy in ["allkeys-lru", "volatile-ttl", "noeviction"] {
        let _set = redis.set_server_config("maxmemory-policy", policy).await;
        let read = redis.conn.maxmemory_policy().await.unwrap();
        assert_eq!(read, policy);
        assert_eq!(policy_evicts(&read), policy != "noeviction");
    }
    let err = redis.conn.config_get("no-such-setting").await.unwrap_err().to_string();
    assert!(err.contains("no-such-setting"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabling_token_key_events_keeps_the_classes_already_on() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let _set = redis.set_server_config("notify-keyspace-events", "Kl").await;
    assert!(!emits_token_deletions(&redis.conn.keyspace_events().await.unwrap()));
    let now = redis.conn.enable_token_key_events().await.unwrap();
    for class in ['K', 'l', 'E', 'g', 'x', 'e'] {
        assert!(now.contains(class), "{class} in {now:?}");
    }
    assert!(emits_token_deletions(&now));
    // Enabling again changes nothing.
    assert_eq!(redis.conn.enable_token_key_events().await.unwrap(), now);
}

/// `<prefix>tok:<hex>` for `digest`.
fn token_key(prefix: &str, digest: &TokenDigest) -> String {
    let hex: String = digest.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}tok:{hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_keys_deleted_by_hand_or_expired_become_invalidations() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let _set = redis.set_server_config("notify-keyspace-events", "Egxe").await;
    let following = RedisBus::new(redis.connect_again()).following_token_keys();
    assert!(following.follows_token_keys());
    let mut sub = subscribe(following).await;
    let mut plain = subscribe(RedisBus::new(redis.connect_again())).await;
    let publisher = RedisBus::new(redis.connect_again());
    let mut raw = redis.raw().await;
    let prefix = redis.config.key_prefix.clone();
    let (a, b, c) = (TokenDigest([0xa1; 32]), TokenDigest([0xb2; 32]), TokenDigest([0xc3; 32]));
    for d in [&a, &b, &c] {
        let _: () = redis::cmd("HSET").arg(token_key(&prefix, d)).arg("id").arg(1).query_async(&mut raw).await.unwrap();
    }
    // Keys that are not token keys of this prefix are ignored: another prefix's, a pair key, a
    // token key with a malformed digest.
    let other = token_key("someone-else:", &a);
    for key in [other.as_str(), &format!("{prefix}pair:1:1"), &format!("{prefix}tok:xyz")] {
        let _: () = redis::cmd("SET").arg(key).arg("1").query_async(&mut raw).await.unwrap();
        let _: i64 = redis::cmd("DEL").arg(key).query_async(&mut raw).await.unwrap();
    }
    // An operator's DEL and UNLINK.
    let _: i64 = redis::cmd("DEL").arg(token_key(&prefix, &a)).query_async(&mut raw).await.unwrap();
    assert_eq!(next_change(&mut sub).await, Invalidation::Token(a));
    let _: i64 = redis::cmd("UNLINK").arg(token_key(&prefix, &b)).query_async(&mut raw).await.unwrap();
    assert_eq!(next_change(&mut sub).await, Invalidation::Token(b));
    // Expiry: the key is touched after its time so that Redis expires it now, not at its next
    // sampling.
    let _: () = redis::cmd("PEXPIRE").arg(token_key(&prefix, &c)).arg(20).query_async(&mut raw).await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let _: i64 = redis::cmd("EXISTS").arg(token_key(&prefix, &c)).query_async(&mut raw).await.unwrap();
    assert_eq!(next_change(&mut sub).await, Invalidation::Token(c));
    // A bus that does not follow token keys saw none of it: the first thing it gets is what is
    // published after.
    publisher.publish(&[Invalidation::User(tessera_core::UserId(7))]).await.unwrap();
    assert_eq!(next_change(&mut plain).await, Invalidation::User(tessera_core::UserId(7)));
    assert_eq!(next_change(&mut sub).await, Invalidation::User(tessera_core::UserId(7)));
    assert!(sub.changes.try_recv().is_err(), "nothing else");
}
