//! Processes: clone3 (into a cgroup too), pidfds, exec, credentials,
//! prctl, scheduling, I/O priority, personality, rlimits, signals, keyrings.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::*;

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

/// `setdomainname(2)`: the NIS domain name of the UTS namespace.
pub fn setdomainname(name: &str) -> io::Result<()> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid C string of the given length.
    cvt(unsafe { libc::setdomainname(c.as_ptr(), name.len()) }.into()).map(drop)
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
