//! Durations as admins write them (`90s`, `15m`, `12h`, `30d`, `1d 2h`, durin's `DD HH:MM:SS`, a
//! bare number of seconds) and token lifetimes ([`Ttl`]): a duration or `never`.

use chrono::TimeDelta;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The longest duration accepted anywhere: a hundred years. Longer lifetimes are `never`.
pub const MAX_DURATION_SECS: i64 = 100 * 365 * 86_400;

/// Why a duration or TTL did not parse. The message names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration '{input}': {reason}")]
pub struct DurationError {
    input: String,
    reason: String,
}

impl DurationError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        Self { input: input.to_string(), reason: reason.into() }
    }
}

/// Parses a positive duration.
///
/// Accepted forms: `90s`, `15m`, `12h`, `30d` and combinations such as `1d 2h` or `1h30m`; durin's
/// `DD HH:MM:SS` (`1 00:00:00`), `HH:MM:SS` and `MM:SS`; Python's `1 day, 2:00:00`; and a bare
/// number of seconds (`3600`). Zero, negative, fractional and over-long (more than 100 years)
/// durations are rejected.
///
/// ```
/// use tessera_core::parse_duration;
/// assert_eq!(parse_duration("1d 2h").unwrap().num_seconds(), 93_600);
/// assert_eq!(parse_duration("1 00:00:30").unwrap().num_seconds(), 86_430);
/// assert!(parse_duration("5x").unwrap_err().to_string().contains("unknown unit 'x'"));
/// ```
pub fn parse_duration(input: &str) -> Result<TimeDelta, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::new(input, "it is empty"));
    }
    if s.starts_with('-') {
        return Err(DurationError::new(input, "it must not be negative"));
    }
    let secs = if s.bytes().all(|b| b.is_ascii_digit()) {
        parse_number(input, s)?
    } else if s.contains(':') {
        parse_clock_form(input, s)?
    } else {
        parse_unit_form(input, s)?
    };
    if secs == 0 {
        return Err(DurationError::new(
            input,
            "it must be greater than zero (use 'never' for tokens that do not expire)",
        ));
    }
    if secs > MAX_DURATION_SECS {
        return Err(DurationError::new(input, "it is longer than 100 years (use 'never' instead)"));
    }
    Ok(TimeDelta::seconds(secs))
}

fn parse_number(input: &str, digits: &str) -> Result<i64, DurationError> {
    digits
        .parse::<i64>()
        .ok()
        .filter(|n| *n <= MAX_DURATION_SECS)
        .ok_or_else(|| DurationError::new(input, format!("'{digits}' is too large")))
}

/// `1d 2h`, `1h30m`, `90s`.
fn parse_unit_form(input: &str, s: &str) -> Result<i64, DurationError> {
    let mut total: i64 = 0;
    let mut rest = s;
    let mut seen = [false; 4];
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits_end == 0 {
            let bad: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
            return Err(DurationError::new(input, format!("expected a number before '{bad}'")));
        }
        let n = parse_number(input, &rest[..digits_end])?;
        rest = rest[digits_end..].trim_start();
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c.is_whitespace()).unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let (slot, factor) = match unit {
            "d" => (0, 86_400),
            "h" => (1, 3_600),
            "m" => (2, 60),
            "s" => (3, 1),
            "" => {
                return Err(DurationError::new(input, format!("'{n}' has no unit (use s, m, h or d)")));
            }
            other => {
                return Err(DurationError::new(input, format!("unknown unit '{other}' (use s, m, h or d)")));
            }
        };
        if seen[slot] {
            return Err(DurationError::new(input, format!("unit '{unit}' appears twice")));
        }
        seen[slot] = true;
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= MAX_DURATION_SECS)
            .ok_or_else(|| DurationError::new(input, "it is longer than 100 years (use 'never' instead)"))?;
    }
    Ok(total)
}

/// durin's `DD HH:MM:SS`, `HH:MM:SS`, `MM:SS`, and Python's `1 day, 2:00:00`.
fn parse_clock_form(input: &str, s: &str) -> Result<i64, DurationError> {
    let (days, clock) = match s.rsplit_once(' ') {
        Some((head, clock)) => {
            let head = head.trim().trim_end_matches(',');
            let head = head.strip_suffix("days").or_else(|| head.strip_suffix("day")).unwrap_or(head).trim();
            if head.is_empty() || !head.bytes().all(|b| b.is_ascii_digit()) {
                return Err(DurationError::new(input, format!("'{head}' is not a number of days")));
            }
            (parse_number(input, head)?, clock)
        }
        None => (0, s),
    };
    if clock.contains('.') || clock.contains(',') {
        return Err(DurationError::new(input, "fractions of a second are not supported"));
    }
    let parts: Vec<&str> = clock.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [h, m, s] => (*h, *m, *s),
        [m, s] => ("0", *m, *s),
        _ => return Err(DurationError::new(input, format!("'{clock}' is not HH:MM:SS"))),
    };
    let field = |name: &str, v: &str, max: Option<i64>| -> Result<i64, DurationError> {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DurationError::new(input, format!("{name} '{v}' is not a number")));
        }
        let n = parse_number(input, v)?;
        if let Some(max) = max
            && n >= max
        {
            return Err(DurationError::new(input, format!("{name} '{v}' must be below {max}")));
        }
        Ok(n)
    };
    let h = field("hours", h, None)?;
    let m = field("minutes", m, Some(60))?;
    let sec = field("seconds", sec, Some(60))?;
    days.checked_mul(86_400)
        .and_then(|d| d.checked_add(h.checked_mul(3_600)?))
        .and_then(|v| v.checked_add(m * 60 + sec))
        .filter(|v| *v <= MAX_DURATION_SECS)
        .ok_or_else(|| DurationError::new(input, "it is longer than 100 years (use 'never' instead)"))
}

/// Writes a duration in the compact unit form (`1d 2h`, `1m 30s`), which [`parse_duration`] reads back.
pub fn format_duration(d: TimeDelta) -> String {
    let mut secs = d.num_seconds();
    if secs <= 0 {
        return "0s".into();
    }
    let mut out = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push(format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out.join(" ")
}

/// A token lifetime: a positive duration, or never expiring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ttl {
    /// Tokens never expire.
    Never,
    /// Tokens expire this long after they are issued (or renewed).
    After(TimeDelta),
}

impl Ttl {
    /// The duration, or `None` for [`Ttl::Never`].
    pub fn duration(&self) -> Option<TimeDelta> {
        match self {
            Ttl::Never => None,
            Ttl::After(d) => Some(*d),
        }
    }

    /// Whole seconds, or `None` for never.
    pub fn as_secs(&self) -> Option<i64> {
        self.duration().map(|d| d.num_seconds())
    }

    /// From whole seconds as stored (`None` = never).
    pub fn from_secs(secs: Option<i64>) -> Self {
        match secs {
            Some(s) if s > 0 => Ttl::After(TimeDelta::seconds(s)),
            _ => Ttl::Never,
        }
    }
}

impl FromStr for Ttl {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("never") { Ok(Ttl::Never) } else { parse_duration(s).map(Ttl::After) }
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ttl::Never => f.write_str("never"),
            Ttl::After(d) => f.write_str(&format_duration(*d)),
        }
    }
}

impl Serialize for Ttl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StrOrInt::deserialize(d)? {
            StrOrInt::Str(s) => s.parse().map_err(serde::de::Error::custom),
            StrOrInt::Int(n) => parse_duration(&n.to_string()).map(Ttl::After).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrInt {
    Str(String),
    Int(i64),
}

/// Serde for a positive [`TimeDelta`] written as a duration string or a number of seconds.
pub mod serde_duration {
    use super::*;

    /// Serializes as the compact unit form.
    pub fn serialize<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    /// Deserializes from `"60s"`-style strings or integer seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
        let text = match StrOrInt::deserialize(d)? {
            StrOrInt::Str(s) => s,
            StrOrInt::Int(n) => n.to_string(),
        };
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_documented_form() {
        let cases = [
            ("90s", 90),
            ("15m", 900),
            ("12h", 43_200),
            ("30d", 2_592_000),
            ("1d 2h", 93_600),
            ("1d2h", 93_600),
            ("1h 30m 15s", 5_415),
            ("  2h  ", 7_200),
            ("3600", 3_600),
            ("1 00:00:00", 86_400),
            ("7 12:30:05", 7 * 86_400 + 12 * 3_600 + 30 * 60 + 5),
            ("00:15:00", 900),
            ("15:00", 900),
            ("1 day, 2:00:00", 93_600),
            ("2 days, 0:00:01", 172_801),
            ("36500d", MAX_DURATION_SECS),
        ];
        for (input, secs) in cases {
            assert_eq!(parse_duration(input).map(|d| d.num_seconds()), Ok(secs), "{input}");
        }
    }

    #[test]
    fn rejects_bad_input_naming_the_bad_part() {
        let cases = [
            ("", "it is empty"),
            ("5x", "unknown unit 'x'"),
            ("5 minutes", "unknown unit 'minutes'"),
            ("d", "expected a number before 'd'"),
            ("1d 5", "'5' has no unit"),
            ("1h 2h", "unit 'h' appears twice"),
            ("0s", "greater than zero"),
            ("0", "greater than zero"),
            ("00:00:00", "greater than zero"),
            ("-5m", "must not be negative"),
            ("36501d", "longer than 100 years"),
            ("99999999999999999999", "too large"),
            ("1 00:61:00", "minutes '61' must be below 60"),
            ("00:00:75", "seconds '75' must be below 60"),
            ("1:2:3:4", "is not HH:MM:SS"),
            ("x 00:00:01", "'x' is not a number of days"),
            ("00:00:01.5", "fractions of a second"),
            ("aa:00", "minutes 'aa' is not a number"),
        ];
        for (input, want) in cases {
            let err = parse_duration(input).expect_err(input).to_string();
            assert!(err.contains(want), "{input:?}: got {err:?}, want {want:?}");
            assert!(err.starts_with(&format!("invalid duration '{input}'")), "{err}");
        }
    }

    #[test]
    fn ttl_parses_never_and_round_trips_through_display() {
        assert_eq!("never".parse::<Ttl>(), Ok(Ttl::Never));
        assert_eq!("NEVER".parse::<Ttl>(), Ok(Ttl::Never));
        for input in ["1d", "1d 2h", "1m 30s", "90s", "never", "36500d"] {
            let ttl: Ttl = input.parse().expect(input);
            let again: Ttl = ttl.to_string().parse().expect("display parses");
            assert_eq!(ttl, again);
        }
        assert_eq!("90s".parse::<Ttl>().map(|t| t.to_string()), Ok("1m 30s".into()));
        assert_eq!(Ttl::from_secs(None), Ttl::Never);
        assert_eq!(Ttl::from_secs(Some(60)).as_secs(), Some(60));
    }

    #[test]
    fn ttl_deserializes_from_strings_and_seconds() {
        #[derive(Deserialize)]
        struct C {
            ttl: Ttl,
        }
        let c: C = serde_json::from_str(r#"{"ttl": "12h"}"#).expect("string");
        assert_eq!(c.ttl.as_secs(), Some(43_200));
        let c: C = serde_json::from_str(r#"{"ttl": 60}"#).expect("int");
        assert_eq!(c.ttl.as_secs(), Some(60));
        let err = serde_json::from_str::<C>(r#"{"ttl": "2 weeks"}"#).err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("invalid duration '2 weeks'"));
        assert!(serde_json::from_str::<C>(r#"{"ttl": 0}"#).is_err());
    }
}
