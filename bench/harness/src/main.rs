//! The in-process cost harness behind `bench/cost`: the real router (SQLite store in a temporary
//! directory, a user, a client, a token), called through `tower::ServiceExt::oneshot` a given
//! number of times for one scenario, on a current-thread runtime.
//!
//! ```text
//! tessera-cost <scenario> <iterations> [warm-up]      (warm-up: 200 requests unless given)
//! ```
//!
//! | scenario | request |
//! |---|---|
//! | `bare` | `GET /ping`: no authentication, the baseline |
//! | `floor` | `GET /floor`: what any authentication layer on an axum route pays before its own work: a layer that puts one value in the request's extensions (`tower`'s `MapRequestLayer`, no future of its own) and a handler that extracts it (`Extension`) |
//! | `cached` | `GET /cached`: the cached authenticator (`Tessera::cached_layer`), no guard |
//! | `uncached` | `GET /uncached`: the token looked up in SQLite on every request (`Tessera::layer`) |
//! | `guard` | `GET /guarded`: the cached authenticator and `guard().throttled()`, the client rate-limited |
//! | `login` | `POST /api/auth/login/`: a full, successful login (see below for what counts) |
//! | `counted` | `cached`, with usage analytics and metrics on (`TesseraBuilder::usage` + `metrics`) |
//! | `counted-guard` | `guard`, with usage analytics and metrics on |
//! | `forward-auth` | `GET /auth/forward/nginx`: an nginx `auth_request` subrequest (`X-Original-URI`, `-Method`, `-Host`) from loopback, cached authentication, four route rules, the throttle on for the matched one |
//! | `forward-auth-signed` | `forward-auth` with the signed identity (`X-Tessera-Identity`, Ed25519) on |
//!
//! Each request is built, answered, its body read to the end and its status checked, so every
//! scenario pays the same request and response handling; only the route differs.
//!
//! `bench/cost` runs each scenario under `valgrind --tool=callgrind
//! --toggle-collect=*tessera_cost_measure*`: only the measured requests count, not the set-up, the
//! warm-up or the background tasks the runtime polls between them. The SQLite work that sqlx runs on
//! its worker thread is inside the count (`sqlite3VdbeExec` shows in `callgrind_annotate` of an
//! `uncached` run: tessera-sql reads tokens with rusqlite on the calling thread).
//!
//! What that leaves out, by construction: work on other threads. For `login` that is the Argon2id
//! verification (on the blocking pool: the figure is the login's non-hashing part, and the stored
//! hash is Argon2id at its cheapest so that runs stay short) and SQLite's own execution of the
//! statements sqlx sends to its worker thread (the user and client lookups, the token's insert);
//! sqlx's side on the calling thread (binding, decoding rows) counts.
//!
//! The clock is the kit's [`tessera_core::ManualClock`], never moved: under valgrind a real clock
//! would roll throttle windows over at points that depend on the machine's speed, and the counts
//! would move with it.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use tessera_axum::core::route_rules::{ClientRule, NoMatch, RouteRule, RouteRules};
use tessera_axum::forward::identity::IdentityKeys;
use tessera_axum::forward::{ForwardAuthConfig, IdentitySigner, IdentityToken};
use tessera_axum::sql::SqlStore;
use tessera_axum::testing::TestKit;
use tessera_axum::{Authenticated, Tessera};
use tessera_core::store::UserStore;
use tessera_core::{NewUser, Settings};
use tower::ServiceExt;

const USAGE: &str = "usage: tessera-cost \
     <bare|floor|cached|uncached|guard|login|counted|counted-guard|forward-auth|forward-auth-signed> <iterations> [warm-up]";
const LOGIN_PASSWORD: &str = "correct horse battery";

async fn ping() -> Json<Value> {
    Json(json!({"ping": "pong"}))
}

async fn hello(auth: Authenticated) -> Json<Value> {
    Json(json!({"hello": auth.user.username.as_str()}))
}

/// The `floor` scenario's verdict: a name behind an `Arc`, as the principal is.
#[derive(Clone)]
struct Floor(Arc<String>);

async fn hello_floor(axum::Extension(floor): axum::Extension<Floor>) -> Json<Value> {
    Json(json!({"hello": floor.0.as_str()}))
}

/// The least an authentication layer on a route can be: it reads nothing and decides nothing,
/// only leaves its verdict in the request's extensions for the handler.
fn floor_layer() -> tower::util::MapRequestLayer<impl Fn(Request<Body>) -> Request<Body> + Clone> {
    let floor = Floor(Arc::new("bench".to_string()));
    tower::util::MapRequestLayer::new(move |mut request: Request<Body>| {
        request.extensions_mut().insert(floor.clone());
        request
    })
}

/// The forward-auth configuration of the `forward-auth` scenarios: a handful of rules, as a small
/// deployment has (the request matches `/api`, whose throttle is on), the signed identity on or off.
fn forward_config(signed: bool) -> ForwardAuthConfig {
    let mut api = RouteRule::new(None, "/api").expect("rule");
    api.throttle = true;
    api.clients = ClientRule::Only(vec!["web".to_string(), "cli".to_string()]);
    let mut public = RouteRule::new(None, "/public").expect("rule");
    public.anonymous = true;
    let admin = RouteRule::new(Some("admin.example.com"), "/").expect("rule");
    let mut internal = RouteRule::new(None, "/api/internal").expect("rule");
    internal.clients = ClientRule::Only(vec!["ops".to_string()]);
    let rules = RouteRules::new(vec![api, public, admin, internal], NoMatch::Deny).expect("rules");
    let identity_token = signed.then(|| {
        let keys = IdentityKeys::new(vec![[7u8; 32]]).expect("a key");
        let mut token = IdentityToken::new(IdentitySigner::new(keys));
        token.audience = Some("service".to_string());
        token
    });
    ForwardAuthConfig { rules, identity_token, ..ForwardAuthConfig::default() }
}

/// The router as a server runs it: `axum::serve` takes `into_make_service()`, which calls
/// `with_state(())` once, turning every route's handler into its service up front. A router
/// called without it (as `oneshot` on the bare `Router` does) redoes that per request, about 650
/// instructions more on each layered route than any real server spends.
fn app(tessera: &Tessera, forward: ForwardAuthConfig) -> Router {
    routes(tessera, forward).with_state(())
}

fn routes(tessera: &Tessera, forward: ForwardAuthConfig) -> Router {
    Router::new()
        .route("/ping", get(ping))
        .route("/floor", get(hello_floor).layer(floor_layer()))
        .route("/cached", get(hello).layer(tessera.cached_layer()))
        .route("/uncached", get(hello).layer(tessera.layer()))
        .route("/guarded", get(hello).route_layer(tessera.guard().throttled()).layer(tessera.cached_layer()))
        .nest("/api/auth", tessera.auth_router())
        .merge(tessera.forward_auth(forward).router_at("/auth/forward"))
}

/// Argon2id with the smallest parameters the algorithm allows, and a fixed salt: the same string
/// on every run, and a verification (on the blocking pool, outside the count) that keeps runs short.
fn cheap_hash() -> String {
    let params = Params::new(Params::MIN_M_COST, Params::MIN_T_COST, 1, None).expect("valid parameters");
    let salt = SaltString::from_b64("dGVzc2VyYWJlbmNo").expect("a valid salt");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(LOGIN_PASSWORD.as_bytes(), &salt)
        .expect("a hash")
        .to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Bare,
    /// A minimal layer and extension, no authentication: what every authenticated route pays.
    Floor,
    Cached,
    Uncached,
    Guard,
    Login,
    /// `Cached` with the analytics and the metrics counting.
    Counted,
    /// `Guard` with the analytics and the metrics counting.
    CountedGuard,
    /// An nginx `auth_request` subrequest to the forward-auth endpoint.
    Forward,
    /// `Forward` with the signed identity.
    ForwardSigned,
}

impl Scenario {
    fn parse(name: &str) -> Option<Scenario> {
        Some(match name {
            "bare" => Scenario::Bare,
            "floor" => Scenario::Floor,
            "cached" => Scenario::Cached,
            "uncached" => Scenario::Uncached,
            "guard" => Scenario::Guard,
            "login" => Scenario::Login,
            "counted" => Scenario::Counted,
            "counted-guard" => Scenario::CountedGuard,
            "forward-auth" => Scenario::Forward,
            "forward-auth-signed" => Scenario::ForwardSigned,
            _ => return None,
        })
    }
}

/// The counted scenarios' usage database, deleted at the end.
#[derive(Debug)]
struct UsageDb(std::path::PathBuf);

impl Drop for UsageDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

/// Everything one scenario's requests need, made before the first one.
#[derive(Debug)]
struct Bench {
    scenario: Scenario,
    app: Router,
    authorization: String,
    _usage: Option<UsageDb>,
    // Last: the store's pools close before its directory goes.
    _kit: TestKit,
}

impl Bench {
    async fn new(scenario: Scenario) -> Bench {
        // The per-IP login throttle is off, as in bench/run: it would refuse the 31st login in a
        // minute. The per-username throttles stay: a successful login gives its slot back.
        let settings = Settings { login_throttle_per_ip: None, ..Settings::default() };
        let counted = matches!(scenario, Scenario::Counted | Scenario::CountedGuard);
        // The analytics write to a database of their own (a minute from now: outside any run).
        let usage = match counted {
            true => {
                let path = std::env::temp_dir().join(format!("tessera-cost-usage-{}.db", std::process::id()));
                let store = SqlStore::connect(&format!("sqlite://{}", path.display())).await.expect("usage db");
                store.migrate().await.expect("usage db migrations");
                Some((store, path))
            }
            false => None,
        };
        let sink = usage.as_ref().map(|(store, _)| store.clone());
        let kit = TestKit::with(|builder| {
            let builder = builder.settings(settings);
            match sink {
                Some(sink) => builder.usage(Arc::new(sink)).metrics(true),
                None => builder,
            }
        })
        .await;
        let user = kit.user("bench").await;
        // A rate no run reaches, so the throttle does all of its work and never refuses.
        let client = kit.client("web").ttl("1d").rate("1000000/s").await;
        let token = kit.token(&user, &client).await;
        let username = "login".parse().expect("a valid username");
        let login_user = NewUser { username, password_hash: cheap_hash(), is_staff: false, is_active: true };
        kit.store().create_user(login_user).await.expect("the login user");
        let authorization = format!("{} {token}", kit.tessera().settings().auth_header_prefix);
        Bench {
            scenario,
            app: app(kit.tessera(), forward_config(scenario == Scenario::ForwardSigned)),
            authorization,
            _usage: usage.map(|(_, path)| UsageDb(path)),
            _kit: kit,
        }
    }

    fn request(&self) -> Request<Body> {
        let (method, path, body) = match self.scenario {
            Scenario::Bare => (Method::GET, "/ping", None),
            Scenario::Floor => (Method::GET, "/floor", None),
            Scenario::Cached | Scenario::Counted => (Method::GET, "/cached", None),
            Scenario::Uncached => (Method::GET, "/uncached", None),
            Scenario::Guard | Scenario::CountedGuard => (Method::GET, "/guarded", None),
            Scenario::Forward | Scenario::ForwardSigned => (Method::GET, "/auth/forward/nginx", None),
            Scenario::Login => (
                Method::POST,
                "/api/auth/login/",
                Some(json!({"username": "login", "password": LOGIN_PASSWORD, "client": "web"}).to_string()),
            ),
        };
        let mut request = Request::builder().method(method).uri(path);
        request = match body {
            Some(_) => request.header(header::CONTENT_TYPE, "application/json"),
            None => request.header(header::AUTHORIZATION, &self.authorization),
        };
        if matches!(self.scenario, Scenario::Forward | Scenario::ForwardSigned) {
            // What the bench/forward-auth nginx sends (and a browser's request would bring).
            request = request
                .header(header::HOST, "127.0.0.1:18181")
                .header("x-original-uri", "/api/orders/42?expand=items")
                .header("x-original-method", "GET")
                .header("x-original-host", "shop.example.com")
                .header(header::USER_AGENT, "wrk")
                .header(header::ACCEPT, "*/*");
        }
        let mut request = request.body(body.map(Body::from).unwrap_or_else(Body::empty)).expect("a valid request");
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
        request
    }

    async fn once(&self) {
        let response = self.app.clone().oneshot(self.request()).await.expect("axum routers are infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("the body");
        assert_eq!(status, StatusCode::OK, "{:?}: {}", self.scenario, String::from_utf8_lossy(&body));
        black_box(body);
    }
}

/// The measured requests, one after the other, each followed by a yield to the runtime: a cached
/// verification completes without ever returning `Pending`, so without the yield the loop would
/// starve the background tasks — the invalidation follower among them — and once its last sync
/// was more than a second ago (sooner the slower valgrind runs, which depends on the machine's
/// load) the cache would stop being trusted and every request would read the store.
async fn measured_loop(bench: &Bench, iterations: u64) {
    for _ in 0..iterations {
        bench.once().await;
        tokio::task::yield_now().await;
    }
}

/// A future whose every poll goes through [`tessera_cost_measure`], so that callgrind can count
/// exactly the polls of the measured loop (`--toggle-collect=*tessera_cost_measure*`), and not what
/// the runtime does between them (the background tasks' timers).
struct Measured<F>(Pin<Box<F>>);

impl<F: Future> Future for Measured<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        tessera_cost_measure(self.0.as_mut(), cx)
    }
}

/// The function `bench/cost` counts in. Never inlined, so that its name stays in the binary.
#[inline(never)]
fn tessera_cost_measure<F: Future>(future: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
    future.poll(cx)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [scenario, iterations, rest @ ..] if rest.len() <= 1 => {
            let warm_up = rest.first().map_or(Some(200), |w| w.parse().ok());
            Scenario::parse(scenario).zip(iterations.parse::<u64>().ok()).zip(warm_up)
        }
        _ => None,
    };
    let Some(((scenario, iterations), warm_up)) = parsed else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let bench = Bench::new(scenario).await;
        // Warm-up, outside the measured function: the cache filled, the statements prepared, the
        // allocator's pools grown.
        for _ in 0..warm_up {
            bench.once().await;
        }
        Measured(Box::pin(measured_loop(&bench, iterations))).await;
    });
    ExitCode::SUCCESS
}
