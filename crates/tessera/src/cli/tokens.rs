//! `tessera token …`

use super::clients::find_client;
use super::output;
use super::users::find_user;
use crate::app::App;
use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use serde::Serialize;
use std::collections::HashMap;
use tessera_axum::{IfPairHasToken, PairTokenError, Tessera, TokenRequest};
use tessera_core::store::TokenFilter;
use tessera_core::{AuthToken, Revoker, TokenId};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token for a (user, client) pair and print it; it is shown only this once. It is
    /// stored only after it was written to standard output: if the write fails nothing changes
    /// (exit 1, or 141 for a closed pipe)
    Create {
        /// The user
        #[arg(long, value_name = "USERNAME")]
        user: String,
        /// The client
        #[arg(long, value_name = "NAME")]
        client: String,
        /// Replace the pair's existing token (a pair has at most one). The new token is printed
        /// first; the old one is revoked only once the new one has been written out, so a failed
        /// write (full disk, closed pipe) leaves the old token valid and stores no new one
        #[arg(long)]
        replace: bool,
    },
    /// List tokens (never their secrets)
    List {
        /// Only this user's tokens
        #[arg(long, value_name = "USERNAME")]
        user: Option<String>,
        /// Only this client's tokens
        #[arg(long, value_name = "NAME")]
        client: Option<String>,
        /// Only legacy tokens (durin's, brought in by `tessera import durin`), and how many remain
        #[arg(long)]
        legacy: bool,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id, a user's tokens, or everyone's (optionally only for one client)
    #[command(group = clap::ArgGroup::new("which").required(true).args(["id", "user", "all"]))]
    Revoke {
        /// The token's id (see `token list`)
        id: Option<i64>,
        /// Revoke this user's tokens
        #[arg(long, value_name = "USERNAME", conflicts_with_all = ["id", "all"])]
        user: Option<String>,
        /// Revoke every user's tokens: log everyone out, on every instance within a second
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// With --user or --all: only the tokens for this client
        #[arg(long, value_name = "NAME", conflicts_with = "id")]
        client: Option<String>,
    },
    /// Expire a token now: its next use gets "The given token has expired."
    Expire {
        /// The user
        #[arg(long, value_name = "USERNAME")]
        user: String,
        /// The client
        #[arg(long, value_name = "NAME")]
        client: String,
    },
    /// Delete every expired token
    PurgeExpired,
}

/// A token as listed: ids resolved to names, no secret.
#[derive(Debug, Serialize)]
struct TokenRow {
    id: TokenId,
    user: String,
    client: String,
    created: chrono::DateTime<chrono::Utc>,
    expiry: Option<chrono::DateTime<chrono::Utc>>,
    has_expired: bool,
    last_used: Option<chrono::DateTime<chrono::Utc>>,
    user_agent: Option<String>,
    ip: Option<String>,
    /// The server key the token was made with (`tessera key list`); a legacy token's digest
    /// was made with it.
    key_id: String,
    /// A durin token brought in by `tessera import durin`.
    legacy: bool,
}

impl TokenCommand {
    pub async fn run(self, app: &App) -> Result<()> {
        match self {
            TokenCommand::Create { user, client, replace } => create(app, &user, &client, replace).await,
            TokenCommand::List { user, client, legacy, json } => {
                list(app, user.as_deref(), client.as_deref(), legacy, json).await
            }
            TokenCommand::Revoke { id: Some(id), .. } => revoke_id(app, TokenId(id)).await,
            TokenCommand::Revoke { id: None, user: Some(user), client, .. } => {
                revoke_user(app, &user, client.as_deref()).await
            }
            TokenCommand::Revoke { id: None, user: None, all: true, client } => {
                revoke_all(app, client.as_deref()).await
            }
            TokenCommand::Revoke { .. } => bail!("give a token id, --user or --all"),
            TokenCommand::Expire { user, client } => expire(app, &user, &client).await,
            TokenCommand::PurgeExpired => {
                let purged = app.store.purge_expired(app.clock.now()).await?;
                output::out!("purged {purged} expired token(s)")?;
                Ok(())
            }
        }
    }
}

/// The CLI's Tessera: every change goes through the library's token lifecycle, so it emits the
/// same events (`by: cli`, recorded in the audit log) and is honoured by every instance as the
/// API's changes are.
fn tessera(app: &App) -> Result<&Tessera> {
    app.admin()
}

/// `token create`: refuses a pair that has a live token unless `--replace` (an expired one is
/// replaced).
///
/// Deliver before you destroy: the new token is made but not stored, printed and flushed, and only
/// then stored (revoking the one it replaces). If standard output cannot take it (a full disk, a
/// closed pipe), nothing changes: the new token never existed and the old one stays valid. If the
/// store fails after the token was printed, the command says the printed token is not valid and
/// exits 1.
async fn create(app: &App, username: &str, client: &str, replace: bool) -> Result<()> {
    let user = find_user(app, username).await?;
    let client = find_client(app, client).await?;
    let policy = if replace { IfPairHasToken::Replace } else { IfPairHasToken::Refuse };
    let request =
        TokenRequest::new(&user, &client).if_exists(policy).device(Some("tessera-cli".into()), None).by(Revoker::Cli);
    let exists = |existing: AuthToken| {
        anyhow!(
            "user '{}' already has a token for client '{}' (id {}); use --replace to revoke it and issue a new one",
            user.username,
            client.name,
            existing.id
        )
    };
    let tessera = tessera(app)?;
    let pending = match tessera.prepare_token(request).await {
        Ok(pending) => pending,
        Err(PairTokenError::Exists(existing)) => return Err(exists(existing)),
        Err(e) => return Err(e.into()),
    };
    let replaced = pending.replaces().map(|old| old.id);
    if let Err(e) = output::print(pending.secret().expose()) {
        // A closed pipe is told by the exit code (141) alone; anything else by this line.
        let kept = match replaced {
            Some(old) => format!("the old token {old} remains valid"),
            None => "no token was created".to_string(),
        };
        return Err(
            anyhow::Error::new(e).context(format!("the new token could not be written, so it was not stored; {kept}"))
        );
    }
    let pair = match tessera.store_pending_token(pending).await {
        Ok(pair) => pair,
        Err(e) => {
            let why = match e {
                PairTokenError::Exists(existing) => exists(existing),
                e => e.into(),
            };
            return Err(why.context("the token printed above could not be stored and is NOT valid"));
        }
    };
    output::note(&output::clean(&format!(
        "token {} for user '{}' on client '{}', expires {}{}; it is shown only once, above",
        pair.token.id,
        user.username,
        client.name,
        output::maybe_time(pair.token.expiry, "never"),
        replaced.map(|old| format!("; token {old} revoked")).unwrap_or_default(),
    )));
    Ok(())
}

/// `token list`: names instead of ids, never a secret.
async fn list(app: &App, user: Option<&str>, client: Option<&str>, legacy: bool, json: bool) -> Result<()> {
    let store = &app.store;
    let now = app.clock.now();
    let filter = TokenFilter {
        user: match user {
            Some(name) => Some(find_user(app, name).await?.id),
            None => None,
        },
        client: match client {
            Some(name) => Some(find_client(app, name).await?.id),
            None => None,
        },
        key: None,
        legacy,
    };
    let users: HashMap<_, _> = store.list_users().await?.into_iter().map(|u| (u.id, u.username.to_string())).collect();
    let clients: HashMap<_, _> = store.list_clients().await?.into_iter().map(|c| (c.id, c.name.to_string())).collect();
    let rows: Vec<TokenRow> = store
        .list_tokens(filter)
        .await?
        .into_iter()
        .map(|t: AuthToken| TokenRow {
            id: t.id,
            user: users.get(&t.user_id).cloned().unwrap_or_default(),
            client: clients.get(&t.client_id).cloned().unwrap_or_default(),
            created: t.created,
            expiry: t.expiry,
            has_expired: t.has_expired(now),
            last_used: t.last_used,
            user_agent: t.user_agent.clone(),
            ip: t.ip.clone(),
            key_id: t.key_id.to_string(),
            legacy: t.is_legacy(),
        })
        .collect();
    // One row per token: on a `devices = many` client, one per device, told apart by its user agent.
    let header = ["ID", "USER", "CLIENT", "CREATED", "EXPIRES", "LAST USED", "IP", "KEY", "USER AGENT"];
    output::listing(&rows, json, &header, |r| {
        vec![
            r.id.to_string(),
            r.user.clone(),
            r.client.clone(),
            output::time(r.created),
            output::maybe_time(r.expiry, "never") + if r.has_expired { " (expired)" } else { "" },
            output::maybe_time(r.last_used, "-"),
            r.ip.clone().unwrap_or_else(|| "-".into()),
            if r.legacy { format!("{} (durin)", r.key_id) } else { r.key_id.clone() },
            r.user_agent.as_deref().map(|ua| ua.chars().take(40).collect()).unwrap_or_else(|| "-".into()),
        ]
    })?;
    if legacy && !json {
        // The operator's cue for turning `accept_legacy_tokens` off.
        output::out!("{} legacy token(s) remain", rows.len())?;
    }
    Ok(())
}

/// `token revoke ID`.
async fn revoke_id(app: &App, id: TokenId) -> Result<()> {
    let Some(token) = app.store.token_by_id(id).await? else { bail!("no token with id {id}") };
    if !tessera(app)?.revoke_token(&token, Revoker::Cli).await? {
        bail!("no token with id {id}");
    }
    output::out!("revoked token {id}")?;
    Ok(())
}

/// `token revoke --user U [--client C]`.
async fn revoke_user(app: &App, username: &str, client: Option<&str>) -> Result<()> {
    let user = find_user(app, username).await?;
    let client = match client {
        Some(name) => Some(find_client(app, name).await?),
        None => None,
    };
    let revoked = tessera(app)?.revoke_tokens(&user, client.as_ref(), Revoker::Cli).await?;
    if revoked.is_empty() {
        match client {
            Some(c) => bail!("user '{username}' has no token for client '{}'", c.name),
            None => bail!("user '{username}' has no tokens"),
        }
    }
    output::out!("revoked {} token(s) of user '{username}'", revoked.len())?;
    Ok(())
}

/// `token revoke --all [--client C]`.
async fn revoke_all(app: &App, client: Option<&str>) -> Result<()> {
    let client = match client {
        Some(name) => Some(find_client(app, name).await?),
        None => None,
    };
    let revoked = tessera(app)?.revoke_all_tokens(client.as_ref(), Revoker::Cli).await?;
    match client {
        Some(c) => output::out!("revoked {} token(s) on client '{}'", revoked.len(), c.name)?,
        None => output::out!("revoked {} token(s)", revoked.len())?,
    }
    Ok(())
}

/// `token expire --user U --client C`.
async fn expire(app: &App, username: &str, client: &str) -> Result<()> {
    let user = find_user(app, username).await?;
    let client = find_client(app, client).await?;
    let Some(token) = app.store.token_for(user.id, client.id).await? else {
        bail!("user '{}' has no token for client '{}'", user.username, client.name);
    };
    tessera(app)?.expire_token(&token, Revoker::Cli).await?;
    output::out!("token {} of user '{}' on client '{}' expired", token.id, user.username, client.name)?;
    Ok(())
}
