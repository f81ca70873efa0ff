//! A real server on a loopback port, over a fresh SQLite or PostgreSQL database, with a manual
//! clock: the routes of durin's example project, protected by Tessera.

use axum::routing::get;
use axum::{Json, Router};
use chrono::TimeDelta;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tessera_axum::{Authenticated, Tessera};
use tessera_core::password::hash_password;
use tessera_core::store::{ClientStore, Store, UserStore};
use tessera_core::{Client, Event, ManualClock, NewClient, NewUser, ServerKey, Settings, User};
use tessera_sql::testing::TestDb;

pub const PASSWORD: &str = "correct horse battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `body` once per backend; PostgreSQL is skipped (or fails, when required) if absent.
#[macro_export]
macro_rules! both_backends {
    ($(#[$m:meta])* async fn $name:ident($app:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($app: $crate::support::TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::support::TestApp::start($crate::support::Backend::Sqlite, Default::default()).await;
                if let Some(app) = app { run(app).await }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::support::TestApp::start($crate::support::Backend::Postgres, Default::default()).await;
                if let Some(app) = app { run(app).await }
            }
        }
    };
}

/// What `TestApp::start` varies.
#[derive(Default)]
pub struct Options {
    pub settings: Option<Settings>,
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub tessera: Tessera,
    pub clock: ManualClock,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub db: TestDb,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn hello(auth: Authenticated) -> Json<Value> {
    Json(json!({"hello": auth.user.username.as_str()}))
}

/// The example project's routes (without the throttle on them, unless `throttled`).
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

impl TestApp {
    pub async fn start(backend: Backend, options: Options) -> Option<TestApp> {
        let db = match backend {
            Backend::Sqlite => tessera_sql::testing::sqlite().await,
            Backend::Postgres => tessera_sql::testing::postgres().await?,
        };
        let settings = options.settings.unwrap_or_else(|| Settings {
            // Tests of the login throttle turn it on themselves.
            login_throttle_per_ip: None,
            login_throttle_per_username: None,
            ..Settings::default()
        });
        let clock = ManualClock::default();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let store: Arc<dyn Store> = Arc::new(db.store.clone());
        let tessera = Tessera::builder(store, ServerKey::generate())
            .settings(settings)
            .clock(Arc::new(clock.clone()))
            .on_event(move |e| sink.lock().unwrap_or_else(|p| p.into_inner()).push(e.clone()))
            .build()
            .expect("tessera");
        tessera.start().await.expect("start");
        let app = example_routes(&tessera);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
        });
        Some(TestApp { base: format!("http://{addr}"), http: reqwest::Client::new(), tessera, clock, events, db, server })
    }

    pub fn store(&self) -> &tessera_sql::SqlStore {
        &self.db.store
    }

    pub async fn user(&self, name: &str) -> User {
        let hash = hash_password(PASSWORD).expect("hash");
        self.store()
            .create_user(NewUser { username: name.parse().expect("username"), password_hash: hash, is_staff: false, is_active: true })
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

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Logs in and returns the token.
    pub async fn login(&self, user: &str, client: &str) -> String {
        let (status, body) = self.post_json("/api/auth/login/", None, json!({"username": user, "password": PASSWORD, "client": client})).await;
        assert_eq!(status, 200, "login: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
        let response = req.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        (status, headers, text)
    }

    pub async fn request(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.header("Authorization", format!("Token {token}"));
        }
        let (status, _, text) = self.send(req).await;
        (status, parse(&text))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, token).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, token).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(reqwest::Method::DELETE, path, token).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            req = req.header("Authorization", format!("Token {token}"));
        }
        let (status, _, text) = self.send(req).await;
        (status, parse(&text))
    }

    /// Events of this kind so far (by their serialized `event` name).
    pub fn events_named(&self, name: &str) -> Vec<Event> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.iter().filter(|e| serde_json::to_value(e).map(|v| v["event"] == name).unwrap_or(false)).cloned().collect()
    }
}

/// JSON, or `Value::Null` for an empty body, or the text as a string.
pub fn parse(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}
