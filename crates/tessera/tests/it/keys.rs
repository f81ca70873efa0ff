//! Server-key rotation across two real `tessera serve` processes sharing one database and one key
//! file: rotate while they run, old tokens keep working on both, new logins use the new key, and a
//! key is retired only once its tokens are revoked.

use crate::TESSERA;
use crate::cluster::{Cluster, refused_within};
use std::time::{Duration, Instant};
use tessera_testkit::{Backend, Method, Server, TestEnv};

const SESSIONS: &str = "/api/auth/sessions/";

/// The key id a token carries: the character after the `tsr_` prefix.
fn key_of(token: &str) -> &str {
    &token[4..5]
}

fn ok(server: &Server, token: &str) {
    let (status, body) = server.call(Method::GET, SESSIONS, Some(token));
    assert_eq!(status, 200, "{body}");
}

/// Polls until `token` is accepted by `server`; fails after `limit`.
fn accepted_within(server: &Server, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = server.call(Method::GET, SESSIONS, Some(token));
        if status == 200 {
            return start.elapsed();
        }
        assert_eq!(status, 401, "{body}");
        assert!(start.elapsed() < limit, "still refused after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `key list --json`: (id, status, tokens) per key.
fn key_list(env: &TestEnv) -> Vec<(String, String, u64)> {
    let listed: serde_json::Value = serde_json::from_str(&env.ok(&["key", "list", "--json"])).expect("json");
    listed
        .as_array()
        .expect("array")
        .iter()
        .map(|k| {
            let text = |f: &str| k[f].as_str().expect("text").to_string();
            (text("id"), text("status"), k["tokens"].as_u64().expect("count"))
        })
        .collect()
}

fn rotation_across_two_instances(env: &TestEnv) {
    env.ok(&["client", "create", "web"]);
    env.ok(&["client", "create", "ios"]);
    env.ok(&["client", "create", "cli"]);
    env.create_user("alice", &[]);
    env.create_user("bob", &[]);
    let a = env.serve(&[]);
    let b = env.serve(&[]);

    // Before the rotation: the one key there is, id 0.
    let alice_web = a.token("alice", "web");
    ok(&b, &alice_web);
    let bob_web = b.token("bob", "web");
    for token in [&alice_web, &bob_web] {
        assert_eq!(key_of(token), "0");
        ok(&a, token);
        ok(&b, token);
    }
    assert_eq!(key_list(env), vec![("0".into(), "current".into(), 2)]);

    // Rotate while both run.
    let said = env.ok(&["key", "rotate"]);
    assert!(said.contains("new current key 1"), "{said}");
    assert!(!said.contains(&std::fs::read_to_string(env.data_dir().join("secret.key")).expect("key file")[2..20]));
    let file = std::fs::read_to_string(env.data_dir().join("secret.key")).expect("key file");
    let ids: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(ids, vec!["1", "0"], "the new key first, the old one kept");

    // Old tokens keep working on both, at once.
    for token in [&alice_web, &bob_web] {
        ok(&a, token);
        ok(&b, token);
    }

    // A third instance started now issues with the new key. Its token names a key A and B may not
    // have loaded yet: they re-read the key file soon after it is presented, well before their
    // 10-second reload.
    let c = env.serve(&[]);
    let from_c = c.token("alice", "cli");
    assert_eq!(key_of(&from_c), "1");
    for server in [&a, &b] {
        let took = accepted_within(server, &from_c, Duration::from_secs(5));
        assert!(took < Duration::from_secs(3), "a new key's token was accepted after {took:?}");
    }
    c.stop();

    // New logins on both use the new key; each instance's token works on the other.
    let alice_ios = a.token("alice", "ios");
    let bob_ios = b.token("bob", "ios");
    assert_eq!((key_of(&alice_ios), key_of(&bob_ios)), ("1", "1"));
    ok(&b, &alice_ios);
    ok(&a, &bob_ios);
    // A pair whose token was made with the old key gets that same token back, on either instance.
    assert_eq!(a.token("alice", "web"), alice_web);
    assert_eq!(b.token("alice", "web"), alice_web);

    assert_eq!(key_list(env), vec![("1".into(), "current".into(), 3), ("0".into(), "verify-only".into(), 2)]);

    // Retiring: never the current key; not while tokens use it, unless --revoke.
    env.fails(&["key", "retire", "1"], "key '1' is the current key");
    env.fails(&["key", "retire", "0"], "key 0 is still used by 2 token(s)");
    env.fails(&["key", "retire", "7"], "there is no key with id '7'");
    for token in [&alice_web, &bob_web] {
        ok(&a, token);
        ok(&b, token);
    }
    let said = env.ok(&["key", "retire", "0", "--revoke"]);
    assert!(said.contains("retired key 0") && said.contains("2 token(s) revoked"), "{said}");
    for server in [&a, &b] {
        for token in [&alice_web, &bob_web] {
            let took = refused_within(server, token, Duration::from_secs(3));
            assert!(took < Duration::from_millis(1500), "a retired key's token was refused after {took:?}");
        }
    }
    // The new key's tokens are untouched; the old pairs log in again with the new key.
    for token in [&alice_ios, &bob_ios, &from_c] {
        ok(&a, token);
        ok(&b, token);
    }
    let again = b.token("alice", "web");
    assert_eq!(key_of(&again), "1");
    ok(&a, &again);
    assert_eq!(key_list(env), vec![("1".into(), "current".into(), 4)]);
    let file = std::fs::read_to_string(env.data_dir().join("secret.key")).expect("key file");
    assert_eq!(file.lines().filter(|l| !l.starts_with('#')).count(), 1, "key 0 is gone from the file");

    // The audit log says who changed the keys, and that the retirement revoked two tokens, each
    // recorded (`key retire --revoke` writes its records before it exits).
    let audit = tessera_testkit::json(&env.ok(&["audit", "--json", "--kind", "key_rotated"]));
    let rotated = &audit.as_array().expect("records")[..];
    assert_eq!(rotated.len(), 1, "{audit}");
    assert_eq!(
        (&rotated[0]["actor"], &rotated[0]["detail"]),
        (&"cli".into(), &serde_json::json!({"key": "1", "verify_only": ["0"]}))
    );
    let retired = tessera_testkit::json(&env.ok(&["audit", "--json", "--kind", "key_retired"]));
    assert_eq!(retired[0]["detail"], serde_json::json!({"key": "0", "tokens_revoked": 2}), "{retired}");
    let revoked = tessera_testkit::json(&env.ok(&["audit", "--json", "--kind", "token_revoked"]));
    let by_cli = revoked.as_array().expect("records").iter().filter(|r| r["detail"]["by"] == "cli").count();
    assert_eq!(by_cli, 2, "{revoked}");

    let (_, log_a) = a.stop();
    let (_, log_b) = b.stop();
    for line in log_a.iter().chain(&log_b) {
        for secret in [&alice_web, &bob_web, &alice_ios, &bob_ios, &again] {
            assert!(!line.contains(secret.as_str()), "a token in the log: {line}");
        }
        assert!(!line.contains(&file.lines().last().expect("key").split(' ').nth(1).expect("hex")[..16]));
    }
}

#[test]
fn rotation_across_two_instances_on_sqlite() {
    let Some(env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    rotation_across_two_instances(&env);
}

#[test]
fn rotation_across_two_instances_on_postgres() {
    let Some(env) = TestEnv::new(TESSERA, Backend::Postgres) else { return };
    rotation_across_two_instances(&env);
}

/// PostgreSQL for users and clients, tokens in Redis, revocations on the Redis bus; the key file
/// in the shared data directory instead of the cluster's `TESSERA_SECRET_KEY`.
#[test]
fn rotation_across_two_instances_with_tokens_in_redis() {
    let Some(mut cluster) = Cluster::new("redis") else { return };
    cluster.env.env.remove("TESSERA_SECRET_KEY");
    rotation_across_two_instances(&cluster.env);
}

/// Keys from the configuration cannot be rewritten: `key rotate` and `key retire` refuse and say
/// what to set instead, without printing a key. `secret_keys` gives a ring; a key file with
/// `<id> <hex>` lines is read as one, and conflicting sources are refused by name.
#[test]
fn keys_from_the_configuration() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let (old, new) = (env.ok(&["key", "generate"]).trim().to_string(), env.ok(&["key", "generate"]).trim().to_string());
    env.env.insert("TESSERA_SECRET_KEY".into(), old.clone());
    let err = env.fails(&["key", "rotate"], "TESSERA_SECRET_KEYS=\"1:<new key>,0:<key 0>\"");
    assert!(err.contains("which Tessera does not rewrite") && !err.contains(&old), "{err}");
    env.env.remove("TESSERA_SECRET_KEY");

    env.env.insert("TESSERA_SECRET_KEYS".into(), format!("1:{new},0:{old}"));
    env.ok(&["client", "create", "web"]);
    env.create_user("alice", &[]);
    let server = env.serve(&[]);
    let token = server.token("alice", "web");
    assert_eq!(key_of(&token), "1");
    server.stop();
    assert_eq!(key_list(&env), vec![("1".into(), "current".into(), 1), ("0".into(), "verify-only".into(), 0)]);
    let said = env.ok(&["key", "retire", "0"]);
    assert!(said.contains("key 0 has no tokens left (0 token(s) revoked)"), "{said}");
    assert!(said.contains("set TESSERA_SECRET_KEYS=\"1:<key 1>\""), "{said}");
    assert!(!said.contains(&old) && !said.contains(&new), "{said}");
    env.fails(&["key", "retire", "1"], "key '1' is the current key");
    // A key dropped from the configuration with tokens left: they are counted apart.
    env.env.insert("TESSERA_SECRET_KEYS".into(), format!("0:{old}"));
    assert_eq!(key_list(&env), vec![("0".into(), "current".into(), 0), ("other".into(), "not in ring".into(), 1)]);
    env.env.insert("TESSERA_SECRET_KEYS".into(), format!("1:{new},0:{old}"));
    assert!(!env.data_dir().join("secret.key").exists(), "no key file is written");

    env.env.insert("TESSERA_SECRET_KEY".into(), old.clone());
    env.fails(&["key", "list"], "secret_key or secret_keys, not both");
    env.env.remove("TESSERA_SECRET_KEY");
    env.env.insert("TESSERA_SECRET_KEYS".into(), format!("1:{new},1:{old}"));
    env.fails(&["key", "list"], "invalid secret_keys (TESSERA_SECRET_KEYS): the key id '1' is used twice");
    env.env.remove("TESSERA_SECRET_KEYS");

    // The same ring from a key file: the token made above still works with it.
    let file = env.dir.path().join("keys");
    std::fs::write(&file, format!("1 {new}\n0 {old}\n")).expect("key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    env.env.insert("TESSERA_SECRET_KEY_FILE".into(), file.display().to_string());
    let server = env.serve(&[]);
    ok(&server, &token);
    assert_eq!(server.token("alice", "web"), token);
    server.stop();
    let said = env.ok(&["key", "rotate"]);
    assert!(said.contains("new current key 2"), "{said}");
    let rewritten = std::fs::read_to_string(&file).expect("rewritten");
    assert!(rewritten.contains(&format!("1 {new}\n0 {old}\n")), "the old keys are kept, in order");
}
