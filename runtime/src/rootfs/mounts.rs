//! One `mounts[]` entry mounted in the rootfs: binds with their flags,
//! new filesystems, `tmpcopyup`, and the attributes set afterwards.

use crate::syscall::{self, RESOLVE_NO_SYMLINKS};
use nix::fcntl::{AtFlags, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::Mount;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::*;

/// Mounts one entry of `mounts` inside the rootfs.
pub fn mount_one(
    ctx: &Context,
    root: BorrowedFd<'_>,
    m: &Mount,
    opts: &MountOptions,
    idmapped: Option<&OwnedFd>,
) -> Result<(), Error> {
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(Error::Invalid(format!(
            "mount destination {}: must be an absolute path",
            dest.display()
        )));
    }
    let sys = ctx.sys;
    let typ = m.typ().as_deref().unwrap_or("");
    if typ == "cgroup" {
        return mount_cgroup(ctx, root, dest, opts);
    }
    let desc = format!(
        "mount {} on {}",
        m.source()
            .as_deref()
            .map(|s| s.display().to_string())
            .unwrap_or_default(),
        dest.display()
    );
    let special = matches!(typ, "proc" | "sysfs");
    if opts.is_bind() {
        let src = m.source().as_ref().ok_or_else(|| {
            Error::Invalid(format!("mount {}: bind needs a source", dest.display()))
        })?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            ctx.bundle.join(src)
        };
        // A tree opened before the user namespace is stat'ed by its fd: the
        // mapped user may not reach the source's path.
        let mode = match idmapped {
            Some(tree) => sys.fstat(tree.as_fd()).map(|(mode, _)| mode),
            None => sys.stat(&src),
        }
        .map_err(sys_err(format!("{desc}: stat source {}", src.display())))?;
        if mode & libc::S_IFMT == libc::S_IFDIR {
            mkdir_all_in_root(sys, root, dest, 0o755)?;
        } else {
            touch_in_root(sys, root, dest)?;
        }
        let target = open_in_root(sys, root, dest, libc::O_PATH, 0)
            .map_err(sys_err(format!("{desc}: open destination")))?;
        match idmapped {
            // Prepared by the parent (idmapped, or opened before the user
            // namespace): attach it.
            Some(tree) => sys
                .move_mount(tree.as_fd(), target.as_fd())
                .map_err(sys_err(format!("{desc}: attach the prepared mount")))?,
            None => sys
                .mount(
                    Some(src.as_os_str()),
                    &fd_path(&target),
                    None,
                    opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
                    None,
                )
                .map_err(sys_err(desc.clone()))?,
        }
        let mounted = open_in_root(sys, root, dest, libc::O_PATH, 0)
            .map_err(sys_err(format!("{desc}: reopen")))?;
        apply_bind_flags(sys, &mounted, opts).map_err(sys_err(format!("{desc}: set options")))?;
        finish_mount(sys, &mounted, opts, &desc)?;
        return Ok(());
    }
    let dir = mkdir_all_in_root(sys, root, dest, 0o755)?;
    let target = if special {
        // /proc and /sys must be real directories inside the rootfs.
        let fd = open_in_root(
            sys,
            root,
            dest,
            libc::O_PATH | libc::O_DIRECTORY,
            RESOLVE_NO_SYMLINKS,
        )
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Invalid(format!(
                    "{desc}: destination is a symlink, refused for {typ}"
                ))
            } else {
                Error::Sys {
                    what: format!("{desc}: open destination"),
                    err: e,
                }
            }
        })?;
        drop(dir);
        fd
    } else {
        dir
    };
    let src = m
        .source()
        .as_ref()
        .map(|s| s.as_os_str().to_owned())
        .unwrap_or_else(|| typ.into());
    let data = if opts.data.is_empty() {
        None
    } else {
        Some(opts.data.as_str())
    };
    let old_content = if opts.tmpcopyup {
        Some(
            open_in_root(sys, root, dest, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(sys_err(format!("{desc}: open for tmpcopyup")))?,
        )
    } else {
        None
    };
    let mut flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    if dev_read_only_later(dest, opts) {
        // The mounts and devices below /dev are made first (`make_dev_read_only`).
        flags.remove(MsFlags::MS_RDONLY);
    }
    let res = sys.mount(
        Some(src.as_os_str()),
        &fd_path(&target),
        Some(typ),
        flags,
        data,
    );
    if let Err(e) = res {
        // Inside a user namespace sysfs cannot be mounted without a new network
        // namespace; bind the host's, as runc does.
        if typ == "sysfs" && e.raw_os_error() == Some(libc::EPERM) && ctx.in_userns {
            sys.mount(
                Some("/sys".as_ref()),
                &fd_path(&target),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(sys_err(desc.clone()))?;
        } else {
            return Err(sys_err(desc)(e));
        }
    }
    let mounted = open_in_root(sys, root, dest, libc::O_PATH, 0)
        .map_err(sys_err(format!("{desc}: reopen")))?;
    if let Some(old) = old_content {
        let new = open_in_root(sys, root, dest, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(sys_err(format!("{desc}: reopen")))?;
        sys.copy_tree(old.as_fd(), new.as_fd())
            .map_err(sys_err(format!("{desc}: tmpcopyup")))?;
    }
    finish_mount(sys, &mounted, opts, &desc)
}

/// Whether `dest` is a read-only `/dev` of its own (not a bind): mounted
/// writable, it is made read-only once what lives below it (/dev/pts, the
/// devices and links) exists, as runc does.
pub fn dev_read_only_later(dest: &Path, opts: &MountOptions) -> bool {
    dest == Path::new("/dev") && !opts.is_bind() && opts.flags.contains(MsFlags::MS_RDONLY)
}

/// Makes the container's `/dev` mount read-only (not the mounts below it).
pub fn make_dev_read_only(sys: &dyn Sys, root: BorrowedFd<'_>) -> Result<(), Error> {
    let dev = open_in_root(sys, root, Path::new("/dev"), libc::O_PATH, 0)
        .map_err(sys_err("make /dev read-only: open"))?;
    sys.mount_setattr(dev.as_fd(), false, syscall::MOUNT_ATTR_RDONLY, 0)
        .map_err(sys_err("make /dev read-only"))
}

pub(super) fn apply_bind_flags(sys: &dyn Sys, fd: &OwnedFd, o: &MountOptions) -> io::Result<()> {
    use syscall::*;
    let map = [
        (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
        (
            MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
            MOUNT_ATTR_NOSYMFOLLOW,
        ),
    ];
    let (mut set, mut clear) = (0u64, 0u64);
    for (f, a) in map {
        if o.flags.contains(f) {
            set |= a;
        }
        if o.clear.contains(f) {
            clear |= a;
        }
    }
    for (f, a) in [
        (MsFlags::MS_NOATIME, MOUNT_ATTR_NOATIME),
        (MsFlags::MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
    ] {
        if o.flags.contains(f) {
            clear |= MOUNT_ATTR__ATIME;
            set |= a;
        }
    }
    if o.flags.contains(MsFlags::MS_RELATIME) {
        clear |= MOUNT_ATTR__ATIME;
    }
    if set == 0 && clear == 0 {
        return Ok(());
    }
    // Like runc, bind options apply to the top mount; `r*` options recurse.
    sys.mount_setattr(fd.as_fd(), false, set, clear)
}

pub(super) fn finish_mount(
    sys: &dyn Sys,
    mounted: &OwnedFd,
    opts: &MountOptions,
    desc: &str,
) -> Result<(), Error> {
    for p in &opts.propagation {
        sys.mount(None, &fd_path(mounted), None, *p, None)
            .map_err(sys_err(format!("{desc}: set propagation")))?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        sys.mount_setattr(mounted.as_fd(), true, opts.rec_set, opts.rec_clear)
            .map_err(sys_err(format!("{desc}: set recursive attributes")))?;
    }
    Ok(())
}

/// Copies a directory tree between two directory fds (for tmpcopyup).
pub(super) fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let mut dir = nix::dir::Dir::from_fd(nix::unistd::dup(from)?)?;
    for ent in dir.iter() {
        let ent = ent?;
        let name = ent.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let st = nix::sys::stat::fstatat(from, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        if kind == SFlag::S_IFDIR {
            nix::sys::stat::mkdirat(to, name, mode)?;
            let sub_from = nix::fcntl::openat(
                from,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let sub_to = nix::fcntl::openat(
                to,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            copy_tree(sub_from.as_fd(), sub_to.as_fd())?;
        } else if kind == SFlag::S_IFLNK {
            let target = nix::fcntl::readlinkat(from, name)?;
            nix::unistd::symlinkat(target.as_os_str(), to, name)?;
        } else if kind == SFlag::S_IFREG {
            let src = nix::fcntl::openat(
                from,
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let dst = nix::fcntl::openat(
                to,
                name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
                mode,
            )?;
            let mut s = fs::File::from(src);
            let mut d = fs::File::from(dst);
            io::copy(&mut s, &mut d)?;
        } else {
            nix::sys::stat::mknodat(to, name, kind, mode, st.st_rdev)?;
        }
        nix::unistd::fchownat(
            to,
            name,
            Some(st.st_uid.into()),
            Some(st.st_gid.into()),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(())
}

/// True when the config bind-mounts something onto /dev itself, in which case
/// the runtime does not populate /dev.
pub fn binds_dev(mounts: &[Mount]) -> bool {
    mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind")
    })
}

#[cfg(test)]
mod tests;
