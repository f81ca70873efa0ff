//! durin's auth routes as one router a service mounts anywhere. Every route answers with and
//! without its trailing slash; authenticated routes check authentication, then the throttle, and
//! only then the method (so an anonymous wrong-method request is 401, as in durin).
//!
//! Handlers return `Result<_, RouteError>`; every error, the 404 and 405 fallbacks included, is
//! rendered once, by [`render_errors`], through the service's renderer.

mod apiaccess;
pub(crate) mod body;
mod login;
mod sessions;

pub(crate) use apiaccess::api_access_client;
pub use login::PasswordChecks;
pub(crate) use login::{Attempt, throttle_source, verify_credentials};

use crate::error::{AuthError, RouteError, Unrendered, json_response};
use crate::guard::Guard;
use crate::layer::AuthLayer;
use crate::state::Core;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, any, on};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

type Routes = MethodRouter<Arc<Core>>;

/// Every path the auth router serves (under its mount point), grouped by view: the router is
/// built from this table, so a document of the API can be checked against it.
pub const PATHS: [&[&str]; 7] = [
    &["/login/", "/login"],
    &["/refresh/", "/refresh"],
    &["/logout/", "/logout"],
    &["/logoutall/", "/logoutall"],
    &["/sessions/", "/sessions"],
    // durin's router really serves `sessions//<id>`; both shapes work.
    &["/sessions/{id}", "/sessions/{id}/", "/sessions//{id}", "/sessions//{id}/"],
    &["/apiaccess/", "/apiaccess"],
];

pub(crate) fn router<S: Clone + Send + Sync + 'static>(core: Arc<Core>) -> Router<S> {
    let authed = |mr: Routes| -> Routes {
        mr.layer(Guard::new().throttled()).layer(AuthLayer::new(core.clone(), core.cached_auth_routes))
    };
    let post_only = "POST, OPTIONS";

    let login = on(MethodFilter::POST, login::login).options(describe("Login")).fallback(not_allowed(post_only));
    let refresh =
        authed(on(MethodFilter::POST, sessions::refresh).options(describe("Refresh")).fallback(not_allowed(post_only)));
    let logout =
        authed(on(MethodFilter::POST, sessions::logout).options(describe("Logout")).fallback(not_allowed(post_only)));
    let logout_all = authed(
        on(MethodFilter::POST, sessions::logout_all).options(describe("Logout All")).fallback(not_allowed(post_only)),
    );
    let session_list = authed(
        on(MethodFilter::GET, sessions::list)
            .options(describe("Token Sessions"))
            .fallback(not_allowed("GET, HEAD, OPTIONS")),
    );
    let session_detail = authed(
        on(MethodFilter::DELETE, sessions::delete)
            .options(describe("Token Sessions"))
            .fallback(not_allowed("DELETE, OPTIONS")),
    );
    let api_access = if core.settings.api_access_client_name.is_some() {
        authed(
            on(MethodFilter::GET, apiaccess::get)
                .post(apiaccess::post)
                .delete(apiaccess::delete)
                .options(describe("API Access Token"))
                .fallback(not_allowed("GET, POST, DELETE, HEAD, OPTIONS")),
        )
    } else {
        // No API-access client: the view does not exist, whatever the method (after authentication,
        // like every other authenticated route).
        authed(any(|| async { RouteError(AuthError::NotFound) }))
    };

    let table: [(&[&str], Routes); 7] = [
        (PATHS[0], login),
        (PATHS[1], refresh),
        (PATHS[2], logout),
        (PATHS[3], logout_all),
        (PATHS[4], session_list),
        (PATHS[5], session_detail),
        (PATHS[6], api_access),
    ];
    let mut router: Router<Arc<Core>> = Router::new();
    for (paths, routes) in table {
        for path in paths {
            router = router.route(path, routes.clone());
        }
    }
    router
        .fallback(|| async { RouteError(AuthError::NotFound) })
        .layer(axum::middleware::map_response_with_state(core.clone(), render_errors))
        .with_state(core)
}

/// Every response of the auth routes passes here once: a handler's [`RouteError`] is rendered
/// with the service's renderer (the one place route errors become bodies), and nothing the auth API
/// answers may be stored by a cache — tokens above all (RFC 6749 §5.1) — or sniffed as another type.
async fn render_errors(State(core): State<Arc<Core>>, mut response: Response) -> Response {
    let mut response = match response.extensions_mut().remove::<Unrendered>() {
        Some(Unrendered(error)) => core.reject(error).into_response(),
        None => response,
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// `200 application/json`.
pub(crate) fn json_ok(body: Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// `204` with no body and no Content-Type.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A datetime for the wire, or `null` for never.
pub(crate) fn datetime_or_null(at: Option<DateTime<Utc>>, format: impl Fn(DateTime<Utc>) -> String) -> Value {
    at.map(|d| Value::String(format(d))).unwrap_or(Value::Null)
}

/// DRF's OPTIONS answer: the view's metadata.
fn describe(name: &'static str) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move || {
        std::future::ready(json_ok(json!({
            "name": name,
            "description": "",
            "renders": ["application/json"],
            "parses": body::PARSES,
        })))
    }
}

/// 405 with the `Allow` header.
fn not_allowed(
    allow: &'static str,
) -> impl Fn(Method) -> std::future::Ready<RouteError> + Clone + Send + Sync + 'static {
    move |method: Method| {
        std::future::ready(RouteError(AuthError::MethodNotAllowed { method: method.to_string(), allow }))
    }
}
