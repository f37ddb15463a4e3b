//! A `cgroup` mount: the container's own cgroups, v1 per controller, v2
//! unified, hybrid as the host is.

use crate::syscall;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::*;

/// The `cgroup` mount type: cgroup2 on a v2 host; on v1 and hybrid hosts a
/// tmpfs holding one mount per hierarchy, as runc lays it out. With a new
/// cgroup namespace each hierarchy is mounted fresh (showing the container's
/// cgroup as its root); without, the container's directories are bound in.
pub(super) fn mount_cgroup(
    ctx: &Context,
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), Error> {
    let flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    let dir = mkdir_all_in_root(root, dest, 0o755)?;
    let desc = format!("mount cgroup on {}", dest.display());
    if ctx.layout.is_pure_v2() {
        if ctx.new_cgroupns {
            mount(
                Some("cgroup2"),
                &fd_path(&dir),
                Some("cgroup2"),
                flags,
                None::<&str>,
            )
            .map_err(nsys(desc))?;
        } else {
            let src = ctx
                .cgroup_dirs
                .first()
                .cloned()
                .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
            mount(
                Some(&src),
                &fd_path(&dir),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(nsys(desc.clone()))?;
            let m = open_in_root(root, dest, libc::O_PATH, 0)
                .map_err(sys(format!("{desc}: reopen")))?;
            apply_bind_flags(&m, opts).map_err(sys(format!("{desc}: set options")))?;
        }
        return Ok(());
    }
    let tmpfs_flags = flags & !MsFlags::MS_RDONLY;
    mount(
        Some("tmpfs"),
        &fd_path(&dir),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .map_err(nsys(desc.clone()))?;
    let base = open_in_root(root, dest, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(sys(format!("{desc}: reopen")))?;
    for h in &ctx.layout.hierarchies {
        let Some(name) = h.mount.file_name() else {
            continue;
        };
        if h.mount.parent() != Some(Path::new("/sys/fs/cgroup")) {
            continue;
        }
        nix::sys::stat::mkdirat(base.as_fd(), name, Mode::from_bits_truncate(0o755))
            .map_err(nsys(format!("{desc}: mkdir")))?;
        let sub = nix::fcntl::openat(
            base.as_fd(),
            name,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(nsys(format!("{desc}: open")))?;
        let subdesc = format!("{desc}/{}", name.to_string_lossy());
        if ctx.new_cgroupns {
            let (fstype, data) = if h.unified {
                ("cgroup2", String::new())
            } else {
                ("cgroup", h.controllers.join(","))
            };
            mount(
                Some("cgroup"),
                &fd_path(&sub),
                Some(fstype),
                flags & !MsFlags::MS_RDONLY,
                Some(data.as_str()),
            )
            .map_err(nsys(subdesc.clone()))?;
        } else {
            let src = ctx
                .cgroup_dirs
                .iter()
                .find(|d| d.starts_with(&h.mount))
                .cloned()
                .unwrap_or_else(|| h.mount.clone());
            mount(
                Some(&src),
                &fd_path(&sub),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(nsys(subdesc.clone()))?;
        }
        // Co-mounted controllers get links as on the host (cpu -> cpu,cpuacct).
        if !h.unified && h.controllers.len() > 1 {
            for c in &h.controllers {
                let c = c.strip_prefix("name=").unwrap_or(c);
                if c.as_bytes() != name.as_bytes() {
                    let _ = nix::unistd::symlinkat(name, base.as_fd(), c);
                }
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        // The tmpfs and every hierarchy under it, in one call.
        let top =
            open_in_root(root, dest, libc::O_PATH, 0).map_err(sys(format!("{desc}: reopen")))?;
        syscall::mount_setattr(top.as_fd(), true, syscall::MOUNT_ATTR_RDONLY, 0)
            .map_err(sys(format!("{desc}: make read-only")))?;
    }
    Ok(())
}
