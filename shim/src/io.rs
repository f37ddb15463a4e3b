//! The file descriptors a process's stdio travels through: pipes or a pty
//! master, driven without threads on the shim's single tokio thread, and the
//! console socket the runtime hands a pty master over.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::net::UnixListener;

/// A non-blocking fd (pipe end or pty master) read and written asynchronously.
pub struct AsyncFdIo(AsyncFd<OwnedFd>);

impl AsyncFdIo {
    /// Makes `fd` non-blocking and registers it with the reactor.
    pub fn new(fd: OwnedFd) -> io::Result<AsyncFdIo> {
        let fl = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
        Ok(AsyncFdIo(crate::sys::async_fd(fd)?))
    }

    /// Reads what is there; 0 at EOF. A pty master whose slave side has
    /// closed answers EIO, which is its EOF.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.0.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(io::Error::from)) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let mut guard = self.0.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), buf).map_err(io::Error::from))
            {
                Ok(Ok(n)) => buf = &buf[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

impl AsFd for AsyncFdIo {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// The fds given to a runtime command as its stdio, which it passes on to
/// the container process; `None` is /dev/null.
#[derive(Default)]
pub struct ChildStdio {
    /// The read end of the stdin pipe.
    pub stdin: Option<OwnedFd>,
    /// The write end of the stdout pipe.
    pub stdout: Option<OwnedFd>,
    /// The write end of the stderr pipe.
    pub stderr: Option<OwnedFd>,
}

/// A listening console socket: the runtime connects and sends the pty master.
pub struct ConsoleSocket {
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Listens at `path` (which must not exist).
    pub fn bind(path: &Path) -> io::Result<ConsoleSocket> {
        Ok(ConsoleSocket {
            listener: UnixListener::bind(path)?,
        })
    }

    /// Accepts the runtime's connection and receives the master it sends.
    pub async fn receive_master(&self) -> io::Result<OwnedFd> {
        let (conn, _) = self.listener.accept().await?;
        loop {
            conn.readable().await?;
            match conn.try_io(tokio::io::Interest::READABLE, || {
                // The runtime sends the master with the pty's name as data.
                let mut name = [0u8; 4096];
                let (_, fd) = berth_rules::fdpass::recv_fd(conn.as_fd(), &mut name)?;
                fd.ok_or_else(|| io::Error::from_raw_os_error(libc::EBADMSG))
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }
}
