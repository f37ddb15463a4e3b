//! OCI hooks: each runs with the container state on stdin, its own args and
//! env, and an optional timeout; the caller decides what a failure means.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::state::SavedHook;
use crate::syscall;

/// Errors of hook execution.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} hook {path}: {err}")]
    Start {
        kind: &'static str,
        path: String,
        err: io::Error,
    },
    #[error("{kind} hook {path}: exit status {status}{output}")]
    Failed {
        kind: &'static str,
        path: String,
        status: i32,
        output: String,
    },
    #[error("{kind} hook {path}: timed out after {secs}s")]
    Timeout {
        kind: &'static str,
        path: String,
        secs: i64,
    },
    #[error("{kind} hook {path}: path must be absolute")]
    NotAbsolute { kind: &'static str, path: String },
    #[error("hooks.{kind}: hook {path}: timeout {secs}: must be greater than zero")]
    BadTimeout {
        kind: &'static str,
        path: String,
        secs: i64,
    },
}

/// Converts config hooks to the saved form.
pub fn from_spec(hooks: &Option<Vec<oci_spec::runtime::Hook>>) -> Vec<SavedHook> {
    hooks
        .iter()
        .flatten()
        .map(|h| SavedHook {
            path: h.path().to_string_lossy().into_owned(),
            args: h.args().clone().unwrap_or_default(),
            env: h.env().clone().unwrap_or_default(),
            timeout: h.timeout(),
        })
        .collect()
}

/// Checks hook paths before anything is created.
pub fn validate(kind: &'static str, hooks: &[SavedHook]) -> Result<(), Error> {
    for h in hooks {
        if !h.path.starts_with('/') {
            return Err(Error::NotAbsolute {
                kind,
                path: h.path.clone(),
            });
        }
        if let Some(secs) = h.timeout.filter(|t| *t <= 0) {
            return Err(Error::BadTimeout {
                kind,
                path: h.path.clone(),
                secs,
            });
        }
    }
    Ok(())
}

/// Runs hooks in order; stops at the first failure.
pub fn run_all(kind: &'static str, hooks: &[SavedHook], state: &str) -> Result<(), Error> {
    for h in hooks {
        run_one(kind, h, state, None)?;
    }
    Ok(())
}

/// As `run_all`, each hook started in `cwd`: createContainer hooks run in
/// the container's root before the root change, as runc runs them.
pub fn run_all_in(
    kind: &'static str,
    hooks: &[SavedHook],
    state: &str,
    cwd: &std::path::Path,
) -> Result<(), Error> {
    for h in hooks {
        run_one(kind, h, state, Some(cwd))?;
    }
    Ok(())
}

/// Runs every hook even when one fails, as the runtime spec asks of
/// poststart and poststop hooks; each failure is returned, in order.
pub fn run_each(kind: &'static str, hooks: &[SavedHook], state: &str) -> Vec<Error> {
    hooks
        .iter()
        .filter_map(|h| run_one(kind, h, state, None).err())
        .collect()
}

fn run_one(
    kind: &'static str,
    h: &SavedHook,
    state: &str,
    cwd: Option<&std::path::Path>,
) -> Result<(), Error> {
    let start_err = |err| Error::Start {
        kind,
        path: h.path.clone(),
        err,
    };
    let mut cmd = Command::new(&h.path);
    if let Some((arg0, rest)) = h.args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd.env_clear();
    for e in &h.env {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(start_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE).
        let _ = stdin.write_all(state.as_bytes());
    }
    let pidfd = syscall::pidfd_open(child.id() as i32).map_err(start_err)?;
    let deadline = h
        .timeout
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        let wait_ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Timeout {
                        kind,
                        path: h.path.clone(),
                        secs: h.timeout.unwrap_or(0),
                    });
                }
                i32::try_from(left.as_millis()).unwrap_or(i32::MAX)
            }
            None => -1,
        };
        let mut fds = [nix::poll::PollFd::new(
            pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(
            &mut fds,
            nix::poll::PollTimeout::try_from(wait_ms).unwrap_or(nix::poll::PollTimeout::NONE),
        ) {
            Ok(n) if n > 0 => break,
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(start_err(e.into())),
        }
    }
    let status = child.wait().map_err(start_err)?;
    if status.success() {
        return Ok(());
    }
    let mut out = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    let out = out.trim();
    let code = status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    });
    Err(Error::Failed {
        kind,
        path: h.path.clone(),
        status: code,
        output: if out.is_empty() {
            String::new()
        } else {
            format!(", output: {out}")
        },
    })
}
