//! Reading a container's CRI-format log (written by its shim): records
//! `<RFC3339Nano> <stdout|stderr> <P|F> <text>`, partial records joined into
//! whole lines, rotated files (`log.N` … `log.1`, then `log`) read oldest first.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One whole line of output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// When its last part was logged, ns since the epoch.
    pub time_ns: i64,
    /// Standard error (else standard output).
    pub stderr: bool,
    /// The text, with a trailing newline.
    pub data: Vec<u8>,
}

/// Joins records into lines; feed it records in file order.
#[derive(Default)]
pub struct Joiner {
    partial: [Vec<u8>; 2],
}

impl Joiner {
    /// Takes one record (without its newline); a line when one is complete.
    pub fn record(&mut self, rec: &[u8]) -> Option<Line> {
        let s = rec;
        let sp1 = s.iter().position(|&c| c == b' ')?;
        let rest = &s[sp1 + 1..];
        let sp2 = rest.iter().position(|&c| c == b' ')?;
        let stream = &rest[..sp2];
        let rest = &rest[sp2 + 1..];
        let (tag, text) = match rest.iter().position(|&c| c == b' ') {
            Some(p) => (&rest[..p], &rest[p + 1..]),
            None => (rest, &b""[..]),
        };
        let time_ns = berth_rules::time::parse_rfc3339(std::str::from_utf8(&s[..sp1]).ok()?)?;
        let stderr = match stream {
            b"stdout" => false,
            b"stderr" => true,
            _ => return None,
        };
        let buf = &mut self.partial[stderr as usize];
        buf.extend_from_slice(text);
        match tag {
            b"P" => None,
            b"F" => {
                let mut data = std::mem::take(buf);
                data.push(b'\n');
                Some(Line {
                    time_ns,
                    stderr,
                    data,
                })
            }
            _ => None,
        }
    }
}

/// The log files of `path`, oldest first: its rotated copies, then itself.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for n in (1..=64).rev() {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        let p = PathBuf::from(p);
        if p.exists() {
            out.push(p);
        }
    }
    out.push(path.to_path_buf());
    out
}

/// Reads every line of the log, with the length of the current file read.
pub fn read_all(path: &Path) -> std::io::Result<(Vec<Line>, u64)> {
    let mut j = Joiner::default();
    let mut lines = Vec::new();
    let mut offset = 0;
    for f in files(path) {
        let file = match std::fs::File::open(&f) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let n = read_records(file, &mut j, &mut lines)?;
        if f == path {
            offset = n;
        }
    }
    Ok((lines, offset))
}

/// Reads whole records from `r`; returns the bytes consumed (a trailing
/// record without its newline is left for a later read).
pub fn read_records(r: impl Read, j: &mut Joiner, out: &mut Vec<Line>) -> std::io::Result<u64> {
    let mut br = BufReader::new(r);
    let mut consumed = 0u64;
    let mut rec = Vec::new();
    loop {
        rec.clear();
        let n = br.read_until(b'\n', &mut rec)?;
        if n == 0 || rec.last() != Some(&b'\n') {
            return Ok(consumed);
        }
        consumed += n as u64;
        rec.pop();
        if let Some(l) = j.record(&rec) {
            out.push(l);
        }
    }
}

/// Follows the current file from `offset`: the new lines, and the new offset.
/// A file that shrank (rotated) is read from its start.
pub fn read_from(path: &Path, offset: u64, j: &mut Joiner) -> std::io::Result<(Vec<Line>, u64)> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = if len < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(start))?;
    let mut lines = Vec::new();
    let n = read_records(f, j, &mut lines)?;
    Ok((lines, start + n))
}

/// Keeps the lines at or after `since_ns`, then the last `tail` (negative: all).
pub fn select(mut lines: Vec<Line>, since_ns: i64, tail: i64) -> Vec<Line> {
    lines.retain(|l| l.time_ns >= since_ns);
    if let Ok(tail) = usize::try_from(tail) {
        if tail < lines.len() {
            lines.drain(..lines.len() - tail);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(
            berth_rules::time::parse_rfc3339("1970-01-01T00:00:00Z"),
            Some(0)
        );
        assert_eq!(
            berth_rules::time::parse_rfc3339("2023-11-14T22:13:20.12Z"),
            Some(1_700_000_000_120_000_000)
        );
        assert_eq!(
            berth_rules::time::parse_rfc3339("2000-02-29T01:00:00.000000001+01:00"),
            Some(951_782_400_000_000_001)
        );
        assert_eq!(berth_rules::time::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn records_join_and_select() {
        let log = b"2023-11-14T22:13:20Z stdout P hel\n\
2023-11-14T22:13:21Z stderr F oops\n\
2023-11-14T22:13:22Z stdout F lo world\n\
2023-11-14T22:13:23Z stdout F \n\
2023-11-14T22:13:24Z stdout F incompl";
        let mut j = Joiner::default();
        let mut out = Vec::new();
        let n = read_records(&log[..], &mut j, &mut out).unwrap();
        assert_eq!(
            usize::try_from(n).unwrap(),
            log.len() - "2023-11-14T22:13:24Z stdout F incompl".len()
        );
        let text: Vec<&[u8]> = out.iter().map(|l| l.data.as_slice()).collect();
        assert_eq!(text, [&b"oops\n"[..], b"hello world\n", b"\n"]);
        assert!(out[0].stderr && !out[1].stderr);
        let sel = select(out.clone(), 1_700_000_002_000_000_000, -1);
        assert_eq!(sel.len(), 2);
        assert_eq!(select(out, 0, 1).len(), 1);
    }
}
