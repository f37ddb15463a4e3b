//! The shim's few raw system calls, each wrapped once. Everything else goes
//! through nix's safe wrappers.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// Sets a pty's window size (TIOCSWINSZ on its master).
pub fn set_winsize(master: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // TIOCSWINSZ reads one `winsize`; the fd is borrowed, so open.
    // SAFETY: the pointer is to a live local `winsize` for the whole call.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Registers an owned fd with tokio's reactor.
pub fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // An OwnedFd's `as_raw_fd` is always the same open fd, closed only by it.
    // SAFETY: so the fd stays valid for as long as the AsyncFd owns it.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

/// fork(2), for a process that has no other thread (the `hold` mode runs
/// before any runtime starts), so the child may run ordinary code.
pub fn fork_single_threaded() -> nix::Result<nix::unistd::ForkResult> {
    // No other thread exists, so none can hold a lock the child would need.
    // SAFETY: the caller is single-threaded (see above); the child is safe.
    unsafe { nix::unistd::fork() }
}

/// One malloc arena for the whole shim: it is one thread but for short
/// blocking helpers, and each of those would otherwise keep an arena of its
/// own (a shim per container: its memory is multiplied). No-op outside
/// glibc.
pub fn single_malloc_arena() {
    #[cfg(target_env = "gnu")]
    {
        // Called before the runtime's threads start.
        // SAFETY: mallopt takes two integers and changes only allocator tuning.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// A child in a new user namespace that does nothing but wait: it closes
/// its copy of `write_fd` and reads `wait_fd` until the parent closes its
/// end, then exits. Made with a raw
/// clone(CLONE_NEWUSER) so it works in a shim that has blocking helper
/// threads: the child runs only read(2) and _exit(2), both
/// async-signal-safe. Returns the child's pid.
pub fn spawn_userns_waiter(
    wait_fd: BorrowedFd<'_>,
    write_fd: BorrowedFd<'_>,
) -> io::Result<libc::pid_t> {
    let fd = wait_fd.as_raw_fd();
    let wfd = write_fd.as_raw_fd();
    // With a NULL stack the child continues on a copy of the caller's stack.
    // SAFETY: as fork(2); the child below touches no lock and no allocator.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
            0 as libc::c_ulong,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if ret == 0 {
        // SAFETY: closes the child's own copy of the write end; the parent's stays.
        unsafe { libc::close(wfd) };
        let mut b = [0u8; 1];
        // SAFETY: reads into a live local buffer of the length given.
        let _ = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        // SAFETY: _exit ends the child at once, running nothing of the parent's.
        unsafe { libc::_exit(0) };
    }
    libc::pid_t::try_from(ret).map_err(|_| io::Error::other("clone returned an impossible pid"))
}

fn cstr(p: &std::path::Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

fn cvt_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = std::os::fd::RawFd::try_from(ret)
        .map_err(|_| io::Error::other("the kernel returned an impossible fd"))?;
    // SAFETY: the kernel just returned this new fd, and nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// `open_tree(path, OPEN_TREE_CLONE)`: a detached copy of the mount at
/// `path` (not recursive), close-on-exec.
pub fn open_tree_clone(path: &std::path::Path) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    let p = cstr(path)?;
    // SAFETY: `p` is a valid C string; flags are plain integers.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, p.as_ptr(), flags) };
    cvt_fd(ret)
}

/// `mount_setattr(MOUNT_ATTR_IDMAP)` on the detached mount `fd`: file
/// ownership seen through it is mapped by the user namespace `userns`.
pub fn mount_setattr_idmap(fd: BorrowedFd<'_>, userns: BorrowedFd<'_>) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: u64::try_from(userns.as_raw_fd())
            .map_err(|_| io::Error::other("negative fd"))?,
    };
    // `attr` is of the size passed (`struct mount_attr`'s first version).
    // SAFETY: valid fd, an empty C string, and `attr` outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `move_mount`: attaches the detached mount `from` on the directory `to`
/// (an O_PATH fd, so the mount lands on what was opened, not on a path).
pub fn move_mount_onto(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: valid fds and empty C-string paths.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
