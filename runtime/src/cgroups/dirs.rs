//! The container's cgroup directories: made, joined (by the process itself
//! or by pid), listed, removed deepest first.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::*;

/// Creates the container's cgroup directories (and missing parents), copying
/// cpuset values down on v1 so the new group is usable. Returns the ones this
/// call created, which are the ones `delete` will remove.
pub fn create_dirs(layout: &Layout, dirs: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut created = Vec::new();
    // A hybrid host's cgroup2 hierarchy is joined for its bookkeeping, not
    // its controllers: its levels get none enabled (its root is the host's).
    let enable = layout.is_pure_v2();
    for d in dirs {
        create_dir(d, enable, &mut created)?;
        // v1 cpuset (v2 inherits by itself): an empty level refuses tasks.
        if d.join("cpuset.cpus").exists() && !d.join("cgroup.controllers").exists() {
            v1::inherit_cpuset(d)?;
        }
    }
    Ok(created)
}

/// Creates `d` and any missing parents, outermost first, adding each new one
/// to `created`. The mkdir comes first: usually only the last level is new.
pub(super) fn create_dir(d: &Path, enable: bool, created: &mut Vec<PathBuf>) -> Result<(), Error> {
    match fs::create_dir(d) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && d.parent().is_some() => {
            create_dir(d.parent().expect("checked"), enable, created)?;
            return create_dir(d, enable, created);
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
    if enable {
        if let Some(parent) = d.parent() {
            enable_controllers(parent);
        }
    }
    Ok(())
}

/// On v2, gives the children of `parent` every controller `parent` has, as
/// runc does for each level it makes: without it a cgroup two levels below
/// the delegation point has no memory, pids or io files (its limits cannot
/// be set, its stats read as nothing). One write per controller, errors
/// ignored: a parent with processes of its own refuses all (the kernel's
/// no-internal-process rule), and that is its owner's setup to keep.
fn enable_controllers(parent: &Path) {
    let Ok(available) = fs::read_to_string(parent.join("cgroup.controllers")) else {
        return; // v1
    };
    let enabled = fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
    for c in available.split_whitespace() {
        if !enabled.split_whitespace().any(|e| e == c) {
            let _ = fs::write(parent.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
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
    /// Opens the `tasks` file of each v1 directory. None on a pure cgroup
    /// v2 host, which has no `tasks` files (v2 processes are born in their
    /// cgroup with CLONE_INTO_CGROUP, or added by pid), and where one cannot
    /// be opened (a delegation that handed over `cgroup.procs` alone): then
    /// the parent adds the process by pid, as before. A hybrid host's
    /// cgroup2 directory is left to the caller in the same two ways.
    pub fn open(layout: &Layout, dirs: &[PathBuf]) -> Option<SelfJoin> {
        if layout.is_pure_v2() {
            return None;
        }
        let files = dirs
            .iter()
            .filter(|d| Some(*d) != unified_dir(layout, dirs))
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

/// The cgroup2 directory among the container's (the only one on a pure v2
/// host, the last on a hybrid one).
pub fn unified_dir<'a>(layout: &Layout, dirs: &'a [PathBuf]) -> Option<&'a PathBuf> {
    let u = layout.unified()?;
    dirs.iter().find(|d| d.starts_with(&u.mount))
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

/// Pids in the container's cgroup and the sub-cgroups its processes made
/// (from the first directory that has them), as runc's `ps` and `kill --all`
/// see them.
pub fn procs(dirs: &[PathBuf]) -> Vec<i32> {
    for d in dirs {
        if d.join("cgroup.procs").exists() {
            let mut out = Vec::new();
            for dir in std::iter::once(d.clone()).chain(sub_cgroups(d)) {
                if let Ok(s) = fs::read_to_string(dir.join("cgroup.procs")) {
                    out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            }
            return out;
        }
    }
    Vec::new()
}

/// Every cgroup below `d`, deepest first.
pub fn sub_cgroups(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(sub_cgroups(&e.path()));
                out.push(e.path());
            }
        }
    }
    out
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

/// Removes directories deepest first, the container's sub-cgroups before
/// them. The container's own directories still holding processes are
/// retried briefly (the kernel empties them
/// asynchronously after exit); a parent we created that another container now
/// uses is left in place.
pub fn remove_dirs(dirs: &[PathBuf], leaves: &[PathBuf]) -> Result<(), Error> {
    let mut sorted: Vec<&PathBuf> = dirs.iter().collect();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for d in sorted {
        remove_one(d, leaves.contains(d))?;
    }
    Ok(())
}

/// Removes one directory. A container's own (`leaf`) is retried while the
/// kernel empties it; when it is busy, the sub-cgroups its processes made
/// go first, deepest first, as runc removes them (looked for only then: a
/// directory scan per hierarchy on every delete otherwise).
fn remove_one(d: &Path, leaf: bool) -> Result<(), Error> {
    let mut tries = 0;
    let mut subs_gone = false;
    loop {
        match fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if !leaf
                    && matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) =>
            {
                return Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && !subs_gone => {
                subs_gone = true;
                for sub in sub_cgroups(d) {
                    remove_one(&sub, true)?;
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(err) => {
                return Err(Error::Io {
                    what: "remove cgroup",
                    path: d.to_path_buf(),
                    err,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v2_parent_gives_its_children_its_controllers() {
        let d = std::env::temp_dir().join(format!("berth-enable-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        fs::write(d.join("cgroup.subtree_control"), "cpu\n").unwrap();
        enable_controllers(&d);
        // A plain file keeps the last write (the kernel's adds each); "cpu"
        // was on already and is not written again.
        assert_eq!(
            fs::read_to_string(d.join("cgroup.subtree_control")).unwrap(),
            "+pids"
        );
        // v1 (no cgroup.controllers): nothing written.
        let v1 = d.join("v1");
        fs::create_dir_all(&v1).unwrap();
        enable_controllers(&v1);
        assert!(!v1.join("cgroup.subtree_control").exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
