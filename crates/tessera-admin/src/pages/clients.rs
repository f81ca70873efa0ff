//! Clients: the list, create and edit with the CLI's parsers (`Ttl`, `Rate`, `ClientName`,
//! `Devices`) — every field is parsed before anything is written, and a bad value is an error
//! beside its field — and delete behind a confirmation that says how many tokens go with it.

use crate::State;
use crate::session::Staff;
use crate::view::{Layout, flash, page, store_error};
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::BTreeMap;
use tessera_axum::STAFF_CLIENT;
use tessera_core::{Client, ClientId, ClientName, ClientUpdate, Devices, NewClient, Rate, Revoker, TokenFilter, Ttl};

/// The longest description accepted.
const DESCRIPTION_MAX: usize = 1000;

pub(crate) struct ClientRow {
    pub(crate) client: Client,
    pub(crate) tokens: u64,
    /// `one`, or `many (≤ N)`.
    pub(crate) devices: String,
    /// The tokens page's query for this client.
    pub(crate) tokens_query: String,
}

#[derive(Template)]
#[template(path = "clients.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<ClientRow>,
}

#[derive(Deserialize, Default)]
pub(crate) struct Done {
    done: Option<String>,
}

pub(crate) async fn list(axum::extract::State(state): State, staff: Staff, Query(done): Query<Done>) -> Response {
    let clients = match state.tessera.store().list_clients().await {
        Ok(clients) => clients,
        Err(e) => return store_error(&state, &e),
    };
    let mut rows = Vec::new();
    for client in clients.into_iter().filter(|c| c.name.as_str() != STAFF_CLIENT) {
        let filter = TokenFilter { client: Some(client.id), ..TokenFilter::default() };
        match state.tessera.store().count_tokens(filter).await {
            Ok(tokens) => {
                let devices = match client.devices {
                    Devices::One => "one".to_string(),
                    Devices::Many { max_devices, .. } => format!("many (≤ {max_devices})"),
                };
                let tokens_query = crate::view::query(&[("client", client.name.as_str())]);
                rows.push(ClientRow { client, tokens, devices, tokens_query })
            }
            Err(e) => return store_error(&state, &e),
        }
    }
    let layout = Layout::new(&state, &staff, "clients", "Clients").with_flash(flash(done.done.as_deref()));
    page(StatusCode::OK, &ListPage { layout, rows })
}

/// The form's fields as typed, shown back with the errors when something is wrong.
#[derive(Deserialize, Default, Clone)]
pub(crate) struct ClientForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    token_ttl: String,
    #[serde(default)]
    throttle_rate: String,
    #[serde(default)]
    sliding_expiry: Option<String>,
    #[serde(default)]
    max_lifetime: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    devices: String,
    #[serde(default)]
    max_devices: String,
}

impl ClientForm {
    fn of(client: &Client) -> Self {
        let (devices, max_devices) = match client.devices {
            Devices::One => ("one".to_string(), String::new()),
            Devices::Many { max_devices, .. } => ("many".to_string(), max_devices.to_string()),
        };
        ClientForm {
            name: client.name.to_string(),
            token_ttl: client.token_ttl.to_string(),
            throttle_rate: client.throttle_rate.map(|r| r.to_string()).unwrap_or_default(),
            sliding_expiry: client.sliding_expiry.then(|| "on".to_string()),
            max_lifetime: client.max_lifetime.map(|t| t.to_string()).unwrap_or_default(),
            description: client.description.clone(),
            devices,
            max_devices,
        }
    }

    fn sliding(&self) -> bool {
        self.sliding_expiry.is_some()
    }

    fn many(&self) -> bool {
        self.devices == "many"
    }
}

/// A form's values, parsed: all or none.
struct Parsed {
    name: ClientName,
    token_ttl: Ttl,
    throttle_rate: Option<Rate>,
    sliding_expiry: bool,
    max_lifetime: Option<Ttl>,
    description: String,
    devices: Devices,
}

/// Field name → what is wrong with it.
type FieldErrors = BTreeMap<&'static str, String>;

fn parse(form: &ClientForm) -> Result<Parsed, FieldErrors> {
    let mut errors = FieldErrors::new();
    let name = form.name.trim().parse::<ClientName>().map_err(|e| errors.insert("name", e.to_string())).ok();
    if name.as_ref().is_some_and(|n| n.as_str() == STAFF_CLIENT) {
        errors.insert("name", format!("'{STAFF_CLIENT}' is reserved for the admin UI's sessions"));
    }
    let token_ttl = form
        .token_ttl
        .trim()
        .parse::<Ttl>()
        .map_err(|e| errors.insert("token_ttl", format!("Token TTL: {e} (e.g. 90s, 12h, 7d, never)")))
        .ok();
    let optional = |text: &str| {
        let text = text.trim();
        (!(text.is_empty() || text.eq_ignore_ascii_case("none"))).then(|| text.to_string())
    };
    let throttle_rate = match optional(&form.throttle_rate) {
        None => Some(None),
        Some(text) => text
            .parse::<Rate>()
            .map(Some)
            .map_err(|e| errors.insert("throttle_rate", format!("Throttle rate: {e} (e.g. 100/m)")))
            .ok(),
    };
    let max_lifetime = match optional(&form.max_lifetime) {
        None => Some(None),
        Some(text) => {
            text.parse::<Ttl>().map(Some).map_err(|e| errors.insert("max_lifetime", format!("Max lifetime: {e}"))).ok()
        }
    };
    if let (Some(ttl), Some(Some(cap))) = (token_ttl, max_lifetime) {
        let problem = match (ttl, cap) {
            (_, Ttl::Never) => Some("leave it empty for no cap".to_string()),
            (Ttl::Never, _) => Some("a max lifetime needs a token TTL".to_string()),
            (Ttl::After(t), Ttl::After(c)) if c < t => Some(format!("shorter than the token TTL ({ttl})")),
            _ => None,
        };
        if let Some(problem) = problem {
            errors.insert("max_lifetime", format!("Max lifetime: {problem}"));
        }
    }
    if form.description.chars().count() > DESCRIPTION_MAX {
        errors.insert("description", format!("Description: at most {DESCRIPTION_MAX} characters"));
    } else if form.description.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        errors.insert("description", "Description: no control characters".into());
    }
    let devices = if form.many() {
        match form.max_devices.trim().parse::<u32>() {
            Ok(max) => Devices::from_parts("many", Some(max), None)
                .map_err(|e| errors.insert("max_devices", format!("Max devices: {e}")))
                .ok(),
            Err(_) if form.max_devices.trim().is_empty() => Some(Devices::many()),
            Err(_) => {
                errors.insert("max_devices", "Max devices: a whole number".into());
                None
            }
        }
    } else if form.devices.is_empty() || form.devices == "one" {
        Some(Devices::One)
    } else {
        errors.insert("devices", "Devices: one or many".into());
        None
    };
    match (name, token_ttl, throttle_rate, max_lifetime, devices) {
        (Some(name), Some(token_ttl), Some(throttle_rate), Some(max_lifetime), Some(devices)) if errors.is_empty() => {
            Ok(Parsed {
                name,
                token_ttl,
                throttle_rate,
                sliding_expiry: form.sliding(),
                max_lifetime,
                description: form.description.replace("\r\n", "\n"),
                devices,
            })
        }
        _ => Err(errors),
    }
}

#[derive(Template)]
#[template(path = "client_form.html")]
struct FormPage {
    layout: Layout,
    /// `None`: a new client.
    id: Option<ClientId>,
    form: ClientForm,
    errors: FieldErrors,
}

impl FormPage {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }

    fn invalid(&self, field: &str) -> &'static str {
        if self.errors.contains_key(field) { "invalid" } else { "" }
    }
}

pub(crate) async fn new_form(axum::extract::State(state): State, staff: Staff) -> Response {
    let layout = Layout::new(&state, &staff, "clients", "New client");
    let form = ClientForm { token_ttl: "10h".into(), devices: "one".into(), ..ClientForm::default() };
    page(StatusCode::OK, &FormPage { layout, id: None, form, errors: FieldErrors::new() })
}

pub(crate) async fn create(axum::extract::State(state): State, staff: Staff, Form(form): Form<ClientForm>) -> Response {
    let mut parsed = match parse(&form) {
        Ok(parsed) => parsed,
        Err(errors) => {
            let layout = Layout::new(&state, &staff, "clients", "New client");
            return page(crate::view::FORM_ERRORS, &FormPage { layout, id: None, form, errors });
        }
    };
    let new = NewClient {
        name: parsed.name.clone(),
        token_ttl: parsed.token_ttl,
        throttle_rate: parsed.throttle_rate,
        sliding_expiry: parsed.sliding_expiry,
        max_lifetime: parsed.max_lifetime,
        description: std::mem::take(&mut parsed.description),
        devices: parsed.devices,
    };
    match state.tessera.create_client(new, Revoker::Admin).await {
        Ok(_) => Redirect::to(&format!("{}/clients?done=client_created", state.config.base)).into_response(),
        Err(tessera_core::StoreError::Conflict(_)) => {
            let layout = Layout::new(&state, &staff, "clients", "New client");
            let errors = FieldErrors::from([("name", format!("A client named '{}' already exists", parsed.name))]);
            page(crate::view::FORM_ERRORS, &FormPage { layout, id: None, form, errors })
        }
        Err(e) => store_error(&state, &e),
    }
}

/// The client with this id, unless it is the reserved staff client (not editable here).
async fn find(state: &crate::AdminState, id: i64) -> Result<Client, Response> {
    match state.tessera.store().client_by_id(ClientId(id)).await {
        Ok(Some(client)) if client.name.as_str() != STAFF_CLIENT => Ok(client),
        Ok(_) => {
            Err(crate::view::error_page(state, StatusCode::NOT_FOUND, "No such client: it may have been deleted."))
        }
        Err(e) => Err(store_error(state, &e)),
    }
}

pub(crate) async fn edit_form(axum::extract::State(state): State, staff: Staff, Path(id): Path<i64>) -> Response {
    let client = match find(&state, id).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let layout = Layout::new(&state, &staff, "clients", format!("Client {}", client.name));
    page(
        StatusCode::OK,
        &FormPage { layout, id: Some(client.id), form: ClientForm::of(&client), errors: FieldErrors::new() },
    )
}

pub(crate) async fn update(
    axum::extract::State(state): State,
    staff: Staff,
    Path(id): Path<i64>,
    Form(form): Form<ClientForm>,
) -> Response {
    let client = match find(&state, id).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let parsed = match parse(&form) {
        Ok(parsed) => parsed,
        Err(errors) => {
            let layout = Layout::new(&state, &staff, "clients", format!("Client {}", client.name));
            return page(crate::view::FORM_ERRORS, &FormPage { layout, id: Some(client.id), form, errors });
        }
    };
    // A `many` client keeps its limit policy; the form edits the limit only.
    let devices = match (parsed.devices, client.devices) {
        (Devices::Many { max_devices, .. }, Devices::Many { on_device_limit, .. }) => {
            Devices::Many { max_devices, on_device_limit }
        }
        (devices, _) => devices,
    };
    let update = ClientUpdate {
        name: (parsed.name != client.name).then_some(parsed.name),
        token_ttl: Some(parsed.token_ttl),
        throttle_rate: Some(parsed.throttle_rate),
        sliding_expiry: Some(parsed.sliding_expiry),
        max_lifetime: Some(parsed.max_lifetime),
        description: Some(parsed.description),
        devices: Some(devices),
    };
    match state.tessera.update_client(&client, update, Revoker::Admin).await {
        Ok(_) => Redirect::to(&format!("{}/clients?done=client_saved", state.config.base)).into_response(),
        Err(tessera_core::StoreError::Conflict(text)) => {
            let layout = Layout::new(&state, &staff, "clients", format!("Client {}", client.name));
            let errors = FieldErrors::from([("name", text)]);
            page(crate::view::FORM_ERRORS, &FormPage { layout, id: Some(client.id), form, errors })
        }
        Err(e) => store_error(&state, &e),
    }
}

#[derive(Template)]
#[template(path = "client_delete.html")]
struct DeletePage {
    layout: Layout,
    client: Client,
    tokens: u64,
}

pub(crate) async fn confirm_delete(axum::extract::State(state): State, staff: Staff, Path(id): Path<i64>) -> Response {
    let client = match find(&state, id).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let filter = TokenFilter { client: Some(client.id), ..TokenFilter::default() };
    let tokens = match state.tessera.store().count_tokens(filter).await {
        Ok(n) => n,
        Err(e) => return store_error(&state, &e),
    };
    let layout = Layout::new(&state, &staff, "clients", format!("Delete client {}", client.name));
    page(StatusCode::OK, &DeletePage { layout, client, tokens })
}

pub(crate) async fn delete(axum::extract::State(state): State, _staff: Staff, Path(id): Path<i64>) -> Response {
    let client = match find(&state, id).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    match state.tessera.delete_client(&client, Revoker::Admin).await {
        Ok(_) => Redirect::to(&format!("{}/clients?done=client_deleted", state.config.base)).into_response(),
        Err(e) => store_error(&state, &e),
    }
}
