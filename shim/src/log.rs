//! The container log in the CRI format kubelet and crictl read:
//! `<RFC3339Nano> <stdout|stderr> <F|P> <line>`, one record per line. A line
//! longer than the line buffer is cut into `P` (partial) records ended by an
//! `F` record; output that ends without a newline is flushed as `F` at EOF.
//! The file is rotated by size, keeping a fixed number of old files.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Bytes one output stream buffers while it waits for a newline (conmon's
/// size). Fixed: the shim's memory does not grow with a container's output.
pub const LINE_BUF: usize = 8192;

/// Which of a process's output streams a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output, or the terminal.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Writes CRI records to a file, rotating it by size.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
}

fn open_log(path: &Path) -> io::Result<File> {
    // O_NOFOLLOW: a symlink planted at the log's place is not followed.
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

impl LogWriter {
    /// Opens (appending) the log at `path`. `max_size` 0 never rotates;
    /// `max_files` is how many rotated files (`path.1` …) are kept, at least 1.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<LogWriter> {
        let file = open_log(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
        })
    }

    /// Appends one record stamped `now`.
    pub fn record(
        &mut self,
        stream: Stream,
        partial: bool,
        line: &[u8],
        now: SystemTime,
    ) -> io::Result<()> {
        let head = format!(
            "{} {} {} ",
            berth_rules::time::rfc3339_nano(now),
            stream.tag(),
            if partial { "P" } else { "F" }
        );
        let len = (head.len() + line.len() + 1) as u64;
        if self.max_size > 0 && self.size > 0 && self.size + len > self.max_size {
            self.rotate()?;
        }
        // One write per record, so a reader never sees half a header.
        let mut rec = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        rec.extend_from_slice(head.as_bytes());
        rec.extend_from_slice(line);
        rec.push(b'\n');
        self.file.write_all(&rec)?;
        self.size += len;
        Ok(())
    }

    /// Opens a new file at the path (whoever moved the old one away keeps
    /// it); records from now on go there.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = open_log(&self.path)?;
        self.size = self.file.metadata()?.len();
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let name = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        for n in (1..self.max_files).rev() {
            match std::fs::rename(name(n), name(n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, name(1))?;
        self.file = open_log(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Cuts a byte stream into lines in a fixed buffer: read into [`spare`],
/// then [`commit`] hands out whole lines (`F`) and, when the buffer is full
/// without a newline, its content as a partial record (`P`).
///
/// [`spare`]: LineSplitter::spare
/// [`commit`]: LineSplitter::commit
pub struct LineSplitter {
    buf: Box<[u8]>,
    len: usize,
    /// A `P` record went out and its line has not ended.
    open: bool,
}

impl LineSplitter {
    /// A splitter with a `cap`-byte buffer.
    pub fn new(cap: usize) -> LineSplitter {
        LineSplitter {
            buf: vec![0; cap].into_boxed_slice(),
            len: 0,
            open: false,
        }
    }

    /// The free part of the buffer, to read into. Never empty.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// The `n` bytes just read into [`LineSplitter::spare`].
    pub fn filled(&self, n: usize) -> &[u8] {
        &self.buf[self.len..self.len + n]
    }

    /// Accounts `n` bytes read into the spare part and emits every record
    /// they complete as `emit(line_without_newline, partial)`.
    pub fn commit(&mut self, n: usize, mut emit: impl FnMut(&[u8], bool)) {
        let end = self.len + n;
        let mut start = 0;
        let mut scan = self.len;
        while let Some(i) = self.buf[scan..end].iter().position(|&b| b == b'\n') {
            let nl = scan + i;
            emit(&self.buf[start..nl], false);
            self.open = false;
            start = nl + 1;
            scan = start;
        }
        if start == 0 && end == self.buf.len() {
            emit(&self.buf[..end], true);
            self.open = true;
            self.len = 0;
            return;
        }
        self.buf.copy_within(start..end, 0);
        self.len = end - start;
    }

    /// At EOF: emits what is left (a last line without a newline) as `F`;
    /// a line whose `P` records filled the buffer exactly gets an empty `F`,
    /// so a reader knows it ended.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if self.len > 0 || self.open {
            emit(&self.buf[..self.len], false);
            self.len = 0;
            self.open = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_line_that_fills_the_buffer_exactly_still_ends() {
        let mut s = LineSplitter::new(8);
        let mut out: Vec<(Vec<u8>, bool)> = Vec::new();
        s.spare()[..8].copy_from_slice(b"abcdefgh");
        s.commit(8, |l, p| out.push((l.to_vec(), p)));
        s.finish(|l, p| out.push((l.to_vec(), p)));
        assert_eq!(out, [(b"abcdefgh".to_vec(), true), (Vec::new(), false)]);
    }
    use berth_rules::time::rfc3339_nano;
    use std::time::{Duration, UNIX_EPOCH};

    fn split(cap: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut s = LineSplitter::new(cap);
        let mut out = Vec::new();
        for c in chunks {
            let mut c = *c;
            while !c.is_empty() {
                let n = c.len().min(s.spare().len());
                s.spare()[..n].copy_from_slice(&c[..n]);
                s.commit(n, |l, p| out.push((String::from_utf8_lossy(l).into(), p)));
                c = &c[n..];
            }
        }
        s.finish(|l, p| out.push((String::from_utf8_lossy(l).into(), p)));
        out
    }

    #[test]
    fn lines_partials_and_a_missing_final_newline() {
        let f = |s: &str, p| (s.to_string(), p);
        assert_eq!(
            split(8, &[b"ab\ncd", b"e\n\nxyz"]),
            vec![
                f("ab", false),
                f("cde", false),
                f("", false),
                f("xyz", false)
            ]
        );
        // A 20-byte line through an 8-byte buffer: P, P, then the rest as F.
        assert_eq!(
            split(8, &[b"0123456789abcdefghij\n"]),
            vec![f("01234567", true), f("89abcdef", true), f("ghij", false)]
        );
    }

    #[test]
    fn timestamps_match_go_rfc3339nano() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::new(951_782_400, 1);
        assert_eq!(rfc3339_nano(leap), "2000-02-29T00:00:00.000000001Z");
    }

    #[test]
    fn reopen_writes_to_a_new_file_at_the_path() {
        let dir = std::env::temp_dir().join(format!("berth-log-reopen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.log");
        let mut w = LogWriter::open(&path, 0, 1).unwrap();
        let now = SystemTime::now();
        w.record(Stream::Stdout, false, b"one", now).unwrap();
        std::fs::rename(&path, dir.join("c.log.old")).unwrap();
        w.reopen().unwrap();
        w.record(Stream::Stdout, false, b"two", now).unwrap();
        let old = std::fs::read_to_string(dir.join("c.log.old")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(
            old.ends_with(" stdout F one\n") && !old.contains("two"),
            "{old}"
        );
        assert!(
            new.ends_with(" stdout F two\n") && !new.contains("one"),
            "{new}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = std::env::temp_dir().join(format!("berth-shim-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.log");
        let mut w = LogWriter::open(&p, 100, 2).unwrap();
        for i in 0..10 {
            w.record(
                Stream::Stdout,
                false,
                format!("line {i}").as_bytes(),
                UNIX_EPOCH,
            )
            .unwrap();
        }
        let cur = std::fs::read_to_string(&p).unwrap();
        assert!(
            cur.ends_with("1970-01-01T00:00:00Z stdout F line 9\n"),
            "{cur}"
        );
        assert!(std::fs::metadata(&p).unwrap().len() <= 100);
        assert!(dir.join("c.log.1").exists() && dir.join("c.log.2").exists());
        assert!(!dir.join("c.log.3").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
