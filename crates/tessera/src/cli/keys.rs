//! `tessera key …`: the server keys. Never prints a key, except `key generate`, whose whole point
//! is to print a new one.

use super::output;
use crate::app::App;
use crate::config::Config;
use crate::key;
use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use serde::Serialize;
use tessera_core::store::TokenFilter;
use tessera_core::{EventKind, KeyId, KeyRing, Revoker};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print a new random server key, for TESSERA_SECRET_KEY(S) when several instances share keys
    Generate,
    /// Add a new random key to the key file as the current key: new tokens are made with it, the
    /// old keys keep verifying the tokens made with them. Running servers pick it up within 10 s
    Rotate,
    /// List the server keys: id, current or verify-only, and how many tokens each has (never a key)
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove a verify-only key from the key file. Refused while tokens made with it exist,
    /// unless --revoke. With keys from the configuration, says what to set instead
    Retire {
        /// The key's id (see `key list`)
        id: String,
        /// First revoke the tokens made with it (on every instance within a second)
        #[arg(long)]
        revoke: bool,
    },
}

impl KeyCommand {
    /// Runs the commands that read or change tokens or the key file. `generate` needs neither a
    /// configuration nor a database: the CLI runs it before loading either. `rotate` opens the
    /// database before it changes anything, to record its change in the audit log.
    pub async fn run(self, app: &App) -> Result<()> {
        match self {
            KeyCommand::Rotate => rotate(app),
            KeyCommand::List { json } => list(app, json).await,
            KeyCommand::Retire { id, revoke } => retire(app, &id, revoke).await,
            KeyCommand::Generate => Ok(()),
        }
    }
}

/// What to set instead of rewriting a key file, when the keys come from the configuration
/// (Tessera does not rewrite configuration or environment): `ring` as it should become, with
/// `new` the id of a key to generate. Names no key, only ids.
fn what_to_set(config: &Config, ring: &KeyRing, new: Option<KeyId>) -> String {
    let list: Vec<String> = ring
        .ids()
        .map(|id| if Some(id) == new { format!("{id}:<new key>") } else { format!("{id}:<key {id}>") })
        .collect();
    let from = if config.secret_keys.is_some() {
        "secret_keys (TESSERA_SECRET_KEYS)"
    } else {
        "secret_key (TESSERA_SECRET_KEY)"
    };
    let generate =
        new.map(|id| format!(", with a new key from `tessera key generate` as key {id}")).unwrap_or_default();
    format!(
        "the server keys come from the configuration ({from}), which Tessera does not rewrite: set \
         TESSERA_SECRET_KEYS=\"{}\" (secret_keys in the config file) on every instance{generate}, then restart them",
        list.join(",")
    )
}

/// `key rotate`: rewrites the key file, then records `key_rotated` (written when the command
/// ends, by [`App::close`]).
fn rotate(app: &App) -> Result<()> {
    let config = &app.config;
    let (ring, source) = key::load_or_create(config)?;
    let (rotated, new) = ring.rotated()?;
    let Some(path) = source.file() else { bail!("{}", what_to_set(config, &rotated, Some(new))) };
    key::replace_key_file(path, &ring, &rotated)?;
    let old: Vec<String> = ring.ids().map(|id| id.to_string()).collect();
    let kind = EventKind::KeyRotated { key: new.to_string(), verify_only: old.clone() };
    app.admin_without_key()?.key_changed(kind, Revoker::Cli);
    output::out!(
        "new current key {new} in {}; key(s) {} now only verify the tokens made with them. \
         Running servers using this file pick it up within 10 seconds.",
        path.display(),
        old.join(", ")
    )?;
    Ok(())
}

/// A key as listed: never the key itself.
#[derive(Debug, Serialize)]
struct KeyRow {
    id: String,
    status: &'static str,
    tokens: u64,
}

/// `key list`: counts, never the tokens themselves (a million tokens are counted, not read).
async fn list(app: &App, json: bool) -> Result<()> {
    let (ring, _) = key::load_or_create(&app.config)?;
    let mut rows = Vec::new();
    for id in ring.ids() {
        let tokens = app.store.count_tokens(TokenFilter { key: Some(id), ..TokenFilter::default() }).await?;
        let status = if id == ring.current() { "current" } else { "verify-only" };
        rows.push(KeyRow { id: id.to_string(), status, tokens });
    }
    // Tokens made with keys no longer in the ring (retired by hand): they no longer authenticate.
    let all = app.store.count_tokens(TokenFilter::default()).await?;
    let other = all.saturating_sub(rows.iter().map(|r| r.tokens).sum());
    if other > 0 {
        rows.push(KeyRow { id: "other".into(), status: "not in ring", tokens: other });
    }
    output::listing(&rows, json, &["ID", "STATUS", "TOKENS"], |r| {
        vec![r.id.clone(), r.status.to_string(), r.tokens.to_string()]
    })
}

/// `key retire ID [--revoke]`.
async fn retire(app: &App, id: &str, revoke: bool) -> Result<()> {
    let id: KeyId = id.parse()?;
    let (ring, source) = key::load_or_create(&app.config)?;
    let without = ring.without(id).map_err(|e| anyhow!("cannot retire key {id}: {e}"))?;
    let of_key = TokenFilter { key: Some(id), ..TokenFilter::default() };
    let using = app.store.count_tokens(of_key).await?;
    let mut revoked = 0;
    if using > 0 {
        if !revoke {
            bail!(
                "key {id} is still used by {using} token(s): retiring it would log them out. \
                 Wait for them to expire, or run `tessera key retire {id} --revoke` to revoke them"
            );
        }
        // Through App::admin, whose audit records App::close writes.
        revoked = app.admin()?.revoke_key_tokens(id, Revoker::Cli).await?.len();
    }
    match source.file() {
        Some(path) => {
            key::replace_key_file(path, &ring, &without)?;
            let kind = EventKind::KeyRetired { key: id.to_string(), tokens_revoked: revoked as u64 };
            app.admin_without_key()?.key_changed(kind, Revoker::Cli);
            output::out!(
                "retired key {id} from {} ({revoked} token(s) revoked). Running servers using this file drop it within \
                 10 seconds.",
                path.display()
            )?;
        }
        None => output::out!(
            "key {id} has no tokens left ({revoked} token(s) revoked); to retire it, {}",
            what_to_set(&app.config, &without, None).replacen("the server keys come", "as the server keys come", 1)
        )?,
    }
    Ok(())
}
