//! Real nginx and real Caddy in front of a tiny upstream, asking `tessera serve` (on PostgreSQL
//! behind a TCP proxy the test can cut, so that the store can go down). The configurations are
//! the ones in `examples/forward-auth/`, with the ports filled in.

use super::{Answer, Upstream, auth, free_port, prepare, raw, wait_for_port};
use crate::TESSERA;
use crate::faults::{authority, postgres_addr};
use crate::proxy::Proxy;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tessera_testkit::{Backend, TestEnv, services_required};

/// A proxy process, killed at the end of the test.
struct Running {
    child: Child,
    addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program`'s path when it is installed; else `None` after saying so, or a failure when
/// services are required.
fn installed(program: &str, candidates: &[&str]) -> Option<PathBuf> {
    let found = candidates.iter().map(PathBuf::from).find(|p| p.is_file());
    if found.is_none() {
        assert!(!services_required(), "{program} is required (TESSERA_REQUIRE_SERVICES=1) but not installed");
        eprintln!("skipping: {program} is not installed (apt-get install {program})");
    }
    found
}

/// The example config with the test's ports.
fn example(name: &str, tessera: &str, upstream: &str, listen: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/forward-auth").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("127.0.0.1:8000", tessera)
        .replace("127.0.0.1:9000", upstream)
        .replace("127.0.0.1:8080", listen)
}

fn start_nginx(dir: &Path, tessera: &str, upstream: &str) -> Option<Running> {
    let nginx = installed("nginx", &["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"])?;
    let listen = format!("127.0.0.1:{}", free_port());
    let d = dir.display();
    // The example's server block, inside a main config that keeps every file in the test's dir.
    let config = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 128; }}\n\
         http {{\n access_log {d}/access.log;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n{}\n}}\n",
        example("nginx.conf", tessera, upstream, &listen)
    );
    let file = dir.join("nginx.conf");
    std::fs::write(&file, config).expect("write nginx.conf");
    let child = Command::new(nginx)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let running = Running { child, addr: listen };
    wait_for_port(&running.addr, "nginx", &dir.join("error.log"));
    Some(running)
}

fn start_caddy(dir: &Path, tessera: &str, upstream: &str) -> Option<Running> {
    let caddy = installed("caddy", &["/usr/bin/caddy", "/usr/local/bin/caddy"])?;
    let listen = format!("127.0.0.1:{}", free_port());
    let config =
        format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{}", example("Caddyfile", tessera, upstream, &listen));
    let file = dir.join("Caddyfile");
    std::fs::write(&file, config).expect("write Caddyfile");
    let log = std::fs::File::create(dir.join("caddy.log")).expect("log");
    let child = Command::new(caddy)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start caddy");
    let running = Running { child, addr: listen };
    wait_for_port(&running.addr, "caddy", &dir.join("caddy.log"));
    Some(running)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nginx,
    Caddy,
}

/// The whole story through one proxy.
fn through(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Check the proxy is there before anything else is set up.
    let program = match kind {
        Kind::Nginx => "nginx",
        Kind::Caddy => "caddy",
    };
    let candidates: &[&str] = match kind {
        Kind::Nginx => &["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"],
        Kind::Caddy => &["/usr/bin/caddy", "/usr/local/bin/caddy"],
    };
    if installed(program, candidates).is_none() {
        return;
    }
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Postgres) else { return };
    let direct = env.database_url().expect("postgres").to_string();
    let db_link = Proxy::start(postgres_addr(&direct));
    let via = direct.replacen(&authority(&direct), &format!("postgres@{}", db_link.addr), 1);
    env.env.insert("TESSERA_DATABASE_URL".into(), via);
    let (web, cli, metered) = prepare(&mut env, "identity_token = true\nidentity_audience = \"upstream\"");
    let server = env.serve(&[]);
    let tessera = server.base.trim_start_matches("http://").to_string();
    let upstream = Upstream::start();
    let up = upstream.addr.to_string();
    let proxy = match kind {
        Kind::Nginx => start_nginx(dir.path(), &tessera, &up),
        Kind::Caddy => start_caddy(dir.path(), &tessera, &up),
    };
    let Some(proxy) = proxy else { return };
    let at = proxy.addr.as_str();
    let get = |path: &str, headers: &[(&str, &[u8])]| raw(at, "GET", path, headers);
    let token_header = |t: &str| auth(t).1;
    let (w, c, m) = (token_header(&web), token_header(&cli), token_header(&metered));
    let spoof: (&str, &[u8]) = ("X-Tessera-User", b"mallory");
    let spoof_id: (&str, &[u8]) = ("X-Tessera-User-Id", b"1");
    let spoof_jwt: (&str, &[u8]) = ("X-Tessera-Identity", b"eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.");

    // A valid token reaches the upstream with the identity, and the client's copies are gone.
    let ok = get("/api/items?x=1", &[("Authorization", &w), spoof, spoof_id, spoof_jwt]);
    assert_eq!(ok.status, 200, "{kind:?}: {ok:?}");
    let seen = ok.echo();
    assert_eq!(seen["path"], "/api/items?x=1", "{seen}");
    assert_eq!(seen["headers"]["x-tessera-user"], serde_json::json!(["alice"]), "{seen}");
    assert_eq!(seen["headers"]["x-tessera-client"], serde_json::json!(["web"]), "{seen}");
    let user_id = &seen["headers"]["x-tessera-user-id"];
    assert!(user_id.as_array().is_some_and(|v| v.len() == 1 && v[0] != "1"), "{seen}");
    let token_id = seen["headers"]["x-tessera-token-id"][0].as_str().expect("token id").to_string();
    // The signed identity reaches the upstream (Tessera's, never the client's); its verification
    // by an independent implementation is in identity.rs.
    let jwt = seen["headers"]["x-tessera-identity"].as_array().cloned().unwrap_or_default();
    assert_eq!(jwt.len(), 1, "{kind:?}: one identity token: {seen}");
    let jwt = jwt[0].as_str().unwrap_or("");
    assert!(jwt.starts_with("eyJ") && jwt.split('.').count() == 3 && !jwt.starts_with("eyJhbGciOiJub25lIn0"), "{seen}");

    // Anonymous where the rules allow it: no identity at all reaches the upstream, spoofed or not.
    let public = get("/public/page", &[spoof, spoof_id, spoof_jwt]);
    assert_eq!(public.status, 200, "{kind:?}: {public:?}");
    let seen = public.echo();
    for h in ["x-tessera-user", "x-tessera-user-id", "x-tessera-client", "x-tessera-token-id", "x-tessera-identity"] {
        // Absent (nginx drops an empty header) or empty (Caddy copies Tessera's empty one).
        let value = &seen["headers"][h];
        assert!(
            value.is_null() || *value == serde_json::json!([""]),
            "{kind:?}: spoofed {h} reached the upstream: {seen}"
        );
    }

    let hits = upstream.hits();
    let refused = |a: &Answer, want: &[u16], what: &str| {
        assert!(want.contains(&a.status), "{kind:?} {what}: want {want:?}, got {a:?}");
        assert!(a.echo().get("path").is_none(), "{kind:?} {what}: the upstream answered: {a:?}");
    };
    // No token → 401 with the challenge.
    let anon = get("/api/items", &[spoof]);
    refused(&anon, &[401], "no token");
    assert_eq!(anon.header("www-authenticate"), Some("Token"), "{anon:?}");
    // The client's own description of "the original request" is overwritten by the proxy.
    let spoofed_original: [(&str, &[u8]); 4] = [
        ("X-Original-URI", b"/public/x"),
        ("X-Forwarded-Uri", b"/public/x"),
        ("X-Original-Method", b"GET"),
        ("X-Forwarded-Method", b"GET"),
    ];
    refused(&get("/api/items", &spoofed_original), &[401], "spoofed original URI");
    // Wrong client for the route → 403.
    refused(&get("/web/x", &[("Authorization", &c)]), &[403], "wrong client");
    // No rule → denied.
    refused(&get("/elsewhere", &[("Authorization", &w)]), &[403], "no rule");
    // A path that reads differently upstream is refused, never matched to /public.
    refused(&get("/public/%2e%2e/api/items", &[]), &[400, 403], "dot segments");
    refused(&get("/public%2F..%2Fapi", &[]), &[400, 403], "encoded slash");
    // Several Authorization headers: refused as the API refuses them.
    // (nginx itself already answers 400 to a repeated Authorization header.)
    refused(&get("/api/items", &[("Authorization", &w), ("Authorization", &c)]), &[400, 401], "two tokens");
    // Over the rate: nginx's configured status (403 by default), Caddy relays the 429; both with
    // Retry-After.
    for _ in 0..2 {
        assert_eq!(get("/metered/x", &[("Authorization", &m)]).status, 200);
    }
    let hits_before_throttle = upstream.hits();
    let throttled = get("/metered/x", &[("Authorization", &m)]);
    let want = if kind == Kind::Nginx { 403 } else { 429 };
    refused(&throttled, &[want], "throttled");
    assert!(throttled.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s > 0)), "{throttled:?}");
    assert_eq!(upstream.hits(), hits_before_throttle);
    assert_eq!(upstream.hits(), hits + 2, "only the two metered requests within the rate reached the upstream");

    // A revoked token is refused through the proxy within a second of the revocation (by the
    // CLI: another process, so the server learns it from the invalidation log).
    assert_eq!(get("/api/items", &[("Authorization", &w)]).status, 200, "cached");
    env.ok(&["token", "revoke", &token_id]);
    let revoked = Instant::now();
    loop {
        let a = get("/api/items", &[("Authorization", &w)]);
        if a.status == 401 {
            break;
        }
        assert_eq!(a.status, 200, "{a:?}");
        // 1 s is the bound; the rest is slack for a loaded machine answering through a proxy.
        assert!(revoked.elapsed() < Duration::from_millis(1500), "{kind:?}: revoked token still passes");
        std::thread::sleep(Duration::from_millis(25));
    }
    eprintln!("{kind:?}: revocation refused after {:?}", revoked.elapsed());

    // The store goes down: a 5xx at the proxy, never a pass (once the cache stops being trusted,
    // at most a second later; a cached verdict before that is the documented bound).
    db_link.cut();
    std::thread::sleep(Duration::from_millis(1200));
    let hits = upstream.hits();
    for _ in 0..5 {
        let a = get("/api/items", &[("Authorization", &c)]);
        assert!(a.status >= 500, "{kind:?}: store down: {a:?}");
        let a = get("/metered/x", &[("Authorization", &m)]);
        assert!(a.status >= 500, "{kind:?}: store down: {a:?}");
    }
    assert_eq!(upstream.hits(), hits, "{kind:?}: nothing passed while the store was down");
    db_link.restore();
    drop(proxy);
}

#[test]
fn forward_auth_through_nginx() {
    through(Kind::Nginx);
}

#[test]
fn forward_auth_through_caddy() {
    through(Kind::Caddy);
}
