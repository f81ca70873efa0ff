//! The staff session cookie. Its value is a Tessera token of the reserved staff client, so the
//! session lives in the store (as a digest): it survives restarts, works on every instance, and a
//! revocation anywhere ends it at once (the admin reads sessions from the store, never a cache).

use crate::{AdminState, State};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;
use tessera_axum::{AuthError, Principal};

/// The signed-in staff member, put in the request's extensions by [`require_staff`].
#[derive(Debug, Clone)]
pub(crate) struct Staff(pub(crate) Arc<Principal>);

impl Staff {
    /// The staff member's username, shown in the header.
    pub(crate) fn name(&self) -> &str {
        self.0.user.username.as_str()
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Only routes behind `require_staff` use this extractor; a route without it is a bug,
        // refused rather than served to nobody in particular.
        parts.extensions.get::<Staff>().cloned().ok_or_else(|| axum::http::StatusCode::FORBIDDEN.into_response())
    }
}

/// The cookie's name: `__Host-` makes browsers refuse it unless it is `Secure`, `Path=/` and
/// without `Domain`, so a sibling subdomain cannot plant or shadow it.
pub(crate) fn cookie_name(state: &AdminState) -> &'static str {
    if state.config.secure_cookie { "__Host-tessera_admin" } else { "tessera_admin" }
}

/// The `Set-Cookie` value for a new session.
pub(crate) fn set_cookie(state: &AdminState, token: &str) -> HeaderValue {
    let secure = if state.config.secure_cookie { "; Secure" } else { "" };
    let text = format!("{}={token}; Path=/; HttpOnly; SameSite=Strict{secure}", cookie_name(state));
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie(state: &AdminState) -> HeaderValue {
    let secure = if state.config.secure_cookie { "; Secure" } else { "" };
    let text = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}", cookie_name(state));
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session token from the request's cookies (the first cookie of that name).
pub(crate) fn session_token<'a>(state: &AdminState, headers: &'a HeaderMap) -> Option<&'a str> {
    let name = cookie_name(state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The client's address, when the server recorded it: behind a trusted proxy, the address it
/// forwarded for (`trusted_proxies`, the rule of the API and forward-auth).
pub(crate) fn peer_ip(state: &crate::AdminState, req: &Request) -> Option<std::net::IpAddr> {
    state.tessera.client_ip(req.extensions(), req.headers())
}

/// Lets a request through only with a live staff session; otherwise to the login page (and the
/// stale cookie is dropped).
pub(crate) async fn require_staff(axum::extract::State(state): State, mut req: Request, next: Next) -> Response {
    let ip = peer_ip(&state, &req);
    let found = match session_token(&state, req.headers()) {
        Some(token) => Some(state.tessera.staff_session(token, ip).await),
        None => None,
    };
    match found {
        Some(Ok(principal)) => {
            let name = principal.user.username.to_string();
            req.extensions_mut().insert(Staff(principal));
            // Events of this request name the staff member as the actor, and their address.
            tessera_axum::acting_as_staff(&name, ip, next.run(req)).await
        }
        Some(Err(AuthError::Unavailable)) => crate::view::error_page(
            &state,
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "The store is unavailable; try again shortly.",
        ),
        other => {
            let mut response = Redirect::to(&format!("{}/login", state.config.base)).into_response();
            if other.is_some() {
                response.headers_mut().insert(header::SET_COOKIE, clear_cookie(&state));
            }
            response
        }
    }
}
