//! The dashboard: per client live, expired and unused tokens and active users; logins per day as
//! a server-rendered SVG chart (no script, no inline style).

use crate::State;
use crate::dashboard::{CHART_DAYS, Figures, UNUSED_DAYS, figures};
use crate::session::Staff;
use crate::view::{Layout, page, store_error};
use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

/// One bar of the chart.
pub(crate) struct Bar {
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) height: u32,
    pub(crate) failed_y: u32,
    pub(crate) failed_height: u32,
    pub(crate) label: String,
    pub(crate) title: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    figures: Figures,
    total_live: u64,
    total_unused: u64,
    bars: Vec<Bar>,
    max: u64,
    unused_days: i64,
    chart_days: i64,
}

const CHART_HEIGHT: u32 = 120;
const BAR_STEP: u32 = 40;

pub(crate) async fn show(axum::extract::State(state): State, staff: Staff) -> Response {
    let figures = match figures(&state.tessera, state.audit.as_deref()).await {
        Ok(f) => f,
        Err(e) => return store_error(&state, &e),
    };
    let total_live = figures.clients.iter().map(|c| c.live).sum();
    let total_unused = figures.clients.iter().map(|c| c.unused).sum();
    let days = figures.logins.clone().unwrap_or_default();
    let max = days.iter().map(|(_, ok, failed)| ok + failed).max().unwrap_or(0).max(1);
    let scale = |n: u64| ((n * u64::from(CHART_HEIGHT)) / max) as u32;
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, (day, ok, failed))| {
            let (h_ok, h_failed) = (scale(*ok), scale(*failed));
            Bar {
                x: i as u32 * BAR_STEP + 4,
                y: CHART_HEIGHT - h_ok - h_failed + 10,
                height: h_ok,
                failed_y: CHART_HEIGHT - h_failed + 10,
                failed_height: h_failed,
                label: day.format("%d").to_string(),
                title: format!("{day}: {ok} logins, {failed} failed"),
            }
        })
        .collect();
    let layout = Layout::new(&state, &staff, "dashboard", "Dashboard");
    page(
        StatusCode::OK,
        &DashboardPage {
            layout,
            figures,
            total_live,
            total_unused,
            bars,
            max,
            unused_days: UNUSED_DAYS,
            chart_days: CHART_DAYS,
        },
    )
}
