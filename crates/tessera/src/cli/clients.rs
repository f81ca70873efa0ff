//! `tessera client …`

use super::output;
use crate::app::App;
use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use tessera_core::model::check_text;
use tessera_core::store::ClientUpdate;
use tessera_core::{Client, ClientName, Devices, NewClient, OnDeviceLimit, Rate, Revoker, Ttl};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create an API client
    Create {
        /// Unique name, at most 64 characters ("web", "ios", "cli", ...)
        name: String,
        /// Token lifetime: 90s, 15m, 12h, 30d, "1d 2h", "DD HH:MM:SS" or never [default: default_token_ttl]
        #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
        token_ttl: Option<String>,
        /// Per-(user, client) rate: N/s, N/m, N/h or N/d [default: default_throttle_rate]
        #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
        throttle_rate: Option<String>,
        /// Each use of a token extends its expiry to now + TTL
        #[arg(long)]
        sliding_expiry: bool,
        /// Cap on a token's total lifetime however often it is renewed
        #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
        max_lifetime: Option<String>,
        /// Free text for admins: at most 1,024 characters, no control characters
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        #[command(flatten)]
        devices: DeviceArgs,
    },
    /// List API clients
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Change an API client
    Update {
        /// The client to change
        name: String,
        /// New name
        #[arg(long = "name", value_name = "NEW_NAME")]
        new_name: Option<String>,
        /// New token lifetime (applies to tokens issued or renewed from now on), or never
        #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
        token_ttl: Option<String>,
        /// New rate, or none to use the default
        #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
        throttle_rate: Option<String>,
        /// Sliding expiry on or off
        #[arg(long, value_name = "BOOL")]
        sliding_expiry: Option<bool>,
        /// New lifetime cap, or none
        #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
        max_lifetime: Option<String>,
        /// New description: at most 1,024 characters, no control characters
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        #[command(flatten)]
        devices: DeviceArgs,
    },
    /// Delete an API client and all its tokens
    Delete {
        /// The client
        name: String,
    },
}

/// A client's device policy, as flags.
#[derive(Debug, clap::Args)]
pub struct DeviceArgs {
    /// Tokens per (user, client): one (durin: a second login gets the same token) or many (a
    /// token per device: a logout ends only that device's) [default: one]
    #[arg(long, value_name = "one|many")]
    devices: Option<String>,
    /// With --devices many: the most tokens a user holds on the client, 1 to 1000 [default: 10]
    #[arg(long, value_name = "N")]
    max_devices: Option<u32>,
    /// With --devices many: at the limit, revoke the least recently used token
    /// (evict-oldest) or refuse the login (refuse) [default: evict-oldest]
    #[arg(long, value_name = "evict-oldest|refuse")]
    on_device_limit: Option<String>,
}

impl DeviceArgs {
    /// The policy the flags ask for: `None` when none is given. For an update, `current` fills in
    /// what is not given (`--max-devices 5` alone keeps `many` and its policy at the limit).
    fn policy(self, current: Option<Devices>) -> Result<Option<Devices>> {
        let on_limit = self.on_device_limit.map(|o| o.parse::<OnDeviceLimit>()).transpose()?;
        if self.devices.is_none() && self.max_devices.is_none() && on_limit.is_none() {
            return Ok(None);
        }
        let (kind, max, on_limit) = match (self.devices, current) {
            (Some(kind), _) => (kind, self.max_devices, on_limit),
            (None, Some(Devices::Many { max_devices, on_device_limit })) => {
                ("many".to_string(), self.max_devices.or(Some(max_devices)), on_limit.or(Some(on_device_limit)))
            }
            (None, _) => ("one".to_string(), self.max_devices, on_limit),
        };
        Ok(Some(
            Devices::from_parts(&kind, max, on_limit)
                .map_err(|e| anyhow!("{e} (--devices, --max-devices, --on-device-limit)"))?,
        ))
    }
}

impl ClientCommand {
    pub async fn run(self, app: &App) -> Result<()> {
        match self {
            ClientCommand::Create {
                name,
                token_ttl,
                throttle_rate,
                sliding_expiry,
                max_lifetime,
                description,
                devices,
            } => {
                let new = NewClient {
                    name: name.parse()?,
                    token_ttl: match token_ttl {
                        Some(text) => text.parse()?,
                        None => app.config.settings.default_token_ttl,
                    },
                    throttle_rate: throttle_rate.map(|r| r.parse::<Rate>()).transpose()?,
                    sliding_expiry,
                    max_lifetime: max_lifetime.map(|m| m.parse::<Ttl>()).transpose()?,
                    description: checked_description(description)?,
                    devices: devices.policy(None)?.unwrap_or_default(),
                };
                create(app, new).await
            }
            ClientCommand::List { json } => list(app, json).await,
            ClientCommand::Update {
                name,
                new_name,
                token_ttl,
                throttle_rate,
                sliding_expiry,
                max_lifetime,
                description,
                devices,
            } => {
                let current = find_client(app, &name).await?;
                let update = ClientUpdate {
                    name: new_name.map(|n| n.parse::<ClientName>()).transpose()?,
                    token_ttl: token_ttl.map(|t| t.parse::<Ttl>()).transpose()?,
                    throttle_rate: throttle_rate
                        .map(|r| optional(&r).map(str::parse::<Rate>).transpose())
                        .transpose()?,
                    sliding_expiry,
                    max_lifetime: max_lifetime.map(|m| optional(&m).map(str::parse::<Ttl>).transpose()).transpose()?,
                    description: description.map(checked_description).transpose()?,
                    devices: devices.policy(Some(current.devices))?,
                };
                update_client(app, current, update).await
            }
            ClientCommand::Delete { name } => delete(app, &name).await,
        }
    }
}

/// `client create`: every value is parsed before anything is written.
async fn create(app: &App, new: NewClient) -> Result<()> {
    check_lifetime_cap(new.token_ttl, new.max_lifetime)?;
    if app.store.client_by_name(&new.name).await?.is_some() {
        bail!("a client named '{}' already exists", new.name);
    }
    let client = app.admin_without_key()?.create_client(new, Revoker::Cli).await?;
    output::out!("created client '{}' (id {}, token TTL {})", client.name, client.id, client.token_ttl)?;
    Ok(())
}

/// `client list`.
async fn list(app: &App, json: bool) -> Result<()> {
    let clients = app.store.list_clients().await?;
    let header = ["ID", "NAME", "TOKEN TTL", "THROTTLE", "EXPIRY", "MAX LIFETIME", "DEVICES", "DESCRIPTION"];
    output::listing(&clients, json, &header, |c| {
        vec![
            c.id.to_string(),
            c.name.to_string(),
            c.token_ttl.to_string(),
            c.throttle_rate.map(|r| r.to_string()).unwrap_or_else(|| "default".into()),
            if c.sliding_expiry { "sliding" } else { "fixed" }.into(),
            c.max_lifetime.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            match c.devices {
                Devices::One => "one".into(),
                Devices::Many { max_devices, on_device_limit } => format!("many ({max_devices}, {on_device_limit})"),
            },
            c.description.clone(),
        ]
    })
}

/// `client update`: refuses an update that changes nothing, breaks the lifetime cap or takes
/// another client's name.
async fn update_client(app: &App, client: Client, update: ClientUpdate) -> Result<()> {
    let mut preview = client.clone();
    update.apply(&mut preview);
    if preview == client {
        bail!(
            "nothing to change: give at least one of --name, --token-ttl, --throttle-rate, --sliding-expiry, --max-lifetime, --description, --devices, --max-devices, --on-device-limit"
        );
    }
    if matches!(preview.devices, Devices::Many { .. })
        && app.config.settings.api_access_client_name.as_ref() == Some(&client.name)
    {
        bail!("the API-access client '{}' is always --devices one: one API key per user", client.name);
    }
    check_lifetime_cap(preview.token_ttl, preview.max_lifetime)?;
    if let Some(new) = &update.name
        && new != &client.name
        && app.store.client_by_name(new).await?.is_some()
    {
        bail!("a client named '{new}' already exists");
    }
    // Through the library: from many to one, each user's other tokens there are revoked (with
    // their events), keeping the most recently used.
    let (updated, revoked) = app.admin_without_key()?.update_client(&client, update, Revoker::Cli).await?;
    output::out!("updated client '{}' (id {})", updated.name, updated.id)?;
    if !revoked.is_empty() {
        output::out!("devices one: revoked {} token(s), keeping each user's most recently used", revoked.len())?;
    }
    Ok(())
}

/// `client delete`: the client and all its tokens.
async fn delete(app: &App, name: &str) -> Result<()> {
    let client = find_client(app, name).await?;
    let tokens = app.admin_without_key()?.delete_client(&client, Revoker::Cli).await?;
    output::out!("deleted client '{}' with {tokens} token(s)", client.name)?;
    Ok(())
}

/// A description as given, if it is at most 1,024 characters without control characters.
fn checked_description(text: String) -> Result<String> {
    check_text("description", &text)?;
    Ok(text)
}

/// `none` (or an empty value) clears an optional field.
fn optional(text: &str) -> Option<&str> {
    (!(text.is_empty() || text.eq_ignore_ascii_case("none"))).then_some(text)
}

fn check_lifetime_cap(ttl: Ttl, cap: Option<Ttl>) -> Result<()> {
    match (ttl, cap) {
        (_, None) => Ok(()),
        (_, Some(Ttl::Never)) => bail!("invalid max lifetime 'never': leave it out for no cap"),
        (Ttl::Never, Some(_)) => {
            bail!("a max lifetime needs a token TTL; tokens of a client with TTL 'never' never expire")
        }
        (Ttl::After(ttl), Some(Ttl::After(cap))) if cap < ttl => {
            bail!("the max lifetime ({}) is shorter than the token TTL ({})", Ttl::After(cap), Ttl::After(ttl))
        }
        _ => Ok(()),
    }
}

/// The client named `name`, or a clear error.
pub async fn find_client(app: &App, name: &str) -> Result<Client> {
    // A name no client can have is simply not found.
    let found = match name.parse::<ClientName>() {
        Ok(parsed) => app.store.client_by_name(&parsed).await?,
        Err(_) => None,
    };
    found.ok_or_else(|| anyhow!("no client named '{name}'"))
}
