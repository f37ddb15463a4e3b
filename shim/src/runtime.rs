//! Drives a runc-compatible runtime binary (`berth` by default, runc works
//! too) with fork+exec, one command per operation. Its errors come from its
//! `--log` (JSON lines), as containerd's runc shim reads them: the container's
//! stdio may be the runtime's own stderr, so stderr cannot carry them.

use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::io::{pipe, AsyncFdIo, ChildStdio};
use crate::reaper::Reaper;

/// A failed runtime command.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The binary could not be started.
    #[error("run {binary}: {source}")]
    Spawn {
        /// The runtime binary.
        binary: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("{binary} {command} {id}: {message}")]
    Failed {
        /// The runtime binary.
        binary: String,
        /// The subcommand.
        command: String,
        /// The container.
        id: String,
        /// Its last logged error, or its exit status.
        message: String,
    },
    /// Its output could not be read or understood.
    #[error("{binary} {command} {id}: bad output: {detail}")]
    Output {
        /// The runtime binary.
        binary: String,
        /// The subcommand.
        command: String,
        /// The container.
        id: String,
        /// What was wrong.
        detail: String,
    },
}

impl RuntimeError {
    /// The runtime said the container or process is not there (any more).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::Failed { message, .. }
            if message.contains("does not exist") || message.contains("not found")
                || message.contains("not running") || message.contains("no such process"))
    }
}

/// The runtime binary and its options.
pub struct Runtime {
    binary: PathBuf,
    root: Option<PathBuf>,
    log: PathBuf,
    reaper: Arc<Reaper>,
    /// Global flags before the command (`--systemd-cgroup`).
    global: Vec<String>,
    /// Flags of `create` (`--no-pivot`, `--no-new-keyring`).
    create_flags: Vec<String>,
}

/// Options of `create` and `exec` beyond the container id.
pub struct Launch {
    /// Where the runtime writes the new process's pid.
    pub pid_file: PathBuf,
    /// Where it sends the pty master, for a terminal.
    pub console_socket: Option<PathBuf>,
    /// The process's stdio.
    pub stdio: ChildStdio,
}

impl Runtime {
    /// A runtime `binary` keeping its state under `root` (its default when
    /// `None`), logging to `log`.
    pub fn new(
        binary: PathBuf,
        root: Option<PathBuf>,
        log: PathBuf,
        reaper: Arc<Reaper>,
    ) -> Runtime {
        Runtime {
            binary,
            root,
            log,
            reaper,
            global: Vec::new(),
            create_flags: Vec::new(),
        }
    }

    /// The same runtime with global flags (before every command) and
    /// `create` flags, as containerd's runc options ask.
    pub fn with_flags(mut self, global: Vec<String>, create: Vec<String>) -> Runtime {
        self.global = global;
        self.create_flags = create;
        self
    }

    fn command(&self, sub: &str) -> Command {
        let mut c = Command::new(&self.binary);
        if let Some(root) = &self.root {
            c.arg("--root").arg(root);
        }
        c.arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        c.args(&self.global);
        c.arg(sub);
        c
    }

    fn failed(&self, command: &str, id: &str, message: String) -> RuntimeError {
        RuntimeError::Failed {
            binary: self.binary.display().to_string(),
            command: command.into(),
            id: id.into(),
            message,
        }
    }

    /// Runs `cmd` to its end and returns its stdout when `capture`.
    async fn run(
        &self,
        mut cmd: Command,
        sub: &str,
        id: &str,
        stdio: ChildStdio,
        capture: bool,
    ) -> Result<Vec<u8>, RuntimeError> {
        let fd_or_null = |fd: Option<OwnedFd>| fd.map(Stdio::from).unwrap_or_else(Stdio::null);
        cmd.stdin(fd_or_null(stdio.stdin));
        cmd.stderr(fd_or_null(stdio.stderr));
        let spawn_err = |source| RuntimeError::Spawn {
            binary: self.binary.display().to_string(),
            source,
        };
        let reader = if capture {
            let (r, w) = pipe().map_err(spawn_err)?;
            cmd.stdout(Stdio::from(w));
            Some(r)
        } else {
            cmd.stdout(fd_or_null(stdio.stdout));
            None
        };
        let log_start = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let child = cmd.spawn().map_err(spawn_err)?;
        // Subscribed before any await: the reaper cannot take the exit first.
        let exit = self.reaper.subscribe(child.id() as i32);
        // The write ends went to the child; ours close with `cmd`.
        drop(cmd);
        let mut out = Vec::new();
        if let Some(r) = reader {
            let r = AsyncFdIo::new(r).map_err(spawn_err)?;
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) => {
                        return Err(RuntimeError::Output {
                            binary: self.binary.display().to_string(),
                            command: sub.into(),
                            id: id.into(),
                            detail: e.to_string(),
                        })
                    }
                }
            }
        }
        let exit = crate::reaper::exited(exit)
            .await
            .ok_or_else(|| self.failed(sub, id, "lost its exit status".into()))?;
        if exit.status != 0 {
            let msg = self
                .last_error(log_start)
                .unwrap_or_else(|| format!("exit status {}", exit.status));
            return Err(self.failed(sub, id, msg));
        }
        Ok(out)
    }

    /// The last error the runtime logged after byte `from` of its log.
    fn last_error(&self, from: u64) -> Option<String> {
        let mut f = std::fs::File::open(&self.log).ok()?;
        f.seek(SeekFrom::Start(from)).ok()?;
        let mut s = String::new();
        f.take(1 << 20).read_to_string(&mut s).ok()?;
        s.lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| matches!(v["level"].as_str(), Some("error") | Some("fatal")))
            .find_map(|v| v["msg"].as_str().map(str::to_owned))
    }

    /// `create --bundle B --pid-file F [--console-socket S] ID`.
    pub async fn create(&self, id: &str, bundle: &Path, l: Launch) -> Result<(), RuntimeError> {
        let mut c = self.command("create");
        c.args(&self.create_flags);
        c.arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&l.pid_file);
        if let Some(s) = l.console_socket {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id);
        self.run(c, "create", id, l.stdio, false).await.map(drop)
    }

    /// `exec --detach --process P --pid-file F [--console-socket S] ID`.
    pub async fn exec(&self, id: &str, process: &Path, l: Launch) -> Result<(), RuntimeError> {
        let mut c = self.command("exec");
        c.arg("--detach")
            .arg("--process")
            .arg(process)
            .arg("--pid-file")
            .arg(&l.pid_file);
        if let Some(s) = l.console_socket {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id);
        self.run(c, "exec", id, l.stdio, false).await.map(drop)
    }

    async fn simple(&self, sub: &str, args: &[&OsStr], id: &str) -> Result<Vec<u8>, RuntimeError> {
        let mut c = self.command(sub);
        c.args(args).arg(id);
        self.run(c, sub, id, ChildStdio::default(), false).await
    }

    /// `start ID`.
    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple("start", &[], id).await.map(drop)
    }

    /// `kill [--all] ID SIGNAL`.
    pub async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), RuntimeError> {
        let mut c = self.command("kill");
        if all {
            c.arg("--all");
        }
        c.arg(id).arg(signal.to_string());
        self.run(c, "kill", id, ChildStdio::default(), false)
            .await
            .map(drop)
    }

    /// `pause ID`.
    pub async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple("pause", &[], id).await.map(drop)
    }

    /// `resume ID`.
    pub async fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple("resume", &[], id).await.map(drop)
    }

    /// `update -r FILE ID`.
    pub async fn update(&self, id: &str, resources: &Path) -> Result<(), RuntimeError> {
        self.simple("update", &[OsStr::new("-r"), resources.as_os_str()], id)
            .await
            .map(drop)
    }

    /// `delete [--force] ID`.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let args: &[&OsStr] = if force { &[OsStr::new("--force")] } else { &[] };
        self.simple("delete", args, id).await.map(drop)
    }

    /// `ps --format json ID`: the pids in the container.
    pub async fn ps(&self, id: &str) -> Result<Vec<u32>, RuntimeError> {
        let mut c = self.command("ps");
        c.arg("--format").arg("json").arg(id);
        let out = self.run(c, "ps", id, ChildStdio::default(), true).await?;
        serde_json::from_slice(&out).map_err(|e| RuntimeError::Output {
            binary: self.binary.display().to_string(),
            command: "ps".into(),
            id: id.into(),
            detail: e.to_string(),
        })
    }

    /// `events --stats ID`: runc's stats JSON object.
    pub async fn stats(&self, id: &str) -> Result<serde_json::Value, RuntimeError> {
        let mut c = self.command("events");
        c.arg("--stats").arg(id);
        let out = self
            .run(c, "events", id, ChildStdio::default(), true)
            .await?;
        serde_json::from_slice(&out).map_err(|e| RuntimeError::Output {
            binary: self.binary.display().to_string(),
            command: "events --stats".into(),
            id: id.into(),
            detail: e.to_string(),
        })
    }

    /// The runtime binary this shim runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }
}
