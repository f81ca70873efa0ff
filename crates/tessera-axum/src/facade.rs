//! Every metric through the [`metrics`] facade too (feature `metrics`, opted into with
//! [`TesseraBuilder::metrics_facade`](crate::TesseraBuilder::metrics_facade)), for a service that
//! exports with its own recorder: the same names, labels, units and help texts as `/metrics`.
//!
//! Kept off the request path: the counts stay the [`Meter`]'s atomics, and a background task
//! pushes them to the facade once a [`PUSH_EVERY`] — counters with [`metrics::Counter::absolute`]
//! (the totals since start), gauges with [`metrics::Gauge::set`] — and once more at
//! [`Tessera::shutdown`](crate::Tessera::shutdown). A histogram cannot be pushed as a total, so
//! from the task's start each observation is also recorded into the facade's histogram (a
//! `OnceLock` read beside the atomic increments; nothing at all without the feature). The
//! recorder must be installed before [`Tessera::start`](crate::Tessera::start): handles are taken
//! from it when the task starts.

use crate::meter::{
    ACTIVE_TOKENS, AUTH_DURATION, AUTHENTICATIONS, CACHE_REQUESTS, CACHE_TRUSTED, Family, INVALIDATION_LAG, ISSUED,
    LOGINS, Meter, REVOKED, REVOKERS, STORE_ERRORS, STORE_OPS, THROTTLED, revoker_index,
};
use crate::state::Core;
use metrics::{SharedString, Unit};
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tessera_core::usage::{AuthOutcome, LoginOutcome};

/// How often the counters and gauges are pushed to the facade.
pub(crate) const PUSH_EVERY: Duration = Duration::from_secs(1);

/// The background task: describes every metric, connects the histograms, then pushes the counts
/// every [`PUSH_EVERY`] until the Tessera is dropped.
pub(crate) async fn publish(core: Weak<Core>) {
    let Some(meter) = core.upgrade().and_then(|core| core.meter.clone()) else { return };
    describe();
    let _ = meter.auth_duration.facade.set(metrics::histogram!(AUTH_DURATION.name));
    let _ = meter.invalidation_lag_bus.facade.set(metrics::histogram!(INVALIDATION_LAG.name, "source" => "bus"));
    let _ = meter.invalidation_lag_log.facade.set(metrics::histogram!(INVALIDATION_LAG.name, "source" => "log"));
    let mut tick = tokio::time::interval(PUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(core) = core.upgrade() else { return };
        push(&meter, core.cache.trusted());
    }
}

fn describe() {
    let counters = [AUTHENTICATIONS, LOGINS, ISSUED, REVOKED, THROTTLED, CACHE_REQUESTS, STORE_ERRORS];
    for Family { name, help, .. } in counters {
        metrics::describe_counter!(name, Unit::Count, help);
    }
    for Family { name, help, .. } in [AUTH_DURATION, INVALIDATION_LAG] {
        metrics::describe_histogram!(name, Unit::Seconds, help);
    }
    metrics::describe_gauge!(CACHE_TRUSTED.name, help_of(&CACHE_TRUSTED));
    metrics::describe_gauge!(ACTIVE_TOKENS.name, Unit::Count, help_of(&ACTIVE_TOKENS));
}

fn help_of(family: &Family) -> SharedString {
    SharedString::const_str(family.help)
}

/// Pushes every counter's total and every gauge to the facade's recorder.
pub(crate) fn push(meter: &Meter, cache_trusted: bool) {
    let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    for c in meter.all_clients() {
        let client = c.name.to_string();
        for outcome in AuthOutcome::ALL {
            metrics::counter!(AUTHENTICATIONS.name, "client" => client.clone(), "outcome" => outcome.as_str())
                .absolute(load(&c.auth[outcome.index()]));
        }
        for outcome in LoginOutcome::ALL {
            metrics::counter!(LOGINS.name, "client" => client.clone(), "outcome" => outcome.as_str())
                .absolute(load(&c.login[outcome.index()]));
        }
        metrics::counter!(ISSUED.name, "client" => client.clone()).absolute(load(&c.issued));
        for by in REVOKERS {
            metrics::counter!(REVOKED.name, "client" => client.clone(), "by" => by.as_str())
                .absolute(load(&c.revoked[revoker_index(by)]));
        }
        let throttled = load(&c.auth[AuthOutcome::Throttled.index()]) + load(&c.login[LoginOutcome::Throttled.index()]);
        metrics::counter!(THROTTLED.name, "client" => client).absolute(throttled);
    }
    for (i, result) in ["hit", "miss", "bypass"].into_iter().enumerate() {
        metrics::counter!(CACHE_REQUESTS.name, "result" => result).absolute(load(&meter.cache[i]));
    }
    metrics::gauge!(CACHE_TRUSTED.name).set(f64::from(u8::from(cache_trusted)));
    for (op, name) in STORE_OPS {
        metrics::counter!(STORE_ERRORS.name, "op" => name).absolute(load(&meter.store_errors[op as usize]));
    }
    let active = meter.active_tokens.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (client, n) in active {
        metrics::gauge!(ACTIVE_TOKENS.name, "client" => client).set(n as f64);
    }
}
