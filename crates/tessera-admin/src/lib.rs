//! Tessera's admin web UI, as a [`Router`] any axum app merges (as Django apps mount
//! `admin.site.urls`): clients, tokens, users and the audit log, for staff users.
//!
//! ```no_run
//! # async fn demo(tessera: tessera_axum::Tessera) {
//! let app: axum::Router = axum::Router::new().merge(tessera_admin::Admin::new(tessera).router());
//! # let _ = app; }
//! ```
//!
//! Map:
//! - `session.rs`: the staff session cookie (a Tessera token of the reserved client, see
//!   `tessera_axum`'s `STAFF_CLIENT`) and the layer that requires it.
//! - `protect.rs`: CSRF (Origin / `Sec-Fetch-Site`), form bodies (at most 64 KiB, UTF-8) and the
//!   security headers on every response.
//! - `pages/`: one module per page; every change goes through `Tessera`'s admin methods with
//!   [`Revoker::Admin`](tessera_core::Revoker::Admin), so the audit log and every instance hear of it;
//!   each signed-in request runs in `tessera_axum::acting_as_staff`, so those events name the staff
//!   member (`actor_name`) and carry their address. The tokens page is one `Store::search_tokens`
//!   page (keyset cursor).
//! - `dashboard.rs`: the dashboard's figures, from the store, the usage analytics (when
//!   [`Admin::usage_log`] is set) and otherwise the audit log; `pages/chart.rs` draws them as inline
//!   SVG (presentation by stylesheet classes: the CSP has no `unsafe-inline`).
//! - `assets.rs`: the stylesheet and the one script, compiled in (no CDN, no network).
//!
//! The UI has no SQL of its own: it reads through the store traits and changes through core.
#![deny(missing_docs)]

mod assets;
mod dashboard;
mod pages;
mod protect;
mod session;
mod view;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use std::sync::Arc;
use tessera_axum::{StaffSessionPolicy, Tessera};
use tessera_core::{AuditLog, UsageLog};

/// The admin UI's configuration.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Where it is mounted, without a trailing slash (default `/admin`).
    pub base: String,
    /// Served over TLS: the cookie gets `Secure` and the `__Host-` prefix.
    pub secure_cookie: bool,
    /// Idle and absolute session timeouts.
    pub sessions: StaffSessionPolicy,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { base: "/admin".into(), secure_cookie: false, sessions: StaffSessionPolicy::default() }
    }
}

/// The admin UI over one Tessera.
#[derive(Debug, Clone)]
pub struct Admin {
    tessera: Tessera,
    audit: Option<Arc<dyn AuditLog>>,
    usage: Option<Arc<dyn UsageLog>>,
    config: AdminConfig,
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AdminState {
    pub(crate) tessera: Tessera,
    pub(crate) audit: Option<Arc<dyn AuditLog>>,
    pub(crate) usage: Option<Arc<dyn UsageLog>>,
    pub(crate) config: AdminConfig,
}

pub(crate) type State = axum::extract::State<Arc<AdminState>>;

impl Admin {
    /// The admin UI over `tessera`, mounted at `/admin`, without an audit log page.
    pub fn new(tessera: Tessera) -> Self {
        Admin { tessera, audit: None, usage: None, config: AdminConfig::default() }
    }

    /// Reads the audit log (the Audit page, the dashboard's logins) from `log`.
    pub fn audit_log(mut self, log: Arc<dyn AuditLog>) -> Self {
        self.audit = Some(log);
        self
    }

    /// Reads the usage analytics (the dashboard's authentications and logins per day by outcome,
    /// per-client totals with throttled requests and distinct active users) from `log` — the
    /// same store the Tessera's [`usage`](tessera_axum::TesseraBuilder::usage) sink writes to.
    /// Without it the dashboard says usage analytics is off and charts the audit log's logins.
    pub fn usage_log(mut self, log: Arc<dyn UsageLog>) -> Self {
        self.usage = Some(log);
        self
    }

    /// Replaces the configuration.
    pub fn config(mut self, config: AdminConfig) -> Self {
        self.config = config;
        self
    }

    /// The routes, at their full paths under the base (merge them into the app's router).
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let base = self.config.base.trim_end_matches('/').to_string();
        let state =
            Arc::new(AdminState { tessera: self.tessera, audit: self.audit, usage: self.usage, config: self.config });
        let at = |path: &str| format!("{base}{path}");
        let staff = Router::new()
            .route(&at("/"), get(pages::dashboard::show))
            .route(&at("/logout"), post(pages::login::logout))
            .route(&at("/clients"), get(pages::clients::list).post(pages::clients::create))
            .route(&at("/clients/new"), get(pages::clients::new_form))
            .route(&at("/clients/{id}"), get(pages::clients::edit_form).post(pages::clients::update))
            .route(&at("/clients/{id}/delete"), get(pages::clients::confirm_delete).post(pages::clients::delete))
            .route(&at("/tokens"), get(pages::tokens::list).post(pages::tokens::create))
            .route(&at("/tokens/revoke"), post(pages::tokens::revoke))
            .route(&at("/users"), get(pages::users::list).post(pages::users::create))
            .route(&at("/users/{id}"), get(pages::users::show).post(pages::users::change))
            .route(&at("/users/{id}/delete"), get(pages::users::confirm_delete).post(pages::users::delete))
            .route(&at("/audit"), get(pages::audit::list))
            .route(&at("/audit.csv"), get(pages::audit::csv))
            .layer(from_fn_with_state(state.clone(), session::require_staff));
        let redirect_to = at("/");
        let open = Router::new()
            .route(&at("/login"), get(pages::login::form).post(pages::login::submit))
            .route(&at("/static/admin.css"), get(assets::css))
            .route(&at("/static/admin.js"), get(assets::js))
            .route(&base, get(move || async move { axum::response::Redirect::permanent(&redirect_to) }));
        staff.merge(open).layer(from_fn_with_state(state.clone(), protect::protect)).with_state(state)
    }
}
