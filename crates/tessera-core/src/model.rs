//! Users, API clients and tokens, and the names that identify them.

use crate::duration::Ttl;
use crate::rate::Rate;
use crate::token::{IssuedToken, KeyId, TokenDigest, TokenSeed};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A user's id.
    UserId
);
id_type!(
    /// An API client's id.
    ClientId
);
id_type!(
    /// A token's id (the `id` of a session in the sessions API).
    TokenId
);

/// The smallest id [`fresh_id`] draws: ids below it are those that sequences handed out before
/// ids were random, so a fresh id never meets one of them.
pub const FRESH_ID_MIN: i64 = 1 << 32;
/// One past the largest id [`fresh_id`] draws: 2^53, so that every id survives a trip through a
/// JSON number in JavaScript (the sessions API's `id`).
pub const FRESH_ID_END: i64 = 1 << 53;

/// A new id for a user, a client or a token: uniformly random in
/// [`FRESH_ID_MIN`]..[`FRESH_ID_END`], from the OS generator.
///
/// Ids are never taken from a counter. A counter can be wound back (a Redis key deleted, an RDB or
/// AOF restore, a failover to a lagging replica, a SQL restore that rewinds a sequence), and then
/// hands an id out a second time: whatever still refers to the old holder (a cached
/// authentication, a buffered last-used time or sliding-expiry extension, a `DELETE
/// sessions/<id>`) would reach the new one. A random id is issued twice only by a collision of
/// 53-bit draws, which the store refuses (its primary key or an existence check) and draws again.
pub fn fresh_id() -> i64 {
    let span = (FRESH_ID_END - FRESH_ID_MIN) as u64;
    // 2^53 - 2^32 divides 2^64 unevenly; rejecting the top partial span keeps the draw uniform.
    let zone = u64::MAX - u64::MAX % span;
    loop {
        let draw = u64::from_le_bytes(crate::token::random_bytes::<8>());
        if draw < zone {
            return FRESH_ID_MIN + (draw % span) as i64;
        }
    }
}

/// Why a name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{input}': {reason}")]
pub struct NameError {
    what: &'static str,
    input: String,
    reason: String,
}

/// The longest free text an admin stores (a client's description), in characters.
pub const TEXT_MAX: usize = 1024;

/// Why free text was rejected (the text itself is not repeated: it may be long or unprintable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct TextError {
    what: &'static str,
    reason: String,
}

/// Checks free text an admin stores, such as a client's description: at most [`TEXT_MAX`]
/// characters, no control characters (tab and line breaks included: it is one cell of a table) and
/// no bidirectional overrides, so that printing it can neither flood nor drive a terminal.
pub fn check_text(what: &'static str, text: &str) -> Result<(), TextError> {
    let err = |reason: String| TextError { what, reason };
    let len = text.chars().count();
    if len > TEXT_MAX {
        return Err(err(format!("it is {len} characters long; the limit is {TEXT_MAX}")));
    }
    if let Some(c) = text.chars().find(|&c| c.is_control() || is_bidi_control(c)) {
        return Err(err(format!("it must not contain control characters (found {})", c.escape_unicode())));
    }
    Ok(())
}

/// Unicode's bidirectional embedding, override and isolate controls, which reorder what a
/// terminal shows.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The longest client name.
pub const CLIENT_NAME_MAX: usize = 64;
/// The longest username (Django's limit).
pub const USERNAME_MAX: usize = 150;

/// A client's name: unique, not blank, at most 64 characters, no surrounding whitespace and no
/// control characters. Login matches it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ClientName(String);

impl ClientName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ClientName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| NameError { what: "client name", input: s.to_string(), reason: reason.to_string() };
        if s.trim().is_empty() {
            return Err(err("it must not be blank"));
        }
        let len = s.chars().count();
        if len > CLIENT_NAME_MAX {
            return Err(err(&format!("it is {len} characters long; the limit is {CLIENT_NAME_MAX}")));
        }
        if s.trim() != s {
            return Err(err("it must not start or end with whitespace"));
        }
        if s.chars().any(char::is_control) {
            return Err(err("it must not contain control characters"));
        }
        Ok(ClientName(s.to_string()))
    }
}

impl fmt::Display for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ClientName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A username as Django stores it: NFKC-normalised (`AbstractBaseUser.normalize_username`), then
/// not blank, at most 150 characters, each a Unicode word character or one of `@ . + -` (Django's
/// `UnicodeUsernameValidator`, `^[\w.@+-]+\Z`, checked after normalisation as Django's forms do).
///
/// Parsing normalises, so every path that names a user — creating one (CLI, admin, library,
/// import), logging in, looking one up — agrees on one spelling: `ａｌｉｃｅ` (fullwidth) *is*
/// `alice`, and creating it next to an existing `alice` is a conflict.
///
/// ```
/// use tessera_core::Username;
///
/// let name: Username = "ａｌｉｃｅ".parse().unwrap();
/// assert_eq!(name.as_str(), "alice");
/// assert_eq!("ﬁona".parse::<Username>().unwrap().as_str(), "fiona");
/// assert!("al ice".parse::<Username>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Django's `normalize_username`: Unicode NFKC. Does no checking; [`str::parse`] normalises
    /// and checks.
    pub fn normalize(name: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        name.nfkc().collect()
    }

    /// A name as a store holds it, checked but not normalised: a name stored by a version before
    /// normalisation is shown as it was stored rather than as a different, existing user.
    /// Earlier versions also took combining marks (Rust's `char::is_alphanumeric`), so those
    /// still read back.
    pub fn stored(s: &str) -> Result<Self, NameError> {
        let err = |reason: &str| NameError { what: "stored username", input: s.to_string(), reason: reason.into() };
        if s.is_empty() || s.chars().count() > USERNAME_MAX {
            return Err(err("it is blank or too long"));
        }
        if !s.chars().all(|c| c.is_alphanumeric() || is_word_char(c) || "@.+-".contains(c)) {
            return Err(err("it holds a character no username may have"));
        }
        Ok(Username(s.to_string()))
    }
}

/// Whether Python's `re` counts `c` as `\w` in a str pattern: `str.isalnum()` or `_`. Python's
/// `isalnum` is a letter (Lu, Ll, Lt, Lm, Lo) or a character with a numeric value, which are the
/// numbers (Nd, Nl, No). Not Rust's `char::is_alphanumeric`: that also takes combining marks and
/// circled letters with the Alphabetic property, which Django refuses.
fn is_word_char(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
    c == '_' || matches!(c.general_category_group(), GeneralCategoryGroup::Letter | GeneralCategoryGroup::Number)
}

/// The checks Django's validators make, on `name` (already normalised or as stored); `input` is
/// what the caller gave, for the message.
fn check_username(input: &str, name: &str) -> Result<(), NameError> {
    let err = |reason: String| NameError { what: "username", input: input.to_string(), reason };
    if name.is_empty() {
        return Err(err("it must not be blank".into()));
    }
    let len = name.chars().count();
    if len > USERNAME_MAX {
        let normalised = if input == name { "" } else { " once normalised (NFKC)" };
        return Err(err(format!("it is {len} characters long{normalised}; the limit is {USERNAME_MAX}")));
    }
    if let Some(bad) = name.chars().find(|&c| !(is_word_char(c) || "@.+-".contains(c))) {
        return Err(err(format!("'{}' is not allowed (use letters, digits and @ . + - _)", bad.escape_default())));
    }
    Ok(())
}

impl FromStr for Username {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The length first, before any work: a login with 64 KB of name costs a count, not a
        // normalisation. NFKC can lengthen a name (up to 18 times for one character), so the
        // normalised name is checked again; Django checks only the normalised one, so a name over
        // 150 characters that normalisation would shorten is refused here and accepted there.
        let len = s.chars().count();
        if len > USERNAME_MAX {
            return Err(NameError {
                what: "username",
                input: s.to_string(),
                reason: format!("it is {len} characters long; the limit is {USERNAME_MAX}"),
            });
        }
        let normalized = Username::normalize(s);
        check_username(s, &normalized)?;
        Ok(Username(normalized))
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Someone who logs in. Its `Debug` does not show the password hash.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// The id.
    pub id: UserId,
    /// The unique username.
    pub username: Username,
    /// The Argon2id hash in PHC format; never serialized.
    #[serde(skip)]
    pub password_hash: String,
    /// Inactive users cannot log in and their tokens stop working.
    pub is_active: bool,
    /// Staff users may use the admin UI.
    pub is_staff: bool,
    /// When the user was created.
    pub created: DateTime<Utc>,
}

/// A user to create. Its `Debug` does not show the password hash.
#[derive(Clone)]
pub struct NewUser {
    /// The username.
    pub username: Username,
    /// The Argon2id hash (see [`crate::password::hash_password`]).
    pub password_hash: String,
    /// Staff flag.
    pub is_staff: bool,
    /// Active flag.
    pub is_active: bool,
}

/// An API client: "web", "ios", "cli", ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    /// The id.
    pub id: ClientId,
    /// The unique name.
    pub name: ClientName,
    /// How long its tokens live.
    pub token_ttl: Ttl,
    /// Its per-(user, client) throttle rate; `None` uses the default rate.
    pub throttle_rate: Option<Rate>,
    /// Whether each use of a token extends its expiry to now + TTL.
    pub sliding_expiry: bool,
    /// With sliding expiry, the cap on a token's total lifetime (from its creation).
    pub max_lifetime: Option<Ttl>,
    /// Free text for admins.
    pub description: String,
    /// How many tokens a user holds on this client: one (durin) or one per device (djforge).
    /// Serialized as `devices` (`one` | `many`) and, for `many`, `max_devices` and
    /// `on_device_limit` beside the other fields.
    #[serde(flatten)]
    pub devices: Devices,
    /// When the client was created.
    pub created: DateTime<Utc>,
}

impl Client {
    /// The expiry of a token of this client issued or renewed at `now`, capped by the maximum
    /// lifetime counted from `created` (the token's creation).
    pub fn expiry_from(&self, now: DateTime<Utc>, created: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let ttl = self.token_ttl.duration()?;
        let expiry = now + ttl;
        match self.max_lifetime.and_then(|m| m.duration()) {
            Some(max) => Some(expiry.min(created + max)),
            None => Some(expiry),
        }
    }
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password_hash", &"[redacted]")
            .field("is_staff", &self.is_staff)
            .field("is_active", &self.is_active)
            .finish()
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"[redacted]")
            .field("is_active", &self.is_active)
            .field("is_staff", &self.is_staff)
            .field("created", &self.created)
            .finish()
    }
}

/// A client to create.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// The name.
    pub name: ClientName,
    /// Token lifetime.
    pub token_ttl: Ttl,
    /// Throttle rate (`None`: the default).
    pub throttle_rate: Option<Rate>,
    /// Sliding expiry on or off.
    pub sliding_expiry: bool,
    /// Cap on the total lifetime with sliding expiry.
    pub max_lifetime: Option<Ttl>,
    /// Description.
    pub description: String,
    /// One token per (user, client), or one per device.
    pub devices: Devices,
}

impl NewClient {
    /// A client named `name` with `ttl` and nothing else set.
    pub fn new(name: ClientName, token_ttl: Ttl) -> Self {
        Self {
            name,
            token_ttl,
            throttle_rate: None,
            sliding_expiry: false,
            max_lifetime: None,
            description: String::new(),
            devices: Devices::One,
        }
    }
}

/// The most tokens a `many` client lets a user hold when nothing else is said.
pub const DEFAULT_MAX_DEVICES: u32 = 10;
/// The largest `max_devices` accepted.
pub const MAX_MAX_DEVICES: u32 = 1_000;

/// How many tokens a user holds on a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "devices", rename_all = "snake_case")]
pub enum Devices {
    /// durin's rule, the default: at most one token per (user, client); a second login to the
    /// client is handed the same token, and a logout anywhere ends it everywhere.
    #[default]
    One,
    /// djforge-redis-multitokens' rule: every login creates a token for that device; a logout
    /// ends only that device's token. At most `max_devices` per (user, client).
    Many {
        /// How many tokens a user may hold on the client (1 to [`MAX_MAX_DEVICES`]).
        max_devices: u32,
        /// What a login past the limit does.
        on_device_limit: OnDeviceLimit,
    },
}

impl Devices {
    /// `many` with the default limit and policy.
    pub fn many() -> Self {
        Devices::Many { max_devices: DEFAULT_MAX_DEVICES, on_device_limit: OnDeviceLimit::EvictOldest }
    }

    /// `one` or `many`.
    pub fn name(&self) -> &'static str {
        match self {
            Devices::One => "one",
            Devices::Many { .. } => "many",
        }
    }

    /// Builds the policy from its three settings as an admin gives them (`devices`,
    /// `max_devices`, `on_device_limit`), checking each; the last two apply to `many` only and
    /// default to 10 and `evict-oldest`.
    pub fn from_parts(
        devices: &str,
        max_devices: Option<u32>,
        on_device_limit: Option<OnDeviceLimit>,
    ) -> Result<Self, DevicesError> {
        match devices {
            "one" => {
                if max_devices.is_some() || on_device_limit.is_some() {
                    return Err(DevicesError::OnlyForMany);
                }
                Ok(Devices::One)
            }
            "many" => {
                let max_devices = max_devices.unwrap_or(DEFAULT_MAX_DEVICES);
                if !(1..=MAX_MAX_DEVICES).contains(&max_devices) {
                    return Err(DevicesError::MaxDevices(max_devices));
                }
                let on_device_limit = on_device_limit.unwrap_or(OnDeviceLimit::EvictOldest);
                Ok(Devices::Many { max_devices, on_device_limit })
            }
            other => Err(DevicesError::Devices(other.to_string())),
        }
    }
}

/// What a login on a `many` client does when the user already holds `max_devices` tokens there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnDeviceLimit {
    /// Revoke the user's least recently used token on the client (a `TokenRevoked` event by
    /// [`Revoker::DeviceLimit`](crate::Revoker::DeviceLimit)), then issue the new one.
    EvictOldest,
    /// Refuse the login (400) and change nothing.
    Refuse,
}

impl OnDeviceLimit {
    /// `evict-oldest` or `refuse`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OnDeviceLimit::EvictOldest => "evict-oldest",
            OnDeviceLimit::Refuse => "refuse",
        }
    }
}

impl fmt::Display for OnDeviceLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OnDeviceLimit {
    type Err = DevicesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "evict-oldest" => Ok(OnDeviceLimit::EvictOldest),
            "refuse" => Ok(OnDeviceLimit::Refuse),
            other => Err(DevicesError::OnDeviceLimit(other.to_string())),
        }
    }
}

/// Why a device policy was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DevicesError {
    /// Not `one` or `many`.
    #[error("invalid devices '{0}': use 'one' or 'many'")]
    Devices(String),
    /// Out of range.
    #[error("invalid max_devices {0}: use 1 to {MAX_MAX_DEVICES}")]
    MaxDevices(u32),
    /// Not a known policy.
    #[error("invalid on_device_limit '{0}': use 'evict-oldest' or 'refuse'")]
    OnDeviceLimit(String),
    /// A `many` setting given for `one`.
    #[error("max_devices and on_device_limit apply only to devices = 'many'")]
    OnlyForMany,
}

/// The credential of one (user, client) pair, as stored: no usable token, only its digest and the
/// seed from which the server key re-derives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthToken {
    /// The id.
    pub id: TokenId,
    /// Whose token.
    pub user_id: UserId,
    /// For which client.
    pub client_id: ClientId,
    /// The keyed digest the store looks tokens up by.
    pub digest: TokenDigest,
    /// The seed the token is derived from (useless without the server key).
    pub seed: TokenSeed,
    /// The server key it was made with (`0` for tokens issued before tokens carried a key id).
    pub key_id: KeyId,
    /// When it was issued.
    pub created: DateTime<Utc>,
    /// When it expires; `None` never.
    pub expiry: Option<DateTime<Utc>>,
    /// When it was last used, as last flushed.
    pub last_used: Option<DateTime<Utc>>,
    /// The user agent of the login that issued it.
    pub user_agent: Option<String>,
    /// The client IP of the login that issued it.
    pub ip: Option<String>,
}

impl AuthToken {
    /// Whether this is a durin token imported by `tessera import durin` (a *legacy* token): it
    /// authenticates like any other, but cannot be re-derived, so a login for its pair replaces it
    /// with a native token.
    pub fn is_legacy(&self) -> bool {
        self.seed == TokenSeed::NONE
    }

    /// Whether the token has expired at `now`.
    pub fn has_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiry.is_some_and(|e| e <= now)
    }

    /// The total lifetime (expiry − created), `None` for never.
    pub fn lifetime(&self) -> Option<TimeDelta> {
        self.expiry.map(|e| e - self.created)
    }
}

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Whose.
    pub user_id: UserId,
    /// Which client.
    pub client_id: ClientId,
    /// The digest.
    pub digest: TokenDigest,
    /// The seed.
    pub seed: TokenSeed,
    /// The server key it was made with.
    pub key_id: KeyId,
    /// Issued at.
    pub created: DateTime<Utc>,
    /// Expires at.
    pub expiry: Option<DateTime<Utc>>,
    /// Login's user agent.
    pub user_agent: Option<String>,
    /// Login's IP.
    pub ip: Option<String>,
}

impl NewToken {
    /// The token `issued` for `user` on `client` at `now`, expiring after the client's TTL; no
    /// user agent or IP (set them for a login).
    pub fn issued(issued: &IssuedToken, user: UserId, client: &Client, now: DateTime<Utc>) -> Self {
        Self {
            user_id: user,
            client_id: client.id,
            digest: issued.digest,
            seed: issued.seed,
            key_id: issued.key_id,
            created: now,
            expiry: client.expiry_from(now, now),
            user_agent: None,
            ip: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_text_is_bounded_and_printable() {
        assert!(super::check_text("description", "Web app: ünïcode is fine").is_ok());
        assert!(super::check_text("description", &"x".repeat(super::TEXT_MAX)).is_ok());
        let long = super::check_text("description", &"x".repeat(65_536)).expect_err("too long").to_string();
        assert!(long.contains("65536 characters long; the limit is 1024"), "{long}");
        for bad in ["\u{1b}[31mred", "two\nlines", "tab\there", "bell\u{7}", "c1\u{9b}", "rtl\u{202e}txt"] {
            let err = super::check_text("description", bad).expect_err("control").to_string();
            assert!(err.contains("control characters"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn fresh_ids_are_in_range_and_do_not_repeat() {
        let ids: std::collections::HashSet<i64> = (0..10_000).map(|_| fresh_id()).collect();
        assert_eq!(ids.len(), 10_000, "10,000 draws from 2^53 values repeated one");
        assert!(ids.iter().all(|id| (FRESH_ID_MIN..FRESH_ID_END).contains(id)));
        // Not a counter: consecutive draws are spread over the range.
        let (lo, hi) = (ids.iter().min().copied().unwrap_or(0), ids.iter().max().copied().unwrap_or(0));
        assert!(hi - lo > (FRESH_ID_END - FRESH_ID_MIN) / 2, "draws span {lo}..{hi}");
    }

    #[test]
    fn debug_never_shows_a_password_hash() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_string();
        let new = NewUser {
            username: "alice".parse().expect("name"),
            password_hash: hash.clone(),
            is_staff: false,
            is_active: true,
        };
        let user = User {
            id: UserId(1),
            username: new.username.clone(),
            password_hash: hash.clone(),
            is_active: true,
            is_staff: false,
            created: DateTime::from_timestamp(0, 0).unwrap_or_default(),
        };
        for shown in [format!("{new:?}"), format!("{user:?}"), format!("{user:#?}")] {
            assert!(!shown.contains("argon2") && shown.contains("alice") && shown.contains("[redacted]"), "{shown}");
        }
    }

    use super::*;

    #[test]
    fn client_names() {
        assert_eq!("web".parse::<ClientName>().map(|n| n.to_string()), Ok("web".into()));
        assert!("api-access v2".parse::<ClientName>().is_ok());
        assert!(("a".repeat(64)).parse::<ClientName>().is_ok());
        for (bad, want) in [
            ("", "must not be blank"),
            ("   ", "must not be blank"),
            (" web", "must not start or end with whitespace"),
            ("web\n", "must not start or end with whitespace"),
            ("we\u{7}b", "control characters"),
        ] {
            let err = bad.parse::<ClientName>().expect_err(bad).to_string();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
        let long = "a".repeat(65);
        let err = long.parse::<ClientName>().expect_err("65").to_string();
        assert!(err.contains("it is 65 characters long; the limit is 64"), "{err}");
    }

    #[test]
    fn usernames() {
        for ok in ["alice", "a.b+c-d_e@f", "Zoë", "x"] {
            assert!(ok.parse::<Username>().is_ok(), "{ok}");
        }
        for (bad, want) in [("", "blank"), ("a b", "' ' is not allowed"), ("a/b", "'/' is not allowed"), (" a", "' '")]
        {
            let err = bad.parse::<Username>().expect_err(bad).to_string();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
        assert!("u".repeat(151).parse::<Username>().is_err());
    }

    #[test]
    fn device_policies_parse_and_name_what_is_wrong() {
        assert_eq!(Devices::from_parts("one", None, None), Ok(Devices::One));
        assert_eq!(Devices::from_parts("many", None, None), Ok(Devices::many()));
        assert_eq!(
            Devices::from_parts("many", Some(5), Some("refuse".parse().expect("policy"))),
            Ok(Devices::Many { max_devices: 5, on_device_limit: OnDeviceLimit::Refuse })
        );
        let err = |d: &str, m: Option<u32>, o: Option<&str>| {
            let o = o.map(|o| o.parse::<OnDeviceLimit>().expect("policy"));
            Devices::from_parts(d, m, o).expect_err("refused").to_string()
        };
        assert_eq!(err("several", None, None), "invalid devices 'several': use 'one' or 'many'");
        assert_eq!(err("many", Some(0), None), "invalid max_devices 0: use 1 to 1000");
        assert_eq!(err("many", Some(1001), None), "invalid max_devices 1001: use 1 to 1000");
        assert_eq!(err("one", Some(3), None), "max_devices and on_device_limit apply only to devices = 'many'");
        assert_eq!(
            "evict".parse::<OnDeviceLimit>().expect_err("refused").to_string(),
            "invalid on_device_limit 'evict': use 'evict-oldest' or 'refuse'"
        );
    }

    #[test]
    fn expiry_respects_ttl_and_cap() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let mut client = Client {
            id: ClientId(1),
            name: "web".parse().expect("name"),
            token_ttl: "1h".parse().expect("ttl"),
            throttle_rate: None,
            sliding_expiry: true,
            max_lifetime: None,
            description: String::new(),
            devices: Devices::One,
            created: t0,
        };
        assert_eq!(client.expiry_from(t0, t0), Some(t0 + TimeDelta::hours(1)));
        client.max_lifetime = Some("90m".parse().expect("cap"));
        let later = t0 + TimeDelta::hours(1);
        assert_eq!(client.expiry_from(later, t0), Some(t0 + TimeDelta::minutes(90)));
        client.token_ttl = Ttl::Never;
        assert_eq!(client.expiry_from(later, t0), None);
    }
}
