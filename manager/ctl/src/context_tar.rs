//! A tar writer for a build context, as docker's CLI sends it: GNU-format
//! headers (ustar fields, with `././@LongLink` entries for names and link
//! targets over 100 bytes), regular files, directories, symlinks, fifos and
//! device nodes. berthctl only writes tars; written here, it keeps the
//! client free of the store's archive crates.

use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

const BLOCK: usize = 512;

/// A tar stream being written to `w`.
pub(crate) struct TarWriter<W: Write> {
    w: W,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(w: W) -> Self {
        TarWriter { w }
    }

    /// Appends the file at `path` (not following a symlink) as `name`.
    pub(crate) fn append(&mut self, path: &Path, name: &str, m: &Metadata) -> io::Result<()> {
        let ft = m.file_type();
        let (kind, size, link) = if ft.is_file() {
            (b'0', m.len(), None)
        } else if ft.is_dir() {
            (b'5', 0, None)
        } else if ft.is_symlink() {
            let target = std::fs::read_link(path)?;
            let target = target.to_str().map(str::to_owned).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: link target is not UTF-8", path.display()),
                )
            })?;
            (b'2', 0, Some(target))
        } else if ft.is_fifo() {
            (b'6', 0, None)
        } else if ft.is_char_device() {
            (b'3', 0, None)
        } else if ft.is_block_device() {
            (b'4', 0, None)
        } else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{}: a socket cannot go in a build context", path.display()),
            ));
        };
        if let Some(l) = link.as_deref().filter(|l| l.len() > 100) {
            self.long(b'K', l)?;
        }
        if name.len() > 100 {
            self.long(b'L', name)?;
        }
        let mut h = [0u8; BLOCK];
        put_str(&mut h[0..100], name);
        octal(&mut h[100..108], u64::from(m.mode() & 0o7777));
        number(&mut h[108..116], u64::from(m.uid()));
        number(&mut h[116..124], u64::from(m.gid()));
        number(&mut h[124..136], size);
        number(&mut h[136..148], u64::try_from(m.mtime()).unwrap_or(0));
        h[156] = kind;
        if let Some(l) = &link {
            put_str(&mut h[157..257], l);
        }
        if matches!(kind, b'3' | b'4') {
            octal(&mut h[329..337], libc::major(m.rdev()).into());
            octal(&mut h[337..345], libc::minor(m.rdev()).into());
        }
        self.header(h)?;
        if kind == b'0' {
            let copied = io::copy(&mut File::open(path)?.take(size), &mut self.w)?;
            if copied != size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{}: shrank while being sent", path.display()),
                ));
            }
            self.pad(size)?;
        }
        Ok(())
    }

    /// Ends the archive (two zero blocks) and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.w)
    }

    /// A GNU long name (`L`) or long link (`K`) entry before the real one.
    fn long(&mut self, kind: u8, text: &str) -> io::Result<()> {
        let mut h = [0u8; BLOCK];
        put_str(&mut h[0..100], "././@LongLink");
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        let size = text.len() as u64 + 1;
        number(&mut h[124..136], size);
        octal(&mut h[136..148], 0);
        h[156] = kind;
        self.header(h)?;
        self.w.write_all(text.as_bytes())?;
        self.w.write_all(&[0])?;
        self.pad(size)
    }

    fn header(&mut self, mut h: [u8; BLOCK]) -> io::Result<()> {
        // GNU magic and version.
        h[257..263].copy_from_slice(b"ustar ");
        h[263..265].copy_from_slice(b" \0");
        // The checksum is taken with its own field as spaces.
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        let text = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(text.as_bytes());
        self.w.write_all(&h)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = usize::try_from(size % BLOCK as u64).unwrap_or(0);
        if rem != 0 {
            self.w.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }
}

/// `s` into a header field, cut to the field (a long name went before).
fn put_str(field: &mut [u8], s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(field.len());
    field[..n].copy_from_slice(&b[..n]);
}

/// An octal number, zero-padded, NUL-terminated.
fn octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let text = format!("{v:0width$o}");
    let b = text.as_bytes();
    // Wider than the field only for values `number` sends as binary.
    let b = &b[b.len().saturating_sub(width)..];
    field[..width].copy_from_slice(b);
    field[width] = 0;
}

/// A size, id or time: octal while it fits, else GNU's base-256 (high bit
/// set, big-endian), as for files of 8 GiB and more.
fn number(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    if v < 1u64 << (3 * width) {
        octal(field, v);
        return;
    }
    field.fill(0);
    let len = field.len();
    field[len - 8..].copy_from_slice(&v.to_be_bytes());
    field[0] |= 0x80;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("berthctl-tar-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write(d: &Path, names: &[&str]) -> Vec<u8> {
        let mut t = TarWriter::new(Vec::new());
        for n in names {
            let p = d.join(n);
            t.append(&p, n, &std::fs::symlink_metadata(&p).unwrap())
                .unwrap();
        }
        t.finish().unwrap()
    }

    #[test]
    fn files_dirs_and_links_read_back_with_their_content_and_modes() {
        let d = dir("kinds");
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/f"), "hello").unwrap();
        std::os::unix::fs::symlink("sub/f", d.join("l")).unwrap();
        std::fs::set_permissions(
            d.join("sub/f"),
            std::os::unix::fs::PermissionsExt::from_mode(0o751),
        )
        .unwrap();
        let data = write(&d, &["sub", "sub/f", "l"]);
        assert_eq!(data.len() % BLOCK, 0);
        let mut a = tar::Archive::new(&data[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let kind = e.header().entry_type();
            let mode = e.header().mode().unwrap();
            let link = e.link_name().unwrap().map(|l| l.display().to_string());
            let mut body = String::new();
            e.read_to_string(&mut body).unwrap();
            seen.push((name, kind, mode, link, body));
        }
        assert_eq!(seen[0].0, "sub");
        assert!(seen[0].1.is_dir());
        assert_eq!(
            (seen[1].0.as_str(), seen[1].2, seen[1].4.as_str()),
            ("sub/f", 0o751, "hello")
        );
        assert!(seen[2].1.is_symlink());
        assert_eq!(seen[2].3.as_deref(), Some("sub/f"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn names_and_link_targets_over_100_bytes_survive() {
        let d = dir("long");
        let long = "n".repeat(150);
        std::fs::write(d.join(&long), "x").unwrap();
        let target = format!("{}/{}", "t".repeat(90), "u".repeat(90));
        std::os::unix::fs::symlink(&target, d.join("l")).unwrap();
        let data = write(&d, &[long.as_str(), "l"]);
        let mut a = tar::Archive::new(&data[..]);
        let mut e = a.entries().unwrap();
        assert_eq!(
            e.next().unwrap().unwrap().path().unwrap().to_str(),
            Some(long.as_str())
        );
        let l = e.next().unwrap().unwrap();
        assert_eq!(
            l.link_name().unwrap().unwrap().to_str(),
            Some(target.as_str())
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_empty_archive_is_two_zero_blocks() {
        let data = TarWriter::new(Vec::new()).finish().unwrap();
        assert_eq!(data, vec![0u8; 1024]);
    }

    #[test]
    fn sizes_past_the_octal_field_go_base_256() {
        let mut f = [0u8; 12];
        number(&mut f, 0o777);
        assert_eq!(&f, b"00000000777\0");
        number(&mut f, 1 << 40);
        assert_eq!(f[0], 0x80);
        assert_eq!(u64::from_be_bytes(f[4..].try_into().unwrap()), 1 << 40);
    }

    #[test]
    fn a_socket_is_refused_by_path() {
        let d = dir("sock");
        let s = std::os::unix::net::UnixListener::bind(d.join("s")).unwrap();
        let mut t = TarWriter::new(Vec::new());
        let p = d.join("s");
        let e = t
            .append(&p, "s", &std::fs::symlink_metadata(&p).unwrap())
            .unwrap_err();
        assert!(e
            .to_string()
            .contains("a socket cannot go in a build context"));
        drop(s);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
