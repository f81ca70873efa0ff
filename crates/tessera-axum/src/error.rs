//! Every error response the library makes, as one typed error, and the one place a service changes
//! how they look.
//!
//! [`AuthError`] names every refusal — authentication, client permissions, the throttle, and the
//! auth routes' own errors (bad input, unknown client, 404, 405, 413, 415, 503). Each has a status,
//! a stable [`code`](AuthError::code) and a human [`detail`](AuthError::detail). An
//! [`ErrorRenderer`] turns one into a response; the default, [`DurinErrors`], answers exactly what
//! durin answers; [`ProblemJson`] answers RFC 9457 `application/problem+json`. Tessera sets the
//! status and the protocol's headers (`WWW-Authenticate`, `Retry-After`, `Allow`) around whatever
//! the renderer returns, so a renderer only decides the body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::{Arc, OnceLock};
use tessera_core::store::StoreError;

/// Why a request was refused: by authentication, a client permission, the throttle, or one of the
/// auth routes. `Display` is the [`detail`](Self::detail) text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials on a route that needs them (401).
    #[error("Authentication credentials were not provided.")]
    NotAuthenticated,
    /// `Authorization: Token` with nothing after it (401).
    #[error("Invalid token header. No credentials provided.")]
    NoCredentials,
    /// `Authorization: Token a b` (401).
    #[error("Invalid token header. Token string should not contain spaces.")]
    TokenHasSpaces,
    /// More than one `Authorization` header: ambiguous (a proxy may have read another one), so
    /// refused whatever they hold (401).
    #[error("Invalid token header. Only one Authorization header is allowed.")]
    SeveralHeaders,
    /// Unknown, malformed, revoked or wrong-case token (401).
    #[error("Invalid token.")]
    InvalidToken,
    /// The token had expired; it has been deleted (401).
    #[error("The given token has expired.")]
    ExpiredToken,
    /// The token's user is inactive (401).
    #[error("User inactive or deleted.")]
    InactiveUser,
    /// Authenticated, but this client may not use this route (403).
    #[error("You do not have permission to perform this action.")]
    PermissionDenied,
    /// Forward-auth: no route rule covers the request and the configured default denies (403).
    #[error("No route rule lets this request through.")]
    RouteDenied,
    /// Forward-auth: the proxy's description of the original request is malformed, ambiguous
    /// (a repeated header, a path with more than one reading) or too large (400; 403 to nginx,
    /// which understands no other refusal).
    #[error("The forwarded request is malformed or ambiguous.")]
    BadForwardedRequest,
    /// Over the rate; retry after this many seconds (429).
    #[error("Request was throttled. Expected available in {wait_secs} {}.", if *wait_secs == 1 { "second" } else { "seconds" })]
    Throttled {
        /// Seconds until a request will be allowed.
        wait_secs: u64,
    },
    /// The store or the throttle cannot be reached (503).
    #[error("Service unavailable.")]
    Unavailable,
    /// An extractor or guard ran on a route without Tessera's layer: a bug in the service's
    /// wiring (500).
    #[error("Server misconfiguration: Tessera's authentication layer is not installed on this route.")]
    LayerMissing,
    /// Login with a wrong username or password, or an inactive user: one answer for all, so that
    /// no one learns which (400).
    #[error("Unable to log in with provided credentials.")]
    BadCredentials,
    /// The request's fields are invalid (400): a field is missing, blank or of the wrong type, or
    /// the body is not an object.
    #[error("{0}")]
    InvalidInput(FieldErrors),
    /// The body could not be parsed as its content type says (400).
    #[error("{0}")]
    MalformedBody(String),
    /// Login named no client (400).
    #[error("No client specified.")]
    NoClient,
    /// Login named a client that does not exist (400).
    #[error("No client with that name.")]
    UnknownClient,
    /// `DELETE sessions/<id>` of the token the request is authenticated with (400).
    #[error("Can't delete token if the request is authed with it. Use {logout_path} instead.")]
    CurrentToken {
        /// Where the caller should log out instead (`/api/auth/logout/`).
        logout_path: String,
    },
    /// `POST apiaccess/` when the user already has a live API key (400).
    #[error("An API token was already issued to you.")]
    ApiKeyExists,
    /// Login on a `devices = many` client with `on_device_limit = refuse` when the user already
    /// holds `max_devices` tokens there (400): log out on another device first.
    #[error(
        "You are logged in on {max_devices} devices with this client, the most it allows. Log out on one of them first."
    )]
    DeviceLimit {
        /// The client's limit.
        max_devices: u32,
    },
    /// No such resource (404).
    #[error("Not found.")]
    NotFound,
    /// The route does not accept this method (405).
    #[error("Method \"{method}\" not allowed.")]
    MethodNotAllowed {
        /// The method that was used.
        method: String,
        /// The methods the route accepts, for the `Allow` header.
        allow: &'static str,
    },
    /// The body is larger than the routes read (413).
    #[error("Request body is too large.")]
    BodyTooLarge,
    /// The body's content type is not JSON, a form or multipart (415). `None`: the header is not
    /// even text.
    #[error("{}", match .0 { Some(t) => format!("Unsupported media type \"{t}\" in request."), None => "Unsupported media type in request.".into() })]
    UnsupportedMediaType(Option<String>),
}

impl AuthError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::NotAuthenticated
            | AuthError::NoCredentials
            | AuthError::TokenHasSpaces
            | AuthError::SeveralHeaders
            | AuthError::InvalidToken
            | AuthError::ExpiredToken
            | AuthError::InactiveUser => StatusCode::UNAUTHORIZED,
            AuthError::PermissionDenied | AuthError::RouteDenied => StatusCode::FORBIDDEN,
            AuthError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::LayerMissing => StatusCode::INTERNAL_SERVER_ERROR,
            AuthError::BadCredentials
            | AuthError::BadForwardedRequest
            | AuthError::InvalidInput(_)
            | AuthError::MalformedBody(_)
            | AuthError::NoClient
            | AuthError::UnknownClient
            | AuthError::CurrentToken { .. }
            | AuthError::ApiKeyExists
            | AuthError::DeviceLimit { .. } => StatusCode::BAD_REQUEST,
            AuthError::NotFound => StatusCode::NOT_FOUND,
            AuthError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AuthError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AuthError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    /// A stable, machine-readable name for the error, part of the API: renderers put it in a
    /// problem's `type`, clients branch on it. It never changes for an existing variant.
    ///
    /// | code | status |
    /// |---|---|
    /// | `not_authenticated`, `no_credentials`, `token_has_spaces`, `several_authorization_headers`, `invalid_token`, `token_expired`, `user_inactive` | 401 |
    /// | `client_not_allowed`, `route_denied` | 403 |
    /// | `throttled` | 429 |
    /// | `unavailable` | 503 |
    /// | `layer_missing` | 500 |
    /// | `bad_credentials`, `bad_forwarded_request`, `invalid_input`, `malformed_body`, `client_required`, `unknown_client`, `current_token`, `api_key_exists` | 400 |
    /// | `not_found` | 404 |
    /// | `method_not_allowed` | 405 |
    /// | `body_too_large` | 413 |
    /// | `unsupported_media_type` | 415 |
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::NotAuthenticated => "not_authenticated",
            AuthError::NoCredentials => "no_credentials",
            AuthError::TokenHasSpaces => "token_has_spaces",
            AuthError::SeveralHeaders => "several_authorization_headers",
            AuthError::InvalidToken => "invalid_token",
            AuthError::ExpiredToken => "token_expired",
            AuthError::InactiveUser => "user_inactive",
            AuthError::PermissionDenied => "client_not_allowed",
            AuthError::RouteDenied => "route_denied",
            AuthError::BadForwardedRequest => "bad_forwarded_request",
            AuthError::Throttled { .. } => "throttled",
            AuthError::Unavailable => "unavailable",
            AuthError::LayerMissing => "layer_missing",
            AuthError::BadCredentials => "bad_credentials",
            AuthError::InvalidInput(_) => "invalid_input",
            AuthError::MalformedBody(_) => "malformed_body",
            AuthError::NoClient => "client_required",
            AuthError::UnknownClient => "unknown_client",
            AuthError::CurrentToken { .. } => "current_token",
            AuthError::ApiKeyExists => "api_key_exists",
            AuthError::DeviceLimit { .. } => "device_limit",
            AuthError::NotFound => "not_found",
            AuthError::MethodNotAllowed { .. } => "method_not_allowed",
            AuthError::BodyTooLarge => "body_too_large",
            AuthError::UnsupportedMediaType(_) => "unsupported_media_type",
        }
    }

    /// The human-readable explanation (durin's `detail` text where durin has one).
    pub fn detail(&self) -> String {
        self.to_string()
    }

    /// The body durin answers for this error: `{"detail": …}` for most, DRF's validation shapes
    /// (`{"non_field_errors": […]}`, `{"username": […]}`, `[…]`) for login's and the views' 400s.
    pub fn durin_body(&self) -> Value {
        match self {
            AuthError::BadCredentials | AuthError::DeviceLimit { .. } => {
                json!({ "non_field_errors": [self.detail()] })
            }
            AuthError::InvalidInput(fields) => fields.to_json(),
            AuthError::CurrentToken { .. } | AuthError::ApiKeyExists => json!([self.detail()]),
            _ => json!({ "detail": self.detail() }),
        }
    }

    /// The error for a store failure on the request path: logged here (the client learns only
    /// that the service is unavailable).
    pub(crate) fn from_store(e: StoreError) -> AuthError {
        tracing::error!(error = %e, "store error");
        AuthError::Unavailable
    }
}

/// DRF's validation errors: messages per field, in the order they were found. Errors that belong
/// to no field are under `non_field_errors`, as DRF names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    /// DRF's key for errors about the whole input.
    pub const NON_FIELD: &'static str = "non_field_errors";

    /// Adds a message for `field`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    /// One error about the whole input.
    pub fn non_field(message: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.add(Self::NON_FIELD, message);
        errors
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each (field, message), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(f, m)| (f.as_str(), m.as_str()))
    }

    /// DRF's shape: `{"field": ["message", …], …}`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for (field, message) in &self.0 {
            match out.entry(field.clone()).or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(list) => list.push(Value::String(message.clone())),
                other => *other = json!([message]),
            }
        }
        Value::Object(out)
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (field, message)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if field == Self::NON_FIELD {
                write!(f, "{message}")?;
            } else {
                write!(f, "{field}: {message}")?;
            }
        }
        Ok(())
    }
}

/// Turns an [`AuthError`] into a response. Set it once with
/// [`TesseraBuilder::error_renderer`](crate::TesseraBuilder::error_renderer) and every error the
/// library answers — the layer's, the guards', the extractors', and every auth route's — goes
/// through it. Tessera then sets the status, and `WWW-Authenticate` (401), `Retry-After` (429) and
/// `Allow` (405), around whatever the renderer returns.
///
/// A closure is a renderer; spell out its argument type:
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use tessera_axum::AuthError;
///
/// let renderer = |e: &AuthError| -> Response { format!("{}: {}", e.code(), e).into_response() };
/// # fn takes(_: impl tessera_axum::ErrorRenderer) {}
/// # takes(renderer);
/// ```
pub trait ErrorRenderer: Send + Sync + 'static {
    /// The response for `error`.
    fn render(&self, error: &AuthError) -> Response;
}

/// durin's bodies (the default): `{"detail": "..."}`, and DRF's validation shapes for 400s.
#[derive(Debug, Default, Clone, Copy)]
pub struct DurinErrors;

impl ErrorRenderer for DurinErrors {
    fn render(&self, error: &AuthError) -> Response {
        json_response(error.status(), error.durin_body())
    }
}

/// RFC 9457 problem details: `application/problem+json` with `type` (the base URI followed by the
/// error's [`code`](AuthError::code)), `title`, `status`, `detail` and `code`; invalid input adds
/// `errors` (DRF's field map).
///
/// ```
/// # fn demo(store: std::sync::Arc<dyn tessera_axum::core::Store>) -> Result<(), tessera_axum::BuildError> {
/// use tessera_axum::{ProblemJson, Tessera, core::ServerKey};
/// let tessera = Tessera::builder(store, ServerKey::generate())
///     .error_renderer(ProblemJson::new("https://errors.example.com/auth/"))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ProblemJson {
    type_base: String,
}

impl ProblemJson {
    /// Problems whose `type` is `type_base` followed by the error's code.
    pub fn new(type_base: impl Into<String>) -> Self {
        Self { type_base: type_base.into() }
    }
}

impl Default for ProblemJson {
    /// `type` is `urn:tessera:error:<code>`.
    fn default() -> Self {
        Self::new("urn:tessera:error:")
    }
}

impl ErrorRenderer for ProblemJson {
    fn render(&self, error: &AuthError) -> Response {
        let status = error.status();
        let mut body = json!({
            "type": format!("{}{}", self.type_base, error.code()),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": error.detail(),
            "code": error.code(),
        });
        if let AuthError::InvalidInput(fields) = error {
            body["errors"] = fields.to_json();
        }
        let content_type = HeaderValue::from_static("application/problem+json");
        (status, [(header::CONTENT_TYPE, content_type)], body.to_string()).into_response()
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

/// The renderer of the first [`Tessera`](crate::Tessera) built in this process: used for the one
/// error that has no Tessera to ask, an extractor on a route without the layer.
static PROCESS_RENDERER: OnceLock<(Arc<dyn ErrorRenderer>, Arc<str>)> = OnceLock::new();

pub(crate) fn remember_process_renderer(renderer: &Arc<dyn ErrorRenderer>, www_authenticate: &Arc<str>) {
    let _ = PROCESS_RENDERER.set((renderer.clone(), www_authenticate.clone()));
}

impl Rejection {
    pub(crate) fn new(error: AuthError, renderer: Arc<dyn ErrorRenderer>, www_authenticate: Arc<str>) -> Self {
        Self { error, renderer, www_authenticate }
    }

    /// A rejection for a route without the layer, rendered as the service renders its errors.
    pub(crate) fn layer_missing() -> Self {
        tracing::error!(
            "an extractor or guard of Tessera ran on a route without Tessera's authentication layer; \
             add `.layer(tessera.layer())` (or `cached_layer()`) outside the route (see the crate docs)"
        );
        match PROCESS_RENDERER.get() {
            Some((renderer, www)) => Self::new(AuthError::LayerMissing, renderer.clone(), www.clone()),
            None => Self::new(AuthError::LayerMissing, Arc::new(DurinErrors), Arc::from("Token")),
        }
    }

    /// Why.
    pub fn error(&self) -> &AuthError {
        &self.error
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = self.renderer.render(&self.error);
        let status = self.error.status();
        *response.status_mut() = status;
        let headers = response.headers_mut();
        // Refusals are about this request's credentials: never stored, never sniffed.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if status == StatusCode::UNAUTHORIZED
            && let Ok(value) = HeaderValue::from_str(&self.www_authenticate)
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        match &self.error {
            AuthError::Throttled { wait_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*wait_secs));
            }
            AuthError::MethodNotAllowed { allow, .. } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        response
    }
}

/// The error of the auth routes' handlers: an [`AuthError`], or a store failure that becomes a 503.
/// Handlers return `Result<_, RouteError>` and use `?`; the auth router renders it once, through
/// the configured renderer (see [`render_route_errors`](crate::routes)).
#[derive(Debug)]
pub(crate) struct RouteError(pub(crate) AuthError);

impl From<AuthError> for RouteError {
    fn from(e: AuthError) -> Self {
        RouteError(e)
    }
}

impl From<StoreError> for RouteError {
    fn from(e: StoreError) -> Self {
        RouteError(AuthError::from_store(e))
    }
}

/// A route error not rendered yet: the auth router's renderer layer finds it in the response.
#[derive(Debug, Clone)]
pub(crate) struct Unrendered(pub(crate) AuthError);

impl IntoResponse for RouteError {
    fn into_response(self) -> Response {
        // Rendered with durin's bodies in case it escapes the router; the router's layer renders it
        // again with the configured renderer.
        let mut response = Rejection::new(self.0.clone(), Arc::new(DurinErrors), Arc::from("Token")).into_response();
        response.extensions_mut().insert(Unrendered(self.0));
        response
    }
}

/// A JSON response with `Content-Type: application/json` and `X-Content-Type-Options: nosniff`.
pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    (status, headers, body.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durin_bodies_keep_drf_shapes() {
        assert_eq!(
            AuthError::BadCredentials.durin_body(),
            json!({"non_field_errors": ["Unable to log in with provided credentials."]})
        );
        let mut fields = FieldErrors::default();
        fields.add("username", "This field is required.");
        fields.add("password", "This field may not be blank.");
        assert_eq!(
            AuthError::InvalidInput(fields).durin_body(),
            json!({"username": ["This field is required."], "password": ["This field may not be blank."]})
        );
        assert_eq!(AuthError::ApiKeyExists.durin_body(), json!(["An API token was already issued to you."]));
        assert_eq!(
            AuthError::Throttled { wait_secs: 1 }.durin_body(),
            json!({"detail": "Request was throttled. Expected available in 1 second."})
        );
        assert_eq!(
            AuthError::UnsupportedMediaType(Some("text/plain".into())).detail(),
            "Unsupported media type \"text/plain\" in request."
        );
    }

    #[test]
    fn codes_are_distinct() {
        let all = [
            AuthError::NotAuthenticated,
            AuthError::NoCredentials,
            AuthError::TokenHasSpaces,
            AuthError::SeveralHeaders,
            AuthError::InvalidToken,
            AuthError::ExpiredToken,
            AuthError::InactiveUser,
            AuthError::PermissionDenied,
            AuthError::RouteDenied,
            AuthError::BadForwardedRequest,
            AuthError::Throttled { wait_secs: 3 },
            AuthError::Unavailable,
            AuthError::LayerMissing,
            AuthError::BadCredentials,
            AuthError::InvalidInput(FieldErrors::default()),
            AuthError::MalformedBody(String::new()),
            AuthError::NoClient,
            AuthError::UnknownClient,
            AuthError::CurrentToken { logout_path: String::new() },
            AuthError::ApiKeyExists,
            AuthError::DeviceLimit { max_devices: 5 },
            AuthError::NotFound,
            AuthError::MethodNotAllowed { method: "PUT".into(), allow: "GET" },
            AuthError::BodyTooLarge,
            AuthError::UnsupportedMediaType(None),
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(AuthError::code).collect();
        assert_eq!(codes.len(), all.len());
    }
}
