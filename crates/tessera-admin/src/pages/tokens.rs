//! Tokens: search (username, client), filters (expired, expiring within N days, unused for N
//! days), sort (created, last used, expiry), pages of 50; revoke one, the selected, or all of a
//! user or a client; create a token for a (user, client) — its secret shown once.
//!
//! The listing is one `Store::search_tokens` page: filtered and sorted by the store, addressed by a
//! keyset cursor (`after` / `before` in the URL), so a page costs the same with 100,000 tokens as
//! with 100 (an index read of 51 rows and a `COUNT` on SQL). `page` in the URL is only the number
//! shown. A user text that is someone's exact username scopes the page to that user; otherwise it
//! matches any username containing it, case-insensitively.

use crate::State;
use crate::session::Staff;
use crate::view::{Layout, device, flash, page, query as query_string, store_error, when, when_or};
use askama::Template;
use axum::extract::{Query, RawForm};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{TimeDelta, Utc};
use serde::Deserialize;
use std::collections::HashMap;
use tessera_axum::{IfPairHasToken, PairTokenError, STAFF_CLIENT, TokenRequest};
use tessera_core::{
    Client, ClientId, ClientName, PageAt, Revoker, SortKey, TokenCursor, TokenId, TokenPage, TokenSearch, TokenSort,
    TokenStatus, User, UserId, Username,
};

/// Rows per page.
const PAGE_SIZE: u32 = 50;
/// Usernames are at most this long: a longer search text matches nobody.
const MAX_USERNAME_CHARS: usize = 150;
/// The most ids one bulk revocation takes (a page's worth, with room).
const MAX_SELECTED: usize = 500;

#[derive(Deserialize, Default, Debug, Clone)]
pub(crate) struct Search {
    #[serde(default)]
    user: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    page: String,
    /// The cursor of the row the page follows (the next page).
    #[serde(default)]
    after: String,
    /// The cursor of the row the page precedes (the previous page).
    #[serde(default)]
    before: String,
    #[serde(default)]
    done: Option<String>,
}

pub(crate) struct Row {
    pub(crate) id: TokenId,
    pub(crate) username: String,
    pub(crate) user_id: UserId,
    pub(crate) client: String,
    pub(crate) created: String,
    pub(crate) expiry: String,
    pub(crate) expired: bool,
    pub(crate) last_used: String,
    pub(crate) ip: String,
    pub(crate) device: String,
    pub(crate) key: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct ListPage {
    layout: Layout,
    search: Search,
    clients: Vec<String>,
    rows: Vec<Row>,
    total: usize,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
    /// The one user or client the search names, for "revoke all of …".
    scope_user: Option<User>,
    scope_client: Option<Client>,
    created: Option<Created>,
    error: Option<String>,
    /// This search's query, for the revocation to come back to.
    back: String,
}

/// A token just created: its secret, shown this once.
pub(crate) struct Created {
    pub(crate) secret: String,
    pub(crate) username: String,
    pub(crate) client: String,
}

impl ListPage {
    fn selected(&self, field: &str, value: &str) -> &'static str {
        let current = match field {
            "client" => &self.search.client,
            "status" => &self.search.status,
            "sort" => &self.search.sort,
            _ => return "",
        };
        if current == value { "selected" } else { "" }
    }
}

pub(crate) async fn list(axum::extract::State(state): State, staff: Staff, Query(search): Query<Search>) -> Response {
    render(&state, &staff, search, None, None).await
}

async fn render(
    state: &crate::AdminState,
    staff: &Staff,
    search: Search,
    created: Option<Created>,
    error: Option<String>,
) -> Response {
    let store = state.tessera.store();
    let clients = match store.list_clients().await {
        Ok(clients) => clients,
        Err(e) => return store_error(state, &e),
    };
    let user_text = search.user.trim();
    // A name that is a user's exactly scopes the page to that user ("revoke all of …");
    // anything else is searched for as part of a name.
    let scope_user = match user_text.parse::<Username>() {
        Ok(name) => match store.user_by_username(&name).await {
            Ok(user) => user,
            Err(e) => return store_error(state, &e),
        },
        Err(_) => None,
    };
    let scope_client = search
        .client
        .parse::<ClientName>()
        .ok()
        .and_then(|name| clients.iter().find(|c| c.name == name && c.name.as_str() != STAFF_CLIENT).cloned());
    let staff_client = clients.iter().find(|c| c.name.as_str() == STAFF_CLIENT).map(|c| c.id);
    let now = Utc::now();
    let days = search.days.trim().parse::<i64>().ok().filter(|d| (0..=36_500).contains(d)).unwrap_or(30);
    let horizon = TimeDelta::days(days);
    let mut query = TokenSearch::new(now, PAGE_SIZE);
    query.user = scope_user.as_ref().map(|u| u.id);
    query.client = scope_client.as_ref().map(|c| c.id);
    if scope_user.is_none() {
        query.username_contains = user_text.to_string();
    }
    query.status = match search.status.as_str() {
        "expired" => TokenStatus::Expired,
        "live" => TokenStatus::Live,
        "expiring" => TokenStatus::ExpiringWithin(horizon),
        "unused" => TokenStatus::UnusedFor(horizon),
        _ => TokenStatus::Any,
    };
    // Staff sessions are listed only when asked for.
    if search.status == "staff" {
        query.client = staff_client;
    } else if scope_client.is_none() {
        query.exclude_client = staff_client;
    }
    query.sort = match search.sort.as_str() {
        "created" => TokenSort { key: SortKey::Created, descending: false },
        "last_used" => TokenSort { key: SortKey::LastUsed, descending: true },
        "last_used_asc" => TokenSort { key: SortKey::LastUsed, descending: false },
        "expiry" => TokenSort { key: SortKey::Expiry, descending: false },
        _ => TokenSort::default(),
    };
    let after = search.after.parse::<TokenCursor>().ok();
    let before = search.before.parse::<TokenCursor>().ok();
    query.page = match (after, before) {
        (Some(c), _) => PageAt::After(c),
        (None, Some(c)) => PageAt::Before(c),
        (None, None) => PageAt::First,
    };
    // A client named but unknown, or a name longer than any username: nothing matches.
    let hopeless = (!search.client.is_empty() && scope_client.is_none() && search.status != "staff")
        || user_text.chars().count() > MAX_USERNAME_CHARS
        || (search.status == "staff" && staff_client.is_none());
    let found = if hopeless {
        TokenPage { rows: Vec::new(), total: 0, next: None, prev: None }
    } else {
        match store.search_tokens(&query).await {
            Ok(page) => page,
            Err(e) => return store_error(state, &e),
        }
    };
    let client_names: HashMap<ClientId, &Client> = clients.iter().map(|c| (c.id, c)).collect();
    let total = usize::try_from(found.total).unwrap_or(usize::MAX);
    let pages = total.div_ceil(PAGE_SIZE as usize).max(1);
    // The page number is for show: the cursor finds the page.
    let page_no = match query.page {
        PageAt::First => 1,
        _ => search.page.parse::<usize>().ok().filter(|p| *p >= 1).unwrap_or(1).min(pages),
    };
    let rows = found
        .rows
        .iter()
        .map(|(t, username)| Row {
            id: t.id,
            username: username.to_string(),
            user_id: t.user_id,
            client: client_names.get(&t.client_id).map(|c| c.name.to_string()).unwrap_or_default(),
            created: when(&t.created),
            expiry: when_or(&t.expiry, "never"),
            expired: t.has_expired(now),
            last_used: when_or(&t.last_used, "never"),
            ip: t.ip.clone().unwrap_or_else(|| "—".into()),
            device: device(&t.user_agent),
            key: t.key_id.to_string(),
        })
        .collect();
    // The search as it stands, for the pages' links (with a cursor) and the way back (without).
    let filters: [(&str, &str); 5] = [
        ("user", &search.user),
        ("client", &search.client),
        ("status", &search.status),
        ("days", &search.days),
        ("sort", &search.sort),
    ];
    let link = |to: &str, cursor: TokenCursor, p: usize| {
        let (cursor, page) = (cursor.to_string(), p.to_string());
        let mut pairs = filters.to_vec();
        pairs.push((to, &cursor));
        pairs.push(("page", &page));
        format!("?{}", query_string(&pairs))
    };
    let back = format!("?{}", query_string(&filters));
    let prev = found.prev.map(|c| link("before", c, page_no.saturating_sub(1).max(1)));
    let next = found.next.map(|c| link("after", c, (page_no + 1).min(pages)));
    let client_names = clients.iter().filter(|c| c.name.as_str() != STAFF_CLIENT).map(|c| c.name.to_string()).collect();
    let layout = Layout::new(state, staff, "tokens", "Tokens").with_flash(flash(search.done.as_deref()));
    let status = crate::view::FORM_ERRORS;
    page(
        status,
        &ListPage {
            layout,
            search,
            clients: client_names,
            rows,
            total,
            page: page_no,
            pages,
            prev,
            next,
            scope_user,
            scope_client,
            created,
            error,
            back,
        },
    )
}

/// `POST tokens/revoke`: `scope` = `selected` (with `token` ids), `user` (with `user_id`) or
/// `client` (with `client_id`). Each goes through `Tessera`'s revocation, as the admin.
pub(crate) async fn revoke(axum::extract::State(state): State, _staff: Staff, RawForm(body): RawForm) -> Response {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let back = get("back").filter(|b| b.starts_with('?')).unwrap_or("?").to_string();
    let done = |what: &str| {
        let sep = if back.len() > 1 { "&" } else { "" };
        Redirect::to(&format!("{}/tokens{back}{sep}done={what}", state.config.base)).into_response()
    };
    let tessera = &state.tessera;
    let result = match get("scope") {
        Some("user") => {
            let Some(id) = get("user_id").and_then(|v| v.parse::<i64>().ok()) else { return bad(&state) };
            match tessera.store().user_by_id(UserId(id)).await {
                Ok(Some(user)) => tessera.revoke_tokens(&user, None, Revoker::Admin).await.map(|_| ()),
                Ok(None) => return bad(&state),
                Err(e) => Err(e),
            }
        }
        Some("client") => {
            let Some(id) = get("client_id").and_then(|v| v.parse::<i64>().ok()) else { return bad(&state) };
            match tessera.store().client_by_id(ClientId(id)).await {
                Ok(Some(client)) => tessera.revoke_all_tokens(Some(&client), Revoker::Admin).await.map(|_| ()),
                Ok(None) => return bad(&state),
                Err(e) => Err(e),
            }
        }
        Some("selected") => {
            // A row's own button names one token; otherwise the ticked boxes.
            let ids: Vec<i64> = match get("one").and_then(|v| v.parse().ok()) {
                Some(one) => vec![one],
                None => fields.iter().filter(|(k, _)| k == "token").filter_map(|(_, v)| v.parse().ok()).collect(),
            };
            if ids.is_empty() {
                return done("none_selected");
            }
            if ids.len() > MAX_SELECTED {
                return bad(&state);
            }
            let mut outcome = Ok(());
            for id in ids {
                match tessera.store().token_by_id(TokenId(id)).await {
                    Ok(Some(token)) => {
                        if let Err(e) = tessera.revoke_token(&token, Revoker::Admin).await {
                            outcome = Err(e);
                            break;
                        }
                    }
                    // Already gone: revoked meanwhile, nothing to do.
                    Ok(None) => {}
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            outcome
        }
        _ => return bad(&state),
    };
    match result {
        Ok(()) => done("revoked"),
        Err(e) => store_error(&state, &e),
    }
}

fn bad(state: &crate::AdminState) -> Response {
    crate::view::error_page(state, StatusCode::BAD_REQUEST, "That request was not understood; nothing changed.")
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    client: String,
}

/// `POST tokens`: a token for (user, client), through the token lifecycle as the admin; refused
/// when the pair holds a live token (revoke it first), so a token is never shown twice.
pub(crate) async fn create(
    axum::extract::State(state): State,
    staff: Staff,
    axum::Form(form): axum::Form<CreateForm>,
) -> Response {
    let store = state.tessera.store();
    let user = match form.username.trim().parse::<Username>() {
        Ok(name) => store.user_by_username(&name).await,
        Err(_) => Ok(None),
    };
    let client = match form.client.parse::<ClientName>() {
        Ok(name) if name.as_str() != STAFF_CLIENT => store.client_by_name(&name).await,
        _ => Ok(None),
    };
    let search = Search::default();
    let (user, client) = match (user, client) {
        (Ok(Some(user)), Ok(Some(client))) => (user, client),
        (Err(e), _) | (_, Err(e)) => return store_error(&state, &e),
        (Ok(None), _) => return render(&state, &staff, search, None, Some("No user has that username.".into())).await,
        (_, Ok(None)) => return render(&state, &staff, search, None, Some("No client has that name.".into())).await,
    };
    let request = TokenRequest::new(&user, &client).if_exists(IfPairHasToken::Reuse).by(Revoker::Admin);
    let stored = match state.tessera.prepare_token(request).await {
        Ok(pending) => state.tessera.store_pending_token(pending).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(pair) => {
            let created = Created {
                secret: pair.secret.expose().to_string(),
                username: user.username.to_string(),
                client: client.name.to_string(),
            };
            let search = Search { user: user.username.to_string(), ..Search::default() };
            render(&state, &staff, search, Some(created), None).await
        }
        Err(PairTokenError::Exists(_)) => {
            let text = format!("{} already holds a token on {}: revoke it first.", user.username, client.name);
            render(&state, &staff, search, None, Some(text)).await
        }
        Err(PairTokenError::DeviceLimit { max_devices }) => {
            let text = format!("{} holds the limit of {max_devices} tokens on {}.", user.username, client.name);
            render(&state, &staff, search, None, Some(text)).await
        }
        Err(PairTokenError::Store(e)) => store_error(&state, &e),
        Err(e) => {
            tracing::error!(error = %e, "admin: token not created");
            crate::view::error_page(&state, StatusCode::INTERNAL_SERVER_ERROR, "The token could not be created.")
        }
    }
}
