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

/// A datagram socket for interface ioctls in the calling thread's network namespace.
fn ioctl_socket() -> Result<OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    // SAFETY: a plain socket(2) call; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fd is a new socket nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An ifreq naming interface `name` (at most 15 bytes).
fn ifreq(name: &str) -> Result<libc::ifreq, Errno> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(Errno::EINVAL);
    }
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

/// Sets interface `name` up or down in the calling thread's network namespace.
pub fn set_link_up(name: &str, up: bool) -> Result<(), Errno> {
    let sock = ioctl_socket()?;
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(Errno::last());
        }
        // IFF_UP is 1: it fits the short flags field.
        #[allow(clippy::cast_possible_truncation)]
        const UP: libc::c_short = libc::IFF_UP as libc::c_short;
        if up {
            req.ifr_ifru.ifru_flags |= UP;
        } else {
            req.ifr_ifru.ifru_flags &= !UP;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Sets `lo` up in the calling thread's network namespace.
pub fn loopback_up() -> Result<(), Errno> {
    set_link_up("lo", true)
}

/// `SIOCBRDELBR` from <linux/sockios.h> (the libc crate lacks it).
const SIOCBRDELBR: libc::c_ulong = 0x89a1;

/// Deletes bridge device `name` (brought down first, as the kernel requires).
pub fn delete_bridge(name: &str) -> Result<(), Errno> {
    set_link_up(name, false)?;
    let sock = ioctl_socket()?;
    let c = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: SIOCBRDELBR reads the NUL-terminated name, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCBRDELBR, c.as_ptr()) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Caps glibc's malloc arenas at `n`. Left alone, glibc gives each thread
/// that contends an arena of its own (8 per core) and keeps what a burst
/// (a pull's decompression on three threads) freed in each: berthd idled at
/// 37 MiB after a pull, and at 13 MiB with two arenas. Call before threads
/// start. Other C libraries have no such knob: nothing is done there.
pub fn limit_malloc_arenas(n: i32) {
    #[cfg(target_env = "gnu")]
    {
        // Called before other threads allocate.
        // SAFETY: mallopt takes two integers and changes only allocator tuning.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, n);
        }
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = n;
}
