//! What every page shares: the layout's data, flashes, rendering, and the small formatting
//! helpers the templates use.

use crate::AdminState;
use crate::session::Staff;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};

/// The layout's data: where the admin lives, who is signed in, which section is open, a flash.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub(crate) base: String,
    pub(crate) staff: Option<String>,
    pub(crate) section: &'static str,
    pub(crate) title: String,
    pub(crate) flash: Option<Flash>,
}

/// A message shown once above the page.
#[derive(Debug, Clone)]
pub(crate) struct Flash {
    pub(crate) kind: &'static str,
    pub(crate) text: String,
}

impl Layout {
    pub(crate) fn new(state: &AdminState, staff: &Staff, section: &'static str, title: impl Into<String>) -> Self {
        Layout {
            base: state.config.base.clone(),
            staff: Some(staff.name().to_string()),
            section,
            title: title.into(),
            flash: None,
        }
    }

    pub(crate) fn with_flash(mut self, flash: Option<Flash>) -> Self {
        self.flash = flash;
        self
    }

    pub(crate) fn nav_class(&self, section: &str) -> &'static str {
        if self.section == section { "current" } else { "" }
    }
}

/// Renders a template as a page (an error page when rendering fails, which a compile-checked
/// template does only on a formatting error).
pub(crate) fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "admin page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "The page could not be rendered.").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    message: &'a str,
}

/// A page that says what went wrong, in the layout (without navigation).
pub(crate) fn error_page(state: &AdminState, status: StatusCode, message: &str) -> Response {
    let layout = Layout { base: state.config.base.clone(), title: "Error".into(), ..Layout::default() };
    page(status, &ErrorPage { layout, message })
}

/// A store failure, as a page: the detail goes to the log, never to the browser.
pub(crate) fn store_error(state: &AdminState, e: &tessera_core::StoreError) -> Response {
    match e {
        tessera_core::StoreError::NotFound(_) => {
            error_page(state, StatusCode::NOT_FOUND, "Not found: it may have been deleted meanwhile.")
        }
        tessera_core::StoreError::Conflict(text) => error_page(state, StatusCode::CONFLICT, text),
        _ => {
            tracing::error!(error = %e, "admin: store error");
            error_page(state, StatusCode::SERVICE_UNAVAILABLE, "The store is unavailable; try again shortly.")
        }
    }
}

/// A flash from the `done` query parameter a change redirects with: fixed texts only, so a link
/// cannot make the admin say anything else.
pub(crate) fn flash(done: Option<&str>) -> Option<Flash> {
    let text = match done? {
        "client_created" => "Client created.",
        "client_saved" => "Client saved.",
        "client_deleted" => "Client deleted, with its tokens.",
        "revoked" => "Tokens revoked.",
        "none_selected" => "No token was selected: nothing changed.",
        "user_created" => "User created.",
        "user_saved" => "User saved.",
        "user_deleted" => "User deleted, with their tokens.",
        _ => return None,
    };
    Some(Flash { kind: "ok", text: text.into() })
}

/// A time as the tables show it (UTC, to the minute).
pub(crate) fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// An optional time; `never`/`—` when absent.
pub(crate) fn when_or(t: &Option<DateTime<Utc>>, none: &str) -> String {
    t.as_ref().map(when).unwrap_or_else(|| none.to_string())
}

/// A user agent as "browser on OS", roughly (what a person reading the table wants to know).
pub(crate) fn device(user_agent: &Option<String>) -> String {
    let Some(ua) = user_agent.as_deref() else { return "—".into() };
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
        ("python-requests", "Python requests"),
        ("okhttp", "OkHttp"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    let os = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_string(),
        (None, Some(o)) => o.to_string(),
        (None, None) => ua.chars().take(40).collect(),
    }
}

/// A query string from pairs, encoded.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// The status of a form shown again with its errors: 200, as Django answers. It is a page like
/// any other, what the user needs next; a 4xx would also be logged as an error in the browser's
/// console.
pub(crate) const FORM_ERRORS: StatusCode = StatusCode::OK;
