//! The shared throttle: DRF's semantics, decided in Redis, exact across instances.

use chrono::Utc;
use std::sync::Arc;
use tessera_core::Rate;
use tessera_core::throttle::{Budget, Decision, Grant, RateLimiter, Reservation};
use tessera_redis::RedisRateLimiter;

fn rate(text: &str) -> Rate {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_together_allow_exactly_the_budget() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    // Two limiters on two connections, as two server processes would have.
    let a = Arc::new(RedisRateLimiter::new(redis.connect_again()));
    let b = Arc::new(RedisRateLimiter::new(redis.connect_again()));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { limiter.acquire("user:1:web", rate("10/m"), Utc::now()).await });
    }
    let mut allowed = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap().unwrap() {
            Decision::Allowed => allowed += 1,
            Decision::Throttled { wait_secs } => assert!((59..=60).contains(&wait_secs), "wait {wait_secs}"),
        }
    }
    assert_eq!(allowed, 10);
    // Another key has its own budget.
    assert_eq!(a.acquire("user:2:web", rate("10/m"), Utc::now()).await, Ok(Decision::Allowed));
}

#[tokio::test]
async fn waits_are_until_the_oldest_leaves_rounded_up() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let limiter = RedisRateLimiter::new(redis.conn.clone());
    let r = rate("2/m");
    assert_eq!(limiter.acquire("k", r, Utc::now()).await, Ok(Decision::Allowed));
    assert_eq!(limiter.acquire("k", r, Utc::now()).await, Ok(Decision::Allowed));
    // Less than a second after the first: it leaves in just under 60 s, rounded up.
    assert_eq!(limiter.acquire("k", r, Utc::now()).await, Ok(Decision::Throttled { wait_secs: 60 }));

    let r = rate("1/s");
    assert_eq!(limiter.acquire("fast", r, Utc::now()).await, Ok(Decision::Allowed));
    assert_eq!(limiter.acquire("fast", r, Utc::now()).await, Ok(Decision::Throttled { wait_secs: 1 }));
    tokio::time::sleep(std::time::Duration::from_millis(1_050)).await;
    assert_eq!(limiter.acquire("fast", r, Utc::now()).await, Ok(Decision::Allowed));
}

#[tokio::test]
async fn the_callers_clock_is_ignored() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let limiter = RedisRateLimiter::new(redis.conn.clone());
    let r = rate("1/h");
    let an_hour_ago = Utc::now() - chrono::TimeDelta::hours(1);
    assert_eq!(limiter.acquire("k", r, Utc::now()).await, Ok(Decision::Allowed));
    // A clock an hour behind (or ahead) changes nothing: Redis's clock decides.
    let later = Utc::now() + chrono::TimeDelta::hours(2);
    assert_eq!(limiter.acquire("k", r, later).await, Ok(Decision::Throttled { wait_secs: 3_600 }));
    assert_eq!(limiter.acquire("k", r, an_hour_ago).await, Ok(Decision::Throttled { wait_secs: 3_600 }));
}

#[tokio::test]
async fn check_records_nothing_and_record_always_counts() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let limiter = RedisRateLimiter::new(redis.conn.clone());
    let key = format!("{}throttle:k", redis.config.key_prefix);
    let r = rate("2/h");
    assert_eq!(limiter.check("k", r, Utc::now()).await, Ok(Decision::Allowed));
    assert!(redis.keys().await.is_empty(), "check records nothing");
    for _ in 0..3 {
        assert_eq!(limiter.record("k", r, Utc::now()).await, Ok(()));
    }
    assert_eq!(limiter.check("k", r, Utc::now()).await, Ok(Decision::Throttled { wait_secs: 3_600 }));
    assert_eq!(limiter.acquire("k", r, Utc::now()).await, Ok(Decision::Throttled { wait_secs: 3_600 }));
    let mut raw = redis.raw().await;
    let members: u64 = redis::cmd("ZCARD").arg(&key).query_async(&mut raw).await.unwrap();
    assert_eq!(members, 2, "a key keeps at most N entries");
}

#[tokio::test]
async fn keys_expire_after_a_window_and_reset_clears_them() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let limiter = RedisRateLimiter::new(redis.conn.clone());
    let mut raw = redis.raw().await;
    let p = &redis.config.key_prefix;
    limiter.acquire("minute", rate("5/m"), Utc::now()).await.unwrap();
    limiter.acquire("second", rate("5/s"), Utc::now()).await.unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(format!("{p}throttle:minute")).query_async(&mut raw).await.unwrap();
    assert!((59_000..=60_000).contains(&ttl), "pttl {ttl}");
    let ttl: i64 = redis::cmd("PTTL").arg(format!("{p}throttle:second")).query_async(&mut raw).await.unwrap();
    assert!((0..=1_000).contains(&ttl), "pttl {ttl}");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(redis.keys().await, vec![format!("{p}throttle:minute")], "an idle key expires after its window");
    limiter.reset().await;
    assert!(redis.keys().await.is_empty());
    assert_eq!(limiter.acquire("minute", rate("1/m"), Utc::now()).await, Ok(Decision::Allowed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_on_two_instances_take_exactly_the_budget() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let a = Arc::new(RedisRateLimiter::new(redis.connect_again()));
    let b = Arc::new(RedisRateLimiter::new(redis.connect_again()));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            let source = format!("login:user-ip:203.0.113.{i}/32:alice");
            let budgets =
                [Budget { key: &source, rate: rate("3/h") }, Budget { key: "login:user:alice", rate: rate("7/h") }];
            limiter.reserve(&budgets, Utc::now()).await
        });
    }
    let mut granted = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap().unwrap() {
            Reservation::Granted(grant) => granted.push(grant),
            Reservation::Throttled { wait_secs } => assert!((3_599..=3_600).contains(&wait_secs), "wait {wait_secs}"),
        }
    }
    assert_eq!(granted.len(), 7, "check and record are one step");
    let mut raw = redis.raw().await;
    let account = format!("{}throttle:login:user:alice", redis.config.key_prefix);
    let members: u64 = redis::cmd("ZCARD").arg(&account).query_async(&mut raw).await.unwrap();
    assert_eq!(members, 7);
}

#[tokio::test]
async fn a_reservation_is_all_or_nothing_and_release_gives_it_back() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let limiter = RedisRateLimiter::new(redis.conn.clone());
    let small = Budget { key: "small", rate: rate("1/m") };
    let large = Budget { key: "large", rate: rate("3/h") };
    let Ok(Reservation::Granted(grant)) = limiter.reserve(&[small, large], Utc::now()).await else { panic!("granted") };
    let refused = limiter.reserve(&[small, large], Utc::now()).await.unwrap();
    assert!(matches!(refused, Reservation::Throttled { wait_secs: 59..=60 }), "{refused:?}");
    // The refused reservation took nothing from `large`: two slots are left there.
    for _ in 0..2 {
        assert!(matches!(limiter.reserve(&[large], Utc::now()).await, Ok(Reservation::Granted(_))));
    }
    assert_eq!(limiter.check("large", large.rate, Utc::now()).await.map(|d| d == Decision::Allowed), Ok(false));
    // Giving the first back frees one slot in each; a grant the limiter never gave frees none.
    limiter.release(&[small, large], &Grant::new("not-a-member"), Utc::now()).await.unwrap();
    assert!(matches!(limiter.reserve(&[small], Utc::now()).await, Ok(Reservation::Throttled { .. })));
    limiter.release(&[small, large], &grant, Utc::now()).await.unwrap();
    assert!(matches!(limiter.reserve(&[small, large], Utc::now()).await, Ok(Reservation::Granted(_))));
}

#[tokio::test]
async fn remembered_keys_expire_and_long_keys_are_hashed() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let limiter = RedisRateLimiter::new(redis.conn.clone());
    let p = &redis.config.key_prefix;
    assert_eq!(limiter.remembers("known", Utc::now()).await, Ok(false));
    limiter.remember("known", std::time::Duration::from_millis(300), Utc::now()).await.unwrap();
    assert_eq!(limiter.remembers("known", Utc::now()).await, Ok(true));
    // A 60 KB username is not a 60 KB key.
    let long = format!("login:user:{}", "x".repeat(60_000));
    assert_eq!(limiter.acquire(&long, rate("1/m"), Utc::now()).await, Ok(Decision::Allowed));
    assert_eq!(limiter.acquire(&long, rate("1/m"), Utc::now()).await, Ok(Decision::Throttled { wait_secs: 60 }));
    let keys = redis.keys().await;
    assert!(keys.iter().all(|k| k.len() <= p.len() + "throttle:".len() + 71), "{keys:?}");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(limiter.remembers("known", Utc::now()).await, Ok(false));
}
