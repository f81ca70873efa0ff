//! Test helpers (feature `testing`): a throwaway store, users, clients and tokens in one line each,
//! a clock you move by hand, and in-process requests to the service's own router — the same router
//! as production, so tests cannot drift from it.
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use tessera_axum::{Authenticated, Tessera, testing::TestKit};
//!
//! fn app(tessera: &Tessera) -> Router {
//!     async fn me(auth: Authenticated) -> Json<serde_json::Value> {
//!         Json(serde_json::json!({ "username": auth.user.username.as_str() }))
//!     }
//!     Router::new().route("/me", get(me)).layer(tessera.layer())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let kit = TestKit::new().await;
//! let alice = kit.user("alice").await;
//! let ios = kit.client("ios").rate("2/m").await;
//! let token = kit.token(&alice, &ios).await;
//! let reply = kit.get(&app(kit.tessera()), "/me", Some(&token)).await;
//! assert_eq!(reply.status, 200);
//! assert_eq!(reply.json()["username"], "alice");
//! # }
//! ```
//!
//! Helpers panic on failure, as test code wants. Users made by [`TestKit::user`] have no usable
//! password (a token is minted instead: fast, and no Argon2id in debug builds); use
//! [`TestKit::user_with_password`] to test the login route itself.

use crate::builder::TesseraBuilder;
use crate::tessera::Tessera;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tessera_core::store::{ClientStore, Store, UserStore};
use tessera_core::{Client, ManualClock, NewClient, NewUser, Rate, ServerKey, Ttl, User};
use tessera_sql::SqlStore;
use tower::ServiceExt;

/// A Tessera over a fresh SQLite database in a temporary directory, with a [`ManualClock`].
/// Everything goes when it is dropped.
#[derive(Debug)]
pub struct TestKit {
    tessera: Tessera,
    store: SqlStore,
    clock: ManualClock,
    // Field order: the pools close before the directory goes.
    _dir: tempfile::TempDir,
}

impl TestKit {
    /// A kit with default settings.
    pub async fn new() -> TestKit {
        Self::with(|builder| builder).await
    }

    /// A kit whose Tessera is configured by `configure` (settings, renderer, hooks, ...); the
    /// store, the key and the clock are the kit's.
    pub async fn with(configure: impl FnOnce(TesseraBuilder) -> TesseraBuilder) -> TestKit {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("tessera.db").display());
        let store = SqlStore::connect(&url).await.expect("a SQLite database");
        store.migrate().await.expect("migrations");
        let clock = ManualClock::default();
        let shared: Arc<dyn Store> = Arc::new(store.clone());
        let builder = Tessera::builder(shared, ServerKey::generate()).clock(Arc::new(clock.clone()));
        let tessera = configure(builder).build().expect("a valid Tessera configuration");
        tessera.start().await.expect("start");
        TestKit { tessera, store, clock, _dir: dir }
    }

    /// The Tessera to build the service's router with.
    pub fn tessera(&self) -> &Tessera {
        &self.tessera
    }

    /// The store.
    pub fn store(&self) -> &SqlStore {
        &self.store
    }

    /// The clock every expiry and throttle decision reads: `kit.clock().advance(..)` moves time.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// An active user named `name`, with no usable password.
    pub async fn user(&self, name: &str) -> User {
        self.new_user(name, "!".into()).await
    }

    /// An active user who can log in with `password` (hashed with Argon2id: slow in debug builds).
    pub async fn user_with_password(&self, name: &str, password: &str) -> User {
        let hash = tessera_core::password::hash_password(password).expect("a valid password");
        self.new_user(name, hash).await
    }

    async fn new_user(&self, name: &str, password_hash: String) -> User {
        let username = name.parse().expect("a valid username");
        let user = NewUser { username, password_hash, is_staff: false, is_active: true };
        self.store.create_user(user).await.expect("create the user")
    }

    /// A client named `name`; chain `.ttl("1d")`, `.rate("2/m")`, `.sliding()`, then `.await`.
    /// Its TTL is the settings' default unless set.
    pub fn client(&self, name: &str) -> ClientSpec<'_> {
        let name = name.parse().expect("a valid client name");
        ClientSpec { kit: self, new: NewClient::new(name, self.tessera.settings().default_token_ttl) }
    }

    /// A token of `user` on `client`, as login would hand it out.
    pub async fn token(&self, user: &User, client: &Client) -> String {
        let (_, secret) = self.tessera.issue_token(user, client).await.expect("a token");
        secret.expose().to_string()
    }

    /// `GET path`, with the token when one is given.
    pub async fn get(&self, app: &Router, path: &str, token: Option<&str>) -> TestResponse {
        self.request(app, Method::GET, path, token, None).await
    }

    /// `POST path` with a JSON body, with the token when one is given.
    pub async fn post_json(
        &self,
        app: &Router,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> TestResponse {
        self.request(app, Method::POST, path, token, Some(body)).await
    }

    /// Any request, answered in-process by `app` (as if from 127.0.0.1, so the per-IP login
    /// throttle applies as in production).
    pub async fn request(
        &self,
        app: &Router,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: Option<serde_json::Value>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request
                .header(header::AUTHORIZATION, format!("{} {token}", self.tessera.settings().auth_header_prefix));
        }
        let body = match json {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).expect("a valid request");
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
        let response = app.clone().oneshot(request).await.expect("axum routers are infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("the body");
        TestResponse { status, headers, body }
    }
}

/// A client to create; see [`TestKit::client`].
#[derive(Debug)]
#[must_use = "a client is created when awaited"]
pub struct ClientSpec<'a> {
    kit: &'a TestKit,
    new: NewClient,
}

impl ClientSpec<'_> {
    /// Token lifetime: `90s`, `12h`, `30d`, `never`, ...
    pub fn ttl(mut self, ttl: &str) -> Self {
        self.new.token_ttl = ttl.parse::<Ttl>().expect("a valid TTL");
        self
    }

    /// Throttle rate: `N/s`, `N/m`, `N/h` or `N/d`.
    pub fn rate(mut self, rate: &str) -> Self {
        self.new.throttle_rate = Some(rate.parse::<Rate>().expect("a valid rate"));
        self
    }

    /// Sliding expiry on.
    pub fn sliding(mut self) -> Self {
        self.new.sliding_expiry = true;
        self
    }
}

impl<'a> IntoFuture for ClientSpec<'a> {
    type Output = Client;
    type IntoFuture = Pin<Box<dyn Future<Output = Client> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.kit.store.create_client(self.new).await.expect("create the client") })
    }
}

/// What the router answered.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as JSON (`Null` when empty; panics when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        if self.body.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
