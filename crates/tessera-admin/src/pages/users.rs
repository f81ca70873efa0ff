//! Users: search, create (staff flag, password twice), and on a user's page: activate /
//! deactivate, set the password, log out everywhere, delete behind a confirmation; their tokens
//! grouped by client. Every change goes through `Tessera`'s admin methods as the admin.

use crate::State;
use crate::session::Staff;
use crate::view::{Layout, device, flash, page, query, store_error, when, when_or};
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::BTreeMap;
use tessera_core::password::hash_password;
use tessera_core::{NewUser, Revoker, TokenFilter, User, UserId, UserPageAt, Username};

/// Users per page.
const PAGE_SIZE: u32 = 50;
/// The shortest password the admin sets.
const PASSWORD_MIN: usize = 8;
/// The longest password accepted (Argon2id hashes any length; this bounds the work).
const PASSWORD_MAX: usize = 1024;

#[derive(Deserialize, Default)]
pub(crate) struct UserSearch {
    #[serde(default)]
    q: String,
    /// The username the page follows (the next page).
    #[serde(default)]
    after: Option<String>,
    /// The username the page precedes (the previous page).
    #[serde(default)]
    before: Option<String>,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "users.html")]
struct ListPage {
    layout: Layout,
    q: String,
    users: Vec<User>,
    /// How many users match, on all pages.
    total: u64,
    prev: Option<String>,
    next: Option<String>,
    form: NewUserForm,
    errors: BTreeMap<&'static str, String>,
}

impl ListPage {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct NewUserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password2: String,
    #[serde(default)]
    is_staff: Option<String>,
}

pub(crate) async fn list(
    axum::extract::State(state): State,
    staff: Staff,
    Query(search): Query<UserSearch>,
) -> Response {
    let layout = Layout::new(&state, &staff, "users", "Users").with_flash(flash(search.done.as_deref()));
    let at = match (search.after, search.before) {
        (Some(name), _) => UserPageAt::After(name),
        (None, Some(name)) => UserPageAt::Before(name),
        (None, None) => UserPageAt::First,
    };
    render_list(&state, layout, search.q, at, NewUserForm::default(), BTreeMap::new(), StatusCode::OK).await
}

async fn render_list(
    state: &crate::AdminState,
    layout: Layout,
    q: String,
    at: UserPageAt,
    form: NewUserForm,
    errors: BTreeMap<&'static str, String>,
    status: StatusCode,
) -> Response {
    let search = tessera_core::UserSearch { username_contains: q.trim().to_string(), limit: PAGE_SIZE, page: at };
    // Longer than any username: nobody matches.
    let found = if q.trim().chars().count() > 150 {
        tessera_core::UserPage { users: Vec::new(), total: 0, next: None, prev: None }
    } else {
        match state.tessera.store().search_users(&search).await {
            Ok(found) => found,
            Err(e) => return store_error(state, &e),
        }
    };
    let link = |to: &str, name: &str| format!("?{}", query(&[("q", q.as_str()), (to, name)]));
    let prev = found.prev.as_deref().map(|n| link("before", n));
    let next = found.next.as_deref().map(|n| link("after", n));
    let (users, total) = (found.users, found.total);
    // Never show a password back.
    let form = NewUserForm { password: String::new(), password2: String::new(), ..form };
    page(status, &ListPage { layout, q, users, total, prev, next, form, errors })
}

fn check_password(password: &str, again: &str) -> Result<(), String> {
    if password != again {
        return Err("The two passwords differ.".into());
    }
    let len = password.chars().count();
    if len < PASSWORD_MIN {
        return Err(format!("At least {PASSWORD_MIN} characters."));
    }
    if password.len() > PASSWORD_MAX {
        return Err(format!("At most {PASSWORD_MAX} bytes."));
    }
    Ok(())
}

pub(crate) async fn create(
    axum::extract::State(state): State,
    staff: Staff,
    Form(form): Form<NewUserForm>,
) -> Response {
    let mut errors = BTreeMap::new();
    let username = form.username.parse::<Username>().map_err(|e| errors.insert("username", e.to_string())).ok();
    if let Err(e) = check_password(&form.password, &form.password2) {
        errors.insert("password", e);
    }
    let layout = || Layout::new(&state, &staff, "users", "Users");
    let Some(username) = username.filter(|_| errors.is_empty()) else {
        return render_list(&state, layout(), String::new(), UserPageAt::First, form, errors, crate::view::FORM_ERRORS)
            .await;
    };
    let password = form.password.clone();
    let hash = match tokio::task::spawn_blocking(move || hash_password(&password)).await {
        Ok(Ok(hash)) => hash,
        _ => {
            return crate::view::error_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "The password could not be hashed.",
            );
        }
    };
    let new =
        NewUser { username: username.clone(), password_hash: hash, is_staff: form.is_staff.is_some(), is_active: true };
    match state.tessera.create_user(new, Revoker::Admin).await {
        Ok(user) => Redirect::to(&format!("{}/users/{}?done=user_created", state.config.base, user.id)).into_response(),
        Err(tessera_core::StoreError::Conflict(_)) => {
            errors.insert("username", format!("A user named '{username}' already exists."));
            render_list(&state, layout(), String::new(), UserPageAt::First, form, errors, crate::view::FORM_ERRORS)
                .await
        }
        Err(e) => store_error(&state, &e),
    }
}

pub(crate) struct TokenLine {
    pub(crate) id: i64,
    pub(crate) created: String,
    pub(crate) expiry: String,
    pub(crate) last_used: String,
    pub(crate) device: String,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    layout: Layout,
    user: User,
    groups: Vec<(String, Vec<TokenLine>)>,
    tokens: usize,
    error: Option<String>,
    own: bool,
}

async fn find(state: &crate::AdminState, id: i64) -> Result<User, Response> {
    match state.tessera.store().user_by_id(UserId(id)).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => {
            Err(crate::view::error_page(state, StatusCode::NOT_FOUND, "No such user: they may have been deleted."))
        }
        Err(e) => Err(store_error(state, &e)),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct Done {
    done: Option<String>,
}

pub(crate) async fn show(
    axum::extract::State(state): State,
    staff: Staff,
    Path(id): Path<i64>,
    Query(done): Query<Done>,
) -> Response {
    let user = match find(&state, id).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    render_user(&state, &staff, user, flash(done.done.as_deref()), None).await
}

async fn render_user(
    state: &crate::AdminState,
    staff: &Staff,
    user: User,
    flash: Option<crate::view::Flash>,
    error: Option<String>,
) -> Response {
    let store = state.tessera.store();
    let filter = TokenFilter { user: Some(user.id), ..TokenFilter::default() };
    let (tokens, clients) = match (store.list_tokens(filter).await, store.list_clients().await) {
        (Ok(t), Ok(c)) => (t, c),
        (Err(e), _) | (_, Err(e)) => return store_error(state, &e),
    };
    let mut groups: BTreeMap<String, Vec<TokenLine>> = BTreeMap::new();
    for t in &tokens {
        let client = clients.iter().find(|c| c.id == t.client_id).map(|c| c.name.to_string()).unwrap_or_default();
        groups.entry(client).or_default().push(TokenLine {
            id: t.id.0,
            created: when(&t.created),
            expiry: when_or(&t.expiry, "never"),
            last_used: when_or(&t.last_used, "never"),
            device: device(&t.user_agent),
        });
    }
    let own = user.id == staff.0.user.id;
    let layout = Layout::new(state, staff, "users", format!("User {}", user.username)).with_flash(flash);
    let status = crate::view::FORM_ERRORS;
    page(status, &UserPage { layout, user, groups: groups.into_iter().collect(), tokens: tokens.len(), error, own })
}

#[derive(Deserialize)]
pub(crate) struct Change {
    action: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password2: String,
}

/// `POST users/{id}`: `action` = `activate`, `deactivate`, `password` or `logout_all`.
pub(crate) async fn change(
    axum::extract::State(state): State,
    staff: Staff,
    Path(id): Path<i64>,
    Form(change): Form<Change>,
) -> Response {
    let user = match find(&state, id).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let tessera = &state.tessera;
    let result = match change.action.as_str() {
        "activate" => tessera.set_user_active(&user, true, Revoker::Admin).await,
        "deactivate" if user.id == staff.0.user.id => {
            return render_user(&state, &staff, user, None, Some("You cannot deactivate yourself.".into())).await;
        }
        "deactivate" => tessera.set_user_active(&user, false, Revoker::Admin).await,
        "logout_all" => tessera.revoke_tokens(&user, None, Revoker::Admin).await.map(|_| ()),
        "password" => {
            if let Err(e) = check_password(&change.password, &change.password2) {
                return render_user(&state, &staff, user, None, Some(format!("Password not changed: {e}"))).await;
            }
            let password = change.password.clone();
            let hash = match tokio::task::spawn_blocking(move || hash_password(&password)).await {
                Ok(Ok(hash)) => hash,
                _ => {
                    return crate::view::error_page(
                        &state,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "The password could not be hashed.",
                    );
                }
            };
            tessera.change_password(&user, &hash, Revoker::Admin).await.map(|_| ())
        }
        _ => return crate::view::error_page(&state, StatusCode::BAD_REQUEST, "Unknown action; nothing changed."),
    };
    match result {
        Ok(()) => Redirect::to(&format!("{}/users/{}?done=user_saved", state.config.base, user.id)).into_response(),
        Err(e) => store_error(&state, &e),
    }
}

#[derive(Template)]
#[template(path = "user_delete.html")]
struct DeletePage {
    layout: Layout,
    user: User,
    tokens: u64,
}

pub(crate) async fn confirm_delete(axum::extract::State(state): State, staff: Staff, Path(id): Path<i64>) -> Response {
    let user = match find(&state, id).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let filter = TokenFilter { user: Some(user.id), ..TokenFilter::default() };
    let tokens = match state.tessera.store().count_tokens(filter).await {
        Ok(n) => n,
        Err(e) => return store_error(&state, &e),
    };
    let layout = Layout::new(&state, &staff, "users", format!("Delete user {}", user.username));
    page(StatusCode::OK, &DeletePage { layout, user, tokens })
}

pub(crate) async fn delete(axum::extract::State(state): State, staff: Staff, Path(id): Path<i64>) -> Response {
    let user = match find(&state, id).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    if user.id == staff.0.user.id {
        return render_user(&state, &staff, user, None, Some("You cannot delete yourself.".into())).await;
    }
    match state.tessera.delete_user(&user, Revoker::Admin).await {
        Ok(_) => Redirect::to(&format!("{}/users?done=user_deleted", state.config.base)).into_response(),
        Err(e) => store_error(&state, &e),
    }
}
