//! `tessera token …`

use super::clients::find_client;
use super::output;
use super::users::find_user;
use crate::app::App;
use anyhow::{Result, bail};
use clap::Subcommand;
use serde::Serialize;
use std::collections::HashMap;
use tessera_axum::{IfPairHasToken, PairTokenError, Tessera, TokenRequest};
use tessera_core::store::TokenFilter;
use tessera_core::{AuthToken, Revoker, TokenId};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token for a (user, client) pair and print it; it is shown only this once
    Create {
        /// The user
        #[arg(long, value_name = "USERNAME")]
        user: String,
        /// The client
        #[arg(long, value_name = "NAME")]
        client: String,
        /// Revoke the pair's existing token first (a pair has at most one)
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
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id, or a user's tokens (optionally only for one client)
    #[command(group = clap::ArgGroup::new("which").required(true).args(["id", "user"]))]
    Revoke {
        /// The token's id (see `token list`)
        id: Option<i64>,
        /// Revoke this user's tokens
        #[arg(long, value_name = "USERNAME", conflicts_with = "id")]
        user: Option<String>,
        /// With --user: only the token for this client
        #[arg(long, value_name = "NAME", requires = "user")]
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
}

impl TokenCommand {
    pub async fn run(self, app: &App) -> Result<()> {
        match self {
            TokenCommand::Create { user, client, replace } => create(app, &user, &client, replace).await,
            TokenCommand::List { user, client, json } => list(app, user.as_deref(), client.as_deref(), json).await,
            TokenCommand::Revoke { id: Some(id), .. } => revoke_id(app, TokenId(id)).await,
            TokenCommand::Revoke { id: None, user: Some(user), client } => {
                revoke_user(app, &user, client.as_deref()).await
            }
            TokenCommand::Revoke { id: None, user: None, .. } => bail!("give a token id or --user"),
            TokenCommand::Expire { user, client } => expire(app, &user, &client).await,
            TokenCommand::PurgeExpired => {
                let purged = app.store.purge_expired(app.clock.now()).await?;
                println!("purged {purged} expired token(s)");
                Ok(())
            }
        }
    }
}

/// The CLI's Tessera: every change goes through the library's token lifecycle, so it emits the
/// same events (`by: cli`) and is honoured by every instance as the API's changes are.
fn tessera(app: &App) -> Result<Tessera> {
    Ok(app.tessera()?.build()?)
}

/// `token create`: refuses a pair that has a live token unless `--replace` (an expired one is
/// replaced).
async fn create(app: &App, username: &str, client: &str, replace: bool) -> Result<()> {
    let user = find_user(app, username).await?;
    let client = find_client(app, client).await?;
    let policy = if replace { IfPairHasToken::Replace } else { IfPairHasToken::Refuse };
    let request =
        TokenRequest::new(&user, &client).if_exists(policy).device(Some("tessera-cli".into()), None).by(Revoker::Cli);
    let pair = match tessera(app)?.token_for_pair(request).await {
        Ok(pair) => pair,
        Err(PairTokenError::Exists(existing)) => bail!(
            "user '{}' already has a token for client '{}' (id {}); use --replace to revoke it and issue a new one",
            user.username,
            client.name,
            existing.id
        ),
        Err(e) => return Err(e.into()),
    };
    eprintln!(
        "token {} for user '{}' on client '{}', expires {}; it is shown only now:",
        pair.token.id,
        user.username,
        client.name,
        output::maybe_time(pair.token.expiry, "never")
    );
    println!("{}", pair.secret.expose());
    Ok(())
}

/// `token list`: names instead of ids, never a secret.
async fn list(app: &App, user: Option<&str>, client: Option<&str>, json: bool) -> Result<()> {
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
        })
        .collect();
    if json {
        return output::json(&rows);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.user.clone(),
                r.client.clone(),
                output::time(r.created),
                output::maybe_time(r.expiry, "never") + if r.has_expired { " (expired)" } else { "" },
                output::maybe_time(r.last_used, "-"),
                r.ip.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    output::table(&["ID", "USER", "CLIENT", "CREATED", "EXPIRES", "LAST USED", "IP"], &table);
    Ok(())
}

/// `token revoke ID`.
async fn revoke_id(app: &App, id: TokenId) -> Result<()> {
    let Some(token) = app.store.token_by_id(id).await? else { bail!("no token with id {id}") };
    if !tessera(app)?.revoke_token(&token, Revoker::Cli).await? {
        bail!("no token with id {id}");
    }
    println!("revoked token {id}");
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
    println!("revoked {} token(s) of user '{username}'", revoked.len());
    Ok(())
}

/// `token expire --user U --client C`.
async fn expire(app: &App, username: &str, client: &str) -> Result<()> {
    let user = find_user(app, username).await?;
    let client = find_client(app, client).await?;
    let Some(token) = app.store.token_for(user.id, client.id).await? else {
        bail!("user '{}' has no token for client '{}'", user.username, client.name);
    };
    tessera(app)?.expire_token(&token).await?;
    println!("token {} of user '{}' on client '{}' expired", token.id, user.username, client.name);
    Ok(())
}
