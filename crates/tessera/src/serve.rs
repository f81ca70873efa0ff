//! `tessera serve`: the HTTP server: `/health`, `/ready`, durin's auth API at `/api/auth/`,
//! forward-auth for proxies at `/auth/forward/{nginx,traefik,caddy,envoy/…}`, the public keys of
//! its signed identity at `/.well-known/jwks.json`, the OpenAPI document, the admin web UI at
//! `/admin/` (`tessera-admin`); with `metrics_bind`, Prometheus metrics at `/metrics` on a
//! listener of its own.

use crate::app::App;
use crate::config::Config;
use crate::identity_key::IdentityKeySource;
use crate::key::KeySource;
use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use tessera_axum::Tessera;
use tessera_axum::forward::ForwardAuthConfig;
use tessera_core::store::Store;
use tokio::net::TcpListener;

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct ServerState {
    store: Arc<dyn Store>,
}

/// Where durin's auth API is mounted.
pub const AUTH_PREFIX: &str = "/api/auth";
/// Where forward-auth is mounted.
pub const FORWARD_PREFIX: &str = "/auth/forward";
/// The server's own paths.
pub const SERVER_PATHS: [&str; 2] = ["/health", "/ready"];

/// The server's routes.
pub fn router(store: Arc<dyn Store>, tessera: &Tessera, forward: ForwardAuthConfig) -> Router {
    // The JWKS is served even with the signed identity off (then it lists no key): its address
    // does not depend on configuration.
    let signer = forward.identity_token.as_ref().map(|t| t.signer.clone()).unwrap_or_default();
    Router::new()
        .route(SERVER_PATHS[0], get(health))
        .route(SERVER_PATHS[1], get(ready))
        .with_state(ServerState { store })
        .nest(AUTH_PREFIX, tessera.auth_router())
        .merge(tessera.forward_auth(forward).router_at(FORWARD_PREFIX))
        .merge(signer.jwks_router())
        .merge(crate::openapi::router())
}

/// Where the admin web UI is mounted (when `admin.enabled`).
pub const ADMIN_PREFIX: &str = "/admin";

/// The parts of the API listener that the OpenAPI document (`docs/openapi.json`) leaves out, by
/// path prefix, and why. Everything else [`route_paths`] lists must be in the document, and
/// nothing under these may be. (`/metrics` is not here: it is served on a listener of its own,
/// `metrics_bind`, never on this one, in Prometheus's text format.)
pub const OUTSIDE_THE_DOCUMENT: [(&str, &str); 2] = [
    (
        ADMIN_PREFIX,
        "the staff web UI: HTML pages and form posts for a browser, behind a session cookie and CSRF \
         tokens; not an API to generate a client from",
    ),
    (crate::openapi::VIEWER_PATH, "the document's viewer: an HTML page and its vendored script, for a browser"),
];

/// Every path the API listener serves, as axum writes them (`{id}`, `{*path}`), from the same
/// tables the router is built from (the admin UI by its prefix): what the OpenAPI document is
/// checked against, with [`OUTSIDE_THE_DOCUMENT`] set aside. A route added to [`router`] must be
/// added to its table too.
pub fn route_paths() -> Vec<String> {
    let mut paths: Vec<String> = SERVER_PATHS.iter().map(|p| p.to_string()).collect();
    paths.extend(
        tessera_axum::AUTH_ROUTE_PATHS.iter().flat_map(|group| group.iter()).map(|p| format!("{AUTH_PREFIX}{p}")),
    );
    paths.extend(tessera_axum::forward::adapters::PATHS.iter().map(|p| format!("{FORWARD_PREFIX}{p}")));
    paths.push(tessera_axum::forward::identity::JWKS_PATH.to_string());
    paths.extend(crate::openapi::PATHS.iter().map(|p| p.to_string()));
    paths.push(format!("{ADMIN_PREFIX}/{{*page}}"));
    paths
}

/// The admin web UI at `/admin/`, reading the audit log and the usage analytics from the SQL
/// database when they are on.
fn admin_router(app: &App, tessera: &Tessera) -> Router {
    let settings = &app.config.admin;
    let config = tessera_admin::AdminConfig {
        secure_cookie: settings.secure_cookie,
        sessions: tessera_axum::StaffSessionPolicy { idle: settings.idle, absolute: settings.lifetime },
        base: ADMIN_PREFIX.into(),
    };
    let mut admin = tessera_admin::Admin::new(tessera.clone()).config(config);
    if app.config.audit {
        admin = admin.audit_log(Arc::new(app.sql.clone()));
    }
    if app.config.usage {
        admin = admin.usage_log(Arc::new(app.sql.clone()));
    }
    admin.router()
}

/// The process is up.
async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers.
async fn ready(State(state): State<ServerState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "detail": "The store is unreachable."})),
            )
                .into_response()
        }
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> Result<()> {
    let mut app = App::open(config).await?;
    if let (Some(settings), Some(redis)) = (app.config.redis.clone(), app.redis.as_mut()) {
        // Before listening: an instance that must not run never answers.
        if crate::redis_checks::check(&redis.conn, &settings).await? {
            // Only the subscription follows token keys; publishing is the same either way.
            redis.bus = Arc::new(redis.bus.as_ref().clone().following_token_keys());
        }
    }
    let (_, key_source) = crate::key::load_or_create(&app.config)?;
    // Bound before the API listener says it listens: a taken port stops the start.
    let metrics_listener = match app.config.metrics_bind {
        Some(addr) => {
            Some(TcpListener::bind(addr).await.with_context(|| format!("cannot listen for metrics on {addr}"))?)
        }
        None => None,
    };
    let fresh = app.created_database || matches!(key_source, KeySource::Generated(_));
    match &key_source {
        KeySource::Config => tracing::info!("server key from configuration"),
        KeySource::File(path) => tracing::info!(path = %path.display(), "server key from file"),
        KeySource::Generated(path) => tracing::info!(path = %path.display(), "generated a new server key"),
    }
    // Before listening: a server that promised signed identities has its key when it answers.
    let mut identity_reload = None;
    if let Some(identity) = &app.config.forward_auth.identity_token {
        let (keys, source) = crate::identity_key::load_or_create(&app.config)?;
        let kid = keys.current_kid().to_string();
        identity.signer.set(keys);
        match source {
            IdentityKeySource::Config => tracing::info!(%kid, "identity key from configuration"),
            IdentityKeySource::File(path) | IdentityKeySource::Generated(path) => {
                tracing::info!(%kid, path = %path.display(), "identity key from file");
                identity_reload = Some(crate::identity_key::spawn_reload(identity.signer.clone(), path));
            }
        }
    }
    let shutdown = shutdown_signal();
    let listener =
        TcpListener::bind(app.config.bind).await.with_context(|| format!("cannot listen on {}", app.config.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %app.sql.backend(), redis = app.redis.is_some(), pg_notify = app.pg_bus.is_some(), "tessera listening on http://{addr}");
    if fresh {
        print_next_steps(&app, addr, &key_source);
    }
    let forward = &app.config.forward_auth;
    tracing::info!(
        rules = forward.rules.rules().len(),
        default = ?forward.rules.no_match,
        trusted_proxies = ?forward.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "forward-auth at /auth/forward/"
    );
    let watch = crate::key::KeyFileWatch::default();
    let mut builder = app.tessera()?.cached_auth_routes(true);
    if key_source.file().is_some() {
        let waker = watch.clone();
        builder = builder.on_unknown_key(move |_| waker.wake());
    }
    let tessera = builder.build()?;
    tessera.start().await.context("cannot prepare the API-access client")?;
    // Keys from a file follow `tessera key rotate` / `key retire`; keys from the configuration
    // cannot change while the server runs.
    let reload = key_source.file().map(|path| watch.spawn(tessera.clone(), path.to_path_buf()));
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = match metrics_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            tracing::info!(%addr, "metrics at http://{addr}/metrics");
            let router = tessera.metrics_router();
            let limits = app.config.limits;
            Some(tokio::spawn(async move {
                let stopped = async {
                    let _ = metrics_stopped.await;
                };
                if let Err(e) = tessera_axum::serve::serve(listener, router, limits, stopped).await {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            }))
        }
        None => None,
    };
    let mut routes = router(app.store.clone(), &tessera, app.config.forward_auth.clone());
    if app.config.admin.enabled {
        routes = routes.merge(admin_router(&app, &tessera));
        tracing::info!(secure_cookie = app.config.admin.secure_cookie, "admin UI at /admin/");
    }
    tessera_axum::serve::serve(listener, routes, app.config.limits, shutdown).await?;
    tracing::info!("shutting down");
    for task in [reload, identity_reload].into_iter().flatten() {
        task.abort();
    }
    let _ = stop_metrics.send(());
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    tessera.shutdown().await;
    app.close().await;
    Ok(())
}

fn print_next_steps(app: &App, addr: std::net::SocketAddr, key: &KeySource) {
    let key = match key {
        KeySource::Config if app.config.secret_keys.is_some() => "from the configuration (secret_keys)".to_string(),
        KeySource::Config => "from the configuration (secret_key)".to_string(),
        KeySource::File(path) | KeySource::Generated(path) => format!("in {}", path.display()),
    };
    // The next steps are a courtesy: a closed or full standard output must not stop the server.
    use std::io::Write;
    let _ = writeln!(
        std::io::stdout(),
        "\nTessera is running on a new {} database, with its server key {}.\n\
         Next steps (with the same --data-dir/--config/environment as this server):\n\
         \x20 tessera user create admin --staff          # a staff user (prompts for the password)\n\
         \x20 tessera client create web --token-ttl 1d   # an API client\n\
         \x20 tessera token create --user admin --client web\n\
         \x20 curl http://{addr}/health\n",
        app.sql.backend(),
        key,
    );
}

/// Resolves on SIGTERM or Ctrl-C: the signal for a graceful shutdown. The handlers are installed
/// when this is called, not when the future is first polled, so a signal that arrives while the
/// server is still starting (after it said it listens) still shuts it down gracefully.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let terminate = async move {
            match terminate {
                Some(mut sig) => {
                    sig.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        let ctrl_c = async move {
            if ctrl_c.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = ctrl_c => {},
            () = terminate => {},
        }
    }
}
