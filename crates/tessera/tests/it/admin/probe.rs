//! The admin over plain HTTP, as an attacker or a proxy would talk to it: the login IP behind a
//! trusted proxy, and forms with huge, repeated, missing or non-UTF-8 fields — a clear error or a
//! consistent result, never a 500, nothing half-saved.

use super::TESSERA;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tessera_testkit::{Backend, PASSWORD, Server, TestEnv, test_each_backend};

/// One raw HTTP/1.1 exchange; the whole answer (status line, headers, body).
fn send(addr: &str, head: &str, body: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let request = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(request.as_bytes()).expect("write head");
    // The server may answer (413) before it has read a huge body: a failed write is fine then.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Signs in as the staff user `admin` with `extra` headers; the session cookie (`name=value`).
fn sign_in(server: &Server, extra: &str) -> String {
    let body = format!("username=admin&password={}", PASSWORD.replace(' ', "+"));
    let answer = send(
        server.base.trim_start_matches("http://"),
        &format!(
            "POST /admin/login HTTP/1.1\r\nSec-Fetch-Site: same-origin\r\n\
             Content-Type: application/x-www-form-urlencoded{extra}"
        ),
        body.as_bytes(),
    );
    let cookie = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no session cookie: {answer}"));
    cookie.split(';').next().expect("pair").to_string()
}

fn status(answer: &str) -> u16 {
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Behind a trusted proxy the admin records the address the proxy forwarded for, as the API does.
fn login_ip_behind_a_trusted_proxy(backend: Backend) {
    let Some(mut env) = TestEnv::new(TESSERA, backend) else { return };
    let file = env.dir.path().join("tessera.toml");
    std::fs::write(&file, "trusted_proxies = [\"127.0.0.1/32\"]\n").expect("config");
    env.env.insert("TESSERA_CONFIG".into(), file.display().to_string());
    env.create_user("admin", &["--staff"]);
    let server = env.serve(&[]);
    sign_in(&server, "\r\nX-Forwarded-For: 203.0.113.9");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let audit = env.ok(&["audit", "--json", "--kind", "user_logged_in"]);
        let records: serde_json::Value = serde_json::from_str(&audit).expect("json");
        if let Some(login) = records.as_array().and_then(|r| r.first()) {
            assert_eq!(login["ip"], "203.0.113.9", "the forwarded address, not the proxy's: {login}");
            assert_eq!(login["client"], "tessera-admin");
            break;
        }
        assert!(Instant::now() < deadline, "no login in the audit log");
        std::thread::sleep(Duration::from_millis(200));
    }
}

test_each_backend!(login_ip_behind_a_trusted_proxy => login_ip_behind_a_trusted_proxy_on_sqlite,
    login_ip_behind_a_trusted_proxy_on_postgres);

/// Every form, with bodies no browser sends: never a 500, and nothing saved by a refused one.
fn forms_refuse_bad_bodies(backend: Backend) {
    let Some(env) = TestEnv::new(TESSERA, backend) else { return };
    env.create_user("admin", &["--staff"]);
    env.create_user("alice", &[]);
    env.ok(&["client", "create", "web"]);
    let server = env.serve(&[]);
    let cookie = sign_in(&server, "");
    let addr = server.base.trim_start_matches("http://").to_string();
    let post = |path: &str, body: &[u8]| {
        send(
            &addr,
            &format!(
                "POST /admin{path} HTTP/1.1\r\nSec-Fetch-Site: same-origin\r\nCookie: {cookie}\r\n\
                 Content-Type: application/x-www-form-urlencoded"
            ),
            body,
        )
    };
    let clients = || env.ok(&["client", "list", "--json"]);
    let users = || env.ok(&["user", "list", "--json"]);
    let (clients_before, users_before) = (clients(), users());
    let huge = format!("name={}&token_ttl=1h", "x".repeat(1 << 20));
    let mut non_utf8 = b"name=caf".to_vec();
    non_utf8.extend_from_slice(&[0xff, 0xfe]);
    non_utf8.extend_from_slice(b"&token_ttl=1h");
    let bodies: [(&str, &[u8]); 6] = [
        ("huge", huge.as_bytes()),
        ("non-UTF-8 bytes", &non_utf8),
        ("percent-encoded non-UTF-8", b"name=caf%FF%FE&token_ttl=1h"),
        ("missing fields", b""),
        ("garbage", b"%%%&&&==="),
        ("repeated name, bad ttl", b"name=a&name=b&token_ttl=nope"),
    ];
    let paths = ["/clients", "/users", "/tokens", "/tokens/revoke", "/clients/1", "/users/1", "/clients/1/delete"];
    for path in paths {
        for (what, body) in bodies {
            let answer = post(path, body);
            let code = status(&answer);
            assert!(code != 0 && code < 500, "{path} with {what}: {}", answer.lines().next().unwrap_or(""));
        }
    }
    assert_eq!(status(&post("/clients", huge.as_bytes())), 413, "a 1 MiB form is too large");
    assert_eq!(status(&post("/clients", &non_utf8)), 400, "non-UTF-8 is refused before any handler");
    assert_eq!(status(&post("/users", b"username=caf%FF&password1=x&password2=x")), 400);
    assert_eq!(clients(), clients_before, "no refused form created or changed a client");
    assert_eq!(users(), users_before, "no refused form created or changed a user");

    // Repeated fields that are each valid: one consistent result, never a mix.
    let answer = post("/clients", b"name=one&name=two&token_ttl=1h&token_ttl=2h");
    assert!(status(&answer) < 500, "{answer}");
    let listed = clients();
    let created = ["one", "two"].iter().filter(|n| listed.contains(&format!("\"{n}\""))).count();
    assert!(created <= 1, "at most one client from one form: {listed}");

    // Two edits of the same client racing: both answered, the client ends as one of them.
    let id = {
        let list: serde_json::Value = serde_json::from_str(&clients()).expect("json");
        list.as_array()
            .and_then(|l| l.iter().find(|c| c["name"] == "web"))
            .and_then(|c| c["id"].as_i64())
            .expect("web's id")
    };
    let edit = |ttl: &'static str| {
        let path = format!("/clients/{id}");
        let body = format!("name=web&token_ttl={ttl}&description=race-{ttl}");
        post(&path, body.as_bytes())
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| edit("2h"));
        let b = s.spawn(|| edit("3h"));
        (a.join().expect("a"), b.join().expect("b"))
    });
    assert!(status(&a) < 500 && status(&b) < 500, "{a}\n{b}");
    let list: serde_json::Value = serde_json::from_str(&clients()).expect("json");
    let web = list.as_array().and_then(|l| l.iter().find(|c| c["name"] == "web")).expect("web").clone();
    let description = web["description"].as_str().unwrap_or_default().to_string();
    assert!(description == "race-2h" || description == "race-3h", "{web}");
}

test_each_backend!(forms_refuse_bad_bodies => forms_refuse_bad_bodies_on_sqlite, forms_refuse_bad_bodies_on_postgres);
