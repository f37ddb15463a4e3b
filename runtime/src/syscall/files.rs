//! Descriptors and paths: openat2 with its resolve flags, close-on-exec
//! marking, memfds, the working directory.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use super::*;

#[repr(C)]
pub(super) struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(2)`: opens `path` relative to `dirfd` with the given resolve
/// restrictions. Retries on EAGAIN, which the kernel returns when a rename
/// raced a RESOLVE_IN_ROOT walk.
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let p = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // `p` is NUL-terminated; `how` is a `struct open_how` that outlives the call.
        // SAFETY: valid pointers, and the size passed matches the struct.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                p.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match cvt_fd(ret) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: marks every fd from `first`
/// on close-on-exec, so nothing the caller did not pass reaches the container.
/// Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC: there each open fd is
/// marked with fcntl, as runc does.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: plain integer arguments; only fd flags change.
    match cvt(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) })
    {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::EINVAL | libc::EPERM)
            ) =>
        {
            cloexec_each_from(first)
        }
        Err(e) => Err(e),
    }
}

/// `fcntl(F_GET_SEALS)`: the seals of a memfd (EINVAL for other files).
pub fn get_seals(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    const F_GET_SEALS: libc::c_int = 1034;
    // SAFETY: F_GET_SEALS takes no argument and only reads fd state.
    cvt_int(unsafe { libc::fcntl(fd.as_raw_fd(), F_GET_SEALS) }.into())
}

/// `fcntl(F_ADD_SEALS)`: adds `seals` to a memfd.
pub fn add_seals(fd: BorrowedFd<'_>, seals: libc::c_int) -> io::Result<()> {
    const F_ADD_SEALS: libc::c_int = 1033;
    // SAFETY: F_ADD_SEALS takes an int argument; it only changes the memfd's seals.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), F_ADD_SEALS, seals) }.into()).map(drop)
}

/// Marks every open fd from `first` on close-on-exec, one fcntl each.
pub(super) fn cloexec_each_from(first: u32) -> io::Result<()> {
    // Collected first: the directory's own fd is among them while it is read.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd: &RawFd| fd >= 0 && fd as u32 >= first)
        .collect();
    for fd in fds {
        // A number closed since it was listed fails with EBADF, which is fine.
        // SAFETY: F_SETFD only changes the flag of an fd number.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBADF) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `memfd_create(2)`.
pub fn memfd_create(name: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string.
    let ret = unsafe { libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags) };
    cvt_fd(ret)
}

/// `umask(2)`.
pub fn umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// `getcwd(3)` into a fixed buffer; returns the raw bytes.
pub fn getcwd() -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: the buffer is valid for the given length.
    let ret = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    let n = usize::try_from(cvt(ret)?).unwrap_or(0);
    buf.truncate(n.saturating_sub(1));
    Ok(buf)
}

/// `dup2(2)` onto a fixed descriptor number (stdio).
pub fn dup2(old: RawFd, new: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the descriptor table; `new` is replaced atomically.
    cvt(unsafe { libc::dup2(old, new) } as libc::c_long).map(drop)
}

/// Clears FD_CLOEXEC on a descriptor number the caller passed us.
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // A closed number fails with EBADF.
    // SAFETY: F_SETFD with 0 only changes the flag of an fd number.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } as libc::c_long).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn is_cloexec(fd: &OwnedFd) -> bool {
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD)
            .map(|f| f & libc::FD_CLOEXEC != 0)
            .unwrap()
    }

    #[test]
    fn the_fcntl_fallback_marks_every_fd_from_first() {
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        let a: OwnedFd = f.into();
        let b = a.try_clone().unwrap();
        for fd in [&a, &b] {
            clear_cloexec(fd.as_raw_fd()).unwrap();
        }
        let (lo, hi) = if a.as_raw_fd() < b.as_raw_fd() {
            (&a, &b)
        } else {
            (&b, &a)
        };
        cloexec_each_from(hi.as_raw_fd() as u32).unwrap();
        assert!(is_cloexec(hi));
        assert!(!is_cloexec(lo));
    }
}
