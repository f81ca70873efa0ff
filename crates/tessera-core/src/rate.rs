//! Throttle rates in DRF's notation: `N/s`, `N/m`, `N/h`, `N/d`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The period of a [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day.
    Day,
}

impl Period {
    /// The period's length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Period::Second => 1,
            Period::Minute => 60,
            Period::Hour => 3_600,
            Period::Day => 86_400,
        }
    }

    fn letter(self) -> char {
        match self {
            Period::Second => 's',
            Period::Minute => 'm',
            Period::Hour => 'h',
            Period::Day => 'd',
        }
    }
}

/// At most `requests` requests per `period`. `requests` is at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    requests: u32,
    period: Period,
}

/// Why a rate did not parse. The message names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate '{input}': {reason}")]
pub struct RateError {
    input: String,
    reason: String,
}

impl Rate {
    /// A rate of `requests` per `period`; `None` when `requests` is 0.
    pub fn new(requests: u32, period: Period) -> Option<Self> {
        (requests > 0).then_some(Self { requests, period })
    }

    /// How many requests a period allows.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// The period.
    pub fn period(&self) -> Period {
        self.period
    }
}

impl FromStr for Rate {
    type Err = RateError;

    /// ```
    /// use tessera_core::Rate;
    /// assert_eq!("10/m".parse::<Rate>().unwrap().requests(), 10);
    /// assert_eq!("2/minute".parse::<Rate>().unwrap_err().to_string(), "invalid rate '2/minute': invalid period 'minute' (use s, m, h or d)");
    /// ```
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| RateError { input: input.to_string(), reason };
        let s = input.trim();
        let Some((num, period)) = s.split_once('/') else {
            return Err(err("expected N/PERIOD, for example 100/h".into()));
        };
        let num = num.trim();
        if num.is_empty() {
            return Err(err("the number of requests is missing".into()));
        }
        if !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(format!("invalid number of requests '{num}' (a whole number of at least 1)")));
        }
        let requests: u32 = num.parse().map_err(|_| err(format!("number of requests '{num}' is too large")))?;
        if requests == 0 {
            return Err(err("the number of requests must be at least 1".into()));
        }
        let period = match period.trim() {
            "s" => Period::Second,
            "m" => Period::Minute,
            "h" => Period::Hour,
            "d" => Period::Day,
            other => return Err(err(format!("invalid period '{other}' (use s, m, h or d)"))),
        };
        Ok(Rate { requests, period })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.requests, self.period.letter())
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_period() {
        for (input, requests, secs) in [("1/s", 1, 1), ("10/m", 10, 60), ("100/h", 100, 3_600), (" 5/d ", 5, 86_400)] {
            let rate: Rate = input.parse().expect(input);
            assert_eq!((rate.requests(), rate.period().seconds()), (requests, secs), "{input}");
            assert_eq!(rate.to_string().parse::<Rate>(), Ok(rate));
        }
    }

    #[test]
    fn rejects_bad_rates_naming_the_bad_part() {
        for (input, want) in [
            ("2/minute", "invalid period 'minute'"),
            ("10/min", "invalid period 'min'"),
            ("10/", "invalid period ''"),
            ("0/m", "at least 1"),
            ("-5/m", "invalid number of requests '-5'"),
            ("1.5/m", "invalid number of requests '1.5'"),
            ("/m", "number of requests is missing"),
            ("10", "expected N/PERIOD"),
            ("", "expected N/PERIOD"),
            ("99999999999/s", "too large"),
        ] {
            let got = input.parse::<Rate>().expect_err(input).to_string();
            assert!(got.contains(want), "{input:?}: got {got:?}");
            assert!(got.starts_with(&format!("invalid rate '{input}'")), "{got}");
        }
        assert_eq!(Rate::new(0, Period::Second), None);
    }
}
