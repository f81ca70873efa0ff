//! durin's example_project in Rust: an axum service whose API is protected by Tessera.
//!
//! It reads the same configuration as `tessera` (config file, `TESSERA_*` environment, data
//! directory, database URL), so the `tessera` CLI manages its users, clients and tokens.
//!
//! | route | auth |
//! |---|---|
//! | `GET /api/ping/` | none: the benchmark baseline, `{"ping": "pong"}` |
//! | `GET /api/hello/` | a token: `{"hello": "<username>"}` |
//! | `GET /api/hello-cached/` | the same through the cached authenticator |
//! | `GET /api/hello-cached-unthrottled/` | the cached authenticator without the throttle (`bench/run`'s "throttle off") |
//! | `GET /api/web-only/` | only client `web` |
//! | `GET /api/no-cli/` | every client but `cli` |
//! | `/api/auth/…` | durin's routes: login, refresh, logout, logoutall, sessions, apiaccess |
//!
//! Every authenticated route but the unthrottled one is throttled per (user, client), as DRF's
//! default throttle classes do.

use anyhow::{Context, Result};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde_json::{Value, json};
use std::path::PathBuf;
use tessera::config::{Config, Overrides};
use tessera_axum::{Authenticated, Tessera};

/// durin's example project, protected by Tessera.
#[derive(Debug, Parser)]
#[command(name = "durin-example", version, about)]
struct Args {
    /// Address to listen on [env: TESSERA_BIND] [default: 127.0.0.1:8000]
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// TOML configuration file [env: TESSERA_CONFIG]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the SQLite database and the server key [env: TESSERA_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL [env: TESSERA_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

async fn ping() -> Json<Value> {
    Json(json!({"ping": "pong"}))
}

async fn hello(auth: Authenticated) -> Json<Value> {
    Json(json!({"hello": auth.user.username.as_str()}))
}

/// The example's routes.
fn app(tessera: &Tessera) -> Router {
    let throttled = || tessera.guard().throttled();
    Router::new()
        .route("/api/ping/", get(ping))
        .route("/api/hello/", get(hello).route_layer(throttled()).layer(tessera.layer()))
        .route("/api/hello-cached/", get(hello).route_layer(throttled()).layer(tessera.cached_layer()))
        .route("/api/hello-cached-unthrottled/", get(hello).layer(tessera.cached_layer()))
        .route("/api/web-only/", get(hello).route_layer(throttled().allow_clients(["web"])).layer(tessera.layer()))
        .route("/api/no-cli/", get(hello).route_layer(throttled().deny_clients(["cli"])).layer(tessera.layer()))
        .nest("/api/auth", tessera.auth_router())
}

async fn run(args: Args) -> Result<()> {
    let overrides = Overrides {
        config_file: args.config,
        data_dir: args.data_dir,
        database_url: args.database_url,
        bind: args.bind,
        metrics_bind: None,
    };
    let config = Config::load(&overrides)?;
    let opened = tessera::app::App::open(config).await?;
    let tessera = opened.tessera()?.build()?;
    tessera.start().await.context("cannot prepare the API-access client")?;

    let shutdown = tessera::serve::shutdown_signal();
    let listener = tokio::net::TcpListener::bind(opened.config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", opened.config.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "durin-example listening on http://{addr}");
    // The same server as `tessera serve`: header, body and idle timeouts and the connection cap
    // from the same configuration keys.
    tessera_axum::serve::serve(listener, app(&tessera), opened.config.limits, shutdown).await?;
    tessera.shutdown().await;
    opened.close().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colours only on a terminal: a log redirected to a file stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}
