//! [`Store::search_tokens`](tessera_core::Store::search_tokens) on SQL: one keyset page query
//! read from the sort's index (`0009_token_search.sql`), and a `COUNT` with the same filter.
//!
//! The sort expressions below must stay word for word those of the migration's indexes, or the
//! databases sort the whole table instead (a test reads the query plans).

use crate::SqlStore;
use crate::error::from_sqlx;
use crate::rows::{self, RowExt, TOKEN_WIDTH, micros};
use tessera_core::search::{NEVER_EXPIRES, NEVER_USED, PageAt, SortKey, TokenPage, TokenSearch, TokenStatus};
use tessera_core::{StoreError, Username};

/// A value to bind, in placeholder order.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

/// The token columns (as `t.`) then the user's name.
const COLUMNS: &str = "t.id, t.user_id, t.client_id, t.digest, t.seed, t.created, t.expiry, t.last_used, \
                       t.user_agent, t.ip, t.key_id, u.username";

/// The sort expression of each key: the indexes' expressions.
fn sort_expression(key: SortKey) -> String {
    match key {
        SortKey::Created => "t.created".to_string(),
        SortKey::LastUsed => format!("COALESCE(t.last_used, {NEVER_USED})"),
        SortKey::Expiry => format!("COALESCE(t.expiry, {NEVER_EXPIRES})"),
    }
}

/// `LIKE` text for "contains `text`", with `\`, `%` and `_` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The filters as a `WHERE` body over `t` (never empty), with their values.
fn conditions(search: &TokenSearch, binds: &mut Vec<Bind>) -> Vec<String> {
    let next = |bind: Bind, binds: &mut Vec<Bind>| {
        binds.push(bind);
        format!("${}", binds.len())
    };
    let mut out = vec!["1 = 1".to_string()];
    if let Some(user) = search.user {
        out.push(format!("t.user_id = {}", next(Bind::Int(user.0), binds)));
    }
    if let Some(client) = search.client {
        out.push(format!("t.client_id = {}", next(Bind::Int(client.0), binds)));
    }
    if let Some(client) = search.exclude_client {
        out.push(format!("t.client_id <> {}", next(Bind::Int(client.0), binds)));
    }
    let text = search.username_contains.trim();
    if !text.is_empty() {
        let p = next(Bind::Text(contains_pattern(text)), binds);
        out.push(format!("t.user_id IN (SELECT id FROM users WHERE LOWER(username) LIKE {p} ESCAPE '\\')"));
    }
    let now = micros(search.now);
    match search.status {
        TokenStatus::Any => {}
        TokenStatus::Live => out.push(format!("(t.expiry IS NULL OR t.expiry > {})", next(Bind::Int(now), binds))),
        TokenStatus::Expired => out.push(format!("t.expiry <= {}", next(Bind::Int(now), binds))),
        TokenStatus::ExpiringWithin(d) => {
            let from = next(Bind::Int(now), binds);
            let to = next(Bind::Int(micros(search.now + d)), binds);
            out.push(format!("t.expiry > {from} AND t.expiry <= {to}"));
        }
        TokenStatus::UnusedFor(d) => {
            out.push(format!("COALESCE(t.last_used, t.created) <= {}", next(Bind::Int(micros(search.now - d)), binds)))
        }
    }
    out
}

/// The page query and its values. `Before` pages run in the opposite order (the caller turns
/// them back); one row more than a page tells whether another page follows.
pub(crate) fn page_query(search: &TokenSearch) -> (String, Vec<Bind>) {
    let mut binds = Vec::new();
    let mut conds = conditions(search, &mut binds);
    let key = sort_expression(search.sort.key);
    let backwards = matches!(search.page, PageAt::Before(_));
    let descending = search.sort.descending != backwards;
    if let PageAt::After(c) | PageAt::Before(c) = search.page {
        binds.push(Bind::Int(c.value));
        binds.push(Bind::Int(c.id));
        let (v, i) = (binds.len() - 1, binds.len());
        let op = if descending { "<" } else { ">" };
        conds.push(format!("({key}, t.id) {op} (${v}, ${i})"));
    }
    let dir = if descending { "DESC" } else { "ASC" };
    let limit = search.page_size() + 1;
    let sql = format!(
        "SELECT {COLUMNS} FROM auth_tokens t JOIN users u ON u.id = t.user_id WHERE {} \
         ORDER BY {key} {dir}, t.id {dir} LIMIT {limit}",
        conds.join(" AND ")
    );
    (sql, binds)
}

/// The count of every matching token, and its values.
fn count_query(search: &TokenSearch) -> (String, Vec<Bind>) {
    let mut binds = Vec::new();
    let conds = conditions(search, &mut binds);
    (format!("SELECT COUNT(*) FROM auth_tokens t WHERE {}", conds.join(" AND ")), binds)
}

macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                Bind::Int(v) => query.bind(*v),
                Bind::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }};
}

fn decode(row: &impl RowExt) -> Result<(tessera_core::AuthToken, Username), StoreError> {
    let token = rows::token(row, 0)?;
    let name = row.text(TOKEN_WIDTH)?;
    let username = Username::stored(&name)
        .map_err(|e| StoreError::Backend(format!("users row {} has an invalid username: {e}", token.user_id.0)))?;
    Ok((token, username))
}

pub(crate) async fn search_tokens(store: &SqlStore, search: &TokenSearch) -> Result<TokenPage, StoreError> {
    let (sql, binds) = page_query(search);
    let (count_sql, count_binds) = count_query(search);
    let (mut rows, total) = with_reader!(store, |pool| {
        let found = bind_all!(sqlx::query(&sql), &binds).fetch_all(pool).await.map_err(from_sqlx)?;
        let rows = found.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        let total: i64 = bind_all!(sqlx::query_scalar::<_, i64>(&count_sql), &count_binds)
            .fetch_one(pool)
            .await
            .map_err(from_sqlx)?;
        (rows, total)
    });
    let size = search.page_size() as usize;
    let more = rows.len() > size;
    rows.truncate(size);
    let sort = search.sort;
    let first = |rows: &[(tessera_core::AuthToken, Username)]| rows.first().map(|(t, _)| sort.cursor_of(t));
    let last = |rows: &[(tessera_core::AuthToken, Username)]| rows.last().map(|(t, _)| sort.cursor_of(t));
    let (next, prev) = match search.page {
        PageAt::First => (if more { last(&rows) } else { None }, None),
        PageAt::After(_) => (if more { last(&rows) } else { None }, first(&rows)),
        PageAt::Before(_) => {
            rows.reverse();
            (last(&rows), if more { first(&rows) } else { None })
        }
    };
    Ok(TokenPage { rows, total: u64::try_from(total).unwrap_or(0), next, prev })
}

/// The database's plan for `search`'s page query, one line per step (`EXPLAIN QUERY PLAN` on
/// SQLite, `EXPLAIN` on PostgreSQL): for the test that the page query reads an index.
#[cfg(feature = "testing")]
pub async fn page_plan(store: &SqlStore, search: &TokenSearch) -> Result<Vec<String>, StoreError> {
    let (sql, binds) = page_query(search);
    match &store.pools {
        #[cfg(feature = "sqlite")]
        crate::Pools::Sqlite { reader, .. } => {
            let sql = format!("EXPLAIN QUERY PLAN {sql}");
            let found = bind_all!(sqlx::query(&sql), &binds).fetch_all(reader).await.map_err(from_sqlx)?;
            found.iter().map(|r| r.text(3)).collect()
        }
        #[cfg(feature = "postgres")]
        crate::Pools::Postgres(pg) => {
            let sql = format!("EXPLAIN {sql}");
            let found = bind_all!(sqlx::query(&sql), &binds).fetch_all(pg).await.map_err(from_sqlx)?;
            found.iter().map(|r| r.text(0)).collect()
        }
    }
}

/// [`UserStore::search_users`](tessera_core::store::UserStore::search_users): a page by username
/// (the `UNIQUE` index on it) and a `COUNT`.
pub(crate) async fn search_users(
    store: &SqlStore,
    search: &tessera_core::UserSearch,
) -> Result<tessera_core::UserPage, StoreError> {
    use tessera_core::UserPageAt;
    let mut binds = Vec::new();
    let text = search.username_contains.trim();
    let mut conds = vec!["1 = 1".to_string()];
    if !text.is_empty() {
        binds.push(Bind::Text(contains_pattern(text)));
        conds.push(format!("LOWER(username) LIKE ${} ESCAPE '\\'", binds.len()));
    }
    let count_sql = format!("SELECT COUNT(*) FROM users WHERE {}", conds.join(" AND "));
    let count_binds = binds.clone();
    let backwards = matches!(search.page, UserPageAt::Before(_));
    match &search.page {
        UserPageAt::First => {}
        UserPageAt::After(name) | UserPageAt::Before(name) => {
            binds.push(Bind::Text(name.clone()));
            conds.push(format!("username {} ${}", if backwards { "<" } else { ">" }, binds.len()));
        }
    }
    let size = search.page_size() as usize;
    let sql = format!(
        concat!("SELECT ", crate::rows::user_columns!(), " FROM users WHERE {} ORDER BY username {} LIMIT {}"),
        conds.join(" AND "),
        if backwards { "DESC" } else { "ASC" },
        size + 1
    );
    let (mut users, total) = with_reader!(store, |pool| {
        let found = bind_all!(sqlx::query(&sql), &binds).fetch_all(pool).await.map_err(from_sqlx)?;
        let users = rows::all(&found, rows::user)?;
        let total: i64 = bind_all!(sqlx::query_scalar::<_, i64>(&count_sql), &count_binds)
            .fetch_one(pool)
            .await
            .map_err(from_sqlx)?;
        (users, total)
    });
    let more = users.len() > size;
    users.truncate(size);
    let name = |u: Option<&tessera_core::User>| u.map(|u| u.username.to_string());
    let (next, prev) = match &search.page {
        UserPageAt::First => (if more { name(users.last()) } else { None }, None),
        UserPageAt::After(_) => (if more { name(users.last()) } else { None }, name(users.first())),
        UserPageAt::Before(_) => {
            users.reverse();
            (name(users.last()), if more { name(users.first()) } else { None })
        }
    };
    Ok(tessera_core::UserPage { users, total: u64::try_from(total).unwrap_or(0), next, prev })
}
