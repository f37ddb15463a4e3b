//! The seam under the rootfs setup: every system call it makes on the
//! container's root goes through [`Sys`]. [`Kernel`] makes the calls; the
//! unit tests' recording double (`rootfs::fake`) keeps a tree in memory and
//! records each call with the container path it acted on, so that what the
//! setup does with a config is tested without root.
//!
//! Descriptors stay real `OwnedFd`s on both sides: the logic above keeps
//! resolving each path once, in the root, and mounting on the fd it got.

use crate::syscall;
use nix::fcntl::{AtFlags, OFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

/// The system calls of the rootfs setup. Paths given to `mount` and
/// `umount` are procfs fd paths (`/proc/self/fd/N`) or fixed host paths;
/// names given with a directory fd are single components.
pub trait Sys {
    /// `openat2(dir, rel, flags, resolve)`.
    fn openat2(
        &self,
        dir: BorrowedFd<'_>,
        rel: &Path,
        flags: i32,
        resolve: u64,
    ) -> io::Result<OwnedFd>;
    /// An `O_PATH` descriptor of `/` (the root, after the root change).
    fn open_root(&self) -> io::Result<OwnedFd>;
    /// `mkdirat(dir, name, mode)`.
    fn mkdirat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()>;
    /// `readlinkat(dir, name)`.
    fn readlinkat(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OsString>;
    /// Creates an empty regular file (`O_CREAT|O_EXCL|O_NOFOLLOW`).
    fn create_file(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()>;
    /// `mknodat(dir, name, kind|mode, dev)`.
    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: SFlag,
        mode: u32,
        dev: u64,
    ) -> io::Result<()>;
    /// `fchmodat(dir, name, mode)`.
    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()>;
    /// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`.
    fn fchownat(&self, dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()>;
    /// `symlinkat(target, dir, name)`.
    fn symlinkat(&self, target: &OsStr, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()>;
    /// `unlinkat(dir, name, 0)`.
    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()>;
    /// `st_mode` of a host path (`stat`, following symlinks): a bind source.
    fn stat(&self, path: &Path) -> io::Result<u32>;
    /// Copies a directory tree between two directory fds (`tmpcopyup`).
    fn copy_tree(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()>;
    /// `st_mode` and `st_rdev` of `fd` (`fstat`).
    fn fstat(&self, fd: BorrowedFd<'_>) -> io::Result<(u32, u64)>;
    /// `mount(2)`.
    fn mount(
        &self,
        src: Option<&OsStr>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// `umount2(2)`.
    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    /// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], set, clear)`.
    fn mount_setattr(
        &self,
        fd: BorrowedFd<'_>,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> io::Result<()>;
    /// `move_mount` of a detached tree onto `target`.
    fn move_mount(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()>;
}

/// The real system calls.
pub struct Kernel;

impl Sys for Kernel {
    fn openat2(
        &self,
        dir: BorrowedFd<'_>,
        rel: &Path,
        flags: i32,
        resolve: u64,
    ) -> io::Result<OwnedFd> {
        syscall::openat2(dir, rel, flags, 0, resolve)
    }

    fn open_root(&self) -> io::Result<OwnedFd> {
        Ok(nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?)
    }

    fn mkdirat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
        Ok(nix::sys::stat::mkdirat(
            dir,
            name,
            Mode::from_bits_truncate(mode),
        )?)
    }

    fn readlinkat(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OsString> {
        Ok(nix::fcntl::readlinkat(dir, name)?)
    }

    fn create_file(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
        nix::fcntl::openat(
            dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(mode),
        )?;
        Ok(())
    }

    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: SFlag,
        mode: u32,
        dev: u64,
    ) -> io::Result<()> {
        Ok(nix::sys::stat::mknodat(
            dir,
            name,
            kind,
            Mode::from_bits_truncate(mode),
            dev,
        )?)
    }

    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
        Ok(nix::sys::stat::fchmodat(
            dir,
            name,
            Mode::from_bits_truncate(mode),
            FchmodatFlags::FollowSymlink,
        )?)
    }

    fn fchownat(&self, dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        Ok(nix::unistd::fchownat(
            dir,
            name,
            Some(uid.into()),
            Some(gid.into()),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?)
    }

    fn symlinkat(&self, target: &OsStr, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        Ok(nix::unistd::symlinkat(target, dir, name)?)
    }

    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        Ok(nix::unistd::unlinkat(
            dir,
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )?)
    }

    fn stat(&self, path: &Path) -> io::Result<u32> {
        Ok(nix::sys::stat::stat(path)?.st_mode)
    }

    fn copy_tree(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
        super::mounts::copy_tree(from, to)
    }

    fn fstat(&self, fd: BorrowedFd<'_>) -> io::Result<(u32, u64)> {
        let st = nix::sys::stat::fstat(fd)?;
        Ok((st.st_mode, st.st_rdev))
    }

    fn mount(
        &self,
        src: Option<&OsStr>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        Ok(nix::mount::mount(src, target, fstype, flags, data)?)
    }

    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        Ok(nix::mount::umount2(target, flags)?)
    }

    fn mount_setattr(
        &self,
        fd: BorrowedFd<'_>,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> io::Result<()> {
        syscall::mount_setattr(fd, recursive, set, clear)
    }

    fn move_mount(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
        syscall::move_mount_fd(tree, target)
    }
}
