//! Cgroups: the host's layout (v1, hybrid, v2) as mounted, and the container's
//! own cgroup directories: created, joined, listed, frozen-checked, removed.
//!
//! The layout is read from /proc/self/mountinfo and /proc/self/cgroup, never
//! assumed. Resource limits are applied by the v1 and v2 modules.

pub mod ebpf;
pub mod v1;
pub mod v2;

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

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
const V1_CONTROLLERS: &[&str] = &[
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
    /// our own cgroup, or None for `<id>` beside... under our own) gets: one per
    /// v1 hierarchy with a known controller, or the one cgroup2 directory on a
    /// pure v2 host.
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
        for h in &self.hierarchies {
            if h.unified != self.is_pure_v2() {
                continue;
            }
            if !h.unified && !h.controllers.iter().any(|c| !c.starts_with("name=")) {
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

fn unescape(s: &str) -> String {
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

/// Creates the container's cgroup directories (and missing parents), copying
/// cpuset values down on v1 so the new group is usable. Returns the ones this
/// call created, which are the ones `delete` will remove.
pub fn create_dirs(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut created = Vec::new();
    for d in dirs {
        create_dir(d, &mut created)?;
    }
    Ok(created)
}

/// Creates `d` and any missing parents, outermost first, adding each new one
/// to `created`. The mkdir comes first: usually only the last level is new.
fn create_dir(d: &Path, created: &mut Vec<PathBuf>) -> Result<(), Error> {
    match fs::create_dir(d) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && d.parent().is_some() => {
            create_dir(d.parent().expect("checked"), created)?;
            return create_dir(d, created);
        }
        Err(err) => {
            return Err(Error::Io {
                what: "create cgroup",
                path: d.to_path_buf(),
                err,
            })
        }
    }
    created.push(d.to_path_buf());
    // v1 only: a v2 cpuset with empty cpus inherits its parent's.
    if d.join("cpuset.cpus").exists() && !d.join("cgroup.controllers").exists() {
        v1::inherit_cpuset(d)?;
    }
    Ok(())
}

/// The v1 `tasks` files of a new process's cgroup directories, opened by the
/// parent before the clone so that the process can move itself.
///
/// A pid written to `cgroup.procs` (or any non-zero pid to `tasks`) makes the
/// kernel take `cgroup_threadgroup_rwsem` for writing, which waits for an RCU
/// grace period: about 10 ms on a quiet host, the largest single cost of a
/// `run`. A thread that writes "0" to `tasks` moves only itself, and the
/// kernel skips that lock. A process that is still single-threaded is
/// thereby moved whole, and its children are born inside.
#[derive(Debug)]
pub struct SelfJoin(Vec<(PathBuf, std::os::fd::OwnedFd)>);

impl SelfJoin {
    /// Opens the `tasks` file of each directory. None on a pure cgroup v2
    /// host, which has no `tasks` files (v2 processes are born in their
    /// cgroup with CLONE_INTO_CGROUP, or added by pid), and where one cannot
    /// be opened (a delegation that handed over `cgroup.procs` alone): then
    /// the parent adds the process by pid, as before.
    pub fn open(layout: &Layout, dirs: &[PathBuf]) -> Option<SelfJoin> {
        if layout.is_pure_v2() {
            return None;
        }
        let files = dirs
            .iter()
            .map(|d| {
                let f = fs::OpenOptions::new().write(true).open(d.join("tasks"));
                f.ok().map(|f| (d.clone(), f.into()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SelfJoin(files))
    }

    /// Moves the calling thread into every directory. Call it from the new
    /// process while it has one thread.
    pub fn join(&self) -> Result<(), Error> {
        for (d, f) in &self.0 {
            nix::unistd::write(f, b"0").map_err(|e| Error::Io {
                what: "join cgroup",
                path: d.clone(),
                err: e.into(),
            })?;
        }
        Ok(())
    }
}

/// Moves `pid` into every directory.
pub fn add_pid(dirs: &[PathBuf], pid: i32) -> Result<(), Error> {
    for d in dirs {
        let f = d.join("cgroup.procs");
        fs::write(&f, pid.to_string()).map_err(|err| Error::Io {
            what: "join cgroup",
            path: d.clone(),
            err,
        })?;
    }
    Ok(())
}

/// The directories an `exec --cgroup` process joins: `spec` is `path` (a
/// sub-cgroup in every hierarchy) or `ctrl[,ctrl]:path` (in those
/// controllers' hierarchies; the others keep the container's own). The
/// sub-cgroup must already exist, as runc requires.
pub fn sub_dirs(layout: &Layout, dirs: &[PathBuf], spec: &str) -> Result<Vec<PathBuf>, Error> {
    let (ctrls, sub) = match spec.split_once(':') {
        Some((c, p)) => (
            c.split(',').filter(|c| !c.is_empty()).collect::<Vec<_>>(),
            p,
        ),
        None => (Vec::new(), spec),
    };
    let rel = Path::new(sub.trim_start_matches('/'));
    if sub.is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(Error::Unsupported(format!(
            "--cgroup {spec:?}: must name a sub-cgroup path without '..'"
        )));
    }
    let mut matched = ctrls.is_empty();
    let mut out = Vec::with_capacity(dirs.len());
    for d in dirs {
        let h = layout.hierarchies.iter().find(|h| d.starts_with(&h.mount));
        let wanted = ctrls.is_empty()
            || h.is_some_and(|h| {
                h.unified || h.controllers.iter().any(|c| ctrls.contains(&c.as_str()))
            });
        if !wanted {
            out.push(d.clone());
            continue;
        }
        matched = true;
        let p = d.join(rel);
        if !p.is_dir() {
            return Err(Error::Io {
                what: "exec --cgroup: no such cgroup",
                path: p,
                err: io::Error::from(io::ErrorKind::NotFound),
            });
        }
        out.push(p);
    }
    if !matched {
        return Err(Error::Unsupported(format!(
            "--cgroup {spec:?}: none of the controllers {ctrls:?} has a hierarchy here"
        )));
    }
    Ok(out)
}

/// Pids in the container's cgroup (from the first directory that has them).
pub fn procs(dirs: &[PathBuf]) -> Vec<i32> {
    for d in dirs {
        if let Ok(s) = fs::read_to_string(d.join("cgroup.procs")) {
            return s.lines().filter_map(|l| l.trim().parse().ok()).collect();
        }
    }
    Vec::new()
}

/// True when the container's cgroup is frozen (v1 freezer or v2 cgroup.freeze).
pub fn is_frozen(dirs: &[PathBuf]) -> bool {
    for d in dirs {
        if let Ok(s) = fs::read_to_string(d.join("freezer.state")) {
            return s.trim() != "THAWED";
        }
        if let Ok(s) = fs::read_to_string(d.join("cgroup.freeze")) {
            return s.trim() == "1";
        }
    }
    false
}

/// Removes directories deepest first. The container's own directories still
/// holding processes are retried briefly (the kernel empties them
/// asynchronously after exit); a parent we created that another container now
/// uses is left in place.
pub fn remove_dirs(dirs: &[PathBuf], leaves: &[PathBuf]) -> Result<(), Error> {
    let mut sorted: Vec<&PathBuf> = dirs.iter().collect();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for d in sorted {
        let mut tries = 0;
        loop {
            match fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e)
                    if !leaves.contains(d)
                        && matches!(
                            e.raw_os_error(),
                            Some(libc::EBUSY) | Some(libc::ENOTEMPTY)
                        ) =>
                {
                    break
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(err) => {
                    return Err(Error::Io {
                        what: "remove cgroup",
                        path: d.clone(),
                        err,
                    })
                }
            }
        }
    }
    Ok(())
}

/// Applies `linux.resources` and the config's device nodes to the
/// container's directories: v1 files or v2 files (with runc's conversions),
/// and the device rules (v1 devices.allow/deny).
pub fn apply(
    layout: &Layout,
    dirs: &[PathBuf],
    res: Option<&oci_spec::runtime::LinuxResources>,
    devices: &[oci_spec::runtime::LinuxDevice],
) -> Result<(), Error> {
    let json = res
        .and_then(|r| serde_json::to_value(r).ok())
        .unwrap_or(serde_json::Value::Null);
    apply_json(layout, dirs, &json)?;
    if !nix::unistd::geteuid().is_root() {
        // Device rules need privilege (CAP_SYS_ADMIN for v1 devices.*, BPF
        // for v2) even in a delegated cgroup. Rootless, the user namespace
        // already bounds devices: no mknod, and host nodes keep their modes.
        crate::debug!("rootless: device cgroup rules skipped");
        return Ok(());
    }
    let mut rules: Vec<(bool, String)> = Vec::new();
    if let Some(list) = res.and_then(|r| r.devices().as_ref()) {
        rules.extend(list.iter().map(v1::device_rule));
    }
    rules.extend(v1::default_allowed().into_iter().map(|r| (true, r)));
    for d in devices {
        let ty = if d.typ() == oci_spec::runtime::LinuxDeviceType::B {
            "b"
        } else {
            "c"
        };
        rules.push((true, format!("{ty} {}:{} rwm", d.major(), d.minor())));
    }
    if layout.is_pure_v2() {
        if let Some(dir) = dirs.first() {
            ebpf::attach(dir, &ebpf::compile(&rules)?)?;
        }
        return Ok(());
    }
    if let Some(h) = layout.v1("devices") {
        if let Some(dir) = dirs.iter().find(|d| d.starts_with(&h.mount)) {
            v1::apply_devices(dir, &rules)?;
        }
    }
    Ok(())
}

/// Applies resources given as OCI JSON (the config's, or `update`'s),
/// everything but devices.
pub fn apply_json(layout: &Layout, dirs: &[PathBuf], res: &serde_json::Value) -> Result<(), Error> {
    let writes = if layout.is_pure_v2() {
        v2::writes(res)?
    } else {
        v1::writes(res)?
    };
    let mut i = 0;
    while i < writes.len() {
        let w = &writes[i];
        match write_one(layout, dirs, w) {
            Ok(()) => i += 1,
            // Raising the limit above memsw (or lowering memsw below it)
            // fails in one order: do the pair in the other.
            Err(_)
                if w.file == "memory.limit_in_bytes"
                    && writes
                        .get(i + 1)
                        .is_some_and(|n| n.file == "memory.memsw.limit_in_bytes") =>
            {
                write_one(layout, dirs, &writes[i + 1])?;
                write_one(layout, dirs, w)?;
                i += 2;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_one(layout: &Layout, dirs: &[PathBuf], w: &Write) -> Result<(), Error> {
    let dir = if layout.is_pure_v2() {
        dirs.first()
    } else {
        layout
            .v1(w.controller)
            .and_then(|h| dirs.iter().find(|d| d.starts_with(&h.mount)))
    };
    let dir = dir.ok_or_else(|| {
        Error::Unsupported(format!(
            "{}: no {} hierarchy for this container here (not mounted as v1; a hybrid host's cgroup2-only controllers are not used)",
            w.field, w.controller
        ))
    })?;
    let (path, value) = match &w.alt {
        Some((alt, v)) if !dir.join(&w.file).exists() && dir.join(alt).exists() => {
            (dir.join(alt), v.as_str())
        }
        _ => (dir.join(&w.file), w.value.as_str()),
    };
    if !path.exists() {
        return Err(Error::Unsupported(format!(
            "{}: {} does not exist (controller {} not enabled, or not supported by this kernel)",
            w.field,
            path.display(),
            w.controller
        )));
    }
    fs::write(&path, value).map_err(|err| Error::Io {
        what: "write",
        path,
        err,
    })
}

/// Converts v1 cpu shares to a v2 cpu weight.
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/sys/fs/cgroup/memory/ci/job/c1"),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c1")
            ]
        );
        let abs = l.container_dirs(Some("/x/y"), "c1").unwrap();
        assert_eq!(abs[0], PathBuf::from("/sys/fs/cgroup/memory/x/y"));
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

/// True when `linux.resources` asks for any limit (device rules aside,
/// which only restrict).
pub fn limits_requested(res: Option<&oci_spec::runtime::LinuxResources>) -> bool {
    let Some(v) = res.and_then(|r| serde_json::to_value(r).ok()) else {
        return false;
    };
    v.as_object().is_some_and(|o| {
        o.iter().any(|(k, v)| {
            k != "devices"
                && !v.is_null()
                && v.as_object().is_none_or(|m| !m.is_empty())
                && v.as_array().is_none_or(|a| !a.is_empty())
        })
    })
}

/// One file write a resource setting turns into: `value` to `file` in the
/// container's directory of `controller` (the unified directory on v2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: String,
    /// (file, value) written instead when `file` does not exist: bfq's blkio
    /// files on v1, plain io.weight (converted range) when io.bfq.weight is absent on v2.
    pub alt: Option<(String, String)>,
    pub value: String,
    /// The config field, for errors.
    pub field: &'static str,
}

impl Write {
    fn new(
        controller: &'static str,
        file: impl Into<String>,
        value: impl ToString,
        field: &'static str,
    ) -> Write {
        Write {
            controller,
            file: file.into(),
            alt: None,
            value: value.to_string(),
            field,
        }
    }

    fn or(mut self, alt: impl Into<String>) -> Write {
        self.alt = Some((alt.into(), self.value.clone()));
        self
    }

    fn or_value(mut self, alt: impl Into<String>, value: impl ToString) -> Write {
        self.alt = Some((alt.into(), value.to_string()));
        self
    }
}

/// The writes v1 and v2 share file names and values for: cpu idle, cpuset
/// cpus and mems, pids.max (0 or less is "max", as runc), rdma.max.
fn shared_writes(r: &serde_json::Value, w: &mut Vec<Write>) {
    let c = &r["cpu"];
    if let Some(v) = c["idle"].as_i64() {
        w.push(Write::new("cpu", "cpu.idle", v, "linux.resources.cpu.idle"));
    }
    for (key, file) in [("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")] {
        if let Some(v) = c[key].as_str().filter(|s| !s.is_empty()) {
            w.push(Write::new(
                "cpuset",
                file,
                v,
                "linux.resources.cpu.cpus/mems",
            ));
        }
    }
    if let Some(v) = r["pids"]["limit"].as_i64() {
        let v = if v > 0 { v.to_string() } else { "max".into() };
        w.push(Write::new(
            "pids",
            "pids.max",
            v,
            "linux.resources.pids.limit",
        ));
    }
    for (dev, l) in r["rdma"].as_object().into_iter().flatten() {
        w.push(Write::new(
            "rdma",
            "rdma.max",
            rdma_line(dev, l),
            "linux.resources.rdma",
        ));
    }
}

/// `rdma.max` line: `<device> hca_handle=N hca_object=M` (max when unset).
fn rdma_line(dev: &str, l: &serde_json::Value) -> String {
    let v = |k: &str| {
        l[k].as_u64()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "max".into())
    };
    format!(
        "{dev} hca_handle={} hca_object={}",
        v("hcaHandles"),
        v("hcaObjects")
    )
}

/// Freezes (or thaws) the container's cgroup and waits until the kernel
/// reports it done: v1 freezer.state, v2 cgroup.freeze and cgroup.events.
pub fn freeze(dirs: &[PathBuf], frozen: bool) -> Result<(), Error> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |err| Error::Io { what, path, err }
    };
    for d in dirs {
        let v1 = d.join("freezer.state");
        if v1.exists() {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            for _ in 0..1000 {
                fs::write(&v1, want).map_err(io("write", &v1))?;
                if fs::read_to_string(&v1).map_err(io("read", &v1))?.trim() == want {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Err(Error::Unsupported(format!(
                "{}: still not {want} after 1s",
                v1.display()
            )));
        }
        let v2 = d.join("cgroup.freeze");
        if v2.exists() {
            fs::write(&v2, if frozen { "1" } else { "0" }).map_err(io("write", &v2))?;
            let events = d.join("cgroup.events");
            let want = if frozen { "frozen 1" } else { "frozen 0" };
            for _ in 0..1000 {
                let ev = fs::read_to_string(&events).map_err(io("read", &events))?;
                if ev.lines().any(|l| l.trim() == want) {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Err(Error::Unsupported(format!(
                "{}: not {want} after 1s",
                events.display()
            )));
        }
    }
    Err(Error::Unsupported(
        "pause/resume: no freezer for this container (v1 freezer controller or cgroup v2 needed)"
            .into(),
    ))
}

fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn read_kv(p: &Path) -> serde_json::Map<String, serde_json::Value> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse::<u64>().ok()?.into()))
        })
        .collect()
}

/// Resource usage as runc's `events --stats` reports it (cpu, memory, pids,
/// blkio), read from whichever of v1 and v2 the container uses.
pub fn stats(layout: &Layout, dirs: &[PathBuf]) -> serde_json::Value {
    use serde_json::json;
    let find = |ctrl: &str| -> Option<&PathBuf> {
        if layout.is_pure_v2() {
            dirs.first()
        } else {
            let h = layout.v1(ctrl)?;
            dirs.iter().find(|d| d.starts_with(&h.mount))
        }
    };
    let mut out = json!({});
    if layout.is_pure_v2() {
        let Some(d) = dirs.first() else { return out };
        let cpu = read_kv(&d.join("cpu.stat"));
        let g = |k: &str| cpu.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        out["cpu"] = json!({
            "usage": {"total": g("usage_usec") * 1000, "kernel": g("system_usec") * 1000, "user": g("user_usec") * 1000},
            "throttling": {"periods": g("nr_periods"), "throttledPeriods": g("nr_throttled"), "throttledTime": g("throttled_usec") * 1000}
        });
        let raw = read_kv(&d.join("memory.stat"));
        let max = fs::read_to_string(d.join("memory.max")).unwrap_or_default();
        out["memory"] = json!({
            "usage": {"usage": read_u64(&d.join("memory.current")).unwrap_or(0),
                      "max": read_u64(&d.join("memory.peak")).unwrap_or(0),
                      "limit": max.trim().parse::<u64>().unwrap_or(u64::MAX)},
            "swap": {"usage": read_u64(&d.join("memory.swap.current")).unwrap_or(0)},
            "raw": raw,
        });
        out["pids"] = json!({"current": read_u64(&d.join("pids.current")).unwrap_or(0),
                             "limit": read_u64(&d.join("pids.max")).unwrap_or(0)});
        return out;
    }
    if let Some(d) = find("cpuacct") {
        let percpu: Vec<u64> = fs::read_to_string(d.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let st = read_kv(&d.join("cpuacct.stat"));
        // USER_HZ ticks to nanoseconds.
        let ticks = |k: &str| st.get(k).and_then(|v| v.as_u64()).unwrap_or(0) * 10_000_000;
        out["cpu"] = json!({"usage": {"total": read_u64(&d.join("cpuacct.usage")).unwrap_or(0),
            "percpu": percpu, "kernel": ticks("system"), "user": ticks("user")}});
    }
    if let Some(d) = find("cpu") {
        let st = read_kv(&d.join("cpu.stat"));
        let g = |k: &str| st.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        out["cpu"]["throttling"] = json!({"periods": g("nr_periods"), "throttledPeriods": g("nr_throttled"), "throttledTime": g("throttled_time")});
    }
    if let Some(d) = find("memory") {
        let m = |f: &str| read_u64(&d.join(f)).unwrap_or(0);
        out["memory"] = json!({
            "usage": {"usage": m("memory.usage_in_bytes"), "max": m("memory.max_usage_in_bytes"),
                      "limit": m("memory.limit_in_bytes"), "failcnt": m("memory.failcnt")},
            "swap": {"usage": m("memory.memsw.usage_in_bytes"), "limit": m("memory.memsw.limit_in_bytes")},
            "raw": read_kv(&d.join("memory.stat")),
        });
    }
    if let Some(d) = find("pids") {
        let max = fs::read_to_string(d.join("pids.max")).unwrap_or_default();
        out["pids"] = json!({"current": read_u64(&d.join("pids.current")).unwrap_or(0),
                             "limit": max.trim().parse::<u64>().unwrap_or(0)});
    }
    out
}

/// How many times the kernel OOM-killed in the container's cgroup so far.
pub fn oom_kills(layout: &Layout, dirs: &[PathBuf]) -> u64 {
    let dir = if layout.is_pure_v2() {
        dirs.first()
    } else {
        layout
            .v1("memory")
            .and_then(|h| dirs.iter().find(|d| d.starts_with(&h.mount)))
    };
    let Some(d) = dir else { return 0 };
    let file = if layout.is_pure_v2() {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    read_kv(&d.join(file))
        .get("oom_kill")
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

/// Current memory usage, for `update`'s checkBeforeUpdate.
pub fn memory_usage(layout: &Layout, dirs: &[PathBuf]) -> Option<u64> {
    if layout.is_pure_v2() {
        return read_u64(&dirs.first()?.join("memory.current"));
    }
    let h = layout.v1("memory")?;
    read_u64(
        &dirs
            .iter()
            .find(|d| d.starts_with(&h.mount))?
            .join("memory.usage_in_bytes"),
    )
}
