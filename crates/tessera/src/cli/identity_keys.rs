//! `tessera identity-key …`: the Ed25519 keys that sign forward-auth's `X-Tessera-Identity`.
//! Prints key ids (as in `/.well-known/jwks.json`), never a key.

use super::output;
use crate::config::Config;
use crate::identity_key::{self, IdentityKeySource};
use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum IdentityKeyCommand {
    /// Make a new signing key; the previous one stays published in the JWKS (tokens it signed
    /// live a minute at most), older ones are dropped. Running servers pick it up within about a second
    Rotate,
    /// List the identity key ids: the signing key first, then the verify-only ones
    List,
}

impl IdentityKeyCommand {
    /// Runs the command (no database needed).
    pub fn run(&self, config: &Config) -> Result<()> {
        match self {
            IdentityKeyCommand::Rotate => {
                let (new, kept) = identity_key::rotate(config)?;
                if kept.is_empty() {
                    output::out!("created the identity key {new}")?;
                } else {
                    output::out!("new signing key {new}; {kept} stays published for verification")?;
                }
            }
            IdentityKeyCommand::List => {
                // Listing never creates a key: `serve` does, when the signed identity is on.
                let file = config.data_dir.join(identity_key::IDENTITY_KEY_FILE);
                if config.identity_keys.is_none() && !file.exists() {
                    output::out!(
                        "no identity key yet ({} is created by the first `serve` with forward_auth.identity_token = true, or by `identity-key rotate`)",
                        file.display()
                    )?;
                    return Ok(());
                }
                let (keys, source) = identity_key::load_or_create(config)?;
                let from = match source {
                    IdentityKeySource::Config => "configuration (identity_keys)".to_string(),
                    IdentityKeySource::File(p) | IdentityKeySource::Generated(p) => p.display().to_string(),
                };
                output::out!("identity keys from {from}:")?;
                for (i, kid) in keys.kids().enumerate() {
                    output::out!("{kid}  {}", if i == 0 { "signing" } else { "verify-only" })?;
                }
            }
        }
        Ok(())
    }
}
