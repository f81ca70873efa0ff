//! The example app and the `tessera` CLI as real processes on one fresh environment.

use std::path::{Path, PathBuf};
use std::process::Command;
use tessera_testkit::{Backend, Server, TestEnv};

/// The `tessera` binary: built beside this crate's binary by `cargo test --workspace`.
fn tessera_bin() -> PathBuf {
    let example = PathBuf::from(env!("CARGO_BIN_EXE_durin-example"));
    let bin = example.with_file_name(format!("tessera{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo).args(["build", "-p", "tessera", "--bin", "tessera"]).status();
        assert!(
            status.is_ok_and(|s| s.success()) && bin.exists(),
            "these tests drive the tessera CLI; build it first: cargo build -p tessera"
        );
    }
    bin
}

/// Starts the example on a fresh environment whose CLI is `tessera`; `None` when PostgreSQL is
/// wanted but absent.
pub fn start(backend: Backend) -> Option<(TestEnv, Server)> {
    start_with(backend, &[])
}

/// [`start`] with more `TESSERA_*` variables.
pub fn start_with(backend: Backend, vars: &[(&str, &str)]) -> Option<(TestEnv, Server)> {
    let mut env = TestEnv::new(tessera_bin(), backend)?;
    // The login throttle's defaults are for production, not for tests that log in often.
    env.env.insert("TESSERA_LOGIN_THROTTLE_PER_IP".to_string(), "off".to_string());
    for (name, value) in vars {
        env.env.insert(name.to_string(), value.to_string());
    }
    let app = env.start(Path::new(env!("CARGO_BIN_EXE_durin-example")), &["--bind", "127.0.0.1:0"]);
    Some((env, app))
}
