//! A client's deadline and its asynchronous preference.
//!
//! The deadline is the client's `Timeout` parameter (the contract's row 504): the header
//! `Timeout: <seconds>` or the query parameter `timeout=<duration>` (as Kubernetes' API server
//! takes it). `Prefer: respond-async` (RFC 7240 §4.1) asks for a job at once.
//!
//! Both parsers are linear in their input and refuse anything but the forms below; what they
//! refuse is the client's mistake (400), never something to guess at.

use std::time::Duration;

/// Longest deadline representable here (a year): anything longer is a mistake, and keeping
/// under it keeps `Instant + deadline` far from overflow.
pub const MAX_DEADLINE: Duration = Duration::from_secs(365 * 86_400);

/// Longest value looked at (`31536000.999s` is 13 bytes).
const MAX_LEN: usize = 24;

/// The query parameter's value: a positive decimal number of seconds with at most three
/// fraction digits (`30`, `1.5`), optionally followed by a unit: `ms`, `s`, `m` or `h`
/// (`1500ms`, `30s`, `2m`). `None` for anything else, for zero and for more than
/// [`MAX_DEADLINE`].
pub fn parse_timeout_param(value: &[u8]) -> Option<Duration> {
    if value.len() > MAX_LEN {
        return None;
    }
    let digits = value
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits);
    let millis_per_unit: u128 = match unit {
        b"ms" => 1,
        b"" | b"s" => 1_000,
        b"m" => 60_000,
        b"h" => 3_600_000,
        _ => return None,
    };
    // A fraction of a millisecond is not a deadline anyone can keep.
    if unit == b"ms" && number.contains(&b'.') {
        return None;
    }
    let thousandths = decimal_thousandths(number)?;
    let millis = thousandths * millis_per_unit / 1_000;
    positive_millis(millis)
}

/// The `Timeout` field's value: a positive decimal number of seconds with at most three
/// fraction digits, surrounding whitespace allowed. `None` for anything else.
pub fn parse_timeout_field(value: &[u8]) -> Option<Duration> {
    let value = value.trim_ascii();
    if value.len() > MAX_LEN {
        return None;
    }
    positive_millis(decimal_thousandths(value)?)
}

/// `DIGITS [ "." 1*3DIGIT ]` as thousandths.
fn decimal_thousandths(number: &[u8]) -> Option<u128> {
    let (whole, fraction) = match number.iter().position(|b| *b == b'.') {
        Some(i) => (&number[..i], Some(&number[i + 1..])),
        None => (number, None),
    };
    if whole.is_empty() || whole.len() > 12 || !whole.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u128 = 0;
    for d in whole {
        n = n * 10 + u128::from(d - b'0');
    }
    let mut thousandths = n * 1_000;
    if let Some(f) = fraction {
        if f.is_empty() || f.len() > 3 || !f.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut scale = 100;
        for d in f {
            thousandths += u128::from(d - b'0') * scale;
            scale /= 10;
        }
    }
    Some(thousandths)
}

fn positive_millis(millis: u128) -> Option<Duration> {
    let millis = u64::try_from(millis).ok()?;
    let d = Duration::from_millis(millis);
    (millis > 0 && d <= MAX_DEADLINE).then_some(d)
}

/// Whether the `Prefer` field values ask for `respond-async` (RFC 7240 §2: a comma-separated
/// list of preferences, each a token with optional `=value` and `;parameters`; names are
/// case-insensitive).
pub fn prefers_respond_async<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    values.into_iter().any(|v| {
        v.split(|b| *b == b',').any(|pref| {
            let name = pref
                .split(|b| *b == b';' || *b == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            name.eq_ignore_ascii_case(b"respond-async")
        })
    })
}

/// A remaining time in whole milliseconds, rounded down (what an upstream is told it has).
pub fn whole_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn the_query_parameter_takes_seconds_and_the_usual_units() {
        assert_eq!(parse_timeout_param(b"30"), ms(30_000));
        assert_eq!(parse_timeout_param(b"30s"), ms(30_000));
        assert_eq!(parse_timeout_param(b"1.5"), ms(1_500));
        assert_eq!(parse_timeout_param(b"0.25s"), ms(250));
        assert_eq!(parse_timeout_param(b"1500ms"), ms(1_500));
        assert_eq!(parse_timeout_param(b"2m"), ms(120_000));
        assert_eq!(parse_timeout_param(b"1h"), ms(3_600_000));
        assert_eq!(parse_timeout_param(b"1.5m"), ms(90_000));
    }

    #[test]
    fn the_query_parameter_refuses_what_is_not_a_positive_duration() {
        for bad in [
            &b""[..],
            b"0",
            b"0s",
            b"0.0001",
            b"-1",
            b"+1",
            b"1.",
            b".5",
            b"1.2345",
            b"1.5ms",
            b"1 s",
            b"1d",
            b"1sec",
            b"s",
            b"1e3",
            b"1..2",
            b"99999999999999",
            b"8761h",
            b"0x10",
            b"1\x00",
        ] {
            assert_eq!(parse_timeout_param(bad), None, "{:?}", bad.escape_ascii());
        }
    }

    #[test]
    fn the_timeout_field_is_seconds_only() {
        assert_eq!(parse_timeout_field(b"5"), ms(5_000));
        assert_eq!(parse_timeout_field(b" 0.5 "), ms(500));
        assert_eq!(parse_timeout_field(b"31536000"), ms(31_536_000_000));
        for bad in [&b"5s"[..], b"", b"0", b"31536001", b"5, 6", b"abc"] {
            assert_eq!(parse_timeout_field(bad), None, "{:?}", bad.escape_ascii());
        }
    }

    #[test]
    fn respond_async_is_found_among_other_preferences() {
        assert!(prefers_respond_async([&b"respond-async"[..]]));
        assert!(prefers_respond_async([
            &b"return=minimal, Respond-Async"[..]
        ]));
        assert!(prefers_respond_async([
            &b"wait=10"[..],
            &b"respond-async; x=1"[..]
        ]));
        assert!(!prefers_respond_async([&b"return=representation"[..]]));
        assert!(!prefers_respond_async([&b"respond-asynchronously"[..]]));
        assert!(!prefers_respond_async(Vec::<&[u8]>::new()));
    }

    #[test]
    fn remaining_time_is_rounded_down_to_milliseconds() {
        assert_eq!(whole_millis(Duration::from_micros(1_999)), 1);
        assert_eq!(whole_millis(Duration::ZERO), 0);
    }
}
