//! The audit log on SQL: batches written whole, read back newest first through every filter,
//! pruned by time, written by several stores (instances) at once.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use tessera_core::{Actor, AuditLog, AuditQuery, AuditRecord, AuditSink, TokenId, UserId};
use tessera_sql::SqlStore;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
}

fn record(minutes: i64, kind: &str, user: &str, client: &str) -> AuditRecord {
    AuditRecord {
        at: t0() + TimeDelta::minutes(minutes),
        kind: kind.into(),
        actor: Actor::User,
        actor_name: None,
        user_id: Some(UserId(1 << 40)),
        username: Some(user.into()),
        client: Some(client.into()),
        token_id: Some(TokenId(1 << 41)),
        ip: Some("192.0.2.7".into()),
        user_agent: Some("curl/8.5".into()),
        detail: json!({"minute": minutes}),
    }
}

fn query() -> AuditQuery {
    AuditQuery::default()
}

async fn minutes(store: &SqlStore, query: AuditQuery) -> Vec<i64> {
    let found = store.audit_events(&query).await.expect("read");
    found.iter().map(|r| r.detail["minute"].as_i64().unwrap_or(-1)).collect()
}

on_both!(records_round_trip_newest_first, |_db, store| {
    let mut batch = vec![record(1, "user_logged_in", "alice", "web"), record(3, "user_logged_out", "alice", "web")];
    let mut bare = record(2, "login_failed", "mallory", "web");
    (bare.user_id, bare.client, bare.token_id, bare.ip, bare.user_agent, bare.actor) =
        (None, None, None, None, None, Actor::System);
    batch.push(bare.clone());
    store.write_audit(&batch).await.expect("write");
    store.write_audit(&[]).await.expect("an empty batch");
    let found = store.audit_events(&query()).await.expect("read");
    assert_eq!(found, vec![batch[1].clone(), bare, batch[0].clone()]);
});

on_both!(filters_and_limits, |_db, store| {
    let batch = vec![
        record(0, "user_logged_in", "alice", "web"),
        record(1, "user_logged_in", "bob", "web"),
        record(2, "token_revoked", "alice", "ios"),
        record(3, "user_logged_out", "alice", "web"),
        record(4, "user_logged_in", "alice", "ios"),
        AuditRecord {
            actor: Actor::Admin,
            actor_name: Some("root".into()),
            ..record(5, "token_revoked", "bob", "web")
        },
    ];
    store.write_audit(&batch).await.expect("write");
    let user = |u: &str| AuditQuery { username: Some(u.into()), ..query() };
    assert_eq!(minutes(&store, user("alice")).await, [4, 3, 2, 0]);
    let by = |actor: Actor, name: Option<&str>| AuditQuery {
        actor: Some(actor),
        actor_name: name.map(Into::into),
        ..query()
    };
    assert_eq!(minutes(&store, by(Actor::Admin, Some("root"))).await, [5], "by the staff member's name");
    assert_eq!(minutes(&store, by(Actor::Admin, Some("Root"))).await, Vec::<i64>::new());
    assert_eq!(minutes(&store, by(Actor::User, None)).await, [4, 3, 2, 1, 0]);
    let stored = store.audit_events(&by(Actor::Admin, None)).await.expect("read");
    assert_eq!(stored[0].actor_name.as_deref(), Some("root"), "the name is stored and read back");
    assert_eq!(minutes(&store, user("nobody")).await, Vec::<i64>::new());
    assert_eq!(minutes(&store, AuditQuery { client: Some("ios".into()), ..query() }).await, [4, 2]);
    let bob = AuditQuery { username: Some("bob".into()), ..query() };
    assert_eq!(minutes(&store, bob).await, [5, 1]);
    assert_eq!(minutes(&store, AuditQuery { kind: Some("user_logged_in".into()), ..query() }).await, [4, 1, 0]);
    let since = Some(t0() + TimeDelta::minutes(1));
    let until = Some(t0() + TimeDelta::minutes(3));
    assert_eq!(minutes(&store, AuditQuery { since, ..query() }).await, [5, 4, 3, 2, 1], "since is inclusive");
    assert_eq!(minutes(&store, AuditQuery { until, ..query() }).await, [2, 1, 0], "until is exclusive");
    assert_eq!(minutes(&store, AuditQuery { since, until, ..query() }).await, [2, 1]);
    assert_eq!(minutes(&store, AuditQuery { limit: 2, ..query() }).await, [5, 4]);
    let all = AuditQuery {
        username: Some("alice".into()),
        client: Some("web".into()),
        kind: Some("user_logged_out".into()),
        since,
        until: Some(t0() + TimeDelta::minutes(10)),
        actor: Some(Actor::User),
        actor_name: None,
        limit: 10,
    };
    assert_eq!(minutes(&store, all).await, [3]);
});

on_both!(large_batches_and_equal_times_keep_their_order, |_db, store| {
    // More rows than one INSERT carries; every row at the same microsecond.
    let batch: Vec<AuditRecord> = (0..250)
        .map(|i| AuditRecord { at: t0(), detail: json!({"minute": i}), ..record(0, "token_revoked", "alice", "web") })
        .collect();
    store.write_audit(&batch).await.expect("write");
    let found = minutes(&store, AuditQuery { limit: 1_000, ..query() }).await;
    assert_eq!(found, (0..250).rev().collect::<Vec<i64>>(), "the later written first");
    // The limit is capped however large it is asked.
    assert_eq!(minutes(&store, AuditQuery { limit: u32::MAX, ..query() }).await.len(), 250);
});

on_both!(retention_prunes_by_time, |_db, store| {
    let batch: Vec<AuditRecord> = (0..5).map(|m| record(m, "user_logged_in", "alice", "web")).collect();
    store.write_audit(&batch).await.expect("write");
    assert_eq!(store.prune_audit(t0() + TimeDelta::minutes(2)).await.expect("prune"), 2);
    assert_eq!(minutes(&store, query()).await, [4, 3, 2]);
    assert_eq!(store.prune_audit(t0()).await.expect("prune nothing"), 0);
});

on_both!(several_instances_write_at_once, |db, store| {
    // Each writer its own store, as each instance has its own pools.
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(SqlStore::connect(&db.url).await.expect("another instance"));
    }
    let writers: Vec<_> = (0_i64..)
        .zip(stores.clone())
        .map(|(w, store)| {
            tokio::spawn(async move {
                for round in 0..10 {
                    let batch: Vec<AuditRecord> =
                        (0..5).map(|i| record(w * 100 + round * 5 + i, "user_logged_in", "alice", "web")).collect();
                    store.write_audit(&batch).await.expect("concurrent write");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    for other in stores {
        other.close().await;
    }
    assert_eq!(minutes(&store, AuditQuery { limit: 1_000, ..query() }).await.len(), 200);
});
