//! `tessera serve` as a real process: health, readiness, first-run guidance, the key file, and a
//! graceful stop on SIGTERM.

use crate::TESSERA;
use tessera_testkit::{Backend, TestEnv, test_each_backend};

fn serves_health_and_ready(backend: Backend) {
    let Some(env) = TestEnv::new(TESSERA, backend) else { return };
    let server = env.serve(&[]);
    assert_eq!(server.get("/health"), (200, serde_json::json!({"status": "ok"})));
    assert_eq!(server.get("/ready"), (200, serde_json::json!({"status": "ready"})));
    let (status, _) = server.get("/nope");
    assert_eq!(status, 404);
    let (stdout, log) = server.stop();
    assert!(stdout.contains("Next steps"), "first start explains what to do next: {stdout}");
    assert!(log.iter().any(|l| l.contains("shutting down")), "{log:?}");

    if backend == Backend::Sqlite {
        let key = env.data_dir().join("secret.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).expect("key file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
        }
        let key_text = std::fs::read_to_string(&key).expect("key");
        assert!(!log.iter().any(|l| l.contains(key_text.trim())), "the key is never logged");
    }

    // A second start on the same data: no first-run text, same key.
    let key_before = std::fs::read(env.data_dir().join("secret.key")).ok();
    let server = env.serve(&[]);
    assert_eq!(server.get("/health").0, 200);
    let (stdout, _) = server.stop();
    assert!(!stdout.contains("Next steps"), "the guidance is printed once: {stdout}");
    assert_eq!(std::fs::read(env.data_dir().join("secret.key")).ok(), key_before);
}

test_each_backend!(serves_health_and_ready => serve_on_sqlite, serve_on_postgres);

/// The log is plain text without colour codes when it is not a terminal, and one JSON object a line
/// with `log_format = "json"`; a bad format is refused, naming it.
#[test]
fn log_formats() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let server = env.serve(&[]);
    assert_eq!(server.get("/health").0, 200);
    let (_, log) = server.stop();
    assert!(log.iter().any(|l| l.contains("shutting down")), "{log:?}");
    assert!(log.iter().all(|l| !l.contains('\u{1b}')), "no ANSI escape codes in a file: {log:?}");

    env.env.insert("TESSERA_LOG_FORMAT".into(), "json".into());
    let server = env.serve(&[]);
    assert_eq!(server.get("/health").0, 200);
    let (_, log) = server.stop();
    assert!(!log.is_empty());
    for line in &log {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event["timestamp"].is_string() && event["level"].is_string(), "{line}");
    }
    assert!(log.iter().any(|l| l.contains("shutting down")), "{log:?}");

    env.env.insert("TESSERA_LOG_FORMAT".into(), "yaml".into());
    env.fails(&["serve"], "invalid log_format 'yaml': use \"text\" or \"json\"");
}

#[test]
fn ready_reports_an_unreachable_store() {
    let Some(env) = TestEnv::new(TESSERA, Backend::Postgres) else { return };
    let server = env.serve(&[]);
    assert_eq!(server.get("/ready").0, 200);
    let url = env.database_url().expect("postgres").to_string();
    let name = url.rsplit('/').next().expect("db name").to_string();
    let admin = tessera_testkit::postgres_admin_url();
    let out = std::process::Command::new("psql")
        .args(["--no-psqlrc", "-q", "-d", &admin, "-c", &format!("DROP DATABASE {name} WITH (FORCE)")])
        .output()
        .expect("psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, body) = server.get("/ready");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(server.get("/health").0, 200, "the process itself is still up");
    // Recreated empty: reachable, but no schema — every login would fail, so not ready.
    let out = std::process::Command::new("psql")
        .args(["--no-psqlrc", "-q", "-d", &admin, "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The pool reconnects to the new, empty database: every answer meanwhile is 503, and the log
    // says why once it reaches it.
    for _ in 0..30 {
        let (status, body) = server.get("/ready");
        assert_eq!(status, 503, "an empty database is not ready: {body}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.wait_for_log("not migrated", std::time::Duration::from_secs(5));
    // Migrated again: ready again, without a restart.
    env.ok(&["migrate"]);
    assert_eq!(server.get("/ready").0, 200);
}
