//! The audit log: filters (user, client, kind, actor, date range), pages of 100 (newest first; the
//! next page continues before the oldest shown), and CSV export of the same filters.

use crate::State;
use crate::session::Staff;
use crate::view::{Layout, page, query};
use askama::Template;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use tessera_core::{Actor, AuditQuery, AuditRecord, EventKind};

/// Rows per page.
const PAGE_SIZE: u32 = 100;
/// The most rows one CSV export holds.
const CSV_MAX: u32 = 10_000;

#[derive(Deserialize, Default, Clone)]
pub(crate) struct Filters {
    #[serde(default)]
    user: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    actor: String,
    /// The acting staff member's username (admin UI changes).
    #[serde(default)]
    by: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// The next page: records at or before this time (RFC 3339), the previous page's last …
    #[serde(default)]
    before: String,
    /// … less this many at exactly that time, which the previous pages showed (records are ordered
    /// by time, then id, so those come first).
    #[serde(default)]
    skip: String,
}

impl Filters {
    fn query(&self, limit: u32) -> Result<AuditQuery, String> {
        let day = |text: &str, what: &str| -> Result<Option<DateTime<Utc>>, String> {
            if text.trim().is_empty() {
                return Ok(None);
            }
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
                .map_err(|_| format!("{what}: a date as YYYY-MM-DD"))
        };
        let since = day(&self.from, "From")?;
        let mut until = day(&self.to, "To")?.map(|t| t + chrono::TimeDelta::days(1));
        let skip = self.skip();
        if let Some(before) = self.before()? {
            // `until` is exclusive: one microsecond on includes the records at `before` itself.
            let before = before + chrono::TimeDelta::microseconds(1);
            until = Some(until.map_or(before, |u| u.min(before)));
        }
        if !self.kind.is_empty() && !EventKind::NAMES.contains(&self.kind.as_str()) {
            return Err("Kind: not a known kind".into());
        }
        let actor = match self.actor.as_str() {
            "" => None,
            name => Some(Actor::from_name(name).ok_or("Actor: not a known actor")?),
        };
        let text = |t: &str| (!t.trim().is_empty()).then(|| t.trim().to_string());
        Ok(AuditQuery {
            username: text(&self.user),
            client: text(&self.client),
            kind: text(&self.kind),
            since,
            until,
            actor,
            actor_name: text(&self.by),
            limit: limit + skip,
        })
    }

    fn before(&self) -> Result<Option<DateTime<Utc>>, String> {
        if self.before.is_empty() {
            return Ok(None);
        }
        DateTime::parse_from_rfc3339(&self.before).map(|t| Some(t.to_utc())).map_err(|_| "bad page".to_string())
    }

    fn skip(&self) -> u32 {
        self.skip.parse::<u32>().unwrap_or(0).min(CSV_MAX)
    }
}

pub(crate) struct Line {
    pub(crate) at: String,
    pub(crate) kind: String,
    pub(crate) actor: String,
    pub(crate) username: String,
    pub(crate) client: String,
    pub(crate) token: String,
    pub(crate) ip: String,
    pub(crate) detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    filters: Filters,
    kinds: &'static [&'static str],
    actors: &'static [&'static str],
    lines: Vec<Line>,
    next: Option<String>,
    csv: String,
    error: Option<String>,
    enabled: bool,
}

impl AuditPage {
    fn selected(&self, field: &str, value: &str) -> &'static str {
        let current = if field == "kind" { &self.filters.kind } else { &self.filters.actor };
        if current == value { "selected" } else { "" }
    }
}

fn line(r: &AuditRecord) -> Line {
    let detail = match &r.detail {
        serde_json::Value::Object(map) if map.is_empty() => String::new(),
        other => other.to_string(),
    };
    Line {
        at: r.at.format("%Y-%m-%d %H:%M:%S").to_string(),
        kind: r.kind.clone(),
        actor: match &r.actor_name {
            Some(name) => format!("{} ({name})", r.actor.as_str()),
            None => r.actor.as_str().to_string(),
        },
        username: r.username.clone().unwrap_or_default(),
        client: r.client.clone().unwrap_or_default(),
        token: r.token_id.map(|t| t.to_string()).unwrap_or_default(),
        ip: r.ip.clone().unwrap_or_default(),
        detail,
    }
}

fn filter_pairs(f: &Filters) -> Vec<(&'static str, String)> {
    vec![
        ("user", f.user.clone()),
        ("client", f.client.clone()),
        ("kind", f.kind.clone()),
        ("actor", f.actor.clone()),
        ("by", f.by.clone()),
        ("from", f.from.clone()),
        ("to", f.to.clone()),
    ]
}

fn encode(pairs: &[(&'static str, String)]) -> String {
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    query(&borrowed)
}

pub(crate) async fn list(axum::extract::State(state): State, staff: Staff, Query(filters): Query<Filters>) -> Response {
    let layout = Layout::new(&state, &staff, "audit", "Audit log");
    let csv = format!("{}/audit.csv?{}", state.config.base, encode(&filter_pairs(&filters)));
    let mut view = AuditPage {
        layout,
        filters: filters.clone(),
        kinds: EventKind::NAMES,
        actors: Actor::NAMES,
        lines: Vec::new(),
        next: None,
        csv,
        error: None,
        enabled: state.audit.is_some(),
    };
    let Some(log) = &state.audit else { return page(StatusCode::OK, &view) };
    let query = match filters.query(PAGE_SIZE) {
        Ok(q) => q,
        Err(e) => {
            view.error = Some(e);
            return page(crate::view::FORM_ERRORS, &view);
        }
    };
    let records = match log.audit_events(&query).await {
        Ok(records) => records,
        Err(e) => return crate::view::store_error(&state, &e),
    };
    let full = records.len() as u32 >= query.limit;
    let previous = filters.before().ok().flatten().map(|t| (t, filters.skip()));
    let (shown, cursor) = page_of(&records, previous, full, |_| true);
    if let Some((at, skip)) = cursor {
        let mut pairs = filter_pairs(&filters);
        pairs.push(("before", at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)));
        pairs.push(("skip", skip.to_string()));
        view.next = Some(format!("?{}", encode(&pairs)));
    }
    view.lines = shown.into_iter().map(line).collect();
    page(StatusCode::OK, &view)
}

/// One page out of `records` (newest first; the first `skip` of them at `before`, shown already
/// when `previous` is `(before, skip)`): the records shown, and where the next page starts — the
/// last record consumed and how many records at its time have been shown — when there may be more
/// (a full page, or a full read).
fn page_of(
    records: &[AuditRecord],
    previous: Option<(DateTime<Utc>, u32)>,
    full_read: bool,
    keep: impl Fn(&AuditRecord) -> bool,
) -> (Vec<&AuditRecord>, Option<(DateTime<Utc>, u32)>) {
    let skip = match previous {
        Some((before, skip)) => records.iter().take(skip as usize).take_while(|r| r.at == before).count(),
        None => 0,
    };
    let rest = &records[skip..];
    let mut shown = Vec::new();
    let mut consumed = 0;
    for record in rest {
        if shown.len() == PAGE_SIZE as usize {
            break;
        }
        consumed += 1;
        if keep(record) {
            shown.push(record);
        }
    }
    let more = consumed < rest.len() || full_read;
    let cursor = match rest[..consumed].last() {
        Some(last) if more => {
            let mut at_same = rest[..consumed].iter().filter(|r| r.at == last.at).count() as u32;
            if let Some((before, skip)) = previous
                && before == last.at
            {
                at_same += skip;
            }
            Some((last.at, at_same))
        }
        _ => None,
    };
    (shown, cursor)
}

/// One CSV field, quoted when it needs to be; a leading `=`, `+`, `-` or `@` is prefixed with `'`
/// so that a spreadsheet does not run it as a formula (a username or user agent is user input).
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

pub(crate) async fn csv(axum::extract::State(state): State, _staff: Staff, Query(filters): Query<Filters>) -> Response {
    let Some(log) = &state.audit else { return (StatusCode::NOT_FOUND, "The audit log is off.").into_response() };
    let query = match filters.query(CSV_MAX) {
        Ok(q) => AuditQuery { limit: CSV_MAX, ..q },
        Err(e) => return (StatusCode::UNPROCESSABLE_ENTITY, e).into_response(),
    };
    let records = match log.audit_events(&query).await {
        Ok(records) => records,
        Err(e) => return crate::view::store_error(&state, &e),
    };
    let mut out = String::from("at,kind,actor,username,client,token_id,ip,user_agent,detail\r\n");
    for r in &records {
        let l = line(r);
        let fields = [
            r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            l.kind,
            l.actor,
            l.username,
            l.client,
            l.token,
            l.ip,
            r.user_agent.clone().unwrap_or_default(),
            l.detail,
        ];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"tessera-audit.csv\""),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::{PAGE_SIZE, csv_field, page_of};
    use chrono::{DateTime, TimeDelta, Utc};
    use tessera_core::{Actor, AuditRecord, TokenId};

    fn record(at: DateTime<Utc>, id: i64) -> AuditRecord {
        AuditRecord {
            at,
            kind: "token_revoked".into(),
            actor: if id % 2 == 0 { Actor::Admin } else { Actor::Cli },
            actor_name: None,
            user_id: None,
            username: None,
            client: None,
            token_id: Some(TokenId(id)),
            ip: None,
            user_agent: None,
            detail: serde_json::json!({}),
        }
    }

    /// Pages through `all` (newest first) as the page does, reading `read` records a time.
    fn walk(all: &[AuditRecord], keep: impl Fn(&AuditRecord) -> bool + Copy) -> Vec<i64> {
        let mut seen = Vec::new();
        let mut previous: Option<(DateTime<Utc>, u32)> = None;
        loop {
            let read = PAGE_SIZE as usize * 5 + previous.map_or(0, |p| p.1 as usize);
            let window: Vec<AuditRecord> =
                all.iter().filter(|r| previous.is_none_or(|(before, _)| r.at <= before)).take(read).cloned().collect();
            let full = window.len() == read;
            let (shown, cursor) = page_of(&window, previous, full, keep);
            seen.extend(shown.iter().filter_map(|r| r.token_id.map(|t| t.0)));
            match cursor {
                Some(next) => previous = Some(next),
                None => return seen,
            }
        }
    }

    #[test]
    fn pages_neither_skip_nor_repeat_records_of_one_instant() {
        let t = Utc::now();
        // 730 records, most sharing a few instants (a mass revocation writes many at once).
        let mut all: Vec<AuditRecord> = (0..730).map(|i| record(t - TimeDelta::seconds(i / 300), 10_000 - i)).collect();
        all.sort_by(|a, b| b.at.cmp(&a.at).then(b.token_id.cmp(&a.token_id)));
        let every: Vec<i64> = all.iter().filter_map(|r| r.token_id.map(|t| t.0)).collect();
        assert_eq!(walk(&all, |_| true), every);
        let admins: Vec<i64> = every.iter().copied().filter(|id| id % 2 == 0).collect();
        assert_eq!(walk(&all, |r| r.actor == Actor::Admin), admins);
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("alice"), "alice");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1,2"), "\"'-1,2\"");
    }
}
