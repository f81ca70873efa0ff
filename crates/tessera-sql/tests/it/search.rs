//! The token search (`Store::search_tokens`): the same answers as the in-memory search it replaces,
//! page by page in both directions, and a page query that reads an index — with 100,000 tokens.

use crate::backends::TestDb;
use crate::suite::{at, new_client, new_token, new_user};
use chrono::TimeDelta;
use std::time::Instant;
use tessera_core::search::{page_of, search_tokens_in_memory};
use tessera_core::store::{ClientStore, Store, TokenStore, UserStore};
use tessera_core::{AuthToken, PageAt, SortKey, TokenPage, TokenSearch, TokenSort, TokenStatus, Username};
use tessera_sql::Backend;

fn ids(rows: &[(AuthToken, Username)]) -> Vec<i64> {
    rows.iter().map(|(t, _)| t.id.0).collect()
}

/// Every page forward from the first, then every page back from the last one reached.
async fn walk(db: &TestDb, search: &TokenSearch) -> (Vec<i64>, Vec<i64>, u64) {
    let mut search = search.clone();
    search.page = PageAt::First;
    let mut forward = Vec::new();
    let mut pages: Vec<TokenPage> = Vec::new();
    loop {
        let page = db.store.search_tokens(&search).await.expect("page");
        assert!(page.rows.len() <= search.page_size() as usize);
        forward.extend(ids(&page.rows));
        let next = page.next;
        pages.push(page);
        match next {
            Some(c) => search.page = PageAt::After(c),
            None => break,
        }
        assert!(pages.len() < 1000, "the pages end");
    }
    let total = pages[0].total;
    let mut backward: Vec<i64> = ids(&pages.last().expect("a page").rows);
    let mut prev = pages.last().and_then(|p| p.prev);
    while let Some(c) = prev {
        search.page = PageAt::Before(c);
        let page = db.store.search_tokens(&search).await.expect("page back");
        let mut before = ids(&page.rows);
        before.extend(backward);
        backward = before;
        prev = page.prev;
    }
    (forward, backward, total)
}

on_both!(search_pages_agree_with_the_in_memory_search, |db| {
    let store = &db.store;
    let alice = store.create_user(new_user("alice")).await.expect("alice");
    let bob = store.create_user(new_user("Bob_Smith")).await.expect("bob");
    let carol = store.create_user(new_user("carol_x")).await.expect("carol");
    let web = store.create_client(new_client("web")).await.expect("web");
    let mut cli = new_client("cli");
    cli.devices =
        tessera_core::Devices::Many { max_devices: 100, on_device_limit: tessera_core::OnDeviceLimit::Refuse };
    let cli = store.create_client(cli).await.expect("cli");
    let mut made = Vec::new();
    for i in 0..36i64 {
        let user = [&alice, &bob, &carol][(i % 3) as usize];
        // Equal creation times in threes: the id breaks the ties.
        let created = at(i / 3 * 60);
        let expiry = match i % 4 {
            0 => None,
            1 => Some(at(100)),
            _ => Some(at(3_600 + i * 600)),
        };
        let token = new_token(user, &cli, created, expiry);
        let stored = match store.create_device_token(token, 100, tessera_core::OnDeviceLimit::Refuse).await {
            Ok(tessera_core::DeviceToken::Created { token, .. }) => token,
            other => panic!("device token: {other:?}"),
        };
        made.push(stored);
    }
    store.create_token(new_token(&alice, &web, at(5), Some(at(50_000)))).await.expect("web token");
    let uses: Vec<_> =
        made.iter().step_by(2).enumerate().map(|(n, t)| (t.id, at(1_000 + (n as i64 % 4) * 10))).collect();
    store.record_last_used(&uses).await.expect("uses");

    let now = at(2_000);
    let sorts = [SortKey::Created, SortKey::LastUsed, SortKey::Expiry];
    let statuses = [
        TokenStatus::Any,
        TokenStatus::Live,
        TokenStatus::Expired,
        TokenStatus::ExpiringWithin(TimeDelta::hours(3)),
        TokenStatus::UnusedFor(TimeDelta::seconds(1_500)),
    ];
    let mut checked = 0;
    for key in sorts {
        for descending in [true, false] {
            for status in statuses {
                for (name, client, exclude) in [
                    ("", None, None),
                    ("b_s", None, None),
                    ("%", None, Some(web.id)),
                    ("ALI", Some(cli.id), None),
                    ("nobody", None, None),
                ] {
                    let mut search = TokenSearch::new(now, 5);
                    search.sort = TokenSort { key, descending };
                    search.status = status;
                    search.username_contains = name.into();
                    search.client = client;
                    search.exclude_client = exclude;
                    let mut everything = search.clone();
                    everything.limit = 500;
                    let want = search_tokens_in_memory(store, &everything).await.expect("in memory");
                    let (forward, backward, total) = walk(&db, &search).await;
                    let label = format!("{key:?} desc={descending} {status:?} {name:?}");
                    assert_eq!(forward, ids(&want.rows), "forward: {label}");
                    assert_eq!(backward, forward, "backward: {label}");
                    assert_eq!(total, want.rows.len() as u64, "total: {label}");
                    // The in-memory pager cuts the same pages.
                    let memory_first = page_of(&search, want.rows.clone());
                    let sql_first = db.store.search_tokens(&search).await.expect("first");
                    assert_eq!(sql_first, memory_first, "first page: {label}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 150);
    // Sanity: the filters do filter.
    let mut search = TokenSearch::new(now, 500);
    search.username_contains = "%".into();
    assert_eq!(db.store.search_tokens(&search).await.expect("%").total, 0, "`%` is taken literally");
    search.username_contains = "c_r".into();
    assert_eq!(db.store.search_tokens(&search).await.expect("c_r").total, 0, "`_` is taken literally");
    search.username_contains = "L_X".into();
    let carols = db.store.search_tokens(&search).await.expect("carol");
    assert_eq!(carols.total, 12, "case-insensitive: carol's tokens only");
    assert!(carols.rows.iter().all(|(t, name)| t.user_id == carol.id && name.as_str() == "carol_x"));
});

on_both!(a_bad_cursor_page_is_empty_not_an_error, |db| {
    let store = &db.store;
    let alice = store.create_user(new_user("alice")).await.expect("alice");
    let web = store.create_client(new_client("web")).await.expect("web");
    store.create_token(new_token(&alice, &web, at(0), None)).await.expect("token");
    let mut search = TokenSearch::new(at(1), 0);
    assert_eq!(search.page_size(), 1, "a page holds at least one row");
    search.limit = u32::MAX;
    assert_eq!(search.page_size(), tessera_core::search::MAX_PAGE_SIZE);
    for cursor in [i64::MIN, i64::MAX] {
        search.page = PageAt::After(tessera_core::TokenCursor { value: cursor, id: cursor });
        search.sort.descending = cursor == i64::MIN;
        let page = store.search_tokens(&search).await.expect("page");
        assert!(page.rows.is_empty() && page.next.is_none(), "{page:?}");
        assert_eq!(page.total, 1);
    }
    assert!("1.x".parse::<tessera_core::TokenCursor>().is_err());
    assert!("".parse::<tessera_core::TokenCursor>().is_err());
    assert_eq!("-5.7".parse::<tessera_core::TokenCursor>(), Ok(tessera_core::TokenCursor { value: -5, id: 7 }));
});

/// 100,000 tokens of 500 users, inserted in one statement (the store API would take minutes).
async fn seed(db: &TestDb, tokens: i64) {
    let web = db.store.create_client(new_client("web")).await.expect("web");
    let base = at(0).timestamp_micros();
    let sql = match db.store.backend() {
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
             INSERT INTO users (id, username, password_hash, created) SELECT i, 'user' || i, 'x', 0 FROM n; \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {tokens}) \
             INSERT INTO auth_tokens (id, user_id, client_id, digest, seed, created, expiry, last_used, per_device) \
             SELECT i, 1 + i % 500, {web}, randomblob(32), randomblob(32), {base} + (i % 50000) * 1000000, \
             CASE WHEN i % 3 = 0 THEN NULL ELSE {base} + i * 2000000 END, \
             CASE WHEN i % 2 = 0 THEN NULL ELSE {base} + i * 1500000 END, 1 FROM n; ANALYZE;",
            web = web.id.0
        ),
        Backend::Postgres => format!(
            "INSERT INTO users (id, username, password_hash, created) \
             SELECT i, 'user' || i, 'x', 0 FROM generate_series(1, 500) AS i; \
             INSERT INTO auth_tokens (id, user_id, client_id, digest, seed, created, expiry, last_used, per_device) \
             SELECT i, 1 + i % 500, {web}, decode(md5(i::text) || md5((-i)::text), 'hex'), \
             decode(md5(i::text) || md5(i::text), 'hex'), {base} + (i % 50000) * 1000000, \
             CASE WHEN i % 3 = 0 THEN NULL ELSE {base} + i * 2000000 END, \
             CASE WHEN i % 2 = 0 THEN NULL ELSE {base} + i * 1500000 END, 1 FROM generate_series(1::bigint, {tokens}) AS i; \
             ANALYZE;",
            web = web.id.0
        ),
    };
    db.run_sql(&sql).await;
}

on_both!(the_page_query_reads_an_index_with_100k_tokens, |db| {
    seed(&db, 100_000).await;
    let now = at(200_000);
    let search = TokenSearch::new(now, 50);
    let plan = tessera_sql::testing::page_plan(&db.store, &search).await.expect("plan").join("\n");
    match db.store.backend() {
        Backend::Sqlite => {
            assert!(plan.contains("INDEX auth_tokens_created_id"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "no sort of the whole table: {plan}");
        }
        Backend::Postgres => {
            assert!(plan.contains("auth_tokens_created_id"), "{plan}");
            assert!(!plan.contains("Sort"), "no sort of the whole table: {plan}");
        }
    }
    // Deep pages by cursor use the index too.
    let mut deep = search.clone();
    deep.page = PageAt::After(tessera_core::TokenCursor { value: at(20_000).timestamp_micros(), id: 40_000 });
    let plan = tessera_sql::testing::page_plan(&db.store, &deep).await.expect("plan").join("\n");
    assert!(plan.contains("auth_tokens_created_id"), "{plan}");

    // Figures, by hand (never asserted): the first page, a page deep in, a filtered page.
    let started = Instant::now();
    let first = db.store.search_tokens(&search).await.expect("first");
    let first_took = started.elapsed();
    assert_eq!(first.total, 100_000);
    assert_eq!(first.rows.len(), 50);
    let started = Instant::now();
    let page = db.store.search_tokens(&deep).await.expect("deep");
    let deep_took = started.elapsed();
    assert_eq!(page.rows.len(), 50);
    let mut named = search.clone();
    named.username_contains = "user42".into();
    named.sort = TokenSort { key: SortKey::LastUsed, descending: true };
    named.status = TokenStatus::UnusedFor(TimeDelta::days(1));
    let started = Instant::now();
    let filtered = db.store.search_tokens(&named).await.expect("filtered");
    let filtered_took = started.elapsed();
    assert!(filtered.rows.iter().all(|(_, name)| name.as_str().contains("user42")));
    eprintln!(
        "token search on {} with 100,000 tokens: first page {first_took:?}, deep page {deep_took:?}, \
         filtered page {filtered_took:?} ({} matches)",
        db.store.backend().display_name(),
        filtered.total
    );
    // "Any legacy token?" (asked by servers accepting durin tokens automatically) reads the
    // partial index of legacy tokens, not the 100,000 native ones.
    let legacy = tessera_core::store::TokenFilter { legacy: true, ..Default::default() };
    let plan = tessera_sql::testing::count_plan(&db.store, legacy).await.expect("plan").join("\n");
    assert!(plan.contains("auth_tokens_legacy"), "{plan}");
    assert_eq!(db.store.count_tokens(legacy).await.expect("count"), 0);
    let zero_seed = match db.store.backend() {
        Backend::Sqlite => "zeroblob(32)",
        Backend::Postgres => "decode(repeat('00', 32), 'hex')",
    };
    db.run_sql(&format!(
        "INSERT INTO auth_tokens (id, user_id, client_id, digest, seed, created, per_device) \
         SELECT 900000, 1, client_id, {zero_seed}, {zero_seed}, 0, 0 FROM auth_tokens WHERE id = 1"
    ))
    .await;
    assert_eq!(db.store.count_tokens(legacy).await.expect("count"), 1);
    assert_eq!(db.store.count_tokens(Default::default()).await.expect("count"), 100_001);
});

on_both!(user_pages_agree_with_the_in_memory_search, |db| {
    // Lower-case names: PostgreSQL's text order is the database's collation, the same as memory's
    // byte order for these.
    for i in 0..23 {
        db.store.create_user(new_user(&format!("user{i:02}"))).await.expect("user");
    }
    db.store.create_user(new_user("other")).await.expect("other");
    for (text, size) in [("", 5), ("USER1", 3), ("r0", 50), ("%", 5), ("nobody", 5)] {
        let search = tessera_core::UserSearch {
            username_contains: text.into(),
            limit: size,
            page: tessera_core::UserPageAt::First,
        };
        let all = tessera_core::search::search_users_in_memory(
            &db.store,
            &tessera_core::UserSearch { limit: 500, ..search.clone() },
        )
        .await
        .expect("memory");
        let names = |users: &[tessera_core::User]| users.iter().map(|u| u.username.to_string()).collect::<Vec<_>>();
        let want = names(&all.users);
        // Forward, then back.
        let mut page = db.store.search_users(&search).await.expect("first");
        assert_eq!(page.total, want.len() as u64, "{text}");
        let mut forward = names(&page.users);
        while let Some(next) = page.next.clone() {
            let s = tessera_core::UserSearch { page: tessera_core::UserPageAt::After(next), ..search.clone() };
            page = db.store.search_users(&s).await.expect("next");
            forward.extend(names(&page.users));
        }
        assert_eq!(forward, want, "forward: {text}");
        let mut backward = names(&page.users);
        while let Some(prev) = page.prev.clone() {
            let s = tessera_core::UserSearch { page: tessera_core::UserPageAt::Before(prev), ..search.clone() };
            page = db.store.search_users(&s).await.expect("prev");
            let mut before = names(&page.users);
            before.extend(backward);
            backward = before;
        }
        assert_eq!(backward, want, "backward: {text}");
    }
});
