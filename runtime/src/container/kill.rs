//! `kill`: a signal to the init, or with `--all` to every process of the
//! container's cgroup.

use crate::cgroups;
use crate::state::{self, Dir, Saved};
use crate::syscall;
use std::os::fd::AsFd;
use std::path::Path;

use super::*;

/// Parses a signal by name (`KILL`, `SIGKILL`) or number (`berth_rules::signal`).
pub fn parse_signal(s: &str) -> Result<i32, Error> {
    berth_rules::signal::parse(s).map_err(|e| Error::Invalid(e.to_string()))
}

/// Sends `sig` to the container's init, or with `all` to every process in its cgroup.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<(), Error> {
    let dir = Dir::open(root, id)?;
    let saved = dir.load()?;
    if !state::init_alive(&saved) {
        return Err(Error::NotRunning);
    }
    signal_container(&saved, sig, all)
}

pub(super) fn signal_container(saved: &Saved, sig: i32, all: bool) -> Result<(), Error> {
    // Take the pidfd first and check it names our init: after this a recycled
    // pid cannot be hit, whatever the kill below does to init.
    let pidfd = syscall::pidfd_open(saved.pid).map_err(|_| Error::NotRunning)?;
    if !state::init_alive(saved) {
        return Err(Error::NotRunning);
    }
    if all {
        for pid in cgroups::procs(&saved.cgroup_paths) {
            if pid != saved.pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::try_from(sig).ok(),
                );
            }
        }
    }
    crate::debug!("signal {sig} to container {} (pid {})", saved.id, saved.pid);
    match syscall::pidfd_send_signal(pidfd.as_fd(), sig) {
        Ok(()) => Ok(()),
        // Exited since the check: with --all that is the goal reached.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) && all => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(Error::NotRunning),
        Err(e) => Err(io_err(format!(
            "send signal {sig} to container {}",
            saved.id
        ))(e)),
    }
}
