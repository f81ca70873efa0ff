//! The signed identity (`X-Tessera-Identity`) verified by an independent implementation: PyJWT
//! with cryptography (from PyPI; `TESSERA_TEST_PYTHON`, which `.ci/run` makes) fetching the public
//! keys from the server's `/.well-known/jwks.json`, as an upstream in Python would. Expired,
//! wrong-audience and tampered tokens are refused by it; after `identity-key rotate` a token
//! signed with the previous key still verifies, and new tokens name the new key.

use super::{auth, prepare, raw};
use crate::TESSERA;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tessera_testkit::{Backend, TestEnv, services_required};

/// The Python with PyJWT and cryptography, or `None` (after saying why) when it is not there and
/// services are not required.
fn python() -> Option<String> {
    let found = std::env::var("TESSERA_TEST_PYTHON").ok().filter(|python| {
        Command::new(python)
            .args(["-c", "import jwt, jwt.algorithms as a, sys; sys.exit(0 if a.has_crypto else 1)"])
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            !services_required(),
            "TESSERA_TEST_PYTHON must name a Python with PyJWT and cryptography (.ci/run installs them)"
        );
        eprintln!("skipping: TESSERA_TEST_PYTHON has no PyJWT with cryptography");
    }
    found
}

/// Runs the verifier over `cases` (token, audience, issuer) against `base`'s JWKS.
fn verify(python: &str, base: &str, cases: &[(&str, &str, &str)]) -> Vec<Value> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/forward/verify_identity.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(format!("{base}/.well-known/jwks.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the verifier");
    let input: Vec<Value> = cases.iter().map(|(t, a, i)| json!({"token": t, "audience": a, "issuer": i})).collect();
    child.stdin.take().expect("stdin").write_all(json!(input).to_string().as_bytes()).expect("write cases");
    let out = child.wait_with_output().expect("verifier");
    assert!(out.status.success(), "verifier failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

/// Asks the Traefik endpoint about `uri` with `token`; returns the answer.
fn ask(base: &str, uri: &str, token: Option<&str>) -> super::Answer {
    let mut headers: Vec<(&str, Vec<u8>)> =
        vec![("X-Forwarded-Uri", uri.as_bytes().to_vec()), ("X-Forwarded-Host", b"app.example.com".to_vec())];
    if let Some(t) = token {
        headers.push(auth(t));
    }
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    raw(base, "GET", "/auth/forward/traefik", &headers)
}

fn jwt_of(answer: &super::Answer) -> String {
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.header("x-tessera-identity").filter(|v| !v.is_empty()).expect("an identity token").to_string()
}

fn config(env: &TestEnv, ttl: &str) {
    let file = env.dir.path().join("tessera.toml");
    let text = std::fs::read_to_string(&file).expect("config");
    let text = text.replace("identity_ttl = \"60s\"", &format!("identity_ttl = \"{ttl}\""));
    std::fs::write(&file, text).expect("write config");
}

#[test]
fn forward_auth_identity_verified_by_pyjwt() {
    let Some(python) = python() else { return };
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let (web, _, _) =
        prepare(&mut env, "identity_token = true\nidentity_audience = \"upstream\"\nidentity_ttl = \"60s\"");
    let server = env.serve(&[]);
    let base = server.base.as_str();
    let key_file = env.data_dir().join("identity.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("created on first start").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the identity key file is private");
    }

    let ok = ask(base, "/api/items", Some(&web));
    let token = jwt_of(&ok);
    assert!(!token.contains(&web), "the JWT never carries the token");
    let web_app = jwt_of(&ask(base, "/web/x", Some(&web)));
    // Anonymous: the header is there and empty (so a proxy copying it overwrites a client's).
    let public = ask(base, "/public/x", None);
    assert_eq!((public.status, public.header("x-tessera-identity")), (200, Some("")), "{public:?}");

    // Tampered: the payload says mallory, the signature is alice's.
    let parts: Vec<&str> = token.split('.').collect();
    let text = String::from_utf8(b64url_decode(parts[1])).expect("utf-8");
    assert!(text.contains("\"alice\""), "{text}");
    let forged_payload = b64url_encode(text.replace("\"alice\"", "\"mallory\"").as_bytes());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    let results = verify(
        &python,
        base,
        &[
            (&token, "upstream", "tessera"),
            (&token, "another-service", "tessera"),
            (&tampered, "upstream", "tessera"),
            (&web_app, "web-app", "tessera"),
            (&web_app, "upstream", "tessera"),
            (&token, "upstream", "someone-else"),
        ],
    );
    let claims = &results[0]["claims"];
    assert_eq!(claims["username"], "alice", "{results:?}");
    assert_eq!(claims["client"], "web");
    assert_eq!(claims["aud"], "upstream");
    assert_eq!(claims["iss"], "tessera");
    assert_eq!(claims["sub"].as_str(), ok.header("x-tessera-user-id"));
    assert_eq!(claims["token_id"].to_string(), ok.header("x-tessera-token-id").expect("token id"));
    assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), 60);
    assert_eq!(results[1]["error"], "InvalidAudienceError", "{results:?}");
    assert_eq!(results[2]["error"], "InvalidSignatureError", "{results:?}");
    assert_eq!(results[3]["claims"]["aud"], "web-app", "the route's own audience: {results:?}");
    assert_eq!(results[4]["error"], "InvalidAudienceError", "{results:?}");
    assert_eq!(results[5]["error"], "InvalidIssuerError", "{results:?}");
    let old_kid = results[0]["kid"].as_str().expect("kid").to_string();

    // Rollover: a new signing key; the running server notices the file changed (a stat a second)
    // and keeps the old public key published, so the token signed before still verifies. The
    // bound is under the 10 s unconditional re-read, so only the metadata check can meet it.
    let said = env.ok(&["identity-key", "rotate"]);
    assert!(said.contains(&old_kid) && said.contains("stays published"), "{said}");
    let deadline = Instant::now() + Duration::from_secs(8);
    let fresh = loop {
        let t = jwt_of(&ask(base, "/api/items", Some(&web)));
        if !t.starts_with(parts[0]) {
            break t;
        }
        assert!(Instant::now() < deadline, "the server did not sign with the rotated key within 8 s");
        std::thread::sleep(Duration::from_millis(250));
    };
    let (_, jwks) = server.get("/.well-known/jwks.json");
    let kids: Vec<&str> = jwks["keys"].as_array().expect("keys").iter().filter_map(|k| k["kid"].as_str()).collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert_eq!(kids[1], old_kid, "the previous key stays published: {jwks}");
    assert!(jwks["keys"].as_array().expect("keys").iter().all(|k| k.get("d").is_none()), "no private part: {jwks}");
    let results = verify(&python, base, &[(&token, "upstream", "tessera"), (&fresh, "upstream", "tessera")]);
    assert_eq!(results[0]["kid"], old_kid.as_str(), "{results:?}");
    assert_eq!(results[0]["claims"]["username"], "alice", "the old token still verifies: {results:?}");
    assert_eq!(results[1]["kid"], kids[0], "{results:?}");
    assert!(results[1]["claims"].is_object(), "{results:?}");
    server.stop();

    // Expiry: a one-second identity is refused by the verifier once it is past.
    config(&env, "1s");
    let server = env.serve(&[]);
    let short = jwt_of(&ask(server.base.as_str(), "/api/items", Some(&web)));
    std::thread::sleep(Duration::from_millis(2100));
    let results = verify(&python, &server.base, &[(&short, "upstream", "tessera")]);
    assert_eq!(results[0]["error"], "ExpiredSignatureError", "{results:?}");
    server.stop();
}

#[test]
fn forward_auth_identity_config_errors() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    // A route without an audience, and no default: refused at start-up, naming the route.
    let file = env.dir.path().join("bad.toml");
    std::fs::write(&file, "[forward_auth]\nidentity_token = true\n[[forward_auth.routes]]\npath_prefix = \"/api\"\n")
        .expect("write");
    env.env.insert("TESSERA_CONFIG".into(), file.display().to_string());
    env.fails(&["serve", "--bind", "127.0.0.1:0"], "'forward_auth.routes[0]' has no audience");
    std::fs::write(&file, "[forward_auth]\nidentity_token = true\nidentity_audience = \"x\"\nidentity_ttl = \"2m\"\n")
        .expect("write");
    env.fails(&["serve", "--bind", "127.0.0.1:0"], "between 1 and 60 seconds");
    std::fs::write(&file, "[forward_auth]\nidentity_token = true\nidentity_audience = \"x\"\n").expect("write");
    // Listing creates no key; the first rotation does.
    let said = env.ok(&["identity-key", "list"]);
    assert!(said.contains("no identity key yet"), "{said}");
    assert!(!env.data_dir().join("identity.key").exists());
    // Keys from the configuration: bad ones are refused without showing them; rotate says what to do.
    env.env.insert("TESSERA_IDENTITY_KEYS".into(), "ab".repeat(31));
    let err = env.fails(&["identity-key", "list"], "item 1: expected 64 hexadecimal digits");
    assert!(!err.contains(&"ab".repeat(31)), "{err}");
    env.env.insert("TESSERA_IDENTITY_KEYS".into(), format!("{},{}", "ab".repeat(32), "cd".repeat(32)));
    let listed = env.ok(&["identity-key", "list"]);
    assert!(listed.contains("signing") && listed.contains("verify-only"), "{listed}");
    assert!(!listed.contains(&"ab".repeat(32)), "{listed}");
    env.fails(&["identity-key", "rotate"], "which Tessera does not rewrite");
    // With those keys a server publishes both, the first signing.
    let server = env.serve(&[]);
    let (status, jwks) = server.get("/.well-known/jwks.json");
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2), "{jwks}");
    server.stop();
}

fn b64url_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = alphabet.iter().position(|&a| a == c).expect("base64url") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

fn b64url_encode(bytes: &[u8]) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(alphabet[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
