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
    // The strings are NUL-terminated and the value is a live slice.
    // SAFETY: every pointer is valid for the call, with the length given.
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

fn c_path(p: &Path) -> Option<CString> {
    CString::new(p.as_os_str().as_bytes()).ok()
}

/// The value of an extended attribute of `path` (not following a symlink).
pub fn get_xattr(path: &Path, key: &[u8]) -> Option<Vec<u8>> {
    let (p, k) = (c_path(path)?, CString::new(key).ok()?);
    let mut buf = vec![0u8; 4096];
    // SAFETY: NUL-terminated strings and a live buffer of the length given.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// The names of `path`'s extended attributes (not following a symlink).
pub fn list_xattrs(path: &Path) -> Vec<Vec<u8>> {
    let Some(p) = c_path(path) else {
        return Vec::new();
    };
    let mut buf = vec![0u8; 16384];
    // SAFETY: a NUL-terminated path and a live buffer of the length given.
    let n = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return Vec::new();
    }
    buf[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Sets `lo` up in the calling thread's network namespace.
pub fn loopback_up() -> Result<(), Errno> {
    use std::os::fd::FromRawFd;
    // SAFETY: a plain socket(2) call; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fd is a new socket nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(Errno::last());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}
