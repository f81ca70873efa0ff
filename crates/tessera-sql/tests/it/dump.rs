//! The invariant "a dump of the database alone yields no working token", tested the way an
//! attacker would try: dump each database with its own tool, read the SQLite file and its WAL byte
//! by byte, and look for every token issued.
//!
//! Each test also checks that the dump holds what it should (the username, the digests), so a dump
//! command that silently produced nothing could not pass.

use crate::backends::{self, TestDb, have_tool, skip};
use crate::suite::{at, codec, new_client, new_token_from, new_user};
use std::process::Command;
use tessera_core::store::{ClientStore, TokenStore, UserStore};
use tessera_core::{TokenCodec, TokenSecret};

const USERNAME: &str = "dump_canary_user";

/// Issues tokens for several clients (through both ways of storing one) and returns them.
async fn issue_tokens(db: &TestDb, codec: &TokenCodec) -> Vec<(TokenSecret, String)> {
    let user = db.store.create_user(new_user(USERNAME)).await.expect("user");
    let mut issued_tokens = Vec::new();
    for (i, name) in ["web", "ios", "cli", "api-access"].iter().enumerate() {
        let client = db.store.create_client(new_client(name)).await.expect("client");
        let issued = codec.issue();
        let new = new_token_from(&issued, &user, &client, at(i as i64), Some(at(3600)));
        let stored = if i % 2 == 0 {
            db.store.create_token(new).await.expect("create")
        } else {
            db.store.get_or_create_token(new).await.expect("get or create").0
        };
        // What is stored is enough for the server (with its key) to hand the token back...
        let again = codec.rederive(stored.key_id, &stored.seed, &stored.digest).expect("rederives");
        assert_eq!(again.expose(), issued.token.expose());
        assert_eq!(codec.parse(issued.token.expose()), Ok(stored.digest));
        let digest_hex: String = stored.digest.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        issued_tokens.push((issued.token, digest_hex));
    }
    issued_tokens
}

/// Asserts that neither any token nor its body (the token without its prefix) occurs in `haystack`.
fn assert_no_token_in(haystack: &[u8], tokens: &[(TokenSecret, String)], prefix: &str, what: &str) {
    for (token, _) in tokens {
        let token = token.expose();
        let body = token.strip_prefix(prefix).expect("prefixed");
        for needle in [token, body] {
            assert!(!haystack.windows(needle.len()).any(|w| w == needle.as_bytes()), "{what} contains an issued token");
        }
    }
}

#[tokio::test]
async fn an_sqlite_dump_holds_no_token() {
    if !have_tool("sqlite3") {
        skip::<()>("the sqlite3 command-line tool is not installed");
        return;
    }
    let db = backends::sqlite().await;
    let codec = codec();
    let tokens = issue_tokens(&db, &codec).await;
    let path = db.sqlite_path.clone().expect("an SQLite file");

    // While the store is open, recent writes may still be in the WAL only: read both files.
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    for file in [path.clone().into_os_string(), wal] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(!bytes.is_empty(), "{file:?} is empty");
            assert_no_token_in(&bytes, &tokens, codec.prefix(), &format!("{file:?}"));
        }
    }
    // The main file plus WAL must contain the username somewhere, or this read nothing.
    let both: Vec<u8> = [
        std::fs::read(&path).unwrap_or_default(),
        std::fs::read(format!("{}-wal", path.display())).unwrap_or_default(),
    ]
    .concat();
    assert!(both.windows(USERNAME.len()).any(|w| w == USERNAME.as_bytes()), "the files hold the username");

    let output = Command::new("sqlite3").arg(&path).arg(".dump").output().expect("run sqlite3 .dump");
    assert!(output.status.success(), "sqlite3 .dump failed: {}", String::from_utf8_lossy(&output.stderr));
    let dump = String::from_utf8_lossy(&output.stdout).to_lowercase();
    assert!(dump.contains(&USERNAME.to_lowercase()), "the dump holds the username");
    assert!(dump.contains("create table auth_tokens"), "the dump holds the tokens table");
    for (_, digest_hex) in &tokens {
        assert!(dump.contains(&format!("x'{digest_hex}'")), "the dump holds each token's digest");
    }
    assert_no_token_in(&output.stdout, &tokens, codec.prefix(), "the sqlite3 dump");

    // After a clean close the WAL is checkpointed into the file: look again.
    db.close().await;
    let bytes = std::fs::read(&path).expect("read the database file");
    assert!(bytes.windows(USERNAME.len()).any(|w| w == USERNAME.as_bytes()));
    assert_no_token_in(&bytes, &tokens, codec.prefix(), "the checkpointed database file");
}

#[tokio::test]
async fn a_postgres_dump_holds_no_token() {
    if !have_tool("pg_dump") {
        skip::<()>("pg_dump is not installed");
        return;
    }
    let Some(db) = backends::postgres().await else {
        return;
    };
    let codec = codec();
    let tokens = issue_tokens(&db, &codec).await;

    let output = Command::new("pg_dump").arg(format!("--dbname={}", db.url)).output().expect("run pg_dump");
    assert!(output.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&output.stderr));
    let dump = String::from_utf8_lossy(&output.stdout).to_lowercase();
    assert!(dump.contains(&USERNAME.to_lowercase()), "the dump holds the username");
    assert!(dump.contains("create table public.auth_tokens"), "the dump holds the tokens table");
    for (_, digest_hex) in &tokens {
        assert!(dump.contains(&format!("\\\\x{digest_hex}")), "the dump holds each token's digest");
    }
    assert_no_token_in(&output.stdout, &tokens, codec.prefix(), "the pg_dump output");
    db.close().await;
}
