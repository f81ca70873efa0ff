//! `refresh/`, `logout/`, `logoutall/` and the sessions API.

use super::{datetime_or_null, json_ok, no_content};
use crate::error::{AuthError, RouteError};
use crate::extract::{Authenticated, ClientAddr};
use crate::state::Core;
use crate::tokens::Revocation;
use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;
use tessera_core::store::TokenFilter;
use tessera_core::{AuthToken, Client, EventKind, Revoker, TokenId, expires_in_str};

/// `POST refresh/`: expiry = now + the client's TTL (capped by its max lifetime); same token.
pub(crate) async fn refresh(
    State(core): State<Arc<Core>>,
    auth: Authenticated,
    ClientAddr(ip): ClientAddr,
) -> Result<Response, RouteError> {
    let now = core.now();
    let token = &auth.token;
    let new_expiry = auth.client.expiry_from(now, token.created);
    if !core.store.extend_expiry(token.id, new_expiry, now).await? {
        // Deleted or expired since the request was authenticated.
        return Err(AuthError::InvalidToken.into());
    }
    core.forget(token);
    core.emit(
        EventKind::TokenRenewed { token_id: token.id, new_expiry },
        Some((&auth.user, auth.client.name.as_str())),
        ip,
    );
    Ok(json_ok(json!({ "expiry": datetime_or_null(new_expiry, |d| core.settings.format_expiry(d)) })))
}

/// `POST logout/`: deletes only the presented token.
pub(crate) async fn logout(
    State(core): State<Arc<Core>>,
    auth: Authenticated,
    ClientAddr(ip): ClientAddr,
) -> Result<Response, RouteError> {
    core.revoke(&auth.token, Revocation::Logout, Some((&auth.user, auth.client.name.as_str())), ip).await?;
    Ok(no_content())
}

/// `POST logoutall/`: deletes every token of the user.
pub(crate) async fn logout_all(
    State(core): State<Arc<Core>>,
    auth: Authenticated,
    ClientAddr(ip): ClientAddr,
) -> Result<Response, RouteError> {
    core.logout_all(&auth.user, auth.client.name.as_str(), ip).await?;
    Ok(no_content())
}

/// `GET sessions/`: the user's tokens.
pub(crate) async fn list(State(core): State<Arc<Core>>, auth: Authenticated) -> Result<Response, RouteError> {
    let tokens = core
        .store
        .list_tokens(TokenFilter { user: Some(auth.user.id), client: None, key: None, legacy: false })
        .await?;
    let clients = core.store.list_clients().await?;
    let api_access = core.settings.api_access_client_name.as_ref();
    let now = core.now();
    let items: Vec<Value> = tokens
        .iter()
        .filter_map(|t| {
            let client = clients.iter().find(|c| c.id == t.client_id)?;
            if core.settings.api_access_exclude_from_sessions && api_access == Some(&client.name) {
                return None;
            }
            let mut item = describe_token(&core, t, client, now);
            item["id"] = json!(t.id.0);
            item["is_current"] = json!(t.id == auth.token.id);
            item["last_used"] = datetime_or_null(t.last_used, |d| core.settings.format_datetime(d));
            item["user_agent"] = json!(t.user_agent);
            item["ip"] = json!(t.ip);
            Some(item)
        })
        .collect();
    Ok(json_ok(Value::Array(items)))
}

/// The fields sessions and API access share.
pub(crate) fn describe_token(
    core: &Core,
    token: &AuthToken,
    client: &Client,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    json!({
        "client": client.name.as_str(),
        "created": core.settings.format_datetime(token.created),
        "expiry": datetime_or_null(token.expiry, |d| core.settings.format_datetime(d)),
        "has_expired": token.has_expired(now),
        // durin: `humanize.naturaldelta(expiry - created)`, the total lifetime, not the time left.
        "expires_in_str": token.lifetime().map(expires_in_str).unwrap_or_else(|| "never".into()),
    })
}

/// `DELETE sessions/<id>`: revokes another of the user's tokens.
pub(crate) async fn delete(
    State(core): State<Arc<Core>>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
    OriginalUri(uri): OriginalUri,
    ClientAddr(ip): ClientAddr,
) -> Result<Response, RouteError> {
    // An id that is not even UTF-8 (`%FF`) is as much "not an integer" as `abc`.
    let id = id.ok().and_then(|Path(id)| id.parse::<i64>().ok()).ok_or(AuthError::NotFound)?;
    let token = match core.store.token_by_id(TokenId(id)).await? {
        Some(token) if token.user_id == auth.user.id => token,
        _ => return Err(AuthError::NotFound.into()),
    };
    if token.id == auth.token.id {
        let path = uri.path();
        let prefix = path.find("/sessions").map(|i| &path[..=i]).unwrap_or("/");
        return Err(AuthError::CurrentToken { logout_path: format!("{prefix}logout/") }.into());
    }
    let who = Some((&auth.user, auth.client.name.as_str()));
    if !core.revoke(&token, Revocation::Revoked(Revoker::User), who, ip).await? {
        return Err(AuthError::NotFound.into());
    }
    Ok(no_content())
}
