//! Paths inside the rootfs, resolved by the kernel in the root
//! (`openat2` RESOLVE_IN_ROOT) from a directory fd, never by string joins.

use crate::syscall::{self, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use super::*;

/// The procfs path naming an fd, for syscalls that take only paths.
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `path` inside the root `root` (a directory fd), never leaving it.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    extra_resolve: u64,
) -> io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    syscall::openat2(
        root,
        rel,
        flags,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | extra_resolve,
    )
}

/// Creates every missing directory of `path` inside the root, and returns an
/// O_PATH fd of the last one. A symlink met on the way is followed inside the
/// root (a dangling one is created where it points, within the root), as a
/// container's own path resolution would see it.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd, Error> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = components(path);
    let mut prefix = PathBuf::from("/");
    let mut cur = open_in_root(root, &prefix, flags, 0)
        .map_err(sys(format!("open rootfs for {}", path.display())))?;
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        let next = prefix.join(&name);
        match open_in_root(root, &next, flags, 0) {
            Ok(fd) => {
                cur = fd;
                prefix = next;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(sys(format!("open {} in rootfs", next.display()))(e)),
        }
        match nix::sys::stat::mkdirat(
            cur.as_fd(),
            name.as_os_str(),
            Mode::from_bits_truncate(mode),
        ) {
            Ok(()) => {}
            Err(nix::Error::EEXIST) => {
                // A dangling symlink: continue from where it points, inside the root.
                let target = nix::fcntl::readlinkat(cur.as_fd(), name.as_os_str())
                    .map_err(nsys(format!("mkdir {} in rootfs", next.display())))?;
                links += 1;
                if links > 40 {
                    return Err(Error::Sys {
                        what: format!("mkdir {} in rootfs", path.display()),
                        err: io::Error::from_raw_os_error(libc::ELOOP),
                    });
                }
                let target = PathBuf::from(target);
                let mut rest = components(&target);
                rest.extend(todo.drain(..));
                todo = rest;
                if target.is_absolute() {
                    prefix = PathBuf::from("/");
                    cur = open_in_root(root, &prefix, flags, 0).map_err(sys("open rootfs"))?;
                }
                continue;
            }
            Err(e) => return Err(nsys(format!("mkdir {} in rootfs", next.display()))(e)),
        }
        cur = open_in_root(root, &next, flags, 0)
            .map_err(sys(format!("open {} in rootfs", next.display())))?;
        prefix = next;
    }
    Ok(cur)
}

pub(super) fn components(p: &Path) -> std::collections::VecDeque<std::ffi::OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsStr::new("..").to_owned()),
            _ => None,
        })
        .collect()
}

/// Creates an empty file at `path` inside the root if nothing is there (the
/// target of a file bind mount or a device bind).
pub(super) fn touch_in_root(root: BorrowedFd<'_>, path: &Path) -> Result<(), Error> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: no file name", path.display())))?;
    let pfd = mkdir_all_in_root(root, parent, 0o755)?;
    match nix::fcntl::openat(
        pfd.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(fd) => {
            drop(fd);
            Ok(())
        }
        Err(nix::Error::EEXIST) => Ok(()),
        Err(e) => Err(nsys(format!("create {} in rootfs", path.display()))(e)),
    }
}
