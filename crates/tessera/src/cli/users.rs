//! `tessera user …`

use super::output;
use crate::app::App;
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use std::io::{IsTerminal, Read};
use tessera_core::password::hash_password;
use tessera_core::store::TokenFilter;
use tessera_core::{NewUser, Revoker, User, Username};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (prompts twice for the password, without echo)
    Create {
        /// Letters, digits and @ . + - _ (at most 150 characters)
        username: String,
        /// Make the user staff (may use the admin UI)
        #[arg(long)]
        staff: bool,
        /// Read the password from standard input instead of prompting
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password (prompts twice, or --password-stdin)
    SetPassword {
        /// The user
        username: String,
        /// Read the password from standard input instead of prompting
        #[arg(long)]
        password_stdin: bool,
    },
    /// Let a deactivated user log in again (their tokens work again)
    Activate {
        /// The user
        username: String,
    },
    /// Stop a user from logging in; their tokens stop working at once
    Deactivate {
        /// The user
        username: String,
    },
    /// Delete a user and all their tokens
    Delete {
        /// The user
        username: String,
    },
}

impl UserCommand {
    pub async fn run(self, app: &App) -> Result<()> {
        let store = &app.store;
        match self {
            UserCommand::Create { username, staff, password_stdin } => {
                let given = username;
                let username: Username = given.parse()?;
                // Stored as Django stores it (NFKC): say so when that changed what was typed.
                let normalised = if username.as_str() == given {
                    String::new()
                } else {
                    format!(
                        " ('{}' is '{username}' once normalised (NFKC), as Django stores usernames)",
                        given.escape_debug()
                    )
                };
                if store.user_by_username(&username).await?.is_some() {
                    bail!("a user named '{username}' already exists{normalised}");
                }
                let hash = hash_password(&read_password(password_stdin)?)?;
                let new = NewUser { username, password_hash: hash, is_staff: staff, is_active: true };
                let user = app.admin_without_key()?.create_user(new, Revoker::Cli).await?;
                let staff = if staff { "staff " } else { "" };
                output::out!("created {staff}user '{}' (id {}){normalised}", user.username, user.id)?;
            }
            UserCommand::List { json } => {
                let users = store.list_users().await?;
                let header = ["ID", "USERNAME", "ACTIVE", "STAFF", "CREATED"];
                output::listing(&users, json, &header, |u| {
                    vec![
                        u.id.to_string(),
                        u.username.to_string(),
                        yes_no(u.is_active),
                        yes_no(u.is_staff),
                        output::time(u.created),
                    ]
                })?;
            }
            UserCommand::SetPassword { username, password_stdin } => {
                let user = find_user(app, &username).await?;
                let hash = hash_password(&read_password(password_stdin)?)?;
                let revoked = app.admin_without_key()?.change_password(&user, &hash, Revoker::Cli).await?;
                if app.config.settings.revoke_tokens_on_password_change {
                    output::out!("password of '{}' changed; {} token(s) revoked", user.username, revoked.len())?;
                } else {
                    output::out!("password of '{}' changed", user.username)?;
                }
            }
            UserCommand::Activate { username } => {
                let user = find_user(app, &username).await?;
                app.admin_without_key()?.set_user_active(&user, true, Revoker::Cli).await?;
                output::out!("user '{}' activated", user.username)?;
            }
            UserCommand::Deactivate { username } => {
                let user = find_user(app, &username).await?;
                app.admin_without_key()?.set_user_active(&user, false, Revoker::Cli).await?;
                let tokens =
                    store.list_tokens(TokenFilter { user: Some(user.id), ..TokenFilter::default() }).await?.len();
                output::out!("user '{}' deactivated ({tokens} token(s) stop working)", user.username)?;
            }
            UserCommand::Delete { username } => {
                let user = find_user(app, &username).await?;
                let tokens = app.admin_without_key()?.delete_user(&user, Revoker::Cli).await?;
                output::out!("user '{}' deleted with {tokens} token(s)", user.username)?;
            }
        }
        Ok(())
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// The user named `username`, or a clear error.
pub async fn find_user(app: &App, username: &str) -> Result<User> {
    // A name no user can have is simply not found.
    let found = match username.parse::<Username>() {
        Ok(parsed) => app.store.user_by_username(&parsed).await?,
        Err(_) => None,
    };
    found.ok_or_else(|| anyhow!("no user named '{username}'"))
}

/// Reads a new password: all of standard input (one trailing newline removed), or two prompts on
/// the terminal without echo.
fn read_password(from_stdin: bool) -> Result<String> {
    if from_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the password from standard input")?;
        let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
        return Ok(text.to_string());
    }
    if !std::io::stdin().is_terminal() {
        bail!("standard input is not a terminal, so there is no one to prompt for the password; use --password-stdin");
    }
    let first = rpassword::prompt_password("Password: ")
        .context("cannot prompt for the password (no terminal?); use --password-stdin")?;
    let second = rpassword::prompt_password("Password (again): ")
        .context("cannot prompt for the password (no terminal?); use --password-stdin")?;
    if first != second {
        bail!("the two passwords do not match");
    }
    Ok(first)
}
