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
    /// The time of each stream's last partial record.
    partial_ns: [i64; 2],
}

impl Joiner {
    /// The partial lines held (a line still being written, or one whose
    /// writer died before its end), as lines without their newline; they
    /// are not held any more.
    pub fn pending(&mut self) -> Vec<Line> {
        let mut out = Vec::new();
        for (i, stderr) in [(0, false), (1, true)] {
            if !self.partial[i].is_empty() {
                out.push(Line {
                    time_ns: self.partial_ns[i],
                    stderr,
                    data: std::mem::take(&mut self.partial[i]),
                });
            }
        }
        out
    }

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
        self.partial_ns[stderr as usize] = time_ns;
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

/// Where to start reading to get the last `n` lines: the files (oldest
/// first) and the offset in the first of them. Files are scanned from their
/// end, a block at a time, counting whole-line (`F`) records: a 287 MB log
/// is not read for `--tail 1`.
pub fn tail_start(path: &Path, n: u64) -> std::io::Result<(Vec<PathBuf>, u64)> {
    let all = files(path);
    let mut need = n;
    for (idx, f) in all.iter().enumerate().rev() {
        let file = match std::fs::File::open(f) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if let Some(off) = scan_back(file, &mut need)? {
            return Ok((all[idx..].to_vec(), off));
        }
    }
    Ok((all, 0))
}

/// Scans `f` backwards for the start of the `need`-th last line; None when
/// the file holds fewer (`need` then counts what is still wanted).
fn scan_back(mut f: std::fs::File, need: &mut u64) -> std::io::Result<Option<u64>> {
    const BLOCK: u64 = 64 << 10;
    let len = f.metadata()?.len();
    if *need == 0 {
        return Ok(Some(len));
    }
    let mut end = len;
    // Bytes of the record being assembled, in reverse, across blocks.
    let mut tail: Vec<u8> = Vec::new();
    let mut first = true;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
        f.read_exact(&mut buf)?;
        for i in (0..buf.len()).rev() {
            if buf[i] == b'\n' {
                // A newline ends the record before it; `tail` is the record
                // after it (reversed). The file's last newline ends nothing
                // we have seen yet.
                if !(first && tail.is_empty()) && is_full(&tail) {
                    *need -= 1;
                    if *need == 0 {
                        return Ok(Some(start + i as u64 + 1));
                    }
                }
                first = false;
                tail.clear();
            } else {
                tail.push(buf[i]);
            }
        }
        end = start;
    }
    // The file's first record.
    if !tail.is_empty() && is_full(&tail) {
        *need -= 1;
        if *need == 0 {
            return Ok(Some(0));
        }
    }
    Ok(None)
}

/// Whether a record (its bytes reversed) is a line's last (`F`).
fn is_full(rev: &[u8]) -> bool {
    // The tag is the third field: after the second space from the start,
    // which is the end of the reversed bytes. Nothing is copied: a long
    // tail scans many records.
    let mut fields = rev.rsplitn(4, |&b| b == b' ');
    fields.nth(2) == Some(b"F")
}

/// Reads `files` (the first from `offset`) record by record, giving each
/// whole line at or after `since_ns` to `send` (false: stop). Returns the
/// offset reached in the last file, to follow from.
pub fn stream(
    files: &[PathBuf],
    offset: u64,
    since_ns: i64,
    j: &mut Joiner,
    mut send: impl FnMut(Line) -> bool,
) -> std::io::Result<u64> {
    let mut reached = 0;
    for (k, f) in files.iter().enumerate() {
        let mut file = match std::fs::File::open(f) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let start = if k == 0 { offset } else { 0 };
        file.seek(SeekFrom::Start(start))?;
        let mut br = BufReader::new(file);
        let mut consumed = start;
        let mut rec = Vec::new();
        loop {
            rec.clear();
            let n = br.read_until(b'\n', &mut rec)?;
            if n == 0 || rec.last() != Some(&b'\n') {
                break;
            }
            consumed += n as u64;
            rec.pop();
            if let Some(l) = j.record(&rec) {
                if l.time_ns >= since_ns && !send(l) {
                    return Ok(consumed);
                }
            }
        }
        reached = consumed;
    }
    Ok(reached)
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
    }

    #[test]
    fn tail_reads_from_the_end_and_partial_lines_are_shown() {
        let d = std::env::temp_dir().join(format!("berth-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("log");
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!("2023-11-14T22:13:20Z stdout F line {i}\n"));
        }
        // A long line in two records, then one whose writer died.
        text.push_str("2023-11-14T22:13:21Z stdout P long \n2023-11-14T22:13:21Z stdout F end\n");
        text.push_str("2023-11-14T22:13:22Z stderr P cut short\n");
        std::fs::write(&path, &text).unwrap();
        let read = |tail: u64, since: i64| {
            let (files, off) = tail_start(&path, tail).unwrap();
            let mut j = Joiner::default();
            let mut got = Vec::new();
            stream(&files, off, since, &mut j, |l| {
                got.push(String::from_utf8_lossy(&l.data).into_owned());
                true
            })
            .unwrap();
            let pending: Vec<String> = j
                .pending()
                .into_iter()
                .map(|l| String::from_utf8_lossy(&l.data).into_owned())
                .collect();
            (got, pending)
        };
        let (got, pending) = read(2, 0);
        assert_eq!(got, ["line 4999\n", "long end\n"]);
        assert_eq!(pending, ["cut short"]);
        let (got, _) = read(0, 0);
        assert!(got.is_empty());
        let (got, _) = read(u64::MAX, 1_700_000_001_000_000_000);
        assert_eq!(got, ["long end\n"]);
        let (got, _) = read(6000, 0);
        assert_eq!(got.len(), 5001);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
