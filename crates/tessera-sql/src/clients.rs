//! [`ClientStore`] on SQL.

use crate::SqlStore;
use crate::error::{conflict_or, from_sqlx, insert_failed, no_such};
use crate::rows::{self, cap_secs, client_columns, devices_columns, micros, ttl_secs};
use async_trait::async_trait;
use chrono::Utc;
use tessera_core::store::{ClientStore, ClientUpdate, StoreError};
use tessera_core::{Client, ClientId, ClientName, NewClient};

const INSERT: &str = concat!(
    "INSERT INTO clients (id, name, token_ttl_secs, throttle_rate, sliding_expiry, max_lifetime_secs, description, \
     created, devices, max_devices, on_device_limit) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
    client_columns!()
);
const BY_ID: &str = concat!("SELECT ", client_columns!(), " FROM clients WHERE id = $1");
const BY_NAME: &str = concat!("SELECT ", client_columns!(), " FROM clients WHERE name = $1");
const ALL: &str = concat!("SELECT ", client_columns!(), " FROM clients ORDER BY name");
/// One statement, so the update is atomic without a transaction: each field is either kept or
/// replaced; for the nullable ones a flag says whether to replace (possibly with NULL).
const UPDATE: &str = concat!(
    "UPDATE clients SET \
       name = COALESCE($2, name), \
       token_ttl_secs = CASE WHEN $3 THEN $4 ELSE token_ttl_secs END, \
       throttle_rate = CASE WHEN $5 THEN $6 ELSE throttle_rate END, \
       sliding_expiry = COALESCE($7, sliding_expiry), \
       max_lifetime_secs = CASE WHEN $8 THEN $9 ELSE max_lifetime_secs END, \
       description = COALESCE($10, description), \
       devices = COALESCE($11, devices), \
       max_devices = COALESCE($12, max_devices), \
       on_device_limit = COALESCE($13, on_device_limit) \
     WHERE id = $1 RETURNING ",
    client_columns!()
);
const DELETE_TOKENS: &str = "DELETE FROM auth_tokens WHERE client_id = $1";
const DELETE: &str = "DELETE FROM clients WHERE id = $1";

#[async_trait]
impl ClientStore for SqlStore {
    async fn create_client(&self, client: NewClient) -> Result<Client, StoreError> {
        // NewClient carries no creation time, so the store stamps it.
        let created = micros(Utc::now());
        let devices = devices_columns(client.devices);
        with_fresh_id!(|id| {
            with_writer!(self, |pool| {
                let row = sqlx::query(INSERT)
                    .bind(id)
                    .bind(client.name.as_str())
                    .bind(ttl_secs(client.token_ttl))
                    .bind(client.throttle_rate.map(|r| r.to_string()))
                    .bind(client.sliding_expiry)
                    .bind(cap_secs(client.max_lifetime))
                    .bind(&client.description)
                    .bind(created)
                    .bind(devices.0)
                    .bind(devices.1)
                    .bind(devices.2)
                    .fetch_one(pool)
                    .await
                    .map_err(|e| {
                        insert_failed(e, |e| {
                            conflict_or(e, || format!("a client named '{}' already exists", client.name))
                        })
                    })?;
                rows::client(&row, 0)
            })
        })
    }

    async fn client_by_id(&self, id: ClientId) -> Result<Option<Client>, StoreError> {
        with_reader!(self, |pool| {
            rows::maybe(sqlx::query(BY_ID).bind(id.0).fetch_optional(pool).await.map_err(from_sqlx)?, rows::client)
        })
    }

    async fn client_by_name(&self, name: &ClientName) -> Result<Option<Client>, StoreError> {
        // A parsed name holds no control characters, so never the NUL that PostgreSQL refuses.
        with_reader!(self, |pool| {
            rows::maybe(
                sqlx::query(BY_NAME).bind(name.as_str()).fetch_optional(pool).await.map_err(from_sqlx)?,
                rows::client,
            )
        })
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        with_reader!(self, |pool| {
            rows::all(&sqlx::query(ALL).fetch_all(pool).await.map_err(from_sqlx)?, rows::client)
        })
    }

    async fn update_client(&self, id: ClientId, update: ClientUpdate) -> Result<Client, StoreError> {
        let devices = update.devices.map(devices_columns);
        let row = with_writer!(self, |pool| {
            let row = sqlx::query(UPDATE)
                .bind(id.0)
                .bind(update.name.as_ref().map(|n| n.as_str()))
                .bind(update.token_ttl.is_some())
                .bind(update.token_ttl.and_then(ttl_secs))
                .bind(update.throttle_rate.is_some())
                .bind(update.throttle_rate.flatten().map(|r| r.to_string()))
                .bind(update.sliding_expiry)
                .bind(update.max_lifetime.is_some())
                .bind(update.max_lifetime.and_then(cap_secs))
                .bind(update.description.as_deref())
                .bind(devices.map(|d| d.0))
                .bind(devices.map(|d| d.1))
                .bind(devices.map(|d| d.2))
                .fetch_optional(pool)
                .await
                .map_err(|e| {
                    conflict_or(e, || {
                        let name = update.name.as_ref().map(|n| n.as_str()).unwrap_or_default();
                        format!("a client named '{name}' already exists")
                    })
                })?;
            rows::maybe(row, rows::client)?
        });
        row.ok_or_else(|| no_such("client", id.0))
    }

    async fn delete_client(&self, id: ClientId) -> Result<u64, StoreError> {
        // The tokens are deleted explicitly (not only by ON DELETE CASCADE) to count them.
        in_write_transaction!(self, |tx| {
            async {
                let tokens = sqlx::query(DELETE_TOKENS).bind(id.0).execute(&mut *tx).await.map_err(from_sqlx)?;
                let clients = sqlx::query(DELETE).bind(id.0).execute(&mut *tx).await.map_err(from_sqlx)?;
                if clients.rows_affected() == 0 {
                    return Err(no_such("client", id.0));
                }
                Ok(tokens.rows_affected())
            }
            .await
        })
    }
}
