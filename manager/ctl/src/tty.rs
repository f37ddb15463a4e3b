//! The local terminal for `berthctl run -it` / `exec -it`: raw mode (undone
//! on drop), its size, and the detach key sequence.

use std::os::fd::BorrowedFd;

use nix::sys::termios::{self, SetArg, Termios};

/// Puts a terminal in raw mode until dropped.
pub struct RawMode {
    fd: i32,
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin, if it is a terminal.
    pub fn stdin() -> Option<RawMode> {
        // SAFETY: fd 0 stays open for the life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(0) };
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd: 0, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Stdin was a terminal when this guard was made; berthctl never closes it.
        // SAFETY: fd 0 stays open for the life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &self.saved);
    }
}

/// The size (columns, rows) of the terminal on `fd`, if it is one.
pub fn size(fd: i32) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Finds docker's detach sequence (Ctrl-P Ctrl-Q by default) in input.
pub struct DetachKeys {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachKeys {
    /// Parses docker's `--detach-keys` form: `ctrl-p,ctrl-q`, `a`, `ctrl-@`.
    pub fn parse(spec: &str) -> Result<DetachKeys, String> {
        let mut keys = Vec::new();
        for k in spec.split(',') {
            let k = k.trim();
            if let Some(c) = k.strip_prefix("ctrl-") {
                let b = match c.as_bytes() {
                    [b] if b.is_ascii_alphabetic() => b.to_ascii_lowercase() - b'a' + 1,
                    [b'@'] => 0,
                    [b'['] => 27,
                    [b'\\'] => 28,
                    [b']'] => 29,
                    [b'^'] => 30,
                    [b'_'] => 31,
                    _ => return Err(format!("invalid detach key {k:?}")),
                };
                keys.push(b);
            } else if k.len() == 1 {
                keys.push(k.as_bytes()[0]);
            } else {
                return Err(format!("invalid detach key {k:?}"));
            }
        }
        if keys.is_empty() {
            return Err("empty detach keys".into());
        }
        Ok(DetachKeys { keys, matched: 0 })
    }

    /// Feeds input: the bytes to send on, and whether the sequence completed
    /// (the bytes of a partial match are held back until it fails).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_sequence() {
        let mut d = DetachKeys::parse("ctrl-p,ctrl-q").unwrap();
        assert_eq!(d.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(d.feed(b"x"), (b"\x10x".to_vec(), false));
        assert_eq!(d.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
        assert!(DetachKeys::parse("ctrl-!").is_err());
    }
}
