//! The server key: from configuration (`secret_key` / `TESSERA_SECRET_KEY`, for several instances
//! sharing one), from a file named by `secret_key_file` (a mounted secret), or from `secret.key` in
//! the data directory, generated there (mode 0600) on first start. The key is never logged or
//! printed.

use crate::config::{Config, ensure_dir};
use anyhow::{Context, Result, anyhow};
use std::io::Write;
use std::path::{Path, PathBuf};
use tessera_core::ServerKey;

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "secret.key";

/// Where the key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `secret_key` in the config or `TESSERA_SECRET_KEY`.
    Config,
    /// An existing key file.
    File(PathBuf),
    /// A key file written just now.
    Generated(PathBuf),
}

/// Loads the server key, generating the key file when there is none.
pub fn load_or_create(config: &Config) -> Result<(ServerKey, KeySource)> {
    if let Some(text) = &config.secret_key {
        let key = ServerKey::from_hex(&text.0).map_err(|e| anyhow!("invalid secret_key (TESSERA_SECRET_KEY): {e}"))?;
        return Ok((key, KeySource::Config));
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
    if write_key_file(&path, &key)? {
        Ok((key, KeySource::Generated(path)))
    } else {
        // Another process started at the same moment and wrote its key first: use that one.
        Ok((read_key_file(&path, config.strict_permissions)?, KeySource::File(path)))
    }
}

fn read_key_file(path: &Path, strict: bool) -> Result<ServerKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the key file {}", path.display()))?;
    crate::config::check_private(path, "the key file holds the server key", strict)?;
    ServerKey::from_hex(&text).map_err(|e| anyhow!("the key file {} is malformed: {e}", path.display()))
}

/// Writes the key to a private temporary file, then links it into place, so the key file appears
/// complete or not at all. Returns `false` when another process's key file won the race.
///
/// The temporary file is created new (`O_EXCL`): a file or symlink planted at its (unpredictable)
/// name makes the write fail instead of writing the key through it.
fn write_key_file(path: &Path, key: &ServerKey) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let nonce = ServerKey::generate().to_hex();
    let tmp = dir.join(format!(".{KEY_FILE}.{}.{}.tmp", std::process::id(), &nonce[..16]));
    let written = (|| -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(format!("{}\n", key.to_hex()).as_bytes())?;
        file.sync_all()
    })();
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot write the key file {}", path.display())),
    }
}
