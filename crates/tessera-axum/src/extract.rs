//! Extractors: they read the layer's verdict and never authenticate themselves.

use crate::error::{AuthError, Rejection};
use crate::layer::AuthContext;
use crate::principal::Principal;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use std::ops::Deref;
use std::sync::Arc;

/// The request's user, client and token; rejects anonymous requests with 401.
///
/// ```
/// use tessera_axum::Authenticated;
/// async fn hello(auth: Authenticated) -> String {
///     format!("hello {} on {}", auth.user.username, auth.client.name)
/// }
/// ```
///
/// `Option<Authenticated>` serves anonymous and authenticated callers alike: `None` without
/// credentials, while a present but invalid token is still refused (401), as durin does:
///
/// ```
/// use tessera_axum::Authenticated;
/// async fn maybe(auth: Option<Authenticated>) -> String {
///     match auth {
///         Some(auth) => format!("hello {}", auth.user.username),
///         None => "hello stranger".into(),
///     }
/// }
/// ```
///
/// Every extractor reads the verdict of the authentication layer ([`Tessera::layer`](crate::Tessera::layer)),
/// which must wrap the route. Without it the request is answered 500 (`layer_missing`) and an
/// error is logged, so the mistake shows in the first test. A compile error that says
/// `Handler<_, _>` is not implemented usually means another argument is not an extractor; axum's
/// `#[debug_handler]` names it.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Principal>);

impl Deref for Authenticated {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

/// The request's principal when it has credentials, `None` when anonymous. Invalid credentials
/// are still rejected (401), as durin does: a wrong token is not the same as no token.
/// `Option<Authenticated>` is the same thing, as axum 0.8 users write it.
#[derive(Debug, Clone)]
pub struct MaybeAuthenticated(pub Option<Arc<Principal>>);

/// The client's address, as login records it (for events); `None` without the layer. Read here,
/// from the request the route receives, rather than by the layer for every request: only the
/// routes that emit events ask for it (they are Tessera's own, behind its layer, with nothing in
/// between that could change the peer address or `X-Forwarded-For`).
pub(crate) struct ClientAddr(pub(crate) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(ctx) = parts.extensions.get::<AuthContext>() else { return Ok(ClientAddr(None)) };
        let ip = crate::client_ip::client_ip(&parts.extensions, &parts.headers, &ctx.core.settings.trusted_proxies);
        Ok(ClientAddr(ip.map(|ip| ip.to_string())))
    }
}

pub(crate) fn context(parts: &Parts) -> Result<&AuthContext, Rejection> {
    parts.extensions.get::<AuthContext>().ok_or_else(Rejection::layer_missing)
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        let ctx = context(parts)?;
        match &ctx.outcome {
            Ok(Some(p)) => Ok(Authenticated(p.clone())),
            Ok(None) => Err(ctx.core.reject(AuthError::NotAuthenticated)),
            Err(e) => Err(ctx.core.reject(e.clone())),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MaybeAuthenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        let auth = <Authenticated as OptionalFromRequestParts<S>>::from_request_parts(parts, state).await?;
        Ok(MaybeAuthenticated(auth.map(|a| a.0)))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Rejection> {
        let ctx = context(parts)?;
        match &ctx.outcome {
            Ok(p) => Ok(p.clone().map(Authenticated)),
            Err(e) => Err(ctx.core.reject(e.clone())),
        }
    }
}
