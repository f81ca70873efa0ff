//! `PgListenBus`: the invalidation triggers notify `tessera_invalidations` at commit, whoever makes
//! the change, and the bus turns each notification into an invalidation. No timing is asserted:
//! every wait below is a bound on a hang, not a measure.

use crate::backends;
use crate::suite::{at, new_client, new_token, new_user};
use sqlx::{Connection, PgConnection};
use std::time::Duration;
use tessera_core::bus::InvalidationBus;
use tessera_core::store::{ClientStore, ClientUpdate, Invalidation, TokenStore, UserStore};
use tessera_sql::PgListenBus;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// What a subscription reports.
#[derive(Debug, PartialEq)]
enum Seen {
    Ready,
    /// A change whose notification said when it was sent (a time within a day of now: the
    /// trigger's clock, in microseconds, not some other unit).
    Change(Invalidation),
    /// A change whose notification said no time, or an implausible one.
    Untimed(Invalidation),
    Dropped,
}

/// Subscribes `bus` in a task that resubscribes whenever the subscription drops, reporting all.
fn follow(bus: PgListenBus) -> (UnboundedReceiver<Seen>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let (ready, change) = (tx.clone(), tx.clone());
            let error = bus
                .subscribe(&move || drop(ready.send(Seen::Ready)), &move |c, sent_at| {
                    let plausible =
                        sent_at.is_some_and(|at| (chrono::Utc::now() - at).abs() < chrono::TimeDelta::days(1));
                    drop(change.send(if plausible { Seen::Change(c) } else { Seen::Untimed(c) }))
                })
                .await;
            eprintln!("subscription dropped: {error}");
            if tx.send(Seen::Dropped).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (rx, task)
}

/// The next report; fails after 10 s (a hang, not a timing).
async fn next(rx: &mut UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a report within 10 s").expect("open")
}

/// Terminates the bus's LISTEN connection as an operator (or a failover) would; how many went.
async fn terminate_listener(url: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND query = 'LISTEN \"tessera_invalidations\"'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("terminate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_by_any_connection_are_notified_at_commit() {
    let Some(db) = backends::postgres().await else { return };
    // No pings: the LISTEN connection's last statement stays `LISTEN …` (terminate_listener finds it).
    let bus = PgListenBus::new(&db.store).expect("postgres").with_ping_interval(Duration::from_secs(3_600));
    assert_eq!(
        bus.publish(&[Invalidation::User(tessera_core::UserId(1))]).await,
        Ok(()),
        "publishing is the triggers'"
    );
    let (mut rx, task) = follow(bus);
    assert_eq!(next(&mut rx).await, Seen::Ready);

    // Another pool than the listener's connection: as another instance or the CLI.
    let other = tessera_sql::SqlStore::connect(&db.url).await.expect("another connection");
    let alice = other.create_user(new_user("alice")).await.expect("user");
    let web = other.create_client(new_client("web")).await.expect("client");
    let (cli, ios, tv) = (
        other.create_client(new_client("cli")).await.expect("client"),
        other.create_client(new_client("ios")).await.expect("client"),
        other.create_client(new_client("tv")).await.expect("client"),
    );
    let a = other.create_token(new_token(&alice, &web, at(0), None)).await.expect("token");
    let b = other.create_token(new_token(&alice, &cli, at(0), None)).await.expect("token");
    let c = other.create_token(new_token(&alice, &ios, at(0), None)).await.expect("token");

    assert!(other.delete_token(a.id).await.expect("delete"));
    assert_eq!(next(&mut rx).await, Seen::Change(Invalidation::Token(a.digest)));
    other.set_active(alice.id, false).await.expect("deactivate");
    assert_eq!(next(&mut rx).await, Seen::Change(Invalidation::User(alice.id)));
    other
        .update_client(web.id, ClientUpdate { description: Some("x".into()), ..ClientUpdate::default() })
        .await
        .expect("update");
    assert_eq!(next(&mut rx).await, Seen::Change(Invalidation::Client(web.id)));

    // An operator's SQL: nothing of Tessera's runs, the triggers notify.
    db.run_sql(&format!("DELETE FROM auth_tokens WHERE id = {}", b.id.0)).await;
    assert_eq!(next(&mut rx).await, Seen::Change(Invalidation::Token(b.digest)));

    // A rolled-back transaction notifies nothing: the next report is the change committed after it.
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("DELETE FROM auth_tokens WHERE id = $1").bind(c.id.0).execute(&mut *tx).await.expect("delete");
    sqlx::query("UPDATE users SET is_staff = TRUE WHERE id = $1")
        .bind(alice.id.0)
        .execute(&mut *tx)
        .await
        .expect("staff");
    tx.rollback().await.expect("rollback");
    other.set_staff(alice.id, true).await.expect("staff");
    assert_eq!(next(&mut rx).await, Seen::Change(Invalidation::User(alice.id)));

    // A lost connection ends the subscription (never a silent reconnection); the next one works.
    assert_eq!(terminate_listener(&db.url).await, 1);
    assert_eq!(next(&mut rx).await, Seen::Dropped);
    assert_eq!(next(&mut rx).await, Seen::Ready);
    assert!(other.delete_token(c.id).await.expect("delete"));
    assert_eq!(next(&mut rx).await, Seen::Change(Invalidation::Token(c.digest)));

    // A cascade notifies every row it takes along, one notification each.
    let d = other.create_token(new_token(&alice, &tv, at(0), None)).await.expect("token");
    other.delete_client(tv.id).await.expect("delete client");
    assert_eq!(next(&mut rx).await, Seen::Change(Invalidation::Token(d.digest)));
    assert_eq!(next(&mut rx).await, Seen::Change(Invalidation::Client(tv.id)));

    task.abort();
    other.close().await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_needs_a_postgres_store() {
    let db = backends::sqlite().await;
    assert!(PgListenBus::new(&db.store).is_none());
    db.close().await;
}
