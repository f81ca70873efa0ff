//! What every command opens: the configuration, the store (migrated), and on demand the token
//! codec with the server key.

use crate::config::{Config, ensure_dir};
use crate::key::{self, KeySource};
use anyhow::{Result, anyhow};
use std::sync::Arc;
use tessera_core::{Clock, SystemClock, TokenCodec};
use tessera_sql::SqlStore;

/// An opened Tessera: configuration and store.
#[derive(Debug, Clone)]
pub struct App {
    /// The configuration in force.
    pub config: Config,
    /// The store, migrated.
    pub store: SqlStore,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Whether this start created the database.
    pub created_database: bool,
}

impl App {
    /// Connects to the configured database (creating the data directory and the SQLite file when
    /// they are the defaults) and applies migrations.
    pub async fn open(config: Config) -> Result<App> {
        let mut created_database = false;
        if config.database_url.is_none() {
            ensure_dir(&config.data_dir)?;
            created_database = !config.sqlite_default_path().exists();
        }
        let url = config.database_url();
        let store = SqlStore::connect(&url).await.map_err(|e| anyhow!("{e}"))?;
        store.migrate().await.map_err(|e| anyhow!("cannot migrate the database: {e}"))?;
        Ok(App { config, store, clock: Arc::new(SystemClock), created_database })
    }

    /// The token codec, with the server key (generated into the data directory on first use).
    pub fn codec(&self) -> Result<(TokenCodec, KeySource)> {
        let (key, source) = key::load_or_create(&self.config)?;
        let settings = &self.config.settings;
        let codec = TokenCodec::new(key, &settings.token_prefix, settings.token_character_length)
            .map_err(|e| anyhow!("{e}"))?;
        Ok((codec, source))
    }
}
