//! Network addresses: trusted proxies (which peers may tell us the client's address in
//! `X-Forwarded-For`), and connection URLs shown without their passwords.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::str::FromStr;

/// An address range: `10.0.0.0/8`, `::1/128`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside the range (IPv4-mapped IPv6 addresses match IPv4 ranges).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl IpNet {
    /// The block of addresses that stands for one subscriber, for throttling: an IPv4 address on
    /// its own (`/32`), an IPv6 address by its `/64`. A `/64` is the smallest block a site is
    /// assigned (RFC 6177) and any host on it can pick a new address per request, so keying IPv6
    /// per address would hand one attacker 2^64 budgets. IPv4-mapped IPv6 addresses count as
    /// their IPv4 address.
    ///
    /// ```
    /// use tessera_core::net::IpNet;
    /// let key = |ip: &str| IpNet::subscriber(ip.parse().unwrap()).to_string();
    /// assert_eq!(key("203.0.113.7"), "203.0.113.7/32");
    /// assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
    /// assert_eq!(key("2001:db8:1:2:ffff::9"), "2001:db8:1:2::/64");
    /// assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7/32");
    /// ```
    pub fn subscriber(ip: IpAddr) -> IpNet {
        match ip {
            IpAddr::V4(v4) => IpNet { addr: IpAddr::V4(v4), prefix: 32 },
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpNet { addr: IpAddr::V4(v4), prefix: 32 },
                None => {
                    let masked = u128::from(v6) & (u128::MAX << 64);
                    IpNet { addr: IpAddr::V6(masked.into()), prefix: 64 }
                }
            },
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not an IP address or a range such as 10.0.0.0/8");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.trim(), Some(p.trim())),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The query parameters that carry a password in the connection URLs Tessera accepts
/// (PostgreSQL's `password`, redis-rs's `pass` and `password`), matched without regard to case.
const PASSWORD_PARAMS: [&str; 2] = ["password", "pass"];

/// `url` with every password in it — the one in `user:password@` and the values of `password=` and
/// `pass=` query parameters — replaced by `***`, so that the URL can be logged and shown in errors.
/// Anything that is not a URL comes back as it is.
///
/// ```
/// use tessera_core::net::redact_url;
///
/// assert_eq!(redact_url("postgres://app:s3cret@db:5432/auth"), "postgres://app:***@db:5432/auth");
/// assert_eq!(redact_url("redis://:s3cret@cache"), "redis://:***@cache");
/// assert_eq!(redact_url("postgres://db/auth?password=s3cret&sslmode=require"), "postgres://db/auth?password=***&sslmode=require");
/// assert_eq!(redact_url("sqlite://tessera.db"), "sqlite://tessera.db");
/// ```
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    // Back to front, so that the earlier ranges stay where they are.
    for span in password_spans(url).into_iter().rev() {
        out.replace_range(span, "***");
    }
    out
}

/// The passwords written in a connection URL, as written and percent-decoded, for masking wherever
/// a driver's message might repeat them. Its `Debug` shows how many there are, never what they are.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UrlSecrets(Vec<String>);

impl UrlSecrets {
    /// The passwords in `url` (see [`redact_url`] for where they are looked for); empty ones are
    /// left out, as there is nothing to mask.
    pub fn of(url: &str) -> Self {
        let mut secrets = Vec::new();
        for span in password_spans(url) {
            let written = &url[span];
            if written.is_empty() {
                continue;
            }
            let decoded = percent_decode(written);
            if decoded != written && !decoded.is_empty() {
                secrets.push(decoded);
            }
            secrets.push(written.to_string());
        }
        UrlSecrets(secrets)
    }

    /// `message` with every occurrence of a password replaced by `***`.
    ///
    /// ```
    /// use tessera_core::net::UrlSecrets;
    ///
    /// let secrets = UrlSecrets::of("redis://app:p%40ss@cache/0?password=x2");
    /// assert_eq!(secrets.scrub("auth p@ss failed, p%40ss, x2"), "auth *** failed, ***, ***");
    /// ```
    pub fn scrub(&self, message: &str) -> String {
        let mut out = message.to_string();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

impl fmt::Debug for UrlSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UrlSecrets({} redacted)", self.0.len())
    }
}

/// Where the passwords of `url` are, in order: the password of the user info (between the first
/// `:` and the last `@` of the authority), then each password query parameter's value.
fn password_spans(url: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    if let Some(scheme_end) = url.find("://") {
        let start = scheme_end + 3;
        let rest = &url[start..];
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            spans.push(start + colon + 1..start + at);
        }
    }
    // The query starts after the authority, so its ranges come after the user info's.
    if let Some(query) = url.find('?') {
        let mut pair_start = query + 1;
        for pair in url[pair_start..].split('&') {
            if let Some((key, _)) = pair.split_once('=')
                && PASSWORD_PARAMS.iter().any(|p| key.eq_ignore_ascii_case(p))
            {
                spans.push(pair_start + key.len() + 1..pair_start + pair.len());
            }
            pair_start += pair.len() + 1;
        }
    }
    spans
}

/// `%XX` escapes decoded; a malformed escape is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) =
                (bytes.get(i + 1).and_then(hex_value), bytes.get(i + 2).and_then(hex_value))
        {
            out.push(high << 4 | low);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: &u8) -> Option<u8> {
    char::from(*b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn ranges_and_single_addresses() {
        let net: IpNet = "10.0.0.0/8".parse().expect("net");
        assert!(net.contains(ip("10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped");
        let one: IpNet = "127.0.0.1".parse().expect("one");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: IpNet = "fd00::/8".parse().expect("v6");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: IpNet = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", "::1/129", ""] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn user_and_password_are_redacted() {
        assert_eq!(redact_url("postgres://u:p@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("redis://app:s3cret@cache:6379/1"), "redis://app:***@cache:6379/1");
        assert_eq!(redact_url("mysql://root:hunter2@h"), "mysql://root:***@h");
        // The password runs from the first ':' to the last '@' of the authority.
        assert_eq!(redact_url("postgres://u:p:q@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        // An empty password is masked too: the shape of the URL says nothing either way.
        assert_eq!(redact_url("redis://u:@h"), "redis://u:***@h");
    }

    #[test]
    fn a_password_without_a_user_is_redacted() {
        assert_eq!(redact_url("redis://:s3cret@cache"), "redis://:***@cache");
        assert_eq!(
            redact_url("rediss://:s3cret@cache:6380/2?protocol=resp3"),
            "rediss://:***@cache:6380/2?protocol=resp3"
        );
    }

    #[test]
    fn query_string_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://db/auth?password=s3cret&sslmode=require"),
            "postgres://db/auth?password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://h/db?sslmode=disable&PASSWORD=x"),
            "postgres://h/db?sslmode=disable&PASSWORD=***"
        );
        assert_eq!(redact_url("unix:///tmp/redis.sock?pass=x"), "unix:///tmp/redis.sock?pass=***");
        assert_eq!(redact_url("redis://u:p%40ss@h:1/0?password=x&db=1"), "redis://u:***@h:1/0?password=***&db=1");
        // Only the key decides: a parameter merely containing "password" is left alone.
        assert_eq!(redact_url("postgres://h/db?passwordless=1"), "postgres://h/db?passwordless=1");
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        for url in [
            "sqlite://tessera.db",
            "sqlite:///var/lib/tessera/t.db?mode=rwc",
            "postgres://u@h/db",
            "redis://cache:6379",
            "rediss://h",
            "postgres://h/db?user=me@example.com",
            "not a url",
            "",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn secrets_are_found_as_written_and_decoded() {
        let secrets = UrlSecrets::of("redis://u:p%40ss@h:1/0?password=x2");
        assert_eq!(secrets, UrlSecrets(vec!["p@ss".into(), "p%40ss".into(), "x2".into()]));
        assert_eq!(secrets.scrub("auth p@ss failed, p%40ss, x2"), "auth *** failed, ***, ***");
        assert_eq!(format!("{secrets:?}"), "UrlSecrets(3 redacted)");
        let url = "postgres://app:hunter2@db/auth";
        let secrets = UrlSecrets::of(url);
        assert_eq!(secrets.scrub("bad hunter2 thing"), "bad *** thing");
        assert_eq!(secrets.scrub(&format!("at {url}")), "at postgres://app:***@db/auth");
        assert_eq!(UrlSecrets::of("redis://u:@h?password="), UrlSecrets::default());
        assert_eq!(UrlSecrets::of("sqlite://t.db").scrub("sqlite://t.db"), "sqlite://t.db");
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
