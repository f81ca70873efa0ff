//! durin's auth routes as one router a service mounts anywhere. Every route answers with and
//! without its trailing slash; authenticated routes check authentication, then the throttle, and
//! only then the method (so an anonymous wrong-method request is 401, as in durin).

mod apiaccess;
mod body;
mod login;
mod sessions;

pub(crate) use apiaccess::api_access_client;

use crate::authn::Core;
use crate::error::{self, json_response};
use crate::guard::Guard;
use crate::layer::AuthLayer;
use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, any, on};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

type Routes = MethodRouter<Arc<Core>>;

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
        authed(any(|| async { error::detail(StatusCode::NOT_FOUND, "Not found.") }))
    };

    let table: [(&[&str], Routes); 7] = [
        (&["/login/", "/login"], login),
        (&["/refresh/", "/refresh"], refresh),
        (&["/logout/", "/logout"], logout),
        (&["/logoutall/", "/logoutall"], logout_all),
        (&["/sessions/", "/sessions"], session_list),
        // durin's router really serves `sessions//<id>`; both shapes work.
        (&["/sessions/{id}", "/sessions/{id}/", "/sessions//{id}", "/sessions//{id}/"], session_detail),
        (&["/apiaccess/", "/apiaccess"], api_access),
    ];
    let mut router: Router<Arc<Core>> = Router::new();
    for (paths, routes) in table {
        for path in paths {
            router = router.route(path, routes.clone());
        }
    }
    router.with_state(core)
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

/// 405 with durin's body and the `Allow` header.
fn not_allowed(allow: &'static str) -> impl Fn(Method) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move |method: Method| {
        let mut response = json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"detail": format!("Method \"{method}\" not allowed.")}),
        );
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        std::future::ready(response)
    }
}
