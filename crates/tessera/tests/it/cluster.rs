//! Several real `tessera serve` processes on one PostgreSQL database and one Redis: what one
//! instance or the CLI does, every instance honours; the throttle counts once for all.

use crate::TESSERA;
use std::time::{Duration, Instant};
use tessera_testkit::{Backend, Method, Server, TestEnv};

const SESSIONS: &str = "/api/auth/sessions/";

/// A fresh PostgreSQL database, a unique Redis key prefix (deleted at the end), a shared key.
pub struct Cluster {
    pub env: TestEnv,
    _redis: tessera_redis::testing::TestRedis,
    _rt: tokio::runtime::Runtime,
}

impl Cluster {
    pub fn new(token_store: &str) -> Option<Cluster> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let redis = rt.block_on(tessera_redis::testing::redis())?;
        let mut env = TestEnv::new(TESSERA, Backend::Postgres)?;
        let key = env.ok(&["key", "generate"]).trim().to_string();
        env.env.insert("TESSERA_SECRET_KEY".into(), key);
        env.env.insert("TESSERA_REDIS_URL".into(), tessera_redis::testing::redis_url());
        env.env.insert("TESSERA_REDIS_KEY_PREFIX".into(), redis.config.key_prefix.clone());
        env.env.insert("TESSERA_TOKEN_STORE".into(), token_store.into());
        env.env.insert("TESSERA_LOGIN_THROTTLE_PER_IP".into(), "off".into());
        Some(Cluster { env, _redis: redis, _rt: rt })
    }
}

/// Polls until `path` with `token` on `server` answers `status`; fails after `limit`.
pub fn refused_within(server: &Server, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = server.call(Method::GET, SESSIONS, Some(token));
        if status == 401 {
            return start.elapsed();
        }
        assert_eq!(status, 200, "{body}");
        assert!(start.elapsed() < limit, "still accepted after {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ok(server: &Server, token: &str) {
    let (status, body) = server.call(Method::GET, SESSIONS, Some(token));
    assert_eq!(status, 200, "{body}");
}

fn two_instances(token_store: &str) {
    let Some(cluster) = Cluster::new(token_store) else { return };
    let env = &cluster.env;
    env.ok(&["client", "create", "web"]);
    env.ok(&["client", "create", "cli", "--token-ttl", "never"]);
    env.ok(&["client", "create", "metered", "--throttle-rate", "10/m"]);
    env.ok(&["client", "create", "ios", "--devices", "many", "--max-devices", "3"]);
    env.create_user("alice", &[]);
    env.create_user("bob", &[]);
    let a = env.serve(&[]);
    let b = env.serve(&[]);

    // Login on A, use on B.
    let token = a.token("alice", "web");
    ok(&b, &token);
    ok(&a, &token);
    assert_eq!(b.token("alice", "web"), token, "the same (user, client) gets the same token everywhere");

    // Logout on B is refused on A (whose cache holds the token) within a second.
    let (status, _) = b.call(Method::POST, "/api/auth/logout/", Some(&token));
    assert_eq!(status, 204);
    let took = refused_within(&a, &token, Duration::from_secs(2));
    assert!(took < Duration::from_secs(1), "logout reached A after {took:?}");

    // Logout-all on A is refused everywhere.
    let web = a.token("alice", "web");
    let cli = b.token("alice", "cli");
    for (server, token) in [(&a, &web), (&b, &web), (&a, &cli), (&b, &cli)] {
        ok(server, token);
    }
    assert_eq!(a.call(Method::POST, "/api/auth/logoutall/", Some(&web)).0, 204);
    for (server, token) in [(&b, &web), (&b, &cli), (&a, &cli)] {
        let took = refused_within(server, token, Duration::from_secs(2));
        assert!(took < Duration::from_secs(1), "logout-all took {took:?}");
    }

    // A `many` client: a phone (on A) and a tablet (on B) each get their own token; the phone's
    // logout on A is refused on B within a second, and the tablet keeps working on both.
    let phone = a.token("alice", "ios");
    let tablet = b.token("alice", "ios");
    assert_ne!(phone, tablet, "one token per device");
    for (server, token) in [(&a, &phone), (&b, &phone), (&a, &tablet), (&b, &tablet)] {
        ok(server, token);
    }
    assert_eq!(a.call(Method::POST, "/api/auth/logout/", Some(&phone)).0, 204);
    let took = refused_within(&b, &phone, Duration::from_secs(2));
    assert!(took < Duration::from_secs(1), "the phone's logout reached B after {took:?}");
    ok(&a, &tablet);
    ok(&b, &tablet);

    // A revocation with the CLI is refused by both.
    let token = a.token("alice", "web");
    ok(&a, &token);
    ok(&b, &token);
    env.ok(&["token", "revoke", "--user", "alice"]);
    for server in [&a, &b] {
        let took = refused_within(server, &token, Duration::from_secs(2));
        assert!(took < Duration::from_secs(1), "CLI revoke took {took:?}");
    }

    // With a rate of 10/m, 40 requests alternating between A and B: exactly 10 succeed.
    let metered = a.token("bob", "metered");
    let mut allowed = 0;
    for i in 0..40 {
        let server = if i % 2 == 0 { &a } else { &b };
        let (status, body) = server.call(Method::GET, SESSIONS, Some(&metered));
        match status {
            200 => allowed += 1,
            429 => assert!(body["detail"].as_str().unwrap_or_default().starts_with("Request was throttled.")),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(allowed, 10);
    a.stop();
    b.stop();
}

#[test]
fn two_instances_with_tokens_in_postgres() {
    two_instances("sql");
}

#[test]
fn two_instances_with_tokens_in_redis() {
    two_instances("redis");
}
