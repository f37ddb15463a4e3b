//! Terminals: pty peers, unlockpt, window sizes.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::*;

/// `ioctl(fd, req, arg)` with an integer argument.
pub fn ioctl_int(
    fd: BorrowedFd<'_>,
    req: libc::c_ulong,
    arg: libc::c_int,
) -> io::Result<libc::c_int> {
    // Only integer-argument requests (TIOCGPTPEER, TIOCSCTTY) go through here.
    // SAFETY: such requests read no memory through `arg`.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) };
    cvt_int(ret.into())
}

/// Unlocks a pty master (`TIOCSPTLCK` with 0).
pub fn unlockpt(fd: BorrowedFd<'_>) -> io::Result<()> {
    let zero: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which is valid.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSPTLCK as _,
            &zero as *const libc::c_int,
        )
    };
    cvt(ret as libc::c_long).map(drop)
}

/// `TIOCGWINSZ`: the window size of a terminal.
pub fn get_winsize(fd: BorrowedFd<'_>) -> io::Result<libc::winsize> {
    // SAFETY: zeroed winsize is a valid out-parameter.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which is valid.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut ws as *mut libc::winsize,
        )
    };
    cvt(ret as libc::c_long)?;
    Ok(ws)
}

/// `TIOCSWINSZ`: sets the window size of a terminal.
pub fn set_winsize(fd: BorrowedFd<'_>, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads one winsize through the pointer, which is valid.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const libc::winsize) };
    cvt(ret as libc::c_long).map(drop)
}

/// `TIOCGPTPEER`: opens the slave of a pty master.
pub fn open_pty_peer(master: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes open flags as an integer argument.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER as _, flags) };
    cvt_fd(ret.into())
}
