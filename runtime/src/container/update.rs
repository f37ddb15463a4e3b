//! `pause`, `resume` (the freezer) and `update` (`linux.resources` of a
//! live container).

use crate::cgroups::{self, Layout};
use crate::state::{self, Dir, Status};
use oci_spec::runtime::LinuxResources;
use std::path::Path;

use super::*;

/// `pause`: freezes every process of a running container.
pub fn pause(root: &Path, id: &str) -> Result<(), Error> {
    let dir = Dir::open(root, id)?;
    let saved = dir.load()?;
    match state::status_of(&dir, &saved) {
        Status::Running | Status::Created => {}
        Status::Paused => {
            return Err(Error::WrongState(format!(
                "container {id} is already paused"
            )))
        }
        _ => return Err(Error::NotRunning),
    }
    Ok(cgroups::freeze(&saved.cgroup_paths, true)?)
}

/// `resume`: thaws a paused container.
pub fn resume(root: &Path, id: &str) -> Result<(), Error> {
    let dir = Dir::open(root, id)?;
    let saved = dir.load()?;
    if state::status_of(&dir, &saved) != Status::Paused {
        return Err(Error::WrongState("container not paused".into()));
    }
    Ok(cgroups::freeze(&saved.cgroup_paths, false)?)
}

/// `update`: applies new resource limits (`linux.resources`) to a container
/// that has not stopped.
pub fn update(root: &Path, id: &str, res: &LinuxResources) -> Result<(), Error> {
    let dir = Dir::open(root, id)?;
    let saved = dir.load()?;
    if state::status_of(&dir, &saved) == Status::Stopped {
        // runc's wording, which callers match.
        return Err(Error::NotRunning);
    }
    // Device rules stay as created, as runc's update leaves them: containerd
    // sends the container's whole resources, devices included, to change
    // CPU or memory, and a device plugin may have added rules of its own.
    if res.devices().is_some() {
        crate::debug!("update: device rules are not changed on a running container");
    }
    let layout = Layout::detect()?;
    let m = res.memory().unwrap_or_default();
    if m.check_before_update() == Some(true) {
        if let (Some(limit), Some(usage)) = (
            m.limit().filter(|l| *l > 0),
            cgroups::memory_usage(&layout, &saved.cgroup_paths),
        ) {
            if (limit as u64) < usage {
                return Err(Error::WrongState(format!(
                    "memory.limit {limit} is below the container's current usage {usage} (checkBeforeUpdate)"
                )));
            }
        }
    }
    // systemd first, so that it keeps the new values as the unit's (a
    // daemon-reload would otherwise bring the old ones back).
    if let Some(unit) = &saved.systemd_unit {
        // Devices stay as created (above), in systemd too.
        let mut changed = res.clone();
        changed.set_devices(None);
        let props = cgroups::systemd::properties(&changed, layout.is_pure_v2(), None)?;
        if !props.is_empty() {
            cgroups::systemd::dbus::set(unit, &props, saved.systemd_user)?;
        }
    }
    Ok(cgroups::apply_limits(&layout, &saved.cgroup_paths, res)?)
}
