//! Cgroups: the host's layout (v1, hybrid, v2) as mounted, and the container's
//! own cgroup directories: created, joined, listed, frozen-checked, removed.
//!
//! The layout is read from /proc/self/mountinfo and /proc/self/cgroup, never
//! assumed. Resource limits are applied by the v1 and v2 modules.

mod apply;
mod dirs;
pub mod ebpf;
mod freeze;
mod layout;
mod stats;
pub mod systemd;
pub mod v1;
pub mod v2;

pub use apply::*;
pub use dirs::*;
pub use freeze::*;
pub use layout::*;
pub use stats::*;

use std::io;
use std::path::PathBuf;

/// Errors of cgroup handling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {path}: {err}")]
    Io {
        what: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    #[error("linux.cgroupsPath {0:?}: must not contain '..'")]
    BadPath(String),
    #[error("{0}")]
    Unsupported(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    const HYBRID_MI: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 30 0:30 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct
";
    const HYBRID_CG: &str = "4:memory:/ci/job\n3:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n";

    #[test]
    fn self_join_writes_zero_to_each_tasks_file_or_leaves_it_to_the_parent() {
        let base = std::env::temp_dir().join(format!("berth-selfjoin-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        let hybrid = Layout::parse(HYBRID_MI, HYBRID_CG);
        let v2 = Layout::parse(
            "25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
            "0::/\n",
        );
        let dirs = [a.clone(), b.clone()];
        // No tasks file in b: the parent adds the pid instead.
        fs::write(a.join("tasks"), "").unwrap();
        assert!(SelfJoin::open(&hybrid, &dirs).is_none());
        fs::write(b.join("tasks"), "").unwrap();
        assert!(SelfJoin::open(&v2, &dirs).is_none());
        let j = SelfJoin::open(&hybrid, &dirs).unwrap();
        j.join().unwrap();
        for d in &dirs {
            assert_eq!(fs::read_to_string(d.join("tasks")).unwrap(), "0");
        }
        // A hybrid host's cgroup2 directory has no tasks file: it is left
        // out (the process is born in it, or added by pid).
        let unified = PathBuf::from("/sys/fs/cgroup/unified/c1");
        assert!(SelfJoin::open(&hybrid, &[a.clone(), unified]).is_some());
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn hybrid_layout() {
        let l = Layout::parse(HYBRID_MI, HYBRID_CG);
        assert!(!l.is_pure_v2());
        assert_eq!(
            l.v1("cpuacct").unwrap().mount,
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert!(l.unified().is_some());
        let dirs = l.container_dirs(None, "c1").unwrap();
        // Every v1 hierarchy, named ones too, then the cgroup2 one, as runc
        // joins them on a hybrid host.
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/sys/fs/cgroup/systemd/c1"),
                PathBuf::from("/sys/fs/cgroup/memory/ci/job/c1"),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c1"),
                PathBuf::from("/sys/fs/cgroup/unified/c1"),
            ]
        );
        assert_eq!(
            unified_dir(&l, &dirs),
            Some(&PathBuf::from("/sys/fs/cgroup/unified/c1"))
        );
        let abs = l.container_dirs(Some("/x/y"), "c1").unwrap();
        assert_eq!(abs[1], PathBuf::from("/sys/fs/cgroup/memory/x/y"));
        assert!(l.container_dirs(Some("../../etc"), "c1").is_err());
    }

    #[test]
    fn pure_v2_layout() {
        let mi = "25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let l = Layout::parse(mi, "0::/user/a\n");
        assert!(l.is_pure_v2());
        assert_eq!(
            l.container_dirs(None, "c").unwrap(),
            vec![PathBuf::from("/sys/fs/cgroup/user/a/c")]
        );
    }

    #[test]
    fn shares_convert_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
