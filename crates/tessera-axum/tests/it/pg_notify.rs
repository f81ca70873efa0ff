//! On PostgreSQL without Redis, revocations reach a cached instance through `LISTEN`/`NOTIFY`
//! (`tessera_sql::PgListenBus`), and while that subscription is down the cache is not trusted.
//!
//! To prove the path rather than time it, the instances here read the store through a
//! [`BlindLog`]: the invalidation log always looks empty, so the log poll keeps the cache "synced"
//! but never tells it anything. A control instance with the blind log and no bus keeps serving a
//! revoked token from its cache; the listening instance refuses it. No timing is asserted: every
//! wait is a bound on a hang.

use crate::support::{Options, example_routes};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_axum::Tessera;
use tessera_core::bus::{BusError, InvalidationBus};
use tessera_core::store::{ClientStore, ClientUpdate, Invalidation, Store, StoreError, TokenStore, UserStore};
use tessera_core::{NewClient, NewUser, ServerKey, Ttl};
use tessera_sql::PgListenBus;

/// A store whose invalidation log is always empty; everything else is the inner store's.
#[derive(Debug)]
struct BlindLog {
    inner: Arc<dyn Store>,
}

tessera_core::forward_store! {
    impl UserStore for BlindLog {
        forward to inner: create_user, user_by_id, user_by_username, list_users, search_users, set_password_hash, upgrade_password_hash, set_active,
            set_staff, delete_user;
    }
}
tessera_core::forward_store! {
    impl ClientStore for BlindLog {
        forward to inner: create_client, client_by_id, client_by_name, list_clients, update_client, delete_client;
    }
}
tessera_core::forward_store! {
    impl TokenStore for BlindLog {
        forward to inner: ping, create_token, get_or_create_token, token_by_id, token_by_digest, token_for,
            list_tokens, count_tokens, extend_expiry, record_last_used, purge_expired, delete_token, delete_tokens,
            create_device_token, keep_one_token_per_pair, set_expiry;
    }
}
tessera_core::forward_store! {
    impl Store for BlindLog {
        forward to inner: prune_invalidations, token_with_owner, user_and_client, search_tokens;

        async fn latest_invalidation(&self) -> Result<i64, StoreError> {
            Ok(0)
        }
        async fn invalidations_after(&self, _after: i64) -> Result<Vec<(i64, Invalidation)>, StoreError> {
            Ok(Vec::new())
        }
    }
}

/// The PostgreSQL bus, recording what it delivers; every subscription after the first waits for
/// [`Gated::open`].
#[derive(Debug)]
struct Gated {
    inner: PgListenBus,
    subscribes: AtomicUsize,
    readies: AtomicUsize,
    gate: tokio::sync::Semaphore,
    delivered: Mutex<Vec<Invalidation>>,
}

impl Gated {
    fn delivered(&self) -> Vec<Invalidation> {
        self.delivered.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// Lets one more subscription through.
    fn open(&self) {
        self.gate.add_permits(1);
    }
}

#[async_trait]
impl InvalidationBus for Gated {
    async fn publish(&self, changes: &[Invalidation]) -> Result<(), BusError> {
        self.inner.publish(changes).await
    }

    async fn subscribe(
        &self,
        on_ready: &(dyn Fn() + Send + Sync),
        on_change: &(dyn Fn(Invalidation, Option<chrono::DateTime<chrono::Utc>>) + Send + Sync),
    ) -> BusError {
        if self.subscribes.fetch_add(1, Ordering::AcqRel) > 0 {
            self.gate.acquire().await.expect("gate").forget();
        }
        let ready = || {
            on_ready();
            self.readies.fetch_add(1, Ordering::AcqRel);
        };
        let change = |c: Invalidation, sent_at| {
            self.delivered.lock().unwrap_or_else(|p| p.into_inner()).push(c);
            on_change(c, sent_at);
        };
        self.inner.subscribe(&ready, &change).await
    }
}

/// Waits (up to 10 s: a hang, not a timing) until `cond` holds.
async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn serve(tessera: &Tessera) -> (String, tokio::task::JoinHandle<()>) {
    let app = example_routes(tessera);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    (format!("http://{addr}"), handle)
}

async fn status(http: &reqwest::Client, base: &str, token: &str) -> u16 {
    let reply = http
        .get(format!("{base}/api/hello-cached/"))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .expect("request");
    reply.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_the_cache_by_notify_and_a_lost_listener_distrusts_it() {
    let Some(db) = tessera_sql::testing::postgres().await else { return };
    let key = ServerKey::generate();
    let settings = Options::default().settings;
    // Each instance on its own pool, as separate processes would be.
    let sql_of = async || tessera_sql::SqlStore::connect(&db.url).await.expect("connect");
    let (listening_sql, control_sql) = (sql_of().await, sql_of().await);
    let bus = Arc::new(Gated {
        // No pings: the LISTEN connection's last statement stays `LISTEN …`, which finds it below.
        inner: PgListenBus::new(&listening_sql).expect("postgres").with_ping_interval(Duration::from_secs(3_600)),
        subscribes: AtomicUsize::new(0),
        readies: AtomicUsize::new(0),
        gate: tokio::sync::Semaphore::new(0),
        delivered: Mutex::new(Vec::new()),
    });
    let listening = Tessera::builder(Arc::new(BlindLog { inner: Arc::new(listening_sql) }), key.clone())
        .settings(settings.clone())
        .bus(bus.clone())
        .metrics(true)
        .build()
        .expect("tessera");
    let control = Tessera::builder(Arc::new(BlindLog { inner: Arc::new(control_sql) }), key)
        .settings(settings)
        .build()
        .expect("tessera");
    listening.start().await.expect("start");
    control.start().await.expect("start");
    let ((on_listening, _a), (on_control, _b)) = (serve(&listening).await, serve(&control).await);
    let http = reqwest::Client::new();

    let user = |name: &str| NewUser {
        username: name.parse().expect("username"),
        password_hash: "$argon2id$unused".into(),
        is_staff: false,
        is_active: true,
    };
    let (alice, bob) = (
        db.store.create_user(user("alice")).await.expect("user"),
        db.store.create_user(user("bob")).await.expect("user"),
    );
    let client = |name: &str| NewClient::new(name.parse().expect("name"), Ttl::Never);
    let (web, cli) = (
        db.store.create_client(client("web")).await.expect("client"),
        db.store.create_client(client("cli")).await.expect("client"),
    );
    let issue = async |user, client| listening.issue_token(user, client).await.expect("issue").1.expose().to_string();

    // Cached on both instances (the listening one caches once it is subscribed and synced).
    let token = issue(&alice, &web).await;
    until("the listening instance subscribed", async || bus.readies.load(Ordering::Acquire) == 1).await;
    until("cached on both", async || {
        status(&http, &on_listening, &token).await == 200
            && status(&http, &on_control, &token).await == 200
            && listening.cached_entries() == 1
            && control.cached_entries() == 1
    })
    .await;

    // An operator deletes the token by hand: only the notification can tell the listening instance.
    let digest = db.store.list_tokens(Default::default()).await.expect("tokens")[0].digest;
    db.run_sql("DELETE FROM auth_tokens").await;
    until("refused by the listening instance", async || status(&http, &on_listening, &token).await == 401).await;
    assert!(bus.delivered().contains(&Invalidation::Token(digest)), "{:?}", bus.delivered());
    assert_eq!(status(&http, &on_control, &token).await, 200, "the control's blind cache still holds it");
    // The notification said when the trigger ran: its age when applied is observed (the blind
    // log applies nothing, so its source observes nothing).
    assert!(crate::lag::lag_count(&listening, "bus") >= 1);
    assert_eq!(crate::lag::lag_count(&listening, "log"), 0);

    // A user deactivated through another connection.
    let bobs = issue(&bob, &cli).await;
    until("cached", async || status(&http, &on_listening, &bobs).await == 200 && listening.cached_entries() == 1).await;
    assert_eq!(status(&http, &on_control, &bobs).await, 200);
    db.store.set_active(bob.id, false).await.expect("deactivate");
    until("refused by the listening instance", async || status(&http, &on_listening, &bobs).await == 401).await;
    assert!(bus.delivered().contains(&Invalidation::User(bob.id)));
    assert_eq!(status(&http, &on_control, &bobs).await, 200, "the control's blind cache still holds it");

    // The LISTEN connection is killed. The subscription ends, the cache is emptied and distrusted,
    // and the next subscription waits at the gate: a token revoked meanwhile is refused at once,
    // though neither the (blind) log nor the (down) bus says so.
    let alices = issue(&alice, &cli).await;
    until("cached", async || status(&http, &on_listening, &alices).await == 200 && listening.cached_entries() >= 1)
        .await;
    db.run_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query = 'LISTEN \"tessera_invalidations\"'",
    )
    .await;
    until("the follower noticed and tried again", async || bus.subscribes.load(Ordering::Acquire) == 2).await;
    assert_eq!(listening.cached_entries(), 0, "a lost subscription empties the cache");
    db.run_sql(&format!("DELETE FROM auth_tokens WHERE user_id = {} AND client_id = {}", alice.id.0, cli.id.0)).await;
    assert_eq!(status(&http, &on_listening, &alices).await, 401, "an untrusted cache reads the store");

    // Back: subscribed again, the cache is trusted and notifications flow on the new connection.
    bus.open();
    until("subscribed again", async || bus.readies.load(Ordering::Acquire) == 2).await;
    let described = ClientUpdate { description: Some("web".into()), ..ClientUpdate::default() };
    db.store.update_client(web.id, described).await.expect("describe client");
    until("the client change delivered", async || bus.delivered().contains(&Invalidation::Client(web.id))).await;
    let again = issue(&alice, &web).await;
    until("cached", async || status(&http, &on_listening, &again).await == 200 && listening.cached_entries() == 1)
        .await;
    assert_eq!(status(&http, &on_control, &again).await, 200);
    let digest = db
        .store
        .list_tokens(Default::default())
        .await
        .expect("tokens")
        .iter()
        .find(|t| t.client_id == web.id)
        .expect("token")
        .digest;
    db.run_sql(&format!("DELETE FROM auth_tokens WHERE client_id = {}", web.id.0)).await;
    until("refused by the listening instance", async || status(&http, &on_listening, &again).await == 401).await;
    assert!(bus.delivered().contains(&Invalidation::Token(digest)));
    assert_eq!(status(&http, &on_control, &again).await, 200, "the control's blind cache still holds it");

    listening.shutdown().await;
    control.shutdown().await;
    db.close().await;
}
