//! `POST login/`: durin's checks in durin's order, Argon2id without user enumeration, the login
//! throttle, and one token per (user, client).

use super::{body, datetime_or_null, json_ok};
use crate::client_ip::client_ip;
use crate::error::{AuthError, FieldErrors, RouteError};
use crate::state::Core;
use crate::tokens::{IfPairHasToken, PairTokenError, TokenRequest};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tessera_core::password::verify_password_or_dummy;
use tessera_core::throttle::{Decision, LimiterError};
use tessera_core::{Client, ClientName, EventKind, User, Username};

pub(crate) async fn login(State(core): State<Arc<Core>>, req: Request) -> Result<Response, RouteError> {
    let (parts, body) = req.into_parts();
    let ip = client_ip(&parts.extensions, &parts.headers, &core.settings.trusted_proxies);
    let ip_text = ip.map(|ip| ip.to_string());
    let now = core.now();

    if let Some(rate) = core.settings.login_throttle_per_ip {
        match ip {
            Some(ip) => throttle(core.limiter.acquire(&format!("login:ip:{ip}"), rate, now).await)?,
            None => warn_no_connect_info(&parts.extensions),
        }
    }

    let data = body::parse(Request::from_parts(parts.clone(), body)).await?;
    let (username, password) = validate_fields(&data)?;

    let username_key = format!("login:user:{username}");
    if let Some(rate) = core.settings.login_throttle_per_username {
        throttle(core.limiter.check(&username_key, rate, now).await)?;
    }

    // A name no user can have is not looked up: it is unknown (and PostgreSQL refuses NUL bytes).
    let user = match username.parse::<Username>() {
        Ok(name) => core.store.user_by_username(&name).await?,
        Err(_) => None,
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let pw = password.clone();
    // Argon2id is deliberately slow and takes 19 MiB per check: keep it off the async workers, and
    // run at most two checks per core at once so a flood of logins queues instead of exhausting
    // memory. Unknown users are verified against a dummy hash: they cost the same as a wrong password.
    let verified = {
        let _permit = password_checks().acquire().await.ok();
        tokio::task::spawn_blocking(move || verify_password_or_dummy(hash.as_deref(), &pw)).await.unwrap_or(false)
    };
    let user = match user {
        Some(user) if verified && user.is_active => user,
        other => {
            if let Some(rate) = core.settings.login_throttle_per_username {
                let _ = core.limiter.record(&username_key, rate, now).await;
            }
            let reason = match other {
                None => "unknown user",
                Some(u) if !u.is_active && verified => "inactive user",
                Some(_) => "wrong password",
            };
            core.events.emit(tessera_core::Event {
                kind: EventKind::LoginFailed { reason: reason.into() },
                user_id: None,
                username: Some(username.clone()),
                client: None,
                ip: ip_text.clone(),
                at: now,
            });
            return Err(AuthError::BadCredentials.into());
        }
    };

    let client = find_client(&core, &parts.headers, &data).await?;
    let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let policy = if core.settings.refresh_token_on_login { IfPairHasToken::Renew } else { IfPairHasToken::Reuse };
    let request = TokenRequest::new(&user, &client)
        .if_exists(policy)
        .device(user_agent, ip_text.clone())
        .by(tessera_core::Revoker::User)
        .source("login");
    let pair = match core.token_for_pair(request).await {
        Ok(pair) => pair,
        Err(PairTokenError::Store(e)) => return Err(e.into()),
        // Login reuses or renews: it never refuses a pair's token.
        Err(PairTokenError::Exists(_)) => return Err(AuthError::Unavailable.into()),
    };
    let (token, secret) = (pair.token, pair.secret);

    core.emit(EventKind::UserLoggedIn, Some((&user, client.name.as_str())), ip_text);
    let mut body = Map::new();
    body.insert("expiry".into(), datetime_or_null(token.expiry, |d| core.settings.format_expiry(d)));
    body.insert("token".into(), Value::String(secret.expose().to_string()));
    if !core.settings.login_response_user_fields.is_empty() {
        body.insert("user".into(), user_fields(&core, &user));
    }
    Ok(json_ok(Value::Object(body)))
}

/// The permits for concurrent password checks.
fn password_checks() -> &'static tokio::sync::Semaphore {
    static CHECKS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    CHECKS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        tokio::sync::Semaphore::new(cores * 2)
    })
}

fn throttle(decision: Result<Decision, LimiterError>) -> Result<(), AuthError> {
    match decision {
        Ok(Decision::Allowed) => Ok(()),
        Ok(Decision::Throttled { wait_secs }) => Err(AuthError::Throttled { wait_secs }),
        Err(e) => {
            tracing::warn!(error = %e, "login throttle unavailable");
            Err(AuthError::Unavailable)
        }
    }
}

/// The per-IP login throttle needs the peer's address: says so once when the server was started
/// without `into_make_service_with_connect_info::<SocketAddr>()`.
fn warn_no_connect_info(extensions: &axum::http::Extensions) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if extensions.get::<ConnectInfo<SocketAddr>>().is_none() && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "the per-IP login throttle is configured but requests carry no client address: serve with \
             `into_make_service_with_connect_info::<SocketAddr>()` (logins are throttled per username only)"
        );
    }
}

/// DRF's `AuthTokenSerializer` field validation: both fields' errors together, in order.
fn validate_fields(data: &Value) -> Result<(String, String), AuthError> {
    let Value::Object(fields) = data else {
        let got = match data {
            Value::Array(_) => "list",
            Value::String(_) => "str",
            Value::Number(n) if n.is_f64() => "float",
            Value::Number(_) => "int",
            Value::Bool(_) => "bool",
            // DRF's `Serializer.errors` turns the lone "may not be null" of a null body into this.
            Value::Null => return Err(AuthError::InvalidInput(FieldErrors::non_field("No data provided"))),
            Value::Object(_) => "dict",
        };
        let msg = format!("Invalid data. Expected a dictionary, but got {got}.");
        return Err(AuthError::InvalidInput(FieldErrors::non_field(msg)));
    };
    let mut errors = FieldErrors::default();
    let username = char_field(fields.get("username"), true).map_err(|e| errors.add("username", e)).ok();
    let password = char_field(fields.get("password"), false).map_err(|e| errors.add("password", e)).ok();
    match (username, password) {
        (Some(u), Some(p)) if errors.is_empty() => Ok((u, p)),
        _ => Err(AuthError::InvalidInput(errors)),
    }
}

/// DRF's `CharField`: required, not null, not blank; numbers become their text.
fn char_field(value: Option<&Value>, trim: bool) -> Result<String, &'static str> {
    let text = match value {
        None => return Err("This field is required."),
        Some(Value::Null) => return Err("This field may not be null."),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err("Not a valid string."),
    };
    let text = if trim { text.trim().to_string() } else { text };
    if text.is_empty() {
        return Err("This field may not be blank.");
    }
    Ok(text)
}

/// The login's client: from the configured header, else the body's `client`.
async fn find_client(core: &Core, headers: &HeaderMap, data: &Value) -> Result<Client, RouteError> {
    let name: Option<String> = match &core.settings.login_client_header {
        Some(h) => headers.get(h.as_str()).and_then(|v| v.to_str().ok()).map(str::to_string),
        None => match data.get("client") {
            // Python truthiness: null, false, 0, "", [] and {} mean "not specified".
            None | Some(Value::Null) | Some(Value::Bool(false)) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) if n.as_f64() == Some(0.0) => None,
            Some(Value::Array(a)) if a.is_empty() => None,
            Some(Value::Object(o)) if o.is_empty() => None,
            Some(other) => Some(other.to_string()),
        },
    };
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Err(AuthError::NoClient.into());
    };
    // A name no client can have is not looked up (PostgreSQL refuses NUL bytes).
    let Ok(name) = name.parse::<ClientName>() else { return Err(AuthError::UnknownClient.into()) };
    Ok(core.store.client_by_name(&name).await?.ok_or(AuthError::UnknownClient)?)
}

fn user_fields(core: &Core, user: &User) -> Value {
    let mut out = Map::new();
    for field in &core.settings.login_response_user_fields {
        let value = match field.as_str() {
            "id" => json!(user.id.0),
            "username" => json!(user.username.as_str()),
            "is_staff" => json!(user.is_staff),
            "is_active" => json!(user.is_active),
            _ => continue,
        };
        out.insert(field.clone(), value);
    }
    Value::Object(out)
}
