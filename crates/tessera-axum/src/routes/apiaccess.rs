//! `apiaccess/`: one long-lived API key per user, the user's token for the API-access client.

use super::sessions::describe_token;
use super::{json_ok, no_content};
use crate::authn::{Core, unavailable};
use crate::error::{detail, json_response};
use crate::extract::{Authenticated, ClientAddr};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use tessera_core::store::StoreError;
use tessera_core::{Client, EventKind, NewClient, NewToken, Revoker};

const ALREADY_ISSUED: &str = "An API token was already issued to you.";

fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Not found.")
}

fn store_error(core: &Core, e: StoreError) -> Response {
    core.reject(unavailable(e)).into_response()
}

/// The API-access client: `None` when none is configured. Created if it is missing.
pub(crate) async fn api_access_client(core: &Core) -> Result<Option<Client>, StoreError> {
    let Some(name) = &core.settings.api_access_client_name else { return Ok(None) };
    if let Some(client) = core.store.client_by_name(name).await? {
        return Ok(Some(client));
    }
    match core.store.create_client(NewClient::new(name.clone(), core.settings.default_token_ttl)).await {
        Ok(client) => Ok(Some(client)),
        Err(StoreError::Conflict(_)) => core.store.client_by_name(name).await,
        Err(e) => Err(e),
    }
}

async fn client_or_404(core: &Core) -> Result<Client, Response> {
    match api_access_client(core).await {
        Ok(Some(client)) => Ok(client),
        Ok(None) => Err(not_found()),
        Err(e) => Err(store_error(core, e)),
    }
}

/// The API-access client and the user's key for it, or the 404/503 to answer instead.
async fn api_key(core: &Core, user: tessera_core::UserId) -> Result<(Client, tessera_core::AuthToken), Response> {
    let client = client_or_404(core).await?;
    match core.store.token_for(user, client.id).await {
        Ok(Some(token)) => Ok((client, token)),
        Ok(None) => Err(not_found()),
        Err(e) => Err(store_error(core, e)),
    }
}

/// `GET apiaccess/`.
pub(crate) async fn get(State(core): State<Arc<Core>>, auth: Authenticated) -> Response {
    let (client, token) = match api_key(&core, auth.user.id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let mut body = describe_token(&core, &token, &client, core.now());
    if core.settings.api_access_response_include_token {
        body["token"] = Value::String(core.codec.derive(&token.seed).expose().to_string());
    }
    json_ok(body)
}

/// `POST apiaccess/`: issues the API key; 400 when there is one. Concurrent POSTs create one.
pub(crate) async fn post(State(core): State<Arc<Core>>, auth: Authenticated, ClientAddr(ip): ClientAddr) -> Response {
    let client = match client_or_404(&core).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let now = core.now();
    let already = || json_response(StatusCode::BAD_REQUEST, json!([ALREADY_ISSUED]));
    match core.store.token_for(auth.user.id, client.id).await {
        Ok(Some(existing)) if existing.has_expired(now) => {
            // A dead key is replaced rather than blocking the user forever.
            if let Err(e) = core.store.delete_token(existing.id).await {
                return store_error(&core, e);
            }
            core.forget(&existing);
        }
        Ok(Some(_)) => return already(),
        Ok(None) => {}
        Err(e) => return store_error(&core, e),
    }
    let issued = core.codec.issue();
    let new = NewToken::issued(&issued, auth.user.id, &client, now);
    let token = match core.store.create_token(new).await {
        Ok(token) => token,
        Err(StoreError::Conflict(_)) => return already(),
        Err(e) => return store_error(&core, e),
    };
    core.emit(EventKind::TokenCreated { token_id: token.id }, Some((&auth.user, client.name.as_str())), ip);
    let mut body = describe_token(&core, &token, &client, now);
    body["token"] = Value::String(issued.token.expose().to_string());
    json_response(StatusCode::CREATED, body)
}

/// `DELETE apiaccess/`.
pub(crate) async fn delete(State(core): State<Arc<Core>>, auth: Authenticated, ClientAddr(ip): ClientAddr) -> Response {
    let (client, token) = match api_key(&core, auth.user.id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match core.store.delete_token(token.id).await {
        Ok(true) => {}
        Ok(false) => return not_found(),
        Err(e) => return store_error(&core, e),
    }
    core.forget(&token);
    core.emit(
        EventKind::TokenRevoked { token_id: token.id, by: Revoker::User },
        Some((&auth.user, client.name.as_str())),
        ip,
    );
    no_content()
}
