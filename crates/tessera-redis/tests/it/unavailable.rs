//! Redis that is not there, or does not answer: clear errors within the timeouts, no panic, no
//! password in any message.

use crate::support::{closed_port, unreachable_config};
use chrono::Utc;
use std::time::{Duration, Instant};
use tessera_core::bus::InvalidationBus;
use tessera_core::store::{StoreError, TokenStore};
use tessera_core::{ClientId, NewToken, ServerKey, TokenCodec, TokenId, UserId};
use tessera_redis::{RedisBus, RedisConnection, RedisError, RedisTokenStore, RedisTokenStoreConfig};

fn new_token() -> NewToken {
    let issued = TokenCodec::new(ServerKey::generate(), "tsr_", 64).unwrap().issue();
    NewToken {
        user_id: UserId(1),
        client_id: ClientId(1),
        digest: issued.digest,
        seed: issued.seed,
        key_id: issued.key_id,
        created: Utc::now(),
        expiry: None,
        user_agent: None,
        ip: None,
    }
}

#[track_caller]
fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Unavailable(message)) => {
            assert!(!message.contains("hunter2"), "the password leaked: {message}");
            message
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

async fn check_store(url: String, budget: Duration) {
    let conn = RedisConnection::new(&unreachable_config(url)).unwrap();
    let store = RedisTokenStore::new(conn.clone(), RedisTokenStoreConfig::default());
    let started = Instant::now();
    let message = assert_unavailable(store.token_by_id(TokenId(1)).await);
    assert!(message.contains("127.0.0.1") || message.contains("10.255.255.1"), "names the server: {message}");
    assert!(message.contains("***"), "shows the URL masked: {message}");
    assert_unavailable(store.create_token(new_token()).await);
    assert_unavailable(store.purge_expired(Utc::now()).await);
    assert_unavailable(store.ping().await);
    assert!(started.elapsed() < budget, "took {:?}", started.elapsed());
    let error = RedisBus::new(conn).publish(&[tessera_core::Invalidation::User(UserId(1))]).await.unwrap_err();
    assert!(!error.to_string().contains("hunter2"));
}

#[tokio::test]
async fn a_closed_port_is_unavailable_at_once() {
    check_store(format!("redis://:hunter2@127.0.0.1:{}", closed_port()), Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_server_that_never_answers_is_unavailable_within_the_timeouts() {
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    // Four calls, each bounded by connect + response timeout (600 ms).
    check_store(format!("redis://app:hunter2@127.0.0.1:{port}"), Duration::from_secs(4)).await;
}

#[tokio::test]
async fn subscribing_to_an_absent_server_fails_cleanly() {
    let conn =
        RedisConnection::new(&unreachable_config(format!("redis://:hunter2@127.0.0.1:{}", closed_port()))).unwrap();
    let started = Instant::now();
    let error = RedisBus::new(conn).subscribe(&|| panic!("not ready"), &|_, _| {}).await;
    assert!(error.to_string().contains("invalidation bus unavailable"), "{error}");
    assert!(!error.to_string().contains("hunter2"));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn bad_configurations_are_errors_not_panics() {
    // Outside a runtime.
    let err = RedisConnection::new(&tessera_redis::RedisConfig::default()).unwrap_err();
    assert!(matches!(err, RedisError::Config(_)), "{err}");
    assert!(err.to_string().contains("Tokio runtime"), "{err}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let config = tessera_redis::RedisConfig { url: "mysql://:hunter2@db".into(), ..Default::default() };
        let err = RedisConnection::new(&config).unwrap_err().to_string();
        assert!(err.contains("invalid Redis configuration"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    });
}
