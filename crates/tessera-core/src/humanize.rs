//! durin's `expires_in_str`: `humanize.naturaldelta(expiry - created)` with humanize 4.17.0's
//! rules (`months=True`, `minimum_unit="seconds"`, the defaults durin uses).
//!
//! A port of `naturaldelta` in humanize 4.17.0's `humanize/time.py`, branch for branch. The
//! reference is that package itself: `tests/it/humanize.rs` compares every row of a fixture the
//! package generated (`tests/humanize/generate.py`), and, with `TESSERA_TEST_PYTHON` set (CI),
//! regenerates the fixture with the installed package and requires it unchanged.

use chrono::TimeDelta;

const MINUTE: u64 = 60;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

/// Humanizes a token's total lifetime the way durin does ("a day", "10 minutes", "a month",
/// "10 years").
///
/// The sign is ignored (`abs(delta)`), and so is everything below a second: humanize reads the
/// timedelta's `days` and `seconds` fields only.
///
/// ```
/// use chrono::TimeDelta;
/// use tessera_core::expires_in_str;
/// assert_eq!(expires_in_str(TimeDelta::days(1)), "a day");
/// assert_eq!(expires_in_str(TimeDelta::minutes(10)), "10 minutes");
/// assert_eq!(expires_in_str(TimeDelta::days(30)), "a month");
/// ```
pub fn expires_in_str(delta: TimeDelta) -> String {
    // `delta = abs(delta)`; then Python's normalised `delta.days` and `delta.seconds`
    // (0..86_400), microseconds dropped.
    let total = delta.abs().num_seconds().unsigned_abs();
    let all_days = total / DAY;
    let seconds = total % DAY;
    // `years = delta.days // 365`, `days = delta.days % 365`.
    let years = all_days / 365;
    let days = all_days % 365;
    // `num_months = round(days / 30.5)` = round(2·days / 61): never a tie (4·days ≠ 61·odd).
    let num_months = round_half_even(2 * days, 61);

    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });

    if years == 0 && days < 1 {
        return match seconds {
            // Below a second: "a moment" (minimum unit seconds).
            0 => "a moment".into(),
            1 => "a second".into(),
            2..MINUTE => plural(seconds, "second", "seconds"),
            MINUTE..HOUR => match round_half_even(seconds, MINUTE) {
                1 => "a minute".into(),
                60 => "an hour".into(),
                minutes => plural(minutes, "minute", "minutes"),
            },
            _ => match round_half_even(seconds, HOUR) {
                1 => "an hour".into(),
                24 => "a day".into(),
                hours => plural(hours, "hour", "hours"),
            },
        };
    }
    if years == 0 {
        return match (days, num_months) {
            (1, _) => "a day".into(),
            (_, 0) => plural(days, "day", "days"),
            (_, 1) => "a month".into(),
            (_, 12) => "a year".into(),
            (_, months) => plural(months, "month", "months"),
        };
    }
    if years == 1 {
        return match (num_months, days) {
            (0, 0) => "a year".into(),
            (0, _) => format!("1 year, {}", plural(days, "day", "days")),
            (1, _) => "1 year, 1 month".into(),
            (12, _) => "2 years".into(),
            (months, _) => format!("1 year, {months} months"),
        };
    }
    // `years = round(delta.days / 365)`: never a tie (2·days ≠ 365·odd). At least 2 here.
    format!("{} years", intcomma(round_half_even(all_days, 365)))
}

/// Python's `round(n / d)` for non-negative integers: to the nearest, ties to even.
fn round_half_even(n: u64, d: u64) -> u64 {
    let (q, r) = (n / d, n % d);
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q % 2),
    }
}

/// humanize's `intcomma` of an integer: thousands separated by commas.
fn intcomma(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_half_even_is_pythons_round() {
        // round(1.5) == 2, round(2.5) == 2, round(3.5) == 4, round(0.5) == 0
        assert_eq!(round_half_even(90, 60), 2);
        assert_eq!(round_half_even(150, 60), 2);
        assert_eq!(round_half_even(210, 60), 4);
        assert_eq!(round_half_even(30, 60), 0);
        assert_eq!(round_half_even(89, 60), 1);
        assert_eq!(round_half_even(91, 60), 2);
    }

    #[test]
    fn intcomma_groups_thousands() {
        assert_eq!(intcomma(7), "7");
        assert_eq!(intcomma(1_000), "1,000");
        assert_eq!(intcomma(1_234_567), "1,234,567");
    }
}
