//! The fenced unsafe layer: every raw system call that nix does not wrap is
//! wrapped here, once, with its safety argument. Everything above this module
//! is safe Rust.

mod bpf;
mod files;
mod mounts;
mod process;
mod tty;

pub use bpf::*;
pub use files::*;
pub use mounts::*;
pub use process::*;
pub use tty::*;

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// `openat2` resolve flags (linux/openat2.h).
pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// `mount_setattr` attribute bits (linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
pub const MOUNT_ATTR__ATIME: u64 = 0x0000_0070;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0000_0000;
pub const MOUNT_ATTR_NOATIME: u64 = 0x0000_0010;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x0000_0020;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x0000_0080;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `cvt` for calls that return an int (a pid, a flag word).
fn cvt_int(ret: libc::c_long) -> io::Result<libc::c_int> {
    libc::c_int::try_from(cvt(ret)?).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))
}

/// `cvt` for calls that return a new file descriptor; only for those.
fn cvt_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = cvt_int(ret)?;
    // Only for calls that make a descriptor: then a non-negative return is one.
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The size of a kernel argument struct, as the `u32` the kernel takes.
fn size_u32<T>() -> u32 {
    // Argument structs are a few dozen bytes.
    u32::try_from(std::mem::size_of::<T>()).unwrap_or(u32::MAX)
}

fn cstr(path: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}
