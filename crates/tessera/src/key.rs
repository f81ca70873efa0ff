//! The server keys: from configuration (`secret_keys` / `TESSERA_SECRET_KEYS`, an ordered list; or
//! `secret_key` / `TESSERA_SECRET_KEY`, one key), from a file named by `secret_key_file` (a mounted
//! secret), or from `secret.key` in the data directory, generated there (mode 0600) on first
//! start. Keys are never logged or printed.
//!
//! A key file holds either one bare hex key (the format before key rotation; key id `0`) or one
//! `<id> <hex>` line per key, the current key first. `tessera key rotate` and `key retire` rewrite
//! it atomically; a running server re-reads it (see [`KeyFileWatch`]). Keys from configuration
//! cannot change while a server runs: change them and restart.

use crate::config::{Config, ensure_dir};
use anyhow::{Context, Result, anyhow, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tessera_core::{KeyId, KeyRing, ServerKey};

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "secret.key";

/// How often a running server re-reads its key file to pick up a rotation.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// The least time between two reads of the key file: a stream of tokens naming unknown keys
/// costs at most one file read a second.
pub const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// Where the keys came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `secret_keys` / `secret_key` in the config or `TESSERA_SECRET_KEYS` / `TESSERA_SECRET_KEY`.
    Config,
    /// An existing key file.
    File(PathBuf),
    /// A key file written just now.
    Generated(PathBuf),
}

impl KeySource {
    /// The key file, when the keys live in one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            KeySource::Config => None,
            KeySource::File(path) | KeySource::Generated(path) => Some(path),
        }
    }
}

/// Loads the server keys, generating the key file when there is none.
pub fn load_or_create(config: &Config) -> Result<(KeyRing, KeySource)> {
    if let Some(text) = &config.secret_keys {
        let ring = parse_key_list(&text.0).map_err(|e| anyhow!("invalid secret_keys (TESSERA_SECRET_KEYS): {e}"))?;
        return Ok((ring, KeySource::Config));
    }
    if let Some(text) = &config.secret_key {
        let key = ServerKey::from_hex(&text.0).map_err(|e| anyhow!("invalid secret_key (TESSERA_SECRET_KEY): {e}"))?;
        return Ok((KeyRing::from(key), KeySource::Config));
    }
    if let Some(path) = &config.secret_key_file {
        return Ok((read_key_file(path, config.strict_permissions)?, KeySource::File(path.clone())));
    }
    let path = config.data_dir.join(KEY_FILE);
    if path.exists() {
        return Ok((read_key_file(&path, config.strict_permissions)?, KeySource::File(path)));
    }
    ensure_dir(&config.data_dir)?;
    let key = ServerKey::generate();
    // One key is written as a bare hex key, as before key rotation: an older Tessera reads it.
    if write_new_key_file(&path, &format!("{}\n", key.to_hex()))? {
        Ok((KeyRing::from(key), KeySource::Generated(path)))
    } else {
        // Another process started at the same moment and wrote its key first: use that one.
        Ok((read_key_file(&path, config.strict_permissions)?, KeySource::File(path)))
    }
}

/// Reads a key file: one bare hex key (id `0`), or `<id> <hex>` lines, the current key first.
pub fn read_key_file(path: &Path, strict: bool) -> Result<KeyRing> {
    let ring = read_ring(path)?;
    crate::config::check_private(path, "the key file holds the server key", strict)?;
    Ok(ring)
}

/// Reads a key file without checking its permissions: a running server re-reading the file it
/// checked at start-up (so a lax mode is not warned about every few seconds).
fn read_ring(path: &Path) -> Result<KeyRing> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the key file {}", path.display()))?;
    parse_key_file(&text).map_err(|e| anyhow!("the key file {} is malformed: {e:#}", path.display()))
}

/// A key file's text as a ring. Blank lines and `#` comments are skipped. Errors name the line,
/// never its key.
fn parse_key_file(text: &str) -> Result<KeyRing> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if let [(_, only)] = lines.as_slice()
        && !only.contains(char::is_whitespace)
    {
        return Ok(KeyRing::from(ServerKey::from_hex(only)?));
    }
    let mut keys = Vec::with_capacity(lines.len());
    for (number, line) in lines {
        let Some((id, hex)) = line.split_once(char::is_whitespace) else {
            bail!("line {number}: expected `<key id> <hex key>`");
        };
        let id: KeyId = id.parse().map_err(|e| anyhow!("line {number}: {e}"))?;
        let key = ServerKey::from_hex(hex).map_err(|e| anyhow!("line {number} (key {id}): {e}"))?;
        keys.push((id, key));
    }
    Ok(KeyRing::new(keys)?)
}

/// `secret_keys`: `id:hex,id:hex`, the current key first.
fn parse_key_list(text: &str) -> Result<KeyRing> {
    let mut keys = Vec::new();
    for (i, item) in text.split(',').map(str::trim).enumerate() {
        let Some((id, hex)) = item.split_once(':') else {
            bail!("item {}: expected `<key id>:<hex key>` (items separated by commas, the current key first)", i + 1);
        };
        let id: KeyId = id.trim().parse().map_err(|e| anyhow!("item {}: {e}", i + 1))?;
        let key = ServerKey::from_hex(hex).map_err(|e| anyhow!("item {} (key {id}): {e}", i + 1))?;
        keys.push((id, key));
    }
    Ok(KeyRing::new(keys)?)
}

/// A ring as a key file: one `<id> <hex>` line per key, the current key first.
fn key_file_text(ring: &KeyRing) -> String {
    let mut text = String::from("# Tessera server keys: `<key id> <hex key>`, the current key first.\n");
    for (id, key) in ring.keys() {
        text.push_str(&format!("{id} {}\n", key.to_hex()));
    }
    text
}

/// Writes `text` to a new private temporary file beside `path` and returns its name. The file is
/// created new (`O_EXCL`): a file or symlink planted at its (unpredictable) name makes the write
/// fail instead of writing the key through it.
pub(crate) fn private_temp_file(path: &Path, text: &str) -> std::io::Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let nonce = ServerKey::generate().to_hex();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(KEY_FILE);
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), &nonce[..16]));
    let written = (|| -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes a key file that must not exist yet: a private temporary file linked into place, so the
/// key file appears complete or not at all. Returns `false` when another process's key file won
/// the race.
pub(crate) fn write_new_key_file(path: &Path, text: &str) -> Result<bool> {
    let linked = private_temp_file(path, text).and_then(|tmp| {
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        linked
    });
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot write the key file {}", path.display())),
    }
}

/// Replaces the key file, which held `was`, with `ring`: a private temporary file renamed over it,
/// so that a reader (a server re-reading it) sees the old ring or the new one, never half of
/// either. Refused when the file no longer holds `was` (another `key rotate` or `key retire` ran
/// meanwhile), rather than losing that change; the window left between this check and the rename is
/// a few microseconds.
pub fn replace_key_file(path: &Path, was: &KeyRing, ring: &KeyRing) -> Result<()> {
    let tmp = private_temp_file(path, &key_file_text(ring))
        .with_context(|| format!("cannot rewrite the key file {}", path.display()))?;
    let unchanged = read_ring(path).map(|now| now.same_as(was));
    if !matches!(unchanged, Ok(true)) {
        let _ = std::fs::remove_file(&tmp);
        unchanged?;
        bail!("the key file {} changed while this command ran; run it again", path.display());
    }
    std::fs::rename(&tmp, path)
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot rewrite the key file {}", path.display()))
}

/// Re-reads a server's key file to pick up `tessera key rotate` / `key retire` made while it runs:
/// every [`RELOAD_EVERY`] (so new logins move to a new current key), and soon after a token names a
/// key the ring does not hold (another instance may already issue with a new key) — at most once
/// every [`RELOAD_AT_MOST_EVERY`], on a task of its own, never on the request path.
#[derive(Debug, Clone, Default)]
pub struct KeyFileWatch {
    wake: Arc<tokio::sync::Notify>,
}

impl KeyFileWatch {
    /// Asks for an early re-read (cheap; call it from the request path).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Re-reads `path` for `tessera` until the process ends.
    pub fn spawn(&self, tessera: tessera_axum::Tessera, path: PathBuf) -> tokio::task::JoinHandle<()> {
        let wake = self.wake.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(RELOAD_EVERY) => {}
                }
                let read_path = path.clone();
                match tokio::task::spawn_blocking(move || read_ring(&read_path)).await {
                    Ok(Ok(ring)) => {
                        if tessera.set_key_ring(ring) {
                            tracing::info!(path = %path.display(), "server keys reloaded from the key file");
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %format!("{e:#}"), "cannot reload the key file; keeping the keys in force")
                    }
                    Err(e) => tracing::warn!(error = %e, "the key file reader failed"),
                }
                tokio::time::sleep(RELOAD_AT_MOST_EVERY).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex() -> String {
        ServerKey::generate().to_hex()
    }

    #[test]
    fn key_files_hold_one_bare_key_or_id_lines() {
        let bare = hex();
        let ring = parse_key_file(&format!("{bare}\n")).expect("bare");
        assert_eq!(ring.current(), KeyId::LEGACY);
        assert_eq!(ring.get(KeyId::LEGACY).expect("key 0").to_hex(), bare);
        let (a, b) = (hex(), hex());
        let ring = parse_key_file(&format!("# comment\n\n1 {a}\n0   {b}\n")).expect("lines");
        assert_eq!(ring.ids().map(KeyId::as_char).collect::<String>(), "10");
        assert_eq!(ring.get(KeyId::LEGACY).expect("key 0").to_hex(), b);
        // What rotate writes reads back the same.
        let again = parse_key_file(&key_file_text(&ring)).expect("round trip");
        assert!(again.same_as(&ring));
        for (text, want) in [
            (format!("1 {a}\n1 {b}\n"), "the key id '1' is used twice"),
            (format!("12 {a}\n"), "line 1: '12' is not a key id"),
            (format!("1 {a}\n0 zz\n"), "line 2 (key 0): the secret key must be hexadecimal"),
            (format!("{a}\n{b}\n"), "line 1: expected `<key id> <hex key>`"),
            ("# nothing\n".to_string(), "the key ring is empty"),
        ] {
            let err = format!("{:#}", parse_key_file(&text).expect_err(want));
            assert!(err.contains(want), "{err}");
            assert!(!err.contains(&a[..16]) && !err.contains(&b[..16]), "no key in errors: {err}");
        }
    }

    #[test]
    fn key_lists_are_id_colon_hex_the_current_first() {
        let (a, b) = (hex(), hex());
        let ring = parse_key_list(&format!("b:{a}, 0:{b}")).expect("list");
        assert_eq!(ring.current(), KeyId::from_char('b').expect("id"));
        assert_eq!(ring.get(KeyId::LEGACY).expect("key 0").to_hex(), b);
        let err = format!("{:#}", parse_key_list(&a).expect_err("no id"));
        assert!(err.contains("item 1: expected `<key id>:<hex key>`"), "{err}");
        assert!(!err.contains(&a[..16]), "{err}");
        let err = format!("{:#}", parse_key_list(&format!("0:{a},0:{b}")).expect_err("twice"));
        assert!(err.contains("the key id '0' is used twice"), "{err}");
    }

    #[test]
    fn replacing_the_key_file_is_atomic_and_private() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(KEY_FILE);
        assert!(write_new_key_file(&path, &format!("{}\n", hex())).expect("write"));
        assert!(!write_new_key_file(&path, &format!("{}\n", hex())).expect("second"), "the first file wins");
        let ring = read_key_file(&path, true).expect("read");
        let (rotated, _) = ring.rotated().expect("rotate");
        replace_key_file(&path, &ring, &rotated).expect("replace");
        assert!(read_key_file(&path, true).expect("read again").same_as(&rotated));
        // A change made meanwhile by someone else is not overwritten.
        let (lost, _) = ring.rotated().expect("another rotation");
        let err = format!("{:#}", replace_key_file(&path, &ring, &lost).expect_err("changed meanwhile"));
        assert!(err.contains("changed while this command ran"), "{err}");
        assert!(read_key_file(&path, true).expect("kept").same_as(&rotated));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }
}
