//! Token search for the admin: filters, a sort with a stable tie-break, and keyset pages.
//!
//! [`Store::search_tokens`](crate::Store::search_tokens) answers a [`TokenSearch`] with one
//! [`TokenPage`]. SQL stores run it as one indexed page query plus a `COUNT` with the same filter,
//! so a page costs the same with 100 or 100,000 tokens. A page is addressed by a [`TokenCursor`] —
//! the sort key and id of the row it continues from — never by an offset: an offset makes the
//! database walk every row before the page.
//!
//! [`search_tokens_in_memory`] is the same search over `list_tokens` and `list_users`, for stores
//! that cannot do better (tokens in Redis); the SQL stores are checked against it.

use crate::model::{AuthToken, ClientId, User, UserId, Username};
use crate::store::{Store, StoreError, TokenFilter, UserStore};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The most rows one page holds; larger requests are cut to it.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Which tokens, in which order, which page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSearch {
    /// Only tokens whose user's name contains this text, compared case-insensitively (ASCII case
    /// folding on SQLite, the database's on PostgreSQL). Empty: any user.
    pub username_contains: String,
    /// Only this user's tokens.
    pub user: Option<UserId>,
    /// Only this client's tokens.
    pub client: Option<ClientId>,
    /// Never this client's tokens (the admin hides its own staff sessions unless asked).
    pub exclude_client: Option<ClientId>,
    /// Expired, expiring, unused or any.
    pub status: TokenStatus,
    /// The time `status` is judged at.
    pub now: DateTime<Utc>,
    /// The order.
    pub sort: TokenSort,
    /// Rows per page, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// Which page: the first, or the one after or before a cursor.
    pub page: PageAt,
}

impl TokenSearch {
    /// Every token, newest first, `limit` per page, judged at `now`.
    pub fn new(now: DateTime<Utc>, limit: u32) -> Self {
        Self {
            username_contains: String::new(),
            user: None,
            client: None,
            exclude_client: None,
            status: TokenStatus::Any,
            now,
            sort: TokenSort::default(),
            limit,
            page: PageAt::First,
        }
    }

    /// The page size actually used.
    pub fn page_size(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE_SIZE)
    }

    /// Whether `token`, of a user called `username`, passes the filters (not the page).
    pub fn matches(&self, token: &AuthToken, username: &Username) -> bool {
        let text = self.username_contains.trim();
        self.user.is_none_or(|u| u == token.user_id)
            && self.client.is_none_or(|c| c == token.client_id)
            && self.exclude_client.is_none_or(|c| c != token.client_id)
            && (text.is_empty() || username.as_str().to_lowercase().contains(&text.to_lowercase()))
            && self.status.matches(token, self.now)
    }
}

/// A token's state, for the status filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenStatus {
    /// Any token.
    #[default]
    Any,
    /// Not expired.
    Live,
    /// Expired (and not yet purged).
    Expired,
    /// Not expired, and expiring within this time.
    ExpiringWithin(TimeDelta),
    /// Not used (or, never used, not created) within this time.
    UnusedFor(TimeDelta),
}

impl TokenStatus {
    /// Whether `token` is in this state at `now`.
    pub fn matches(self, token: &AuthToken, now: DateTime<Utc>) -> bool {
        match self {
            Self::Any => true,
            Self::Live => !token.has_expired(now),
            Self::Expired => token.has_expired(now),
            Self::ExpiringWithin(d) => !token.has_expired(now) && token.expiry.is_some_and(|e| e <= now + d),
            Self::UnusedFor(d) => token.last_used.unwrap_or(token.created) <= now - d,
        }
    }
}

/// What a page is sorted by. Ties break on the token id, in the same direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SortKey {
    /// Creation time.
    #[default]
    Created,
    /// Last use; never-used tokens count as the oldest.
    LastUsed,
    /// Expiry; tokens that never expire count as the latest.
    Expiry,
}

/// A sort: a key and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenSort {
    /// The key.
    pub key: SortKey,
    /// Largest first.
    pub descending: bool,
}

impl Default for TokenSort {
    /// Newest first.
    fn default() -> Self {
        Self { key: SortKey::Created, descending: true }
    }
}

/// Stands for "never used" in the last-used sort key: before every real time (times are after
/// 1970). Not `i64::MIN`: SQLite reads that literal as a float.
pub const NEVER_USED: i64 = -1;
/// Stands for "never expires" in the expiry sort key: after every real time.
pub const NEVER_EXPIRES: i64 = i64::MAX;

impl TokenSort {
    /// The value `token` is sorted by (microseconds since the epoch; the sentinels above for
    /// `None`), the same the SQL stores compute.
    pub fn value_of(self, token: &AuthToken) -> i64 {
        match self.key {
            SortKey::Created => token.created.timestamp_micros(),
            SortKey::LastUsed => token.last_used.map_or(NEVER_USED, |t| t.timestamp_micros()),
            SortKey::Expiry => token.expiry.map_or(NEVER_EXPIRES, |t| t.timestamp_micros()),
        }
    }

    /// Where `token` stands: its cursor in this sort.
    pub fn cursor_of(self, token: &AuthToken) -> TokenCursor {
        TokenCursor { value: self.value_of(token), id: token.id.0 }
    }
}

/// Where a page starts: the sort value and id of a row. Written as `value.id` in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenCursor {
    /// The row's sort value.
    pub value: i64,
    /// The row's id.
    pub id: i64,
}

impl fmt::Display for TokenCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.value, self.id)
    }
}

/// A cursor that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a page cursor")]
pub struct BadCursor;

impl FromStr for TokenCursor {
    type Err = BadCursor;
    fn from_str(s: &str) -> Result<Self, BadCursor> {
        let (value, id) = s.split_once('.').ok_or(BadCursor)?;
        Ok(Self { value: value.parse().map_err(|_| BadCursor)?, id: id.parse().map_err(|_| BadCursor)? })
    }
}

/// Which page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PageAt {
    /// The first.
    #[default]
    First,
    /// The rows after this one, in the sort's order.
    After(TokenCursor),
    /// The rows before this one (the previous page), still returned in the sort's order.
    Before(TokenCursor),
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPage {
    /// The tokens with their users' names, in the sort's order.
    pub rows: Vec<(AuthToken, Username)>,
    /// How many tokens match the filters, on all pages.
    pub total: u64,
    /// The cursor of the next page, when there are rows after this one.
    pub next: Option<TokenCursor>,
    /// The cursor of the previous page, when there are rows before this one.
    pub prev: Option<TokenCursor>,
}

/// `search` over `list_tokens` and `list_users`, filtered, sorted and paged in memory: for stores
/// without a query language (tokens in Redis). Reads every token once per page; fine for tens of
/// thousands, not for millions.
pub async fn search_tokens_in_memory(store: &dyn Store, search: &TokenSearch) -> Result<TokenPage, StoreError> {
    let filter = TokenFilter { user: search.user, client: search.client, ..TokenFilter::default() };
    let names: HashMap<UserId, Username> = store.list_users().await?.into_iter().map(|u| (u.id, u.username)).collect();
    let tokens = store.list_tokens(filter).await?;
    let matching: Vec<(AuthToken, Username)> = tokens
        .into_iter()
        .filter_map(|t| {
            let name = names.get(&t.user_id)?;
            search.matches(&t, name).then(|| (t, name.clone()))
        })
        .collect();
    Ok(page_of(search, matching))
}

/// Sorts the matching rows and cuts the page `search` asks for.
pub fn page_of(search: &TokenSearch, mut matching: Vec<(AuthToken, Username)>) -> TokenPage {
    let sort = search.sort;
    let total = matching.len() as u64;
    matching.sort_by_key(|(t, _)| sort.cursor_of(t));
    if sort.descending {
        matching.reverse();
    }
    // "After" in the sort's order: further along the list just sorted.
    let ahead = |c: TokenCursor, t: &AuthToken| {
        let at = sort.cursor_of(t);
        if sort.descending { at < c } else { at > c }
    };
    let size = search.page_size() as usize;
    let (start, end) = match search.page {
        PageAt::First => (0, size.min(matching.len())),
        PageAt::After(c) => {
            let start = matching.iter().position(|(t, _)| ahead(c, t)).unwrap_or(matching.len());
            (start, (start + size).min(matching.len()))
        }
        PageAt::Before(c) => {
            // The first row at or past the cursor ends the page.
            let end =
                matching.iter().position(|(t, _)| sort.cursor_of(t) == c || ahead(c, t)).unwrap_or(matching.len());
            (end.saturating_sub(size), end)
        }
    };
    let rows: Vec<_> = matching[start..end].to_vec();
    let next = (end < matching.len()).then(|| rows.last().map(|(t, _)| sort.cursor_of(t))).flatten();
    let prev = (start > 0).then(|| rows.first().map(|(t, _)| sort.cursor_of(t))).flatten();
    TokenPage { rows, total, next, prev }
}

/// Which users, which page: the admin's user list, by username (the store's text order), a page
/// after or before a username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSearch {
    /// Only users whose name contains this text, case-insensitively (as [`TokenSearch`]'s).
    pub username_contains: String,
    /// Rows per page, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// Which page.
    pub page: UserPageAt,
}

impl UserSearch {
    /// The page size actually used.
    pub fn page_size(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE_SIZE)
    }

    /// Whether `user` passes the filter.
    pub fn matches(&self, user: &User) -> bool {
        let text = self.username_contains.trim();
        text.is_empty() || user.username.as_str().to_lowercase().contains(&text.to_lowercase())
    }
}

/// Which page of users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum UserPageAt {
    /// The first.
    #[default]
    First,
    /// The users after this username.
    After(String),
    /// The users before this username (the previous page), still in order.
    Before(String),
}

/// One page of users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    /// The users, by username.
    pub users: Vec<User>,
    /// How many users match, on all pages.
    pub total: u64,
    /// The username the next page follows, when there is one.
    pub next: Option<String>,
    /// The username the previous page precedes, when there is one.
    pub prev: Option<String>,
}

/// `search` over `list_users`, in memory: for stores without a query language.
pub async fn search_users_in_memory(store: &dyn UserStore, search: &UserSearch) -> Result<UserPage, StoreError> {
    let mut users: Vec<User> = store.list_users().await?.into_iter().filter(|u| search.matches(u)).collect();
    users.sort_by(|a, b| a.username.as_str().cmp(b.username.as_str()));
    let total = users.len() as u64;
    let size = search.page_size() as usize;
    let (start, end) = match &search.page {
        UserPageAt::First => (0, size.min(users.len())),
        UserPageAt::After(name) => {
            let start = users.partition_point(|u| u.username.as_str() <= name.as_str());
            (start, (start + size).min(users.len()))
        }
        UserPageAt::Before(name) => {
            let end = users.partition_point(|u| u.username.as_str() < name.as_str());
            (end.saturating_sub(size), end)
        }
    };
    let page: Vec<User> = users[start..end].to_vec();
    let next = (end < users.len()).then(|| page.last().map(|u| u.username.to_string())).flatten();
    let prev = (start > 0).then(|| page.first().map(|u| u.username.to_string())).flatten();
    Ok(UserPage { users: page, total, next, prev })
}
