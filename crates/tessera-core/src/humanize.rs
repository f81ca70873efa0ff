//! durin's `expires_in_str`: `humanize.naturaldelta(expiry - created)` with humanize 4.17's rules
//! (months on, minimum unit seconds).

use chrono::TimeDelta;

/// Humanizes a token's total lifetime the way durin does ("a day", "10 minutes", "10 years").
///
/// ```
/// use chrono::TimeDelta;
/// use tessera_core::expires_in_str;
/// assert_eq!(expires_in_str(TimeDelta::days(1)), "a day");
/// assert_eq!(expires_in_str(TimeDelta::minutes(10)), "10 minutes");
/// ```
pub fn expires_in_str(delta: TimeDelta) -> String {
    let total = delta.num_seconds().unsigned_abs();
    let all_days = total / 86_400;
    let seconds = total % 86_400;
    let years = all_days / 365;
    let days = all_days % 365;
    // Python: int(days // 30.5)
    let months = (days as f64 / 30.5).floor() as u64;

    let plural = |n: u64, one: &str, many: &str| if n == 1 { format!("{n} {one}") } else { format!("{n} {many}") };

    if years == 0 && all_days < 1 {
        return match seconds {
            0 => "a moment".into(),
            1 => "a second".into(),
            2..=59 => plural(seconds, "second", "seconds"),
            60..=119 => "a minute".into(),
            120..=3_599 => plural(seconds / 60, "minute", "minutes"),
            3_600..=7_199 => "an hour".into(),
            _ => plural(seconds / 3_600, "hour", "hours"),
        };
    }
    if years == 0 {
        return match (days, months) {
            (1, _) => "a day".into(),
            (_, 0) => plural(days, "day", "days"),
            (_, 1) => "a month".into(),
            _ => plural(months, "month", "months"),
        };
    }
    if years == 1 {
        return match (months, days) {
            (0, 0) => "a year".into(),
            (0, _) => format!("1 year, {}", plural(days, "day", "days")),
            (1, _) => "1 year, 1 month".into(),
            _ => format!("1 year, {months} months"),
        };
    }
    format!("{} years", intcomma(years))
}

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
    fn matches_humanize_naturaldelta() {
        let s = TimeDelta::seconds;
        let d = TimeDelta::days;
        let cases: &[(TimeDelta, &str)] = &[
            (s(0), "a moment"),
            (TimeDelta::milliseconds(500), "a moment"),
            (s(1), "a second"),
            (s(2), "2 seconds"),
            (s(59), "59 seconds"),
            (s(60), "a minute"),
            (s(119), "a minute"),
            (s(120), "2 minutes"),
            (s(600), "10 minutes"),
            (s(3_599), "59 minutes"),
            (s(3_600), "an hour"),
            (s(7_199), "an hour"),
            (s(7_200), "2 hours"),
            (s(86_399), "23 hours"),
            (d(1), "a day"),
            (d(1) + s(3_600), "a day"),
            (d(2), "2 days"),
            (d(30), "30 days"),
            (d(31), "a month"),
            (d(60), "a month"),
            (d(61), "2 months"),
            (d(364), "11 months"),
            (d(365), "a year"),
            (d(365) + s(5), "a year"),
            (d(366), "1 year, 1 day"),
            (d(395), "1 year, 30 days"),
            (d(396), "1 year, 1 month"),
            (d(500), "1 year, 4 months"),
            (d(730), "2 years"),
            (d(3_650), "10 years"),
            (d(3_652), "10 years"),
            (d(365_000), "1,000 years"),
            (-d(1), "a day"),
            (-s(600), "10 minutes"),
        ];
        for (delta, want) in cases {
            assert_eq!(expires_in_str(*delta), *want, "{delta:?}");
        }
    }

    #[test]
    fn intcomma_groups_thousands() {
        assert_eq!(intcomma(7), "7");
        assert_eq!(intcomma(1_000), "1,000");
        assert_eq!(intcomma(1_234_567), "1,234,567");
    }
}
