//! The process's log output: human-readable text (colours only on a terminal) or one JSON object
//! a line (`log_format = "json"`, for Loki, Elasticsearch, CloudWatch). Logging starts before the
//! configuration is read, in text; the configured format replaces it as soon as it is known, so
//! every line after start-up is in one format.

use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: one line per event, ANSI colours only when standard error is a terminal.
    #[default]
    Text,
    /// For log shippers: one JSON object per line (`timestamp`, `level`, `target`, `fields`).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => anyhow::bail!("invalid log_format '{other}': use \"text\" or \"json\""),
        }
    }
}

type Base = tracing_subscriber::layer::Layered<EnvFilter, Registry>;
type Output = Box<dyn Layer<Base> + Send + Sync>;

static SWITCH: OnceLock<reload::Handle<Output, Base>> = OnceLock::new();

fn output(format: LogFormat) -> Output {
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).boxed(),
    }
}

/// Starts logging to standard error in text, at `default_level` unless `RUST_LOG` says otherwise.
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{default_level},sqlx=warn")));
    let (layer, handle) = reload::Layer::new(output(LogFormat::Text));
    if tracing_subscriber::registry().with(filter).with(layer).try_init().is_ok() {
        let _ = SWITCH.set(handle);
    }
}

/// Switches the output to `format` (a no-op when logging was not started by [`init`]).
pub fn set_format(format: LogFormat) {
    if let Some(handle) = SWITCH.get()
        && let Err(e) = handle.reload(output(format))
    {
        tracing::warn!(error = %e, "cannot switch the log format");
    }
}
