//! Settings: every durin setting under its snake_case key with durin's default, plus Tessera's own.

use crate::duration::{Ttl, serde_duration};
use crate::model::ClientName;
use crate::net::IpNet;
use crate::rate::Rate;
use crate::token::TokenCodec;
use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, FixedOffset, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The user fields login may return under `"user"` (durin's `USER_SERIALIZER`).
pub const USER_FIELDS: &[&str] = &["id", "username", "is_staff", "is_active"];

/// The authentication settings. Deserializing rejects unknown keys; [`Settings::validate`] checks
/// what spans several keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// TTL of a client created without one (durin: `DEFAULT_TOKEN_TTL`, 1 day).
    pub default_token_ttl: Ttl,
    /// Total token length (durin: `TOKEN_CHARACTER_LENGTH`, 64).
    pub token_character_length: usize,
    /// The token prefix that lets secret scanners spot a leaked token (`tsr_`; may be empty).
    pub token_prefix: String,
    /// Which user fields login returns under `"user"` (durin: `USER_SERIALIZER`); empty: none.
    pub login_response_user_fields: Vec<String>,
    /// The `Authorization` keyword and the `WWW-Authenticate` value (durin: `AUTH_HEADER_PREFIX`).
    pub auth_header_prefix: String,
    /// The format of `expiry` in login and refresh (durin: `EXPIRY_DATETIME_FORMAT`).
    pub expiry_datetime_format: DateTimeFormat,
    /// The time zone datetimes are written in: `UTC` or a fixed offset such as `+02:00`.
    pub time_zone: TimeZone,
    /// How long the cached authenticator may keep a lookup (durin: `TOKEN_CACHE_TIMEOUT`, 60 s).
    #[serde(with = "serde_duration")]
    pub token_cache_timeout: TimeDelta,
    /// Renew the expiry when login hands back an existing token (durin: `REFRESH_TOKEN_ON_LOGIN`).
    pub refresh_token_on_login: bool,
    /// Revoke every token of a user whose password is changed (durin revokes nothing, and its
    /// "same token on re-login" then hands the old token back to whoever had it). Default on.
    pub revoke_tokens_on_password_change: bool,
    /// The client behind `apiaccess/` (durin: `API_ACCESS_CLIENT_NAME`); none disables the route.
    #[serde(deserialize_with = "optional")]
    pub api_access_client_name: Option<ClientName>,
    /// Hide the API-access token from `sessions/` (durin: `API_ACCESS_EXCLUDE_FROM_SESSIONS`).
    pub api_access_exclude_from_sessions: bool,
    /// Include `token` in GET `apiaccess/` (durin: `API_ACCESS_RESPONSE_INCLUDE_TOKEN`).
    pub api_access_response_include_token: bool,
    /// The per-(user, client) rate for clients without their own (DRF's `user_per_client`).
    #[serde(deserialize_with = "optional")]
    pub default_throttle_rate: Option<Rate>,
    /// Take the login's client name from this request header instead of the body.
    #[serde(deserialize_with = "optional")]
    pub login_client_header: Option<String>,
    /// Peers whose `X-Forwarded-For` is believed (addresses or ranges); others' is ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// Login attempts (successful or not) allowed per source (an IPv4 address, an IPv6 `/64`),
    /// whatever the username; `"off"` disables.
    #[serde(deserialize_with = "optional")]
    pub login_throttle_per_ip: Option<Rate>,
    /// Failed password checks allowed per username from one source (IPv4 address, IPv6 `/64`): an
    /// attacker at one address is stopped quickly, and only that address is; `"off"` disables.
    #[serde(deserialize_with = "optional")]
    pub login_throttle_per_username_and_ip: Option<Rate>,
    /// Failed password checks allowed per username from all sources together, except sources
    /// that logged into that account within `login_known_source_ttl` (they are not locked out by
    /// others' failures); bounds distributed guessing; `"off"` disables.
    #[serde(deserialize_with = "optional")]
    pub login_throttle_per_username: Option<Rate>,
    /// How long a source that logged into an account stays exempt from the account's
    /// `login_throttle_per_username` budget; `0` exempts none.
    #[serde(with = "serde_duration")]
    pub login_known_source_ttl: TimeDelta,
    /// Whether durin tokens brought in by `tessera import durin` (64 hexadecimal characters)
    /// authenticate: `auto` (while the store holds any), `true` or `false`. Native tokens are
    /// parsed as before; a 64-hex string is looked up only when this is not off.
    pub accept_legacy_tokens: LegacyTokens,
}

/// [`Settings::accept_legacy_tokens`]: `true`, `false`, or `"auto"` (`"on"` and `"off"` also read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LegacyTokens {
    /// Accepted while the store holds legacy tokens (after an import); looked for at most once a
    /// minute while it holds none.
    #[default]
    Auto,
    /// Accepted.
    On,
    /// Refused like any malformed token, without a lookup.
    Off,
}

impl Serialize for LegacyTokens {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LegacyTokens::Auto => s.serialize_str("auto"),
            LegacyTokens::On => s.serialize_bool(true),
            LegacyTokens::Off => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for LegacyTokens {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(LegacyTokens::On),
            Raw::Bool(false) => Ok(LegacyTokens::Off),
            Raw::Text(t) => match t.to_ascii_lowercase().as_str() {
                "auto" => Ok(LegacyTokens::Auto),
                "true" | "on" => Ok(LegacyTokens::On),
                "false" | "off" => Ok(LegacyTokens::Off),
                _ => Err(serde::de::Error::custom(format!("'{t}' is not true, false or auto"))),
            },
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_token_ttl: Ttl::After(TimeDelta::days(1)),
            token_character_length: 64,
            token_prefix: "tsr_".into(),
            login_response_user_fields: Vec::new(),
            auth_header_prefix: "Token".into(),
            expiry_datetime_format: DateTimeFormat::Iso8601,
            time_zone: TimeZone::default(),
            token_cache_timeout: TimeDelta::seconds(60),
            refresh_token_on_login: false,
            revoke_tokens_on_password_change: true,
            api_access_client_name: None,
            api_access_exclude_from_sessions: false,
            api_access_response_include_token: false,
            default_throttle_rate: None,
            login_client_header: None,
            trusted_proxies: Vec::new(),
            login_throttle_per_ip: Rate::new(30, crate::rate::Period::Minute),
            login_throttle_per_username_and_ip: Rate::new(10, crate::rate::Period::Hour),
            login_throttle_per_username: Rate::new(100, crate::rate::Period::Day),
            login_known_source_ttl: TimeDelta::days(30),
            accept_legacy_tokens: LegacyTokens::Auto,
        }
    }
}

/// An optional setting: `""`, `"none"` and `"off"` mean none (TOML has no null).
fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let s = String::deserialize(d)?;
    if s.is_empty() || s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

/// A setting that is wrong, with the key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {key}: {message}")]
pub struct SettingsError {
    /// The key.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Settings {
    /// Checks the rules that types alone cannot express.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let err = |key, message: String| Err(SettingsError { key, message });
        if let Err(e) =
            TokenCodec::new(crate::token::ServerKey::generate(), &self.token_prefix, self.token_character_length)
        {
            let key = if matches!(e, crate::token::FormatError::BadPrefix(_)) {
                "token_prefix"
            } else {
                "token_character_length"
            };
            return err(key, e.to_string());
        }
        if self.auth_header_prefix.is_empty() || !self.auth_header_prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return err(
                "auth_header_prefix",
                format!("'{}' must be a single word of visible ASCII characters", self.auth_header_prefix),
            );
        }
        if let Some(bad) = self.login_response_user_fields.iter().find(|f| !USER_FIELDS.contains(&f.as_str())) {
            return err(
                "login_response_user_fields",
                format!("unknown user field '{bad}' (known: {})", USER_FIELDS.join(", ")),
            );
        }
        if let Some(header) = &self.login_client_header
            && (header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return err("login_client_header", format!("'{header}' is not a valid header name"));
        }
        if self.login_known_source_ttl < TimeDelta::zero() {
            return err("login_known_source_ttl", "must not be negative".into());
        }
        Ok(())
    }

    /// Formats a datetime for the wire (sessions, API access): ISO-8601 in the configured zone.
    pub fn format_datetime(&self, at: DateTime<Utc>) -> String {
        format_iso8601(at, self.time_zone.0)
    }

    /// Formats a login/refresh `expiry` with `expiry_datetime_format`.
    pub fn format_expiry(&self, at: DateTime<Utc>) -> String {
        match &self.expiry_datetime_format {
            DateTimeFormat::Iso8601 => self.format_datetime(at),
            DateTimeFormat::Strftime(pattern) => at.with_timezone(&self.time_zone.0).format(pattern).to_string(),
        }
    }
}

/// ISO-8601 as DRF writes it: microseconds only when non-zero, `+00:00` written as `Z`.
///
/// ```
/// use chrono::{DateTime, FixedOffset};
/// use tessera_core::settings::format_iso8601;
/// let at = DateTime::from_timestamp(1_795_417_445, 556_704_000).unwrap();
/// assert_eq!(format_iso8601(at, FixedOffset::east_opt(0).unwrap()), "2026-11-23T07:04:05.556704Z");
/// ```
pub fn format_iso8601(at: DateTime<Utc>, offset: FixedOffset) -> String {
    let local = at.with_timezone(&offset);
    let base = if local.nanosecond() / 1_000 == 0 {
        local.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        format!("{}.{:06}", local.format("%Y-%m-%dT%H:%M:%S"), local.nanosecond() / 1_000 % 1_000_000)
    };
    if offset.local_minus_utc() == 0 { base + "Z" } else { base + &local.format("%:z").to_string() }
}

/// `expiry_datetime_format`: ISO-8601 or a strftime pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateTimeFormat {
    /// `iso-8601` (DRF's default).
    Iso8601,
    /// A strftime pattern such as `%H:%M %d/%m/%y`.
    Strftime(String),
}

impl Serialize for DateTimeFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DateTimeFormat::Iso8601 => s.serialize_str("iso-8601"),
            DateTimeFormat::Strftime(p) => s.serialize_str(p),
        }
    }
}

impl<'de> Deserialize<'de> for DateTimeFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.eq_ignore_ascii_case("iso-8601") {
            return Ok(DateTimeFormat::Iso8601);
        }
        if s.is_empty() || StrftimeItems::new(&s).any(|item| matches!(item, Item::Error)) {
            return Err(serde::de::Error::custom(format!("'{s}' is neither 'iso-8601' nor a valid strftime pattern")));
        }
        Ok(DateTimeFormat::Strftime(s))
    }
}

/// A time zone: UTC or a fixed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub FixedOffset);

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone(FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("0 is a valid offset")))
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.local_minus_utc() == 0 { f.write_str("UTC") } else { write!(f, "{}", self.0) }
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Ok(TimeZone::default());
        }
        s.parse::<FixedOffset>().map(TimeZone).map_err(|_| {
            serde::de::Error::custom(format!(
                "'{s}' is not 'UTC' or a fixed offset such as +02:00 (named zones are not supported)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, micros: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, micros * 1_000).unwrap_or_default()
    }

    #[test]
    fn defaults_are_durins() {
        let s = Settings::default();
        assert_eq!(s.default_token_ttl.as_secs(), Some(86_400));
        assert_eq!(s.token_character_length, 64);
        assert_eq!(s.auth_header_prefix, "Token");
        assert_eq!(s.token_cache_timeout.num_seconds(), 60);
        assert!(
            !s.refresh_token_on_login && !s.api_access_exclude_from_sessions && !s.api_access_response_include_token
        );
        assert_eq!(s.api_access_client_name, None);
        assert_eq!(s.default_throttle_rate, None);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn parses_from_toml_and_rejects_unknown_keys() {
        let s: Settings = toml::from_str(
            r#"
            default_token_ttl = "12h"
            token_cache_timeout = 30
            expiry_datetime_format = "%H:%M %d/%m/%y"
            time_zone = "+02:00"
            api_access_client_name = "api-access"
            default_throttle_rate = "100/h"
            login_response_user_fields = ["username"]
            "#,
        )
        .expect("settings");
        assert_eq!(s.default_token_ttl.as_secs(), Some(43_200));
        assert_eq!(s.token_cache_timeout.num_seconds(), 30);
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.format_expiry(at(1_795_417_445, 0)), "09:04 23/11/26");
        assert_eq!(s.format_datetime(at(1_795_417_445, 0)), "2026-11-23T09:04:05+02:00");

        let err = toml::from_str::<Settings>("tokn_ttl = 5").expect_err("unknown").to_string();
        assert!(err.contains("unknown field `tokn_ttl`"), "{err}");
        let err = toml::from_str::<Settings>(r#"default_throttle_rate = "2/minute""#).expect_err("rate").to_string();
        assert!(err.contains("invalid period 'minute'"), "{err}");
        let off: Settings = toml::from_str(r#"login_throttle_per_ip = "off""#).expect("off");
        assert_eq!(off.login_throttle_per_ip, None);
        // The login throttle's keys, the older ones included, keep their meaning.
        let login: Settings = toml::from_str(
            r#"
            login_throttle_per_username = "20/h"
            login_throttle_per_username_and_ip = "5/m"
            login_known_source_ttl = "7d"
            "#,
        )
        .expect("login throttle");
        assert_eq!(login.login_throttle_per_username, "20/h".parse().ok());
        assert_eq!(login.login_throttle_per_username_and_ip, "5/m".parse().ok());
        assert_eq!(login.login_known_source_ttl, TimeDelta::days(7));
        let err = toml::from_str::<Settings>(r#"api_access_client_name = " x""#).expect_err("name").to_string();
        assert!(err.contains("must not start or end with whitespace"), "{err}");
        let err = toml::from_str::<Settings>(r#"time_zone = "Europe/Paris""#).expect_err("tz").to_string();
        assert!(err.contains("'Europe/Paris' is not 'UTC'"), "{err}");
        let err = toml::from_str::<Settings>(r#"expiry_datetime_format = "%Q""#).expect_err("fmt").to_string();
        assert!(err.contains("valid strftime pattern"), "{err}");
    }

    #[test]
    fn validate_names_the_key() {
        let s = Settings { token_character_length: 40, ..Settings::default() };
        let err = s.validate().expect_err("short");
        assert_eq!(err.key, "token_character_length");
        assert!(err.message.contains("the minimum is 54"), "{}", err.message);
        let s = Settings { auth_header_prefix: "To ken".into(), ..Settings::default() };
        assert_eq!(s.validate().map_err(|e| e.key), Err("auth_header_prefix"));
        let s = Settings { login_response_user_fields: vec!["password".into()], ..Settings::default() };
        assert_eq!(s.validate().map_err(|e| e.key), Err("login_response_user_fields"));
        let s = Settings { token_prefix: "a b".into(), ..Settings::default() };
        assert_eq!(s.validate().map_err(|e| e.key), Err("token_prefix"));
    }

    #[test]
    fn iso8601_like_drf() {
        let utc = TimeZone::default().0;
        assert_eq!(format_iso8601(at(1_795_417_445, 556_704), utc), "2026-11-23T07:04:05.556704Z");
        assert_eq!(format_iso8601(at(1_795_417_445, 0), utc), "2026-11-23T07:04:05Z");
        assert_eq!(format_iso8601(at(1_795_417_445, 5), utc), "2026-11-23T07:04:05.000005Z");
        let minus = FixedOffset::west_opt(5 * 3600 + 1800).unwrap_or(utc);
        assert_eq!(format_iso8601(at(1_795_417_445, 0), minus), "2026-11-23T01:34:05-05:30");
    }
}
