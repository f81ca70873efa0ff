//! Tokens: search (username, client), filters (expired, expiring within N days, unused for N
//! days), sort (created, last used, expiry), pages of 50; revoke one, the selected, or all of a
//! user or a client; create a token for a (user, client) — its secret shown once.
//!
//! The listing reads the matching tokens through `TokenStore::list_tokens` (narrowed to the user or
//! the client when one is named) and filters, sorts and pages them here. That is fine for tens of
//! thousands of tokens; a store-level keyset search is the planned step for more.

use crate::State;
use crate::session::Staff;
use crate::view::{Layout, device, flash, page, query, store_error, when, when_or};
use askama::Template;
use axum::extract::{Query, RawForm};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{TimeDelta, Utc};
use serde::Deserialize;
use std::collections::HashMap;
use tessera_axum::{IfPairHasToken, PairTokenError, STAFF_CLIENT, TokenRequest};
use tessera_core::{AuthToken, Client, ClientId, ClientName, Revoker, TokenFilter, TokenId, User, UserId, Username};

/// Rows per page.
const PAGE_SIZE: usize = 50;
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
    let (users, clients) = match (store.list_users().await, store.list_clients().await) {
        (Ok(users), Ok(clients)) => (users, clients),
        (Err(e), _) | (_, Err(e)) => return store_error(state, &e),
    };
    let scope_user =
        search.user.trim().parse::<Username>().ok().and_then(|name| users.iter().find(|u| u.username == name).cloned());
    let scope_client = search
        .client
        .parse::<ClientName>()
        .ok()
        .and_then(|name| clients.iter().find(|c| c.name == name && c.name.as_str() != STAFF_CLIENT).cloned());
    let user_text = search.user.trim().to_lowercase();
    let filter = TokenFilter {
        user: scope_user.as_ref().map(|u| u.id),
        client: scope_client.as_ref().map(|c| c.id),
        ..TokenFilter::default()
    };
    let unknown_client = !search.client.is_empty() && scope_client.is_none();
    let tokens = if unknown_client {
        Vec::new()
    } else {
        match store.list_tokens(filter).await {
            Ok(tokens) => tokens,
            Err(e) => return store_error(state, &e),
        }
    };
    let user_names: HashMap<UserId, &User> = users.iter().map(|u| (u.id, u)).collect();
    let client_names: HashMap<ClientId, &Client> = clients.iter().map(|c| (c.id, c)).collect();
    let now = Utc::now();
    let days = search.days.trim().parse::<i64>().ok().filter(|d| (0..=36_500).contains(d)).unwrap_or(30);
    let horizon = TimeDelta::days(days);
    let mut matching: Vec<&AuthToken> = tokens
        .iter()
        .filter(|t| {
            let (Some(user), Some(client)) = (user_names.get(&t.user_id), client_names.get(&t.client_id)) else {
                return false;
            };
            if client.name.as_str() == STAFF_CLIENT && scope_client.is_none() && search.status != "staff" {
                return false;
            }
            if scope_user.is_none()
                && !user_text.is_empty()
                && !user.username.as_str().to_lowercase().contains(&user_text)
            {
                return false;
            }
            match search.status.as_str() {
                "expired" => t.has_expired(now),
                "live" => !t.has_expired(now),
                "expiring" => !t.has_expired(now) && t.expiry.is_some_and(|e| e <= now + horizon),
                "unused" => t.last_used.unwrap_or(t.created) <= now - horizon,
                "staff" => client.name.as_str() == STAFF_CLIENT,
                _ => true,
            }
        })
        .collect();
    match search.sort.as_str() {
        "created" => matching.sort_by_key(|t| (t.created, t.id)),
        "last_used" => matching.sort_by_key(|t| std::cmp::Reverse((t.last_used, t.id))),
        "last_used_asc" => matching.sort_by_key(|t| (t.last_used, t.id)),
        "expiry" => matching.sort_by_key(|t| (t.expiry.is_none(), t.expiry, t.id)),
        _ => matching.sort_by_key(|t| std::cmp::Reverse((t.created, t.id))),
    }
    let total = matching.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page_no = search.page.parse::<usize>().ok().filter(|p| *p >= 1).unwrap_or(1).min(pages);
    let rows = matching
        .iter()
        .skip((page_no - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|t| Row {
            id: t.id,
            username: user_names.get(&t.user_id).map(|u| u.username.to_string()).unwrap_or_default(),
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
    // The search as it stands, for the pages' links (with `page`) and the way back (without).
    let filters: [(&str, &str); 5] = [
        ("user", &search.user),
        ("client", &search.client),
        ("status", &search.status),
        ("days", &search.days),
        ("sort", &search.sort),
    ];
    let link = |p: usize| {
        let page = p.to_string();
        let mut pairs = filters.to_vec();
        pairs.push(("page", &page));
        format!("?{}", query(&pairs))
    };
    let back = format!("?{}", query(&filters));
    let prev = (page_no > 1).then(|| link(page_no - 1));
    let next = (page_no < pages).then(|| link(page_no + 1));
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
