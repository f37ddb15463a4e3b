//! Where a container's cgroup goes, by berthd's cgroup driver: a path
//! under the cgroup parent (cgroupfs), or a transient scope in a slice that
//! the runtime asks systemd for (`slice:prefix:name`, runc's form).

use std::str::FromStr;

/// berthd's `cgroup_driver`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CgroupDriver {
    /// Cgroups as directories berth makes under the parent.
    #[default]
    Cgroupfs,
    /// Each container a systemd scope (the runtime's `--systemd-cgroup`).
    Systemd,
}

impl CgroupDriver {
    /// Its name in berthd's config (and the CRI's verbose status).
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupDriver::Cgroupfs => "cgroupfs",
            CgroupDriver::Systemd => "systemd",
        }
    }
}

impl FromStr for CgroupDriver {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cgroupfs" | "" => Ok(CgroupDriver::Cgroupfs),
            "systemd" => Ok(CgroupDriver::Systemd),
            other => Err(format!(
                "cgroup_driver {other:?}: \"cgroupfs\" or \"systemd\""
            )),
        }
    }
}

/// The last part of a parent: a systemd slice is named by it
/// (`/kubepods.slice/kubepods-besteffort.slice` is `kubepods-besteffort.slice`).
fn slice_of(parent: &str) -> Option<&str> {
    let base = parent.trim_end_matches('/').rsplit('/').next()?;
    base.ends_with(".slice").then_some(base)
}

/// The cgroupsPath of berthctl's container `id` in namespace `ns`.
pub fn container_path(driver: CgroupDriver, parent: &str, ns: &str, id: &str) -> String {
    match driver {
        CgroupDriver::Cgroupfs => format!("{}/{ns}/{id}", parent.trim_end_matches('/')),
        CgroupDriver::Systemd => format!(
            "{}:berth-{ns}:{id}",
            slice_of(parent).unwrap_or("system.slice")
        ),
    }
}

/// The cgroupsPath of CRI container `id` under kubelet's cgroup parent
/// (None: the runtime's default). Under systemd kubelet names a slice; a
/// parent that is none is refused, naming it.
pub fn cri_path(driver: CgroupDriver, parent: &str, id: &str) -> Result<Option<String>, String> {
    match driver {
        CgroupDriver::Cgroupfs if parent.is_empty() => Ok(None),
        CgroupDriver::Cgroupfs => Ok(Some(format!("{}/{id}", parent.trim_end_matches('/')))),
        CgroupDriver::Systemd if parent.is_empty() => Ok(Some(format!("system.slice:berth:{id}"))),
        CgroupDriver::Systemd => match slice_of(parent) {
            Some(slice) => Ok(Some(format!("{slice}:berth:{id}"))),
            None => Err(format!(
                "cgroup_parent {parent:?} is not a systemd slice (berthd's cgroup_driver is systemd: kubelet's must be too)"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_by_driver() {
        use CgroupDriver::*;
        assert_eq!(
            container_path(Cgroupfs, "/berth/", "default", "c"),
            "/berth/default/c"
        );
        assert_eq!(
            container_path(Systemd, "/berth", "default", "c"),
            "system.slice:berth-default:c"
        );
        assert_eq!(
            container_path(Systemd, "machine.slice", "k8s.io", "c"),
            "machine.slice:berth-k8s.io:c"
        );
        assert_eq!(cri_path(Cgroupfs, "", "c").unwrap(), None);
        assert_eq!(
            cri_path(Cgroupfs, "/kubepods/pod1", "c").unwrap().unwrap(),
            "/kubepods/pod1/c"
        );
        assert_eq!(
            cri_path(
                Systemd,
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice",
                "c"
            )
            .unwrap()
            .unwrap(),
            "kubepods-besteffort-pod1.slice:berth:c"
        );
        assert_eq!(
            cri_path(Systemd, "", "c").unwrap().unwrap(),
            "system.slice:berth:c"
        );
        assert!(cri_path(Systemd, "/kubepods/pod1", "c")
            .unwrap_err()
            .contains("not a systemd slice"));
        assert_eq!("systemd".parse::<CgroupDriver>(), Ok(Systemd));
        assert!("cgroupv3".parse::<CgroupDriver>().is_err());
    }
}
