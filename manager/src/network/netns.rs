//! Network namespaces berthd owns: made before a container's task (so the
//! runtime joins them by path), kept alive by a bind mount of the nsfs file,
//! removed when the task is deleted. A new namespace gets its loopback up,
//! as docker's `--net none` has it.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// A network namespace operation failure.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct NetnsError {
    /// The step.
    pub what: &'static str,
    /// The namespace file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

fn err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NetnsError {
    let path = path.to_path_buf();
    move |source| NetnsError { what, path, source }
}

/// Makes a new network namespace with `lo` up, pinned at `path`.
pub fn create(path: &Path) -> Result<(), NetnsError> {
    pin_with(path, "create network namespace", |p| {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| err("unshare network for", p)(e.into()))?;
        bind("/proc/thread-self/ns/net", p)
    })
}

/// Pins the network namespace of process `pid` (one made inside a pod's
/// user namespace, which berthd cannot make itself) at `path`, with `lo` up.
pub fn adopt(pid: u32, path: &Path) -> Result<(), NetnsError> {
    pin_with(path, "adopt network namespace", move |p| {
        bind(&format!("/proc/{pid}/ns/net"), p)?;
        let ns = std::fs::File::open(p).map_err(err("open", p))?;
        nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
            .map_err(|e| err("enter network namespace", p)(e.into()))
    })
}

fn bind(from: &str, at: &Path) -> Result<(), NetnsError> {
    mount(Some(from), at, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| err("bind network namespace on", at)(e.into()))
}

/// Makes the file `path`, then in a fresh thread runs `enter` (which pins a
/// namespace there and leaves the thread in it) and brings `lo` up. The
/// thread ends, so no pooled thread is left in the namespace (setns and
/// unshare of a network namespace change only the calling thread). On
/// failure the pin goes.
fn pin_with(
    path: &Path,
    what: &'static str,
    enter: impl FnOnce(&Path) -> Result<(), NetnsError> + Send + 'static,
) -> Result<(), NetnsError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err("create", dir))?;
    }
    std::fs::File::create(path).map_err(err("create", path))?;
    let p = path.to_path_buf();
    let r = std::thread::spawn(move || -> Result<(), NetnsError> {
        enter(&p)?;
        crate::sys::loopback_up().map_err(|e| err("bring lo up in", &p)(e.into()))
    })
    .join()
    .unwrap_or_else(|_| {
        Err(NetnsError {
            what,
            path: path.to_path_buf(),
            source: std::io::Error::other("thread panicked"),
        })
    });
    if r.is_err() {
        let _ = remove(path);
    }
    r
}

/// Unpins and removes a namespace file (nothing to do when it is gone).
pub fn remove(path: &Path) -> Result<(), NetnsError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(err("unmount", path)(e.into())),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err("remove", path)(e)),
        _ => Ok(()),
    }
}
