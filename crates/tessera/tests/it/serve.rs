//! `tessera serve` as a real process: health, readiness, first-run guidance, the key file, and a
//! graceful stop on SIGTERM.

use crate::support::{Backend, TestEnv};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running server process; killed if the test ends early.
pub struct Server {
    child: Child,
    pub base: String,
    log: mpsc::Receiver<String>,
    stdout: Option<std::process::ChildStdout>,
}

impl Server {
    pub fn start(env: &TestEnv, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--bind", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = env
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
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
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                        let stdout = child.stdout.take();
                        return Server { child, base: format!("http://{addr}"), log: rx, stdout };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("server did not start; its log: {seen:#?}");
                }
            }
        }
    }

    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        http_get(&format!("{}{path}", self.base))
    }

    /// Waits until the server logs a line containing `text`.
    pub fn wait_for_log(&self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            match self.log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(text) => return,
                Ok(line) => seen.push(line),
                Err(_) => panic!("the server did not log {text:?} within {limit:?}; it logged: {seen:#?}"),
            }
        }
    }

    /// A request to this server with a token.
    pub fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        http(method, &format!("{}{path}", self.base), token, None)
    }

    /// Logs in; returns (status, body).
    pub fn login(&self, user: &str, client: &str) -> (u16, serde_json::Value) {
        let body = serde_json::json!({"username": user, "password": "correct horse battery", "client": client});
        http(reqwest::Method::POST, &format!("{}/api/auth/login/", self.base), None, Some(body))
    }

    /// Logs in and returns the token.
    pub fn token(&self, user: &str, client: &str) -> String {
        let (status, body) = self.login(user, client);
        assert_eq!(status, 200, "login: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// Sends SIGTERM and waits for a clean exit; returns stdout and the rest of the log.
    pub fn stop(mut self) -> (String, Vec<String>) {
        let pid = self.child.id().to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "server exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut stdout = String::new();
        if let Some(mut out) = self.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        let log: Vec<String> = self.log.try_iter().collect();
        (stdout, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET: status and JSON body (`null` when not JSON).
pub fn http_get(url: &str) -> (u16, serde_json::Value) {
    http(reqwest::Method::GET, url, None, None)
}

/// One runtime and client for every request of the test binary.
fn runtime() -> &'static (tokio::runtime::Runtime, reqwest::Client) {
    static RT: std::sync::OnceLock<(tokio::runtime::Runtime, reqwest::Client)> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("client");
        (rt, client)
    })
}

/// A request with an optional token and JSON body: status and JSON body (`null` when empty).
pub fn http(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let (rt, client) = runtime();
    rt.block_on(async {
        let mut req = client.request(method, url);
        if let Some(token) = token {
            req = req.header("Authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    })
}

fn serves_health_and_ready(backend: Backend) {
    let Some(env) = TestEnv::new(backend) else { return };
    let server = Server::start(&env, &[]);
    assert_eq!(server.get("/health"), (200, serde_json::json!({"status": "ok"})));
    assert_eq!(server.get("/ready"), (200, serde_json::json!({"status": "ready"})));
    let (status, _) = server.get("/nope");
    assert_eq!(status, 404);
    let (stdout, log) = server.stop();
    assert!(stdout.contains("Next steps"), "first start explains what to do next: {stdout}");
    assert!(log.iter().any(|l| l.contains("shutting down")), "{log:?}");

    if backend == Backend::Sqlite {
        let key = env.data_dir().join("secret.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).expect("key file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
        }
        let key_text = std::fs::read_to_string(&key).expect("key");
        assert!(!log.iter().any(|l| l.contains(key_text.trim())), "the key is never logged");
    }

    // A second start on the same data: no first-run text, same key.
    let key_before = std::fs::read(env.data_dir().join("secret.key")).ok();
    let server = Server::start(&env, &[]);
    assert_eq!(server.get("/health").0, 200);
    let (stdout, _) = server.stop();
    assert!(!stdout.contains("Next steps"), "the guidance is printed once: {stdout}");
    assert_eq!(std::fs::read(env.data_dir().join("secret.key")).ok(), key_before);
}

#[test]
fn serve_on_sqlite() {
    serves_health_and_ready(Backend::Sqlite);
}

#[test]
fn serve_on_postgres() {
    serves_health_and_ready(Backend::Postgres);
}

#[test]
fn ready_reports_an_unreachable_store() {
    let Some(env) = TestEnv::new(Backend::Postgres) else { return };
    let server = Server::start(&env, &[]);
    assert_eq!(server.get("/ready").0, 200);
    let url = env.database_url().expect("postgres").to_string();
    let name = url.rsplit('/').next().expect("db name").to_string();
    let admin = crate::support::postgres_admin_url();
    let out = std::process::Command::new("psql")
        .args(["--no-psqlrc", "-q", "-d", &admin, "-c", &format!("DROP DATABASE {name} WITH (FORCE)")])
        .output()
        .expect("psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, body) = server.get("/ready");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(server.get("/health").0, 200, "the process itself is still up");
}
