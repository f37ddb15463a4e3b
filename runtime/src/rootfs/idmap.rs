//! Idmapped bind mounts (`mounts[].uidMappings`/`gidMappings`): a detached
//! tree given MOUNT_ATTR_IDMAP with a user namespace made for the mapping.

use crate::syscall;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::*;

/// An idmapped copy of the bind source `src`: a detached mount (recursive
/// with `recursive`) whose file ownership is mapped through a user namespace
/// holding `uid`/`gid` (the mount's containerID → hostID, as runc reads them).
/// Made by the parent before the clone, with the host's privileges; the
/// container process attaches it with move_mount.
pub fn idmap_tree(
    src: &Path,
    recursive: bool,
    uid: &[oci_spec::runtime::LinuxIdMapping],
    gid: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<OwnedFd, Error> {
    let desc = format!("idmapped mount of {}", src.display());
    let userns = idmap_userns(uid, gid).map_err(|e| Error::Invalid(format!("{desc}: {e}")))?;
    let tree =
        syscall::open_tree_clone(src, recursive).map_err(sys_err(format!("{desc}: open_tree")))?;
    syscall::mount_setattr_idmap(tree.as_fd(), recursive, userns.as_fd()).map_err(|err| {
        let why = if err.raw_os_error() == Some(libc::EINVAL) {
            " (its filesystem does not support idmapped mounts on this kernel)"
        } else {
            ""
        };
        Error::Sys {
            what: format!("{desc}: set MOUNT_ATTR_IDMAP{why}"),
            err,
        }
    })?;
    Ok(tree)
}

/// A user namespace with the given maps, held by nothing but the returned
/// fd: a child enters it, the maps are written, the child exits.
pub(super) fn idmap_userns(
    uid: &[oci_spec::runtime::LinuxIdMapping],
    gid: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<OwnedFd, String> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let pid = syscall::clone_fork(libc::CLONE_NEWUSER).map_err(|e| format!("clone: {e}"))?;
    if pid == 0 {
        drop(w);
        // Wait until the parent has what it needs, then go.
        let mut b = [0u8; 1];
        let _ = nix::unistd::read(&r, &mut b);
        syscall::exit_now(0);
    }
    drop(r);
    let res = crate::namespaces::write_id_maps(pid, uid, gid, false)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            nix::fcntl::open(
                format!("/proc/{pid}/ns/user").as_str(),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| format!("open user namespace: {e}"))
        });
    drop(w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    res
}
