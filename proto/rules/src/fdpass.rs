//! Descriptors passed over unix sockets (SCM_RIGHTS): the console socket of
//! runc's CLI, the runtime's sync channel, the shim's pty masters.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// Receives one message into `buf` with at most one descriptor attached,
/// which is returned owned and close-on-exec; more than one are closed.
/// Retried on EINTR.
pub fn recv_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::Error::EINTR) => continue,
            r => break r.map_err(io::Error::from)?,
        }
    };
    let mut fd = None;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for f in fds {
                // SCM_RIGHTS just installed `f` in our table; taken over once here.
                // SAFETY: nothing else owns `f`.
                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                if fd.is_none() {
                    fd = Some(owned);
                }
            }
        }
    }
    Ok((msg.bytes, fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{
        sendmsg, socketpair, AddressFamily, ControlMessage, SockFlag, SockType,
    };
    use std::os::fd::AsFd;

    #[test]
    fn one_descriptor_and_the_message_arrive() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let fds = [file.as_raw_fd()];
        let iov = [io::IoSlice::new(b"hello")];
        sendmsg::<()>(
            a.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let mut buf = [0u8; 16];
        let (n, fd) = recv_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let fd = fd.expect("a descriptor");
        // SAFETY: F_GETFD only reads the flags of a live descriptor.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "received close-on-exec");
        // Without one: the message alone.
        sendmsg::<()>(a.as_raw_fd(), &iov, &[], MsgFlags::empty(), None).unwrap();
        let (n, fd) = recv_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!((n, fd.is_none()), (5, true));
    }
}
