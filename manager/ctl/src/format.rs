//! Tables, sizes and times as docker prints them.

pub(crate) fn rfc3339(t: &prost_types::Timestamp) -> String {
    let nanos = u32::try_from(t.nanos).unwrap_or(0);
    berth_rules::time::format(t.seconds, nanos, berth_rules::time::Fraction::Nanos)
}

pub(crate) fn now_secs() -> i64 {
    berth_rules::time::now_secs() as i64
}

pub(crate) fn print_rows(head: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}   ", width = w[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Human size, as docker prints it (decimal units).
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[u]
    }
}

/// "N units ago", as docker prints creation times.
pub fn ago(secs: u64, now: u64) -> String {
    let d = now.saturating_sub(secs);
    let (n, unit) = match d {
        0..=59 => (d, "second"),
        60..=3599 => (d / 60, "minute"),
        3600..=86399 => (d / 3600, "hour"),
        _ => (d / 86400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_print_as_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_376), "4.261MB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(ago(100, 101), "1 second ago");
        assert_eq!(ago(0, 7200), "2 hours ago");
        let t = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        };
        assert_eq!(rfc3339(&t), "2023-11-14T22:13:20.000000005Z");
    }
}
