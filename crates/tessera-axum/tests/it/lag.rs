//! `tessera_invalidation_lag_seconds{source="bus"}`: a revocation made on one instance and
//! delivered to another by the bus (Redis pub/sub here; PostgreSQL's LISTEN/NOTIFY in
//! `pg_notify.rs`) is observed by that other instance, aged by the time its message says it was
//! published. No timing is asserted: every wait is a bound on a hang.

use crate::support::*;
use std::time::Duration;
use tessera_axum::Tessera;

/// The observation count of the lag histogram of `source` (`bus` or `log`).
pub(crate) fn lag_count(tessera: &Tessera, source: &str) -> u64 {
    let text = tessera.render_metrics().expect("counting is on");
    let series = format!("tessera_invalidation_lag_seconds_count{{source=\"{source}\"}} ");
    let line = text.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("no {series} in {text}"));
    line[series.len()..].parse().unwrap_or_else(|_| panic!("{line}"))
}

/// Waits (up to 10 s: a hang, not a timing) until `cond` holds.
async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_instance_moves_the_bus_lag_of_another() {
    let options = Options { usage: true, ..Options::default() };
    let Some(app) = TestApp::start(Backend::SqliteWithRedisTokens, options).await else { return };
    let other = app.second_instance().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let web = app.client("web", "1d").await;
    let (token, bobs) = (app.mint(&alice, &web).await, app.mint(&bob, &web).await);
    let on_other = async |token: &str| {
        app.send(
            app.http.get(format!("{}/api/hello-cached/", other.base)).header("Authorization", format!("Token {token}")),
        )
        .await
        .status
    };
    until("cached on the other instance", async || {
        on_other(&token).await == 200 && on_other(&bobs).await == 200 && other.tessera.cached_entries() == 2
    })
    .await;
    let before = lag_count(&other.tessera, "bus");

    // A logout on the first instance: the token store's script and the store's publisher both say
    // so on the bus, each message stamped with its publish time.
    assert_eq!(app.post("/api/auth/logout/", Some(&token)).await.0, 204);
    until("the other instance applied it from the bus", async || lag_count(&other.tessera, "bus") > before).await;
    until("refused there", async || on_other(&token).await == 401).await;

    // A user deactivated through another process's store: published by the store's publisher.
    let before = lag_count(&other.tessera, "bus");
    app.elsewhere().await.set_active(bob.id, false).await.expect("deactivate");
    until("the other instance applied it from the bus", async || lag_count(&other.tessera, "bus") > before).await;
    until("refused there", async || on_other(&bobs).await == 401).await;
    assert!(lag_count(&app.tessera, "bus") >= 2, "the publisher's own subscription counts too");
}
