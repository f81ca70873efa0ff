//! A fresh environment for a test's processes, and the CLI run in it.

use crate::server::Server;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tessera_sql::testing::TestDb;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The SQLite file in the data directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// A fresh environment: a data directory in a tempdir and, for PostgreSQL, a new (unmigrated)
/// database that is dropped at the end. Every process a test starts through it — the CLI, servers
/// — gets exactly [`TestEnv::env`] and none of the runner's `TESSERA_*` variables.
#[derive(Debug)]
pub struct TestEnv {
    /// The temporary directory: the data directory lives in it, and it is every process's
    /// working directory.
    pub dir: tempfile::TempDir,
    /// The `TESSERA_*` variables of every process; tests add and remove settings here.
    pub env: BTreeMap<String, String>,
    cli: PathBuf,
    db: Option<TestDb>,
}

impl TestEnv {
    /// A fresh environment whose CLI is the `tessera` binary at `cli`; `None` (after saying why)
    /// when the backend is not reachable and not required.
    pub fn new(cli: impl Into<PathBuf>, backend: Backend) -> Option<TestEnv> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = BTreeMap::new();
        env.insert("TESSERA_DATA_DIR".to_string(), dir.path().join("data").display().to_string());
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let db = postgres_database()?;
                env.insert("TESSERA_DATABASE_URL".to_string(), db.url.clone());
                Some(db)
            }
        };
        Some(TestEnv { dir, env, cli: cli.into(), db })
    }

    /// The data directory (`TESSERA_DATA_DIR`).
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(&self.env["TESSERA_DATA_DIR"])
    }

    /// The PostgreSQL database's URL; `None` on SQLite.
    pub fn database_url(&self) -> Option<&str> {
        self.db.as_ref().map(|db| db.url.as_str())
    }

    /// A command for `program` with this environment only (no `TESSERA_*` or `RUST_LOG` from the
    /// test runner), in the temporary directory.
    pub fn command_for(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TESSERA_") || k == "RUST_LOG") {
            cmd.env_remove(k);
        }
        cmd.envs(&self.env).current_dir(self.dir.path());
        cmd
    }

    /// A command for the CLI with `args`, in this environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.command_for(&self.cli);
        cmd.args(args);
        cmd
    }

    /// Starts `tessera serve` on a free port of 127.0.0.1, with `extra` arguments.
    pub fn serve(&self, extra: &[&str]) -> Server {
        let mut cmd = self.command(&["serve", "--bind", "127.0.0.1:0"]);
        cmd.args(extra);
        Server::spawn(cmd)
    }

    /// Starts another server binary (an app on the library) with `args` in this environment; it
    /// must log `listening on http://ADDR` as `tessera serve` does.
    pub fn start(&self, program: &Path, args: &[&str]) -> Server {
        let mut cmd = self.command_for(program);
        cmd.args(args);
        Server::spawn(cmd)
    }

    /// Runs the CLI to completion, feeding `stdin`.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tessera");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        child.wait_with_output().expect("wait for tessera")
    }

    /// Runs the CLI to completion with nothing on stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    /// Runs the CLI and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with_stdin(args, "")
    }

    /// Runs the CLI feeding `stdin` and asserts success; returns stdout.
    pub fn ok_with_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_with_stdin(args, stdin);
        assert!(out.status.success(), "tessera {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the CLI, asserts failure with exactly one line on stderr containing `want`; returns
    /// that line.
    pub fn fails(&self, args: &[&str], want: &str) -> String {
        self.fails_with_stdin(args, "", want)
    }

    /// [`TestEnv::fails`], feeding `stdin`.
    pub fn fails_with_stdin(&self, args: &[&str], stdin: &str, want: &str) -> String {
        let out = self.run_with_stdin(args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "tessera {args:?} should fail; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "tessera {args:?}: want one line on stderr, got {stderr:?}");
        assert!(lines[0].contains(want), "tessera {args:?}: {:?} does not contain {want:?}", lines[0]);
        lines[0].to_string()
    }

    /// Creates a user with the password [`crate::PASSWORD`], read from stdin.
    pub fn create_user(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["user", "create", name, "--password-stdin"];
        args.extend_from_slice(extra);
        let out = self.run_with_stdin(&args, &format!("{}\n", crate::PASSWORD));
        assert!(out.status.success(), "user create: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `list --json` of users, clients and tokens: the whole state, to compare before and after.
    pub fn snapshot(&self) -> serde_json::Value {
        let mut all = serde_json::Map::new();
        for what in ["user", "client", "token"] {
            let text = self.ok(&[what, "list", "--json"]);
            all.insert(what.into(), serde_json::from_str(&text).expect("list --json is JSON"));
        }
        serde_json::Value::Object(all)
    }
}

/// A fresh, unmigrated PostgreSQL database (the processes under test migrate it; a test may also
/// fill one of its own, such as a Django project's), dropped with the guard; or `None`.
///
/// `tessera_sql::testing` makes it; that is async, and tests may be sync or inside a runtime, so it
/// runs on a thread with a runtime of its own. The test keeps only the URL and the guard that drops
/// the database: the store it opened is closed at once.
pub fn postgres_database() -> Option<TestDb> {
    let worker = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let db = tessera_sql::testing::postgres_unmigrated().await?;
            db.close().await;
            Some(db)
        })
    });
    // A panic there (PostgreSQL required but absent) is the test's failure, with its message.
    worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
