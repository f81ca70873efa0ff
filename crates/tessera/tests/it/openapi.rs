//! The OpenAPI document (`docs/openapi.json`): it names every route the server has and no other
//! (path by path, and on the auth API method by method, against the `Allow` the server answers),
//! it is what the server serves, the viewer loads nothing from elsewhere — and schemathesis (from
//! PyPI, `TESSERA_TEST_PYTHON`) finds no answer of a real server that the document does not
//! describe, and no 5xx.

use crate::TESSERA;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tessera_testkit::{Backend, TestEnv, services_required};

fn committed() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json"))
        .expect("docs/openapi.json")
}

/// A path in one spelling: no trailing slash, no empty segment, `{name}` for any parameter.
fn canonical(path: &str) -> String {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.strip_prefix("{*").map(|name| format!("{{{name}")).unwrap_or_else(|| s.to_string()))
        .collect();
    format!("/{}", segments.join("/"))
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Whether `path` (canonical) is under `prefix`, segment by segment.
fn under(path: &str, prefix: &str) -> bool {
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// What is wrong between the routes `served` and the paths `documented` (both canonical), with the
/// prefixes `outside` set aside: served API routes the document lacks, documented paths the
/// server lacks, documented paths under a set-aside prefix, set-aside prefixes nothing is under.
fn coverage_gaps(served: &BTreeSet<String>, documented: &BTreeSet<String>, outside: &[&str]) -> [Vec<String>; 4] {
    let set_aside = |p: &String| outside.iter().any(|o| under(p, o));
    let missing = served.iter().filter(|p| !set_aside(p) && !documented.contains(*p)).cloned().collect();
    let extra = documented.difference(served).cloned().collect();
    let documented_outside = documented.iter().filter(|p| set_aside(p)).cloned().collect();
    let stale = outside.iter().filter(|o| !served.iter().any(|p| under(p, o))).map(|o| o.to_string()).collect();
    [missing, extra, documented_outside, stale]
}

#[test]
fn openapi_document_names_every_route_and_only_those() {
    let doc: Value = serde_json::from_str(&committed()).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<String> = doc["paths"].as_object().expect("paths").keys().map(|p| canonical(p)).collect();
    let served: BTreeSet<String> = tessera::serve::route_paths().iter().map(|p| canonical(p)).collect();
    // The scope: the whole API listener but the named, justified exceptions.
    let outside: Vec<&str> = tessera::serve::OUTSIDE_THE_DOCUMENT.iter().map(|(prefix, _)| *prefix).collect();
    for (prefix, why) in tessera::serve::OUTSIDE_THE_DOCUMENT {
        assert!(prefix.starts_with('/') && why.len() > 20, "{prefix}: say why it is outside the document");
        assert!(!prefix.starts_with("/api/auth") && !prefix.starts_with("/auth/forward"), "{prefix} is the API");
    }
    let [missing, extra, documented_outside, stale] = coverage_gaps(&served, &documented, &outside);
    assert!(missing.is_empty(), "routes the document lacks: {missing:?}");
    assert!(extra.is_empty(), "documented routes the server lacks: {extra:?}");
    assert!(documented_outside.is_empty(), "documented, but set aside as not API: {documented_outside:?}");
    assert!(stale.is_empty(), "set aside, but nothing is served there: {stale:?}");
    // The check itself: a new API route, anywhere but under a set-aside prefix, is caught; a new
    // admin page is not; `/adminx` is not under `/admin`.
    for (new, caught) in [
        ("/api/auth/tokens/{id}", true),
        ("/auth/forward/haproxy", true),
        ("/api/v2/things", true),
        ("/adminx", true),
        ("/admin/tokens/{id}/revoke", false),
    ] {
        let mut more = served.clone();
        more.insert(new.to_string());
        let [missing, ..] = coverage_gaps(&more, &documented, &outside);
        assert_eq!(missing == [new.to_string()], caught, "{new}: {missing:?}");
    }
    // Every operation has an id, a security statement, and answers for each status it names.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            assert!(op["operationId"].is_string() && op["security"].is_array(), "{method} {path}");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
        }
    }
}

/// One request, the answer's status, headers (lower-case) and body bytes.
fn fetch(base: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut head = format!("{method} {target} HTTP/1.0\r\nHost: {addr}\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send");
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    let text = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut lines = text.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, bytes[end + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn openapi_served_document_and_viewer() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    env.env.insert("TESSERA_API_ACCESS_CLIENT_NAME".into(), "api-access".into());
    env.ok(&["client", "create", "web"]);
    env.create_user("alice", &[]);
    let token = env.ok(&["token", "create", "--user", "alice", "--client", "web"]).trim().to_string();
    let server = env.serve(&[]);
    let base = server.base.as_str();

    // The document served is the committed file, byte for byte.
    let (status, headers, body) = fetch(base, "GET", "/api/openapi.json", &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert!(body == committed().as_bytes(), "the served document differs from docs/openapi.json");

    // The viewer: a page whose only script is the vendored one, served as vendored.
    let (status, headers, page) = fetch(base, "GET", "/api/docs", &[]);
    let page = String::from_utf8(page).expect("utf-8");
    assert_eq!(status, 200);
    assert!(header(&headers, "content-security-policy").is_some_and(|c| c.starts_with("default-src 'self'")));
    assert!(
        page.contains(r#"src="/api/docs/rapidoc-min.js""#) && !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let vendored =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/rapidoc/rapidoc-min.js.gz")).expect("asset");
    let (status, headers, script) =
        fetch(base, "GET", "/api/docs/rapidoc-min.js", &[("Accept-Encoding", "gzip, deflate, br")]);
    assert_eq!((status, header(&headers, "content-encoding")), (200, Some("gzip")));
    assert!(script == vendored, "the script is the vendored file");
    for refused in ["identity", "gzip;q=0", "br"] {
        let (status, _, _) = fetch(base, "GET", "/api/docs/rapidoc-min.js", &[("Accept-Encoding", refused)]);
        assert_eq!(status, 406, "{refused}");
    }

    // Method by method on the auth API: what the document lists is what the server's `Allow`
    // says (HEAD and OPTIONS, answered on every route, aside).
    let doc: Value = serde_json::from_str(&committed()).expect("JSON");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/auth/") {
            continue;
        }
        let target = path.replace("{id}", "1");
        let auth = format!("Token {token}");
        let (status, headers, _) = fetch(base, "PATCH", &target, &[("Authorization", &auth)]);
        assert_eq!(status, 405, "PATCH {target}");
        let allowed: BTreeSet<String> = header(&headers, "allow")
            .expect("Allow")
            .split(',')
            .map(|m| m.trim().to_ascii_lowercase())
            .filter(|m| m != "head" && m != "options")
            .collect();
        let listed: BTreeSet<String> = item.as_object().expect("item").keys().cloned().collect();
        assert_eq!(allowed, listed, "{path}: the server allows {allowed:?}, the document lists {listed:?}");
    }
    server.stop();
}

/// The Python with schemathesis, or `None` (after saying why) when it is not there and services
/// are not required.
fn schemathesis() -> Option<String> {
    let found = std::env::var("TESSERA_TEST_PYTHON")
        .ok()
        .filter(|python| Command::new(python).args(["-c", "import schemathesis"]).status().is_ok_and(|s| s.success()));
    if found.is_none() {
        assert!(!services_required(), "TESSERA_TEST_PYTHON must name a Python with schemathesis (.ci/run installs it)");
        eprintln!("skipping: TESSERA_TEST_PYTHON has no schemathesis");
    }
    found
}

/// The rules schemathesis runs against: anonymous requests pass everywhere but under /private
/// (tokens only) and /metered (throttled), so that generated requests reach every answer.
const RULES: &str = r#"
[forward_auth]
identity_token = true
identity_audience = "service"

[[forward_auth.routes]]
path_prefix = "/"
anonymous = true

[[forward_auth.routes]]
path_prefix = "/private"
allow_clients = ["web"]

[[forward_auth.routes]]
path_prefix = "/metered"
throttle = true
"#;

#[test]
fn openapi_schemathesis_finds_nothing() {
    let Some(python) = schemathesis() else { return };
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let file = env.dir.path().join("tessera.toml");
    std::fs::write(&file, RULES).expect("config");
    env.env.insert("TESSERA_CONFIG".into(), file.display().to_string());
    env.env.insert("TESSERA_API_ACCESS_CLIENT_NAME".into(), "api-access".into());
    // Generated logins should reach the login logic, not the per-source throttle.
    env.env.insert("TESSERA_LOGIN_THROTTLE_PER_IP".into(), "off".into());
    env.ok(&["client", "create", "web", "--throttle-rate", "100000/m"]);
    env.ok(&["client", "create", "cli"]);
    env.create_user("alice", &[]);
    let token = |client: &str| env.ok(&["token", "create", "--user", "alice", "--client", client]).trim().to_string();
    let (web, cli) = (token("web"), token("cli"));
    let server = env.serve(&[]);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/schemathesis.toml");
    let examples = std::env::var("TESSERA_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "150".into());
    let run = |token: &str, filter: &[&str]| {
        let started = Instant::now();
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
            .arg(&config)
            .arg("run")
            .arg(format!("{}/api/openapi.json", server.base))
            .args(["-H", &format!("Authorization: Token {token}"), "--max-examples", &examples])
            .args(["--request-timeout", "10", "--workers", "2"])
            .args(filter)
            .current_dir(env.dir.path())
            .env("HYPOTHESIS_STORAGE_DIRECTORY", env.dir.path().join("hypothesis"));
        let out = cmd.output().expect("run schemathesis");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "schemathesis found failures:\n{text}");
        let summary = text.lines().filter(|l| l.contains("generated")).collect::<Vec<_>>().join(" ");
        eprintln!("schemathesis {filter:?}: {} in {:?}", summary.trim(), started.elapsed());
    };
    // logout and logoutall revoke the token they are given: everything else first, with one
    // token, then those two with another.
    run(&web, &["--exclude-operation-id", "logout", "--exclude-operation-id", "logoutAll"]);
    run(
        &cli,
        &[
            "--include-operation-id",
            "logout",
            "--include-operation-id",
            "logoutAll",
            "--phases",
            "examples,coverage,fuzzing",
        ],
    );
    // The server is still healthy and never logged a panic.
    let (status, _) = server.get("/health");
    assert_eq!(status, 200);
    let (_, log) = server.stop();
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:?}");
}
