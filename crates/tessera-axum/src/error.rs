//! durin's errors as typed rejections, and the one place a service changes how they look.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// Why authentication, a client permission or the throttle refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials on a route that needs them (401).
    NotAuthenticated,
    /// `Authorization: Token` with nothing after it (401).
    NoCredentials,
    /// `Authorization: Token a b` (401).
    TokenHasSpaces,
    /// Unknown, malformed, revoked or wrong-case token (401).
    InvalidToken,
    /// The token had expired; it has been deleted (401).
    ExpiredToken,
    /// The token's user is inactive (401).
    InactiveUser,
    /// Authenticated, but this client may not use this route (403).
    PermissionDenied,
    /// Over the (user, client) rate; retry after this many seconds (429).
    Throttled {
        /// Seconds until a request will be allowed.
        wait_secs: u64,
    },
    /// The store cannot be reached (503).
    Unavailable,
    /// An extractor ran on a route without Tessera's layer: a bug in the service's wiring (500).
    LayerMissing,
}

impl AuthError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::NotAuthenticated
            | AuthError::NoCredentials
            | AuthError::TokenHasSpaces
            | AuthError::InvalidToken
            | AuthError::ExpiredToken
            | AuthError::InactiveUser => StatusCode::UNAUTHORIZED,
            AuthError::PermissionDenied => StatusCode::FORBIDDEN,
            AuthError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::LayerMissing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// durin's `detail` text.
    pub fn detail(&self) -> String {
        match self {
            AuthError::NotAuthenticated => "Authentication credentials were not provided.".into(),
            AuthError::NoCredentials => "Invalid token header. No credentials provided.".into(),
            AuthError::TokenHasSpaces => "Invalid token header. Token string should not contain spaces.".into(),
            AuthError::InvalidToken => "Invalid token.".into(),
            AuthError::ExpiredToken => "The given token has expired.".into(),
            AuthError::InactiveUser => "User inactive or deleted.".into(),
            AuthError::PermissionDenied => "You do not have permission to perform this action.".into(),
            AuthError::Throttled { wait_secs } => {
                let unit = if *wait_secs == 1 { "second" } else { "seconds" };
                format!("Request was throttled. Expected available in {wait_secs} {unit}.")
            }
            AuthError::Unavailable => "Service unavailable.".into(),
            AuthError::LayerMissing => {
                "Server misconfiguration: Tessera's authentication layer is not installed on this route.".into()
            }
        }
    }
}

/// Turns an [`AuthError`] into a response. Replace it once with
/// [`TesseraBuilder::error_renderer`](crate::TesseraBuilder::error_renderer) to change every
/// rejection (for example to `application/problem+json`); the status, `WWW-Authenticate` and
/// `Retry-After` headers are set by Tessera around whatever the renderer returns.
pub trait ErrorRenderer: Send + Sync + 'static {
    /// The response for `error`.
    fn render(&self, error: &AuthError) -> Response;
}

/// durin's bodies: `{"detail": "..."}`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DurinErrors;

impl ErrorRenderer for DurinErrors {
    fn render(&self, error: &AuthError) -> Response {
        json_response(error.status(), json!({ "detail": error.detail() }))
    }
}

impl<F> ErrorRenderer for F
where
    F: Fn(&AuthError) -> Response + Send + Sync + 'static,
{
    fn render(&self, error: &AuthError) -> Response {
        self(error)
    }
}

/// What a refused request gets: the error, rendered by the configured renderer with the headers
/// the protocol requires.
#[derive(Clone)]
pub struct Rejection {
    error: AuthError,
    renderer: Arc<dyn ErrorRenderer>,
    www_authenticate: Arc<str>,
}

impl std::fmt::Debug for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejection").field("error", &self.error).finish_non_exhaustive()
    }
}

impl Rejection {
    pub(crate) fn new(error: AuthError, renderer: Arc<dyn ErrorRenderer>, www_authenticate: Arc<str>) -> Self {
        Self { error, renderer, www_authenticate }
    }

    /// A rejection for a route without the layer (no configuration to render with).
    pub(crate) fn layer_missing() -> Self {
        tracing::error!(
            "an extractor of Tessera ran on a route without Tessera's authentication layer; \
             add `tessera.layer()` (or `cached_layer()`) to the router"
        );
        Self::new(AuthError::LayerMissing, Arc::new(DurinErrors), Arc::from("Token"))
    }

    /// Why.
    pub fn error(&self) -> &AuthError {
        &self.error
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = self.renderer.render(&self.error);
        *response.status_mut() = self.error.status();
        let headers = response.headers_mut();
        if self.error.status() == StatusCode::UNAUTHORIZED
            && let Ok(value) = HeaderValue::from_str(&self.www_authenticate)
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let AuthError::Throttled { wait_secs } = self.error {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(wait_secs));
        }
        response
    }
}

/// A JSON response with `Content-Type: application/json`.
pub fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response()
}

/// `{"detail": text}` with `status`.
pub fn detail(status: StatusCode, text: impl Into<String>) -> Response {
    json_response(status, json!({ "detail": text.into() }))
}
