//! The example app and the `tessera` CLI as real processes on one fresh database.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tessera_sql::testing::TestDb;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

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

pub struct Example {
    child: Child,
    base: String,
    env: BTreeMap<String, String>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _db: Option<TestDb>,
}

impl Example {
    /// Starts the example on a fresh database; `None` when PostgreSQL is wanted but absent.
    pub async fn start(backend: Backend) -> Option<Example> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = BTreeMap::new();
        env.insert("TESSERA_DATA_DIR".to_string(), dir.path().join("data").display().to_string());
        // The login throttle's defaults are for production, not for tests that log in often.
        env.insert("TESSERA_LOGIN_THROTTLE_PER_IP".to_string(), "off".to_string());
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let db = tessera_sql::testing::postgres().await?;
                db.close().await;
                env.insert("TESSERA_DATABASE_URL".to_string(), db.url.clone());
                Some(db)
            }
        };
        let mut child = command(env!("CARGO_BIN_EXE_durin-example").into(), &env)
            .args(["--bind", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn durin-example");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let base = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        break format!("http://{}", rest.split_whitespace().next().unwrap_or_default());
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("durin-example did not start: {seen:#?}");
                }
            }
        };
        // Keep draining the log so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in rx {});
        Some(Example { child, base, env, http: reqwest::Client::new(), _dir: dir, _db: db })
    }

    /// Runs the `tessera` CLI on the same database; asserts success.
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_stdin(args, "")
    }

    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> String {
        let mut child = command(tessera_bin(), &self.env)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tessera");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("tessera");
        assert!(out.status.success(), "tessera {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("Authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, token, None).await
    }

    pub async fn login(&self, user: &str, client: &str) -> String {
        let body = json!({"username": user, "password": "correct horse battery", "client": client});
        let (status, body) = self.request(reqwest::Method::POST, "/api/auth/login/", None, Some(body)).await;
        assert_eq!(status, 200, "login: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// Stops the example with SIGTERM and checks it exits cleanly.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "durin-example exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("durin-example did not stop on SIGTERM");
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(program: PathBuf, env: &BTreeMap<String, String>) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TESSERA_") || k == "RUST_LOG") {
        cmd.env_remove(k);
    }
    cmd.envs(env);
    cmd
}
