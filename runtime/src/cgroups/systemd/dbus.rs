//! Talking to systemd's manager over D-Bus (zbus): start a transient scope,
//! change its properties, stop it. zbus runs an executor thread, and the
//! runtime must stay single-threaded until the container process execs, so
//! each conversation happens in a short-lived child process; the runtime
//! waits for its answer on a pipe, with a deadline.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::fcntl::OFlag;
use zbus::zvariant::{OwnedObjectPath, Value};

use super::{Prop, Unit};
use crate::cgroups::Error;
use crate::syscall;

/// How long systemd gets to answer and finish the job.
const DEADLINE: Duration = Duration::from_secs(30);

fn to_value(p: &Prop) -> Value<'_> {
    match p {
        Prop::Bool(_, v) => Value::from(*v),
        Prop::U64(_, v) => Value::from(*v),
        Prop::Str(_, v) => Value::from(v.as_str()),
        Prop::Bytes(_, v) => Value::from(v.clone()),
        Prop::U32s(_, v) => Value::from(v.clone()),
        Prop::Pairs(_, v) => Value::from(v.clone()),
        Prop::PathValues(_, v) => Value::from(v.clone()),
    }
}

fn connect(user: bool) -> zbus::Result<zbus::blocking::Connection> {
    if user {
        zbus::blocking::Connection::session()
    } else {
        zbus::blocking::Connection::system()
    }
}

fn manager(c: &zbus::blocking::Connection) -> zbus::Result<zbus::blocking::Proxy<'_>> {
    zbus::blocking::Proxy::new(
        c,
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
    )
}

/// Which manager: the system's, or for an unprivileged caller its user's.
fn bus_name(user: bool) -> &'static str {
    if user {
        "the user's systemd (session bus)"
    } else {
        "systemd (system bus)"
    }
}

/// Calls `method` on the manager and waits for the job it returns to end:
/// systemd's result ("done", or why not) from its JobRemoved signal.
fn run_job(
    user: bool,
    method: &str,
    body: &(impl serde::Serialize + zbus::zvariant::DynamicType),
) -> Result<(), String> {
    let c = connect(user).map_err(|e| format!("connect to {}: {e}", bus_name(user)))?;
    let m = manager(&c).map_err(|e| e.to_string())?;
    // Listening before the call: the job may end before it returns.
    let signals = m
        .receive_signal("JobRemoved")
        .map_err(|e| format!("listen for systemd's jobs: {e}"))?;
    m.call_method("Subscribe", &())
        .map_err(|e| format!("subscribe to systemd: {e}"))?;
    let job: OwnedObjectPath = m.call(method, body).map_err(|e| e.to_string())?;
    for msg in signals {
        let Ok((_, path, unit, result)) = msg
            .body()
            .deserialize::<(u32, OwnedObjectPath, String, String)>()
        else {
            continue;
        };
        if path == job {
            return if result == "done" {
                Ok(())
            } else {
                Err(format!(
                    "systemd's job for {unit} ended {result:?} (see journalctl -u {unit})"
                ))
            };
        }
    }
    Err("the connection to systemd closed before the job ended".into())
}

/// Runs `f` in a child process; its answer (or error) comes back as text:
/// `O` and the answer, or `E` and the error.
fn in_child(what: &str, f: impl FnOnce() -> Result<String, String>) -> Result<String, Error> {
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Error::Unsupported(format!("{what}: pipe: {e}")))?;
    let pid = syscall::clone_fork(libc::SIGCHLD)
        .map_err(|e| Error::Unsupported(format!("{what}: fork: {e}")))?;
    if pid == 0 {
        drop(rd);
        let msg = match f() {
            Ok(answer) => format!("O{answer}"),
            Err(e) => format!("E{e}"),
        };
        let _ = nix::unistd::write(&wr, msg.as_bytes());
        syscall::exit_now(0);
    }
    drop(wr);
    let answer = read_within(&rd, DEADLINE);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    match answer {
        Some(msg) => match msg.split_at_checked(1) {
            Some(("O", answer)) => Ok(answer.to_string()),
            Some(("E", e)) => Err(Error::Unsupported(format!("{what}: {e}"))),
            _ => Err(Error::Unsupported(format!(
                "{what}: the helper process ended without an answer"
            ))),
        },
        None => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            Err(Error::Unsupported(format!(
                "{what}: systemd did not answer within {}s",
                DEADLINE.as_secs()
            )))
        }
    }
}

/// Everything the child wrote before closing the pipe, or None past the
/// deadline.
fn read_within(fd: &OwnedFd, deadline: Duration) -> Option<String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let end = std::time::Instant::now() + deadline;
    let mut f = std::fs::File::from(fd.try_clone().ok()?);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = end.checked_duration_since(std::time::Instant::now())?;
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(_) => return None,
        }
        match f.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Where a manager's units' cgroups go: "" for the system's (the root), and
/// for a user's its own cgroup (`/user.slice/user-1000.slice/user@1000.service`),
/// from its ControlGroup property.
pub fn manager_root(user: bool) -> Result<String, Error> {
    if !user {
        return Ok(String::new());
    }
    in_child("systemd: the user manager's cgroup", || {
        let c = connect(user).map_err(|e| format!("connect to {}: {e}", bus_name(user)))?;
        let m = manager(&c).map_err(|e| e.to_string())?;
        m.get_property::<String>("ControlGroup")
            .map(|p| p.trim_end_matches('/').to_string())
            .map_err(|e| format!("read the manager's ControlGroup: {e}"))
    })
}

/// StartTransientUnit of the container's scope with `props` (its pid among
/// them), waiting until systemd has made it; the scope's cgroup path
/// (its ControlGroup: under a user's manager, below that manager's own).
pub fn start(unit: &Unit, props: &[Prop], user: bool) -> Result<String, Error> {
    in_child(&format!("systemd: start {}", unit.name), || {
        let values: Vec<(&str, Value<'_>)> =
            props.iter().map(|p| (p.name(), to_value(p))).collect();
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
        run_job(
            user,
            "StartTransientUnit",
            &(unit.name.as_str(), "replace", values, aux),
        )?;
        let c = connect(user).map_err(|e| format!("connect to {}: {e}", bus_name(user)))?;
        let m = manager(&c).map_err(|e| e.to_string())?;
        let path: OwnedObjectPath = m
            .call("GetUnit", &(unit.name.as_str(),))
            .map_err(|e| e.to_string())?;
        let scope = zbus::blocking::Proxy::new(
            &c,
            "org.freedesktop.systemd1",
            path,
            "org.freedesktop.systemd1.Scope",
        )
        .map_err(|e| e.to_string())?;
        scope
            .get_property::<String>("ControlGroup")
            .map_err(|e| format!("read {}'s ControlGroup: {e}", unit.name))
    })
}

/// SetUnitProperties of a running scope (runtime, not persisted).
pub fn set(unit: &str, props: &[Prop], user: bool) -> Result<(), Error> {
    in_child(&format!("systemd: set properties of {unit}"), || {
        let c = connect(user).map_err(|e| format!("connect to {}: {e}", bus_name(user)))?;
        let m = manager(&c).map_err(|e| e.to_string())?;
        let values: Vec<(&str, Value<'_>)> =
            props.iter().map(|p| (p.name(), to_value(p))).collect();
        m.call_method("SetUnitProperties", &(unit, true, values))
            .map(|_| String::new())
            .map_err(|e| e.to_string())
    })
    .map(|_| ())
}

/// StopUnit of the scope, waiting for it to go, then ResetFailedUnit so no
/// failed unit is left listed. A unit already gone is fine.
pub fn stop(unit: &str, user: bool) -> Result<(), Error> {
    in_child(&format!("systemd: stop {unit}"), || {
        match run_job(user, "StopUnit", &(unit, "replace")) {
            Ok(()) => {}
            Err(e) if e.contains("NoSuchUnit") || e.contains("not loaded") => {}
            Err(e) => return Err(e),
        }
        let c = connect(user).map_err(|e| format!("connect to {}: {e}", bus_name(user)))?;
        let m = manager(&c).map_err(|e| e.to_string())?;
        let _ = m.call_method("ResetFailedUnit", &(unit,));
        Ok(String::new())
    })
    .map(|_| ())
}
