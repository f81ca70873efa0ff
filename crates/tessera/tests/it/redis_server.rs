//! `serve` and the Redis server's own configuration, on a redis-server of the test's own (so that
//! changing its configuration touches no other test): an evicting `maxmemory-policy` is refused
//! with tokens in Redis, and token keys deleted by hand reach a cached instance through keyspace
//! notifications within a second.

use crate::TESSERA;
use crate::cluster::refused_within;
use crate::faults::PrivateRedis;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tessera_testkit::{Backend, Method, Server, TestEnv};

const SESSIONS: &str = "/api/auth/sessions/";

fn env_on(redis: &PrivateRedis, token_store: &str) -> Option<TestEnv> {
    let mut env = TestEnv::new(TESSERA, Backend::Sqlite)?;
    env.env.insert("TESSERA_REDIS_URL".into(), redis.url());
    env.env.insert("TESSERA_TOKEN_STORE".into(), token_store.into());
    env.env.insert("TESSERA_LOGIN_THROTTLE_PER_IP".into(), "off".into());
    Some(env)
}

/// Runs `tessera serve`, which must exit with an error before it listens; returns its stderr.
fn serve_refused(env: &TestEnv) -> String {
    let mut child = env
        .command(&["serve", "--bind", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tessera serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tessera serve did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    assert!(!status.success(), "serve exited with {status}: {stderr}");
    assert!(!stderr.contains("listening on"), "it listened first: {stderr}");
    stderr
}

fn raw(redis: &PrivateRedis) -> redis::Connection {
    redis::Client::open(redis.url().as_str()).expect("URL").get_connection().expect("a raw connection")
}

fn config_set(redis: &PrivateRedis, name: &str, value: &str) {
    redis::cmd("CONFIG").arg("SET").arg(name).arg(value).exec(&mut raw(redis)).expect("CONFIG SET");
}

/// The one token key in Redis (the test keeps one at a time).
fn only_token_key(redis: &PrivateRedis) -> String {
    let keys: Vec<String> = redis::cmd("KEYS").arg("tessera:tok:*").query(&mut raw(redis)).expect("KEYS");
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys.into_iter().next().unwrap_or_default()
}

fn accepted(server: &Server, token: &str) {
    let (status, body) = server.call(Method::GET, SESSIONS, Some(token));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn an_evicting_redis_is_refused_when_it_holds_the_tokens() {
    let Some(redis) = PrivateRedis::start_with(&["--maxmemory-policy", "allkeys-lru"]) else { return };
    let Some(mut env) = env_on(&redis, "redis") else { return };
    let stderr = serve_refused(&env);
    for part in ["maxmemory-policy allkeys-lru", "`maxmemory-policy noeviction`", "redis_allow_eviction = true"] {
        assert!(stderr.contains(part), "{part:?} in {stderr}");
    }
    // volatile-* evicts keys with a TTL, which every expiring token has.
    config_set(&redis, "maxmemory-policy", "volatile-ttl");
    assert!(serve_refused(&env).contains("maxmemory-policy volatile-ttl"));

    // The operator may insist; and with tokens in SQL, Redis only throttles and carries the bus.
    env.ok(&["client", "create", "web"]);
    env.create_user("alice", &[]);
    env.env.insert("TESSERA_REDIS_ALLOW_EVICTION".into(), "true".into());
    let server = env.serve(&[]);
    accepted(&server, &server.token("alice", "web"));
    server.stop();
    env.env.remove("TESSERA_REDIS_ALLOW_EVICTION");
    env.env.insert("TESSERA_TOKEN_STORE".into(), "sql".into());
    let server = env.serve(&[]);
    accepted(&server, &server.token("alice", "web"));
    server.stop();

    // noeviction starts, as it always did.
    config_set(&redis, "maxmemory-policy", "noeviction");
    env.env.insert("TESSERA_TOKEN_STORE".into(), "redis".into());
    env.serve(&[]).stop();
}

#[test]
fn token_keys_deleted_by_hand_are_refused_by_a_cached_instance_within_a_second() {
    let Some(redis) = PrivateRedis::start() else { return };
    let Some(mut env) = env_on(&redis, "redis") else { return };
    env.ok(&["client", "create", "web"]);
    for user in ["alice", "bob", "carol"] {
        env.create_user(user, &[]);
    }

    // The documented gap: a Redis that emits no keyspace notifications (its default) and the
    // default redis_keyspace_events = "auto" leave the server's Redis alone, and a cached
    // instance keeps accepting a token whose key an operator deleted (until token_cache_timeout).
    let server = env.serve(&[]);
    let token = server.token("alice", "web");
    accepted(&server, &token);
    let _: i64 = redis::cmd("DEL").arg(only_token_key(&redis)).query(&mut raw(&redis)).expect("DEL");
    std::thread::sleep(Duration::from_millis(1_500));
    accepted(&server, &token);
    server.stop();
    let flags: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg("notify-keyspace-events").query(&mut raw(&redis)).expect("CONFIG GET");
    assert_eq!(flags.get(1).map(String::as_str), Some(""), "auto changed the server's configuration");

    // redis_keyspace_events = "on": the server turns them on (adding to what is on), and DEL or
    // UNLINK of a token key is honoured by the cached instance within a second.
    config_set(&redis, "notify-keyspace-events", "Kl");
    env.env.insert("TESSERA_REDIS_KEYSPACE_EVENTS".into(), "on".into());
    let server = env.serve(&[]);
    let flags: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg("notify-keyspace-events").query(&mut raw(&redis)).expect("CONFIG GET");
    let flags = flags.get(1).cloned().unwrap_or_default();
    for class in ['K', 'l', 'E', 'g', 'x', 'e'] {
        assert!(flags.contains(class), "{class} in {flags:?}");
    }
    for (user, command) in [("bob", "DEL"), ("carol", "UNLINK")] {
        let token = server.token(user, "web");
        accepted(&server, &token);
        accepted(&server, &token);
        let _: i64 = redis::cmd(command).arg(only_token_key(&redis)).query(&mut raw(&redis)).expect(command);
        refused_within(&server, &token, Duration::from_secs(1));
    }
    server.stop();

    // "auto" follows them now that the server emits them.
    env.env.remove("TESSERA_REDIS_KEYSPACE_EVENTS");
    let server = env.serve(&[]);
    let token = server.token("alice", "web");
    accepted(&server, &token);
    let _: i64 = redis::cmd("DEL").arg(only_token_key(&redis)).query(&mut raw(&redis)).expect("DEL");
    refused_within(&server, &token, Duration::from_secs(1));
    server.stop();
}
