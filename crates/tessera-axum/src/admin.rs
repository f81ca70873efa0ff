//! Admin changes to users and clients: the one path the CLI (and the admin UI) takes to create,
//! activate, deactivate or delete a user and to create, change or delete a client, so that each
//! change emits its event (with who made it) to the hooks and the audit log.

use crate::state::Core;
use crate::tessera::Tessera;
use tessera_core::store::{ClientUpdate, StoreError, TokenFilter};
use tessera_core::{AuthToken, Client, Event, EventKind, NewClient, NewUser, Revoker, User};

impl Core {
    /// An event about `user` (no client), by `by`.
    pub(crate) fn user_event(&self, kind: EventKind, user: &User, by: Revoker) -> Event {
        Event { user_id: Some(user.id), username: Some(user.username.to_string()), ..self.admin_event(kind, by) }
    }

    /// An event about the client named `client`, by `by`.
    pub(crate) fn client_event(&self, kind: EventKind, client: &Client, by: Revoker) -> Event {
        Event { client: Some(client.name.to_string()), ..self.admin_event(kind, by) }
    }

    fn admin_event(&self, kind: EventKind, by: Revoker) -> Event {
        Event { actor: by.into(), ..Event::new(kind, self.now()) }
    }
}

/// The staff-session client is the admin UI's own (`crate::staff`): no admin path creates it,
/// renames a client into it or changes it.
fn refuse_reserved(name: &tessera_core::ClientName) -> Result<(), StoreError> {
    if crate::staff::is_staff_client(name) {
        return Err(StoreError::Conflict(format!("the client name '{name}' is reserved for the admin UI's sessions")));
    }
    Ok(())
}

/// Names of the fields an update changes, in a fixed order.
fn changed_fields(before: &Client, after: &Client) -> Vec<String> {
    let fields = [
        ("name", before.name != after.name),
        ("token_ttl", before.token_ttl != after.token_ttl),
        ("throttle_rate", before.throttle_rate != after.throttle_rate),
        ("sliding_expiry", before.sliding_expiry != after.sliding_expiry),
        ("max_lifetime", before.max_lifetime != after.max_lifetime),
        ("description", before.description != after.description),
        ("devices", before.devices != after.devices),
    ];
    fields.into_iter().filter(|(_, changed)| *changed).map(|(name, _)| name.to_string()).collect()
}

impl Tessera {
    /// Records a bulk import made at the store level in one transaction (`Imported`): one event
    /// for the import, by `by`. (`tessera import durin` writes users, clients and tokens in one
    /// transaction so that an error leaves nothing half-imported; the per-row paths here could
    /// not, so the import's rows do not get a `UserCreated` or `ClientCreated` each.)
    pub fn record_import(&self, kind: EventKind, by: Revoker) {
        self.core.publish(self.core.admin_event(kind, by));
    }

    /// Creates a user (`UserCreated`).
    pub async fn create_user(&self, new: NewUser, by: Revoker) -> Result<User, StoreError> {
        let staff = new.is_staff;
        let user = self.core.store.create_user(new).await?;
        self.core.publish(self.core.user_event(EventKind::UserCreated { staff }, &user, by));
        Ok(user)
    }

    /// Activates or deactivates a user (`UserActivated` / `UserDeactivated`). A deactivated
    /// user's tokens stop working on every instance within a second.
    pub async fn set_user_active(&self, user: &User, active: bool, by: Revoker) -> Result<(), StoreError> {
        self.core.store.set_active(user.id, active).await?;
        let kind = if active { EventKind::UserActivated } else { EventKind::UserDeactivated };
        self.core.publish(self.core.user_event(kind, user, by));
        Ok(())
    }

    /// Deletes a user with their tokens (`UserDeleted`); returns how many tokens went with them.
    pub async fn delete_user(&self, user: &User, by: Revoker) -> Result<u64, StoreError> {
        let tokens = self.core.store.list_tokens(TokenFilter { user: Some(user.id), ..TokenFilter::default() }).await?;
        self.core.store.delete_user(user.id).await?;
        for token in &tokens {
            self.core.forget(token);
        }
        let kind = EventKind::UserDeleted { tokens: tokens.len() as u64 };
        self.core.publish(self.core.user_event(kind, user, by));
        Ok(tokens.len() as u64)
    }

    /// Creates an API client (`ClientCreated`).
    pub async fn create_client(&self, new: NewClient, by: Revoker) -> Result<Client, StoreError> {
        refuse_reserved(&new.name)?;
        let client = self.core.store.create_client(new).await?;
        self.core.publish(self.core.client_event(EventKind::ClientCreated, &client, by));
        Ok(client)
    }

    /// Changes an API client (`ClientChanged`, naming the fields that changed); returns it as
    /// stored, with the tokens the change revoked. When its device policy goes from `many` to
    /// `one`, each user keeps their most recently used token there (it becomes the pair's token)
    /// and the others are revoked, with a `TokenRevoked { by }` event each; from `one` to `many`
    /// the existing tokens stay.
    pub async fn update_client(
        &self,
        client: &Client,
        update: ClientUpdate,
        by: Revoker,
    ) -> Result<(Client, Vec<AuthToken>), StoreError> {
        refuse_reserved(&client.name)?;
        if let Some(name) = &update.name {
            refuse_reserved(name)?;
        }
        let (updated, revoked) = self.core.update_client(client, update, by).await?;
        let renamed_from = (updated.name != client.name).then(|| client.name.to_string());
        let kind = EventKind::ClientChanged { fields: changed_fields(client, &updated), renamed_from };
        self.core.publish(self.core.client_event(kind, &updated, by));
        Ok((updated, revoked))
    }

    /// Deletes an API client with its tokens (`ClientDeleted`); returns how many tokens went with it.
    pub async fn delete_client(&self, client: &Client, by: Revoker) -> Result<u64, StoreError> {
        let tokens = self.core.store.delete_client(client.id).await?;
        self.core.publish(self.core.client_event(EventKind::ClientDeleted { tokens }, client, by));
        Ok(tokens)
    }

    /// Records a change to the server keys (`KeyRotated`, `KeyRetired`), which happens in the key
    /// file or the configuration, outside any store: the hooks and the audit log hear it here.
    pub fn key_changed(&self, kind: EventKind, by: Revoker) {
        self.core.publish(self.core.admin_event(kind, by));
    }
}
