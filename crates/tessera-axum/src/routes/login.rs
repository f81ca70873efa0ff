//! `POST login/`: durin's checks in durin's order, Argon2id without user enumeration, the login
//! throttle, and one token per (user, client).
//!
//! The login throttle (the policy is in the README's "Login throttling"): every attempt counts
//! against its source's budget (an IPv4 address, an IPv6 /64); then, before the password is
//! verified, one slot is *reserved* atomically in the username's budget from that source and in
//! the username's budget from all sources — the latter skipped for a source that logged into the
//! account recently. A right password gives the slots back; a wrong one leaves them taken. So at
//! most the budget of verifications run per window, however many arrive at once, and failures
//! caused by someone else cannot refuse a source the owner has used.

use super::{body, datetime_or_null, json_ok};
use crate::client_ip::client_ip;
use crate::error::{AuthError, FieldErrors, RouteError};
use crate::state::Core;
use crate::tokens::{IfPairHasToken, PairTokenError, Revocation, TokenRequest};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tessera_core::net::IpNet;
use tessera_core::password::{Checked, check_password_or_dummy};
use tessera_core::throttle::{Budget, Decision, Grant, LimiterError, Reservation};
use tessera_core::{Actor, Client, ClientName, EventKind, Rate, User, Username};

pub(crate) async fn login(State(core): State<Arc<Core>>, req: Request) -> Result<Response, RouteError> {
    let answer = attempt(core.clone(), req).await;
    // Successes and failures are counted from their events; a throttled attempt has none.
    if let (Err(RouteError(AuthError::Throttled { .. })), Some(meter)) = (&answer, &core.meter) {
        meter.login_throttled();
    }
    answer
}

async fn attempt(core: Arc<Core>, req: Request) -> Result<Response, RouteError> {
    let (parts, body) = req.into_parts();
    let ip = client_ip(&parts.extensions, &parts.headers, &core.settings.trusted_proxies);
    let source = ip.map(IpNet::subscriber);
    let ip_text = ip.map(|ip| ip.to_string());
    let now = core.now();

    throttle_source(&core, source, &parts.extensions, now).await?;

    let data = body::parse(Request::from_parts(parts.clone(), body)).await?;
    let (username, password) = validate_fields(&data)?;

    let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let failed = |reason: &str, username: Option<String>| tessera_core::Event {
        username,
        ip: ip_text.clone(),
        user_agent: user_agent.clone(),
        ..tessera_core::Event::new(EventKind::LoginFailed { reason: reason.into() }, now)
    };
    let attempt = Attempt { source, ip: ip_text.clone(), user_agent: user_agent.clone(), now };
    let user = verify_credentials(&core, &attempt, &username, password).await?;

    let client = find_client(&core, &parts.headers, &data).await?;
    let policy = if core.settings.refresh_token_on_login { IfPairHasToken::Renew } else { IfPairHasToken::Reuse };
    let request = TokenRequest::new(&user, &client)
        .if_exists(policy)
        .device(user_agent.clone(), ip_text.clone())
        .by(tessera_core::Revoker::User)
        .source("login");
    let pair = match core.token_for_pair(request).await {
        Ok(pair) => pair,
        Err(PairTokenError::Store(e)) => return Err(e.into()),
        // Login reuses or renews: it never refuses a pair's token.
        Err(PairTokenError::Exists(_)) => return Err(AuthError::Unavailable.into()),
        Err(PairTokenError::DeviceLimit { max_devices }) => return Err(AuthError::DeviceLimit { max_devices }.into()),
    };
    // The account may have been deactivated (or deleted) while the password was checked: the
    // activity must still hold now that the token exists, or the token goes and nobody sees it.
    // A deactivation after this read comes after the login, in that order.
    if !core.store.user_by_id(user.id).await?.is_some_and(|u| u.is_active) {
        if pair.created {
            let why = Revocation::Revoked(tessera_core::Revoker::Admin);
            core.revoke(&pair.token, why, Some((&user, client.name.as_str())), ip_text.clone()).await?;
        }
        core.publish(failed("inactive user", Some(user.username.to_string())));
        return Err(AuthError::BadCredentials.into());
    }
    let (token, secret) = (pair.token, pair.secret);

    let mut logged_in = core.event(EventKind::UserLoggedIn, Some((&user, client.name.as_str())), ip_text, Actor::User);
    (logged_in.user_agent, logged_in.token_id) = (user_agent, Some(token.id));
    core.publish(logged_in);
    let mut body = Map::new();
    body.insert("expiry".into(), datetime_or_null(token.expiry, |d| core.settings.format_expiry(d)));
    body.insert("token".into(), Value::String(secret.expose().to_string()));
    if !core.settings.login_response_user_fields.is_empty() {
        body.insert("user".into(), user_fields(&core, &user));
    }
    Ok(json_ok(Value::Object(body)))
}

/// Where a login attempt comes from, for the throttle and the `LoginFailed` events.
pub(crate) struct Attempt {
    /// The source's throttle key (an IPv4 address, an IPv6 /64), when known.
    pub(crate) source: Option<IpNet>,
    /// The client address, for events.
    pub(crate) ip: Option<String>,
    /// The user agent, for events.
    pub(crate) user_agent: Option<String>,
    /// When it began.
    pub(crate) now: DateTime<Utc>,
}

/// The per-source login budget: every attempt counts against its source's (before the body is
/// even read). Without a source (no `ConnectInfo`) the budget cannot apply, and the operator is
/// told once.
pub(crate) async fn throttle_source(
    core: &Core,
    source: Option<IpNet>,
    extensions: &axum::http::Extensions,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    if let Some(rate) = core.settings.login_throttle_per_ip {
        match source {
            Some(source) => throttle(core.login_limiter.acquire(&format!("login:ip:{source}"), rate, now).await)?,
            None => warn_no_connect_info(extensions),
        }
    }
    Ok(())
}

/// The password check of a login (the API's, and the admin UI's staff login): the per-username
/// budgets, one Argon2id verification whether or not the user exists, and a `LoginFailed` event
/// for every refusal. Unknown user, wrong password and inactive user all answer
/// [`AuthError::BadCredentials`]; the caller decides what else a user must be.
pub(crate) async fn verify_credentials(
    core: &Core,
    attempt: &Attempt,
    username: &str,
    password: String,
) -> Result<User, AuthError> {
    let now = attempt.now;
    let failed = |reason: &str, username: Option<String>| tessera_core::Event {
        username,
        ip: attempt.ip.clone(),
        user_agent: attempt.user_agent.clone(),
        ..tessera_core::Event::new(EventKind::LoginFailed { reason: reason.into() }, now)
    };
    // A name no user can have — over Django's 150 characters, or with a character its validator
    // refuses — is refused before any work: no limiter key, no lookup, no hash. Answering it
    // faster than a real check reveals nothing, because the answer depends on how the name is
    // spelled, never on which users exist; every name that could exist costs one Argon2id check.
    let Ok(name) = username.parse::<Username>() else {
        // Not the name: it may be 64 KB of anything.
        core.publish(failed("invalid username", None));
        return Err(AuthError::BadCredentials);
    };

    let budgets = LoginBudgets::new(core, &name, attempt.source, now).await?;
    let grant = budgets.reserve(core, now).await?;

    let user = match core.store.user_by_username(&name).await {
        Ok(user) => user,
        Err(e) => {
            // Nothing was verified: the slots go back.
            budgets.release(core, grant.as_ref(), now).await;
            return Err(AuthError::from_store(e));
        }
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let pw = password;
    // Unknown users are verified against a dummy hash: they cost the same as a wrong password. A
    // Django hash kept by `tessera import durin` is verified as Django does and, when right,
    // re-hashed to Argon2id in the same check (the same pool, the same cap).
    let failed_check = Checked { verified: false, rehash: None };
    let checked = core.password_checks.run(move || check_password_or_dummy(hash.as_deref(), &pw), failed_check).await;
    let verified = checked.verified;
    let user = match user {
        Some(user) if verified && user.is_active => user,
        other => {
            // The reserved slots stay taken: they are this failure's record.
            let reason = match other {
                None => "unknown user",
                Some(u) if !u.is_active && verified => "inactive user",
                // Imported from durin with a hash Tessera refuses: the operator's log says why
                // (the client's answer is the same as for a wrong password).
                Some(u) if tessera_core::password::django::is_must_reset(&u.password_hash) => "password must be reset",
                Some(_) => "wrong password",
            };
            core.publish(failed(reason, Some(username.to_string())));
            return Err(AuthError::BadCredentials);
        }
    };
    budgets.release(core, grant.as_ref(), now).await;
    budgets.remember_source(core, now).await;
    if let Some(rehash) = checked.rehash {
        // The stored hash is replaced only while it is still the one verified: an admin's password
        // change in between wins. A failure leaves the Django hash, which still verifies.
        if let Err(e) = core.store.upgrade_password_hash(user.id, &user.password_hash, &rehash).await {
            tracing::warn!(user_id = %user.id, error = %e, "could not re-hash an imported password");
        }
    }

    Ok(user)
}

/// The login throttle's per-username budgets for one attempt at one username from one source.
struct LoginBudgets {
    /// The username from this source; the username from anywhere (unless the source is known).
    keys: Vec<(String, Rate)>,
    /// The marker "this source logged into this username", when known sources are exempt.
    known: Option<String>,
}

impl LoginBudgets {
    async fn new(core: &Core, name: &Username, source: Option<IpNet>, now: DateTime<Utc>) -> Result<Self, AuthError> {
        let settings = &core.settings;
        let mut keys = Vec::new();
        if let (Some(rate), Some(source)) = (settings.login_throttle_per_username_and_ip, source) {
            keys.push((format!("login:user-ip:{source}:{name}"), rate));
        }
        let remembering = settings.login_known_source_ttl > chrono::TimeDelta::zero();
        let known = match source {
            Some(source) if remembering && settings.login_throttle_per_username.is_some() => {
                Some(format!("login:known:{source}:{name}"))
            }
            _ => None,
        };
        if let Some(rate) = settings.login_throttle_per_username {
            // A source this account logged in from recently is not held to the account's budget:
            // failures from elsewhere must not lock the owner out of a place they use.
            let known_source = match &known {
                Some(key) => core.login_limiter.remembers(key, now).await.map_err(unavailable)?,
                None => false,
            };
            if !known_source {
                keys.push((format!("login:user:{name}"), rate));
            }
        }
        Ok(LoginBudgets { keys, known })
    }

    fn budgets(&self) -> Vec<Budget<'_>> {
        self.keys.iter().map(|(key, rate)| Budget { key, rate: *rate }).collect()
    }

    /// One slot in every budget, atomically — or 429 with the longest wait, having taken none.
    async fn reserve(&self, core: &Core, now: DateTime<Utc>) -> Result<Option<Grant>, AuthError> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        match core.login_limiter.reserve(&self.budgets(), now).await {
            Ok(Reservation::Granted(grant)) => Ok(Some(grant)),
            Ok(Reservation::Throttled { wait_secs }) => Err(AuthError::Throttled { wait_secs }),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Gives the slots back (the password was right, or nothing was verified).
    async fn release(&self, core: &Core, grant: Option<&Grant>, now: DateTime<Utc>) {
        if let Some(grant) = grant
            && let Err(e) = core.login_limiter.release(&self.budgets(), grant, now).await
        {
            tracing::warn!(error = %e, "could not give back a login throttle slot");
        }
    }

    /// Remembers that this source logged into this account.
    async fn remember_source(&self, core: &Core, now: DateTime<Utc>) {
        let ttl = core.settings.login_known_source_ttl.to_std().unwrap_or_default();
        if let Some(key) = &self.known
            && let Err(e) = core.login_limiter.remember(key, ttl, now).await
        {
            tracing::warn!(error = %e, "could not remember a login's source");
        }
    }
}

fn unavailable(e: LimiterError) -> AuthError {
    tracing::warn!(error = %e, "login throttle unavailable");
    AuthError::Unavailable
}

/// The cap on concurrent password checks, and a gauge of them ([`Tessera::password_checks`]).
///
/// Argon2id is deliberately slow and takes 19 MiB per check: checks run off the async workers, at
/// most [`PasswordChecks::limit`] at once, so that a flood of logins queues instead of exhausting
/// memory. The permit is held by the check itself, not by the request: a client that resets its
/// connection drops its request, but a check already started keeps its permit until it ends, so
/// no number of aborted requests runs more checks at once than the limit.
///
/// [`Tessera::password_checks`]: crate::Tessera::password_checks
#[derive(Debug, Clone)]
pub struct PasswordChecks {
    inner: Arc<PasswordChecksInner>,
}

#[derive(Debug)]
struct PasswordChecksInner {
    permits: Arc<tokio::sync::Semaphore>,
    limit: usize,
    running: AtomicUsize,
    peak: AtomicUsize,
    threads: HashingThreads,
}

impl PasswordChecks {
    /// At most `limit` (at least 1) checks at once.
    pub(crate) fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        PasswordChecks {
            inner: Arc::new(PasswordChecksInner {
                permits: Arc::new(tokio::sync::Semaphore::new(limit)),
                limit,
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                threads: HashingThreads::new(limit),
            }),
        }
    }

    /// The default limit: two per core.
    pub(crate) fn default_limit() -> usize {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) * 2
    }

    /// How many checks may run at once.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// How many checks are running now.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::SeqCst)
    }

    /// The most checks that ever ran at once.
    pub fn peak(&self) -> usize {
        self.inner.peak.load(Ordering::SeqCst)
    }

    /// Runs `check` on a hashing thread once a permit is free; `failed` if it could not run (or
    /// panicked).
    pub(crate) async fn run<T: Send + 'static>(&self, check: impl FnOnce() -> T + Send + 'static, failed: T) -> T {
        let Ok(permit) = self.inner.permits.clone().acquire_owned().await else { return failed };
        let inner = self.inner.clone();
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job = Box::new(move || {
            // Moved in: released when the check ends, whether or not anyone still awaits it.
            let permit = permit;
            let running = inner.running.fetch_add(1, Ordering::SeqCst) + 1;
            inner.peak.fetch_max(running, Ordering::SeqCst);
            // Counted down however the check ends, a panic included.
            let counted = Running(&inner.running);
            let verified = check();
            // The check is over before its answer is given: whoever gets the answer finds the gauge
            // down and the permit back.
            drop(counted);
            drop(permit);
            // The request may be gone: nobody to answer then.
            let _ = answer.send(verified);
        });
        if !self.inner.threads.submit(job) {
            return failed;
        }
        answered.await.unwrap_or(failed)
    }
}

/// Counts a running check down when dropped.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One password check, as a hashing thread runs it.
type HashingJob = Box<dyn FnOnce() + Send>;

/// The threads that run password checks: as many as checks may run at once (so a check that holds
/// a permit never waits for a thread), started on the first login, and on Linux each at a lower
/// scheduling priority (nice [`HASHING_NICE`]) than the async workers.
///
/// A check is tens of milliseconds of CPU time (Argon2id, 19 MiB) that anyone can ask for at will;
/// an authenticated request is microseconds. At equal priority, on a machine with fewer cores than
/// checks running, the scheduler shares the CPU evenly between the hashing threads and the
/// workers, so a login flood took two thirds of a one-core server and authenticated requests
/// slowed to 0.4× (bench/run's login-flood row). At nice 10 a busy worker outweighs a hashing
/// thread about ten to one: authenticated traffic keeps most of the CPU, and logins still get
/// every cycle the workers leave (they are slower under load, never starved, as they would be at
/// `SCHED_IDLE`). Tokio's blocking pool is not used for them: its threads run other blocking work
/// too, and a thread's priority cannot be raised back without privileges.
#[derive(Debug)]
struct HashingThreads {
    count: usize,
    queue: std::sync::OnceLock<std::sync::mpsc::Sender<HashingJob>>,
}

/// The nice value of the hashing threads (Linux; 0 is the default, 19 the lowest priority).
const HASHING_NICE: i32 = 10;

impl HashingThreads {
    fn new(count: usize) -> Self {
        HashingThreads { count: count.max(1), queue: std::sync::OnceLock::new() }
    }

    /// Hands `job` to a hashing thread (starting them the first time); `false` when no thread
    /// could be started.
    fn submit(&self, job: HashingJob) -> bool {
        self.queue.get_or_init(|| Self::start(self.count)).send(job).is_ok()
    }

    /// Starts `count` threads taking jobs from one queue; they end when the queue's sender is
    /// dropped (with the last clone of the [`PasswordChecks`]).
    fn start(count: usize) -> std::sync::mpsc::Sender<HashingJob> {
        let (jobs, queue) = std::sync::mpsc::channel::<HashingJob>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..count {
            let queue = queue.clone();
            let started = std::thread::Builder::new().name(format!("tessera-hash-{i}")).spawn(move || {
                lower_priority();
                loop {
                    let job = match queue.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    // A panicking check drops its answer (the login fails closed) and its permit;
                    // the thread goes on.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
            if let Err(e) = started {
                tracing::error!(error = %e, "could not start a password-hashing thread");
            }
        }
        jobs
    }
}

/// Lowers the calling thread's scheduling priority to [`HASHING_NICE`] (Linux: `setpriority` on
/// the thread id sets that thread's nice value alone). Elsewhere, and where it is refused, the
/// thread keeps the process's priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        if current < HASHING_NICE
            && let Err(e) = rustix::process::setpriority_process(Some(tid), HASHING_NICE)
        {
            tracing::debug!(error = %e, "could not lower the password-hashing thread's priority");
        }
    }
}

fn throttle(decision: Result<Decision, LimiterError>) -> Result<(), AuthError> {
    match decision {
        Ok(Decision::Allowed) => Ok(()),
        Ok(Decision::Throttled { wait_secs }) => Err(AuthError::Throttled { wait_secs }),
        Err(e) => Err(unavailable(e)),
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
    // Staff sessions are the admin UI's alone: the API never issues one (crate::staff).
    if crate::staff::is_staff_client(&name) {
        return Err(AuthError::UnknownClient.into());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_run_on_low_priority_threads_and_survive_a_panic() {
        let checks = PasswordChecks::new(2);
        let (name, nice) = checks
            .run(
                || {
                    let name = std::thread::current().name().map(str::to_string);
                    #[cfg(target_os = "linux")]
                    let nice = rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok();
                    #[cfg(not(target_os = "linux"))]
                    let nice = None;
                    (name, nice)
                },
                (None, None),
            )
            .await;
        assert!(name.is_some_and(|n| n.starts_with("tessera-hash-")), "ran on a hashing thread");
        if cfg!(target_os = "linux") {
            assert!(nice.is_some_and(|n| n >= HASHING_NICE), "the hashing thread's nice value: {nice:?}");
        }
        // A check that panics answers `failed`, releases its permit, and the threads go on.
        let failed = checks.run(|| -> bool { panic!("a check that panics") }, false).await;
        assert!(!failed);
        for _ in 0..4 {
            assert!(checks.run(|| true, false).await, "the threads still answer");
        }
        assert_eq!(checks.running(), 0);
        assert_eq!(checks.inner.permits.available_permits(), 2, "every permit came back");
    }
}
