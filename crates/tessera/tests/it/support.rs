//! Running the real binary against a fresh data directory and database.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh environment: a data directory in a tempdir and, for PostgreSQL, a new database that is
/// dropped at the end.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub env: BTreeMap<String, String>,
    pg: Option<PgDatabase>,
}

impl TestEnv {
    /// `None` when the backend is not reachable (and not required).
    pub fn new(backend: Backend) -> Option<TestEnv> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = BTreeMap::new();
        env.insert("TESSERA_DATA_DIR".to_string(), dir.path().join("data").display().to_string());
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let db = PgDatabase::create()?;
                env.insert("TESSERA_DATABASE_URL".to_string(), db.url.clone());
                Some(db)
            }
        };
        Some(TestEnv { dir, env, pg })
    }

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(&self.env["TESSERA_DATA_DIR"])
    }

    pub fn database_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|p| p.url.as_str())
    }

    /// A command for the binary with this environment only (no TESSERA_* from the parent).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TESSERA_") || k == "RUST_LOG") {
            cmd.env_remove(k);
        }
        cmd.envs(&self.env).args(args).current_dir(self.dir.path());
        cmd
    }

    /// Runs the binary to completion, feeding `stdin`.
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

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "tessera {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs, asserts failure with exactly one line on stderr containing `want`; returns that line.
    pub fn fails(&self, args: &[&str], want: &str) -> String {
        self.fails_with_stdin(args, "", want)
    }

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

    /// Creates a user with a password from stdin.
    pub fn create_user(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["user", "create", name, "--password-stdin"];
        args.extend_from_slice(extra);
        let out = self.run_with_stdin(&args, "correct horse battery\n");
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

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Whether a missing service must fail the test instead of skipping it.
pub fn services_required() -> bool {
    std::env::var("TESSERA_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

pub fn postgres_admin_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A PostgreSQL database made for one test and dropped afterwards.
struct PgDatabase {
    url: String,
    name: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args(["--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-q", "-d", url, "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) }
}

impl PgDatabase {
    fn create() -> Option<PgDatabase> {
        let admin = postgres_admin_url();
        let name = format!(
            "tessera_bin_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
        );
        if let Err(e) = psql(&admin, &format!("CREATE DATABASE {name}")) {
            if services_required() {
                panic!("PostgreSQL is required (TESSERA_REQUIRE_SERVICES=1) but unusable at {admin}: {e}");
            }
            eprintln!("skipping: PostgreSQL not reachable at {admin}: {e}");
            return None;
        }
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("TESSERA_TEST_POSTGRES_URL has no database part: {admin}"),
        };
        Some(PgDatabase { url, name })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(&postgres_admin_url(), &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// The bytes of every file under `dir` (for "no token at rest" checks).
pub fn read_tree(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(read_tree(&path));
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.extend(bytes);
            }
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}
