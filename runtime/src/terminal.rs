//! The container's terminal: a pty made inside the container's own devpts,
//! its master sent over the console socket (SCM_RIGHTS) as runc sends it, its
//! slave made the process's controlling terminal and stdio.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use nix::sys::stat::Mode;

use crate::syscall;

/// Errors of terminal setup.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {err}")]
pub struct Error {
    what: String,
    err: io::Error,
}

fn e(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |err| Error { what, err }
}

/// Connects to the console socket (before the container is built, by path
/// in the caller's filesystem).
pub fn connect(path: &Path) -> Result<OwnedFd, Error> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .map_err(e(format!("connect console socket {}", path.display())))?;
    Ok(OwnedFd::from(s))
}

/// Opens a new pty in the container's devpts (after the root change).
/// Returns (master, slave).
pub fn open_pty() -> Result<(OwnedFd, OwnedFd), Error> {
    let master = nix::fcntl::open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|x| e("open /dev/ptmx")(x.into()))?;
    syscall::unlockpt(master.as_raw_fd()).map_err(e("unlock pty"))?;
    let slave = syscall::ioctl_int(
        master.as_raw_fd(),
        libc::TIOCGPTPEER as libc::c_ulong,
        libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
    )
    .map_err(e("open pty peer"))?;
    // SAFETY: TIOCGPTPEER returned a new fd that we now own.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    Ok((master, slave))
}

/// Sends `fd` over a connected unix socket with `name` as the payload.
pub fn send_fd(sock: &OwnedFd, name: &str, fd: RawFd) -> Result<(), Error> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|x| e("send pty master over console socket")(x.into()))?;
    Ok(())
}

/// Makes `slave` the controlling terminal and stdio of this (new session) process.
pub fn make_controlling(slave: &OwnedFd) -> Result<(), Error> {
    nix::unistd::setsid().map_err(|x| e("setsid")(x.into()))?;
    syscall::ioctl_int(slave.as_raw_fd(), libc::TIOCSCTTY as libc::c_ulong, 0)
        .map_err(e("set controlling terminal"))?;
    for target in 0..3 {
        syscall::dup2(slave.as_raw_fd(), target).map_err(e("dup pty to stdio"))?;
    }
    Ok(())
}
