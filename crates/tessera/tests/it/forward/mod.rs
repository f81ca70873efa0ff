//! Forward-auth: the contracts of Traefik and Envoy at the HTTP level (the exact requests they
//! send), trusted-proxy rules, attacker probes, and real nginx and Caddy in front of a tiny
//! upstream (`proxies.rs`).

mod contract;
mod identity;
mod proxies;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tessera_testkit::TestEnv;

/// The rules every forward-auth test runs with.
pub const RULES: &str = r#"
[[forward_auth.routes]]
path_prefix = "/public"
anonymous = true

[[forward_auth.routes]]
path_prefix = "/api"

[[forward_auth.routes]]
host = "admin.example.com"
path_prefix = "/api"
allow_clients = ["cli"]

[[forward_auth.routes]]
path_prefix = "/web"
allow_clients = ["web"]
audience = "web-app"

[[forward_auth.routes]]
path_prefix = "/metered"
throttle = true
"#;

/// Writes a config file with the rules and `extra` (more `[forward_auth]` keys, before the
/// routes), points the environment at it, and creates alice and the clients web, cli and
/// metered (2 requests a minute). Returns (web, cli, metered) tokens.
pub fn prepare(env: &mut TestEnv, extra: &str) -> (String, String, String) {
    let file = env.dir.path().join("tessera.toml");
    std::fs::write(&file, format!("[forward_auth]\n{extra}\n{RULES}")).expect("write config");
    env.env.insert("TESSERA_CONFIG".into(), file.display().to_string());
    env.env.insert("TESSERA_LOGIN_THROTTLE_PER_IP".into(), "off".into());
    env.ok(&["client", "create", "web"]);
    env.ok(&["client", "create", "cli"]);
    env.ok(&["client", "create", "metered", "--throttle-rate", "2/m"]);
    env.create_user("alice", &[]);
    let token = |client: &str| env.ok(&["token", "create", "--user", "alice", "--client", client]).trim().to_string();
    (token("web"), token("cli"), token("metered"))
}

/// An HTTP answer: status, headers (lower-case names, in order), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The one value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }

    /// The body as the echo upstream's JSON (`Null` when it is not).
    pub fn echo(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One raw HTTP/1.0 request (so that no client tidies the path or merges headers, and no server
/// answers chunked); `headers` are sent as given, repeated ones included.
pub fn raw(addr: &str, method: &str, target: &str, headers: &[(&str, &[u8])]) -> Answer {
    let addr = addr.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut head = format!("{method} {target} HTTP/1.0\r\n").into_bytes();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.extend_from_slice(format!("Host: {addr}\r\n").as_bytes());
    }
    for (name, value) in headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    stream.write_all(&head).expect("send");
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line from {addr}: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer { status, headers, body: body.to_string() }
}

/// `Authorization: Token …` as a header pair.
pub fn auth(token: &str) -> (&'static str, Vec<u8>) {
    ("Authorization", format!("Token {token}").into_bytes())
}

/// A tiny upstream: answers every request 200 with JSON `{"path": …, "headers": {name: [values]}}`
/// and counts the requests it got.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let mut lines = text.lines();
                    let path = lines.next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("").to_string();
                    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
                    for line in lines.take_while(|l| !l.is_empty()) {
                        if let Some((n, v)) = line.split_once(':') {
                            headers.entry(n.trim().to_ascii_lowercase()).or_default().push(v.trim().to_string());
                        }
                    }
                    let body = serde_json::json!({"path": path, "headers": headers}).to_string();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes());
                });
            }
        });
        Upstream { addr, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A free loopback port (bound and released: the proxy binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Waits until something accepts connections on `addr`.
pub fn wait_for_port(addr: &str, what: &str, log: &std::path::Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        if std::time::Instant::now() > deadline {
            panic!("{what} did not listen on {addr}: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
