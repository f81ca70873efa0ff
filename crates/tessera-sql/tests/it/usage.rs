//! Usage analytics on SQL: batches add up (two stores, as two instances, at once), distinct active
//! users count once whoever saw them, reads per day and in total, pruning by day, bad ranges.

use crate::backends;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use tessera_core::usage::UNKNOWN_CLIENT;
use tessera_core::{StoreError, TokenId, UsageBatch, UsageCounts, UsageLog, UsageQuery, UsageSink, UserId};
use tessera_sql::SqlStore;

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, n).unwrap_or_default()
}

fn at(n: u32) -> DateTime<Utc> {
    day(n).and_hms_opt(12, 0, 0).unwrap_or_default().and_utc()
}

fn counts(ok: u64, invalid: u64, issued: u64) -> UsageCounts {
    let mut c = UsageCounts { tokens_issued: issued, ..UsageCounts::default() };
    c.requests.ok = ok;
    c.requests.invalid_token = invalid;
    c.logins.failed = invalid;
    c
}

/// What one instance writes for day `d`: `ok` requests on "web" by users `users`, one invalid token.
fn batch(d: u32, ok: u64, users: &[i64], token: i64) -> UsageBatch {
    UsageBatch {
        counts: vec![(day(d), "web".into(), counts(ok, 0, 1)), (day(d), UNKNOWN_CLIENT.into(), counts(0, 1, 0))],
        active_users: users.iter().map(|u| (day(d), "web".into(), UserId(*u))).collect(),
        token_requests: vec![(TokenId(token), ok, at(d))],
    }
}

fn range(from: u32, to: u32) -> UsageQuery {
    UsageQuery { client: None, from: day(from), to: day(to) }
}

async fn usage_adds_up(store: SqlStore, url: &str) {
    let other = SqlStore::connect(url).await.expect("a second store");
    // Two instances write at once, each several batches: the counts add up exactly.
    let write = |s: SqlStore, users: Vec<i64>| async move {
        for _ in 0..5 {
            s.write_usage(&batch(3, 10, &users, 7)).await.expect("write");
        }
    };
    tokio::join!(write(store.clone(), vec![1, 2]), write(other.clone(), vec![2, 3]));
    store.write_usage(&batch(4, 1, &[3], 8)).await.expect("day 4");
    store.write_usage(&UsageBatch::default()).await.expect("an empty batch is nothing");

    let days = store.usage_by_day(&range(1, 30)).await.expect("by day");
    let rows: Vec<(NaiveDate, &str, u64, u64, u64, u64)> = days
        .iter()
        .map(|d| {
            let c = &d.counts;
            (d.day, d.client.as_str(), c.requests.ok, c.requests.invalid_token, c.tokens_issued, d.active_users)
        })
        .collect();
    assert_eq!(
        rows,
        [
            (day(3), UNKNOWN_CLIENT, 0, 10, 0, 0),
            (day(3), "web", 100, 0, 10, 3),
            (day(4), UNKNOWN_CLIENT, 0, 1, 0, 0),
            (day(4), "web", 1, 0, 1, 1),
        ]
    );
    assert_eq!(days[0].counts.logins.failed, 10);

    let totals = store.usage_totals(&range(1, 30)).await.expect("totals");
    let web = totals.iter().find(|t| t.client == "web").expect("web");
    assert_eq!((web.counts.requests.ok, web.counts.tokens_issued), (101, 11));
    assert_eq!(web.active_users, 3, "user 3, active on both days, counts once");
    let only = UsageQuery { client: Some("web".into()), ..range(4, 4) };
    let one = store.usage_totals(&only).await.expect("web on day 4");
    assert_eq!((one.len(), one[0].counts.requests.ok, one[0].active_users), (1, 1, 1));
    assert_eq!(store.usage_by_day(&only).await.expect("by day").len(), 1);
    assert!(store.usage_by_day(&range(5, 30)).await.expect("nothing after").is_empty());

    let mut requests = store.token_requests(&[TokenId(7), TokenId(8), TokenId(9)]).await.expect("tokens");
    requests.sort();
    assert_eq!(requests, [(TokenId(7), 100), (TokenId(8), 1)]);

    // A backwards or huge range is refused, reading nothing.
    for bad in [range(5, 4), UsageQuery { client: None, from: day(1), to: day(1) + TimeDelta::days(4000) }] {
        let err = store.usage_by_day(&bad).await.expect_err("bad range");
        assert!(matches!(err, StoreError::Backend(ref m) if m.contains("a usage query spans")), "{err:?}");
    }

    // Pruning before day 4 leaves day 4 and the token used on day 4.
    let pruned = store.prune_usage(day(4)).await.expect("prune");
    assert_eq!(pruned, 2 + 3 + 1, "day 3's two daily rows, three active users, token 7");
    let days = store.usage_by_day(&range(1, 30)).await.expect("after pruning");
    assert!(days.iter().all(|d| d.day == day(4)) && days.len() == 2, "{days:?}");
    assert_eq!(store.token_requests(&[TokenId(7), TokenId(8)]).await.expect("tokens"), [(TokenId(8), 1)]);
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_adds_up_on_sqlite() {
    let db = backends::sqlite().await;
    usage_adds_up(db.store.clone(), &db.url).await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_adds_up_on_postgres() {
    let Some(db) = backends::postgres().await else { return };
    usage_adds_up(db.store.clone(), &db.url).await;
    db.close().await;
}
