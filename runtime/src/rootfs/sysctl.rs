//! `linux.sysctl`: namespaced keys only, written through /proc/sys.

use crate::syscall;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use super::*;

/// Writes `linux.sysctl` through the container's /proc/sys (after the root
/// change), refusing anything that is not procfs or leaves /proc/sys.
pub fn write_sysctls(sysctl: &std::collections::HashMap<String, String>) -> Result<(), Error> {
    if sysctl.is_empty() {
        return Ok(());
    }
    let procsys = nix::fcntl::open(
        "/proc/sys",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nsys("open /proc/sys"))?;
    ensure_procfs(&procsys, "/proc/sys")?;
    let mut keys: Vec<_> = sysctl.keys().collect();
    keys.sort();
    for k in keys {
        let rel = k.replace('.', "/");
        let fd = syscall::openat2(
            procsys.as_fd(),
            Path::new(&rel),
            libc::O_WRONLY,
            0,
            // Not through a link, not out of /proc/sys, and not across a
            // mount: a file bound over a sysctl (even another procfs file,
            // CVE-2025-52881's redirect) is refused, not written.
            syscall::RESOLVE_NO_SYMLINKS | syscall::RESOLVE_BENEATH | syscall::RESOLVE_NO_XDEV,
        )
        .map_err(sys_err(format!("open sysctl {k}")))?;
        ensure_procfs(&fd, &format!("sysctl {k}"))?;
        let mut f = fs::File::from(fd);
        io::Write::write_all(&mut f, sysctl[k].as_bytes())
            .map_err(sys_err(format!("write sysctl {k}={}", sysctl[k])))?;
    }
    Ok(())
}

/// Validates sysctl keys against the namespaces the container has, as runc
/// does: a sysctl that would change the host is refused.
pub fn validate_sysctl(
    key: &str,
    has_net: bool,
    has_ipc: bool,
    has_uts: bool,
) -> Result<(), Error> {
    let ipc_keys = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let ok = if key.starts_with("net.") {
        has_net
    } else if ipc_keys.contains(&key) || key.starts_with("fs.mqueue.") {
        has_ipc
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        has_uts
    } else {
        return Err(Error::Invalid(format!(
            "linux.sysctl {key}: not namespaced, refused (it would change the host)"
        )));
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "linux.sysctl {key}: the container has no own namespace for it"
        )))
    }
}
