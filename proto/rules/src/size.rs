//! Sizes as runc's and docker's flags take them: `512`, `64k`, `100m`,
//! `1.5g`, `2tb` (binary units, an optional trailing `b`).

/// A size that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid size {0:?}: want a number of bytes, optionally with k, m, g or t")]
pub struct SizeError(pub String);

/// Parses a non-negative size.
pub fn parse(s: &str) -> Result<i64, SizeError> {
    let bad = || SizeError(s.to_string());
    let t = s.trim().to_ascii_lowercase();
    if let Ok(n) = t.parse::<i64>() {
        return if n < 0 { Err(bad()) } else { Ok(n) };
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    let bytes = (n * mul as f64).floor();
    // i64::MAX rounds up to 2^63 as a float: the first size past the range.
    if !bytes.is_finite() || !(0.0..i64::MAX as f64).contains(&bytes) {
        return Err(bad());
    }
    // In range and whole: the conversion is exact.
    #[allow(clippy::cast_possible_truncation)]
    Ok(bytes as i64)
}

/// As `parse`, and `-1` (or any negative number) for "unlimited", as
/// runc's `update` flags take it.
pub fn parse_or_unlimited(s: &str) -> Result<i64, SizeError> {
    match s.trim().parse::<i64>() {
        Ok(n) if n < 0 => Ok(-1),
        _ => parse(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_fractions() {
        assert_eq!(parse("512"), Ok(512));
        assert_eq!(parse("64k"), Ok(64 << 10));
        assert_eq!(parse("64KB"), Ok(64 << 10));
        assert_eq!(parse("100m"), Ok(100 << 20));
        assert_eq!(parse("1.5g"), Ok(3 << 29));
        assert_eq!(parse("2t"), Ok(2 << 40));
        assert_eq!(parse(" 7 "), Ok(7));
        assert_eq!(parse("10b"), Ok(10));
    }

    #[test]
    fn refused() {
        for bad in [
            "", "k", "-1", "-5m", "1x", "nan", "inf", "9999999t", "1..2m",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_or_unlimited("-1"), Ok(-1));
        assert_eq!(parse_or_unlimited("1m"), Ok(1 << 20));
        assert!(parse_or_unlimited("-1m").is_err());
    }
}
