//! A container process in the foreground of `berth run` or `berth exec`:
//! every catchable signal is forwarded to it, every child is reaped, its
//! terminal (when berth holds the pty master) is proxied to berth's own
//! stdio, and sd_notify readiness is relayed. One poll loop, no threads.

use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::{notify, terminal};

/// Errors of the foreground loop.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {err}")]
pub struct Error {
    what: &'static str,
    err: io::Error,
}

fn e(what: &'static str) -> impl FnOnce(Errno) -> Error {
    move |err| Error {
        what,
        err: err.into(),
    }
}

/// Every signal but SIGKILL and SIGSTOP.
pub fn forwardable() -> SigSet {
    let mut all = SigSet::all();
    all.remove(Signal::SIGKILL);
    all.remove(Signal::SIGSTOP);
    all
}

/// Blocks every forwardable signal, so none is lost between the fork and the
/// loop; the container process unblocks them before it execs.
pub fn block_signals() -> Result<(), Error> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwardable()), None)
        .map_err(e("block signals"))
}

/// Input kept for the pty while the container does not read it.
const MAX_PENDING: usize = 64 * 1024;

/// What the loop watches besides signals.
pub struct Foreground<'a> {
    /// The process whose exit status `berth` returns (our child).
    pub pid: i32,
    /// The pty master, when berth proxies the terminal.
    pub master: Option<OwnedFd>,
    /// The sd_notify relay of `run`, until the container reports ready.
    pub notify: Option<&'a mut notify::Relay>,
}

/// Runs until `fg.pid` exits; returns its status as a shell reports it
/// (128+N for a signal).
pub fn wait(mut fg: Foreground) -> Result<i32, Error> {
    let sfd = SignalFd::with_flags(
        &forwardable(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )
    .map_err(e("signalfd"))?;
    let stdin = io::stdin();
    let _raw = fg
        .master
        .as_ref()
        .and_then(|_| terminal::RawMode::enable(stdin.as_fd()));
    let mut tty = fg.master.take().map(Proxy::new).transpose()?;
    loop {
        if let Some(status) = reap(fg.pid) {
            if let Some(t) = &mut tty {
                t.drain();
            }
            return Ok(status);
        }
        let notify_fd = fg.notify.as_ref().filter(|n| !n.done()).map(|n| n.fd());
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let slots = tty
            .as_ref()
            .map(|t| t.poll_fds(&stdin, &mut fds))
            .unwrap_or_default();
        let notify_at = fds.len();
        if let Some(fd) = notify_fd {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(x) => return Err(e("poll")(x)),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let notify_ready = notify_fd.is_some() && ready(notify_at);
        let stdin_ready = slots.stdin.is_some_and(ready);
        let master_ready = slots.master.is_some_and(ready);
        let sig_ready = ready(0);
        drop(fds);
        if sig_ready {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                match (sig, &tty) {
                    (libc::SIGCHLD, _) => {}
                    // The kernel tells the container's foreground group itself.
                    (libc::SIGWINCH, Some(t)) => t.resize(),
                    _ => {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(fg.pid),
                            Signal::try_from(sig).ok(),
                        );
                    }
                }
            }
        }
        if let Some(t) = &mut tty {
            t.pump(stdin_ready, master_ready);
        }
        if notify_ready {
            if let Some(n) = fg.notify.as_deref_mut() {
                n.on_readable();
            }
        }
    }
}

/// Reaps every exited child; returns the status of `pid` once it exited.
fn reap(pid: i32) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Some(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                return Some(128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Where the proxy's descriptors sit in a poll set.
#[derive(Default, Clone, Copy)]
struct Slots {
    stdin: Option<usize>,
    master: Option<usize>,
}

/// Copies between berth's stdio and the pty master.
struct Proxy {
    master: OwnedFd,
    stdin_open: bool,
    master_open: bool,
    pending: Vec<u8>,
    last_in: u8,
}

impl Proxy {
    fn new(master: OwnedFd) -> Result<Proxy, Error> {
        // Non-blocking, so that a container that stops reading its input can
        // never stop us from reading its output.
        let fl = nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(e("get pty master flags"))?;
        let fl = nix::fcntl::OFlag::from_bits_retain(fl) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_SETFL(fl))
            .map_err(e("set pty master non-blocking"))?;
        let p = Proxy {
            master,
            stdin_open: true,
            master_open: true,
            pending: Vec::new(),
            last_in: b'\n',
        };
        p.resize();
        Ok(p)
    }

    /// Gives the pty the size of berth's own terminal.
    fn resize(&self) {
        terminal::copy_winsize(io::stdin().as_fd(), self.master.as_fd());
    }

    fn wants_input(&self) -> bool {
        self.stdin_open && self.master_open && self.pending.len() < MAX_PENDING
    }

    /// Adds stdin and the master to the poll set, each only while it is
    /// watched (a closed stdin would otherwise wake poll forever).
    fn poll_fds<'f>(&'f self, stdin: &'f io::Stdin, fds: &mut Vec<PollFd<'f>>) -> Slots {
        let mut slots = Slots::default();
        if self.wants_input() {
            slots.stdin = Some(fds.len());
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        if self.master_open {
            let mut m = PollFlags::POLLIN;
            if !self.pending.is_empty() {
                m |= PollFlags::POLLOUT;
            }
            slots.master = Some(fds.len());
            fds.push(PollFd::new(self.master.as_fd(), m));
        }
        slots
    }

    fn pump(&mut self, stdin_ready: bool, master_ready: bool) {
        if stdin_ready {
            self.read_stdin();
        }
        if master_ready {
            self.read_master();
            self.flush_input();
        }
    }

    fn read_stdin(&mut self) {
        let mut buf = [0u8; 16384];
        match nix::unistd::read(io::stdin().as_fd(), &mut buf) {
            Ok(0) | Err(Errno::EIO) | Err(Errno::EBADF) => {
                self.stdin_open = false;
                // The container sees end of input as a terminal user makes it:
                // VEOF at the start of a line (twice if a line is pending).
                let veof = nix::sys::termios::tcgetattr(&self.master)
                    .map(|t| t.control_chars[libc::VEOF])
                    .unwrap_or(4);
                if self.last_in != b'\n' {
                    self.pending.push(veof);
                }
                self.pending.push(veof);
            }
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                self.last_in = buf[n - 1];
            }
            Err(_) => {}
        }
        self.flush_input();
    }

    fn flush_input(&mut self) {
        while !self.pending.is_empty() {
            match nix::unistd::write(&self.master, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    /// Copies what the master has to stdout; returns false when nothing was
    /// there.
    fn read_master(&mut self) -> bool {
        let mut buf = [0u8; 16384];
        match nix::unistd::read(&self.master, &mut buf) {
            Ok(0) | Err(Errno::EIO) => {
                // Every slave is closed.
                self.master_open = false;
                false
            }
            Ok(n) => {
                let mut out = io::stdout().lock();
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
                true
            }
            Err(_) => false,
        }
    }

    /// After the process exited: copies what is left of its output, waiting
    /// briefly for what the kernel still has in flight.
    fn drain(&mut self) {
        while self.master_open {
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(100u8)) {
                Ok(0) => return,
                Ok(_) => {
                    if !self.read_master() && self.master_open {
                        return;
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }
}
