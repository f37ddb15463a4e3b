//! The filter installed, and a notification fd handed to the profile's
//! listener as the runtime spec describes.

use oci_spec::runtime::LinuxSeccomp;
use std::io;

use super::*;

/// Installs the filter on the calling thread; returns the user-notification
/// fd when the filter has notify rules.
pub fn install(f: &Filter) -> Result<Option<std::os::fd::OwnedFd>, Error> {
    let prog: Vec<libc::sock_filter> = f
        .program
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    crate::syscall::seccomp_set_filter(f.flags, &prog).map_err(|err| Error::Io {
        what: format!("install seccomp filter ({} instructions)", prog.len()),
        err,
    })
}

/// Hands a notification fd to the profile's listener, as the runtime spec
/// describes: the container process state as JSON, the fd attached
/// (SCM_RIGHTS), named "seccompFd" in `fds`.
pub fn send_to_listener(
    s: &LinuxSeccomp,
    pid: i32,
    state: serde_json::Value,
    fd: &std::os::fd::OwnedFd,
) -> Result<(), Error> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    use std::os::fd::AsRawFd;
    let path = s
        .listener_path()
        .as_ref()
        .ok_or_else(|| Error::Invalid("SCMP_ACT_NOTIFY needs listenerPath".into()))?;
    let io_err = |what: &str| {
        let what = format!("{what} seccomp listener {}", path.display());
        move |err: io::Error| Error::Io { what, err }
    };
    let sock = std::os::unix::net::UnixStream::connect(path).map_err(io_err("connect"))?;
    let msg = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": s.listener_metadata().clone().unwrap_or_default(),
        "state": state,
    })
    .to_string();
    let fds = [fd.as_raw_fd()];
    let iov = [io::IoSlice::new(msg.as_bytes())];
    sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| io_err("send to")(e.into()))?;
    Ok(())
}
