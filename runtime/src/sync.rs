//! The channel between `berth` and the container process it is building: a
//! SOCK_SEQPACKET pair carrying one-byte tags with optional text.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

/// Parent → child: id maps and cgroups are in place, go on.
pub const GO: u8 = b'G';
/// Child → parent: run prestart and createRuntime hooks now.
pub const HOOKS: u8 = b'H';
/// Parent → child: hooks done.
pub const HOOKS_DONE: u8 = b'h';
/// Child → parent: set up and waiting for start.
pub const READY: u8 = b'R';
/// Child → parent: the seccomp notification fd is attached; forward it to
/// the listener socket.
pub const SECCOMP: u8 = b'S';
/// Parent → child: the seccomp fd was delivered.
pub const SECCOMP_DONE: u8 = b's';
/// Either way: failed, with a message.
pub const ERROR: u8 = b'E';

/// Errors of the sync channel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sync with container process: {0}")]
    Io(#[from] io::Error),
    #[error("container process exited during setup")]
    Closed,
    /// What the container process reported, worded as runc words it.
    #[error("unable to start container process: {0}")]
    Remote(String),
    #[error("sync with container process: unexpected message {0:?}")]
    Unexpected(char),
}

/// A connected pair: (parent end, child end).
pub fn pair() -> Result<(OwnedFd, OwnedFd), Error> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::Io(e.into()))
}

/// Sends one message.
pub fn send(fd: &OwnedFd, tag: u8, text: &str) -> Result<(), Error> {
    let mut buf = Vec::with_capacity(1 + text.len());
    buf.push(tag);
    buf.extend_from_slice(text.as_bytes());
    nix::sys::socket::send(
        fd.as_raw_fd(),
        &buf,
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
    )
    .map_err(|e| Error::Io(e.into()))?;
    Ok(())
}

/// Sends one message with a descriptor attached (SCM_RIGHTS).
pub fn send_fd(fd: &OwnedFd, tag: u8, attached: &OwnedFd) -> Result<(), Error> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    let fds = [attached.as_raw_fd()];
    let iov = [std::io::IoSlice::new(std::slice::from_ref(&tag))];
    sendmsg::<UnixAddr>(
        fd.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| Error::Io(e.into()))?;
    Ok(())
}

/// Receives one message; an ERROR message becomes `Error::Remote`.
pub fn recv(fd: &OwnedFd) -> Result<(u8, String), Error> {
    recv_with_fd(fd).map(|(t, s, _)| (t, s))
}

/// Receives one message and the descriptor attached to it, if any.
pub fn recv_with_fd(fd: &OwnedFd) -> Result<(u8, String, Option<OwnedFd>), Error> {
    let mut buf = vec![0u8; 65536];
    let (n, attached) = berth_rules::fdpass::recv_fd(std::os::fd::AsFd::as_fd(fd), &mut buf)?;
    if n == 0 {
        return Err(Error::Closed);
    }
    let text = String::from_utf8_lossy(&buf[1..n]).into_owned();
    if buf[0] == ERROR {
        return Err(Error::Remote(text));
    }
    Ok((buf[0], text, attached))
}

/// Receives a message and checks its tag.
pub fn expect(fd: &OwnedFd, tag: u8) -> Result<String, Error> {
    let (t, text) = recv(fd)?;
    if t != tag {
        return Err(Error::Unexpected(t as char));
    }
    Ok(text)
}
