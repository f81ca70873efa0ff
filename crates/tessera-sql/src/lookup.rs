//! The authentication lookup on SQLite, run on the calling thread.
//!
//! sqlx runs every SQLite statement on a worker thread of its own and hands the result back through
//! a channel: two context switches per query, which cost several times the query itself (a B-tree
//! lookup in pages that are in memory). Authentication without the cache does one such query per
//! request, so that lookup alone goes through a small pool of read-only `rusqlite` connections and
//! runs right where it is asked for. It reads under WAL like any reader (writers never wait for it)
//! and gives up quickly when SQLite is busy, leaving the caller to use the sqlx path.

use crate::rows::{self, RowExt, TOKEN_WIDTH, USER_WIDTH};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tessera_core::TokenDigest;
use tessera_core::store::{StoreError, TokenWithOwner};

/// Connections kept for reuse; more may exist while many lookups run at once.
const KEEP: usize = 8;

pub(crate) struct FastLookup {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for FastLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastLookup").field("path", &self.path).finish_non_exhaustive()
    }
}

impl FastLookup {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, idle: Mutex::new(Vec::new()), closed: AtomicBool::new(false) }
    }

    /// Closes the idle connections; later lookups go to sqlx, which answers for a closed store.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        // Short: this runs on an async worker. Busy means a checkpoint or recovery is under way;
        // the caller then takes the ordinary path, which may wait.
        conn.busy_timeout(Duration::from_millis(20))?;
        Ok(conn)
    }

    /// The token with this digest, with its user and client; `None` from the outer `Option` when
    /// this path could not answer (the caller then asks sqlx).
    pub(crate) fn token_with_owner(&self, digest: &TokenDigest) -> Option<Result<Option<TokenWithOwner>, StoreError>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => self.open().ok()?,
        };
        let found = conn
            .prepare_cached(crate::tokens::WITH_OWNER)
            .and_then(|mut statement| statement.query_row([&digest.as_bytes()[..]], |row| Ok(decode(row))).optional());
        let answer = match found {
            Ok(row) => Some(row.transpose()),
            // Busy, or anything unexpected: let sqlx answer (and report it, if it is real).
            Err(_) => None,
        };
        if answer.is_some() && !self.closed.load(Ordering::Acquire) {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < KEEP {
                idle.push(conn);
            }
        }
        answer
    }
}

fn decode(row: &rusqlite::Row<'_>) -> Result<TokenWithOwner, StoreError> {
    Ok(TokenWithOwner {
        token: rows::token(row, 0)?,
        user: rows::user(row, TOKEN_WIDTH)?,
        client: rows::client(row, TOKEN_WIDTH + USER_WIDTH)?,
    })
}

impl RowExt for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.get(i).map_err(decode_error)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.get(i).map_err(decode_error)
    }
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.get(i).map_err(decode_error)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.get(i).map_err(decode_error)
    }
    fn str(&self, i: usize) -> Result<&str, StoreError> {
        self.get_ref(i).map_err(decode_error)?.as_str().map_err(|e| decode_error(e.into()))
    }
    fn opt_str(&self, i: usize) -> Result<Option<&str>, StoreError> {
        self.get_ref(i).map_err(decode_error)?.as_str_or_null().map_err(|e| decode_error(e.into()))
    }
    fn blob(&self, i: usize) -> Result<&[u8], StoreError> {
        self.get_ref(i).map_err(decode_error)?.as_blob().map_err(|e| decode_error(e.into()))
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        self.get(i).map_err(decode_error)
    }
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(i).map_err(decode_error)
    }
}

fn decode_error(err: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("a stored row could not be read: {err}"))
}
