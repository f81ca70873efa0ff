//! `refresh/`, `logout/`, `logoutall/` and the sessions API.

use super::{datetime_or_null, json_ok, no_content};
use crate::authn::{Core, unavailable};
use crate::error::{AuthError, detail, json_response};
use crate::extract::{Authenticated, ClientAddr};
use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use tessera_core::store::{StoreError, TokenFilter};
use tessera_core::{AuthToken, Client, EventKind, Revoker, TokenId, expires_in_str};

fn store_error(core: &Core, e: StoreError) -> Response {
    core.reject(unavailable(e)).into_response()
}

/// `POST refresh/`: expiry = now + the client's TTL (capped by its max lifetime); same token.
pub(crate) async fn refresh(
    State(core): State<Arc<Core>>,
    auth: Authenticated,
    ClientAddr(ip): ClientAddr,
) -> Response {
    let now = core.now();
    let token = &auth.token;
    let new_expiry = auth.client.expiry_from(now, token.created);
    match core.store.extend_expiry(token.id, new_expiry, now).await {
        Ok(true) => {}
        // Deleted or expired since the request was authenticated.
        Ok(false) => return core.reject(AuthError::InvalidToken).into_response(),
        Err(e) => return store_error(&core, e),
    }
    core.forget(token);
    core.emit(
        EventKind::TokenRenewed { token_id: token.id, new_expiry },
        Some((&auth.user, auth.client.name.as_str())),
        ip,
    );
    json_ok(json!({ "expiry": datetime_or_null(new_expiry, |d| core.settings.format_expiry(d)) }))
}

/// `POST logout/`: deletes only the presented token.
pub(crate) async fn logout(State(core): State<Arc<Core>>, auth: Authenticated, ClientAddr(ip): ClientAddr) -> Response {
    if let Err(e) = core.store.delete_token(auth.token.id).await {
        return store_error(&core, e);
    }
    core.forget(&auth.token);
    core.emit(EventKind::UserLoggedOut, Some((&auth.user, auth.client.name.as_str())), ip);
    no_content()
}

/// `POST logoutall/`: deletes every token of the user.
pub(crate) async fn logout_all(
    State(core): State<Arc<Core>>,
    auth: Authenticated,
    ClientAddr(ip): ClientAddr,
) -> Response {
    let deleted = match core.store.delete_tokens(TokenFilter { user: Some(auth.user.id), client: None }).await {
        Ok(deleted) => deleted,
        Err(e) => return store_error(&core, e),
    };
    for token in &deleted {
        core.forget(token);
    }
    core.emit(EventKind::LogoutAll { tokens: deleted.len() as u64 }, Some((&auth.user, auth.client.name.as_str())), ip);
    no_content()
}

/// `GET sessions/`: the user's tokens.
pub(crate) async fn list(State(core): State<Arc<Core>>, auth: Authenticated) -> Response {
    let tokens = match core.store.list_tokens(TokenFilter { user: Some(auth.user.id), client: None }).await {
        Ok(tokens) => tokens,
        Err(e) => return store_error(&core, e),
    };
    let clients = match core.store.list_clients().await {
        Ok(clients) => clients,
        Err(e) => return store_error(&core, e),
    };
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
    json_ok(Value::Array(items))
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
) -> Response {
    let not_found = || detail(StatusCode::NOT_FOUND, "Not found.");
    // An id that is not even UTF-8 (`%FF`) is as much "not an integer" as `abc`.
    let Some(id) = id.ok().and_then(|Path(id)| id.parse::<i64>().ok()) else { return not_found() };
    let token = match core.store.token_by_id(TokenId(id)).await {
        Ok(Some(token)) if token.user_id == auth.user.id => token,
        Ok(_) => return not_found(),
        Err(e) => return store_error(&core, e),
    };
    if token.id == auth.token.id {
        let path = uri.path();
        let prefix = path.find("/sessions").map(|i| &path[..=i]).unwrap_or("/");
        let msg = format!("Can't delete token if the request is authed with it. Use {prefix}logout/ instead.");
        return json_response(StatusCode::BAD_REQUEST, json!([msg]));
    }
    match core.store.delete_token(token.id).await {
        Ok(true) => {}
        Ok(false) => return not_found(),
        Err(e) => return store_error(&core, e),
    }
    core.forget(&token);
    core.emit(
        EventKind::TokenRevoked { token_id: token.id, by: Revoker::User },
        Some((&auth.user, auth.client.name.as_str())),
        ip,
    );
    no_content()
}
