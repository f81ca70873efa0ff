//! The command line: `tessera serve`, `migrate`, the admin commands for users, clients and tokens,
//! `audit` and `stats`.

mod audit;
mod clients;
mod identity_keys;
mod import;
mod keys;
pub mod output;
mod stats;
mod tokens;
mod users;

use crate::app::App;
use crate::config::{Config, Overrides};
use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Configuration comes from a TOML file (--config or TESSERA_CONFIG), every key of which can be
overridden by an environment variable TESSERA_<KEY> (for example TESSERA_DEFAULT_TOKEN_TTL=12h),
and then by these flags. Without any, Tessera keeps an SQLite database and its server key in
./tessera-data. See README.md for every key.";

/// Tessera: per-API-client token authentication.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// TOML configuration file [env: TESSERA_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the SQLite database and the server key [env: TESSERA_DATA_DIR] [default: ./tessera-data]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://FILE or postgres://USER@HOST/DB [env: TESSERA_DATABASE_URL] [default: SQLite in the data dir]
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: the auth API at /api/auth/, and /health and /ready
    Serve {
        /// Address to listen on [env: TESSERA_BIND] [default: 127.0.0.1:8000]
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// Serve Prometheus metrics at /metrics on this address [env: TESSERA_METRICS_BIND] [default: off]
        #[arg(long, value_name = "ADDR")]
        metrics_bind: Option<String>,
    },
    /// Apply database migrations (serve also applies them at start-up)
    Migrate,
    /// Manage users
    #[command(subcommand)]
    User(users::UserCommand),
    /// Manage API clients ("web", "ios", "cli", ...)
    #[command(subcommand)]
    Client(clients::ClientCommand),
    /// Manage tokens (sessions)
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Read the audit log: logins, logouts, token and admin changes, newest first
    Audit(audit::AuditCommand),
    /// Usage per client per day: requests by outcome, logins, active users, tokens issued and revoked
    Stats(stats::StatsCommand),
    /// Server keys: generate, rotate, list, retire
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Move to Tessera from another system without logging anyone out (django-rest-durin)
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Forward-auth's identity keys (they sign X-Tessera-Identity): rotate, list
    #[command(subcommand)]
    IdentityKey(identity_keys::IdentityKeyCommand),
}

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> Result<()> {
        let mut overrides = Overrides {
            config_file: self.global.config,
            data_dir: self.global.data_dir,
            database_url: self.global.database_url,
            bind: None,
            metrics_bind: None,
        };
        if let Command::Serve { bind, metrics_bind } = &self.command {
            overrides.bind = bind.clone();
            overrides.metrics_bind = metrics_bind.clone();
        }
        if let Command::Key(keys::KeyCommand::Generate) = self.command {
            output::print(&tessera_core::ServerKey::generate().to_hex())?;
            return Ok(());
        }
        let config = Config::load(&overrides)?;
        crate::logging::set_format(config.log_format);
        if let Command::Serve { .. } = self.command {
            return crate::serve::run(config).await;
        }
        if let Command::IdentityKey(cmd) = &self.command {
            return cmd.run(&config);
        }
        if let Command::Import(cmd) = self.command {
            // It reads the source before it opens Tessera's store.
            return cmd.run(config).await;
        }
        let app = App::open(config).await?;
        let result = match self.command {
            Command::Migrate => output::out!("migrations applied ({} database)", app.sql.backend()).map_err(Into::into),
            Command::User(cmd) => cmd.run(&app).await,
            Command::Client(cmd) => cmd.run(&app).await,
            Command::Token(cmd) => cmd.run(&app).await,
            Command::Audit(cmd) => cmd.run(&app).await,
            Command::Stats(cmd) => cmd.run(&app).await,
            Command::Key(cmd) => cmd.run(&app).await,
            Command::Serve { .. } | Command::Import(_) | Command::IdentityKey(_) => Ok(()),
        };
        app.close().await;
        result
    }
}

/// The exit code for a failed command, after saying why on standard error (one line, control
/// characters escaped): 141 and nothing said when standard output was a pipe whose reader has gone
/// (what a shell reports for a program stopped by SIGPIPE, so `set -o pipefail` scripts see the
/// same as with any Unix tool), 1 for everything else, a full disk included.
pub fn exit_code(error: &anyhow::Error) -> ExitCode {
    if error.downcast_ref::<output::StdoutError>().is_some_and(output::StdoutError::is_closed_pipe) {
        return ExitCode::from(141);
    }
    output::note(&format!("error: {}", output::clean(&format!("{error:#}").replace('\n', " "))));
    ExitCode::FAILURE
}
