//! A pod's own cgroup for its resources and overhead, when berthd places
//! the pod itself. kubelet gives a pod its cgroup parent (`/kubepods/...`)
//! and sizes it with the pod's resources plus its overhead itself; a pod
//! run without one (crictl, a test) that still names resources or an
//! overhead gets `/berth/k8s.io/pod<id>` (cgroupfs driver), its containers
//! below it, with those limits written once its first container's cgroup
//! exists, and removed with the pod.

use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;

use super::NAMESPACE;

/// The limits of a pod's own cgroup: its resources plus its overhead.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodLimits {
    /// Bytes (None: unlimited).
    pub memory: Option<i64>,
    /// CFS quota and period, microseconds (None: unlimited).
    pub cpu_max: Option<(i64, i64)>,
    /// v1 shares (None: the default).
    pub shares: Option<u64>,
}

/// A cgroup file to write: (v1 controller, file name, value).
pub type Write = (&'static str, &'static str, String);

/// The pod's limits, or None when neither resources nor overhead set any.
/// An unlimited resource stays unlimited whatever the overhead.
pub fn limits(c: &cri::PodSandboxConfig) -> Option<PodLimits> {
    let linux = c.linux.as_ref()?;
    let r = linux.resources.clone().unwrap_or_default();
    let o = linux.overhead.clone().unwrap_or_default();
    let memory = (r.memory_limit_in_bytes > 0).then(|| {
        r.memory_limit_in_bytes
            .saturating_add(o.memory_limit_in_bytes.max(0))
    });
    let period = if r.cpu_period > 0 {
        r.cpu_period
    } else {
        100_000
    };
    let scaled = |quota: i64, p: i64| {
        if p > 0 && p != period {
            quota.saturating_mul(period) / p
        } else {
            quota
        }
    };
    let cpu_max = (r.cpu_quota > 0).then(|| {
        let extra = if o.cpu_quota > 0 {
            scaled(o.cpu_quota, o.cpu_period)
        } else {
            0
        };
        (r.cpu_quota.saturating_add(extra), period)
    });
    let shares = (r.cpu_shares > 0).then(|| {
        u64::try_from(r.cpu_shares.saturating_add(o.cpu_shares.max(0))).unwrap_or(u64::MAX)
    });
    let l = PodLimits {
        memory,
        cpu_max,
        shares,
    };
    (l != PodLimits::default()).then_some(l)
}

/// The cgroup parent of a pod berthd places itself.
pub fn parent(pod_id: &str) -> String {
    format!("/berth/{NAMESPACE}/pod{pod_id}")
}

/// What to write for `l`, on cgroup v1 or v2 (shares become a weight as
/// runc converts them).
pub fn writes(l: &PodLimits, v2: bool) -> Vec<Write> {
    let mut w = Vec::new();
    if let Some(m) = l.memory {
        w.push(if v2 {
            ("memory", "memory.max", m.to_string())
        } else {
            ("memory", "memory.limit_in_bytes", m.to_string())
        });
    }
    if let Some((quota, period)) = l.cpu_max {
        if v2 {
            w.push(("cpu", "cpu.max", format!("{quota} {period}")));
        } else {
            // The period first: a quota is checked against the period in force.
            w.push(("cpu", "cpu.cfs_period_us", period.to_string()));
            w.push(("cpu", "cpu.cfs_quota_us", quota.to_string()));
        }
    }
    if let Some(s) = l.shares {
        w.push(if v2 {
            let s = s.clamp(2, 262_144);
            (
                "cpu",
                "cpu.weight",
                (1 + ((s - 2) * 9999) / 262_142).to_string(),
            )
        } else {
            ("cpu", "cpu.shares", s.to_string())
        });
    }
    w
}

/// The cgroup filesystems: the v2 mount (pure v2) or each v1 controller's.
fn hierarchies() -> (Option<PathBuf>, Vec<(String, PathBuf)>) {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v2 = None;
    let mut v1 = Vec::new();
    for line in mi.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = left.split(' ').nth(4).unwrap_or_default();
        let mut r = right.split(' ');
        let (fstype, _src, opts) = (r.next(), r.next(), r.next().unwrap_or_default());
        match fstype {
            Some("cgroup2") if mount_point == "/sys/fs/cgroup" => {
                v2 = Some(PathBuf::from(mount_point))
            }
            Some("cgroup") => {
                for o in opts.split(',') {
                    v1.push((o.to_string(), PathBuf::from(mount_point)));
                }
            }
            _ => {}
        }
    }
    (v2, v1)
}

/// The directories of cgroup `path` (e.g. `/berth/k8s.io/pod<id>`) that the
/// writes of `writes` go to, per controller, and whether it is v2.
fn dirs(path: &str) -> (bool, Vec<(String, PathBuf)>) {
    let rel = path.trim_start_matches('/');
    match hierarchies() {
        (Some(root), _) => (true, vec![(String::new(), root.join(rel))]),
        (None, v1) => (
            false,
            v1.into_iter()
                .filter(|(c, _)| c == "memory" || c == "cpu")
                .map(|(c, m)| (c, m.join(rel)))
                .collect(),
        ),
    }
}

/// Writes the pod's limits into its cgroup `path` (its directories exist
/// once a container of the pod was created below it).
pub fn apply(path: &str, l: &PodLimits) -> std::io::Result<()> {
    let (v2, dirs) = dirs(path);
    for (controller, file, value) in writes(l, v2) {
        let dir = dirs
            .iter()
            .find(|(c, _)| v2 || c == controller)
            .map(|(_, d)| d.as_path());
        let Some(dir) = dir else { continue };
        let f = dir.join(file);
        std::fs::write(&f, &value).map_err(|e| {
            std::io::Error::new(e.kind(), format!("write {value} to {}: {e}", f.display()))
        })?;
    }
    Ok(())
}

/// Removes the pod's cgroup directories (after its containers').
pub fn remove(path: &str) {
    let rel = path.trim_start_matches('/');
    let (v2, v1) = hierarchies();
    let roots: Vec<PathBuf> = v2
        .into_iter()
        .chain(v1.into_iter().map(|(_, m)| m))
        .collect();
    for root in roots {
        let d: &Path = &root.join(rel);
        let _ = std::fs::remove_dir(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(
        r: cri::LinuxContainerResources,
        o: cri::LinuxContainerResources,
    ) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            linux: Some(cri::LinuxPodSandboxConfig {
                resources: Some(r),
                overhead: Some(o),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn resources_plus_overhead_are_the_pods_limits() {
        let l = limits(&pod(
            cri::LinuxContainerResources {
                memory_limit_in_bytes: 64 << 20,
                cpu_quota: 50_000,
                cpu_period: 100_000,
                cpu_shares: 512,
                ..Default::default()
            },
            cri::LinuxContainerResources {
                memory_limit_in_bytes: 16 << 20,
                // 10 ms every 50 ms is 20 ms every 100 ms.
                cpu_quota: 10_000,
                cpu_period: 50_000,
                cpu_shares: 128,
                ..Default::default()
            },
        ))
        .unwrap();
        assert_eq!(l.memory, Some(80 << 20));
        assert_eq!(l.cpu_max, Some((70_000, 100_000)));
        assert_eq!(l.shares, Some(640));
        assert_eq!(
            writes(&l, false),
            [
                ("memory", "memory.limit_in_bytes", (80i64 << 20).to_string()),
                ("cpu", "cpu.cfs_period_us", "100000".into()),
                ("cpu", "cpu.cfs_quota_us", "70000".into()),
                ("cpu", "cpu.shares", "640".into()),
            ]
        );
        assert_eq!(
            writes(&l, true),
            [
                ("memory", "memory.max", (80i64 << 20).to_string()),
                ("cpu", "cpu.max", "70000 100000".into()),
                ("cpu", "cpu.weight", "25".into()),
            ]
        );
    }

    #[test]
    fn unlimited_stays_unlimited_and_nothing_set_is_no_cgroup() {
        // An overhead alone limits nothing: the pod's own use is unbounded.
        let l = limits(&pod(
            Default::default(),
            cri::LinuxContainerResources {
                memory_limit_in_bytes: 16 << 20,
                ..Default::default()
            },
        ));
        assert_eq!(l, None);
        assert_eq!(limits(&cri::PodSandboxConfig::default()), None);
        assert_eq!(parent("abc"), "/berth/k8s.io/podabc");
    }
}
