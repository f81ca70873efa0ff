//! The forward-auth identity keys (Ed25519, for the `X-Tessera-Identity` JWT): from configuration
//! (`identity_keys` / `TESSERA_IDENTITY_KEYS`: hex seeds, comma-separated, the signing key first),
//! or from `identity.key` in the data directory, created there (mode 0600, atomically) on the first
//! start that needs it. The file holds one hex seed a line, the signing key first.
//!
//! `tessera identity-key rotate` puts a new signing key first and keeps the previous one, so that
//! tokens it signed (they live a minute at most) still verify against the JWKS; a running server
//! looks at the file's metadata every [`IDENTITY_CHECK_EVERY`] (1 s) and re-reads it when it
//! changed (and every [`RELOAD_EVERY`](crate::key::RELOAD_EVERY) regardless). Keys are never logged or
//! printed; only their ids (RFC 7638 thumbprints, as in the JWKS) are.

use crate::config::{Config, ensure_dir};
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use tessera_axum::forward::IdentitySigner;
use tessera_axum::forward::identity::{IdentityKeys, generate_seed};

/// The key file's name inside the data directory.
pub const IDENTITY_KEY_FILE: &str = "identity.key";

/// Where the identity keys came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityKeySource {
    /// `identity_keys` in the config or `TESSERA_IDENTITY_KEYS`.
    Config,
    /// An existing key file.
    File(PathBuf),
    /// A key file written just now.
    Generated(PathBuf),
}

/// The identity keys, generating the key file when there is none.
pub fn load_or_create(config: &Config) -> Result<(IdentityKeys, IdentityKeySource)> {
    if let Some(text) = &config.identity_keys {
        let seeds = parse_seeds(text.0.split(','), "item")
            .map_err(|e| anyhow!("invalid identity_keys (TESSERA_IDENTITY_KEYS): {e:#}"))?;
        return Ok((keys(seeds)?, IdentityKeySource::Config));
    }
    let path = config.data_dir.join(IDENTITY_KEY_FILE);
    if path.exists() {
        return Ok((read_file(&path, config.strict_permissions)?, IdentityKeySource::File(path)));
    }
    ensure_dir(&config.data_dir)?;
    let seed = new_seed()?;
    if crate::key::write_new_key_file(&path, &file_text(&[seed]))? {
        Ok((keys(vec![seed])?, IdentityKeySource::Generated(path)))
    } else {
        // Another process wrote it first: use that one.
        Ok((read_file(&path, config.strict_permissions)?, IdentityKeySource::File(path)))
    }
}

fn new_seed() -> Result<[u8; 32]> {
    generate_seed().map_err(|e| anyhow!("cannot generate an identity key: {e}"))
}

fn keys(seeds: Vec<[u8; 32]>) -> Result<IdentityKeys> {
    IdentityKeys::new(seeds).map_err(|e| anyhow!("{e}"))
}

/// Reads the key file, checking that only its owner can read it.
pub fn read_file(path: &Path, strict: bool) -> Result<IdentityKeys> {
    let keys = keys(read_seeds(path)?)?;
    crate::config::check_private(path, "the identity key file holds private keys", strict)?;
    Ok(keys)
}

fn read_seeds(path: &Path) -> Result<Vec<[u8; 32]>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the identity key file {}", path.display()))?;
    parse_seeds(text.lines(), "line")
        .map_err(|e| anyhow!("the identity key file {} is malformed: {e:#}", path.display()))
}

/// Hex seeds, one per item; blank items and `#` comments skipped. Errors name the item, never
/// its text.
fn parse_seeds<'a>(items: impl Iterator<Item = &'a str>, what: &str) -> Result<Vec<[u8; 32]>> {
    let mut seeds = Vec::new();
    for (i, item) in items.enumerate() {
        let item = item.trim();
        if item.is_empty() || item.starts_with('#') {
            continue;
        }
        seeds.push(from_hex(item).ok_or_else(|| anyhow!("{what} {}: expected 64 hexadecimal digits", i + 1))?);
    }
    if seeds.is_empty() {
        bail!("no identity key");
    }
    Ok(seeds)
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        seed[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(seed)
}

fn file_text(seeds: &[[u8; 32]]) -> String {
    let mut text = String::from("# Tessera identity keys (Ed25519 seeds), the signing key first.\n");
    for seed in seeds {
        for b in seed {
            text.push_str(&format!("{b:02x}"));
        }
        text.push('\n');
    }
    text
}

/// `identity-key rotate`: a new signing key, the previous signing key kept for verification (and
/// any older one dropped: its tokens expired long ago). Returns the key ids (new, kept).
pub fn rotate(config: &Config) -> Result<(String, String)> {
    if config.identity_keys.is_some() {
        bail!(
            "the identity keys come from the configuration (identity_keys / TESSERA_IDENTITY_KEYS), which Tessera \
             does not rewrite: put a new key (64 hex digits) first and keep the current one after it, then restart"
        );
    }
    let path = config.data_dir.join(IDENTITY_KEY_FILE);
    if !path.exists() {
        // Nothing to roll over from: the first key, as the server would create it.
        let (keys, _) = load_or_create(config)?;
        let kid = keys.current_kid().to_string();
        return Ok((kid, String::new()));
    }
    let before = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the identity key file {}", path.display()))?;
    let old = read_seeds(&path)?;
    let seeds = vec![new_seed()?, old[0]];
    let new = keys(seeds.clone())?;
    let tmp = crate::key::private_temp_file(&path, &file_text(&seeds))
        .with_context(|| format!("cannot rewrite the identity key file {}", path.display()))?;
    if std::fs::read_to_string(&path).ok().as_deref() != Some(before.as_str()) {
        let _ = std::fs::remove_file(&tmp);
        bail!("the identity key file {} changed while this command ran; run it again", path.display());
    }
    std::fs::rename(&tmp, &path)
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot rewrite the identity key file {}", path.display()))?;
    let kids: Vec<String> = new.kids().map(str::to_string).collect();
    Ok((kids[0].clone(), kids[1].clone()))
}

/// How often a running server looks at the identity key file's metadata (size, modification
/// time, inode): one `stat` a second, and a read only when they changed. A rotation is signed
/// with and published by every instance sharing the file within about a second — which matters
/// because a verifier that meets the new `kid` refetches the JWKS from whichever instance its
/// request reaches, and a 10 s reload left that instance up to 10 s behind the one that signed.
pub const IDENTITY_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What identifies a version of the key file without reading it: `tessera identity-key rotate`
/// writes a new file and renames it over the old one (a new inode); an editor that rewrites in
/// place changes the modification time or the size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        #[cfg(unix)]
        inode: {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        },
    })
}

/// Follows `path` into `signer` until the process ends: a rotation reaches a running server
/// within [`IDENTITY_CHECK_EVERY`] (when the file's metadata changed), and the file is re-read
/// every [`RELOAD_EVERY`](crate::key::RELOAD_EVERY) regardless, in case a change kept all of
/// size, time and inode (a coarse-clock file system).
pub fn spawn_reload(signer: IdentitySigner, path: PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = stamp(&path);
        let mut last_read = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(IDENTITY_CHECK_EVERY).await;
            let now = stamp(&path);
            if now == seen && last_read.elapsed() < crate::key::RELOAD_EVERY {
                continue;
            }
            last_read = tokio::time::Instant::now();
            let read_path = path.clone();
            match tokio::task::spawn_blocking(move || read_seeds(&read_path).and_then(keys)).await {
                Ok(Ok(keys)) => {
                    seen = now;
                    let current = keys.current_kid().to_string();
                    if signer.set(keys) {
                        tracing::info!(kid = %current, "identity keys reloaded from the key file");
                    }
                }
                Ok(Err(e)) => {
                    // Not read again until it changes (or RELOAD_EVERY): one warning, not one a second.
                    seen = now;
                    tracing::warn!(error = %format!("{e:#}"), "cannot reload the identity key file; keeping the keys in force")
                }
                Err(e) => tracing::warn!(error = %e, "the identity key file reader failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_and_errors_never_show_them() {
        let a = "11".repeat(32);
        let b = "2f".repeat(32);
        let seeds = parse_seeds(format!("# c\n\n{a}\n{b}\n").lines(), "line").expect("seeds");
        assert_eq!(seeds, vec![[0x11; 32], [0x2f; 32]]);
        assert_eq!(parse_seeds(file_text(&seeds).lines(), "line").expect("round trip"), seeds);
        for (text, want) in [
            (format!("{a}\nzz{}", &b[2..]), "line 2: expected 64 hexadecimal digits"),
            (format!("{a}0"), "line 1: expected 64"),
            ("# none".to_string(), "no identity key"),
        ] {
            let err = format!("{:#}", parse_seeds(text.lines(), "line").expect_err(want));
            assert!(err.contains(want), "{err}");
            assert!(!err.contains(&a[..16]) && !err.contains(&b[4..20]), "{err}");
        }
        let err = format!("{:#}", keys(vec![[1; 32], [1; 32]]).expect_err("twice"));
        assert!(err.contains("given twice"), "{err}");
    }
}
