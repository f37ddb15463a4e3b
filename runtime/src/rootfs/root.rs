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
            .map_err(sys_err(format!("pivot_root {}", rootfs.display())))?;
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
        .map_err(sys_err("read /proc/self/mountinfo"))?;
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
    sys: &dyn Sys,
    paths: &[String],
    verb: &str,
    mut f: impl FnMut(&str, BorrowedFd<'_>, OwnedFd) -> Result<(), Error>,
) -> Result<(), Error> {
    let root = sys.open_root().map_err(sys_err("open /"))?;
    for p in paths {
        match open_in_root(sys, root.as_fd(), Path::new(p), libc::O_PATH, 0) {
            Ok(fd) => f(p, root.as_fd(), fd)?,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(sys_err(format!("{verb} {p}"))(e)),
        }
    }
    Ok(())
}

/// Masks paths: directories get an empty read-only tmpfs, files the
/// container's /dev/null.
pub fn mask_paths(sys: &dyn Sys, paths: &[String]) -> Result<(), Error> {
    let mut null: Option<OwnedFd> = None;
    for_each_existing(sys, paths, "mask", |p, root, fd| {
        let (mode, _) = sys
            .fstat(fd.as_fd())
            .map_err(sys_err(format!("mask {p}")))?;
        let r = if mode & libc::S_IFMT == libc::S_IFDIR {
            sys.mount(
                Some("tmpfs".as_ref()),
                &fd_path(&fd),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )
        } else {
            let null = match &null {
                Some(n) => n,
                None => null.insert(open_null(sys, root)?),
            };
            sys.mount(
                Some(fd_path(null).as_os_str()),
                &fd_path(&fd),
                None,
                MsFlags::MS_BIND,
                None,
            )
        };
        r.map_err(sys_err(format!("mask {p}")))
    })
}

/// The container's /dev/null, opened without following a symlink and
/// checked to be the null device (1:3). Bound by its fd over masked files:
/// a /dev/null swapped for a symlink (or another file) would otherwise
/// bind whatever it names over them, a writable procfs file included
/// (CVE-2025-31133).
fn open_null(sys: &dyn Sys, root: BorrowedFd<'_>) -> Result<OwnedFd, Error> {
    let fd = open_in_root(
        sys,
        root,
        Path::new("/dev/null"),
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
    )
    .map_err(sys_err("open the container's /dev/null"))?;
    let (mode, rdev) = sys
        .fstat(fd.as_fd())
        .map_err(sys_err("stat the container's /dev/null"))?;
    let is_null =
        mode & libc::S_IFMT == libc::S_IFCHR && libc::major(rdev) == 1 && libc::minor(rdev) == 3;
    if !is_null {
        return Err(Error::Invalid(
            "maskedPaths: the container's /dev/null is not the null device (1:3); refusing to bind it over masked paths".into(),
        ));
    }
    Ok(fd)
}

/// Makes paths read-only by binding each onto itself, then setting the new
/// mount (and those below it) read-only.
pub fn readonly_paths(sys: &dyn Sys, paths: &[String]) -> Result<(), Error> {
    for_each_existing(sys, paths, "make read-only", |p, root, fd| {
        let what = format!("make {p} read-only");
        sys.mount(
            Some(fd_path(&fd).as_os_str()),
            &fd_path(&fd),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(sys_err(what.clone()))?;
        let m = open_in_root(sys, root, Path::new(p), libc::O_PATH, 0)
            .map_err(sys_err(what.clone()))?;
        sys.mount_setattr(m.as_fd(), true, syscall::MOUNT_ATTR_RDONLY, 0)
            .map_err(sys_err(what))
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
pub fn readonly_root(sys: &dyn Sys) -> Result<(), Error> {
    let fd = sys.open_root().map_err(sys_err("open /"))?;
    sys.mount_setattr(fd.as_fd(), false, syscall::MOUNT_ATTR_RDONLY, 0)
        .map_err(sys_err("make / read-only"))
}

/// Applies `rootfsPropagation` to the new root.
pub fn set_root_propagation(sys: &dyn Sys, p: &str) -> Result<(), Error> {
    let flag = propagation_flag(p)?;
    sys.mount(None, Path::new("/"), None, flag, None)
        .map_err(sys_err(format!("set rootfsPropagation {p}")))
}

#[cfg(test)]
mod tests {
    use super::super::fake::{self, Call, Fake, Node};
    use super::*;
    use std::path::PathBuf;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn with_null() -> Fake {
        Fake::new().with("/dev/null", Node::Char(1, 3))
    }

    #[test]
    fn a_masked_directory_gets_an_empty_read_only_tmpfs() {
        let f = with_null().with("/proc/acpi", Node::Dir);
        mask_paths(&f, &strings(&["/proc/acpi"])).unwrap();
        assert_eq!(
            f.mounts(),
            vec![fake::mount(
                Some("tmpfs"),
                "/proc/acpi",
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0")
            )]
        );
    }

    #[test]
    fn a_masked_file_gets_the_containers_dev_null_bound_by_its_fd() {
        let f = with_null().with("/proc/kcore", Node::File);
        mask_paths(&f, &strings(&["/proc/kcore"])).unwrap();
        assert_eq!(
            f.mounts(),
            vec![fake::mount(
                Some("rootfs:/dev/null"),
                "/proc/kcore",
                None,
                MsFlags::MS_BIND,
                None
            )]
        );
    }

    #[test]
    fn masked_paths_that_do_not_exist_are_skipped() {
        let f = with_null().with("/proc/kcore", Node::File);
        mask_paths(
            &f,
            &strings(&["/proc/gone", "/proc/kcore", "/sys/firmware"]),
        )
        .unwrap();
        assert_eq!(f.mounts().len(), 1);
    }

    #[test]
    fn masking_only_directories_needs_no_dev_null() {
        let f = Fake::new().with("/proc/acpi", Node::Dir);
        mask_paths(&f, &strings(&["/proc/acpi"])).unwrap();
        assert_eq!(f.mounts().len(), 1);
    }

    #[test]
    fn a_dev_null_that_is_a_symlink_is_refused_before_any_mask() {
        // CVE-2025-31133: /dev/null swapped for a link to a procfs file.
        let f = Fake::new()
            .with("/proc/sys/kernel/core_pattern", Node::File)
            .with(
                "/dev/null",
                Node::Link(PathBuf::from("/proc/sys/kernel/core_pattern")),
            )
            .with("/proc/kcore", Node::File);
        let err = mask_paths(&f, &strings(&["/proc/kcore"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the container's /dev/null is not the null device"),
            "{err}"
        );
        assert!(f.mounts().is_empty());
    }

    #[test]
    fn a_dev_null_of_other_numbers_is_refused() {
        let f = Fake::new()
            .with("/dev/null", Node::Char(1, 5))
            .with("/proc/kcore", Node::File);
        assert!(mask_paths(&f, &strings(&["/proc/kcore"])).is_err());
        assert!(f.mounts().is_empty());
    }

    #[test]
    fn a_masked_path_through_a_symlink_is_masked_where_it_points_in_the_root() {
        let f = with_null()
            .with("/real", Node::Dir)
            .with("/proc/link", Node::Link(PathBuf::from("/../../real")));
        mask_paths(&f, &strings(&["/proc/link"])).unwrap();
        assert_eq!(
            f.mounts(),
            vec![fake::mount(
                Some("tmpfs"),
                "/real",
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0")
            )]
        );
    }

    #[test]
    fn a_read_only_path_is_bound_on_itself_then_made_read_only_recursively() {
        let f = Fake::new().with("/proc/sys", Node::Dir);
        readonly_paths(&f, &strings(&["/proc/sys"])).unwrap();
        assert_eq!(
            f.calls(),
            vec![
                fake::mount(
                    Some("rootfs:/proc/sys"),
                    "/proc/sys",
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None
                ),
                Call::SetAttr {
                    path: PathBuf::from("/proc/sys"),
                    recursive: true,
                    set: crate::syscall::MOUNT_ATTR_RDONLY,
                    clear: 0
                }
            ]
        );
    }

    #[test]
    fn read_only_paths_that_do_not_exist_are_skipped() {
        let f = Fake::new();
        readonly_paths(&f, &strings(&["/proc/bus", "/proc/fs"])).unwrap();
        assert!(f.calls().is_empty());
    }

    #[test]
    fn a_failing_read_only_bind_names_the_path() {
        let f = Fake::new()
            .with("/proc/bus", Node::Dir)
            .fail_when(|c| matches!(c, Call::Mount { .. }), libc::EPERM);
        let err = readonly_paths(&f, &strings(&["/proc/bus"]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("make /proc/bus read-only: "), "{err}");
    }

    #[test]
    fn a_read_only_root_is_one_attribute_on_the_top_mount() {
        let f = Fake::new();
        readonly_root(&f).unwrap();
        assert_eq!(
            f.calls(),
            vec![Call::SetAttr {
                path: PathBuf::from("/"),
                recursive: false,
                set: crate::syscall::MOUNT_ATTR_RDONLY,
                clear: 0
            }]
        );
    }

    #[test]
    fn root_propagation_is_set_on_slash() {
        let f = Fake::new();
        set_root_propagation(&f, "rshared").unwrap();
        assert_eq!(
            f.mounts(),
            vec![fake::mount(
                None,
                "/",
                None,
                MsFlags::MS_SHARED | MsFlags::MS_REC,
                None
            )]
        );
        let f = Fake::new();
        set_root_propagation(&f, "private").unwrap();
        assert_eq!(
            f.mounts(),
            vec![fake::mount(None, "/", None, MsFlags::MS_PRIVATE, None)]
        );
    }

    #[test]
    fn an_unknown_root_propagation_is_refused_before_any_call() {
        let f = Fake::new();
        assert!(set_root_propagation(&f, "sideways").is_err());
        assert!(f.calls().is_empty());
    }

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
