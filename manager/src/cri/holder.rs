//! A pod's shared namespaces: `berth-shim hold` makes them and holds them
//! with its holder process (PID 1 of the pod's PID namespace); berthd pins
//! each by a bind mount of its nsfs file in the pod's directory, so the
//! pod's containers join them by path and they outlive a berthd restart.
//! A pod with a user namespace (`userns_options` POD) gets it from the
//! holder too, with its network namespace made inside it and pinned at the
//! pod's `net` (see `berth-shim hold`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_rules::idmap::{self, UserMaps};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::{io, CriError};

/// The namespaces a pod's holder makes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shared {
    /// IPC (not with the host's).
    pub ipc: bool,
    /// UTS with the pod's hostname (not with the host's network).
    pub hostname: Option<String>,
    /// PID, the holder its init (a pod sharing its process namespace).
    pub pid: bool,
    /// A user namespace with these uid and gid maps owning the others, and
    /// the pod's network namespace made in it.
    pub userns: Option<UserMaps>,
}

impl Shared {
    /// Whether there is anything to hold.
    pub fn any(&self) -> bool {
        self.ipc || self.hostname.is_some() || self.pid || self.userns.is_some()
    }

    /// The namespace types held, as nsfs names.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.userns.is_some() {
            v.push("user");
            v.push("net");
        }
        if self.ipc {
            v.push("ipc");
        }
        if self.hostname.is_some() {
            v.push("uts");
        }
        if self.pid {
            v.push("pid");
        }
        v
    }

    /// `berth-shim hold`'s arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["hold".to_string()];
        if self.ipc {
            a.push("--ipc".into());
        }
        if self.pid {
            a.push("--pid".into());
        }
        if let Some(h) = &self.hostname {
            a.push("--hostname".into());
            a.push(h.clone());
        }
        if let Some((u, g)) = &self.userns {
            a.extend(["--uidmap".into(), idmap::format(u)]);
            a.extend(["--gidmap".into(), idmap::format(g)]);
            a.push("--net".into());
        }
        a
    }
}

/// The pinned namespace file of `kind` in pod directory `dir` (the network
/// namespace is the pod's `net`, wherever it was made).
pub fn pin_path(dir: &Path, kind: &str) -> PathBuf {
    if kind == "net" {
        return dir.join("net");
    }
    dir.join("ns").join(kind)
}

/// Starts the holder of `shared` and pins its namespaces under `dir`; its pid.
pub async fn start(shim: &Path, shared: &Shared, dir: &Path) -> Result<u32, CriError> {
    let out = tokio::process::Command::new(shim)
        .args(shared.args())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(io("run", shim))?;
    if !out.status.success() {
        return Err(CriError::State(format!(
            "start the pod's namespace holder: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let pid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| {
            CriError::State(format!(
                "the pod's namespace holder printed {:?}, not its pid",
                String::from_utf8_lossy(&out.stdout)
            ))
        })?;
    let pinned = (|| {
        let ns = dir.join("ns");
        std::fs::create_dir_all(&ns).map_err(io("create", &ns))?;
        for kind in shared.kinds() {
            if kind == "net" {
                crate::network::netns::adopt(pid, &pin_path(dir, kind))
                    .map_err(|e| CriError::State(e.to_string()))?;
            } else {
                pin(pid, kind, &pin_path(dir, kind))?;
            }
        }
        Ok(())
    })();
    if let Err(e) = pinned {
        // Just started and not yet pinned, so surely still the holder.
        kill(pid);
        unpin(dir);
        return Err(e);
    }
    Ok(pid)
}

fn pin(pid: u32, kind: &str, at: &Path) -> Result<(), CriError> {
    std::fs::File::create(at).map_err(io("create", at))?;
    let from = format!("/proc/{pid}/ns/{kind}");
    mount(
        Some(from.as_str()),
        at,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| io("pin namespace on", at)(e.into()))
}

/// Whether `pid` is still the holder whose namespaces are pinned under
/// `dir` (a pid number alone may have been reused since).
pub fn is_holder(pid: u32, dir: &Path) -> bool {
    if pid == 0 {
        return false;
    }
    let kinds = ["user", "pid", "ipc", "uts"];
    let Some(kind) = kinds.iter().find(|k| pin_path(dir, k).exists()) else {
        return false;
    };
    let ours = std::fs::metadata(pin_path(dir, kind)).map(|m| (m.dev(), m.ino()));
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{kind}")).map(|m| (m.dev(), m.ino()));
    matches!((ours, theirs), (Ok(a), Ok(b)) if a == b)
}

/// Stops the holder (SIGKILL; with a PID namespace of its own, every
/// process left in it goes too) if it is still the pod's.
pub fn stop(pid: u32, dir: &Path) {
    if is_holder(pid, dir) {
        kill(pid);
    }
}

fn kill(pid: u32) {
    if let Ok(p) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Unpins every namespace of the pod (they go once nothing uses them).
pub fn unpin(dir: &Path) {
    for kind in ["ipc", "uts", "pid", "user"] {
        let p = pin_path(dir, kind);
        let _ = umount2(&p, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&p);
    }
    let _ = std::fs::remove_dir(dir.join("ns"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_asked_for_what_the_pod_shares() {
        let s = Shared {
            ipc: true,
            hostname: Some("web-0".into()),
            pid: true,
            userns: None,
        };
        assert_eq!(s.args(), ["hold", "--ipc", "--pid", "--hostname", "web-0"]);
        assert_eq!(s.kinds(), ["ipc", "uts", "pid"]);
        let m = idmap::parse("0:1000:100000").unwrap();
        let u = Shared {
            userns: Some((m.clone(), m)),
            ..s
        };
        assert_eq!(
            u.args(),
            [
                "hold",
                "--ipc",
                "--pid",
                "--hostname",
                "web-0",
                "--uidmap",
                "0:1000:100000",
                "--gidmap",
                "0:1000:100000",
                "--net"
            ]
        );
        assert_eq!(u.kinds(), ["user", "net", "ipc", "uts", "pid"]);
        assert_eq!(pin_path(Path::new("/p"), "net"), Path::new("/p/net"));
        assert_eq!(pin_path(Path::new("/p"), "user"), Path::new("/p/ns/user"));
        let host = Shared::default();
        assert!(!host.any());
        assert!(host.kinds().is_empty());
    }

    #[test]
    fn a_pid_without_pinned_namespaces_is_not_a_holder() {
        let d = std::env::temp_dir().join(format!("berth-holder-test-{}", std::process::id()));
        assert!(!is_holder(std::process::id(), &d));
        assert!(!is_holder(0, &d));
    }
}
