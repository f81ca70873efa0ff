//! Sign in and out. Every refusal — unknown user, wrong password, inactive, not staff — shows the
//! same message; the login throttle answers "too many attempts" with the wait.

use crate::State;
use crate::session::{Staff, clear_cookie, peer_ip, set_cookie};
use crate::view::{Layout, page};
use askama::Template;
use axum::Form;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tessera_axum::{AuthError, StaffLogin};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    username: String,
    error: Option<String>,
}

/// The most a username or password field may hold: longer input is refused unread.
const FIELD_MAX: usize = 1024;

pub(crate) async fn form(axum::extract::State(state): State) -> Response {
    let layout = Layout { base: state.config.base.clone(), title: "Sign in".into(), ..Layout::default() };
    page(StatusCode::OK, &LoginPage { layout, username: String::new(), error: None })
}

#[derive(Deserialize)]
pub(crate) struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

pub(crate) async fn submit(axum::extract::State(state): State, req: Request) -> Response {
    let ip = peer_ip(&state, &req);
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let Ok(Form(form)) = <Form<Credentials> as axum::extract::FromRequest<()>>::from_request(req, &()).await else {
        return refused(&state, "", "Enter a username and a password.", StatusCode::BAD_REQUEST);
    };
    if form.username.len() > FIELD_MAX || form.password.len() > FIELD_MAX {
        return refused(&state, "", "Please enter a correct username and password.", StatusCode::BAD_REQUEST);
    }
    let login = StaffLogin { username: &form.username, password: form.password, ip, user_agent };
    match state.tessera.staff_login(login, state.config.sessions).await {
        Ok((_, secret)) => {
            let mut response = Redirect::to(&format!("{}/", state.config.base)).into_response();
            response.headers_mut().insert(header::SET_COOKIE, set_cookie(&state, secret.expose()));
            response
        }
        Err(AuthError::Throttled { wait_secs }) => refused(
            &state,
            &form.username,
            &format!("Too many attempts; try again in {wait_secs} seconds."),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(AuthError::Unavailable) => refused(
            &state,
            &form.username,
            "The store is unavailable; try again shortly.",
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        Err(_) => refused(
            &state,
            &form.username,
            "Please enter a correct username and password for a staff account.",
            StatusCode::OK,
        ),
    }
}

fn refused(state: &crate::AdminState, username: &str, error: &str, status: StatusCode) -> Response {
    let layout = Layout { base: state.config.base.clone(), title: "Sign in".into(), ..Layout::default() };
    let username: String = username.chars().take(150).collect();
    page(status, &LoginPage { layout, username, error: Some(error.into()) })
}

pub(crate) async fn logout(axum::extract::State(state): State, staff: Staff) -> Response {
    if let Err(e) = state.tessera.staff_logout(&staff.0).await {
        return crate::view::store_error(&state, &e);
    }
    let mut response = Redirect::to(&format!("{}/login", state.config.base)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, clear_cookie(&state));
    response
}
