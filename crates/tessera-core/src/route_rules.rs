//! Forward-auth route rules: which requests a proxy in front of a service may let through, by
//! host and path prefix, and the one reading of a request path they are matched against.
//!
//! A rule says, for a host (or any host) and a path prefix: whether anonymous requests pass,
//! which clients may (or may not) use it, and whether the per-(user, client) throttle applies.
//! The longest matching prefix wins; at equal length a rule naming the host beats one for any
//! host. No rule matching is [`NoMatch`]'s decision: deny unless configured otherwise.
//!
//! Paths are matched only when they have one reading for every upstream ([`normalize_path`]):
//! a path with a dot segment, an empty segment, an encoded slash or backslash, a `;`, a control
//! character or a `%` that is still there after decoding is refused, so that no upstream can
//! serve it as a path under a stricter rule than the one it matched.

use std::fmt;

/// Which clients a rule lets through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientRule {
    /// Every client.
    #[default]
    Any,
    /// Only these.
    Only(Vec<String>),
    /// Every client but these.
    AllBut(Vec<String>),
}

impl ClientRule {
    /// Whether the client named `name` may pass.
    pub fn allows(&self, name: &str) -> bool {
        match self {
            ClientRule::Any => true,
            ClientRule::Only(list) => list.iter().any(|c| c == name),
            ClientRule::AllBut(list) => !list.iter().any(|c| c == name),
        }
    }
}

/// One rule: a host (or any) and a path prefix, and what passes there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    host: Option<String>,
    path_prefix: String,
    /// Requests without credentials pass (with no identity).
    pub anonymous: bool,
    /// Which clients pass.
    pub clients: ClientRule,
    /// Whether the per-(user, client) throttle applies (anonymous requests are not throttled).
    pub throttle: bool,
    /// The upstream behind this rule, as the signed identity's `aud` names it (`None`: the
    /// deployment's default audience).
    pub audience: Option<String>,
}

/// Why a rule, a path or a host is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub String);

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleError {}

impl RouteRule {
    /// A rule for `path_prefix` (which must already be in its one reading, see
    /// [`normalize_path`]) on `host` (any host when `None`). Anonymous off, any client, no
    /// throttle until set.
    ///
    /// ```
    /// use tessera_core::route_rules::RouteRule;
    /// assert!(RouteRule::new(Some("API.example.com"), "/api").is_ok());
    /// assert!(RouteRule::new(None, "api").is_err());
    /// assert!(RouteRule::new(None, "/a/../b").is_err());
    /// ```
    pub fn new(host: Option<&str>, path_prefix: &str) -> Result<Self, RuleError> {
        let host = host.map(normalize_host).transpose()?;
        let normalized = normalize_path(path_prefix)?;
        if normalized != path_prefix.trim_end_matches('/') && !(normalized == "/" && path_prefix == "/") {
            return Err(RuleError(format!(
                "'{path_prefix}' is not a plain path: write it as '{normalized}' (no query, escapes or trailing slash)"
            )));
        }
        Ok(RouteRule {
            host,
            path_prefix: normalized,
            anonymous: false,
            clients: ClientRule::Any,
            throttle: false,
            audience: None,
        })
    }

    /// The host, lower-case without a port; `None`: any host.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The path prefix, without a trailing slash (`/` for everything).
    pub fn path_prefix(&self) -> &str {
        &self.path_prefix
    }

    /// Whether `path` (normalised) is under this rule's prefix, segment by segment: `/api` covers
    /// `/api` and `/api/x`, never `/apix`.
    fn covers(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(want) = &self.host
            && host != Some(want.as_str())
        {
            return false;
        }
        let prefix = self.path_prefix.as_str();
        prefix == "/" || path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// What happens to a request no rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoMatch {
    /// Refused (403), whoever asks. The default: fail closed.
    #[default]
    Deny,
    /// Any valid token passes (no anonymous requests, no throttle).
    Authenticated,
}

/// The rules of one deployment, checked once at start-up, then only read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteRules {
    rules: Vec<RouteRule>,
    /// What a request no rule covers gets.
    pub no_match: NoMatch,
}

impl RouteRules {
    /// The rules; two for the same host and prefix are refused (which would win is not obvious).
    pub fn new(rules: Vec<RouteRule>, no_match: NoMatch) -> Result<Self, RuleError> {
        for (i, a) in rules.iter().enumerate() {
            if let Some(j) = rules[..i].iter().position(|b| b.host == a.host && b.path_prefix == a.path_prefix) {
                return Err(RuleError(format!(
                    "rules {j} and {i} both cover host {} and path prefix '{}'",
                    a.host.as_deref().unwrap_or("(any)"),
                    a.path_prefix
                )));
            }
        }
        Ok(RouteRules { rules, no_match })
    }

    /// Whether some rule names a host: then a request whose host is unknown must be refused, or
    /// it would escape that rule for one that covers any host.
    pub fn names_hosts(&self) -> bool {
        self.rules.iter().any(|r| r.host.is_some())
    }

    /// The rules, in configured order.
    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    /// The rule for a request to `host` (normalised, see [`normalize_host`]) and `path`
    /// (normalised, see [`normalize_path`]): the longest prefix covering it; at equal length,
    /// the one naming the host.
    ///
    /// ```
    /// use tessera_core::route_rules::{NoMatch, RouteRule, RouteRules};
    /// let rules = RouteRules::new(
    ///     vec![RouteRule::new(None, "/api")?, RouteRule::new(None, "/api/admin")?],
    ///     NoMatch::Deny,
    /// )?;
    /// assert_eq!(rules.find(None, "/api/admin/x").map(|r| r.path_prefix()), Some("/api/admin"));
    /// assert_eq!(rules.find(None, "/api/administrators").map(|r| r.path_prefix()), Some("/api"));
    /// assert_eq!(rules.find(None, "/apix"), None);
    /// # Ok::<(), tessera_core::route_rules::RuleError>(())
    /// ```
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&RouteRule> {
        self.rules.iter().filter(|r| r.covers(host, path)).max_by_key(|r| (r.path_prefix.len(), r.host.is_some()))
    }
}

/// The longest request path (before its query) that is matched at all.
pub const MAX_PATH_LEN: usize = 8192;

/// A request target's path in its one reading: the query and fragment dropped, percent-escapes
/// decoded once, and refused when an upstream could read it differently — a path not starting
/// with `/`, longer than [`MAX_PATH_LEN`], with an empty (`//`), `.` or `..` segment (also
/// encoded), an encoded `/` or `\`, a raw `\`, a `;` (path parameters, which some servers strip),
/// a control character or NUL, an invalid escape, a `%` left after decoding (double encoding),
/// or bytes that are not UTF-8. A trailing slash is dropped (`/api/` is `/api`).
///
/// ```
/// use tessera_core::route_rules::normalize_path;
/// assert_eq!(normalize_path("/%61pi/v1/?q=1").as_deref(), Ok("/api/v1"));
/// assert!(normalize_path("/public/../admin").is_err());
/// assert!(normalize_path("/public/%2e%2e/admin").is_err());
/// assert!(normalize_path("/public%2Fadmin").is_err());
/// assert!(normalize_path("//admin").is_err());
/// ```
pub fn normalize_path(target: &str) -> Result<String, RuleError> {
    let refuse = |why: &str| Err(RuleError(format!("path refused: {why}")));
    let path = target.split(['?', '#']).next().unwrap_or_default();
    if path.len() > MAX_PATH_LEN {
        return refuse("too long");
    }
    if !path.starts_with('/') {
        return refuse("it does not start with '/'");
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).and_then(|c| char::from(*c).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else { return refuse("an invalid escape") };
            let byte = u8::try_from(hi * 16 + lo).unwrap_or(0);
            if byte == b'/' || byte == b'\\' {
                return refuse("an encoded slash or backslash");
            }
            if byte == b'%' {
                return refuse("a double-encoded character");
            }
            decoded.push(byte);
            i += 3;
            continue;
        }
        decoded.push(b);
        i += 1;
    }
    let Ok(mut text) = String::from_utf8(decoded) else { return refuse("not UTF-8") };
    if text.chars().any(|c| c.is_control() || c == '\\' || c == ';') {
        return refuse("a control character, backslash or ';'");
    }
    // The trailing slash dropped in place: one allocation for the whole reading.
    if text.len() > 1 && text.ends_with('/') {
        text.pop();
    }
    if text == "/" {
        return Ok(text);
    }
    for segment in text[1..].split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return refuse("an empty, '.' or '..' segment");
        }
    }
    Ok(text)
}

/// A host as rules name it: lower-case, without a port or a trailing dot. Refused when it is
/// empty, has several values (`a, b`), or characters no host name or address has.
///
/// ```
/// use tessera_core::route_rules::normalize_host;
/// assert_eq!(normalize_host("API.Example.com.:8443").as_deref(), Ok("api.example.com"));
/// assert_eq!(normalize_host("[::1]:80").as_deref(), Ok("[::1]"));
/// assert!(normalize_host("a.com, b.com").is_err());
/// ```
pub fn normalize_host(raw: &str) -> Result<String, RuleError> {
    let refuse = || Err(RuleError(format!("host '{}' is not a host name", raw.escape_debug())));
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 255 {
        return refuse();
    }
    let host = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => {
                let rest = &raw[end + 1..];
                if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))) {
                    return refuse();
                }
                &raw[..=end]
            }
            None => return refuse(),
        }
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return refuse(),
            None => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':');
    if host.is_empty() || !host.bytes().all(ok) {
        return refuse();
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_have_one_reading() {
        let ok = |p: &str| normalize_path(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("/api/"), "/api");
        assert_eq!(ok("/api?x=/../admin"), "/api");
        assert_eq!(ok("/a%20b#frag"), "/a b");
        assert_eq!(ok("/caf%C3%A9"), "/café");
        for bad in [
            "",
            "api",
            "http://h/api",
            "*",
            "/a/../b",
            "/a/./b",
            "/a/..",
            "/%2e%2e/admin",
            "/%2E/admin",
            "/.%2e/admin",
            "//admin",
            "/a//b",
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a\\b",
            "/a;jsessionid=1",
            "/a%3bx",
            "/a%00b",
            "/a%0d%0ab",
            "/a%",
            "/a%zz",
            "/a%252e%252e",
            "/a%ff",
        ] {
            assert!(normalize_path(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(normalize_path(&format!("/{}", "a".repeat(MAX_PATH_LEN))).is_err());
    }

    #[test]
    fn longest_prefix_then_host() {
        let mut api = RouteRule::new(None, "/api").expect("rule");
        api.throttle = true;
        let admin_host = RouteRule::new(Some("Admin.Example.com"), "/api").expect("rule");
        let root = RouteRule::new(None, "/").expect("rule");
        let rules = RouteRules::new(vec![root, api, admin_host], NoMatch::Deny).expect("rules");
        assert_eq!(rules.find(None, "/api/x").map(|r| r.throttle), Some(true));
        assert_eq!(rules.find(Some("admin.example.com"), "/api/x").and_then(|r| r.host()), Some("admin.example.com"));
        assert_eq!(rules.find(Some("other"), "/api").and_then(|r| r.host()), None);
        assert_eq!(rules.find(None, "/apix").map(|r| r.path_prefix()), Some("/"));
        let none = RouteRules::new(vec![RouteRule::new(None, "/api").expect("rule")], NoMatch::Deny).expect("rules");
        assert!(none.find(None, "/").is_none());
        assert!(rules.names_hosts() && !none.names_hosts());
    }

    #[test]
    fn rules_are_checked() {
        assert!(RouteRule::new(None, "/api/").is_ok());
        for bad in ["api", "/api?x", "/a/../b", "/a%2fb", "", "/a//b"] {
            assert!(RouteRule::new(None, bad).is_err(), "{bad}");
        }
        assert!(RouteRule::new(Some("a b"), "/").is_err());
        let twice = vec![RouteRule::new(None, "/a").expect("rule"), RouteRule::new(None, "/a/").expect("rule")];
        assert!(RouteRules::new(twice, NoMatch::Deny).is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(normalize_host("Example.COM").as_deref(), Ok("example.com"));
        assert_eq!(normalize_host("127.0.0.1:8080").as_deref(), Ok("127.0.0.1"));
        for bad in ["", "a b", "a,b", "h:port", "[::1", "[::1]x", "é.com", "a/b"] {
            assert!(normalize_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_rules() {
        assert!(ClientRule::Any.allows("x"));
        assert!(ClientRule::Only(vec!["web".into()]).allows("web"));
        assert!(!ClientRule::Only(vec!["web".into()]).allows("cli"));
        assert!(!ClientRule::AllBut(vec!["cli".into()]).allows("cli"));
    }
}
