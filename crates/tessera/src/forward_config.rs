//! The `[forward_auth]` table of the config file: route rules, trusted proxies, header names.
//! Each error names the key (`forward_auth.routes[1].path_prefix`), the value and the file.
//!
//! ```toml
//! [forward_auth]
//! default = "deny"                 # or "authenticated": what a request no rule covers gets
//! trusted_proxies = ["127.0.0.1"]  # else `trusted_proxies`, else loopback
//! nginx_throttled_status = 403     # or 401
//!
//! [[forward_auth.routes]]
//! host = "api.example.com"         # optional: any host
//! path_prefix = "/api"
//! anonymous = false
//! allow_clients = ["web"]          # or deny_clients = [...]
//! throttle = true
//! audience = "orders"              # the signed identity's `aud` for this upstream
//! ```
//!
//! The signed identity (`X-Tessera-Identity`, a JWT for the upstream) is off unless
//! `identity_token = true`; then `identity_audience` (or every route's `audience`),
//! `identity_ttl` (≤ 60 s, default 30 s), `identity_issuer` (default `tessera`) and
//! `identity_header` apply. The keys are not read here (`identity_key.rs`).

use anyhow::{Result, anyhow, bail};
use axum::http::{HeaderName, StatusCode};
use tessera_axum::forward::identity::MAX_TTL;
use tessera_axum::forward::{ForwardAuthConfig, IdentitySigner, IdentityToken, default_trusted_proxies};
use tessera_core::net::IpNet;
use tessera_core::route_rules::{ClientRule, NoMatch, RouteRule, RouteRules};

/// The table's keys.
const KEYS: &[&str] = &[
    "default",
    "trusted_proxies",
    "nginx_throttled_status",
    "original_method_header",
    "original_uri_header",
    "original_host_header",
    "user_id_header",
    "user_header",
    "client_header",
    "token_id_header",
    "identity_token",
    "identity_header",
    "identity_ttl",
    "identity_issuer",
    "identity_audience",
    "routes",
];
/// A route's keys.
const ROUTE_KEYS: &[&str] =
    &["host", "path_prefix", "anonymous", "allow_clients", "deny_clients", "throttle", "audience"];

/// The forward-auth configuration from the `forward_auth` value (`None`: not configured) read
/// from `source`; `global_trusted` is the top-level `trusted_proxies`.
pub fn parse(value: Option<(toml::Value, String)>, global_trusted: &[IpNet]) -> Result<ForwardAuthConfig> {
    let mut config = ForwardAuthConfig::default();
    if !global_trusted.is_empty() {
        config.trusted_proxies = global_trusted.to_vec();
    }
    let Some((value, source)) = value else { return Ok(config) };
    let bad = |key: &str, value: &dyn std::fmt::Display, why: &str| {
        anyhow!("{source}: invalid value {value} for 'forward_auth.{key}': {why}")
    };
    let toml::Value::Table(table) = value else {
        bail!("{source}: 'forward_auth' must be a table ([forward_auth]), not {}", value.type_str())
    };
    for key in table.keys() {
        if !KEYS.contains(&key.as_str()) {
            bail!("{source}: unknown key 'forward_auth.{key}' (known keys: {})", KEYS.join(", "));
        }
    }
    let mut no_match = NoMatch::Deny;
    if let Some(v) = table.get("default") {
        no_match = match v.as_str() {
            Some("deny") => NoMatch::Deny,
            Some("authenticated") => NoMatch::Authenticated,
            _ => return Err(bad("default", v, "use \"deny\" or \"authenticated\"")),
        };
    }
    if let Some(v) = table.get("trusted_proxies") {
        config.trusted_proxies = strings(v)
            .ok_or_else(|| bad("trusted_proxies", v, "expected a list of addresses or ranges"))?
            .iter()
            .map(|s| s.parse::<IpNet>().map_err(|e| bad("trusted_proxies", v, &e)))
            .collect::<Result<_>>()?;
        if config.trusted_proxies.is_empty() {
            config.trusted_proxies = default_trusted_proxies();
        }
    }
    if let Some(v) = table.get("nginx_throttled_status") {
        config.nginx.throttled_status = match v.as_integer() {
            Some(401) => StatusCode::UNAUTHORIZED,
            Some(403) => StatusCode::FORBIDDEN,
            _ => return Err(bad("nginx_throttled_status", v, "nginx understands only 401 or 403")),
        };
    }
    let headers: [(&str, &mut HeaderName); 7] = [
        ("original_method_header", &mut config.nginx.method_header),
        ("original_uri_header", &mut config.nginx.uri_header),
        ("original_host_header", &mut config.nginx.host_header),
        ("user_id_header", &mut config.identity.user_id),
        ("user_header", &mut config.identity.user),
        ("client_header", &mut config.identity.client),
        ("token_id_header", &mut config.identity.token_id),
    ];
    for (key, slot) in headers {
        if let Some(v) = table.get(key) {
            let name = v
                .as_str()
                .and_then(|s| HeaderName::from_bytes(s.trim().as_bytes()).ok())
                .ok_or_else(|| bad(key, v, "expected a header name"))?;
            if ["authorization", "cookie", "host", "content-length", "transfer-encoding"].contains(&name.as_str()) {
                return Err(bad(key, v, "that header has a meaning of its own"));
            }
            *slot = name;
        }
    }
    let ids = &config.identity;
    let names = [&ids.user_id, &ids.user, &ids.client, &ids.token_id];
    if (1..names.len()).any(|i| names[..i].contains(&names[i])) {
        bail!("{source}: the identity headers of 'forward_auth' must have four different names");
    }
    let mut rules = Vec::new();
    if let Some(v) = table.get("routes") {
        let Some(list) = v.as_array() else {
            bail!("{source}: 'forward_auth.routes' must be a list of tables ([[forward_auth.routes]])")
        };
        for (i, route) in list.iter().enumerate() {
            rules.push(route_rule(i, route, &source)?);
        }
    }
    config.rules = RouteRules::new(rules, no_match).map_err(|e| anyhow!("{source}: forward_auth.routes: {e}"))?;
    config.identity_token = identity_token(&table, &config, &source)?;
    Ok(config)
}

/// The signed identity's settings (its keys are loaded by `serve`), when `identity_token = true`.
fn identity_token(table: &toml::Table, config: &ForwardAuthConfig, source: &str) -> Result<Option<IdentityToken>> {
    let bad = |key: &str, value: &dyn std::fmt::Display, why: &dyn std::fmt::Display| {
        anyhow!("{source}: invalid value {value} for 'forward_auth.{key}': {why}")
    };
    let on = match table.get("identity_token") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(v) => return Err(bad("identity_token", v, &"expected true or false")),
    };
    if !on {
        if let Some(key) = ["identity_header", "identity_ttl", "identity_issuer", "identity_audience"]
            .into_iter()
            .find(|k| table.contains_key(*k))
        {
            bail!("{source}: 'forward_auth.{key}' is set but the signed identity is off (identity_token = true)");
        }
        return Ok(None);
    }
    let mut token = IdentityToken::new(IdentitySigner::default());
    if let Some(v) = table.get("identity_header") {
        let name = v
            .as_str()
            .and_then(|s| HeaderName::from_bytes(s.trim().as_bytes()).ok())
            .ok_or_else(|| bad("identity_header", v, &"expected a header name"))?;
        let ids = &config.identity;
        if [&ids.user_id, &ids.user, &ids.client, &ids.token_id].contains(&&name)
            || ["authorization", "cookie", "host", "content-length", "transfer-encoding"].contains(&name.as_str())
        {
            return Err(bad("identity_header", v, &"that header has a meaning of its own"));
        }
        token.header = name;
    }
    if let Some(v) = table.get("identity_ttl") {
        let ttl = v
            .as_str()
            .and_then(|s| tessera_core::duration::parse_duration(s).ok())
            .and_then(|d| d.to_std().ok())
            .ok_or_else(|| bad("identity_ttl", v, &"expected a duration such as \"30s\""))?;
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(bad("identity_ttl", v, &"between 1 and 60 seconds: it proves one request"));
        }
        token.ttl = ttl;
    }
    let text = |key: &str| -> Result<Option<String>> {
        let Some(v) = table.get(key) else { return Ok(None) };
        match v.as_str().map(str::trim) {
            Some(s) if !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control) => Ok(Some(s.to_string())),
            _ => Err(bad(key, v, &"expected a non-empty name of at most 256 characters")),
        }
    };
    if let Some(issuer) = text("identity_issuer")? {
        token.issuer = issuer;
    }
    token.audience = text("identity_audience")?;
    if token.audience.is_none() {
        // Fail at start-up, not at the first request: a token without an audience would be good
        // at every upstream.
        if let Some(i) = config.rules.rules().iter().position(|r| r.audience.is_none()) {
            bail!(
                "{source}: 'forward_auth.routes[{i}]' has no audience for the signed identity: set its 'audience' \
                 or 'forward_auth.identity_audience'"
            );
        }
        if config.rules.no_match == NoMatch::Authenticated {
            bail!(
                "{source}: default = \"authenticated\" with the signed identity needs 'forward_auth.identity_audience'"
            );
        }
    }
    Ok(Some(token))
}

fn strings(v: &toml::Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(|s| s.as_str().map(|s| s.trim().to_string())).collect()
}

fn route_rule(i: usize, route: &toml::Value, source: &str) -> Result<RouteRule> {
    let at = |key: &str| format!("forward_auth.routes[{i}].{key}");
    let bad = |key: &str, value: &dyn std::fmt::Display, why: &dyn std::fmt::Display| {
        anyhow!("{source}: invalid value {value} for '{}': {why}", at(key))
    };
    let Some(table) = route.as_table() else {
        bail!("{source}: 'forward_auth.routes[{i}]' must be a table, not {}", route.type_str())
    };
    for key in table.keys() {
        if !ROUTE_KEYS.contains(&key.as_str()) {
            bail!("{source}: unknown key '{}' (known keys: {})", at(key), ROUTE_KEYS.join(", "));
        }
    }
    let host = match table.get("host") {
        None => None,
        Some(v) => Some(v.as_str().ok_or_else(|| bad("host", v, &"expected a host name"))?),
    };
    let Some(prefix_value) = table.get("path_prefix") else {
        bail!("{source}: '{}' is required (\"/\" for every path)", at("path_prefix"))
    };
    let prefix = prefix_value.as_str().ok_or_else(|| bad("path_prefix", prefix_value, &"expected a path"))?;
    let mut rule = RouteRule::new(host, prefix).map_err(|e| {
        if table.get("host").is_some() && e.0.starts_with("host") {
            bad("host", table.get("host").unwrap_or(prefix_value), &e)
        } else {
            bad("path_prefix", prefix_value, &e)
        }
    })?;
    let flag = |key: &str| -> Result<bool> {
        match table.get(key) {
            None => Ok(false),
            Some(toml::Value::Boolean(b)) => Ok(*b),
            Some(v) => Err(bad(key, v, &"expected true or false")),
        }
    };
    if let Some(v) = table.get("audience") {
        match v.as_str().map(str::trim) {
            Some(s) if !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control) => {
                rule.audience = Some(s.to_string());
            }
            _ => return Err(bad("audience", v, &"expected a non-empty name of at most 256 characters")),
        }
    }
    rule.anonymous = flag("anonymous")?;
    rule.throttle = flag("throttle")?;
    let list = |key: &str| -> Result<Option<Vec<String>>> {
        let Some(v) = table.get(key) else { return Ok(None) };
        let names = strings(v).ok_or_else(|| bad(key, v, &"expected a list of client names"))?;
        if names.is_empty() || names.iter().any(String::is_empty) {
            return Err(bad(key, v, &"expected a non-empty list of client names"));
        }
        Ok(Some(names))
    };
    rule.clients = match (list("allow_clients")?, list("deny_clients")?) {
        (Some(_), Some(_)) => bail!("{source}: '{}': give allow_clients or deny_clients, not both", at("")),
        (Some(only), None) => ClientRule::Only(only),
        (None, Some(but)) => ClientRule::AllBut(but),
        (None, None) => ClientRule::Any,
    };
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<ForwardAuthConfig> {
        let table: toml::Table = toml::from_str(text).expect("toml");
        parse(table.get("forward_auth").cloned().map(|v| (v, "config file t.toml".to_string())), &[])
    }

    #[test]
    fn rules_and_headers() {
        let c = parse_text(
            "[forward_auth]\ndefault = \"authenticated\"\nnginx_throttled_status = 401\nuser_header = \"Remote-User\"\n\
             [[forward_auth.routes]]\npath_prefix = \"/api\"\nallow_clients = [\"web\"]\nthrottle = true\n\
             [[forward_auth.routes]]\nhost = \"Pub.Example.com\"\npath_prefix = \"/\"\nanonymous = true\n",
        )
        .expect("config");
        assert_eq!(c.rules.no_match, NoMatch::Authenticated);
        assert_eq!(c.nginx.throttled_status, StatusCode::UNAUTHORIZED);
        assert_eq!(c.identity.user.as_str(), "remote-user");
        assert_eq!(c.rules.rules().len(), 2);
        assert_eq!(c.rules.rules()[0].clients, ClientRule::Only(vec!["web".into()]));
        assert!(c.rules.rules()[0].throttle);
        assert_eq!(c.rules.rules()[1].host(), Some("pub.example.com"));
        assert_eq!(c.trusted_proxies, default_trusted_proxies());
        let none = parse(None, &[]).expect("default");
        assert_eq!(none.rules.no_match, NoMatch::Deny);
        assert!(none.rules.rules().is_empty());
    }

    #[test]
    fn the_example_config_parses() {
        let c = parse_text(include_str!("../../../examples/forward-auth/tessera.toml")).expect("example");
        assert_eq!(c.rules.rules().len(), 3);
        assert_eq!(c.rules.no_match, NoMatch::Deny);
    }

    #[test]
    fn errors_name_key_value_and_source() {
        for (text, want) in [
            (
                "[forward_auth]\ndefault = \"allow\"",
                "config file t.toml: invalid value \"allow\" for 'forward_auth.default'",
            ),
            (
                "[forward_auth]\nnginx_throttled_status = 429",
                "invalid value 429 for 'forward_auth.nginx_throttled_status'",
            ),
            ("[forward_auth]\ntrusted_proxies = [\"10.0.0.0/33\"]", "for 'forward_auth.trusted_proxies'"),
            ("[forward_auth]\nuser_header = \"bad header\"", "for 'forward_auth.user_header'"),
            ("[forward_auth]\nuser_header = \"Authorization\"", "has a meaning of its own"),
            ("[forward_auth]\nuser_header = \"X-Tessera-Client\"", "four different names"),
            ("[forward_auth]\nroutes = 1", "must be a list of tables"),
            ("[forward_auth]\nbogus = 1", "unknown key 'forward_auth.bogus'"),
            (
                "[[forward_auth.routes]]\npath_prefix = \"api\"",
                "invalid value \"api\" for 'forward_auth.routes[0].path_prefix'",
            ),
            ("[[forward_auth.routes]]\npath_prefix = \"/a/../b\"", "forward_auth.routes[0].path_prefix"),
            ("[[forward_auth.routes]]\nanonymous = true", "'forward_auth.routes[0].path_prefix' is required"),
            (
                "[[forward_auth.routes]]\npath_prefix = \"/\"\nthrottle = \"yes\"",
                "invalid value \"yes\" for 'forward_auth.routes[0].throttle'",
            ),
            ("[[forward_auth.routes]]\npath_prefix = \"/\"\nhost = \"a b\"", "for 'forward_auth.routes[0].host'"),
            (
                "[[forward_auth.routes]]\npath_prefix = \"/\"\nallow_clients = []",
                "forward_auth.routes[0].allow_clients",
            ),
            (
                "[[forward_auth.routes]]\npath_prefix = \"/\"\nallow_clients = [\"a\"]\ndeny_clients = [\"b\"]",
                "not both",
            ),
            (
                "[[forward_auth.routes]]\npath_prefix = \"/\"\nmethods = [\"GET\"]",
                "unknown key 'forward_auth.routes[0].methods'",
            ),
            (
                "[[forward_auth.routes]]\npath_prefix = \"/a\"\n[[forward_auth.routes]]\npath_prefix = \"/a/\"",
                "rules 0 and 1",
            ),
        ] {
            let err = parse_text(text).expect_err(want);
            assert!(format!("{err:#}").contains(want), "{text}: {err:#}");
        }
    }
}
