//! Where a container's cgroups go: the host's hierarchies (v1 per
//! controller, v2 unified, hybrid) from /proc/self/mountinfo, and
//! `linux.cgroupsPath` placed in them.

use std::fs;
use std::path::{Component, Path, PathBuf};

use super::*;

/// One mounted cgroup hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// Mount point on the host, e.g. /sys/fs/cgroup/memory.
    pub mount: PathBuf,
    /// The cgroup path (inside the hierarchy) that the mount's root shows.
    pub root: String,
    /// Controllers on a v1 hierarchy (`cpu`, `cpuacct`, `name=systemd`); empty for v2.
    pub controllers: Vec<String>,
    /// True for cgroup2.
    pub unified: bool,
}

/// The host's cgroup hierarchies and this process's place in each.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub hierarchies: Vec<Hierarchy>,
    /// (hierarchy id, controllers, path) from /proc/self/cgroup.
    pub own: Vec<(u32, Vec<String>, String)>,
}

/// v1 controllers a container gets its own cgroup in.
pub(super) const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "pids",
    "blkio",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
];

impl Layout {
    /// Reads the layout of the calling process.
    pub fn detect() -> Result<Layout, Error> {
        let mi = fs::read_to_string("/proc/self/mountinfo").map_err(|err| Error::Io {
            what: "read",
            path: "/proc/self/mountinfo".into(),
            err,
        })?;
        let cg = fs::read_to_string("/proc/self/cgroup").map_err(|err| Error::Io {
            what: "read",
            path: "/proc/self/cgroup".into(),
            err,
        })?;
        Ok(Layout::parse(&mi, &cg))
    }

    /// Parses mountinfo and /proc/self/cgroup text.
    pub fn parse(mountinfo: &str, self_cgroup: &str) -> Layout {
        let mut hierarchies = Vec::new();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let fstype = post[0];
            let root = unescape(pre[3]);
            let mount = PathBuf::from(unescape(pre[4]));
            match fstype {
                "cgroup2" => hierarchies.push(Hierarchy {
                    mount,
                    root,
                    controllers: vec![],
                    unified: true,
                }),
                "cgroup" => {
                    let controllers: Vec<String> = post[2]
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(String::from)
                        .collect();
                    // Keep the first mount of each hierarchy.
                    if !hierarchies
                        .iter()
                        .any(|h: &Hierarchy| !h.unified && h.controllers == controllers)
                    {
                        hierarchies.push(Hierarchy {
                            mount,
                            root,
                            controllers,
                            unified: false,
                        });
                    }
                }
                _ => {}
            }
        }
        let own = self_cgroup
            .lines()
            .filter_map(|l| {
                let mut it = l.splitn(3, ':');
                let id = it.next()?.parse().ok()?;
                let ctrls = it
                    .next()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                Some((id, ctrls, it.next()?.to_string()))
            })
            .collect();
        Layout { hierarchies, own }
    }

    /// True when only cgroup2 is mounted (no v1 controller hierarchies).
    pub fn is_pure_v2(&self) -> bool {
        self.hierarchies
            .iter()
            .any(|h| h.unified && h.mount == Path::new("/sys/fs/cgroup"))
            || (!self.hierarchies.is_empty() && self.hierarchies.iter().all(|h| h.unified))
    }

    /// The v1 hierarchy holding `controller`.
    pub fn v1(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies
            .iter()
            .find(|h| !h.unified && h.controllers.iter().any(|c| c == controller))
    }

    /// The cgroup2 hierarchy, if mounted.
    pub fn unified(&self) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.unified)
    }

    /// This process's cgroup path in hierarchy `h`.
    fn own_path(&self, h: &Hierarchy) -> String {
        let found = self.own.iter().find(|(id, ctrls, _)| {
            if h.unified {
                *id == 0 && ctrls.is_empty()
            } else {
                !ctrls.is_empty() && ctrls.iter().all(|c| h.controllers.contains(c))
            }
        });
        found
            .map(|(_, _, p)| p.clone())
            .unwrap_or_else(|| "/".into())
    }

    /// The directories a container with `cgroups_path` (absolute, relative to
    /// our own cgroup, or None for `<id>` under our own) gets: the one cgroup2
    /// directory on a pure v2 host; else one per v1 hierarchy (named ones
    /// such as `name=systemd` too) and, on a hybrid host, the cgroup2 one
    /// last, as runc joins them all.
    pub fn container_dirs(
        &self,
        cgroups_path: Option<&str>,
        id: &str,
    ) -> Result<Vec<PathBuf>, Error> {
        let rel = cgroups_path.unwrap_or(id);
        if Path::new(rel)
            .components()
            .any(|c| c == Component::ParentDir)
        {
            return Err(Error::BadPath(rel.to_string()));
        }
        let mut out = Vec::new();
        let pure = self.is_pure_v2();
        // v1 hierarchies first: code that looks for the first directory
        // with a file (freezer.state, cgroup.procs) finds the v1 one.
        let order = self
            .hierarchies
            .iter()
            .filter(|h| !h.unified && !pure)
            .chain(self.hierarchies.iter().filter(|h| h.unified).take(1));
        for h in order {
            if !h.unified && h.controllers.is_empty() {
                continue;
            }
            let full = if rel.starts_with('/') {
                rel.to_string()
            } else {
                format!("{}/{}", self.own_path(h), rel)
            };
            // The mount shows the hierarchy from `h.root` down.
            let inside = full
                .strip_prefix(h.root.trim_end_matches('/'))
                .unwrap_or(&full);
            let mut p = h.mount.clone();
            for c in Path::new(inside).components() {
                if let Component::Normal(n) = c {
                    p.push(n);
                }
            }
            out.push(p);
        }
        Ok(out)
    }
}

pub(super) fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
