use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match tessera::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help, --version or a usage error: clap's own exit code, unless its text cannot be written.
        Err(usage) => {
            return match usage.print() {
                Ok(()) => ExitCode::from(u8::try_from(usage.exit_code()).unwrap_or(2)),
                Err(e) => tessera::cli::exit_code(&tessera::cli::output::StdoutError(e).into()),
            };
        }
    };
    let default_level = if std::env::args().nth(1).as_deref() == Some("serve") { "info" } else { "warn" };
    tessera::logging::init(default_level);

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return tessera::cli::exit_code(&anyhow::Error::new(e).context("cannot start the async runtime"));
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        // One line on standard error (the context chain joined by ": "), or nothing for a closed pipe.
        Err(e) => tessera::cli::exit_code(&e),
    }
}
