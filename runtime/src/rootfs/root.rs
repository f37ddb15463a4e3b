//! The root change (pivot_root, or MS_MOVE and chroot with `--no-pivot`),
//! then `maskedPaths`, `readonlyPaths`, a read-only root and its propagation.

use crate::syscall;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::*;

pub(super) const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// How the container's root replaces the caller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootChange {
    /// pivot_root, then the old root detached (a mount namespace of the
    /// container's: new or joined).
    Pivot,
    /// `--no-pivot`: the rootfs moved over / (MS_MOVE), then chroot.
    Move,
    /// No mount namespace in the config: the caller's is inherited, as the
    /// spec says, and only chroot(2) changes the root (as runc does).
    Chroot,
}

/// Changes the root by `how`.
pub fn change_root(rootfs: &Path, how: RootChange) -> Result<(), Error> {
    // The old root, to come back to after pivot_root: the working
    // directory then is the new root's, not the old root stacked on it.
    let old_root = if how == RootChange::Pivot {
        Some(
            nix::fcntl::open(
                "/",
                OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(nsys("open the old root"))?,
        )
    } else {
        None
    };
    if how == RootChange::Move {
        hide_full_proc_and_sys(rootfs)?;
    }
    nix::unistd::chdir(rootfs).map_err(nsys(format!("chdir {}", rootfs.display())))?;
    if let Some(old_root) = old_root {
        syscall::pivot_root(Path::new("."), Path::new("."))
            .map_err(sys(format!("pivot_root {}", rootfs.display())))?;
        // The old root is now stacked on the new one. Only it becomes a
        // slave (its unmounts must not reach the host): made on ".", the
        // new root's tree would lose its shared mounts (a bidirectional
        // bind mount would stop propagating to the host; runc fchdirs too).
        nix::unistd::fchdir(&old_root).map_err(nsys("fchdir to the old root"))?;
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(nsys("make old root slave"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(nsys("detach old root"))?;
    } else {
        if how == RootChange::Move {
            mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
                .map_err(nsys("move rootfs to /"))?;
        }
        nix::unistd::chroot(".").map_err(nsys("chroot"))?;
    }
    nix::unistd::chdir("/").map_err(nsys("chdir /"))?;
    Ok(())
}

/// Before `--no-pivot`'s chroot: the host's whole procfs and sysfs mounts
/// stay in the namespace (outside the chroot), and while one is fully
/// visible the kernel lets a nested user namespace mount a fresh procfs or
/// sysfs that the masked paths do not cover. Each is detached (made a slave
/// first, so the host keeps its own), or covered with a tmpfs where it
/// cannot be (EPERM, EINVAL), as runc does.
fn hide_full_proc_and_sys(rootfs: &Path) -> Result<(), Error> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(sys("read /proc/self/mountinfo"))?;
    for p in full_proc_and_sys(&mi, rootfs) {
        match mount(
            None::<&str>,
            &p,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => {}
            // Gone with a parent detached before it.
            Err(nix::Error::ENOENT) => continue,
            Err(e) => return Err(nsys(format!("make {} a slave", p.display()))(e)),
        }
        match umount2(&p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::Error::EINVAL) | Err(nix::Error::EPERM) => {
                mount(
                    Some("tmpfs"),
                    &p,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    None::<&str>,
                )
                .map_err(nsys(format!("cover {} with a tmpfs", p.display())))?;
            }
            Err(e) => return Err(nsys(format!("detach {}", p.display()))(e)),
        }
    }
    Ok(())
}

/// The mount points of whole (root `/`) proc and sysfs mounts outside
/// `rootfs`, from a mountinfo text, in its order.
fn full_proc_and_sys(mountinfo: &str, rootfs: &Path) -> Vec<std::path::PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let fstype = post.split(' ').next()?;
            let (root, mp) = (
                pre.get(3)?,
                std::path::PathBuf::from(pre.get(4)?.replace("\\040", " ")),
            );
            (*root == "/" && matches!(fstype, "proc" | "sysfs") && !mp.starts_with(rootfs))
                .then_some(mp)
        })
        .collect()
}

/// Calls `f` with an O_PATH fd of each path that exists in the new root
/// (after the root change); missing paths are skipped, as runc skips them.
pub(super) fn for_each_existing(
    paths: &[String],
    verb: &str,
    mut f: impl FnMut(&str, BorrowedFd<'_>, OwnedFd) -> Result<(), Error>,
) -> Result<(), Error> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nsys("open /"))?;
    for p in paths {
        match open_in_root(root.as_fd(), Path::new(p), libc::O_PATH, 0) {
            Ok(fd) => f(p, root.as_fd(), fd)?,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(sys(format!("{verb} {p}"))(e)),
        }
    }
    Ok(())
}

/// Masks paths: directories get an empty read-only tmpfs, files the
/// container's /dev/null.
pub fn mask_paths(paths: &[String]) -> Result<(), Error> {
    let mut null: Option<OwnedFd> = None;
    for_each_existing(paths, "mask", |p, root, fd| {
        let st = nix::sys::stat::fstat(&fd).map_err(nsys(format!("mask {p}")))?;
        let r = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            mount(
                Some("tmpfs"),
                &fd_path(&fd),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )
        } else {
            let null = match &null {
                Some(n) => n,
                None => null.insert(open_null(root)?),
            };
            mount(
                Some(&fd_path(null)),
                &fd_path(&fd),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        r.map_err(nsys(format!("mask {p}")))
    })
}

/// The container's /dev/null, opened without following a symlink and
/// checked to be the null device (1:3). Bound by its fd over masked files:
/// a /dev/null swapped for a symlink (or another file) would otherwise
/// bind whatever it names over them, a writable procfs file included
/// (CVE-2025-31133).
fn open_null(root: BorrowedFd<'_>) -> Result<OwnedFd, Error> {
    let fd = open_in_root(
        root,
        Path::new("/dev/null"),
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
    )
    .map_err(sys("open the container's /dev/null"))?;
    let st = nix::sys::stat::fstat(&fd).map_err(nsys("stat the container's /dev/null"))?;
    let is_null = st.st_mode & libc::S_IFMT == libc::S_IFCHR
        && libc::major(st.st_rdev) == 1
        && libc::minor(st.st_rdev) == 3;
    if !is_null {
        return Err(Error::Invalid(
            "maskedPaths: the container's /dev/null is not the null device (1:3); refusing to bind it over masked paths".into(),
        ));
    }
    Ok(fd)
}

/// Makes paths read-only by binding each onto itself, then setting the new
/// mount (and those below it) read-only.
pub fn readonly_paths(paths: &[String]) -> Result<(), Error> {
    for_each_existing(paths, "make read-only", |p, root, fd| {
        let what = format!("make {p} read-only");
        mount(
            Some(&fd_path(&fd)),
            &fd_path(&fd),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(nsys(what.clone()))?;
        let m = open_in_root(root, Path::new(p), libc::O_PATH, 0).map_err(sys(what.clone()))?;
        syscall::mount_setattr(m.as_fd(), true, syscall::MOUNT_ATTR_RDONLY, 0).map_err(sys(what))
    })
}

/// Checks that `fd` is on procfs, before anything is written through it.
pub fn ensure_procfs(fd: &OwnedFd, what: &str) -> Result<(), Error> {
    let st = nix::sys::statfs::fstatfs(fd).map_err(nsys(format!("statfs {what}")))?;
    if st.filesystem_type().0 as i64 != PROC_SUPER_MAGIC {
        return Err(Error::Invalid(format!(
            "{what} is not on procfs, refusing to write to it"
        )));
    }
    Ok(())
}

/// Remounts the root read-only (root.readonly).
pub fn readonly_root() -> Result<(), Error> {
    let fd = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nsys("open /"))?;
    syscall::mount_setattr(fd.as_fd(), false, syscall::MOUNT_ATTR_RDONLY, 0)
        .map_err(sys("make / read-only"))
}

/// Applies `rootfsPropagation` to the new root.
pub fn set_root_propagation(p: &str) -> Result<(), Error> {
    let flag = propagation_flag(p)?;
    mount(None::<&str>, "/", None::<&str>, flag, None::<&str>)
        .map_err(nsys(format!("set rootfsPropagation {p}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_proc_and_sys_outside_the_rootfs_are_found() {
        let mi = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
23 1 0:22 / /sys rw,nosuid - sysfs sysfs rw
24 22 0:23 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw
25 1 0:21 /sys /mnt/procsys ro - proc proc rw
26 1 0:21 / /run/c/rootfs/proc rw - proc proc rw
27 1 0:24 / /dev rw - devtmpfs udev rw
";
        assert_eq!(
            full_proc_and_sys(mi, Path::new("/run/c/rootfs")),
            vec![Path::new("/proc"), Path::new("/sys")]
        );
    }
}
