//! A server binary as a real process: started on port 0, found through its log, stopped with
//! SIGTERM.

use crate::http::http;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a server logs once it accepts connections; the address follows.
const LISTENING: &str = "listening on http://";

/// A running server process; killed if the test ends without [`Server::stop`].
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    name: String,
    /// Its stderr (the log), line by line, from after the "listening on" line.
    log: mpsc::Receiver<String>,
    stdout: Option<JoinHandle<String>>,
}

impl Server {
    /// Spawns `cmd` (which must bind port 0 of a loopback address) and waits up to 30 s for its
    /// `listening on http://ADDR` log line on stderr. Its stdout and stderr are read all along, so
    /// it never blocks on a full pipe.
    pub fn spawn(mut cmd: Command) -> Server {
        let program = std::path::Path::new(cmd.get_program());
        let name = program.file_name().unwrap_or(program.as_os_str()).to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stderr = child.stderr.take().expect("stderr");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdout = child.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = out.read_to_string(&mut text);
                text
            })
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            match log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(rest) = line.split(LISTENING).nth(1) {
                        // Text logs end the address with a space, JSON logs with the message's quote.
                        let addr: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
                        return Server { child, base: format!("http://{addr}"), name, log, stdout };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{name} did not start; its log: {seen:#?}");
                }
            }
        }
    }

    /// Waits until the server logs a line containing `text`; returns the line.
    pub fn wait_for_log(&self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            match self.log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("{} did not log {text:?} within {limit:?}; it logged: {seen:#?}", self.name),
            }
        }
    }

    /// Sends SIGTERM and asserts a clean exit within 20 s; returns stdout and the rest of the log.
    pub fn stop(mut self) -> (String, Vec<String>) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "{} exited with {status}", self.name);
                break;
            }
            assert!(Instant::now() < deadline, "{} did not stop on SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
        let stdout = self.stdout.take().and_then(|reader| reader.join().ok()).unwrap_or_default();
        // The process is gone: its log ends when the reader has passed on the last lines.
        let mut log = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(line) = self.log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            log.push(line);
        }
        (stdout, log)
    }

    /// A GET without a token: status and body (see [`crate::http`]).
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None)
    }

    /// A request to this server with an optional token.
    pub fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, Value) {
        http(method, &format!("{}{path}", self.base), token, None)
    }

    /// Logs in with [`crate::PASSWORD`]; returns (status, body).
    pub fn login(&self, user: &str, client: &str) -> (u16, Value) {
        let body = serde_json::json!({"username": user, "password": crate::PASSWORD, "client": client});
        http(reqwest::Method::POST, &format!("{}/api/auth/login/", self.base), None, Some(body))
    }

    /// Logs in and returns the token; asserts the login succeeds.
    pub fn token(&self, user: &str, client: &str) -> String {
        let (status, body) = self.login(user, client);
        assert_eq!(status, 200, "login: {body}");
        body["token"].as_str().expect("token").to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
