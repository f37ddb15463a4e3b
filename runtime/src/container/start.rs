//! `start`: the exec fifo opened so the user's program runs; NOTIFY_SOCKET
//! relayed; poststart hooks.

use crate::state::{self, Dir, Saved, Status};
use crate::{hooks, notify, syscall};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::*;

/// `start`: releases a created container to exec its process, then runs the
/// poststart hooks. With `notify_socket` (the caller's NOTIFY_SOCKET) and a
/// container created with one, it returns once the container reported ready
/// (or exited), as runc does.
pub fn start(root: &Path, id: &str, notify_socket: Option<&str>) -> Result<(), Error> {
    let dir = Dir::open(root, id)?;
    let mut saved = dir.load()?;
    let mut relay = bind_relay(&dir, &saved, notify_socket)?;
    start_loaded(&dir, &mut saved, false, None)?;
    drop(dir);
    if let Some(r) = &mut relay {
        wait_ready(r, &saved);
    }
    Ok(())
}

/// Binds the container's notify socket when the caller has NOTIFY_SOCKET set
/// and the container was created with one.
pub(super) fn bind_relay(
    dir: &Dir,
    saved: &Saved,
    notify_socket: Option<&str>,
) -> Result<Option<notify::Relay>, Error> {
    match notify_socket {
        Some(host) if dir.path.join(notify::DIR).is_dir() => Ok(Some(
            notify::Relay::bind(&dir.path, host, saved.pid)
                .map_err(|x| Error::Notify(x.to_string()))?,
        )),
        _ => Ok(None),
    }
}

pub(super) fn wait_ready(relay: &mut notify::Relay, saved: &Saved) {
    if let Ok(pidfd) = syscall::pidfd_open(saved.pid) {
        if state::init_alive(saved) {
            relay.wait_ready(pidfd.as_fd());
        }
    }
}

/// Releases a created container. `fresh`: this process has just created it,
/// so its status is known; `released`, its exec fifo reader if it opened it
/// already (`Created::released`).
pub(super) fn start_loaded(
    dir: &Dir,
    saved: &mut Saved,
    fresh: bool,
    released: Option<OwnedFd>,
) -> Result<(), Error> {
    if !fresh {
        match state::status_of(dir, saved) {
            Status::Created => {}
            Status::Stopped => {
                let why = state::why_gone(saved);
                return Err(Error::StartStopped(why.unwrap_or_else(|| {
                    format!("container process {} exited", saved.pid)
                })));
            }
            _ => return Err(Error::StartRunning),
        }
    }
    // The pidfd first: opening the fifo releases the container process,
    // which may run its command, exit and be reaped before a later
    // pidfd_open (a `sh -c 'exit 7'` did, under load).
    let pidfd = syscall::pidfd_open(saved.pid).map_err(|e| {
        Error::StartStopped(format!(
            "pidfd_open of container process {}: {e}",
            saved.pid
        ))
    })?;
    let fifo_path = dir.fifo();
    let fifo = match released {
        Some(fd) => fd,
        None => nix::fcntl::open(
            &fifo_path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(format!("open {}", fifo_path.display()))(e.into()))?,
    };
    // Wait for the container process's byte; if it dies first, say so.
    loop {
        let mut fds = [
            nix::poll::PollFd::new(fifo.as_fd(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(io_err("wait for container process")(e.into())),
            Ok(_) => {}
        }
        let mut b = [0u8; 1];
        match nix::unistd::read(&fifo, &mut b) {
            Ok(1) => break,
            Ok(_) | Err(nix::Error::EAGAIN) => {
                if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                    return Err(Error::StartStopped(format!(
                        "container process {} exited while start waited for it",
                        saved.pid
                    )));
                }
                // No writer yet: the fifo reports HUP until the process opens it.
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            Err(e) => return Err(io_err("read exec fifo")(e.into())),
        }
    }
    saved.started = true;
    // Without the fifo the container reads as running (`state::status_of`);
    // the state is written again only where the fifo stays. One write of
    // state.json per container instead of two.
    if fs::remove_file(&fifo_path).is_err() {
        dir.save(saved)?;
    }
    if !saved.poststart.is_empty() {
        let st = state::hook_state(saved, Status::Running);
        for e in hooks::run_each("poststart", &saved.poststart, &st) {
            crate::warn!("{e}");
        }
    }
    Ok(())
}
