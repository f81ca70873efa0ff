//! `tessera token …`

use super::clients::find_client;
use super::output;
use super::users::find_user;
use crate::app::App;
use anyhow::{Result, bail};
use clap::Subcommand;
use serde::Serialize;
use std::collections::HashMap;
use tessera_core::store::TokenFilter;
use tessera_core::{AuthToken, NewToken, TokenId};

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
        let store = &app.store;
        let now = app.clock.now();
        match self {
            TokenCommand::Create { user, client, replace } => {
                let user = find_user(app, &user).await?;
                let client = find_client(app, &client).await?;
                let (codec, _) = app.codec()?;
                if let Some(existing) = store.token_for(user.id, client.id).await? {
                    if !replace {
                        bail!(
                            "user '{}' already has a token for client '{}' (id {}); use --replace to revoke it and issue a new one",
                            user.username,
                            client.name,
                            existing.id
                        );
                    }
                    store.delete_token(existing.id).await?;
                }
                let issued = codec.issue();
                let token = store
                    .create_token(NewToken {
                        user_agent: Some("tessera-cli".into()),
                        ..NewToken::issued(&issued, user.id, &client, now)
                    })
                    .await?;
                eprintln!(
                    "token {} for user '{}' on client '{}', expires {}; it is shown only now:",
                    token.id,
                    user.username,
                    client.name,
                    output::maybe_time(token.expiry, "never")
                );
                println!("{}", issued.token.expose());
            }
            TokenCommand::List { user, client, json } => {
                let filter = TokenFilter {
                    user: match &user {
                        Some(name) => Some(find_user(app, name).await?.id),
                        None => None,
                    },
                    client: match &client {
                        Some(name) => Some(find_client(app, name).await?.id),
                        None => None,
                    },
                };
                let users: HashMap<_, _> =
                    store.list_users().await?.into_iter().map(|u| (u.id, u.username.to_string())).collect();
                let clients: HashMap<_, _> =
                    store.list_clients().await?.into_iter().map(|c| (c.id, c.name.to_string())).collect();
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
            }
            TokenCommand::Revoke { id, user, client } => {
                if let Some(id) = id {
                    if !store.delete_token(TokenId(id)).await? {
                        bail!("no token with id {id}");
                    }
                    println!("revoked token {id}");
                    return Ok(());
                }
                let Some(username) = user else { bail!("give a token id or --user") };
                let user = find_user(app, &username).await?;
                let client = match &client {
                    Some(name) => Some(find_client(app, name).await?),
                    None => None,
                };
                let deleted = store
                    .delete_tokens(TokenFilter { user: Some(user.id), client: client.as_ref().map(|c| c.id) })
                    .await?;
                if deleted.is_empty() {
                    match client {
                        Some(c) => bail!("user '{username}' has no token for client '{}'", c.name),
                        None => bail!("user '{username}' has no tokens"),
                    }
                }
                println!("revoked {} token(s) of user '{username}'", deleted.len());
            }
            TokenCommand::Expire { user, client } => {
                let user = find_user(app, &user).await?;
                let client = find_client(app, &client).await?;
                let Some(token) = store.token_for(user.id, client.id).await? else {
                    bail!("user '{}' has no token for client '{}'", user.username, client.name);
                };
                store.set_expiry(token.id, Some(now)).await?;
                println!("token {} of user '{}' on client '{}' expired", token.id, user.username, client.name);
            }
            TokenCommand::PurgeExpired => {
                let purged = store.purge_expired(now).await?;
                println!("purged {purged} expired token(s)");
            }
        }
        Ok(())
    }
}
