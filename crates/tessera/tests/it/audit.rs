//! The audit log through the binary: the CLI's own changes recorded with actor `cli`, `tessera
//! audit` and its filters, a server's events surviving SIGTERM, two servers writing one log, and
//! what a `kill -9` costs.

use crate::TESSERA;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tessera_testkit::{Backend, Method, PASSWORD, TestEnv, json, test_each_backend};

/// `tessera audit ARGS --json`.
fn audit(env: &TestEnv, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    json(&env.ok(&all)).as_array().cloned().unwrap_or_default()
}

fn kinds(records: &[Value]) -> Vec<&str> {
    records.iter().map(|r| r["kind"].as_str().unwrap_or("?")).collect()
}

fn cli_changes_and_filters(backend: Backend) {
    let Some(env) = TestEnv::new(TESSERA, backend) else { return };
    env.ok(&["client", "create", "web", "--token-ttl", "1d"]);
    env.create_user("alice", &[]);
    let token = env.ok(&["token", "create", "--user", "alice", "--client", "web"]).trim().to_string();
    env.ok(&["client", "update", "web", "--description", "the web app"]);
    env.ok(&["user", "deactivate", "alice"]);
    env.ok(&["user", "activate", "alice"]);
    env.ok(&["token", "revoke", "--user", "alice"]);
    let new_password = "a much better password";
    env.ok_with_stdin(&["user", "set-password", "alice", "--password-stdin"], &format!("{new_password}\n"));
    env.ok(&["client", "create", "gone"]);
    env.ok(&["client", "delete", "gone"]);

    let records = audit(&env, &[]);
    assert_eq!(
        kinds(&records),
        [
            "client_deleted",
            "client_created",
            "password_changed",
            "token_revoked",
            "user_activated",
            "user_deactivated",
            "client_changed",
            "token_created",
            "user_created",
            "client_created",
        ],
        "newest first"
    );
    assert!(records.iter().all(|r| r["actor"] == "cli"), "{records:#?}");
    let revoked = &records[3];
    assert_eq!(
        (&revoked["username"], &revoked["client"], &revoked["detail"]),
        (&json!("alice"), &json!("web"), &json!({"by": "cli"}))
    );
    assert!(revoked["token_id"].is_i64());
    assert_eq!(records[6]["detail"], json!({"fields": ["description"], "renamed_from": null}));
    assert_eq!(records[7]["user_agent"], "tessera-cli");
    // No token, no password in the log.
    let everything = env.ok(&["audit", "--json", "--limit", "10000"]);
    for secret in [token.as_str(), PASSWORD, new_password] {
        assert!(!everything.contains(secret), "{secret} is in the audit log");
    }

    // Filters.
    assert_eq!(kinds(&audit(&env, &["--kind", "token_revoked"])), ["token_revoked"]);
    let alice = audit(&env, &["--user", "alice"]);
    assert_eq!(alice.len(), 6, "{alice:#?}");
    assert!(alice.iter().all(|r| r["username"] == "alice"));
    assert_eq!(audit(&env, &["--client", "web"]).len(), 4);
    assert_eq!(audit(&env, &["--client", "web", "--kind", "client_changed"]).len(), 1);
    assert_eq!(audit(&env, &["--since", "1h"]).len(), 10);
    assert_eq!(audit(&env, &["--since", "2000-01-01", "--until", "2000-01-02"]).len(), 0);
    assert_eq!(audit(&env, &["--until", "2999-01-01T00:00:00Z"]).len(), 10);
    assert_eq!(kinds(&audit(&env, &["--limit", "2"])), ["client_deleted", "client_created"]);
    let table = env.ok(&["audit", "--limit", "1"]);
    let header: Vec<&str> = table.lines().next().map(|h| h.split_whitespace().collect()).unwrap_or_default();
    assert_eq!(header, ["TIME", "KIND", "ACTOR", "USER", "CLIENT", "TOKEN", "IP", "DETAIL"], "{table}");
    assert!(table.lines().nth(1).is_some_and(|l| l.contains("client_deleted") && l.contains("cli")), "{table}");

    // Bad filters: one clear line naming the flag and the value.
    let line = env.fails(&["audit", "--kind", "token_stolen"], "invalid --kind 'token_stolen'");
    assert!(line.contains("login_failed") && line.contains("client_deleted"), "{line}");
    env.fails(&["audit", "--since", "yesterday"], "invalid --since 'yesterday'");
    env.fails(&["audit", "--until", "2026-13-45"], "invalid --until '2026-13-45': not a date");
    env.fails(&["audit", "--since", "1d", "--until", "2d"], "is not before --until");
    let out = env.run(&["audit", "--limit", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--limit") && stderr.contains("'0'"), "{stderr}");
    // With `audit = false` the CLI records nothing.
    let mut quiet = env.command(&["client", "create", "quiet"]);
    quiet.env("TESSERA_AUDIT", "false");
    assert!(quiet.output().expect("run").status.success());
    assert!(audit(&env, &["--client", "quiet"]).is_empty());
}

test_each_backend!(cli_changes_and_filters => cli_changes_are_audited_on_sqlite, cli_changes_are_audited_on_postgres);

fn serve_and_stop(backend: Backend) {
    let Some(env) = TestEnv::new(TESSERA, backend) else { return };
    env.ok(&["migrate"]);
    env.ok(&["client", "create", "web", "--token-ttl", "1d"]);
    env.create_user("alice", &[]);
    // Graceful: a login, then SIGTERM at once; the row is written before the process exits.
    let server = env.serve(&[]);
    let token = server.token("alice", "web");
    server.stop();
    let logins = audit(&env, &["--kind", "user_logged_in"]);
    assert_eq!(logins.len(), 1, "{logins:#?}");
    assert_eq!(
        (&logins[0]["ip"], &logins[0]["actor"], &logins[0]["client"]),
        (&json!("127.0.0.1"), &json!("user"), &json!("web"))
    );

    // Two servers, one log: a logout-all on B of A's token is in the log within the batch
    // interval, while both still run.
    let (a, b) = (env.serve(&[]), env.serve(&[]));
    let (status, _) = b.call(Method::POST, "/api/auth/logoutall/", Some(&token));
    assert_eq!(status, 204);
    let start = Instant::now();
    while audit(&env, &["--kind", "logout_all"]).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "B's logout-all never reached the log");
        std::thread::sleep(Duration::from_millis(50));
    }
    let fresh = a.token("alice", "web");
    // kill -9 (dropping a Server kills it) after more than one batch interval: the login is kept.
    std::thread::sleep(Duration::from_millis(1_500));
    drop(a);
    drop(b);
    let logins = audit(&env, &["--kind", "user_logged_in"]);
    assert_eq!(logins.len(), 2, "a login a second and a half before kill -9 is in the log: {logins:#?}");
    let everything = env.ok(&["audit", "--json", "--limit", "10000"]);
    for secret in [token.as_str(), fresh.as_str(), PASSWORD] {
        assert!(!everything.contains(secret), "{secret} is in the audit log");
    }
}

test_each_backend!(serve_and_stop => serve_keeps_every_row_on_sqlite, serve_keeps_every_row_on_postgres);
