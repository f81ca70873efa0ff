//! Helpers shared by the test modules.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tessera_core::split::SplitStore;
use tessera_core::store::Store;
use tessera_redis::testing::TestRedis;
use tessera_redis::{RedisConfig, RedisTokenStore, RedisTokenStoreConfig};
use tokio::net::{TcpListener, TcpStream};

/// The grace the suite runs with. The suite's instants are fixed in May 2024, so with the
/// default day of grace Redis would forget every token the moment it is stored; a century keeps
/// them all while the case runs (the prefix guard deletes them afterwards).
pub fn suite_token_config() -> RedisTokenStoreConfig {
    RedisTokenStoreConfig { expired_grace: Duration::from_secs(100 * 365 * 24 * 3600) }
}

/// Users and clients in `sql`, tokens in the test's Redis prefix.
pub fn split(sql: &tessera_sql::SqlStore, redis: &TestRedis) -> Arc<dyn Store> {
    let tokens = RedisTokenStore::new(redis.conn.clone(), suite_token_config());
    Arc::new(SplitStore::new(Arc::new(sql.clone()), Arc::new(tokens)))
}

/// A local port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A configuration for a server that is not there, with short timeouts.
pub fn unreachable_config(url: String) -> RedisConfig {
    RedisConfig {
        url,
        key_prefix: tessera_redis::testing::unique_prefix(),
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
    }
}

/// A TCP proxy to the test Redis that the test can cut (existing connections are closed and new
/// ones are closed as soon as they are accepted) and restore.
pub struct Proxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let frozen = Arc::new(AtomicBool::new(false));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(generation);
        let task = {
            let cut = cut.clone();
            let frozen = frozen.clone();
            let generation = generation.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else { continue };
                    if cut.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let target = target.clone();
                    let mut signal = generation.subscribe();
                    let frozen = frozen.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&target).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                            _ = signal.changed() => {}
                        }
                        // Frozen: hold both sockets open and forward nothing until cut.
                        while frozen.load(Ordering::SeqCst) {
                            if signal.changed().await.is_err() {
                                break;
                            }
                        }
                    });
                }
            })
        };
        Proxy { addr, cut, frozen, generation, task }
    }

    /// Closes every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.frozen.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Stops forwarding on every open connection without closing it: a connection that died
    /// silently (a cable pulled, a firewall dropping packets).
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// `host:port` of the test Redis URL (`redis://[auth@]host:port[/db]`).
pub fn redis_host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    if authority.contains(':') { authority.to_string() } else { format!("{authority}:6379") }
}

/// The test Redis URL pointing at `addr` instead (database and query kept).
pub fn url_via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, r)) => (format!("{auth}@"), r),
        None => (String::new(), rest),
    };
    let tail = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
    format!("{scheme}://{auth}{addr}{tail}")
}

/// Counts the warnings and infos logged on this thread while installed.
#[derive(Default, Clone)]
pub struct LogCounter {
    pub warnings: Arc<std::sync::atomic::AtomicUsize>,
    pub infos: Arc<std::sync::atomic::AtomicUsize>,
}

impl LogCounter {
    pub fn warnings(&self) -> usize {
        self.warnings.load(Ordering::SeqCst)
    }

    pub fn infos(&self) -> usize {
        self.infos.load(Ordering::SeqCst)
    }
}

impl tracing::Subscriber for LogCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        match *event.metadata().level() {
            tracing::Level::WARN => self.warnings.fetch_add(1, Ordering::SeqCst),
            tracing::Level::INFO => self.infos.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
