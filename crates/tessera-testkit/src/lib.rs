//! One set of helpers for the tests that drive Tessera's binaries as real processes — the
//! `tessera` server and CLI, and apps built on the library such as `durin-example`.
//!
//! - [`TestEnv`]: a temporary data directory and, on PostgreSQL, a fresh database dropped at the
//!   end; the environment every process of a test shares (and nothing inherited: `TESSERA_*` and
//!   `RUST_LOG` of the test runner never leak into a child); the CLI runner.
//! - [`Server`]: a server process on port 0, its address read from its "listening on" log line,
//!   its log for later assertions, a graceful stop with SIGTERM; blocking HTTP calls to it.
//! - [`http`]: one request with an optional token and JSON body, answered as (status, JSON).
//!
//! The packages that own the binaries pass their paths in (`env!("CARGO_BIN_EXE_…")`), so this
//! crate builds no binary of its own and depends on none of them.
//!
//! Tests on PostgreSQL skip with a message when it is absent, unless `TESSERA_REQUIRE_SERVICES=1`
//! ([`services_required`]), as every Tessera test does.

#![deny(missing_docs)]

mod env;
mod http;
mod server;

pub use env::{Backend, TestEnv, postgres_database};
pub use http::{http, http_get, http_text};
pub use reqwest::Method;
pub use server::Server;
pub use tessera_sql::testing::{postgres_admin_url, services_required, skip};

/// The password [`TestEnv::create_user`] gives and [`Server::login`] uses.
pub const PASSWORD: &str = "correct horse battery";

/// Declares one `#[test]` per [`Backend`], each running `scenario(backend)` under its own name:
///
/// ```
/// use tessera_testkit::{Backend, test_each_backend};
///
/// fn sequence(backend: Backend) {
///     // … the scenario, the same on every backend
/// #   let _ = backend;
/// }
///
/// test_each_backend!(sequence => cli_sequence_on_sqlite, cli_sequence_on_postgres);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! test_each_backend {
    ($scenario:path => $on_sqlite:ident, $on_postgres:ident) => {
        #[test]
        fn $on_sqlite() {
            $scenario($crate::Backend::Sqlite);
        }

        #[test]
        fn $on_postgres() {
            $scenario($crate::Backend::Postgres);
        }
    };
}

/// Parses JSON (a CLI's `--json` output), failing the test with the text when it is not JSON.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `token` with its last character replaced by a different one: the same length and alphabet,
/// a checksum that no longer matches. (Always a different character: appending a fixed one
/// would give back the token itself whenever it already ended in that character.)
pub fn forged(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    if let Some(last) = chars.last_mut() {
        *last = if *last == 'x' { 'y' } else { 'x' };
    }
    chars.into_iter().collect()
}
