//! The fenced unsafe layer: every raw system call that nix does not wrap is
//! wrapped here, once, with its safety argument. Everything above this module
//! is safe Rust.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// `openat2` resolve flags (linux/openat2.h).
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
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
const AT_RECURSIVE: libc::c_uint = 0x8000;

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
    // SAFETY: a non-negative return of a call that makes a descriptor is a
    // new descriptor that nothing else owns.
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

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(2)`: opens `path` relative to `dirfd` with the given resolve
/// restrictions. Retries on EAGAIN, which the kernel returns when a rename
/// raced a RESOLVE_IN_ROOT walk.
pub fn openat2(
    dirfd: RawFd,
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
                dirfd,
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

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)` on the mount at `fd` (AT_EMPTY_PATH), optionally recursive.
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, set: u64, clear: u64) -> io::Result<()> {
    mount_setattr_raw(
        fd,
        recursive,
        &MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation: 0,
            userns_fd: 0,
        },
    )
}

fn mount_setattr_raw(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // The empty path is a valid C string; `attr` outlives the call.
    // SAFETY: valid pointers, and the size passed matches `struct mount_attr`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    cvt(ret).map(drop)
}

/// `pivot_root(2)`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let a = cstr(new_root)?;
    let b = cstr(put_old)?;
    // SAFETY: both arguments are valid NUL-terminated strings.
    cvt(unsafe { libc::syscall(libc::SYS_pivot_root, a.as_ptr(), b.as_ptr()) }).map(drop)
}

/// A raw `clone(2)` with fork semantics (no new stack, SIGCHLD on exit).
/// Returns 0 in the child and the child's pid in the parent.
///
/// Only sound in a single-threaded process: the child is a copy of this one
/// thread, and libc's atfork handlers do not run. The runtime never starts a
/// second thread, which is what makes all later work in the child safe.
pub fn clone_fork(flags: libc::c_int) -> io::Result<libc::pid_t> {
    // With a NULL stack the child continues on a copy of the caller's stack, as fork(2).
    // SAFETY: like fork, sound because the caller is single-threaded.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
            0 as libc::c_ulong,
        )
    };
    cvt_int(ret)
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    cvt_fd(ret)
}

/// `pidfd_send_signal(2)`: signals exactly the process the pidfd refers to,
/// so a recycled pid is never hit.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: a valid pidfd, a NULL siginfo and zero flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    cvt(ret).map(drop)
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

/// Marks every open fd from `first` on close-on-exec, one fcntl each.
fn cloexec_each_from(first: u32) -> io::Result<()> {
    // Collected first: the directory's own fd is among them while it is read.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd: &RawFd| fd >= 0 && fd as u32 >= first)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD only changes the flag of an fd number; a number
        // closed since it was listed fails with EBADF, which is fine.
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

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: executes the file behind `fd`.
/// Returns only on failure.
pub fn fexecve(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // argv and envp are NULL-terminated arrays of C strings that outlive the call.
    // SAFETY: valid pointers; the empty path with AT_EMPTY_PATH names `fd` itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    io::Error::last_os_error()
}

/// `execve(2)`. Returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: all pointers are to C strings or NULL-terminated arrays that outlive the call.
    unsafe {
        libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr());
    }
    io::Error::last_os_error()
}

/// `prctl(2)` with integer arguments.
pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the options used by this crate take integer arguments only.
    let ret = unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    cvt_int(ret.into())
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)` for the calling process.
pub fn ioprio_set(prio: libc::c_int) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    cvt(unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) }).map(drop)
}

/// `sched_setattr(2)` for the calling process.
#[allow(clippy::too_many_arguments)]
pub fn sched_setattr(
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
) -> io::Result<()> {
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let attr = SchedAttr {
        size: size_u32::<SchedAttr>(),
        policy,
        flags,
        nice,
        priority,
        runtime,
        deadline,
        period,
    };
    // SAFETY: `attr` is a valid `struct sched_attr` (version 0 layout) with its size set.
    cvt(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) })
        .map(drop)
}

/// `personality(2)`.
pub fn personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: plain integer argument.
    cvt(unsafe { libc::personality(persona) } as libc::c_long).map(drop)
}

/// `umask(2)`.
pub fn umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// `setgroups(2)` with the raw syscall, so that it applies to this thread only
/// (the process is single-threaded) and needs no libc set-id broadcast.
pub fn setgroups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: `groups` is a valid array of the length passed.
    cvt(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) }).map(drop)
}

/// `setresuid(2)`, raw.
pub fn setresuid(uid: libc::uid_t) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    cvt(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

/// `setresgid(2)`, raw.
pub fn setresgid(gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    cvt(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
}

/// `_exit(2)`: leaves the child without running the parent's atexit handlers
/// or flushing buffers it shares with the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is always safe to call.
    unsafe { libc::_exit(code) }
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

/// `waitid(P_PIDFD, fd, WEXITED)` on a pidfd; returns the exit status as a
/// shell would report it (128+N for a signal).
pub fn wait_pidfd(pidfd: BorrowedFd<'_>, nohang: bool) -> io::Result<Option<i32>> {
    const P_PIDFD: libc::idtype_t = 3;
    // SAFETY: zeroed siginfo is a valid out-parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let mut opts = libc::WEXITED;
    if nohang {
        opts |= libc::WNOHANG;
    }
    loop {
        let id = pidfd.as_raw_fd() as libc::id_t;
        // SAFETY: `info` is a valid siginfo_t out-parameter.
        let ret = unsafe { libc::waitid(P_PIDFD, id, &mut info, opts) };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        break;
    }
    // SAFETY: waitid filled `info` for a child event (or left si_pid 0 with WNOHANG).
    let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(if code == libc::CLD_EXITED {
        status
    } else {
        128 + status
    }))
}

/// `ioctl(fd, req, arg)` with an integer argument.
pub fn ioctl_int(fd: RawFd, req: libc::c_ulong, arg: libc::c_int) -> io::Result<libc::c_int> {
    // Only integer-argument requests (TIOCGPTPEER, TIOCSCTTY) go through here.
    // SAFETY: such requests read no memory through `arg`.
    let ret = unsafe { libc::ioctl(fd, req as _, arg) };
    cvt_int(ret.into())
}

/// Unlocks a pty master (`TIOCSPTLCK` with 0).
pub fn unlockpt(fd: RawFd) -> io::Result<()> {
    let zero: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which is valid.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCSPTLCK as _, &zero as *const libc::c_int) };
    cvt(ret as libc::c_long).map(drop)
}

/// Sets every signal's disposition back to default and unblocks all signals,
/// so the container process starts as a fresh process would (Rust's runtime
/// ignores SIGPIPE, and `run` blocks signals to forward them).
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL is always valid; invalid numbers just fail.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty, initialized set passed to sigprocmask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
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

/// How `prlimit` names a resource: glibc's unsigned enum, musl's int.
#[cfg(target_env = "gnu")]
pub type RlimitResource = libc::__rlimit_resource_t;
/// How `prlimit` names a resource: glibc's unsigned enum, musl's int.
#[cfg(not(target_env = "gnu"))]
pub type RlimitResource = libc::c_int;

/// `prlimit(2)` on another process: sets a resource limit of `pid`. The
/// parent uses it so that limits above the current hard limit can be set even
/// when the child already lives in a new user namespace.
pub fn prlimit(pid: libc::pid_t, res: RlimitResource, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit read by the kernel; the old-limit pointer is NULL.
    cvt(unsafe { libc::prlimit(pid, res, &lim, std::ptr::null_mut()) } as libc::c_long).map(drop)
}

/// `TIOCGWINSZ`: the window size of a terminal.
pub fn get_winsize(fd: RawFd) -> io::Result<libc::winsize> {
    // SAFETY: zeroed winsize is a valid out-parameter.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which is valid.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws as *mut libc::winsize) };
    cvt(ret as libc::c_long)?;
    Ok(ws)
}

/// `TIOCSWINSZ`: sets the window size of a terminal.
pub fn set_winsize(fd: RawFd, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads one winsize through the pointer, which is valid.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws as *const libc::winsize) } as libc::c_long)
        .map(drop)
}

/// `TIOCGPTPEER`: opens the slave of a pty master.
pub fn open_pty_peer(master: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes open flags as an integer argument.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER as _, flags) };
    cvt_fd(ret.into())
}

/// `fsopen(2)`: a filesystem context for `fstype`, close-on-exec.
pub fn fsopen(fstype: &CStr) -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    // SAFETY: `fstype` is a valid C string; flags are plain integers.
    let ret = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    cvt_fd(ret)
}

/// `fsconfig(fd, FSCONFIG_SET_STRING, key, value)`.
pub fn fsconfig_set_string(fs: BorrowedFd<'_>, key: &CStr, value: &CStr) -> io::Result<()> {
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    // SAFETY: valid fd and C strings; aux is unused for strings.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// `fsconfig(fd, FSCONFIG_CMD_CREATE)`: creates the superblock.
pub fn fsconfig_create(fs: BorrowedFd<'_>) -> io::Result<()> {
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    // SAFETY: valid fd; key and value must be NULL for this command.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })
    .map(drop)
}

/// `fsmount(2)`: a detached mount of the created superblock with the given
/// MOUNT_ATTR_* bits, close-on-exec.
pub fn fsmount(fs: BorrowedFd<'_>, attrs: u64) -> io::Result<OwnedFd> {
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: valid fd and integer flags.
    let ret = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    cvt_fd(ret)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`; with
/// SECCOMP_FILTER_FLAG_NEW_LISTENER the returned notification fd.
pub fn seccomp_set_filter(flags: u32, prog: &[libc::sock_filter]) -> io::Result<Option<OwnedFd>> {
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    const FLAG_NEW_LISTENER: u32 = 1 << 3;
    let fprog = libc::sock_fprog {
        len: libc::c_ushort::try_from(prog.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seccomp filter over 65535 instructions",
            )
        })?,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if flags & FLAG_NEW_LISTENER != 0 {
        // With NEW_LISTENER the return value is a new fd.
        cvt_fd(ret).map(Some)
    } else {
        cvt(ret).map(|_| None)
    }
}

/// `bpf(BPF_PROG_LOAD)` of a BPF_PROG_TYPE_CGROUP_DEVICE program given as
/// raw 8-byte instructions; the verifier's log comes back in the error.
pub fn bpf_load_cgroup_device(insns: &[u64]) -> io::Result<OwnedFd> {
    const BPF_PROG_LOAD: libc::c_int = 5;
    const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    #[repr(C)]
    #[derive(Default)]
    struct Attr {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
    }
    let license = c"Apache";
    let mut log = [0u8; 4096];
    let attr = Attr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: size_u32::<[u8; 4096]>(),
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: `attr` points at live buffers (insns, license, log) for the call's duration.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const Attr,
            size_u32::<Attr>(),
        )
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        let msg = String::from_utf8_lossy(&log[..log.iter().position(|b| *b == 0).unwrap_or(0)])
            .trim()
            .to_string();
        return Err(io::Error::new(e.kind(), format!("{e}: {msg}")));
    }
    cvt_fd(ret)
}

/// `bpf(BPF_PROG_ATTACH)` of a device program to a cgroup directory, with
/// BPF_F_ALLOW_MULTI so the parents' programs still apply.
pub fn bpf_attach_cgroup_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    const BPF_PROG_ATTACH: libc::c_int = 8;
    const BPF_CGROUP_DEVICE: u32 = 6;
    const BPF_F_ALLOW_MULTI: u32 = 2;
    #[repr(C)]
    struct Attr {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
    }
    let attr = Attr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: `attr` is a valid, fully initialized bpf_attr prefix.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const Attr,
            size_u32::<Attr>(),
        )
    })
    .map(drop)
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)`: a new session keyring named
/// `name`; returns its serial.
pub fn join_session_keyring(name: &CStr) -> io::Result<i64> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    // SAFETY: `name` is a valid C string for the call's duration.
    cvt(unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) })
}

/// `clone3` with CLONE_INTO_CGROUP: like [`clone_fork`], and the child starts
/// in the cgroup v2 directory `cgroup` (no later migration, so no cgroup
/// write lock). Returns 0 in the child and its pid in the parent.
///
/// Sound only in a single-threaded process, as [`clone_fork`].
pub fn clone_into_cgroup(flags: u64, cgroup: BorrowedFd<'_>) -> io::Result<libc::pid_t> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let args = CloneArgs {
        flags: flags | CLONE_INTO_CGROUP,
        // With CLONE_PARENT the kernel takes the exit signal from us and
        // refuses one given here.
        exit_signal: if flags & libc::CLONE_PARENT as u64 != 0 {
            0
        } else {
            libc::SIGCHLD as u64
        },
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // Like fork: no stack given, the child runs on a copy of ours.
    // SAFETY: `args` is a valid clone_args of the size passed; single-threaded caller.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    cvt_int(ret)
}

/// `open_tree(path, OPEN_TREE_CLONE)`: a detached copy of the mount tree at
/// `path` (recursive with `recursive`), close-on-exec.
pub fn open_tree_clone(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let p = cstr(path)?;
    // SAFETY: `p` is a valid C string; flags are plain integers.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, p.as_ptr(), flags) };
    cvt_fd(ret)
}

/// `mount_setattr(MOUNT_ATTR_IDMAP)`: maps file ownership on the detached
/// mount `fd` through the user namespace `userns`.
pub fn mount_setattr_idmap(
    fd: BorrowedFd<'_>,
    recursive: bool,
    userns: BorrowedFd<'_>,
) -> io::Result<()> {
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    mount_setattr_raw(
        fd,
        recursive,
        &MountAttr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.as_raw_fd() as u64,
        },
    )
}

/// `move_mount`: attaches the detached mount `from` onto the object `to`.
pub fn move_mount_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
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
    cvt(ret).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

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
