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
