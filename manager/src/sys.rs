//! The manager's raw system calls, each wrapped once.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// Sets an extended attribute on `name` in the directory `dir` (an O_PATH fd)
/// without following a symlink at `name`; an empty `name` is `dir` itself.
pub fn set_xattr(dir: &OwnedFd, name: &Path, key: &[u8], value: &[u8]) -> Result<(), Errno> {
    // Through the fd's magic link: the directory is the one already opened,
    // and only `name` is looked up (never followed when it is a symlink).
    let mut p = format!("/proc/self/fd/{}", dir.as_raw_fd()).into_bytes();
    if !name.as_os_str().is_empty() {
        p.push(b'/');
        p.extend_from_slice(name.as_os_str().as_bytes());
    }
    let path = CString::new(p).map_err(|_| Errno::EINVAL)?;
    let key = CString::new(key).map_err(|_| Errno::EINVAL)?;
    let follow = name.as_os_str().is_empty();
    // SAFETY: both strings are NUL-terminated and live across the call; the
    // value pointer and length describe a live slice.
    let r = unsafe {
        if follow {
            libc::setxattr(
                path.as_ptr(),
                key.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        } else {
            libc::lsetxattr(
                path.as_ptr(),
                key.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        }
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}
