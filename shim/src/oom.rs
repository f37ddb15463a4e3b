//! Notices the kernel OOM-killing in a container's memory cgroup: on cgroup v1
//! through an eventfd registered on `memory.oom_control`, on v2 by watching
//! `memory.events` with inotify and comparing its `oom_kill` count.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::io::AsyncFdIo;

/// Where a process's memory cgroup is, and of which kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryCgroup {
    /// A v1 memory controller directory.
    V1(PathBuf),
    /// A v2 (unified) cgroup directory.
    V2(PathBuf),
}

/// Finds the memory cgroup of `pid` from `/proc/<pid>/cgroup` and the shim's
/// mount table; `None` where there is no memory controller.
pub fn memory_cgroup(pid: u32) -> Option<MemoryCgroup> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    resolve(&cgroup, &mountinfo)
}

/// The parsing behind [`memory_cgroup`].
fn resolve(cgroup: &str, mountinfo: &str) -> Option<MemoryCgroup> {
    // (root, mount point) of the v1 memory hierarchy and of cgroup2.
    let mut v1 = None;
    let mut v2 = None;
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (Some(fstype), Some(opts)) = (f.get(sep + 1), f.get(sep + 3)) else {
            continue;
        };
        let (root, point) = (f[3], f[4]);
        match *fstype {
            "cgroup" if opts.split(',').any(|o| o == "memory") => v1 = Some((root, point)),
            "cgroup2" => v2 = Some((root, point)),
            _ => {}
        }
    }
    let under = |(root, point): (&str, &str), path: &str| {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(path)
            .trim_start_matches('/');
        Path::new(point).join(rel)
    };
    for line in cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        if ctrls.split(',').any(|c| c == "memory") {
            return v1.map(|m| MemoryCgroup::V1(under(m, path)));
        }
    }
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = under(v2?, path);
    dir.join("memory.events")
        .exists()
        .then_some(MemoryCgroup::V2(dir))
}

/// Calls `on_oom` for each OOM kill in `cg` until the cgroup goes away.
pub async fn watch(cg: MemoryCgroup, on_oom: impl Fn()) -> io::Result<()> {
    match cg {
        MemoryCgroup::V1(dir) => {
            let efd: OwnedFd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC)?.into();
            let ctl = std::fs::File::open(dir.join("memory.oom_control"))?;
            std::fs::write(
                dir.join("cgroup.event_control"),
                format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd()),
            )?;
            let efd = AsyncFdIo::new(efd)?;
            let mut buf = [0u8; 8];
            loop {
                efd.read(&mut buf).await?;
                // The eventfd also fires when the cgroup is removed.
                if !dir.exists() {
                    return Ok(());
                }
                on_oom();
            }
        }
        MemoryCgroup::V2(dir) => {
            let ino = Inotify::init(InitFlags::IN_CLOEXEC)?;
            let events = dir.join("memory.events");
            ino.add_watch(&events, AddWatchFlags::IN_MODIFY)?;
            let ino: OwnedFd = ino.into();
            let ino = AsyncFdIo::new(ino)?;
            let mut seen = oom_kills(&events).unwrap_or(0);
            let mut buf = [0u8; 1024];
            loop {
                ino.read(&mut buf).await?;
                let Some(now) = oom_kills(&events) else {
                    return Ok(());
                };
                for _ in seen..now {
                    on_oom();
                }
                seen = seen.max(now);
            }
        }
    }
}

/// How many OOM kills the cgroup has seen (v1's `memory.oom_control` has
/// the count since Linux 4.13; v2's `memory.events`); read when the init
/// exits, so a kill the watcher has not reported yet is not missed.
pub fn kills(cg: &MemoryCgroup) -> Option<u64> {
    match cg {
        MemoryCgroup::V1(dir) => oom_kills(&dir.join("memory.oom_control")),
        MemoryCgroup::V2(dir) => oom_kills(&dir.join("memory.events")),
    }
}

fn oom_kills(events: &Path) -> Option<u64> {
    let s = std::fs::read_to_string(events).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn v1_memory_wins_on_a_hybrid_host() {
        let cg = "12:memory:/user/c1\n4:cpu,cpuacct:/user/c1\n0::/user\n";
        assert_eq!(
            resolve(cg, HYBRID),
            Some(MemoryCgroup::V1("/sys/fs/cgroup/memory/user/c1".into()))
        );
    }

    #[test]
    fn no_memory_controller_means_no_watch() {
        let mi = "26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        // memory.events does not exist under this made-up path.
        assert_eq!(resolve("0::/no/such/berth/cgroup\n", mi), None);
        assert_eq!(resolve("12:memory:/c\n", ""), None);
    }
}
