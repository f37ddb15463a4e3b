//! `berth-shim hold`: the holder of a pod's shared namespaces, Berth's own
//! pause process. A CRI pod's containers join the IPC, UTS and PID
//! namespaces it made; no pause image is pulled for it.
//!
//! With a user namespace for the pod (`--uidmap`/`--gidmap`), a child makes
//! it first, the maps are written from outside, and the other namespaces,
//! network included, are made inside it, owned by it: a container's root may
//! then mount mqueue and sysfs and set the hostname, which namespaces owned
//! by the host's user namespace refuse it.
//!
//! It unshares the namespaces, sets the pod's hostname, forks its holder
//! (PID 1 of the new PID namespace) and prints the holder's pid. The holder
//! leaves every host path behind (its root becomes an empty read-only tmpfs),
//! gives up root and every capability, and then only reaps the orphans the
//! pod's processes leave it, until SIGTERM or SIGINT. Processes of the pod
//! cannot signal it (the kernel drops their signals to a namespace's init
//! that has no handler), and its /proc entries are closed to them.
//!
//! Runs before any thread exists (the shim's tokio runtime is not started in
//! this mode), so the forked child may allocate.

use std::io::Write;

use berth_rules::idmap::{self, IdMap, UserMaps};
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};

/// The uid and gid the holder runs as (the pause image's 65535).
const NOBODY: u32 = 65535;

/// Which namespaces a pod shares through its holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HoldOptions {
    /// A new IPC namespace (else the host's).
    pub ipc: bool,
    /// A new UTS namespace with this hostname (else the host's).
    pub hostname: Option<String>,
    /// A new PID namespace whose init is the holder (else the host's).
    pub pid: bool,
    /// A new network namespace (made here only inside a new user namespace;
    /// otherwise berthd makes the pod's).
    pub net: bool,
    /// A new user namespace with these uid and gid maps, owning the others.
    pub userns: Option<UserMaps>,
}

impl HoldOptions {
    /// The ids the holder runs as: the pause image's 65535 where the pod's
    /// user namespace maps it, else the highest id it maps.
    fn holder_ids(&self) -> (u32, u32) {
        let pick = |maps: &[IdMap]| {
            if maps.is_empty() || idmap::to_host(maps, NOBODY).is_some() {
                return NOBODY;
            }
            maps.iter()
                .map(|m| m.container + (m.len - 1))
                .max()
                .unwrap_or(NOBODY)
        };
        match &self.userns {
            Some((u, g)) => (pick(u), pick(g)),
            None => (NOBODY, NOBODY),
        }
    }
}

/// A failure before the holder runs.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct HoldError {
    /// The step, with its object.
    what: String,
    /// Why.
    source: nix::errno::Errno,
}

fn step(what: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> HoldError {
    let what = what.into();
    move |source| HoldError { what, source }
}

/// The flags to unshare for `o` (a mount namespace always: the holder's root
/// change must not reach the host).
pub fn clone_flags(o: &HoldOptions) -> CloneFlags {
    let mut f = CloneFlags::CLONE_NEWNS;
    if o.ipc {
        f |= CloneFlags::CLONE_NEWIPC;
    }
    if o.hostname.is_some() {
        f |= CloneFlags::CLONE_NEWUTS;
    }
    if o.pid {
        f |= CloneFlags::CLONE_NEWPID;
    }
    if o.net {
        f |= CloneFlags::CLONE_NEWNET;
    }
    f
}

/// Makes the namespaces, starts the holder in them and prints its pid; the
/// calling process then exits and the holder lives on.
pub fn start(o: &HoldOptions) -> Result<(), HoldError> {
    match &o.userns {
        None => make_and_hold(o),
        Some((uid, gid)) => in_new_userns(o, uid, gid),
    }
}

/// A child makes the user namespace; once its maps are written from here
/// (the host's root may write any), it makes the rest and the holder in it.
fn in_new_userns(o: &HoldOptions, uid: &[IdMap], gid: &[IdMap]) -> Result<(), HoldError> {
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(step("pipe"))?;
    let (go_r, go_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(step("pipe"))?;
    match crate::sys::fork_single_threaded().map_err(step("fork"))? {
        ForkResult::Child => {
            drop(ready_r);
            drop(go_w);
            let made = (|| {
                unshare(CloneFlags::CLONE_NEWUSER)
                    .map_err(step("unshare the pod's user namespace"))?;
                nix::unistd::write(&ready_w, b"u").map_err(step("tell the maps may be written"))?;
                drop(ready_w);
                let mut b = [0u8; 1];
                match nix::unistd::read(&go_r, &mut b) {
                    Ok(1) => {}
                    _ => return Err(step("wait for the maps")(nix::errno::Errno::EPIPE)),
                }
                // Become the namespace's root (the host's root is not mapped
                // in it): the later switch to the holder's ids then drops
                // every capability, as the kernel does only when leaving root.
                let root = (Gid::from_raw(0), Uid::from_raw(0));
                nix::unistd::setresgid(root.0, root.0, root.0)
                    .map_err(step("setresgid 0 in the pod's user namespace"))?;
                nix::unistd::setresuid(root.1, root.1, root.1)
                    .map_err(step("setresuid 0 in the pod's user namespace"))?;
                make_and_hold(o)
            })();
            let code = match made {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            };
            std::process::exit(code)
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(go_r);
            let mut b = [0u8; 1];
            let unshared = matches!(nix::unistd::read(&ready_r, &mut b), Ok(1));
            let mapped = unshared
                && write_map(child, "uid_map", uid).is_ok()
                && write_map(child, "gid_map", gid).is_ok()
                && nix::unistd::write(&go_w, b"g").is_ok();
            drop(go_w);
            let st = waitpid(child, None).map_err(step("wait for the pod's namespaces"))?;
            match st {
                WaitStatus::Exited(_, 0) if mapped => Ok(()),
                _ if unshared && !mapped => Err(step("write the pod's uid and gid maps")(
                    nix::errno::Errno::EPERM,
                )),
                // The child said why on stderr.
                _ => Err(step("make the pod's namespaces in its user namespace")(
                    nix::errno::Errno::ECHILD,
                )),
            }
        }
    }
}

fn write_map(pid: Pid, file: &str, maps: &[IdMap]) -> std::io::Result<()> {
    std::fs::write(format!("/proc/{pid}/{file}"), idmap::proc_text(maps))
}

/// Unshares the namespaces, sets the hostname and forks the holder.
fn make_and_hold(o: &HoldOptions) -> Result<(), HoldError> {
    unshare(clone_flags(o)).map_err(step("unshare the pod's namespaces"))?;
    if let Some(h) = &o.hostname {
        nix::unistd::sethostname(h).map_err(step(format!("set the pod's hostname {h:?}")))?;
    }
    // Quiet and detached before the fork, so the holder inherits it: the
    // caller reads our stdout to its end, which must come when we exit.
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| step("open /dev/null")(errno_of(&e)))?;
    match crate::sys::fork_single_threaded().map_err(step("fork the holder"))? {
        ForkResult::Parent { child } => {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{child}");
            let _ = out.flush();
            Ok(())
        }
        ForkResult::Child => {
            let _ = nix::unistd::dup2_stdin(&null);
            let _ = nix::unistd::dup2_stdout(&null);
            let _ = nix::unistd::dup2_stderr(&null);
            drop(null);
            let code = match hold(o.holder_ids()) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            std::process::exit(code)
        }
    }
}

fn errno_of(e: &std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The holder: leave the host's files, drop privileges, reap until told to stop.
fn hold((uid, gid): (u32, u32)) -> Result<(), HoldError> {
    nix::unistd::setsid().map_err(step("setsid"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(step("make mounts private"))?;
    // An empty tmpfs becomes the root; the old one is detached, so nothing
    // of the host is reachable through the holder's /proc/1/root.
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        flags,
        Some("size=4k,mode=0555"),
    )
    .map_err(step("mount the holder's root"))?;
    nix::unistd::chdir("/tmp").map_err(step("chdir"))?;
    nix::unistd::pivot_root(".", ".").map_err(step("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step("detach the old root"))?;
    nix::unistd::chdir("/").map_err(step("chdir"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | flags,
        None::<&str>,
    )
    .map_err(step("make the holder's root read-only"))?;
    // Every capability goes with root (no keep-caps), and nothing regains them.
    nix::unistd::setgroups(&[]).map_err(step("setgroups"))?;
    let (g, u) = (Gid::from_raw(gid), Uid::from_raw(uid));
    nix::unistd::setresgid(g, g, g).map_err(step("setresgid"))?;
    nix::unistd::setresuid(u, u, u).map_err(step("setresuid"))?;
    nix::sys::prctl::set_no_new_privs().map_err(step("no_new_privs"))?;
    nix::sys::prctl::set_dumpable(false).map_err(step("set non-dumpable"))?;
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        set.add(s);
    }
    set.thread_block().map_err(step("block signals"))?;
    loop {
        match set.wait().map_err(step("wait for a signal"))? {
            Signal::SIGCHLD => reap(),
            _ => return Ok(()),
        }
    }
}

/// Reaps every exited child (orphans of the pod reparented to the holder).
fn reap() {
    while let Ok(st) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_namespaces_asked_for_are_made() {
        let all = HoldOptions {
            ipc: true,
            hostname: Some("pod".into()),
            pid: true,
            ..Default::default()
        };
        let f = clone_flags(&all);
        for flag in [
            CloneFlags::CLONE_NEWNS,
            CloneFlags::CLONE_NEWIPC,
            CloneFlags::CLONE_NEWUTS,
            CloneFlags::CLONE_NEWPID,
        ] {
            assert!(f.contains(flag), "{flag:?}");
        }
        assert!(!f.contains(CloneFlags::CLONE_NEWNET));
        let net = HoldOptions {
            net: true,
            ..Default::default()
        };
        assert!(clone_flags(&net).contains(CloneFlags::CLONE_NEWNET));
        // A host-network, host-IPC, host-PID pod: only the holder's own mounts.
        assert_eq!(
            clone_flags(&HoldOptions::default()),
            CloneFlags::CLONE_NEWNS
        );
    }

    #[test]
    fn the_holder_runs_as_an_id_the_pods_user_namespace_maps() {
        assert_eq!(HoldOptions::default().holder_ids(), (NOBODY, NOBODY));
        let wide = idmap::parse("0:100000:65536").unwrap();
        let o = HoldOptions {
            userns: Some((wide.clone(), wide)),
            ..Default::default()
        };
        assert_eq!(o.holder_ids(), (NOBODY, NOBODY));
        let narrow = idmap::parse("0:100000:1000").unwrap();
        let o = HoldOptions {
            userns: Some((narrow.clone(), narrow)),
            ..Default::default()
        };
        assert_eq!(o.holder_ids(), (999, 999));
    }
}
