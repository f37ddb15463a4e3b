//! Protection of the host's `berth` binary (the CVE-2019-5736 class).
//!
//! A process in the container can make the kernel execute the binary of a
//! process entering the container (via `/proc/self/exe` as an interpreter) and
//! then write to it through `/proc/<pid>/exe`. Before `berth` forks anything
//! that enters a container, it re-executes itself from a sealed memfd copy,
//! so that what `/proc/self/exe` names cannot be written.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;

use crate::syscall;

const F_ADD_SEALS: i32 = 1033;
const F_GET_SEALS: i32 = 1034;
const F_SEAL_SEAL: i32 = 0x1;
const F_SEAL_SHRINK: i32 = 0x2;
const F_SEAL_GROW: i32 = 0x4;
const F_SEAL_WRITE: i32 = 0x8;
const SEALS: i32 = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
const MFD_CLOEXEC: u32 = 1;
const MFD_ALLOW_SEALING: u32 = 2;
const MFD_EXEC: u32 = 0x10;

/// Errors of the self-protection step.
#[derive(Debug, thiserror::Error)]
#[error("protect the berth binary: {what}: {err}")]
pub struct Error {
    what: &'static str,
    err: io::Error,
}

fn e(what: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |err| Error { what, err }
}

/// True when this process already runs from a sealed copy.
pub fn is_sealed() -> bool {
    let Ok(f) = File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS takes no argument and only reads fd state.
    let s = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), F_GET_SEALS) };
    s >= 0 && (s & F_SEAL_WRITE) != 0
}

/// Re-executes the current command from a sealed memfd copy of the binary,
/// unless it already runs from one. Returns only on failure.
pub fn reexec_sealed() -> Result<(), Error> {
    if is_sealed() {
        return Ok(());
    }
    let mut src = File::open("/proc/self/exe").map_err(e("open /proc/self/exe"))?;
    let memfd = match syscall::memfd_create(c"berth", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC) {
        Ok(fd) => fd,
        // Kernels before 6.3 do not know MFD_EXEC; their memfds are executable.
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
            syscall::memfd_create(c"berth", MFD_CLOEXEC | MFD_ALLOW_SEALING)
                .map_err(e("memfd_create"))?
        }
        Err(err) => return Err(e("memfd_create")(err)),
    };
    let mut dst = File::from(memfd);
    io::copy(&mut src, &mut dst).map_err(e("copy binary to memfd"))?;
    // SAFETY: F_ADD_SEALS takes an int argument; it only changes the memfd's seals.
    if unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&dst), F_ADD_SEALS, SEALS) } < 0 {
        return Err(e("seal memfd")(io::Error::last_os_error()));
    }
    let argv: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.into_vec()).ok())
        .collect();
    let envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).ok()
        })
        .collect();
    Err(e("execveat memfd")(syscall::fexecve(
        dst.as_fd(),
        &argv,
        &envp,
    )))
}
