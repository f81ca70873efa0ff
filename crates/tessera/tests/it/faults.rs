//! Faults with the real servers: Redis stopped and started again under the instances, PostgreSQL cut
//! off by a TCP proxy and restored. Instances answer 503 where documented, never 500, accept no
//! revoked token, lose no acknowledged change, and recover without a restart.

use crate::TESSERA;
use crate::cluster::{Cluster, refused_within};
use crate::proxy::Proxy;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tessera_testkit::{Backend, Method, Server, TestEnv, services_required};

const SESSIONS: &str = "/api/auth/sessions/";

/// A redis-server of the test's own, on a port of its own, that the test can stop and start, and
/// whose configuration a test may change without touching anyone else's Redis.
pub(crate) struct PrivateRedis {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl PrivateRedis {
    pub(crate) fn start() -> Option<PrivateRedis> {
        Self::start_with(&[])
    }

    /// Started with extra `redis-server` arguments (`--maxmemory-policy allkeys-lru`).
    pub(crate) fn start_with(args: &[&str]) -> Option<PrivateRedis> {
        if Command::new("redis-server").arg("--version").output().is_err() {
            assert!(!services_required(), "redis-server is required (TESSERA_REQUIRE_SERVICES=1) but not installed");
            eprintln!("skipping: redis-server is not installed");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        let args = args.iter().map(|a| a.to_string()).collect();
        let mut redis = PrivateRedis { port, child: None, dir: tempfile::tempdir().expect("tempdir"), args };
        redis.resume();
        Some(redis)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn status(server: &Server, token: &str) -> (u16, serde_json::Value) {
    server.call(Method::GET, SESSIONS, Some(token))
}

/// Requests for `period`, asserting each answer is one of `allowed`.
fn load(servers: &[&Server], token: &str, period: Duration, allowed: &[u16]) -> usize {
    let start = Instant::now();
    let mut count = 0;
    while start.elapsed() < period {
        for server in servers {
            let (got, body) = status(server, token);
            assert!(allowed.contains(&got), "got {got}: {body}");
            if got == 503 {
                assert_eq!(body, serde_json::json!({"detail": "Service unavailable."}));
            }
            count += 1;
        }
    }
    count
}

#[test]
fn redis_outage_with_tokens_in_sql() {
    let Some(mut redis) = PrivateRedis::start() else { return };
    let Some(mut cluster) = Cluster::new("sql") else { return };
    cluster.env.env.insert("TESSERA_REDIS_URL".into(), redis.url());
    let env = &cluster.env;
    env.ok(&["client", "create", "web"]);
    env.ok(&["client", "create", "metered", "--throttle-rate", "3/m"]);
    for user in ["alice", "bob", "carol", "dave"] {
        env.create_user(user, &[]);
    }
    let a = env.serve(&[]);
    let b = env.serve(&[]);
    let token = a.token("alice", "web");
    load(&[&a, &b], &token, Duration::from_millis(300), &[200]);

    // Load that runs through the whole outage, Redis stopped and started under it.
    let background = BackgroundLoad::start(&[&a, &b], a.token("dave", "web"));
    redis.stop();
    // Authentication goes on from PostgreSQL; nothing fails.
    load(&[&a, &b], &token, Duration::from_secs(2), &[200]);
    // The throttle falls back to counting in each instance.
    let bob = a.token("bob", "metered");
    for server in [&a, &b] {
        let codes: Vec<u16> = (0..5).map(|_| status(server, &bob).0).collect();
        assert_eq!(codes, [200, 200, 200, 429, 429], "each instance counts on its own meanwhile");
    }
    // A revocation made while Redis is down is still honoured everywhere: caches are not trusted.
    env.ok(&["token", "revoke", "--user", "alice"]);
    for server in [&a, &b] {
        let took = refused_within(server, &token, Duration::from_secs(2));
        assert!(took < Duration::from_secs(1), "revocation during the outage took {took:?}");
    }

    redis.resume();
    // The shared throttle comes back by itself: carol's 3/m budget counts once across A and B.
    a.wait_for_log("the shared rate limiter answers again", Duration::from_secs(10));
    b.wait_for_log("the shared rate limiter answers again", Duration::from_secs(10));
    let carol = a.token("carol", "metered");
    let allowed = (0..6).filter(|i| status(if i % 2 == 0 { &a } else { &b }, &carol).0 == 200).count();
    assert_eq!(allowed, 3, "shared budget after Redis returned");
    // Revocations propagate again.
    let token = a.token("alice", "web");
    load(&[&a, &b], &token, Duration::from_millis(200), &[200]);
    assert_eq!(a.call(Method::POST, "/api/auth/logout/", Some(&token)).0, 204);
    let took = refused_within(&b, &token, Duration::from_secs(2));
    assert!(took < Duration::from_secs(1), "after recovery: {took:?}");
    let statuses = background.finish();
    assert!(statuses.len() > 100, "the load ran: {} requests", statuses.len());
    assert!(statuses.iter().all(|s| *s == 200), "every request of the load succeeded: {statuses:?}");
    a.stop();
    b.stop();
}

/// Requests on several servers, in a thread, until `finish`; returns every status.
struct BackgroundLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u16>>,
}

impl BackgroundLoad {
    fn start(servers: &[&Server], token: String) -> BackgroundLoad {
        let urls: Vec<String> = servers.iter().map(|s| format!("{}{SESSIONS}", s.base)).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut statuses = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let url = &urls[statuses.len() % urls.len()];
                statuses.push(tessera_testkit::http(Method::GET, url, Some(&token), None).0);
                std::thread::sleep(Duration::from_millis(5));
            }
            statuses
        });
        BackgroundLoad { stop, thread }
    }

    fn finish(self) -> Vec<u16> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("load thread")
    }
}

#[test]
fn redis_outage_with_tokens_in_redis() {
    let Some(mut redis) = PrivateRedis::start() else { return };
    let Some(mut cluster) = Cluster::new("redis") else { return };
    cluster.env.env.insert("TESSERA_REDIS_URL".into(), redis.url());
    let env = &cluster.env;
    env.ok(&["client", "create", "web"]);
    env.create_user("alice", &[]);
    let a = env.serve(&[]);
    let token = a.token("alice", "web");
    load(&[&a], &token, Duration::from_millis(200), &[200]);

    redis.stop();
    // Tokens live in Redis: without it, 503 — never a 500, never a wrong acceptance.
    load(&[&a], &token, Duration::from_secs(2), &[503]);
    let (got, body) = a.login("alice", "web");
    assert_eq!((got, body), (503, serde_json::json!({"detail": "Service unavailable."})));

    redis.resume();
    // This Redis kept nothing on disk: its tokens are gone, and logging in again works.
    let deadline = Instant::now() + Duration::from_secs(15);
    let fresh = loop {
        let (got, body) = a.login("alice", "web");
        if got == 200 {
            break body["token"].as_str().unwrap_or_default().to_string();
        }
        assert_eq!(got, 503, "{body}");
        assert!(Instant::now() < deadline, "login did not recover");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status(&a, &fresh).0, 200);
    assert_eq!(status(&a, &token).0, 401);
    a.stop();
}

#[test]
fn postgres_outage_and_return() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Postgres) else { return };
    let direct = env.database_url().expect("postgres").to_string();
    let proxy = Proxy::start(postgres_addr(&direct));
    let via_proxy = direct.replacen(&authority(&direct), &format!("postgres@{}", proxy.addr), 1);
    env.env.insert("TESSERA_DATABASE_URL".into(), via_proxy);
    env.env.insert("TESSERA_LOGIN_THROTTLE_PER_IP".into(), "off".into());
    env.ok(&["client", "create", "web"]);
    env.ok(&["client", "create", "cli"]);
    env.create_user("alice", &[]);
    let a = env.serve(&[]);
    let token = a.token("alice", "web");
    let gone = a.token("alice", "cli");
    assert_eq!(a.call(Method::POST, "/api/auth/logout/", Some(&gone)).0, 204, "an acknowledged logout");
    assert_eq!(status(&a, &token).0, 200);

    proxy.cut();
    let (got, body) = status(&a, &token);
    assert_eq!((got, body), (503, serde_json::json!({"detail": "Service unavailable."})));
    assert_eq!(a.login("alice", "web").0, 503);
    assert_eq!(a.get("/ready").0, 503);
    assert_eq!(a.get("/health").0, 200);
    load(&[&a], &token, Duration::from_secs(1), &[503]);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&a, &token).0 != 200 {
        assert!(Instant::now() < deadline, "service did not resume");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(a.get("/ready").0, 200);
    // Nothing acknowledged was lost: the login's token works, the logged-out one stays out.
    assert_eq!(status(&a, &gone).0, 401);
    assert_eq!(a.token("alice", "web"), token);
    a.stop();
}

/// `postgres://user@host:port/db` → host:port.
pub(crate) fn postgres_addr(url: &str) -> SocketAddr {
    let rest = authority(url);
    let host_port = rest.rsplit('@').next().unwrap_or(&rest);
    let host_port = if host_port.contains(':') { host_port.to_string() } else { format!("{host_port}:5432") };
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port.parse().unwrap_or_else(|_| panic!("cannot proxy {host_port}"))
}

/// The `user@host:port` part of a URL.
pub(crate) fn authority(url: &str) -> String {
    let after = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    after.split('/').next().unwrap_or_default().to_string()
}
