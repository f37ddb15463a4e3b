//! `delete`: a stopped container's state, cgroups and hooks; `--force`
//! kills a running one first.

use crate::cgroups;
use crate::state::{self, Dir, Saved, Status};
use crate::{hooks, syscall};
use std::path::Path;

use super::*;

/// `delete`: removes a stopped (or created) container and everything it made;
/// with `force`, kills a running one first. A missing id with `force` is fine.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), Error> {
    let dir = match Dir::open(root, id) {
        Ok(d) => d,
        Err(state::Error::NotExist) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let saved = match dir.load() {
        Ok(s) => s,
        // A create that died half-way: nothing to run, just remove it.
        Err(state::Error::NotExist) => {
            dir.remove()?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let st = state::status_of(&dir, &saved);
    crate::debug!("container {id} is {}, pid {}", st.as_str(), saved.pid);
    match st {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&saved)?,
        other => {
            if !force {
                return Err(Error::DeleteNotStopped(id.to_string(), other.as_str()));
            }
            kill_and_wait(&saved)?;
        }
    }
    destroy(dir, &saved)
}

pub(super) fn kill_and_wait(saved: &Saved) -> Result<(), Error> {
    let pidfd = match syscall::pidfd_open(saved.pid) {
        Ok(fd) if state::init_alive(saved) => fd,
        _ => return Ok(()),
    };
    let _ = signal_container(saved, libc::SIGKILL, saved.shared_pidns);
    // A frozen process takes its SIGKILL only once thawed: thaw a paused
    // container, as runc does, or it never dies.
    if cgroups::is_frozen(&saved.cgroup_paths) {
        cgroups::freeze(&saved.cgroup_paths, false)?;
    }
    if !wait_gone(&pidfd, 10_000) {
        return Err(Error::Stuck(format!(
            "container {} did not exit 10s after SIGKILL",
            saved.id
        )));
    }
    Ok(())
}

/// Removes everything a stopped container holds, then runs poststop hooks.
pub fn destroy(dir: Dir, saved: &Saved) -> Result<(), Error> {
    if saved.shared_pidns {
        for pid in cgroups::procs(&saved.cgroup_paths) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    // A systemd scope goes with its cgroup (and any the container made in
    // it); directories of ours in hierarchies systemd does not manage after.
    if let Some(unit) = &saved.systemd_unit {
        cgroups::systemd::dbus::stop(unit, saved.systemd_user)?;
    }
    cgroups::remove_dirs(&saved.cgroup_owned, &saved.cgroup_paths)?;
    crate::debug!("cgroups removed: {:?}", saved.cgroup_owned);
    if !saved.poststop.is_empty() {
        let st = state::hook_state(saved, Status::Stopped);
        for e in hooks::run_each("poststop", &saved.poststop, &st) {
            crate::warn!("{e}");
        }
    }
    dir.remove()?;
    Ok(())
}
