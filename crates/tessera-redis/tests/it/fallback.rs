//! The throttle while Redis is down: in-process limits (or errors), quickly, without a panic, and
//! back to Redis by itself.

use crate::support::{LogCounter, Proxy, closed_port, redis_host_port, unreachable_config, url_via};
use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_core::Rate;
use tessera_core::throttle::{Budget, Decision, RateLimiter, Reservation};
use tessera_redis::{FallbackMode, FallbackRateLimiter, RedisConnection, RedisRateLimiter};

fn rate(text: &str) -> Rate {
    text.parse().unwrap()
}

async fn limiter_on_closed_port(mode: FallbackMode) -> FallbackRateLimiter {
    let config = unreachable_config(format!("redis://:hunter2@127.0.0.1:{}", closed_port()));
    let conn = RedisConnection::new(&config).unwrap();
    FallbackRateLimiter::new(Arc::new(RedisRateLimiter::new(conn)), mode)
}

#[tokio::test]
async fn falls_back_to_in_process_limits() {
    let logs = LogCounter::default();
    let _logging = tracing::subscriber::set_default(logs.clone());
    // Every request tries Redis (no probe interval): still one warning for the outage.
    let limiter = limiter_on_closed_port(FallbackMode::Fallback).await.with_probe_interval(Duration::ZERO);
    let started = Instant::now();
    let now = Utc::now();
    let r = rate("2/m");
    assert_eq!(limiter.acquire("k", r, now).await, Ok(Decision::Allowed));
    assert!(limiter.is_degraded());
    assert_eq!(limiter.acquire("k", r, now).await, Ok(Decision::Allowed));
    assert_eq!(limiter.acquire("k", r, now).await, Ok(Decision::Throttled { wait_secs: 60 }));
    assert_eq!(limiter.check("k", r, now).await, Ok(Decision::Throttled { wait_secs: 60 }));
    assert_eq!(limiter.record("other", r, now).await, Ok(()));
    // Reservations, their release and remembered keys fall back too.
    let budgets = [Budget { key: "login", rate: r }];
    let Ok(Reservation::Granted(grant)) = limiter.reserve(&budgets, now).await else { panic!("granted") };
    assert!(matches!(limiter.reserve(&budgets, now).await, Ok(Reservation::Granted(_))));
    assert_eq!(limiter.reserve(&budgets, now).await, Ok(Reservation::Throttled { wait_secs: 60 }));
    assert_eq!(limiter.release(&budgets, &grant, now).await, Ok(()));
    assert!(matches!(limiter.reserve(&budgets, now).await, Ok(Reservation::Granted(_))));
    assert_eq!(limiter.remember("known", Duration::from_secs(60), now).await, Ok(()));
    assert_eq!(limiter.remembers("known", now).await, Ok(true));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!((logs.warnings(), logs.infos()), (1, 0), "one warning per outage");
}

#[tokio::test]
async fn refuses_when_configured_to() {
    let limiter = limiter_on_closed_port(FallbackMode::Refuse).await;
    let started = Instant::now();
    for _ in 0..3 {
        let err = limiter.acquire("k", rate("2/m"), Utc::now()).await.unwrap_err().to_string();
        assert!(err.contains("rate limiter unavailable"), "{err}");
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
    }
    assert!(limiter.record("k", rate("2/m"), Utc::now()).await.is_err());
    assert!(limiter.reserve(&[Budget { key: "k", rate: rate("2/m") }], Utc::now()).await.is_err());
    assert!(limiter.remembers("k", Utc::now()).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn goes_back_to_redis_when_it_answers_again() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let logs = LogCounter::default();
    let _logging = tracing::subscriber::set_default(logs.clone());
    let proxy = Proxy::start(redis_host_port(&redis.config.url)).await;
    let mut config = redis.config.clone();
    config.url = url_via(&redis.config.url, proxy.addr);
    config.connect_timeout = Duration::from_millis(300);
    config.response_timeout = Duration::from_millis(300);
    let shared = Arc::new(RedisRateLimiter::new(RedisConnection::new(&config).unwrap()));
    let limiter =
        FallbackRateLimiter::new(shared, FallbackMode::Fallback).with_probe_interval(Duration::from_millis(100));
    let r = rate("1/m");

    assert_eq!(limiter.acquire("k", r, Utc::now()).await, Ok(Decision::Allowed), "Redis decides");
    assert_eq!(limiter.acquire("k", r, Utc::now()).await, Ok(Decision::Throttled { wait_secs: 60 }));
    assert!(!limiter.is_degraded());

    proxy.cut();
    // The in-process limiter has its own, fresh budget.
    assert_eq!(limiter.acquire("k", r, Utc::now()).await, Ok(Decision::Allowed));
    assert!(limiter.is_degraded());
    assert!(matches!(limiter.acquire("k", r, Utc::now()).await, Ok(Decision::Throttled { .. })));

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(5);
    while limiter.is_degraded() {
        assert!(Instant::now() < deadline, "the limiter did not go back to Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = limiter.check("other", r, Utc::now()).await;
    }
    // Redis remembers the request it allowed before the outage.
    assert_eq!(limiter.acquire("k", r, Utc::now()).await, Ok(Decision::Throttled { wait_secs: 60 }));
    assert_eq!(limiter.acquire("fresh", r, Utc::now()).await, Ok(Decision::Allowed));
    assert_eq!((logs.warnings(), logs.infos()), (1, 1), "a warning when it failed, an info when it recovered");
}
