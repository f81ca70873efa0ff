//! `tessera import durin --from URL [--dry-run] [--update]`: a django-rest-durin project's users,
//! clients and live tokens, moved into Tessera without logging anyone out.
//!
//! The durin database is read first (`durin.rs`), before Tessera's store is opened, so that a
//! wrong `--from` changes nothing. Users keep their Django password hashes (verified as Django
//! verifies them and re-hashed to Argon2id on their first login; weak formats are refused and the
//! user must have their password reset); tokens are stored as their keyed digest only (legacy
//! tokens: accepted while `accept_legacy_tokens` allows). Everything is written in one transaction
//! at the store level (`tessera_sql::import`) with one `Imported` audit event; when tokens live in
//! Redis, they are stored there after the SQL part commits (a rerun completes an interrupted one).

use super::output;
use crate::app::App;
use crate::config::{Config, TokenStoreKind};
use crate::durin::{self, DurinData};
use anyhow::{Context, Result, anyhow};
use chrono::{TimeDelta, Utc};
use clap::Subcommand;
use std::collections::HashMap;
use tessera_core::password::django::{DjangoHash, DjangoHashError, must_reset_marker};
use tessera_core::store::StoreError;
use tessera_core::{ClientName, EventKind, NewClient, NewToken, Rate, Revoker, TokenCodec, TokenSeed, Ttl, Username};
use tessera_sql::import::{ImportBatch, ImportClient, ImportReport, ImportToken, ImportUser, Outcome};

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a django-rest-durin project's users (with their Django password hashes), clients
    /// and live tokens, in one transaction; running it again imports nothing new
    Durin {
        /// The Django project's database: sqlite:///path/to/db.sqlite3 or postgres://user@host/db
        /// (read-only access is enough)
        #[arg(long = "from", value_name = "URL")]
        from: String,
        /// Print what would be imported and every conflict, and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Overwrite users and clients that exist in Tessera with other values (password hash,
        /// active and staff flags; TTL and rate) instead of skipping them
        #[arg(long)]
        update: bool,
    },
}

impl ImportCommand {
    /// Reads the durin database, then opens Tessera's store and imports.
    pub async fn run(self, config: Config) -> Result<()> {
        let ImportCommand::Durin { from, dry_run, update } = self;
        let data = durin::read(&from).await?;
        // A dry run before Tessera has its embedded database (the usual first step of a move)
        // compares with an empty one in a temporary directory: opening the real one would create
        // the data directory, the database and the server key, and a dry run changes nothing.
        let mut config = config;
        let scratch = if dry_run && config.database_url.is_none() && !config.sqlite_default_path().exists() {
            let dir = tempfile::tempdir().context("cannot make a temporary directory for the dry run")?;
            let real = std::mem::replace(&mut config.data_dir, dir.path().to_path_buf());
            output::out!(
                "no Tessera database in {} yet: compared with an empty one (nothing is created)",
                real.display()
            )?;
            Some(dir)
        } else {
            None
        };
        let app = App::open(config).await?;
        let result = import(&app, &from, data, dry_run, update).await;
        app.close().await;
        drop(scratch);
        result
    }
}

/// A line for the report: what was not imported as it was, and why.
struct Warnings(Vec<String>);

impl Warnings {
    fn add(&mut self, line: String) {
        self.0.push(line);
    }
}

async fn import(app: &App, from: &str, data: DurinData, dry_run: bool, update: bool) -> Result<()> {
    let tessera = app.admin()?;
    let codec = tessera.codec();
    let mut warnings = Warnings(Vec::new());
    let batch = batch(&data, &codec, &mut warnings);
    let tokens_in_sql = !app.config.redis.as_ref().is_some_and(|r| r.token_store == TokenStoreKind::Redis);
    let (mut report, resolved) = app.sql.import(&batch, update, dry_run, tokens_in_sql).await?;
    if !resolved.is_empty() {
        // Tokens live in Redis: stored there now that users and clients are committed.
        let mut outcomes = HashMap::new();
        for r in &resolved {
            let outcome = if app.store.token_by_digest(&r.token.digest).await?.is_some() {
                Outcome::AlreadyImported
            } else if app.store.token_for(r.user_id, r.client_id).await?.is_some() {
                Outcome::Skipped("the user already holds a Tessera token for this client".into())
            } else if dry_run {
                Outcome::Created
            } else {
                let new = NewToken {
                    user_id: r.user_id,
                    client_id: r.client_id,
                    digest: r.token.digest,
                    seed: TokenSeed::NONE,
                    key_id: r.token.key_id,
                    created: r.token.created,
                    expiry: r.token.expiry,
                    user_agent: None,
                    ip: None,
                };
                match app.store.create_token(new).await {
                    Ok(_) => Outcome::Created,
                    Err(StoreError::Conflict(_)) => {
                        Outcome::Skipped("the user already holds a Tessera token for this client".into())
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            outcomes.insert((r.token.username.to_string(), r.token.client.to_string()), outcome);
        }
        for (user, client, outcome) in &mut report.tokens {
            if let Some(o) = outcomes.remove(&(user.clone(), client.clone())) {
                *outcome = o;
            }
        }
    }
    let count = |rows: Vec<&Outcome>, o: Outcome| ImportReport::count(rows, &o);
    let users: Vec<&Outcome> = report.users.iter().map(|(_, o)| o).collect();
    let clients: Vec<&Outcome> = report.clients.iter().map(|(_, o)| o).collect();
    let tokens: Vec<&Outcome> = report.tokens.iter().map(|(_, _, o)| o).collect();
    let kind = EventKind::Imported {
        source: format!("durin {}", tessera_core::net::redact_url(from)),
        users_created: count(users.clone(), Outcome::Created),
        users_updated: count(users.clone(), Outcome::Updated),
        clients_created: count(clients.clone(), Outcome::Created),
        clients_updated: count(clients.clone(), Outcome::Updated),
        tokens: count(tokens.clone(), Outcome::Created),
    };
    print_report(&report, &warnings, dry_run)?;
    let EventKind::Imported { users_created, users_updated, clients_created, clients_updated, tokens: t, .. } = &kind
    else {
        return Err(anyhow!("unreachable: the event is an import"));
    };
    let summary = format!(
        "{} user(s) created, {users_updated} updated; {} client(s) created, {clients_updated} updated; {t} legacy \
         token(s) imported",
        users_created, clients_created
    );
    if dry_run {
        output::out!("dry run: {summary} — nothing was written")?;
    } else {
        output::out!("imported: {summary}")?;
        if users_created + users_updated + clients_created + clients_updated + t > 0 {
            tessera.record_import(kind, Revoker::Cli);
        }
    }
    Ok(())
}

/// The durin rows as Tessera rows; what cannot be imported as it is goes to `warnings`.
fn batch(data: &DurinData, codec: &TokenCodec, warnings: &mut Warnings) -> ImportBatch {
    let mut batch = ImportBatch::default();
    let mut usernames = HashMap::new();
    for u in &data.users {
        let Ok(username) = u.username.parse::<Username>() else {
            warnings.add(format!("user {:?}: not a valid username; skipped with their tokens", u.username));
            continue;
        };
        let password_hash = match DjangoHash::parse(&u.password) {
            Ok(_) => u.password.clone(),
            Err(DjangoHashError::Unusable) => must_reset_marker("unusable"),
            Err(e) => {
                warnings.add(format!(
                    "user {username}: {e}; imported without a password, so no login succeeds until an admin \
                     sets one (`tessera user set-password {username}`)"
                ));
                let algorithm = match &e {
                    DjangoHashError::Weak(a) | DjangoHashError::Unknown(a) => a.as_str(),
                    DjangoHashError::Malformed(a, _) | DjangoHashError::TooCostly(a, _) => a,
                    DjangoHashError::Unusable => "unusable",
                };
                must_reset_marker(algorithm)
            }
        };
        usernames.insert(u.id, username.clone());
        batch.users.push(ImportUser {
            username,
            password_hash,
            is_active: u.is_active,
            is_staff: u.is_staff,
            created: u.date_joined,
        });
    }
    let now = Utc::now();
    let mut client_names = HashMap::new();
    for c in &data.clients {
        let Ok(name) = c.name.parse::<ClientName>() else {
            warnings.add(format!("client {:?}: not a valid client name; skipped with its tokens", c.name));
            continue;
        };
        if c.token_ttl_micros <= 0 {
            warnings.add(format!("client {name}: a token_ttl of {} µs; skipped with its tokens", c.token_ttl_micros));
            continue;
        }
        if c.token_ttl_micros % 1_000_000 != 0 {
            warnings.add(format!("client {name}: token_ttl cut to whole seconds (Tessera keeps seconds)"));
        }
        let ttl = Ttl::After(TimeDelta::seconds((c.token_ttl_micros / 1_000_000).max(1)));
        let throttle_rate = match drf_rate(&c.throttle_rate) {
            Ok(rate) => rate,
            Err(e) => {
                warnings.add(format!("client {name}: throttle_rate {:?} ({e}); imported without one", c.throttle_rate));
                None
            }
        };
        client_names.insert(c.id, name.clone());
        batch
            .clients
            .push(ImportClient { client: NewClient { throttle_rate, ..NewClient::new(name, ttl) }, created: now });
    }
    for t in &data.tokens {
        let (Some(username), Some(client)) = (usernames.get(&t.user_id), client_names.get(&t.client_id)) else {
            continue;
        };
        // The plaintext goes no further than this digest.
        let Some(digest) = codec.legacy_digest(codec.current_key(), &t.token) else {
            warnings.add(format!(
                "token of {username} on {client}: not 64 lowercase hexadecimal characters (durin's format); skipped"
            ));
            continue;
        };
        batch.tokens.push(ImportToken {
            username: username.clone(),
            client: client.clone(),
            digest,
            key_id: codec.current_key(),
            created: t.created,
            expiry: Some(t.expiry),
        });
    }
    batch
}

/// A durin `throttle_rate` as DRF reads it (`N/period`, the period's first letter deciding, so
/// `100/hour` is `100/h`); blank is none (the default rate).
fn drf_rate(text: &str) -> Result<Option<Rate>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let (num, period) = text.split_once('/').ok_or("expected N/period")?;
    let first = period.trim().chars().next().ok_or("the period is missing")?;
    format!("{}/{first}", num.trim()).parse::<Rate>().map(Some).map_err(|e| e.to_string())
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Created => "imported".into(),
        Outcome::Updated => "updated".into(),
        Outcome::AlreadyImported => "already imported".into(),
        Outcome::Skipped(why) => format!("skipped: {why}"),
    }
}

fn print_report(report: &ImportReport, warnings: &Warnings, dry_run: bool) -> Result<()> {
    let would = if dry_run { "would be " } else { "" };
    for (name, outcome) in &report.users {
        output::out!("user {name}: {would}{}", describe(outcome))?;
    }
    for (name, outcome) in &report.clients {
        output::out!("client {name}: {would}{}", describe(outcome))?;
    }
    for (user, client, outcome) in &report.tokens {
        output::out!("token of {user} on {client}: {would}{}", describe(outcome))?;
    }
    for line in &warnings.0 {
        output::out!("warning: {line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::drf_rate;

    #[test]
    fn durin_rates_as_drf_reads_them() {
        assert_eq!(drf_rate(""), Ok(None));
        assert_eq!(drf_rate("100/h").map(|r| r.map(|r| r.to_string())), Ok(Some("100/h".into())));
        assert_eq!(drf_rate("5/minute").map(|r| r.map(|r| r.to_string())), Ok(Some("5/m".into())));
        assert!(drf_rate("often").is_err());
        assert!(drf_rate("5/year").is_err());
    }
}
