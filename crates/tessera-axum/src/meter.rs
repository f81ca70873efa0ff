//! Counting what happens, once, for both the usage analytics and the Prometheus metrics.
//!
//! Every count is a cumulative atomic: the metrics render them as they are, and the analytics
//! recorder (`analytics.rs`) writes the difference since its last flush. A request touches only
//! atomics — its client's [`ClientMeter`] and a few global ones — never a lock shared by all
//! requests: the cached authenticator keeps each entry's `ClientMeter` beside its principal, so a
//! cached request does not even look its client up. (An uncached one reads the registry under a
//! read lock, beside the store read it makes anyway.)
//!
//! Label values are client names, which admins create, and fixed enums: never a user, a token or a
//! path. Counts of a client renamed or deleted stay under the old name until the process restarts.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tessera_core::usage::{AuthOutcome, LoginOutcome, UNKNOWN_CLIENT};
use tessera_core::{Event, EventKind, Revoker};

/// How many [`Revoker`]s there are (`tessera_tokens_revoked_total`'s `by`).
pub(crate) const REVOKERS: [Revoker; 4] = [Revoker::User, Revoker::Admin, Revoker::Cli, Revoker::DeviceLimit];

pub(crate) fn revoker_index(by: Revoker) -> usize {
    match by {
        Revoker::User => 0,
        Revoker::Admin => 1,
        Revoker::Cli => 2,
        Revoker::DeviceLimit => 3,
    }
}

/// One client's counters (or [`UNKNOWN_CLIENT`]'s).
#[derive(Debug)]
pub(crate) struct ClientMeter {
    pub(crate) name: Arc<str>,
    pub(crate) auth: [AtomicU64; 6],
    pub(crate) login: [AtomicU64; 3],
    pub(crate) issued: AtomicU64,
    pub(crate) revoked: [AtomicU64; 4],
}

/// A client's counts at one moment, in the order of `usage_daily`'s columns: requests by
/// [`AuthOutcome`], logins by [`LoginOutcome`], tokens issued, tokens revoked (all revokers).
pub(crate) type Snapshot = [u64; 11];

impl ClientMeter {
    fn new(name: &str) -> Self {
        ClientMeter {
            name: Arc::from(name),
            auth: Default::default(),
            login: Default::default(),
            issued: AtomicU64::new(0),
            revoked: Default::default(),
        }
    }

    pub(crate) fn auth(&self, outcome: AuthOutcome) {
        self.auth[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn login(&self, outcome: LoginOutcome) {
        self.login[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut s = [0; 11];
        for (i, n) in self.auth.iter().enumerate() {
            s[i] = n.load(Ordering::Relaxed);
        }
        for (i, n) in self.login.iter().enumerate() {
            s[6 + i] = n.load(Ordering::Relaxed);
        }
        s[9] = self.issued.load(Ordering::Relaxed);
        s[10] = self.revoked.iter().map(|n| n.load(Ordering::Relaxed)).sum();
        s
    }
}

/// A histogram over fixed bucket bounds, in nanoseconds (rendered in seconds).
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [u64],
    /// Per bucket (not cumulative); the last is +Inf.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
    /// The `metrics` facade's histogram of the same name, once the facade is published to: every
    /// observation is recorded there too (a histogram cannot be pushed as a total).
    #[cfg(feature = "metrics")]
    pub(crate) facade: std::sync::OnceLock<metrics::Histogram>,
}

/// Authentication durations: sub-millisecond buckets (a cached check is microseconds).
const AUTH_BOUNDS: &[u64] = &[
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];
/// Invalidation lag: milliseconds to seconds.
const LAG_BOUNDS: &[u64] = &[
    1_000_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

impl Histogram {
    fn new(bounds: &'static [u64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            facade: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let i = self.bounds.iter().position(|b| nanos <= *b).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        if let Some(facade) = self.facade.get() {
            facade.record(elapsed.as_secs_f64());
        }
    }

    /// The series of one histogram, labelled with `labels` (`key="value"` pairs, or nothing);
    /// the family's `# HELP` and `# TYPE` are the caller's.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let (open, sep, close) = if labels.is_empty() { ("", "", "") } else { ("{", ",", "}") };
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{}\"}} {cumulative}", seconds(*bound));
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let _ = writeln!(out, "{name}_sum{open}{labels}{close} {}", seconds(self.sum_nanos.load(Ordering::Relaxed)));
        let _ = writeln!(out, "{name}_count{open}{labels}{close} {cumulative}");
    }
}

fn seconds(nanos: u64) -> String {
    let text = format!("{:.9}", nanos as f64 / 1e9);
    let text = text.trim_end_matches('0');
    text.strip_suffix('.').map_or_else(|| text.to_string(), |t| format!("{t}.0"))
}

/// Whether the cached authenticator answered: `hit` (from the cache), `miss` (the store was read),
/// `bypass` (an uncached layer, or a cache not trusted right now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheResult {
    Hit,
    Miss,
    Bypass,
}

/// What a store error interrupted (`tessera_store_errors_total`'s `op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreOp {
    /// A request's token lookup.
    Authenticate,
    /// Writing buffered last-used times and sliding expiries.
    LastUsed,
    /// Writing the audit log.
    Audit,
    /// Writing usage analytics.
    Usage,
    /// Counting live tokens for `tessera_active_tokens`.
    CountTokens,
}

pub(crate) const STORE_OPS: [(StoreOp, &str); 5] = [
    (StoreOp::Authenticate, "authenticate"),
    (StoreOp::LastUsed, "last_used"),
    (StoreOp::Audit, "audit"),
    (StoreOp::Usage, "usage"),
    (StoreOp::CountTokens, "count_tokens"),
];

/// What one authentication found, for the caller to count once the request's outcome is known.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// The token's client's counters, once the token was found (`None`: an invalid token).
    pub(crate) client: Option<Arc<ClientMeter>>,
    /// Whether the cache answered; `None` when no lookup was made (no token, a malformed one).
    pub(crate) cache: Option<CacheResult>,
}

/// A guard's refusal of an authenticated request, left in the response's extensions for the
/// authentication layer, which counts each request once, when its outcome is known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardRefusal(pub(crate) AuthOutcome);

/// The outcome an authentication error counts as, when it counts as one: a missing token is not
/// an authentication, and a store that cannot answer is a store error.
pub(crate) fn outcome_of(error: &crate::error::AuthError) -> Option<AuthOutcome> {
    use crate::error::AuthError as E;
    match error {
        E::InvalidToken | E::NoCredentials | E::TokenHasSpaces | E::SeveralHeaders => Some(AuthOutcome::InvalidToken),
        E::ExpiredToken => Some(AuthOutcome::Expired),
        E::InactiveUser => Some(AuthOutcome::InactiveUser),
        E::PermissionDenied => Some(AuthOutcome::ForbiddenClient),
        E::Throttled { .. } => Some(AuthOutcome::Throttled),
        _ => None,
    }
}

/// One metric family: its name, its Prometheus type and its help text (also the `metrics`
/// facade's description).
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) name: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) help: &'static str,
}

pub(crate) const AUTHENTICATIONS: Family = Family {
    name: "tessera_authentications_total",
    kind: "counter",
    help: "Requests that presented a token, by client and outcome (invalid tokens under client \"unknown\").",
};
pub(crate) const AUTH_DURATION: Family = Family {
    name: "tessera_authentication_duration_seconds",
    kind: "histogram",
    help: "Time to verify a request's token (header, cache or store, expiry, user).",
};
pub(crate) const LOGINS: Family =
    Family { name: "tessera_logins_total", kind: "counter", help: "Login attempts by client and outcome." };
pub(crate) const ISSUED: Family =
    Family { name: "tessera_tokens_issued_total", kind: "counter", help: "Tokens issued, by client." };
pub(crate) const REVOKED: Family =
    Family { name: "tessera_tokens_revoked_total", kind: "counter", help: "Tokens revoked, by client and by whom." };
pub(crate) const THROTTLED: Family = Family {
    name: "tessera_throttled_total",
    kind: "counter",
    help: "Requests and logins the throttle refused, by client (logins under \"unknown\").",
};
pub(crate) const CACHE_REQUESTS: Family = Family {
    name: "tessera_cache_requests_total",
    kind: "counter",
    help: "Token verifications by cache result: hit, miss (the store was read), bypass (no cache, or not trusted).",
};
pub(crate) const CACHE_TRUSTED: Family = Family {
    name: "tessera_cache_trusted",
    kind: "gauge",
    help: "1 while the token cache is trusted (invalidations followed), else 0.",
};
pub(crate) const STORE_ERRORS: Family =
    Family { name: "tessera_store_errors_total", kind: "counter", help: "Store errors by operation." };
pub(crate) const INVALIDATION_LAG: Family = Family {
    name: "tessera_invalidation_lag_seconds",
    kind: "histogram",
    help: "Age of an invalidation when applied to the token cache. source=\"bus\": since its bus message was \
             published (by the publisher's clock); source=\"log\": for each new invalidation-log entry, the time \
             since the previous read of the log (an upper bound on how long it waited).",
};
pub(crate) const ACTIVE_TOKENS: Family = Family {
    name: "tessera_active_tokens",
    kind: "gauge",
    help: "Tokens in the store per client, counted once a minute.",
};

/// Every counter of one Tessera.
#[derive(Debug)]
pub(crate) struct Meter {
    clients: RwLock<HashMap<Arc<str>, Arc<ClientMeter>>>,
    pub(crate) unknown: Arc<ClientMeter>,
    pub(crate) auth_duration: Histogram,
    /// The age of each invalidation a bus delivered, when applied: now less its publish time.
    pub(crate) invalidation_lag_bus: Histogram,
    /// For each new invalidation-log entry applied, the time since the log's previous read.
    pub(crate) invalidation_lag_log: Histogram,
    pub(crate) cache: [AtomicU64; 3],
    pub(crate) store_errors: [AtomicU64; 5],
    /// Live tokens per client, as last counted (`tessera_active_tokens`).
    pub(crate) active_tokens: Mutex<Vec<(String, u64)>>,
    /// Whether anything reads these counts as metrics (the Prometheus text or the facade), as
    /// opposed to usage analytics alone: only then are the live tokens counted, a scan of every
    /// token's index entry once a minute that nothing else needs.
    pub(crate) exported: bool,
    /// Whether the counts are also pushed to the `metrics` facade (`facade.rs`).
    #[cfg(feature = "metrics")]
    pub(crate) to_facade: bool,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            clients: RwLock::new(HashMap::new()),
            unknown: Arc::new(ClientMeter::new(UNKNOWN_CLIENT)),
            auth_duration: Histogram::new(AUTH_BOUNDS),
            invalidation_lag_bus: Histogram::new(LAG_BOUNDS),
            invalidation_lag_log: Histogram::new(LAG_BOUNDS),
            cache: Default::default(),
            store_errors: Default::default(),
            active_tokens: Mutex::new(Vec::new()),
            exported: false,
            #[cfg(feature = "metrics")]
            to_facade: false,
        }
    }
}

impl Meter {
    /// The counters of the client named `name` (created on first use).
    pub(crate) fn client(&self, name: &str) -> Arc<ClientMeter> {
        if let Some(found) = self.clients.read().unwrap_or_else(|p| p.into_inner()).get(name) {
            return found.clone();
        }
        let mut clients = self.clients.write().unwrap_or_else(|p| p.into_inner());
        clients.entry(Arc::from(name)).or_insert_with(|| Arc::new(ClientMeter::new(name))).clone()
    }

    /// The counters of an event's client ([`UNKNOWN_CLIENT`]'s when it names none).
    fn client_of(&self, event: &Event) -> Arc<ClientMeter> {
        event.client.as_deref().map_or_else(|| self.unknown.clone(), |c| self.client(c))
    }

    /// Every client's counters, [`UNKNOWN_CLIENT`]'s included.
    pub(crate) fn all_clients(&self) -> Vec<Arc<ClientMeter>> {
        let clients = self.clients.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<Arc<ClientMeter>> = clients.values().cloned().collect();
        drop(clients);
        all.push(self.unknown.clone());
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Counts one verification's duration and cache result (its outcome is counted once known).
    pub(crate) fn verification(&self, started: std::time::Instant, observed: &Observed) {
        self.auth_duration.observe(started.elapsed());
        if let Some(result) = observed.cache {
            self.cache(result);
        }
    }

    /// Counts a request's outcome under the token's client ([`UNKNOWN_CLIENT`] when none was found).
    pub(crate) fn outcome(&self, client: Option<&ClientMeter>, outcome: AuthOutcome) {
        client.unwrap_or(&self.unknown).auth(outcome);
    }

    pub(crate) fn cache(&self, result: CacheResult) {
        self.cache[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn store_error(&self, op: StoreOp) {
        self.store_errors[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A login attempt that ended before any event said how (the login throttle refused it).
    pub(crate) fn login_throttled(&self) {
        self.unknown.login(LoginOutcome::Throttled);
    }

    /// Counts what an event reports: logins, tokens issued and revoked.
    pub(crate) fn event(&self, event: &Event) {
        match &event.kind {
            EventKind::UserLoggedIn => self.client_of(event).login(LoginOutcome::Ok),
            // A failed login never reads its client: it may not exist.
            EventKind::LoginFailed { .. } => self.unknown.login(LoginOutcome::Failed),
            EventKind::TokenCreated { .. } => {
                self.client_of(event).issued.fetch_add(1, Ordering::Relaxed);
            }
            EventKind::TokenRevoked { by, .. } => {
                self.client_of(event).revoked[revoker_index(*by)].fetch_add(1, Ordering::Relaxed);
            }
            EventKind::UserLoggedOut => {
                self.client_of(event).revoked[revoker_index(Revoker::User)].fetch_add(1, Ordering::Relaxed);
            }
            // Under the client the logout-all came from: the event does not say which clients
            // the tokens were on.
            EventKind::LogoutAll { tokens } => {
                self.client_of(event).revoked[revoker_index(Revoker::User)].fetch_add(*tokens, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    pub(crate) fn set_active_tokens(&self, counts: Vec<(String, u64)>) {
        *self.active_tokens.lock().unwrap_or_else(|p| p.into_inner()) = counts;
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric; `cache_trusted` is the
    /// cache's state now.
    pub(crate) fn render(&self, cache_trusted: bool) -> String {
        let mut out = String::with_capacity(8192);
        let clients = self.all_clients();
        let family = |out: &mut String, family: &Family| {
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", family.name, family.help, family.name, family.kind);
        };
        family(&mut out, &AUTHENTICATIONS);
        for c in &clients {
            for outcome in AuthOutcome::ALL {
                let n = c.auth[outcome.index()].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "tessera_authentications_total{{client=\"{}\",outcome=\"{}\"}} {n}",
                    escape(&c.name),
                    outcome.as_str()
                );
            }
        }
        family(&mut out, &AUTH_DURATION);
        self.auth_duration.render(&mut out, AUTH_DURATION.name, "");
        family(&mut out, &LOGINS);
        for c in &clients {
            for outcome in LoginOutcome::ALL {
                let n = c.login[outcome.index()].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "tessera_logins_total{{client=\"{}\",outcome=\"{}\"}} {n}",
                    escape(&c.name),
                    outcome.as_str()
                );
            }
        }
        family(&mut out, &ISSUED);
        for c in &clients {
            let n = c.issued.load(Ordering::Relaxed);
            let _ = writeln!(out, "tessera_tokens_issued_total{{client=\"{}\"}} {n}", escape(&c.name));
        }
        family(&mut out, &REVOKED);
        for c in &clients {
            for by in REVOKERS {
                let n = c.revoked[revoker_index(by)].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "tessera_tokens_revoked_total{{client=\"{}\",by=\"{}\"}} {n}",
                    escape(&c.name),
                    by.as_str()
                );
            }
        }
        family(&mut out, &THROTTLED);
        for c in &clients {
            let n = c.auth[AuthOutcome::Throttled.index()].load(Ordering::Relaxed)
                + c.login[LoginOutcome::Throttled.index()].load(Ordering::Relaxed);
            let _ = writeln!(out, "tessera_throttled_total{{client=\"{}\"}} {n}", escape(&c.name));
        }
        family(&mut out, &CACHE_REQUESTS);
        for (i, result) in ["hit", "miss", "bypass"].iter().enumerate() {
            let n = self.cache[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "tessera_cache_requests_total{{result=\"{result}\"}} {n}");
        }
        family(&mut out, &CACHE_TRUSTED);
        let _ = writeln!(out, "tessera_cache_trusted {}", u8::from(cache_trusted));
        family(&mut out, &STORE_ERRORS);
        for (op, name) in STORE_OPS {
            let n = self.store_errors[op as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "tessera_store_errors_total{{op=\"{name}\"}} {n}");
        }
        family(&mut out, &INVALIDATION_LAG);
        self.invalidation_lag_bus.render(&mut out, INVALIDATION_LAG.name, "source=\"bus\"");
        self.invalidation_lag_log.render(&mut out, INVALIDATION_LAG.name, "source=\"log\"");
        family(&mut out, &ACTIVE_TOKENS);
        for (client, n) in self.active_tokens.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "tessera_active_tokens{{client=\"{}\"}} {n}", escape(client));
        }
        out
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_in_seconds_and_labels_escaped() {
        let meter = Meter::default();
        meter.auth_duration.observe(Duration::from_micros(7));
        meter.auth_duration.observe(Duration::from_millis(3));
        meter.auth_duration.observe(Duration::from_secs(5));
        meter.client("we\"b").auth(AuthOutcome::Ok);
        let text = meter.render(true);
        assert!(text.contains("tessera_authentication_duration_seconds_bucket{le=\"0.00001\"} 1\n"), "{text}");
        assert!(text.contains("tessera_authentication_duration_seconds_bucket{le=\"0.005\"} 2\n"), "{text}");
        assert!(text.contains("tessera_authentication_duration_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("tessera_authentication_duration_seconds_sum 5.003007\n"), "{text}");
        assert!(text.contains("tessera_authentications_total{client=\"we\\\"b\",outcome=\"ok\"} 1\n"), "{text}");
        assert!(text.contains("tessera_cache_trusted 1\n"));
        assert_eq!(seconds(1_000_000_000), "1.0");
        assert_eq!(seconds(2_500_000), "0.0025");
    }
}
