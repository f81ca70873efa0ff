//! The admin CLI: the whole sequence on SQLite and PostgreSQL, and every bad input.

use crate::TESSERA;
use std::path::Path;
use tessera_testkit::{Backend, TestEnv, json, test_each_backend};

fn sequence(backend: Backend) {
    let Some(env) = TestEnv::new(TESSERA, backend) else { return };
    env.ok(&["migrate"]);
    let out = env.ok(&[
        "client",
        "create",
        "web",
        "--token-ttl",
        "1d",
        "--throttle-rate",
        "100/h",
        "--description",
        "Web app",
    ]);
    assert!(out.contains("created client 'web'"), "{out}");
    env.ok(&["client", "create", "cli", "--token-ttl", "never"]);
    env.create_user("alice", &[]);
    env.create_user("root", &["--staff"]);

    let users = json(&env.ok(&["user", "list", "--json"]));
    assert_eq!(users.as_array().map(Vec::len), Some(2));
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["is_active"], true);
    assert_eq!(users[0]["is_staff"], false);
    assert_eq!(users[1]["is_staff"], true);
    assert!(users[0].get("password_hash").is_none(), "no hash in listings");

    let clients = json(&env.ok(&["client", "list", "--json"]));
    assert_eq!(clients[0]["name"], "cli");
    assert_eq!(clients[0]["token_ttl"], "never");
    assert_eq!(clients[1]["name"], "web");
    assert_eq!(clients[1]["token_ttl"], "1d");
    assert_eq!(clients[1]["throttle_rate"], "100/h");
    assert_eq!(clients[1]["description"], "Web app");
    let table = env.ok(&["client", "list"]);
    let header: Vec<&str> = table.lines().next().map(|h| h.split_whitespace().take(2).collect()).unwrap_or_default();
    assert_eq!(header, ["ID", "NAME"], "{table}");

    // Issue a token: printed once, on stdout alone.
    let web_token = env.ok(&["token", "create", "--user", "alice", "--client", "web"]).trim().to_string();
    assert_eq!(web_token.len(), 64, "{web_token}");
    assert!(web_token.starts_with("tsr_"));
    env.fails(&["token", "create", "--user", "alice", "--client", "web"], "already has a token for client 'web'");
    let cli_token = env.ok(&["token", "create", "--user", "alice", "--client", "cli"]).trim().to_string();
    assert_ne!(web_token, cli_token);

    let tokens = json(&env.ok(&["token", "list", "--user", "alice", "--json"]));
    assert_eq!(tokens.as_array().map(Vec::len), Some(2));
    assert_eq!(tokens[0]["client"], "web");
    assert_eq!(tokens[0]["user"], "alice");
    assert_eq!(tokens[0]["has_expired"], false);
    assert!(tokens[0]["expiry"].is_string());
    assert!(tokens[1]["expiry"].is_null(), "never-expiring client");
    let listed = env.ok(&["token", "list"]);
    assert!(!listed.contains(&web_token) && !listed.contains(&cli_token), "listings never show tokens");

    // No issued token at rest: not in the database files, not in a dump.
    assert_no_token_at_rest(&env, &[&web_token, &cli_token]);

    // Expire, purge, revoke.
    let out = env.ok(&["token", "expire", "--user", "alice", "--client", "web"]);
    assert!(out.contains("expired"), "{out}");
    let tokens = json(&env.ok(&["token", "list", "--client", "web", "--json"]));
    assert_eq!(tokens[0]["has_expired"], true);
    assert_eq!(env.ok(&["token", "purge-expired"]).trim(), "purged 1 expired token(s)");
    let tokens = json(&env.ok(&["token", "list", "--json"]));
    assert_eq!(tokens.as_array().map(Vec::len), Some(1));
    let id = tokens[0]["id"].as_i64().expect("id").to_string();
    assert_eq!(env.ok(&["token", "revoke", &id]).trim(), format!("revoked token {id}"));
    assert_eq!(json(&env.ok(&["token", "list", "--json"])), serde_json::json!([]));

    env.ok(&["token", "create", "--user", "alice", "--client", "web"]);
    env.ok(&["token", "create", "--user", "root", "--client", "web"]);
    let replaced = env.ok(&["token", "create", "--user", "alice", "--client", "web", "--replace"]).trim().to_string();
    assert_eq!(replaced.len(), 64);
    assert!(env.ok(&["token", "revoke", "--user", "alice", "--client", "web"]).contains("revoked 1 token(s)"));
    let tokens = json(&env.ok(&["token", "list", "--json"]));
    assert_eq!(tokens.as_array().map(Vec::len), Some(1));
    assert_eq!(tokens[0]["user"], "root");

    // Clients and users change; deleting them takes their tokens along.
    env.ok(&[
        "client",
        "update",
        "web",
        "--throttle-rate",
        "none",
        "--token-ttl",
        "12h",
        "--sliding-expiry",
        "true",
        "--max-lifetime",
        "30d",
    ]);
    let clients = json(&env.ok(&["client", "list", "--json"]));
    assert_eq!(clients[1]["token_ttl"], "12h");
    assert!(clients[1]["throttle_rate"].is_null());
    assert_eq!(clients[1]["sliding_expiry"], true);
    assert_eq!(clients[1]["max_lifetime"], "30d");
    env.ok(&["client", "update", "web", "--name", "webapp"]);
    assert!(env.ok(&["user", "deactivate", "alice"]).contains("deactivated"));
    assert_eq!(json(&env.ok(&["user", "list", "--json"]))[0]["is_active"], false);
    env.ok(&["user", "activate", "alice"]);
    assert_eq!(json(&env.ok(&["user", "list", "--json"]))[0]["is_active"], true);
    let out = env.run_with_stdin(&["user", "set-password", "alice", "--password-stdin"], "another good password\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env.ok(&["client", "delete", "webapp"]);
    assert_eq!(out.trim(), "deleted client 'webapp' with 1 token(s)");
    assert_eq!(json(&env.ok(&["token", "list", "--json"])), serde_json::json!([]));
    env.ok(&["token", "create", "--user", "alice", "--client", "cli"]);
    assert_eq!(env.ok(&["user", "delete", "alice"]).trim(), "user 'alice' deleted with 1 token(s)");
    assert_eq!(json(&env.ok(&["token", "list", "--json"])), serde_json::json!([]));
    assert_eq!(json(&env.ok(&["user", "list", "--json"])).as_array().map(Vec::len), Some(1));
}

pub(crate) fn assert_no_token_at_rest(env: &TestEnv, tokens: &[&str]) {
    let dump: Vec<u8> = match env.database_url() {
        None => {
            // The raw files (database, WAL, key) and a SQL dump.
            let mut bytes = read_tree(&env.data_dir());
            let out = std::process::Command::new("sqlite3")
                .arg(env.data_dir().join("tessera.db"))
                .arg(".dump")
                .output()
                .expect("sqlite3 must be installed");
            assert!(out.status.success(), "sqlite3 .dump: {}", String::from_utf8_lossy(&out.stderr));
            bytes.extend(out.stdout);
            bytes
        }
        Some(url) => {
            let out = std::process::Command::new("pg_dump")
                .arg("--dbname")
                .arg(url)
                .output()
                .expect("pg_dump must be installed");
            assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        }
    };
    assert!(contains(&dump, "alice"), "the dump must hold the data (is the dump empty?)");
    for token in tokens {
        assert!(!contains(&dump, token), "a token is stored in plaintext");
        assert!(!contains(&dump, &token[4..40]), "part of a token is stored in plaintext");
    }
}

/// The bytes of every file under `dir` (for "no token at rest" checks).
fn read_tree(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(read_tree(&path));
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.extend(bytes);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

test_each_backend!(sequence => cli_sequence_on_sqlite, cli_sequence_on_postgres);

/// `devices = many` from the CLI: the flags, the listing, a token per `token create`, the switch
/// back to `one`, and every bad value named with its flag.
fn devices(backend: Backend) {
    let Some(mut env) = TestEnv::new(TESSERA, backend) else { return };
    env.env.insert("TESSERA_API_ACCESS_CLIENT_NAME".into(), "api-access".into());
    env.ok(&["migrate"]);
    env.create_user("alice", &[]);
    env.ok(&["client", "create", "ios", "--devices", "many", "--max-devices", "3"]);
    env.ok(&["client", "create", "api-access"]);
    let clients = json(&env.ok(&["client", "list", "--json"]));
    let ios = &clients[1];
    assert_eq!((ios["name"].clone(), ios["devices"].clone()), (serde_json::json!("ios"), serde_json::json!("many")));
    assert_eq!(
        (ios["max_devices"].clone(), ios["on_device_limit"].clone()),
        (serde_json::json!(3), serde_json::json!("evict-oldest"))
    );
    assert_eq!(clients[0]["devices"], "one");
    assert!(env.ok(&["client", "list"]).contains("many (3, evict-oldest)"));

    // Each `token create` is a new device; `token list` shows each.
    let phone = env.ok(&["token", "create", "--user", "alice", "--client", "ios"]).trim().to_string();
    let tablet = env.ok(&["token", "create", "--user", "alice", "--client", "ios"]).trim().to_string();
    assert_ne!(phone, tablet);
    assert_eq!(json(&env.ok(&["token", "list", "--client", "ios", "--json"])).as_array().map(Vec::len), Some(2));

    // Only the limit changes: the policy stays many.
    env.ok(&["client", "update", "ios", "--on-device-limit", "refuse"]);
    let ios = &json(&env.ok(&["client", "list", "--json"]))[1];
    assert_eq!(
        (ios["max_devices"].clone(), ios["on_device_limit"].clone()),
        (serde_json::json!(3), serde_json::json!("refuse"))
    );

    // Back to one: the most recently created token stays, the other is revoked.
    let out = env.ok(&["client", "update", "ios", "--devices", "one"]);
    assert!(out.contains("revoked 1 token(s)"), "{out}");
    assert_eq!(json(&env.ok(&["token", "list", "--client", "ios", "--json"])).as_array().map(Vec::len), Some(1));

    // Bad values: a clear error naming the value, and nothing changes.
    let before = env.snapshot();
    env.fails(&["client", "create", "tv", "--devices", "several"], "invalid devices 'several': use 'one' or 'many'");
    env.fails(
        &["client", "create", "tv", "--devices", "many", "--max-devices", "0"],
        "invalid max_devices 0: use 1 to 1000",
    );
    env.fails(
        &["client", "create", "tv", "--devices", "many", "--on-device-limit", "drop"],
        "invalid on_device_limit 'drop'",
    );
    env.fails(&["client", "create", "tv", "--max-devices", "3"], "apply only to devices = 'many'");
    env.fails(
        &["client", "update", "api-access", "--devices", "many"],
        "the API-access client 'api-access' is always --devices one",
    );
    assert_eq!(env.snapshot(), before);
}

test_each_backend!(devices => cli_devices_on_sqlite, cli_devices_on_postgres);

fn bad_inputs(backend: Backend) {
    let Some(env) = TestEnv::new(TESSERA, backend) else { return };
    env.ok(&["client", "create", "web"]);
    env.ok(&["client", "create", "cli", "--token-ttl", "never"]);
    env.create_user("alice", &[]);
    env.ok(&["token", "create", "--user", "alice", "--client", "web"]);
    let before = env.snapshot();

    let long = "x".repeat(65);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["client", "create", "x", "--throttle-rate", "2/minute"],
            "invalid rate '2/minute': invalid period 'minute'",
        ),
        (vec!["client", "create", "x", "--throttle-rate", "0/m"], "at least 1"),
        (vec!["client", "create", "x", "--throttle-rate", "-5/m"], "invalid number of requests '-5'"),
        (vec!["client", "create", "x", "--token-ttl", "5x"], "invalid duration '5x': unknown unit 'x'"),
        (vec!["client", "create", "x", "--token-ttl", "0s"], "greater than zero"),
        (vec!["client", "create", "web"], "a client named 'web' already exists"),
        (vec!["client", "create", &long], "it is 65 characters long; the limit is 64"),
        (vec!["client", "create", " "], "must not be blank"),
        (vec!["client", "create", "x", "--token-ttl", "1d", "--max-lifetime", "1h"], "shorter than the token TTL"),
        (vec!["client", "update", "web"], "nothing to change"),
        (vec!["client", "update", "web", "--name", "cli"], "a client named 'cli' already exists"),
        (vec!["client", "update", "nope", "--token-ttl", "1h"], "no client named 'nope'"),
        (vec!["client", "update", "web", "--throttle-rate", "5/week"], "invalid period 'week'"),
        (vec!["client", "delete", "nope"], "no client named 'nope'"),
        (vec!["token", "create", "--user", "nobody", "--client", "web"], "no user named 'nobody'"),
        (vec!["token", "create", "--user", "alice", "--client", "nope"], "no client named 'nope'"),
        (vec!["token", "create", "--user", "alice", "--client", "web"], "already has a token"),
        (vec!["token", "revoke", "999999"], "no token with id 999999"),
        (vec!["token", "revoke", "--user", "alice", "--client", "cli"], "user 'alice' has no token for client 'cli'"),
        (vec!["token", "expire", "--user", "alice", "--client", "cli"], "user 'alice' has no token for client 'cli'"),
        (vec!["token", "list", "--user", "nobody"], "no user named 'nobody'"),
        (vec!["user", "delete", "nobody"], "no user named 'nobody'"),
        (vec!["user", "deactivate", "nobody"], "no user named 'nobody'"),
    ];
    for (args, want) in cases {
        env.fails(&args, want);
    }
    let stdin_cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["user", "create", "alice", "--password-stdin"],
            "correct horse battery",
            "a user named 'alice' already exists",
        ),
        // Stored as Django stores it (NFKC): fullwidth ａｌｉｃｅ is alice, who exists.
        (
            vec!["user", "create", "ａｌｉｃｅ", "--password-stdin"],
            "correct horse battery",
            "a user named 'alice' already exists ('ａｌｉｃｅ' is 'alice' once normalised (NFKC), as Django stores usernames)",
        ),
        (vec!["user", "create", "bob", "--password-stdin"], "short", "too short"),
        (
            vec!["user", "create", "bad name", "--password-stdin"],
            "correct horse battery",
            "invalid username 'bad name'",
        ),
        (vec!["user", "set-password", "alice", "--password-stdin"], "short", "too short"),
        (vec!["user", "set-password", "nobody", "--password-stdin"], "correct horse battery", "no user named 'nobody'"),
    ];
    for (args, stdin, want) in stdin_cases {
        env.fails_with_stdin(&args, stdin, want);
    }
    // No terminal to prompt on: a clear error, not a hang.
    env.fails(&["user", "create", "carol"], "use --password-stdin");
    assert_eq!(env.snapshot(), before, "failed commands changed nothing");
}

test_each_backend!(bad_inputs => bad_inputs_change_nothing_on_sqlite, bad_inputs_change_nothing_on_postgres);

#[test]
fn wrong_database_urls_are_clear_errors() {
    let Some(env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    env.fails(&["--database-url", "mysql://root@localhost/x", "user", "list"], "mysql");
    let line =
        env.fails(&["--database-url", "postgres://tessera:s3cret@127.0.0.1:1/nope", "user", "list"], "127.0.0.1:1");
    assert!(!line.contains("s3cret"), "the password is not printed: {line}");
    env.fails(&["--database-url", "not a url", "user", "list"], "not a url");
    env.fails(&["--database-url", "", "user", "list"], "empty");
    assert!(!env.data_dir().exists(), "nothing was created");
}

#[test]
fn unwritable_data_dir_is_a_clear_error() {
    let Some(env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let file = env.dir.path().join("a-file");
    std::fs::write(&file, "not a directory").expect("write");
    let under_file = file.join("data");
    let dir = under_file.display().to_string();
    env.fails(&["--data-dir", &dir, "client", "create", "web"], "cannot create data directory");
    env.fails(&["--data-dir", &dir, "serve", "--bind", "127.0.0.1:0"], "cannot create data directory");
    assert_eq!(std::fs::read_to_string(&file).ok().as_deref(), Some("not a directory"));
}

#[test]
fn bad_keys_are_clear_errors_and_change_nothing() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    env.ok(&["client", "create", "web"]);
    env.create_user("alice", &[]);
    let before = env.snapshot();

    env.env.insert("TESSERA_SECRET_KEY".into(), "not-hex".into());
    let line = env.fails(&["token", "create", "--user", "alice", "--client", "web"], "invalid secret_key");
    assert!(line.contains("hexadecimal"), "{line}");
    env.env.insert("TESSERA_SECRET_KEY".into(), "abcd".into());
    env.fails(&["token", "create", "--user", "alice", "--client", "web"], "32 to 64 bytes");
    for made_up in ["00".repeat(32), "0123456789abcdef".repeat(4)] {
        env.env.insert("TESSERA_SECRET_KEY".into(), made_up);
        env.fails(&["token", "create", "--user", "alice", "--client", "web"], "the secret key is not random");
    }
    env.env.remove("TESSERA_SECRET_KEY");
    assert_eq!(env.snapshot(), before);

    let key_file = env.data_dir().join("secret.key");
    std::fs::write(&key_file, "garbage\n").expect("write key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    env.fails(&["token", "create", "--user", "alice", "--client", "web"], "is malformed");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn a_shared_key_from_the_environment_derives_the_same_tokens_everywhere() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let key = env.ok(&["key", "generate"]).trim().to_string();
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    env.env.insert("TESSERA_SECRET_KEY".into(), key.clone());
    env.ok(&["client", "create", "web"]);
    env.create_user("alice", &[]);
    env.ok(&["token", "create", "--user", "alice", "--client", "web"]);
    assert!(!env.data_dir().join("secret.key").exists(), "a configured key is not written to disk");
    assert!(!contains(&read_tree(&env.data_dir()), &key), "the key is not stored in the database");
}

#[test]
fn concurrent_migrations_both_succeed() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(env) = TestEnv::new(TESSERA, backend) else { continue };
        let children: Vec<_> = (0..3)
            .map(|_| {
                env.command(&["migrate"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("wait");
            assert!(out.status.success(), "{backend:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        env.ok(&["client", "create", "web"]);
    }
}

#[test]
fn help_explains_every_command() {
    let Some(env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let help = env.ok(&["--help"]);
    for cmd in ["serve", "migrate", "user", "client", "token", "TESSERA_CONFIG"] {
        assert!(help.contains(cmd), "--help mentions {cmd}: {help}");
    }
    let help = env.ok(&["token", "--help"]);
    for cmd in ["create", "list", "revoke", "expire", "purge-expired"] {
        assert!(help.contains(cmd), "token --help mentions {cmd}");
    }
    let out = env.run(&["client", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

/// The CLI changes tokens through the library's lifecycle: its revocations are `TokenRevoked`
/// events by the CLI, its replacements and expired-pair renewals emit theirs, on the event log.
#[test]
fn cli_token_changes_are_events_by_the_cli() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    env.env.insert("RUST_LOG".into(), "info".into());
    env.ok(&["client", "create", "web", "--token-ttl", "1d"]);
    env.ok(&["client", "create", "cli", "--token-ttl", "never"]);
    env.create_user("alice", &[]);
    let log = |args: &[&str]| {
        let out = env.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let created = log(&["token", "create", "--user", "alice", "--client", "web"]);
    assert!(created.contains("TokenCreated"), "{created}");
    let replaced = log(&["token", "create", "--user", "alice", "--client", "web", "--replace"]);
    assert!(replaced.contains("TokenRevoked") && replaced.contains("by: Cli"), "{replaced}");
    assert!(replaced.contains("TokenCreated"), "{replaced}");
    let tokens = json(&env.ok(&["token", "list", "--json"]));
    let id = tokens[0]["id"].as_i64().expect("id").to_string();
    let revoked = log(&["token", "revoke", &id]);
    assert!(revoked.contains(&format!("TokenRevoked {{ token_id: TokenId({id}), by: Cli }}")), "{revoked}");
    assert!(revoked.contains("alice") && revoked.contains("web"), "the event names the user and client: {revoked}");
    env.ok(&["token", "create", "--user", "alice", "--client", "cli"]);
    let revoked = log(&["token", "revoke", "--user", "alice"]);
    assert!(revoked.contains("TokenRevoked") && revoked.contains("by: Cli") && revoked.contains("cli"), "{revoked}");
    // No token ever reaches the log.
    assert!(!revoked.contains("tsr_") && !created.contains("tsr_"), "{created}{revoked}");
}

/// The data directory and everything in it are private: the database holds password hashes,
/// addresses and user agents, the key file the server key. Looser modes left by an older version
/// are tightened at start-up.
#[cfg(unix)]
#[test]
fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let Some(env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    env.ok(&["client", "create", "web"]);
    env.create_user("alice", &[]);
    env.ok(&["token", "create", "--user", "alice", "--client", "web"]);
    let mode = |path: &Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
    let data = env.data_dir();
    assert_eq!(mode(&data), 0o700, "the data directory");
    let files: Vec<_> = std::fs::read_dir(&data).expect("list").map(|e| e.expect("entry").path()).collect();
    assert!(
        files.iter().any(|f| f.ends_with("tessera.db")) && files.iter().any(|f| f.ends_with("secret.key")),
        "{files:?}"
    );
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    // An older version's modes are tightened at the next start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(data.join("tessera.db"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    env.ok(&["client", "list"]);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("tessera.db")), 0o600);
    // A running server's write-ahead log and shared memory too.
    let server = env.serve(&[]);
    for file in ["tessera.db-wal", "tessera.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    server.stop();
}

/// A config file holding a secret that other users can read is warned about, or refused with
/// `strict_permissions`; the key may come from a file of its own (`secret_key_file`), held to the
/// same rule; and start-up says where the key really came from.
#[cfg(unix)]
#[test]
fn secrets_in_configuration_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let key = env.ok(&["key", "generate"]).trim().to_string();
    let config = env.dir.path().join("tessera.toml");
    std::fs::write(&config, format!("secret_key = \"{key}\"\n")).expect("config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    env.env.insert("TESSERA_CONFIG".into(), config.display().to_string());
    let out = env.run(&["client", "list"]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("the config file holds secrets and other users can read it"), "{log}");
    env.env.insert("TESSERA_STRICT_PERMISSIONS".into(), "true".into());
    env.fails(&["client", "list"], "the config file holds secrets and other users can read");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = env.run(&["client", "list"]);
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("other users"));

    // secret_key_file: a key of its own file, not both, and private in strict mode.
    let key_file = env.dir.path().join("mounted.key");
    std::fs::write(&key_file, format!("{key}\n")).expect("key file");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    env.env.insert("TESSERA_SECRET_KEY_FILE".into(), key_file.display().to_string());
    env.fails(&["client", "list"], "secret_key or secret_key_file, not both");
    std::fs::write(&config, "").expect("config without a key");
    env.ok(&["client", "create", "web"]);
    env.create_user("alice", &[]);
    env.fails(
        &["token", "create", "--user", "alice", "--client", "web"],
        "the key file holds the server key and other users can read",
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    env.ok(&["token", "create", "--user", "alice", "--client", "web"]);
    assert!(!env.data_dir().join("secret.key").exists(), "the mounted key is used, none generated");
    // Start-up names the key's real source: a fresh server with a configured key does not claim
    // it is in the data directory.
    let Some(mut fresh) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    fresh.env.insert("TESSERA_SECRET_KEY".into(), key);
    let (stdout, _) = fresh.serve(&[]).stop();
    assert!(stdout.contains("with its server key from the configuration (secret_key)"), "{stdout}");
}

/// Runs the CLI with standard output on a full disk (`/dev/full`).
#[cfg(unix)]
fn run_into_full_disk(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("open /dev/full");
    env.command(args)
        .stdin(std::process::Stdio::null())
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run tessera")
}

/// Runs the CLI with standard output on a pipe whose read end is closed before it starts.
#[cfg(unix)]
fn run_into_closed_pipe(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    env.command(args)
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run tessera")
}

/// The token ids of the pair, from `token list --json`.
fn token_ids(env: &TestEnv, user: &str, client: &str) -> Vec<i64> {
    let tokens = json(&env.ok(&["token", "list", "--user", user, "--client", client, "--json"]));
    tokens.as_array().expect("array").iter().map(|t| t["id"].as_i64().expect("id")).collect()
}

/// Issue 16, point 4: the CLI never loses a token. `token create` prints the new token before it
/// stores it (and before `--replace` revokes the old one): when standard output cannot take it,
/// nothing changes. A full disk is exit 1 with one line; a closed pipe is a quiet 141; never a
/// panic.
#[cfg(unix)]
#[test]
fn token_create_into_a_full_disk_or_a_closed_pipe_loses_no_token() {
    let Some(env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    env.ok(&["client", "create", "web"]);
    env.ok(&["client", "create", "cli"]);
    env.create_user("alice", &[]);
    env.ok(&["token", "create", "--user", "alice", "--client", "web"]);
    let old = token_ids(&env, "alice", "web");
    assert_eq!(old.len(), 1);

    // --replace into a full disk: the old token stays, no new one is stored.
    let replace = ["token", "create", "--user", "alice", "--client", "web", "--replace"];
    let out = run_into_full_disk(&env, &replace);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("could not be written, so it was not stored"), "{stderr}");
    assert!(stderr.contains(&format!("the old token {} remains valid", old[0])), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(token_ids(&env, "alice", "web"), old, "the old token is untouched");

    // --replace into a closed pipe: quietly 141, the old token stays.
    let out = run_into_closed_pipe(&env, &replace);
    assert_eq!(out.status.code(), Some(141), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "quiet: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(token_ids(&env, "alice", "web"), old, "the old token is untouched");

    // A plain create that cannot be delivered stores nothing.
    let create = ["token", "create", "--user", "alice", "--client", "cli"];
    let out = run_into_full_disk(&env, &create);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no token was created"), "{stderr}");
    assert_eq!(token_ids(&env, "alice", "cli"), Vec::<i64>::new());
    let out = run_into_closed_pipe(&env, &create);
    assert_eq!(out.status.code(), Some(141), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(token_ids(&env, "alice", "cli"), Vec::<i64>::new());

    // Delivered, the replacement is stored and the old token revoked.
    let out = env.run(&replace);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim().len(), 64);
    let new = token_ids(&env, "alice", "web");
    assert_eq!(new.len(), 1);
    assert_ne!(new, old);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("token {} revoked", old[0])), "{stderr}");
}

/// Every other command's output: a full disk is exit 1 with one line, a closed pipe a quiet 141.
#[cfg(unix)]
#[test]
fn every_write_to_standard_output_is_checked() {
    let Some(env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    env.ok(&["client", "create", "web"]);
    env.create_user("alice", &[]);
    for args in [
        &["client", "list"][..],
        &["client", "list", "--json"],
        &["user", "list"],
        &["token", "list"],
        &["key", "generate"],
        &["migrate"],
        &["--help"],
        &["token", "--help"],
    ] {
        let out = run_into_full_disk(&env, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim(), "error: cannot write to standard output: No space left on device (os error 28)");
        let out = run_into_closed_pipe(&env, args);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stderr.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // A write that fails after the change was made says so, and the change stands.
    let out = run_into_full_disk(&env, &["client", "create", "ios"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(env.ok(&["client", "list", "--json"]).contains("\"ios\""));
}

/// Free text is bounded (1,024 characters) and free of control characters when stored, and
/// whatever is stored (an older version's, or written to the database by hand) prints as one
/// escaped, width-capped table cell: no panic, no escape sequence reaching the terminal.
#[test]
fn free_text_is_bounded_and_printed_safely() {
    let Some(env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    env.ok(&["client", "create", "web"]);
    let before = env.snapshot();
    let huge = "x".repeat(65_536);
    env.fails(&["client", "create", "x", "--description", &huge], "65536 characters long; the limit is 1024");
    env.fails(&["client", "update", "web", "--description", &huge], "the limit is 1024");
    for bad in ["\u{1b}[2J\u{1b}[31mred", "two\nlines", "tab\there", "\u{202e}txt.exe", "\u{9b}31m"] {
        env.fails(&["client", "create", "x", "--description", bad], "must not contain control characters");
        env.fails(&["client", "update", "web", "--description", bad], "must not contain control characters");
    }
    assert_eq!(env.snapshot(), before, "nothing refused was stored");
    let most = "é".repeat(1024);
    env.ok(&["client", "create", "x", "--description", &most]);

    // Stored behind the CLI's back: the table still prints, escaped and cut.
    let db = env.data_dir().join("tessera.db");
    let sql = "UPDATE clients SET description = printf('%.*c', 65536, 'y') WHERE name = 'web'; \
               UPDATE clients SET description = char(27) || '[2Jgone' WHERE name = 'x';";
    let out = std::process::Command::new("sqlite3").arg(&db).arg(sql).output().expect("sqlite3 must be installed");
    assert!(out.status.success(), "sqlite3: {}", String::from_utf8_lossy(&out.stderr));
    let table = env.ok(&["client", "list"]);
    assert!(!table.contains('\u{1b}'), "no raw escape: {table:?}");
    assert!(table.contains("\\u{1b}[2Jgone"), "escaped: {table}");
    assert!(table.contains("yyy…"), "cut with an ellipsis: {table}");
    assert!(table.lines().all(|l| l.chars().count() < 200), "{table}");
    let listed = env.ok(&["client", "list", "--json"]);
    assert!(!listed.contains('\u{1b}') && listed.contains("\\u001b[2Jgone"), "{listed}");
    assert_eq!(json(&listed)[0]["description"].as_str().map(str::len), Some(65_536), "JSON is whole");
}
