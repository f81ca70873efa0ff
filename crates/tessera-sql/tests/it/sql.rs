//! What is particular to the SQL stores: connecting, migrating, SQLite's write strategy, the stored
//! representation, and rows that do not decode.

use crate::backends::{self, TestDb};
use crate::suite::{at, new_client, new_token, new_user, user_and_client};
use chrono::DateTime;
use sqlx::{Connection, Executor, PgConnection, Row, SqliteConnection};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_core::store::{ClientStore, ClientUpdate, Store, StoreError, TokenFilter, TokenStore, UserStore};
use tessera_core::{ClientName, NewClient, Ttl, Username};
use tessera_sql::{Backend, ConnectError, SqlStore};

async fn migration_versions(db: &TestDb) -> Vec<i64> {
    let sql = "SELECT version FROM tessera_migrations ORDER BY version";
    match db.store.backend() {
        Backend::Sqlite => {
            let mut conn = SqliteConnection::connect(&db.url).await.expect("raw connection");
            let rows = sqlx::query(sql).fetch_all(&mut conn).await.expect("versions");
            rows.iter().map(|r| r.get::<i64, _>(0)).collect()
        }
        Backend::Postgres => {
            let mut conn = PgConnection::connect(&db.url).await.expect("raw connection");
            let rows = sqlx::query(sql).fetch_all(&mut conn).await.expect("versions");
            rows.iter().map(|r| r.get::<i64, _>(0)).collect()
        }
    }
}

/// Every migration this binary has: 1 to its newest.
fn every_version(db: &TestDb) -> Vec<i64> {
    (1..=db.store.expected_schema_version()).collect()
}

/// Runs `sql` on the database of `db` through a connection of its own.
async fn raw(db: &TestDb, sql: &str) {
    match db.store.backend() {
        Backend::Sqlite => {
            let mut conn = SqliteConnection::connect(&db.url).await.expect("raw connection");
            conn.execute(sql).await.expect(sql);
        }
        Backend::Postgres => {
            let mut conn = PgConnection::connect(&db.url).await.expect("raw connection");
            conn.execute(sql).await.expect(sql);
        }
    }
}

on_both!(migrate_twice_is_a_no_op, |db| {
    assert!(db.store.expected_schema_version() >= 4, "random ids (3) and devices (4) at least");
    assert_eq!(migration_versions(&db).await, every_version(&db));
    let alice = db.store.create_user(new_user("alice")).await.expect("user");
    db.store.migrate().await.expect("again");
    db.store.migrate().await.expect("and again");
    assert_eq!(migration_versions(&db).await, every_version(&db));
    assert_eq!(db.store.list_users().await.expect("users"), vec![alice]);
});

on_both!(a_newer_schema_is_refused, |db| {
    raw(&db, "INSERT INTO tessera_migrations (version, applied_at) VALUES (999, 0)").await;
    let err = db.store.migrate().await.expect_err("newer schema");
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    let msg = err.to_string();
    let known = db.store.expected_schema_version();
    assert!(msg.contains(&format!("schema version 999, newer than this Tessera knows ({known})")), "{msg}");
});

/// Two stores (as two processes would) migrate a fresh database at the same moment.
///
/// With `interrupted`, the bookkeeping table already exists (empty), so both migrators read before
/// they write: the case where SQLite needs `BEGIN IMMEDIATE` (a deferred transaction would fail to
/// upgrade its read lock with SQLITE_BUSY) and PostgreSQL needs the advisory lock (both would
/// create the tables, and one fail).
async fn concurrent_migrations(db: TestDb, interrupted: bool) {
    if interrupted {
        raw(&db, "CREATE TABLE tessera_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)").await;
    }
    let other = SqlStore::connect(&db.url).await.expect("second store");
    let (a, b) = tokio::join!(db.store.migrate(), other.migrate());
    a.expect("first migrate");
    b.expect("second migrate");
    assert_eq!(migration_versions(&db).await, every_version(&db));
    other.create_user(new_user("alice")).await.expect("schema works");
    assert_eq!(db.store.list_users().await.expect("list").len(), 1);
    other.close().await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrate_on_sqlite() {
    for round in 0..20 {
        concurrent_migrations(backends::sqlite_unmigrated().await, round % 2 == 1).await;
    }
    // Also when both stores create the file itself at the same moment.
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("race.db").display());
    let (a, b) = tokio::join!(async { SqlStore::connect(&url).await.expect("connect a").migrate().await }, async {
        SqlStore::connect(&url).await.expect("connect b").migrate().await
    },);
    a.expect("migrate a");
    b.expect("migrate b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrate_on_postgres() {
    for round in 0..6 {
        let Some(db) = backends::postgres_unmigrated().await else {
            return;
        };
        concurrent_migrations(db, round % 2 == 1).await;
    }
}

#[tokio::test]
async fn bad_urls_are_named_without_passwords() {
    let err = SqlStore::connect("mysql://root:hunter2@localhost/tessera").await.expect_err("mysql");
    assert!(matches!(err, ConnectError::InvalidUrl { .. }));
    assert_eq!(
        err.to_string(),
        "invalid database URL 'mysql://root:***@localhost/tessera': unsupported scheme 'mysql' \
         (use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE)"
    );
    for (url, want) in [
        ("tessera.db", "it has no scheme"),
        (":tessera.db", "it has no scheme"),
        ("sqlite://", "give the path of a database file"),
        ("sqlite::memory:", "give the path of a database file"),
        ("sqlite://?mode=memory", "give the path of a database file"),
        ("postgres://app:hunter2@db:notaport/auth", "invalid database URL 'postgres://app:***@db:notaport/auth'"),
    ] {
        let msg = SqlStore::connect(url).await.expect_err(url).to_string();
        assert!(msg.contains(want), "{url}: {msg}");
        assert!(!msg.contains("hunter2"), "{url}: {msg}");
    }
}

#[tokio::test]
async fn unreachable_databases_say_why() {
    let dir = tempfile::tempdir().expect("dir");
    let missing_dir = dir.path().join("no-such-dir").join("tessera.db");
    let err = SqlStore::connect(&format!("sqlite://{}", missing_dir.display())).await.expect_err("no dir");
    assert!(matches!(err, ConnectError::Unreachable { backend: Backend::Sqlite, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("unable to open database file") && msg.contains("no-such-dir"), "{msg}");

    // Nothing listens on port 1: refused at once, not after the pool's timeout.
    let started = Instant::now();
    let err = SqlStore::connect("postgres://app:hunter2@127.0.0.1:1/auth").await.expect_err("refused");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    let msg = err.to_string();
    assert_eq!(
        msg,
        "cannot connect to the postgres database at 'postgres://app:***@127.0.0.1:1/auth': \
         connection refused (is PostgreSQL running and listening there?)"
    );

    let Some(db) = backends::postgres().await else {
        return;
    };
    let url = format!("{}_missing", db.url);
    let msg = SqlStore::connect(&url).await.expect_err("unknown database").to_string();
    assert!(msg.contains("does not exist"), "{msg}");
    db.close().await;
}

#[tokio::test]
async fn sqlite_files_are_created_in_wal_mode() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("new.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqlStore::connect(&url).await.expect("create");
    assert!(path.exists());
    assert_eq!(store.backend(), Backend::Sqlite);
    assert_eq!(store.backend().to_string(), "sqlite");
    store.migrate().await.expect("migrate");
    let mut conn = SqliteConnection::connect(&url).await.expect("raw");
    let mode: String = sqlx::query("PRAGMA journal_mode").fetch_one(&mut conn).await.expect("pragma").get(0);
    assert_eq!(mode, "wal");
    conn.close().await.expect("close raw");
    store.close().await;
    // Reopening an existing file works, and the schema is there.
    let again = SqlStore::connect(&url).await.expect("reopen");
    again.migrate().await.expect("no-op");
    assert_eq!(again.list_users().await.expect("users"), vec![]);
    again.close().await;
}

/// Holds SQLite's write lock on `db` from another process — the `sqlite3` command-line tool, as an
/// admin's CLI would — for `hold`. Returns once the lock is held; the handle finishes when the
/// process has committed and exited.
async fn hold_write_lock_in_another_process(db: &TestDb, hold: Duration) -> tokio::task::JoinHandle<()> {
    use std::io::{BufRead, Write};
    let path = db.sqlite_path.clone().expect("an SQLite file");
    let script = format!(
        ".timeout 10000\nBEGIN IMMEDIATE;\n\
         INSERT INTO clients (name, description, created) VALUES ('held-by-cli', '', 0);\n\
         SELECT 'locked';\n.shell sleep {}\nCOMMIT;\n",
        hold.as_secs_f32()
    );
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let handle = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new("sqlite3")
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start sqlite3");
        child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("write script");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read sqlite3 output");
        assert_eq!(line.trim(), "locked", "sqlite3 took the write lock");
        let _ = ready_tx.send(());
        let output = child.wait_with_output().expect("sqlite3 finishes");
        assert!(output.status.success(), "sqlite3 failed: {}", String::from_utf8_lossy(&output.stderr));
        assert!(output.stderr.is_empty(), "sqlite3 complained: {}", String::from_utf8_lossy(&output.stderr));
    });
    ready_rx.await.expect("sqlite3 holds the lock");
    handle
}

/// Holds SQLite's write lock through a connection of this process's own for `hold`, once it gets
/// it (another holder may have it first).
async fn hold_write_lock_in_a_connection(url: String, hold: Duration) {
    let mut conn = SqliteConnection::connect(&url).await.expect("blocker");
    conn.execute("BEGIN IMMEDIATE").await.expect("take the write lock");
    conn.execute("INSERT INTO clients (name, description, created) VALUES ('held-by-connection', '', 0)")
        .await
        .expect("write");
    tokio::time::sleep(hold).await;
    conn.execute("COMMIT").await.expect("commit");
    conn.close().await.expect("close");
}

/// 50 user creations, token creations and user updates at once, with a second store (another pool
/// on the file) writing at the same time, while the write lock is held elsewhere when they start:
/// by another process (the `sqlite3` tool), then by another connection. Every write waits its
/// turn; none fails with "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_writes_never_fail_with_database_locked() {
    let db = backends::sqlite().await;
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    let other = SqlStore::connect(&db.url).await.expect("second store");
    let web = store.create_client(new_client("web")).await.expect("client");

    let hold = Duration::from_millis(1500);
    let mut lock_holders = 1;
    let process = if backends::have_tool("sqlite3") {
        lock_holders += 1;
        Some(hold_write_lock_in_another_process(&db, hold).await)
    } else {
        eprintln!("note: sqlite3 is not installed, so no other process holds the lock in this test");
        None
    };
    let connection = tokio::spawn(hold_write_lock_in_a_connection(db.url.clone(), hold));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let store = store.clone();
        let web = web.clone();
        tasks.spawn(async move {
            let user = store.create_user(new_user(&format!("user{i}"))).await?;
            store.get_or_create_token(new_token(&user, &web, at(i), None)).await?;
            store.set_active(user.id, i % 2 == 0).await?;
            Ok::<_, StoreError>(())
        });
    }
    for i in 0..20 {
        let other = other.clone();
        tasks.spawn(async move {
            let client = other.create_client(new_client(&format!("other{i}"))).await?;
            let update = ClientUpdate { description: Some(format!("updated {i}")), ..Default::default() };
            other.update_client(client.id, update).await?;
            other.purge_expired(at(0)).await?;
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task").expect("write");
    }
    connection.await.expect("the connection's lock");
    if let Some(process) = process {
        process.await.expect("the process's lock");
    }
    assert_eq!(store.list_users().await.expect("users").len(), 50);
    assert_eq!(store.list_tokens(TokenFilter::default()).await.expect("tokens").len(), 50);
    assert_eq!(store.list_clients().await.expect("clients").len(), 21 + lock_holders);
    other.close().await;
    db.close().await;
}

on_both!(timestamps_keep_microseconds, |db| {
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let created = DateTime::from_timestamp(1_714_564_800, 123_456_789).expect("instant");
    let expiry = DateTime::from_timestamp(4_102_444_800, 999_999_999).expect("year 2100");
    let token = store.create_token(new_token(&alice, &web, created, Some(expiry))).await.expect("token");
    let want = |t: DateTime<chrono::Utc>| DateTime::from_timestamp_micros(t.timestamp_micros()).expect("instant");
    assert_eq!(token.created, want(created));
    assert_eq!(token.created.timestamp_subsec_nanos(), 123_456_000);
    assert_eq!(token.expiry, Some(want(expiry)));
    let read = store.token_by_id(token.id).await.expect("read").expect("exists");
    assert_eq!(read, token);
    // A purge at the truncated instant removes it.
    assert_eq!(store.purge_expired(want(expiry)).await.expect("purge"), 1);
});

on_both!(an_uncapped_lifetime_is_stored_as_no_cap, |db| {
    let mut new = NewClient::new("web".parse().expect("name"), Ttl::Never);
    new.max_lifetime = Some(Ttl::Never);
    let client = db.store.create_client(new).await.expect("create");
    // One nullable column cannot tell "no cap" from "a cap of never"; both mean no cap.
    assert_eq!(client.max_lifetime, None);
    let update = ClientUpdate { max_lifetime: Some(Some(Ttl::Never)), ..Default::default() };
    assert_eq!(db.store.update_client(client.id, update).await.expect("update").max_lifetime, None);
});

on_both!(corrupt_rows_are_errors_not_panics, |db| {
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let token = store.create_token(new_token(&alice, &web, at(0), None)).await.expect("token");
    let ios = store.create_client(new_client("ios")).await.expect("ios");
    match db.store.backend() {
        Backend::Sqlite => {
            raw(
                &db,
                &format!(
                    "PRAGMA ignore_check_constraints = ON; \
                     UPDATE clients SET throttle_rate = '5/fortnight' WHERE id = {web}; \
                     UPDATE clients SET token_ttl_secs = 0 WHERE id = {ios}; \
                     UPDATE auth_tokens SET digest = zeroblob(31) WHERE id = {token};",
                    web = web.id,
                    ios = ios.id,
                    token = token.id
                ),
            )
            .await
        }
        Backend::Postgres => {
            raw(
                &db,
                &format!(
                    "ALTER TABLE auth_tokens DROP CONSTRAINT auth_tokens_digest_check; \
                     ALTER TABLE clients DROP CONSTRAINT clients_token_ttl_secs_check; \
                     UPDATE clients SET throttle_rate = '5/fortnight' WHERE id = {web}; \
                     UPDATE clients SET token_ttl_secs = 0 WHERE id = {ios}; \
                     UPDATE auth_tokens SET digest = '\\x{zeros}' WHERE id = {token};",
                    web = web.id,
                    ios = ios.id,
                    token = token.id,
                    zeros = "00".repeat(31)
                ),
            )
            .await
        }
    }
    let backend_error = |result: Result<_, StoreError>, want: &str| match result {
        Err(StoreError::Backend(msg)) => assert!(msg.contains(want), "{msg}"),
        other => panic!("expected a Backend error containing {want:?}, got {other:?}"),
    };
    backend_error(
        store.client_by_id(web.id).await.map(|_| ()),
        &format!("clients row {} has an invalid throttle_rate: invalid rate '5/fortnight'", web.id),
    );
    backend_error(store.list_clients().await.map(|_| ()), "has an invalid");
    // A TTL of zero is corruption, not "never expires".
    backend_error(
        store.client_by_name(&"ios".parse().expect("name")).await.map(|_| ()),
        &format!("clients row {} has an invalid token_ttl_secs: 0 seconds is not a positive lifetime", ios.id),
    );
    backend_error(
        store.token_by_id(token.id).await.map(|_| ()),
        &format!("auth_tokens row {} has an invalid digest: 31 bytes instead of 32", token.id),
    );
    backend_error(store.list_tokens(TokenFilter::default()).await.map(|_| ()), "31 bytes instead of 32");
    // The store still works for healthy rows.
    assert_eq!(store.user_by_id(alice.id).await.expect("user"), Some(alice));
});

on_both!(a_closed_store_is_unavailable, |db| {
    let store = db.store.clone();
    store.ping().await.expect("ping");
    store.close().await;
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.create_user(new_user("late")).await, Err(StoreError::Unavailable(_))));
});

on_both!(ready_only_on_the_expected_schema, |db| {
    let store = db.store.clone();
    let expected = store.expected_schema_version();
    assert!(expected >= 2, "{expected}");
    store.ping().await.expect("migrated: ready");
    // Behind: a migration missing.
    raw(&db, &format!("DELETE FROM tessera_migrations WHERE version = {expected}")).await;
    let Err(StoreError::Unavailable(why)) = store.ping().await else { panic!("behind is not ready") };
    assert!(why.contains(&format!("needs {expected}")) && why.contains("tessera migrate"), "{why}");
    // Ahead: migrated by a newer Tessera.
    raw(
        &db,
        &format!("INSERT INTO tessera_migrations (version, applied_at) VALUES ({expected}, 0), ({}, 0)", expected + 1),
    )
    .await;
    let Err(StoreError::Unavailable(why)) = store.ping().await else { panic!("ahead is not ready") };
    assert!(why.contains("newer"), "{why}");
    raw(&db, &format!("DELETE FROM tessera_migrations WHERE version = {}", expected + 1)).await;
    store.ping().await.expect("ready again");
    // Not migrated at all: a reachable, empty database.
    raw(&db, "DROP TABLE tessera_migrations").await;
    let Err(StoreError::Unavailable(why)) = store.ping().await else { panic!("empty is not ready") };
    assert!(why.contains("not migrated"), "{why}");
});

/// PostgreSQL refuses NUL in text. Such a name never reaches a store: lookups take parsed names,
/// and these do not parse (callers treat that as "not found").
#[test]
fn names_with_nul_cannot_be_looked_up() {
    assert!("al\0ice".parse::<Username>().is_err());
    assert!("w\0eb".parse::<ClientName>().is_err());
}

/// A database at schema 3 (before device tokens, ids from sequences) with live data goes through
/// migration 4 (SQLite rebuilds `auth_tokens`) keeping every token, and the pair's token stays
/// unique.
async fn upgrade_from_schema_3(db: TestDb) {
    let (migrations, digest) = match db.store.backend() {
        Backend::Sqlite => (
            [
                include_str!("../../migrations/sqlite/0001_init.sql"),
                include_str!("../../migrations/sqlite/0002_invalidations.sql"),
                include_str!("../../migrations/sqlite/0003_random_ids.sql"),
            ],
            format!("X'{}'", "ab".repeat(32)),
        ),
        Backend::Postgres => (
            [
                include_str!("../../migrations/postgres/0001_init.sql"),
                include_str!("../../migrations/postgres/0002_invalidations.sql"),
                include_str!("../../migrations/postgres/0003_random_ids.sql"),
            ],
            format!("decode('{}', 'hex')", "ab".repeat(32)),
        ),
    };
    raw(&db, "CREATE TABLE tessera_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)").await;
    for (i, sql) in migrations.iter().enumerate() {
        raw(&db, sql).await;
        raw(&db, &format!("INSERT INTO tessera_migrations (version, applied_at) VALUES ({}, 0)", i + 1)).await;
    }
    raw(&db, "INSERT INTO users (id, username, password_hash, is_active, is_staff, created) VALUES (7, 'alice', 'x', TRUE, FALSE, 0)").await;
    raw(&db, "INSERT INTO clients (id, name, token_ttl_secs, created) VALUES (3, 'web', 3600, 0)").await;
    raw(
        &db,
        &format!(
            "INSERT INTO auth_tokens (id, user_id, client_id, digest, seed, created, expiry, last_used, user_agent, ip) \
             VALUES (11, 7, 3, {digest}, {digest}, 5, 9000000000, 6, 'phone/1', '203.0.113.9')"
        ),
    )
    .await;

    db.store.migrate().await.expect("migrate to the current schema");
    assert_eq!(migration_versions(&db).await, every_version(&db));
    let alice = db.store.user_by_username(&"alice".parse().expect("name")).await.expect("read").expect("alice");
    let web = db.store.client_by_name(&"web".parse().expect("name")).await.expect("read").expect("web");
    assert_eq!(web.devices, tessera_core::Devices::One, "existing clients stay durin's");
    let kept = db.store.token_for(alice.id, web.id).await.expect("read").expect("the token survived");
    assert_eq!(kept.id.0, 11);
    assert_eq!((kept.user_agent.as_deref(), kept.ip.as_deref()), (Some("phone/1"), Some("203.0.113.9")));
    assert_eq!(kept.last_used, DateTime::from_timestamp_micros(6));
    let by_digest = db.store.token_with_owner(&kept.digest).await.expect("read").expect("found by digest");
    assert_eq!(by_digest.token, kept);
    // Still one pair's token per (user, client).
    let again = db.store.create_token(new_token(&alice, &web, at(0), None)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    // The invalidation log still follows deletions (the triggers came back with the table).
    let before = db.store.latest_invalidation().await.expect("latest");
    assert!(db.store.delete_token(kept.id).await.expect("delete"));
    assert!(db.store.latest_invalidation().await.expect("latest") > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_schema_3_on_sqlite() {
    let db = tessera_sql::testing::sqlite_unmigrated().await;
    upgrade_from_schema_3(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_schema_3_on_postgres() {
    let Some(db) = tessera_sql::testing::postgres_unmigrated().await else { return };
    upgrade_from_schema_3(db).await;
}

// Migration 6 adds `key_id` with '0' for the rows already there: the tokens issued before tokens
// carried a key id were all made with the one key there was, id 0.
on_both!(tokens_stored_before_key_ids_have_key_0, |db| {
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let (digest, seed) = ("ab".repeat(32), "cd".repeat(32));
    let (digest, seed) = match db.store.backend() {
        Backend::Sqlite => (format!("X'{digest}'"), format!("X'{seed}'")),
        Backend::Postgres => (format!("'\\x{digest}'::bytea"), format!("'\\x{seed}'::bytea")),
    };
    // Written as a Tessera without key ids wrote it: no key_id column named.
    raw(
        &db,
        &format!(
            "INSERT INTO auth_tokens (id, user_id, client_id, digest, seed, created) \
             VALUES (42, {}, {}, {digest}, {seed}, 0)",
            alice.id, web.id
        ),
    )
    .await;
    let token = store.token_for(alice.id, web.id).await.expect("read").expect("found");
    assert_eq!(token.key_id, tessera_core::KeyId::LEGACY);
    let owned = store.token_with_owner(&token.digest).await.expect("with owner").expect("found");
    assert_eq!(owned.token.key_id, tessera_core::KeyId::LEGACY);
    let of_key_0 = TokenFilter { key: Some(tessera_core::KeyId::LEGACY), ..TokenFilter::default() };
    assert_eq!(store.list_tokens(of_key_0).await.expect("list"), vec![token]);
});
