//! `tessera import durin` against databases made by the real django-rest-durin 1.1.0 (PyPI), on
//! SQLite and on PostgreSQL: `tests/durin/make_project.py` migrates a small Django project and
//! makes users (Django's default PBKDF2, one Argon2, one MD5, one inactive, one staff), clients
//! and tokens through Django's and durin's own APIs. Then: a dry run changes nothing; the import
//! brings everything in; a second run imports nothing new; a real `tessera serve` accepts every
//! durin token for its user and client, tells the expired one it has expired, lets each user log
//! in with their Django password (the stored hash is then Argon2id), and a re-login replaces the
//! pair's durin token; no durin token appears in a dump of Tessera's database.
//!
//! Needs `TESSERA_TEST_PYTHON` with django-rest-durin, djangorestframework, argon2-cffi and
//! psycopg (`.ci/run` installs them); without it the test says why and passes, unless
//! `TESSERA_REQUIRE_SERVICES=1`.

use crate::TESSERA;
use crate::cli::assert_no_token_at_rest;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use tessera_testkit::{Backend, Method, TestEnv, http, services_required, test_each_backend};

fn python() -> Option<String> {
    let Ok(python) = std::env::var("TESSERA_TEST_PYTHON") else {
        assert!(
            !services_required(),
            "TESSERA_TEST_PYTHON is not set (.ci/run makes a venv), and TESSERA_REQUIRE_SERVICES=1"
        );
        eprintln!("skipping the durin import test: TESSERA_TEST_PYTHON is not set");
        return None;
    };
    let check = "import durin, rest_framework, argon2, psycopg, django; assert django.VERSION[:2] == (5, 2)";
    let ok = Command::new(&python).args(["-c", check]).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !services_required(),
            "TESSERA_TEST_PYTHON={python} lacks django-rest-durin and friends (.ci/run installs them)"
        );
        eprintln!("skipping the durin import test: {python} lacks django-rest-durin");
        return None;
    }
    Some(python)
}

/// Runs the Django project against `url`; what it made.
fn make_durin_project(python: &str, url: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/durin/make_project.py");
    let out = Command::new(python).arg(script).arg(url).output().expect("run make_project.py");
    assert!(out.status.success(), "make_project.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("make_project.py prints JSON")
}

/// `SELECT username, password_hash` from Tessera's database, with its own client.
fn stored_hashes(env: &TestEnv) -> Vec<(String, String)> {
    let sql = "SELECT username, password_hash FROM users ORDER BY username";
    let out = match env.database_url() {
        None => Command::new("sqlite3").arg(env.data_dir().join("tessera.db")).arg(sql).output(),
        Some(url) => Command::new("psql").args(["-At", "-F", "|", url, "-c", sql]).output(),
    }
    .expect("sqlite3 / psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('|').map(|(u, h)| (u.to_string(), h.to_string())))
        .collect()
}

fn scenario(backend: Backend) {
    let Some(python) = python() else { return };
    let Some(env) = TestEnv::new(TESSERA, backend) else { return };
    let pg_durin;
    let durin_url = match backend {
        Backend::Sqlite => format!("sqlite://{}", env.dir.path().join("durin.sqlite3").display()),
        Backend::Postgres => {
            let Some(db) = tessera_testkit::postgres_database() else { return };
            pg_durin = db;
            pg_durin.url.clone()
        }
    };
    let made = make_durin_project(&python, &durin_url);
    let tokens = made["tokens"].as_array().expect("tokens").clone();
    let token = |user: &str, client: &str| -> String {
        let t = tokens.iter().find(|t| t["user"] == user && t["client"] == client).expect("made");
        t["token"].as_str().expect("token").to_string()
    };
    assert_eq!(made["hashes"]["alice"], "pbkdf2_sha256");
    assert_eq!(made["hashes"]["bob"], "argon2");

    if backend == Backend::Sqlite {
        // Before Tessera has its database (the usual first step): the dry run compares with an
        // empty one and creates nothing — no data directory, no database, no server key.
        let dry = env.ok(&["import", "durin", "--from", &durin_url, "--dry-run"]);
        assert!(dry.contains("compared with an empty one"), "{dry}");
        assert!(dry.contains("dry run: 5 user(s) created, 0 updated; 3 client(s) created"), "{dry}");
        assert!(!env.data_dir().exists(), "a dry run creates no data directory");
    }

    // Not a durin database (Tessera's own), not a database, no such file: refused, nothing changes.
    env.ok(&["migrate"]);
    let before = env.snapshot();
    let own = match env.database_url() {
        None => format!("sqlite://{}", env.data_dir().join("tessera.db").display()),
        Some(url) => url.to_string(),
    };
    env.fails(&["import", "durin", "--from", &own], "is not a Django database");
    let junk = env.dir.path().join("junk.sqlite3");
    std::fs::write(&junk, "not a database at all, just text").expect("write");
    env.fails(&["import", "durin", "--from", &format!("sqlite://{}", junk.display())], "is not a Django database");
    env.fails(&["import", "durin", "--from", "sqlite:///nonexistent/db.sqlite3"], "cannot read the durin database");
    env.fails(&["import", "durin", "--from", "mysql://localhost/db"], "use sqlite:///");
    assert_eq!(env.snapshot(), before);

    // A dry run says what it would do and changes nothing.
    let dry = env.ok(&["import", "durin", "--from", &durin_url, "--dry-run"]);
    assert!(
        dry.contains("user alice: would be imported") && dry.contains("token of bob on ios: would be imported"),
        "{dry}"
    );
    assert!(
        dry.contains("dry run: 5 user(s) created, 0 updated; 3 client(s) created, 0 updated; 6 legacy token(s)"),
        "{dry}"
    );
    assert_eq!(env.snapshot(), before, "a dry run writes nothing");

    let out = env.ok(&["import", "durin", "--from", &durin_url]);
    assert!(
        out.contains("imported: 5 user(s) created, 0 updated; 3 client(s) created, 0 updated; 6 legacy token(s)"),
        "{out}"
    );
    assert!(out.contains("warning: user carol: the 'md5' hasher stores passwords weakly"), "{out}");
    for t in &tokens {
        assert!(!out.contains(t["token"].as_str().expect("token")), "the report never shows a token");
    }
    let imported = env.snapshot();
    let clients: Vec<(Value, Value)> = imported["client"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|c| (c["name"].clone(), c["token_ttl"].clone()))
        .collect();
    assert_eq!(clients, [(json!("cli"), json!("1h 30m")), (json!("ios"), json!("7d 2h")), (json!("web"), json!("1d"))]);
    let rates: Vec<Value> =
        imported["client"].as_array().expect("clients").iter().map(|c| c["throttle_rate"].clone()).collect();
    assert_eq!(rates, [json!("30/m"), json!("100/h"), Value::Null], "durin's blank rate is the default");
    let users = imported["user"].as_array().expect("users");
    let flags = |name: &str| {
        let u = users.iter().find(|u| u["username"] == name).expect("user");
        (u["is_active"].clone(), u["is_staff"].clone())
    };
    assert_eq!(flags("dave"), (json!(false), json!(false)));
    assert_eq!(flags("erin"), (json!(true), json!(true)));

    // Idempotent: a second run imports nothing new.
    let again = env.ok(&["import", "durin", "--from", &durin_url]);
    assert!(
        again.contains("imported: 0 user(s) created, 0 updated; 0 client(s) created, 0 updated; 0 legacy token(s)"),
        "{again}"
    );
    assert!(again.contains("token of alice on web: already imported"), "{again}");
    assert_eq!(env.snapshot(), imported);
    assert!(env.ok(&["token", "list", "--legacy"]).contains("6 legacy token(s) remain"));
    // One audit event for the import that changed something; none for the run that did not.
    let audit: Value = serde_json::from_str(&env.ok(&["audit", "--kind", "imported", "--json"])).expect("JSON");
    assert_eq!(audit.as_array().map(Vec::len), Some(1), "{audit}");
    assert_eq!(audit[0]["actor"], "cli", "{audit}");
    assert!(!audit.to_string().contains(&token("alice", "web")));

    let all: Vec<String> = tokens.iter().map(|t| t["token"].as_str().expect("token").to_string()).collect();
    assert_no_token_at_rest(&env, &all.iter().map(String::as_str).collect::<Vec<_>>());

    let server = env.serve(&[]);
    let call =
        |method: Method, path: &str, token: &str| http(method, &format!("{}{path}", server.base), Some(token), None);
    // Every live durin token authenticates as its user, on its client.
    for (user, client) in [("alice", "web"), ("alice", "ios"), ("bob", "web"), ("erin", "cli")] {
        let (status, sessions) = call(Method::GET, "/api/auth/sessions/", &token(user, client));
        assert_eq!(status, 200, "{user} on {client}: {sessions}");
        let current: Vec<&Value> =
            sessions.as_array().expect("array").iter().filter(|s| s["is_current"] == true).collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0]["client"], client, "{sessions}");
    }
    let (status, sessions) = call(Method::GET, "/api/auth/sessions/", &token("alice", "web"));
    assert_eq!((status, sessions.as_array().map(Vec::len)), (200, Some(2)), "alice's two sessions");
    assert_eq!(
        call(Method::GET, "/api/auth/sessions/", &token("bob", "ios")),
        (401, json!({"detail": "The given token has expired."}))
    );
    assert_eq!(
        call(Method::GET, "/api/auth/sessions/", &token("dave", "web")),
        (401, json!({"detail": "User inactive or deleted."}))
    );

    // Each user logs in with their Django password; the stored hash is then Argon2id.
    let login = |user: &str, password: &str, client: &str| {
        let body = json!({"username": user, "password": password, "client": client});
        http(Method::POST, &format!("{}/api/auth/login/", server.base), None, Some(body))
    };
    let password = |user: &str| made["passwords"][user].as_str().expect("password").to_string();
    let (status, body) = login("alice", &password("alice"), "web");
    assert_eq!(status, 200, "{body}");
    let native = body["token"].as_str().expect("token").to_string();
    assert!(native.starts_with("tsr_"));
    // The re-login replaced alice's durin token on web, and only that one.
    assert_eq!(
        call(Method::GET, "/api/auth/sessions/", &token("alice", "web")),
        (401, json!({"detail": "Invalid token."}))
    );
    assert_eq!(call(Method::GET, "/api/auth/sessions/", &native).0, 200);
    assert_eq!(call(Method::GET, "/api/auth/sessions/", &token("alice", "ios")).0, 200);
    assert_eq!(login("bob", &password("bob"), "ios").0, 200, "Django's Argon2");
    assert_eq!(login("erin", &password("erin"), "web").0, 200);
    assert_eq!(login("bob", "not bob's password", "web").0, 400);
    assert_eq!(login("carol", &password("carol"), "web").0, 400, "an MD5 user must have their password reset");
    assert_eq!(login("dave", &password("dave"), "web").0, 400, "inactive");
    let hashes = stored_hashes(&env);
    for (user, prefix) in [
        ("alice", "$argon2id$"),
        ("bob", "$argon2id$"),
        ("erin", "$argon2id$"),
        ("carol", "!must-reset:md5"),
        ("dave", "pbkdf2_sha256$"),
    ] {
        let hash = &hashes.iter().find(|(u, _)| u == user).expect("user").1;
        assert!(hash.starts_with(prefix), "{user}: {hash}");
    }
    // Logout deletes a durin token.
    assert_eq!(call(Method::POST, "/api/auth/logout/", &token("erin", "cli")).0, 204);
    assert_eq!(call(Method::GET, "/api/auth/sessions/", &token("erin", "cli")).0, 401);
    let (_, log) = server.stop();
    for t in &all {
        assert!(!log.iter().any(|line| line.contains(t.as_str())), "a durin token in the server's log");
    }
    // The operator's audit log says why carol's login failed; her answer was a wrong password's.
    let failed = env.ok(&["audit", "--kind", "login_failed", "--user", "carol", "--json"]);
    let failed: Value = serde_json::from_str(&failed).expect("audit --json");
    assert_eq!(failed[0]["detail"], json!({"reason": "password must be reset"}), "{failed}");
    assert!(
        env.ok(&["token", "list", "--legacy"]).contains("3 legacy token(s) remain"),
        "alice/ios, bob/web, dave/web"
    );
    assert_no_token_at_rest(&env, &all.iter().map(String::as_str).collect::<Vec<_>>());
}

test_each_backend!(scenario => durin_import_on_sqlite, durin_import_on_postgres);

/// The status of a login with `password` on a server started for it (and stopped).
fn server_login_status(env: &TestEnv, user: &str, password: &str) -> u16 {
    let server = env.serve(&[]);
    let body = json!({"username": user, "password": password, "client": "web"});
    let (status, _) = http(Method::POST, &format!("{}/api/auth/login/", server.base), None, Some(body));
    server.stop();
    status
}

/// With tokens in Redis (`token_store = "redis"`): users and clients go to SQL in one transaction,
/// the tokens to Redis after it; a second run finds them there; `serve` accepts them.
#[test]
fn durin_import_with_tokens_in_redis() {
    let Some(python) = python() else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let Some(redis) = rt.block_on(tessera_redis::testing::redis()) else { return };
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    env.env.insert("TESSERA_REDIS_URL".into(), tessera_redis::testing::redis_url());
    env.env.insert("TESSERA_REDIS_KEY_PREFIX".into(), redis.config.key_prefix.clone());
    env.env.insert("TESSERA_TOKEN_STORE".into(), "redis".into());
    let durin_url = format!("sqlite://{}", env.dir.path().join("durin.sqlite3").display());
    let made = make_durin_project(&python, &durin_url);
    let token = |user: &str, client: &str| -> String {
        let t = made["tokens"].as_array().expect("tokens").iter().find(|t| t["user"] == user && t["client"] == client);
        t.expect("made")["token"].as_str().expect("token").to_string()
    };
    // A Tessera user of the same name as a durin one: a conflict, skipped with the durin user's
    // tokens (it may be someone else), until --update says they are the same person.
    env.create_user("erin", &[]);
    let dry = env.ok(&["import", "durin", "--from", &durin_url, "--dry-run"]);
    assert!(dry.contains("4 user(s) created, 0 updated; 3 client(s) created, 0 updated; 5 legacy token(s)"), "{dry}");
    assert!(dry.contains("user erin: would be skipped: a user of this name exists in Tessera"), "{dry}");
    assert!(dry.contains("token of erin on cli: would be skipped: its user or client was not imported"), "{dry}");
    assert!(env.ok(&["token", "list", "--legacy"]).contains("0 legacy token(s) remain"), "a dry run writes nothing");
    let out = env.ok(&["import", "durin", "--from", &durin_url]);
    assert!(out.contains("5 legacy token(s) imported"), "{out}");
    assert_eq!(server_login_status(&env, "erin", tessera_testkit::PASSWORD), 200, "the Tessera erin keeps hers");
    let out = env.ok(&["import", "durin", "--from", &durin_url, "--update"]);
    assert!(out.contains("0 user(s) created, 1 updated; 0 client(s) created, 0 updated; 1 legacy token(s)"), "{out}");
    assert!(out.contains("user erin: updated") && out.contains("token of erin on cli: imported"), "{out}");
    let again = env.ok(&["import", "durin", "--from", &durin_url]);
    assert!(
        again.contains("0 legacy token(s) imported") && again.contains("token of bob on web: already imported"),
        "{again}"
    );
    assert!(env.ok(&["token", "list", "--legacy"]).contains("6 legacy token(s) remain"));
    let server = env.serve(&[]);
    let get = |t: &str| http(Method::GET, &format!("{}/api/auth/sessions/", server.base), Some(t), None);
    assert_eq!(get(&token("alice", "web")).0, 200);
    assert_eq!(get(&token("erin", "cli")).0, 200);
    assert_eq!(get(&token("bob", "ios")), (401, json!({"detail": "The given token has expired."})));
    server.stop();
}

/// A durin database an attacker (or time) has bent: a schema version from the future is refused
/// whole; a hash asking for billions of iterations, a token not in durin's format and a username
/// Django would refuse are each left out with a warning, and the rest is imported.
#[test]
fn a_tampered_durin_database() {
    let Some(python) = python() else { return };
    let Some(env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let file = env.dir.path().join("durin.sqlite3");
    let durin_url = format!("sqlite://{}", file.display());
    let made = make_durin_project(&python, &durin_url);
    let sql = |statement: &str| {
        let out = Command::new("sqlite3").arg(&file).arg(statement).output().expect("sqlite3");
        assert!(out.status.success(), "{statement}: {}", String::from_utf8_lossy(&out.stderr));
    };
    env.ok(&["migrate"]);
    let before = env.snapshot();
    sql(
        "INSERT INTO django_migrations (app, name, applied) VALUES ('durin', '0003_hashed_tokens', '2030-01-01 00:00:00')",
    );
    env.fails(
        &["import", "durin", "--from", &durin_url],
        "durin migration '0003_hashed_tokens', which this Tessera does not know",
    );
    assert_eq!(env.snapshot(), before);
    sql("DELETE FROM django_migrations WHERE name = '0003_hashed_tokens'");

    sql(
        "UPDATE auth_user SET password = 'pbkdf2_sha256$4000000000$salt$ScFV5FNuqE60YTuzuXfql3mtd4vkYfnfVgFo6u//R+I=' WHERE username = 'alice'",
    );
    sql("UPDATE auth_user SET username = 'erin smith' WHERE username = 'erin'");
    sql(
        "UPDATE durin_authtoken SET token = 'not-a-durin-token' WHERE user_id = (SELECT id FROM auth_user WHERE username = 'bob') AND client_id = (SELECT id FROM durin_client WHERE name = 'web')",
    );
    let out = env.ok(&["import", "durin", "--from", &durin_url]);
    assert!(
        out.contains("warning: user alice: the pbkdf2_sha256 hash asks for more work than Tessera allows"),
        "{out}"
    );
    assert!(out.contains("warning: user \"erin smith\": not a valid username; skipped with their tokens"), "{out}");
    assert!(out.contains("warning: token of bob on web: not 64 lowercase hexadecimal characters"), "{out}");
    assert!(
        out.contains("imported: 4 user(s) created, 0 updated; 3 client(s) created, 0 updated; 4 legacy token(s)"),
        "{out}"
    );
    assert!(!out.contains("not-a-durin-token"));
    let server = env.serve(&[]);
    let body = json!({"username": "alice", "password": made["passwords"]["alice"], "client": "web"});
    let (status, _) = http(Method::POST, &format!("{}/api/auth/login/", server.base), None, Some(body));
    assert_eq!(status, 400, "alice must have her password reset");
    let alice_ios =
        made["tokens"].as_array().expect("tokens").iter().find(|t| t["user"] == "alice" && t["client"] == "ios");
    let alice_ios = alice_ios.expect("made")["token"].as_str().expect("token").to_string();
    assert_eq!(http(Method::GET, &format!("{}/api/auth/sessions/", server.base), Some(&alice_ios), None).0, 200);
    server.stop();
}
