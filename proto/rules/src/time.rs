//! Wall-clock timestamps in RFC 3339 (UTC), as runc writes them in state
//! JSON and logs, the CRI writes log lines and docker prints `inspect`.
//! Hand-rolled: the civil-date conversion is a few lines, and a date crate
//! would cost start-up time on every `berth` call.

use std::time::{SystemTime, UNIX_EPOCH};

/// How much of the fraction of a second is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fraction {
    /// None: `2026-01-02T03:04:05Z` (logrus's text format).
    None,
    /// Always nine digits: `…05.000000500Z` (runc's state, docker's inspect).
    Nanos,
    /// Go's `time.RFC3339Nano`: trailing zeros dropped, none when zero (the CRI log).
    Trimmed,
}

/// Seconds and nanoseconds since the epoch, now (0 before it).
pub fn now() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.subsec_nanos(),
    )
}

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The current time with nine digits of fraction.
pub fn now_rfc3339_nano() -> String {
    let (s, n) = now();
    format(s, n, Fraction::Nanos)
}

/// The current time without a fraction.
pub fn now_rfc3339() -> String {
    format(now().0, 0, Fraction::None)
}

/// `t` in Go's `time.RFC3339Nano` form.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format(
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.subsec_nanos(),
        Fraction::Trimmed,
    )
}

/// Formats seconds since the epoch (UTC) and a fraction of `nanos`.
pub fn format(secs: i64, nanos: u32, fraction: Fraction) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let mut s = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}");
    match fraction {
        Fraction::None => {}
        Fraction::Nanos => s.push_str(&format!(".{nanos:09}")),
        Fraction::Trimmed if nanos != 0 => {
            s.push('.');
            s.push_str(format!("{nanos:09}").trim_end_matches('0'));
        }
        Fraction::Trimmed => {}
    }
    s.push('Z');
    s
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), by
/// Howard Hinnant's public-domain `civil_from_days` algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both are small by construction: a day of 1–31, a month of 1–12.
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `2024-01-02T03:04:05.123456789Z` (or with a `+hh:mm` offset)
/// into nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        // Right-padded to nine digits: ".5" is 500000000 ns.
        nanos = format!("{frac:0<9}").parse::<i64>().ok()?;
    }
    let offset = match s.get(i..)? {
        "Z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let v = o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// A Go duration (`30s`, `1m30s`, `500ms`, `1.5h`) in nanoseconds.
pub fn go_duration_ns(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (int, frac) = rest[..n].split_once('.').unwrap_or((&rest[..n], ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: i64 = match &rest[..u] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[u..];
        let whole: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        // The fraction, to nanosecond precision: digits beyond it are dropped.
        let mut part: i64 = 0;
        let mut scale = unit;
        for d in frac.bytes() {
            if !d.is_ascii_digit() {
                return None;
            }
            scale /= 10;
            part = part.checked_add(i64::from(d - b'0').checked_mul(scale)?)?;
        }
        total = total
            .checked_add(whole.checked_mul(unit)?)?
            .checked_add(part)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format(0, 0, Fraction::None), "1970-01-01T00:00:00Z");
        assert_eq!(
            format(951_782_400, 5, Fraction::Nanos),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            format(1_795_000_000, 0, Fraction::None),
            "2026-11-18T11:06:40Z"
        );
        assert_eq!(
            format(-1, 500_000_000, Fraction::Trimmed),
            "1969-12-31T23:59:59.5Z"
        );
        assert_eq!(format(86_400, 0, Fraction::Trimmed), "1970-01-02T00:00:00Z");
    }

    #[test]
    fn parses_what_it_prints_and_offsets() {
        for (secs, nanos) in [(0i64, 0u32), (951_782_400, 5), (1_795_000_000, 123_456_789)] {
            let s = format(secs, nanos, Fraction::Trimmed);
            assert_eq!(
                parse_rfc3339(&s),
                Some(secs * 1_000_000_000 + i64::from(nanos)),
                "{s}"
            );
        }
        assert_eq!(
            parse_rfc3339("1970-01-01T01:00:00+01:00"),
            Some(0),
            "an offset east of UTC"
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.5Z"), Some(500_000_000));
        for bad in [
            "",
            "1970-01-01 00:00:00Z",
            "1970-13-01T00:00:00Z",
            "1970-01-01T00:00:00",
            "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00.1234567890Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_read_as_go_reads_them() {
        assert_eq!(go_duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration_ns("500ms"), Some(500_000_000));
        assert_eq!(go_duration_ns("1.5h"), Some(5_400_000_000_000));
        assert_eq!(go_duration_ns("5"), None);
        assert_eq!(go_duration_ns("x"), None);
    }
}
