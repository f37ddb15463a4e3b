//! Idmapped rootfs layers for a pod with a user namespace: an overlay mount
//! whose options carry containerd's `uidmap=`/`gidmap=` gets each lower
//! layer through an idmapped mount, so files owned by root in the image are
//! owned by the pod's mapped root, and the upper directory is given to that
//! root. Linux cannot idmap an overlay mount itself, but overlayfs takes
//! idmapped layers; once mounted it holds its own references to them, so
//! the idmapped copies are detached right after (as containerd does).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_rules::idmap::{self, IdMap, UserMaps};
use nix::fcntl::{open, OFlag};
use nix::mount::{umount2, MntFlags};
use nix::sys::stat::Mode;

use crate::sys;

/// A failure to prepare idmapped layers.
#[derive(Debug, thiserror::Error)]
pub enum IdmapError {
    /// A `uidmap=`/`gidmap=` option is malformed or missing its pair.
    #[error("overlay mount options: {0}")]
    Options(String),
    /// A step failed on an object.
    #[error("{what}: {source}")]
    Sys {
        /// The step, with its object.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

fn sys_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> IdmapError {
    let what = what.into();
    move |source| IdmapError::Sys { what, source }
}

/// The uid and gid mappings of a mount's options, taken out of them
/// (`None` when the options have neither).
pub fn take_maps(options: &mut Vec<String>) -> Result<Option<UserMaps>, IdmapError> {
    let mut uid = None;
    let mut gid = None;
    let mut rest = Vec::with_capacity(options.len());
    for o in options.drain(..) {
        if let Some(v) = o.strip_prefix("uidmap=") {
            uid = Some(idmap::parse(v).map_err(|e| IdmapError::Options(e.to_string()))?);
        } else if let Some(v) = o.strip_prefix("gidmap=") {
            gid = Some(idmap::parse(v).map_err(|e| IdmapError::Options(e.to_string()))?);
        } else {
            rest.push(o);
        }
    }
    *options = rest;
    match (uid, gid) {
        (None, None) => Ok(None),
        (Some(u), Some(g)) => Ok(Some((u, g))),
        _ => Err(IdmapError::Options(
            "uidmap and gidmap come together: an idmapped rootfs needs both".into(),
        )),
    }
}

/// A user namespace with these mappings, held by nothing but the returned
/// fd: a child is cloned into it, the maps written, the child let go.
pub fn userns_with(uid: &[IdMap], gid: &[IdMap]) -> Result<OwnedFd, IdmapError> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| sys_err("pipe")(e.into()))?;
    let pid = sys::spawn_userns_waiter(r.as_fd(), w.as_fd())
        .map_err(sys_err("clone a user namespace"))?;
    drop(r);
    let res = (|| {
        let w = |name: &str, text: String| {
            let p = format!("/proc/{pid}/{name}");
            std::fs::write(&p, text).map_err(sys_err(format!("write {p}")))
        };
        w("uid_map", idmap::proc_text(uid))?;
        w("gid_map", idmap::proc_text(gid))?;
        let p = format!("/proc/{pid}/ns/user");
        open(
            p.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys_err(format!("open {p}"))(e.into()))
    })();
    // The child leaves when its pipe closes; reap it.
    drop(w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    res
}

/// Binds `src` on the directory `target` through an idmapped mount (a
/// rootfs of one directory, as a scratch image's).
pub fn bind(src: &Path, target: &OwnedFd, userns: &OwnedFd) -> Result<(), IdmapError> {
    let tree = idmapped_tree(src, userns)?;
    sys::move_mount_onto(tree.as_fd(), target.as_fd()).map_err(sys_err(format!(
        "idmapped bind of {}: attach",
        src.display()
    )))
}

fn idmapped_tree(src: &Path, userns: &OwnedFd) -> Result<OwnedFd, IdmapError> {
    let what = |w: &str| format!("idmapped mount of {}: {w}", src.display());
    let tree = sys::open_tree_clone(src).map_err(sys_err(what("open_tree")))?;
    sys::mount_setattr_idmap(tree.as_fd(), userns.as_fd()).map_err(|e| {
        let why = if e.raw_os_error() == Some(libc::EINVAL) {
            " (its filesystem does not support idmapped mounts on this kernel)"
        } else {
            ""
        };
        IdmapError::Sys {
            what: what(&format!("set MOUNT_ATTR_IDMAP{why}")),
            source: e,
        }
    })?;
    Ok(tree)
}

/// Whether the filesystem at `path` takes idmapped mounts (what a pod with
/// a user namespace needs of the layers' filesystem): an idmapped clone of
/// it is made and dropped.
pub fn check(path: &Path) -> Result<(), IdmapError> {
    let m = [IdMap {
        container: 0,
        host: 65536,
        len: 65536,
    }];
    let userns = userns_with(&m, &m)?;
    idmapped_tree(path, &userns).map(drop)
}

/// Idmapped copies of an overlay's lower layers, attached under a private
/// directory until the overlay is mounted over them.
pub struct Lowers {
    dir: PathBuf,
    mounted: Vec<PathBuf>,
}

impl Lowers {
    /// Idmaps every `lowerdir` of overlay `data` through `userns`, each
    /// attached at `dir/<n>`; returns them and `data` naming them instead.
    pub fn prepare(
        dir: &Path,
        data: &str,
        userns: &OwnedFd,
    ) -> Result<(Lowers, String), IdmapError> {
        fresh_dir(dir).map_err(sys_err(format!("create {}", dir.display())))?;
        let mut lowers = Lowers {
            dir: dir.to_path_buf(),
            mounted: Vec::new(),
        };
        let mut out = Vec::new();
        for opt in data.split(',') {
            let Some(list) = opt.strip_prefix("lowerdir=") else {
                out.push(opt.to_string());
                continue;
            };
            let mut mapped = Vec::new();
            for src in list.split(':') {
                let at = dir.join(lowers.mounted.len().to_string());
                lowers.attach(Path::new(src), &at, userns)?;
                mapped.push(at.display().to_string());
            }
            out.push(format!("lowerdir={}", mapped.join(":")));
        }
        Ok((lowers, out.join(",")))
    }

    fn attach(&mut self, src: &Path, at: &Path, userns: &OwnedFd) -> Result<(), IdmapError> {
        std::fs::create_dir(at).map_err(sys_err(format!("create {}", at.display())))?;
        let target = open(
            at,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys_err(format!("open {}", at.display()))(e.into()))?;
        bind(src, &target, userns)?;
        self.mounted.push(at.to_path_buf());
        Ok(())
    }
}

/// A new private directory at `dir`; what a crashed shim left there (idmapped
/// layers still attached) is detached and removed first.
fn fresh_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = umount2(&e.path(), MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
        }
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

impl Drop for Lowers {
    /// Detaches the idmapped copies (the overlay keeps its own) and removes
    /// their directory.
    fn drop(&mut self) {
        for m in &self.mounted {
            let _ = umount2(m, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Gives overlay `data`'s upper directory (its root only) to the mapped
/// root, so the container's root may write in `/`; left as it is when the
/// maps do not map root or it has an owner other than the host's root.
pub fn chown_upper(data: &str, uid: &[IdMap], gid: &[IdMap]) -> Result<(), IdmapError> {
    let Some(upper) = data.split(',').find_map(|o| o.strip_prefix("upperdir=")) else {
        return Ok(());
    };
    let (Some(u), Some(g)) = (idmap::to_host(uid, 0), idmap::to_host(gid, 0)) else {
        return Ok(());
    };
    let st =
        nix::sys::stat::lstat(upper).map_err(|e| sys_err(format!("stat {upper}"))(e.into()))?;
    if st.st_uid != 0 || st.st_gid != 0 {
        return Ok(());
    }
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        upper,
        Some(nix::unistd::Uid::from_raw(u)),
        Some(nix::unistd::Gid::from_raw(g)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys_err(format!("chown {upper} to {u}:{g}"))(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maps_are_taken_out_of_the_options() {
        let mut o: Vec<String> = [
            "lowerdir=/a:/b",
            "uidmap=0:1000:65536",
            "gidmap=0:2000:65536",
            "ro",
        ]
        .map(String::from)
        .to_vec();
        let (u, g) = take_maps(&mut o).unwrap().unwrap();
        assert_eq!(o, ["lowerdir=/a:/b", "ro"]);
        assert_eq!(idmap::to_host(&u, 0), Some(1000));
        assert_eq!(idmap::to_host(&g, 0), Some(2000));
        let mut plain: Vec<String> = vec!["ro".into()];
        assert!(take_maps(&mut plain).unwrap().is_none());
        let mut half: Vec<String> = vec!["uidmap=0:1000:1".into()];
        assert!(take_maps(&mut half)
            .unwrap_err()
            .to_string()
            .contains("gidmap"));
        let mut bad: Vec<String> = vec!["uidmap=0:1000".into(), "gidmap=0:1:1".into()];
        assert!(take_maps(&mut bad)
            .unwrap_err()
            .to_string()
            .contains("0:1000"));
    }
}
