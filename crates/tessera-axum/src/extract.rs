//! Extractors: they read the layer's verdict and never authenticate themselves.

use crate::Principal;
use crate::error::{AuthError, Rejection};
use crate::layer::AuthContext;
use axum::extract::FromRequestParts;
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
#[derive(Debug, Clone)]
pub struct MaybeAuthenticated(pub Option<Arc<Principal>>);

/// The client's address as the layer found it (for events); `None` without the layer.
pub(crate) struct ClientAddr(pub(crate) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(parts.extensions.get::<AuthContext>().and_then(|c| c.ip).map(|ip| ip.to_string())))
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

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        let ctx = context(parts)?;
        match &ctx.outcome {
            Ok(p) => Ok(MaybeAuthenticated(p.clone())),
            Err(e) => Err(ctx.core.reject(e.clone())),
        }
    }
}
