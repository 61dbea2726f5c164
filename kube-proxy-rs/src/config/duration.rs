//! Durations written the Go way (`time.ParseDuration`): `1s`, `500ms`, `1m30s`, `1.5h`, `0`.
//!
//! In: flag values and `KubeProxyConfiguration` duration fields. Out: [`Duration`], or a
//! [`DurationError`] saying what was expected. [`format()`] writes Go's `Duration.String()`.

use std::time::Duration;

/// A string that is not a Go duration (or is negative, which no setting here accepts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected e.g. \"1s\", \"500ms\", \"1m30s\")")]
pub struct DurationError {
    /// The text given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // µs, MICRO SIGN
    ("\u{3bc}s", 1_000), // μs, GREEK SMALL LETTER MU
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration string. Signs are accepted as Go does, but negative values are an
/// error; `0` needs no unit.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    let mut s = input;
    let negative = if let Some(rest) = s.strip_prefix('-') {
        s = rest;
        true
    } else {
        s = s.strip_prefix('+').unwrap_or(s);
        false
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err("empty"));
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int, rest) = s.split_at(int_len);
        let (frac, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", rest),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(err("expected a number"));
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (unit, rest) = rest.split_at(unit_len);
        let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(err(if unit.is_empty() {
                "missing unit (ns, us, ms, s, m, h)"
            } else {
                "unknown unit (expected ns, us, ms, s, m, h)"
            }));
        };
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| err("overflow"))?
        };
        let mut nanos = int.checked_mul(scale).ok_or_else(|| err("overflow"))?;
        // Fractions are exact down to the nanosecond, as in Go.
        let mut place = scale;
        for d in frac.bytes().map(|b| u128::from(b - b'0')) {
            place /= 10;
            if place == 0 {
                break;
            }
            nanos += d * place;
        }
        total = total.checked_add(nanos).ok_or_else(|| err("overflow"))?;
        s = rest;
    }
    // Go durations are int64 nanoseconds.
    if total > i64::MAX as u128 {
        return Err(err("overflow"));
    }
    if negative && total != 0 {
        return Err(err("negative"));
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| err("overflow"))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Writes a duration as Go's `Duration.String()` does: `1h2m3.5s`, `500ms`, `0s`.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (div, unit) = match nanos {
            n if n < 1_000 => (1, "ns"),
            n if n < 1_000_000 => (1_000, "\u{b5}s"),
            _ => (1_000_000, "ms"),
        };
        return format!("{}{unit}", frac(nanos, div));
    }
    let h = nanos / 3_600_000_000_000;
    let m = nanos / 60_000_000_000 % 60;
    let s = nanos % 60_000_000_000;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", frac(s, 1_000_000_000)));
    out
}

fn frac(n: u128, div: u128) -> String {
    let int = n / div;
    let rem = n % div;
    if rem == 0 {
        return int.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{rem:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        let ms = Duration::from_millis;
        for (s, d) in [
            ("0", ms(0)),
            ("0s", ms(0)),
            ("1s", ms(1000)),
            ("500ms", ms(500)),
            ("1m30s", ms(90_000)),
            ("1.5h", ms(5_400_000)),
            ("2h45m", ms(9_900_000)),
            (".5s", ms(500)),
            ("1.s", ms(1000)),
            ("+3s", ms(3000)),
            ("-0s", ms(0)),
            ("10us", Duration::from_micros(10)),
            ("10\u{b5}s", Duration::from_micros(10)),
            ("1ns", Duration::from_nanos(1)),
            ("1.0000000019s", Duration::from_nanos(1_000_000_001)),
        ] {
            assert_eq!(parse(s), Ok(d), "{s}");
        }
    }

    #[test]
    fn rejects_what_go_rejects_and_negatives() {
        for (s, reason) in [
            ("", "empty"),
            ("1", "missing unit (ns, us, ms, s, m, h)"),
            ("10", "missing unit (ns, us, ms, s, m, h)"),
            ("1d", "unknown unit (expected ns, us, ms, s, m, h)"),
            ("s", "expected a number"),
            (".s", "expected a number"),
            ("1s ", "unknown unit (expected ns, us, ms, s, m, h)"),
            ("-1s", "negative"),
            ("3000000h", "overflow"),
        ] {
            assert_eq!(parse(s).map_err(|e| e.reason), Err(reason), "{s:?}");
        }
        assert_eq!(
            parse("1x").unwrap_err().to_string(),
            "invalid duration \"1x\": unknown unit (expected ns, us, ms, s, m, h) (expected e.g. \"1s\", \"500ms\", \"1m30s\")"
        );
    }

    #[test]
    fn formats_like_go() {
        for (d, s) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(86400), "24h0m0s"),
            (Duration::from_micros(10), "10\u{b5}s"),
        ] {
            assert_eq!(format(d), s);
            assert_eq!(parse(s), Ok(d), "round trip {s}");
        }
    }
}
