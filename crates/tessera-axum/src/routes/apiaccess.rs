//! `apiaccess/`: one long-lived API key per user, the user's token for the API-access client.

use super::json_ok;
use super::no_content;
use super::sessions::describe_token;
use crate::error::{AuthError, RouteError, json_response};
use crate::extract::{Authenticated, ClientAddr};
use crate::state::Core;
use crate::tokens::{IfPairHasToken, PairTokenError, Revocation, TokenRequest};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;
use tessera_core::store::StoreError;
use tessera_core::{AuthToken, Client, Devices, NewClient, Revoker, UserId};

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

/// The API-access client, always with `devices = one` whatever is stored (one key per user);
/// 404 when there is none.
async fn client_or_404(core: &Core) -> Result<Client, RouteError> {
    let client = api_access_client(core).await?.ok_or(AuthError::NotFound)?;
    Ok(Client { devices: Devices::One, ..client })
}

/// The API-access client and the user's key for it; 404 when there is none.
async fn api_key(core: &Core, user: UserId) -> Result<(Client, AuthToken), RouteError> {
    let client = client_or_404(core).await?;
    let token = core.store.token_for(user, client.id).await?.ok_or(AuthError::NotFound)?;
    Ok((client, token))
}

/// `GET apiaccess/`.
pub(crate) async fn get(State(core): State<Arc<Core>>, auth: Authenticated) -> Result<Response, RouteError> {
    let (client, token) = api_key(&core, auth.user.id).await?;
    let mut body = describe_token(&core, &token, &client, core.now());
    if core.settings.api_access_response_include_token {
        // A key retired from the ring leaves nothing to hand back (and the token no longer works).
        body["token"] = match core.codec().rederive(token.key_id, &token.seed, &token.digest) {
            Some(secret) => Value::String(secret.expose().to_string()),
            None => Value::Null,
        };
    }
    Ok(json_ok(body))
}

/// `POST apiaccess/`: issues the API key; 400 when there is a live one (a dead one is replaced
/// rather than blocking the user forever). Concurrent POSTs create one.
pub(crate) async fn post(
    State(core): State<Arc<Core>>,
    auth: Authenticated,
    ClientAddr(ip): ClientAddr,
) -> Result<Response, RouteError> {
    let client = client_or_404(&core).await?;
    let request = TokenRequest::new(&auth.user, &client)
        .if_exists(IfPairHasToken::Refuse)
        .device(None, ip)
        .by(Revoker::User)
        .source("apiaccess");
    let pair = match core.token_for_pair(request).await {
        Ok(pair) => pair,
        Err(PairTokenError::Exists(_)) => return Err(AuthError::ApiKeyExists.into()),
        Err(PairTokenError::Store(e)) => return Err(e.into()),
        // `client_or_404` makes the client `one`: there is no device limit.
        Err(PairTokenError::DeviceLimit { .. }) => return Err(AuthError::ApiKeyExists.into()),
    };
    let mut body = describe_token(&core, &pair.token, &client, core.now());
    body["token"] = Value::String(pair.secret.expose().to_string());
    Ok(json_response(StatusCode::CREATED, body))
}

/// `DELETE apiaccess/`.
pub(crate) async fn delete(
    State(core): State<Arc<Core>>,
    auth: Authenticated,
    ClientAddr(ip): ClientAddr,
) -> Result<Response, RouteError> {
    let (client, token) = api_key(&core, auth.user.id).await?;
    let who = Some((&auth.user, client.name.as_str()));
    if !core.revoke(&token, Revocation::Revoked(Revoker::User), who, ip).await? {
        return Err(AuthError::NotFound.into());
    }
    Ok(no_content())
}
