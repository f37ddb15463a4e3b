//! The container's terminal: a pty made inside the container's own devpts,
//! its master sent over the console socket (SCM_RIGHTS) as runc sends it, its
//! slave made the process's controlling terminal and stdio.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
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

/// Where the container's pty master goes: (the end the container process
/// sends it on, berth's own receiving end). With a console socket path the
/// master goes there; with a terminal but no path (foreground `run` and
/// `exec`) berth receives it itself; without a terminal, nowhere.
pub fn endpoints(
    console_socket: Option<&Path>,
    terminal: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>), Error> {
    match (console_socket, terminal) {
        (Some(path), _) => Ok((Some(connect(path)?), None)),
        (None, true) => {
            let (ours, theirs) = nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|x| e("console socket pair")(x.into()))?;
            Ok((Some(theirs), Some(ours)))
        }
        (None, false) => Ok((None, None)),
    }
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
    syscall::unlockpt(master.as_fd()).map_err(e("unlock pty"))?;
    let slave = syscall::open_pty_peer(
        master.as_fd(),
        libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
    )
    .map_err(e("open pty peer"))?;
    Ok((master, slave))
}

/// Gives the pty's slave to the user the process will be, keeping its
/// group (devpts's `gid=5`, tty), as runc does: a process that is not root
/// can then reopen and chmod its own terminal.
pub fn give_to(slave: &OwnedFd, uid: u32) -> Result<(), Error> {
    if uid == 0 {
        return Ok(());
    }
    nix::unistd::fchown(slave, Some(nix::unistd::Uid::from_raw(uid)), None)
        .map_err(|x| e("chown the pty to the process's user")(x.into()))
}

/// Sends `fd` over a connected unix socket with `name` as the payload.
pub fn send_fd(sock: &OwnedFd, name: &str, fd: BorrowedFd<'_>) -> Result<(), Error> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|x| e("send pty master over console socket")(x.into()))?;
    Ok(())
}

/// Makes `slave` the controlling terminal and stdio of this (new session) process.
pub fn make_controlling(slave: &OwnedFd) -> Result<(), Error> {
    nix::unistd::setsid().map_err(|x| e("setsid")(x.into()))?;
    syscall::ioctl_int(slave.as_fd(), libc::TIOCSCTTY as libc::c_ulong, 0)
        .map_err(e("set controlling terminal"))?;
    for target in 0..3 {
        syscall::dup2(slave.as_raw_fd(), target).map_err(e("dup pty to stdio"))?;
    }
    Ok(())
}

/// Receives a pty master sent over a console socket (the receiving side of
/// [`send_fd`], for `run` and `exec` in the foreground, which act as their
/// own console socket).
pub fn recv_master(sock: BorrowedFd<'_>) -> Result<OwnedFd, Error> {
    let mut buf = [0u8; 4096];
    let (_, fd) = berth_rules::fdpass::recv_fd(sock, &mut buf).map_err(e("receive pty master"))?;
    fd.ok_or_else(|| Error {
        what: "receive pty master".into(),
        err: io::Error::new(io::ErrorKind::InvalidData, "no descriptor in the message"),
    })
}

/// Puts a terminal in raw mode and restores its settings when dropped, so
/// that the user's terminal is usable again however `berth` leaves.
pub struct RawMode {
    fd: OwnedFd,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// Switches `fd` to raw mode; `None` when it is not a terminal.
    pub fn enable(fd: BorrowedFd<'_>) -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let saved = tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        // Our own handle on the terminal, to restore it from Drop.
        let fd = fd.try_clone_to_owned().ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        let _ = tcsetattr(&self.fd, SetArg::TCSANOW, &self.saved);
    }
}

/// Copies the window size of terminal `from` to `to` (no-op when `from` is
/// not a terminal).
pub fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Ok(ws) = syscall::get_winsize(from) {
        let _ = syscall::set_winsize(to, &ws);
    }
}
