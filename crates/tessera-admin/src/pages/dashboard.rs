//! The dashboard: per client live, expired and unused tokens and active users; with the usage
//! analytics, per-client totals (throttled requests, distinct active users) and authentications
//! and logins per day by outcome; without them, the audit log's logins per day. Charts are
//! server-rendered SVG (`pages/chart.rs`: no script, no inline style).

use crate::State;
use crate::dashboard::{CHART_DAYS, Figures, UNUSED_DAYS, figures};
use crate::pages::chart::{Chart, Series};
use crate::session::Staff;
use crate::view::{Layout, page, store_error};
use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use tessera_core::usage::UNKNOWN_CLIENT;

/// The authentication outcomes, in `AuthOutcome::ALL` order.
const REQUEST_SERIES: [Series; 6] = [
    Series { name: "ok", class: "s-ok" },
    Series { name: "invalid token", class: "s-invalid" },
    Series { name: "expired", class: "s-expired" },
    Series { name: "inactive user", class: "s-inactive" },
    Series { name: "forbidden client", class: "s-forbidden" },
    Series { name: "throttled", class: "s-throttled" },
];

/// The login outcomes, in `LoginOutcome::ALL` order.
const LOGIN_SERIES: [Series; 3] = [
    Series { name: "ok", class: "s-ok" },
    Series { name: "failed", class: "s-invalid" },
    Series { name: "throttled", class: "s-throttled" },
];

/// One client's line of the usage table.
pub(crate) struct UsageRow {
    pub(crate) client: String,
    pub(crate) unknown: bool,
    pub(crate) ok: u64,
    /// Invalid, expired, inactive user, forbidden client.
    pub(crate) refused: u64,
    pub(crate) throttled: u64,
    pub(crate) active_users: u64,
    pub(crate) logins: u64,
    /// Failed or throttled.
    pub(crate) failed_logins: u64,
    pub(crate) issued: u64,
    pub(crate) revoked: u64,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    figures: Figures,
    total_live: u64,
    total_unused: u64,
    usage_rows: Vec<UsageRow>,
    requests_chart: Option<Chart>,
    logins_chart: Option<Chart>,
    unused_days: i64,
    chart_days: i64,
}

pub(crate) async fn show(axum::extract::State(state): State, staff: Staff) -> Response {
    let figures = match figures(&state.tessera, state.audit.as_deref(), state.usage.as_deref()).await {
        Ok(f) => f,
        Err(e) => return store_error(&state, &e),
    };
    let total_live = figures.clients.iter().map(|c| c.live).sum();
    let total_unused = figures.clients.iter().map(|c| c.unused).sum();
    let (usage_rows, requests_chart, logins_chart) = match &figures.usage {
        Some(usage) => {
            let rows = usage
                .totals
                .iter()
                .map(|t| {
                    let r = t.counts.requests;
                    let l = t.counts.logins;
                    UsageRow {
                        client: t.client.clone(),
                        unknown: t.client == UNKNOWN_CLIENT,
                        ok: r.ok,
                        refused: [r.invalid_token, r.expired, r.inactive_user, r.forbidden_client]
                            .into_iter()
                            .fold(0, u64::saturating_add),
                        throttled: r.throttled,
                        active_users: t.active_users,
                        logins: l.ok,
                        failed_logins: l.failed.saturating_add(l.throttled),
                        issued: t.counts.tokens_issued,
                        revoked: t.counts.tokens_revoked,
                    }
                })
                .collect();
            let requests: Vec<_> = usage.requests.iter().map(|(d, v)| (*d, v.to_vec())).collect();
            let logins: Vec<_> = usage.logins.iter().map(|(d, v)| (*d, v.to_vec())).collect();
            (
                rows,
                Some(Chart::new("requests-chart", "Authentications", &REQUEST_SERIES, &requests)),
                Some(Chart::new("logins-chart", "Logins", &LOGIN_SERIES, &logins)),
            )
        }
        None => {
            let chart = figures.logins.as_ref().map(|days| {
                let days: Vec<_> = days.iter().map(|(d, ok, failed)| (*d, vec![*ok, *failed])).collect();
                Chart::new("logins-chart", "Logins", &LOGIN_SERIES[..2], &days)
            });
            (Vec::new(), None, chart)
        }
    };
    let layout = Layout::new(&state, &staff, "dashboard", "Dashboard");
    page(
        StatusCode::OK,
        &DashboardPage {
            layout,
            figures,
            total_live,
            total_unused,
            usage_rows,
            requests_chart,
            logins_chart,
            unused_days: UNUSED_DAYS,
            chart_days: CHART_DAYS,
        },
    )
}
