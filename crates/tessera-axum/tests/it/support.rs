//! A real server on a loopback port, over a fresh SQLite or PostgreSQL database, with a manual
//! clock: the routes of durin's example project, protected by Tessera.

use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tessera_axum::{Authenticated, Tessera};
use tessera_core::bus::InvalidationBus;
use tessera_core::password::hash_password;
use tessera_core::store::{ClientStore, Store, TokenFilter, UserStore};
use tessera_core::{AuthToken, Client, Clock, Event, ManualClock, NewClient, NewUser, ServerKey, Settings, User};
use tessera_sql::testing::TestDb;

pub const PASSWORD: &str = "correct horse battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// Users and clients on SQLite, tokens in the real Redis, invalidations on its bus (as
    /// `tessera serve` composes them with `token_store = "redis"`).
    SqliteWithRedisTokens,
}

/// Runs `body` once per backend; PostgreSQL is skipped (or fails, when required) if absent.
/// `options = EXPR,` first starts the app with those [`Options`].
#[macro_export]
macro_rules! both_backends {
    ($(#[$m:meta])* async fn $name:ident($app:ident) $body:block) => {
        $crate::both_backends!(options = $crate::support::Options::default(), $(#[$m])* async fn $name($app) $body);
    };
    (options = $options:expr, $(#[$m:meta])* async fn $name:ident($app:ident) $body:block) => {
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($app: $crate::support::TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::support::TestApp::start($crate::support::Backend::Sqlite, $options).await;
                if let Some(app) = app { run(app).await }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::support::TestApp::start($crate::support::Backend::Postgres, $options).await;
                if let Some(app) = app { run(app).await }
            }
        }
    };
}

/// What `TestApp::start` varies: the settings (default: durin's, with the login throttle off).
pub struct Options {
    pub settings: Settings,
    /// The error renderer (default: durin's).
    pub renderer: Option<Renderer>,
    /// How many password checks may run at once (default: the library's).
    pub password_checks: Option<usize>,
    /// The rate limiter (default: the library's in-process ones).
    pub limiter: Option<Arc<dyn tessera_core::throttle::RateLimiter>>,
    /// Whether the auth routes authenticate through the cache (as `tessera serve` does).
    pub cached_auth_routes: bool,
    /// With tokens in Redis, whether the bus follows token keys through keyspace notifications
    /// (as `tessera serve` does when Redis emits them).
    pub follow_token_keys: bool,
    /// Record events in the SQL store's audit log, kept this long (as `tessera serve` does).
    pub audit: Option<TimeDelta>,
    /// Keep usage analytics in the SQL store and count metrics (as `tessera serve` does).
    pub usage: bool,
}

/// A renderer for [`Options::renderer`].
pub type Renderer = fn(&tessera_axum::AuthError) -> axum::response::Response;

impl Default for Options {
    fn default() -> Self {
        Options {
            settings: Settings {
                // Tests of the login throttle turn it on themselves.
                login_throttle_per_ip: None,
                login_throttle_per_username_and_ip: None,
                login_throttle_per_username: None,
                ..Settings::default()
            },
            renderer: None,
            password_checks: None,
            limiter: None,
            cached_auth_routes: false,
            follow_token_keys: false,
            audit: None,
            usage: false,
        }
    }
}

impl Options {
    /// The default options with `change` applied to the settings.
    pub fn with(change: impl FnOnce(&mut Settings)) -> Self {
        let mut options = Options::default();
        change(&mut options.settings);
        options
    }
}

/// One running server: its address and the `Tessera` behind it. Stops when dropped.
pub struct Server {
    pub base: String,
    pub tessera: Tessera,
    handle: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub tessera: Tessera,
    pub clock: ManualClock,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub key: ServerKey,
    pub settings: Settings,
    pub renderer: Option<Renderer>,
    pub password_checks: Option<usize>,
    pub limiter: Option<Arc<dyn tessera_core::throttle::RateLimiter>>,
    pub cached_auth_routes: bool,
    pub follow_token_keys: bool,
    pub audit: Option<TimeDelta>,
    pub usage: bool,
    // Field order matters: the server stops before the database goes.
    _server: Server,
    pub db: TestDb,
    pub redis: Option<tessera_redis::testing::TestRedis>,
}

/// The store as a server composes it: the SQL store, or with a Redis connection, SQL + tokens in
/// Redis, publishing invalidations on its bus.
fn compose(
    sql: tessera_sql::SqlStore,
    redis: Option<tessera_redis::RedisConnection>,
    follow_token_keys: bool,
) -> (Arc<dyn Store>, Option<Arc<dyn InvalidationBus>>) {
    let Some(conn) = redis else { return (Arc::new(sql), None) };
    let tokens = tessera_redis::RedisTokenStore::new(conn.clone(), tessera_redis::RedisTokenStoreConfig::default());
    let bus = tessera_redis::RedisBus::new(conn);
    let bus: Arc<dyn InvalidationBus> = Arc::new(if follow_token_keys { bus.following_token_keys() } else { bus });
    let split = Arc::new(tessera_core::split::SplitStore::new(Arc::new(sql), Arc::new(tokens)));
    (Arc::new(tessera_core::bus::NotifyingStore::new(split, bus.clone())), Some(bus))
}

async fn hello(auth: Authenticated) -> Json<Value> {
    Json(json!({"hello": auth.user.username.as_str()}))
}

/// The example project's routes: `/api/hello/` (uncached), `/api/hello-cached/`, `/api/web-only/`
/// (only the `web` client), `/api/no-cli/` (all but `cli`), all throttled, and the auth routes.
pub fn example_routes(tessera: &Tessera) -> Router {
    let guard = || tessera.guard().throttled();
    Router::new()
        .route("/api/ping/", get(|| async { Json(json!({"ping": "pong"})) }))
        .route("/api/hello/", get(hello).route_layer(guard()).layer(tessera.layer()))
        .route("/api/hello-cached/", get(hello).route_layer(guard()).layer(tessera.cached_layer()))
        .route("/api/web-only/", get(hello).route_layer(guard().allow_clients(["web"])).layer(tessera.layer()))
        .route("/api/no-cli/", get(hello).route_layer(guard().deny_clients(["cli"])).layer(tessera.layer()))
        .nest("/api/auth", tessera.auth_router())
}

async fn serve(tessera: Tessera) -> Server {
    let app = example_routes(&tessera);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    Server { base: format!("http://{addr}"), tessera, handle }
}

/// One Argon2id hash of [`PASSWORD`] for every test user: hashing is slow in debug builds.
fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(PASSWORD).expect("hash")).clone()
}

/// The response of a request: status, headers, the body as text and parsed.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII header"))
    }

    /// A durin 401: the detail, `WWW-Authenticate: <prefix>`, JSON.
    #[track_caller]
    pub fn assert_401(&self, detail: &str, prefix: &str) {
        assert_eq!((self.status, &self.body), (401, &json!({ "detail": detail })), "{}", self.text);
        assert_eq!(self.header("www-authenticate"), Some(prefix), "WWW-Authenticate");
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

impl TestApp {
    pub async fn start(backend: Backend, options: Options) -> Option<TestApp> {
        let (db, redis) = match backend {
            Backend::Sqlite => (tessera_sql::testing::sqlite().await, None),
            Backend::Postgres => (tessera_sql::testing::postgres().await?, None),
            Backend::SqliteWithRedisTokens => {
                let redis = tessera_redis::testing::redis().await?;
                (tessera_sql::testing::sqlite().await, Some(redis))
            }
        };
        let clock = ManualClock::default();
        let events = Arc::new(Mutex::new(Vec::new()));
        let key = ServerKey::generate();
        let (store, bus) = compose(db.store.clone(), redis.as_ref().map(|r| r.conn.clone()), options.follow_token_keys);
        let tessera = build(store, bus, db.store.clone(), key.clone(), &options, &clock, &events);
        tessera.start().await.expect("start");
        let server = serve(tessera.clone()).await;
        Some(TestApp {
            base: server.base.clone(),
            http: reqwest::Client::new(),
            tessera,
            clock,
            events,
            key,
            settings: options.settings,
            renderer: options.renderer,
            password_checks: options.password_checks,
            limiter: options.limiter,
            cached_auth_routes: options.cached_auth_routes,
            follow_token_keys: options.follow_token_keys,
            audit: options.audit,
            usage: options.usage,
            _server: server,
            db,
            redis,
        })
    }

    /// Another `Tessera` serving the same database through its own connection pool, as another
    /// process would (same key, same settings, same clock).
    pub async fn second_instance(&self) -> Server {
        let sql = tessera_sql::SqlStore::connect(&self.db.url).await.expect("another connection");
        let (store, bus) = compose(sql.clone(), self.redis.as_ref().map(|r| r.connect_again()), self.follow_token_keys);
        let options = Options {
            settings: self.settings.clone(),
            renderer: self.renderer,
            password_checks: self.password_checks,
            limiter: self.limiter.clone(),
            cached_auth_routes: self.cached_auth_routes,
            follow_token_keys: self.follow_token_keys,
            audit: self.audit,
            usage: self.usage,
        };
        let tessera = build(store, bus, sql, self.key.clone(), &options, &self.clock, &self.events);
        tessera.start().await.expect("start");
        serve(tessera).await
    }

    /// The store as another process opens it (its own pools and connections): what the CLI or
    /// another instance changes through it reaches this app only through the invalidation log and
    /// the bus.
    pub async fn elsewhere(&self) -> Arc<dyn Store> {
        self.elsewhere_with_bus().await.0
    }

    async fn elsewhere_with_bus(&self) -> (Arc<dyn Store>, Option<Arc<dyn InvalidationBus>>) {
        let sql = tessera_sql::SqlStore::connect(&self.db.url).await.expect("another connection");
        compose(sql, self.redis.as_ref().map(|r| r.connect_again()), self.follow_token_keys)
    }

    pub fn store(&self) -> &tessera_sql::SqlStore {
        &self.db.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub async fn user(&self, name: &str) -> User {
        self.store()
            .create_user(NewUser {
                username: name.parse().expect("username"),
                password_hash: password_hash(),
                is_staff: false,
                is_active: true,
            })
            .await
            .expect("create user")
    }

    pub async fn client(&self, name: &str, ttl: &str) -> Client {
        self.client_with(name, ttl, |_| {}).await
    }

    pub async fn client_with(&self, name: &str, ttl: &str, f: impl FnOnce(&mut NewClient)) -> Client {
        let mut new = NewClient::new(name.parse().expect("client name"), ttl.parse().expect("ttl"));
        f(&mut new);
        self.store().create_client(new).await.expect("create client")
    }

    /// A token for the pair, as test setup: the events it causes are not the test's, and are dropped.
    pub async fn mint(&self, user: &User, client: &Client) -> String {
        let before = self.all_events().len();
        let (_, secret) = self.tessera.issue_token(user, client).await.expect("mint");
        self.events.lock().unwrap_or_else(|p| p.into_inner()).truncate(before);
        secret.expose().to_string()
    }

    /// Every token in the store.
    pub async fn tokens(&self) -> Vec<AuthToken> {
        self.tessera.store().list_tokens(TokenFilter::default()).await.expect("tokens")
    }

    pub async fn token_for(&self, user: &User, client: &Client) -> Option<AuthToken> {
        self.tessera.store().token_for(user.id, client.id).await.expect("token_for")
    }

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Logs in and returns the token.
    pub async fn login(&self, user: &str, client: &str) -> String {
        let (status, body) = self
            .post_json("/api/auth/login/", None, json!({"username": user, "password": PASSWORD, "client": client}))
            .await;
        assert_eq!(status, 200, "login: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// A request to this server, with `Authorization: Token <token>` when a token is given.
    pub fn req(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let req = self.http.request(method, self.url(path));
        match token {
            Some(token) => req.header("Authorization", format!("Token {token}")),
            None => req,
        }
    }

    /// A GET of `path` with this exact `Authorization` header value.
    pub async fn get_with_header(&self, path: &str, authorization: &[u8]) -> Reply {
        let value = HeaderValue::from_bytes(authorization).expect("header value");
        self.send(self.http.get(self.url(path)).header("Authorization", value)).await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let response = req.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Reply { status, headers, body: parse(&text), text }
    }

    pub async fn request(&self, method: Method, path: &str, token: Option<&str>) -> (u16, Value) {
        let reply = self.send(self.req(method, path, token)).await;
        (reply.status, reply.body)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(Method::GET, path, token).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(Method::POST, path, token).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(Method::DELETE, path, token).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let reply = self.send(self.req(Method::POST, path, token).json(&body)).await;
        (reply.status, reply.body)
    }

    /// A login with this JSON body; the whole reply.
    pub async fn login_with(&self, body: Value) -> Reply {
        self.send(self.req(Method::POST, "/api/auth/login/", None).json(&body)).await
    }

    /// Every event so far.
    pub fn all_events(&self) -> Vec<Event> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Events of this kind so far (by their serialized `event` name), as JSON.
    pub fn events_named(&self, name: &str) -> Vec<Value> {
        self.all_events().iter().filter_map(|e| serde_json::to_value(e).ok()).filter(|v| v["event"] == name).collect()
    }
}

fn build(
    store: Arc<dyn Store>,
    bus: Option<Arc<dyn InvalidationBus>>,
    sql: tessera_sql::SqlStore,
    key: ServerKey,
    options: &Options,
    clock: &ManualClock,
    events: &Arc<Mutex<Vec<Event>>>,
) -> Tessera {
    let sink = events.clone();
    let mut builder = Tessera::builder(store, key)
        .settings(options.settings.clone())
        .clock(Arc::new(clock.clone()))
        .on_event(move |e| sink.lock().unwrap_or_else(|p| p.into_inner()).push(e.clone()))
        .cached_auth_routes(options.cached_auth_routes);
    if let Some(renderer) = options.renderer {
        builder = builder.error_renderer(renderer);
    }
    if let Some(bus) = bus {
        builder = builder.bus(bus);
    }
    if let Some(limit) = options.password_checks {
        builder = builder.password_check_limit(limit);
    }
    if let Some(limiter) = &options.limiter {
        builder = builder.rate_limiter(limiter.clone());
    }
    if options.usage {
        builder = builder.usage(Arc::new(sql.clone())).metrics(true);
    }
    if let Some(retention) = options.audit {
        builder = builder.audit(Arc::new(sql)).audit_retention(retention);
    }
    builder.build().expect("tessera")
}

/// JSON, or `Value::Null` for an empty body, or the text as a string.
pub fn parse(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Polls `check` until it holds or `limit` passes; returns how long it took, `None` on timeout.
pub async fn within<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A datetime as the wire writes it (UTC, microseconds only when non-zero, `Z`).
pub fn wire(at: DateTime<Utc>) -> String {
    tessera_core::settings::format_iso8601(at, tessera_core::settings::TimeZone::default().0)
}

/// The stored form of a time: microsecond precision (what the store keeps).
pub fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).expect("time")
}

/// Runs the futures concurrently (on this task: they may borrow) and returns their outputs in order.
pub async fn join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future is ready")).collect()
}
