//! The shim's life: `start` launches a daemonized `serve` and returns once it
//! listens; `serve` is the long-lived supervisor; `delete` cleans up after a
//! shim that died. What a restarted manager needs to find a shim is written
//! into the bundle: `address` (the socket), `shim.pid`, and `shim.json` (the
//! runtime it drives, for `delete`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use berth_proto::shim::shim_server::ShimServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::reaper::Reaper;
use crate::runtime::Runtime;
use crate::service::{valid_id, Service};

/// Where shims keep their private console sockets.
pub const RUN_DIR: &str = "/run/berth-shim";

/// A failed shim command.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// An I/O step failed.
    #[error("{what}: {source}")]
    Io {
        /// The step.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The daemon reported a failure before it was ready.
    #[error("shim for {id} did not start: {message}")]
    NotReady {
        /// The container.
        id: String,
        /// Its message.
        message: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// The options every shim command takes.
#[derive(Clone, Debug)]
pub struct Options {
    /// The container id.
    pub id: String,
    /// The bundle directory, absolute and canonical.
    pub bundle: PathBuf,
    /// The socket to serve on (start, serve).
    pub address: Option<PathBuf>,
    /// The runtime binary, absolute.
    pub runtime: PathBuf,
    /// The runtime's state root, if not its default.
    pub runtime_root: Option<PathBuf>,
    /// The serving shim's private directory (read back from `shim.json`).
    pub console_dir: Option<PathBuf>,
    /// Containers get systemd scopes (`berth --systemd-cgroup create`).
    pub systemd_cgroup: bool,
}

impl Options {
    /// Checks and completes parsed flags: a valid id, an existing bundle,
    /// absolute paths, and the runtime resolved now, once.
    pub fn new(
        id: String,
        bundle: &Path,
        address: Option<PathBuf>,
        runtime: Option<PathBuf>,
        runtime_root: Option<PathBuf>,
    ) -> Result<Options, DaemonError> {
        if !valid_id(&id) {
            return Err(DaemonError::Usage(format!("invalid container id {id:?}")));
        }
        let bundle = bundle
            .canonicalize()
            .map_err(io_err(format!("bundle {}", bundle.display())))?;
        if let Some(a) = &address {
            if !a.is_absolute() {
                return Err(DaemonError::Usage(format!(
                    "--address {} is not absolute",
                    a.display()
                )));
            }
        }
        let runtime = resolve_runtime(runtime)?;
        Ok(Options {
            id,
            bundle,
            address,
            runtime,
            runtime_root,
            console_dir: None,
            systemd_cgroup: false,
        })
    }

    /// The same options read back from a bundle's `shim.json`.
    pub fn from_bundle(id: String, bundle: &Path) -> Result<Options, DaemonError> {
        let bundle = bundle
            .canonicalize()
            .map_err(io_err(format!("bundle {}", bundle.display())))?;
        let raw = std::fs::read(bundle.join("shim.json"))
            .map_err(io_err(format!("read {}/shim.json", bundle.display())))?;
        let v: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| DaemonError::Usage(format!("{}/shim.json: {e}", bundle.display())))?;
        if v["id"].as_str() != Some(id.as_str()) {
            return Err(DaemonError::Usage(format!(
                "{}/shim.json is not for container {id}",
                bundle.display()
            )));
        }
        let path = |k: &str| v[k].as_str().filter(|s| !s.is_empty()).map(PathBuf::from);
        Ok(Options {
            id,
            bundle,
            address: path("address"),
            runtime: path("runtime")
                .ok_or_else(|| DaemonError::Usage("shim.json names no runtime".into()))?,
            runtime_root: path("runtime_root"),
            // Only ever a directory under the shims' own run dir.
            console_dir: path("console_dir").filter(|d| {
                d.starts_with(RUN_DIR)
                    && d.components().all(|c| c != std::path::Component::ParentDir)
            }),
            systemd_cgroup: v["systemd_cgroup"].as_bool().unwrap_or(false),
        })
    }
}

/// The runtime to drive: the given path, else `berth` beside this binary,
/// else `berth` on PATH; always made absolute.
pub(crate) fn resolve_runtime(given: Option<PathBuf>) -> Result<PathBuf, DaemonError> {
    let name = given.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("berth")))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("berth"))
    });
    if name.components().count() > 1 || name.is_absolute() {
        return name
            .canonicalize()
            .map_err(io_err(format!("runtime {}", name.display())));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
        .ok_or_else(|| DaemonError::Usage(format!("runtime {} not found on PATH", name.display())))
}

/// Whether a shim answers at `address`.
fn listening(address: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(address).is_ok()
}

/// `berth-shim start`: runs `serve` in the background, waits until it
/// listens, prints the address. Idempotent: a live shim's address is printed.
pub fn start(o: &Options) -> Result<String, DaemonError> {
    let address = o
        .address
        .clone()
        .ok_or_else(|| DaemonError::Usage("start needs --address".into()))?;
    if let Ok(a) = std::fs::read_to_string(o.bundle.join("address")) {
        if listening(Path::new(a.trim())) {
            return Ok(a.trim().to_string());
        }
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(o.bundle.join("shim.log"))
        .map_err(io_err("open shim.log"))?;
    let exe = std::env::current_exe().map_err(io_err("find own binary"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .arg("--id")
        .arg(&o.id)
        .arg("--bundle")
        .arg(&o.bundle)
        .arg("--address")
        .arg(&address)
        .arg("--runtime")
        .arg(&o.runtime);
    if o.systemd_cgroup {
        cmd.arg("--systemd-cgroup");
    }
    if let Some(r) = &o.runtime_root {
        cmd.arg("--runtime-root").arg(r);
    }
    // stdout is the readiness pipe: one line, "ok" or the error.
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .current_dir("/")
        .spawn()
        .map_err(io_err("spawn shim"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .map_err(io_err("read shim readiness"))?;
    match line.trim() {
        "ok" => {
            if o.systemd_cgroup {
                place_in_scope(o, child.id());
            }
            Ok(address.display().to_string())
        }
        "" => Err(DaemonError::NotReady {
            id: o.id.clone(),
            message: format!("it exited; see {}/shim.log", o.bundle.display()),
        }),
        m => Err(DaemonError::NotReady {
            id: o.id.clone(),
            message: m.to_string(),
        }),
    }
}

/// The slice of the container's scope (runc's `slice:prefix:name`
/// cgroupsPath in the bundle's config), which the shim's own scope shares;
/// systemd's default slice without one.
pub fn shim_slice(config: &serde_json::Value, root: bool) -> String {
    let default = if root { "system.slice" } else { "user.slice" };
    config["linux"]["cgroupsPath"]
        .as_str()
        .and_then(|p| p.split(':').next())
        .filter(|s| s.ends_with(".slice"))
        .unwrap_or(default)
        .to_string()
}

/// Under the systemd driver the shim gets a scope of its own beside its
/// container's (`berth-shim-<id>.scope`), so it is not left in the
/// manager's unit (stopping berthd's service would take every shim with
/// it) and systemd accounts for it. Asked of the runtime, which speaks
/// D-Bus; a refusal is written to shim.log and the shim runs on.
fn place_in_scope(o: &Options, pid: u32) {
    let config = std::fs::read(o.bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default();
    let slice = shim_slice(&config, nix::unistd::geteuid().is_root());
    let unit = format!("berth-shim-{}.scope", o.id);
    let mut c = Command::new(&o.runtime);
    if let Some(r) = &o.runtime_root {
        c.arg("--root").arg(r);
    }
    let out = c
        .args(["systemd-scope", &unit, &slice, &pid.to_string()])
        .stdin(Stdio::null())
        .output();
    let why = match out {
        Ok(out) if out.status.success() => return,
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .open(o.bundle.join("shim.log"))
    {
        let _ = writeln!(
            f,
            "warning: the shim stays in its parent's cgroup: {unit} in {slice}: {why}"
        );
    }
}

fn write_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(data)
}

/// Binds the shim's socket: root-only (0600 in a 0700-made directory), a
/// stale socket from a dead shim replaced.
fn bind(address: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = address.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    if address.exists() {
        if listening(address) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another shim listens there",
            ));
        }
        std::fs::remove_file(address)?;
    }
    let l = UnixListener::bind(address)?;
    std::fs::set_permissions(address, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Tells `start` on stdout whether the daemon is ready ("ok", or the
/// error); from then on stdout goes nowhere.
pub fn tell_readiness<T, E: std::fmt::Display>(ready: Result<T, E>) -> Result<T, E> {
    match &ready {
        Ok(_) => println!("ok"),
        Err(e) => println!("{e}"),
    }
    if ready.is_ok() {
        if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
            let _ = nix::unistd::dup2_stdout(null);
        }
    }
    ready
}

/// `berth-shim serve`: the daemon. Reports readiness on stdout, then serves
/// until Shutdown.
pub fn serve(o: Options) -> Result<(), DaemonError> {
    // A new session: the caller's terminal and process group signals are not ours.
    let _ = nix::unistd::setsid();
    crate::sys::single_malloc_arena();
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| io_err("set child subreaper")(e.into()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("start tokio"))?;
    let address = o
        .address
        .clone()
        .ok_or_else(|| DaemonError::Usage("serve needs --address".into()))?;
    let console_dir = Path::new(RUN_DIR).join(std::process::id().to_string());
    let result = rt.block_on(async {
        let ready = async {
            let reaper = Reaper::start().map_err(io_err("install SIGCHLD handler"))?;
            std::fs::create_dir_all(RUN_DIR).map_err(io_err(format!("create {RUN_DIR}")))?;
            let _ = std::fs::set_permissions(RUN_DIR, std::fs::Permissions::from_mode(0o700));
            let _ = std::fs::remove_dir_all(&console_dir);
            std::fs::create_dir(&console_dir)
                .map_err(io_err(format!("create {}", console_dir.display())))?;
            let listener =
                bind(&address).map_err(io_err(format!("listen on {}", address.display())))?;
            let global = if o.systemd_cgroup {
                vec!["--systemd-cgroup".to_string()]
            } else {
                Vec::new()
            };
            let runtime = Runtime::new(
                o.runtime.clone(),
                o.runtime_root.clone(),
                o.bundle.join("runtime.log"),
                reaper.clone(),
            )
            .with_flags(global, Vec::new());
            let files = [
                ("address", address.display().to_string()),
                ("shim.pid", std::process::id().to_string()),
                (
                    "shim.json",
                    serde_json::json!({
                        "id": o.id,
                        "address": address,
                        "runtime": o.runtime,
                        "runtime_root": o.runtime_root,
                        "systemd_cgroup": o.systemd_cgroup,
                        "console_dir": console_dir,
                    })
                    .to_string(),
                ),
            ];
            for (name, data) in files {
                write_file(&o.bundle.join(name), data.as_bytes())
                    .map_err(io_err(format!("write {name}")))?;
            }
            let svc = Service::new(
                o.id.clone(),
                o.bundle.clone(),
                runtime,
                reaper,
                console_dir.clone(),
            );
            Ok::<_, DaemonError>((listener, svc))
        }
        .await;
        let (listener, svc) = tell_readiness(ready)?;
        let inner: Arc<_> = svc.0.clone();
        // On Shutdown the server stops gracefully: it answers, then ends once
        // its clients hang up. A client holding a stream open (Events) gets
        // a grace period, then the shim exits anyway.
        let stopping = |inner: Arc<crate::service::Inner>| async move {
            let mut rx = inner.shutdown.subscribe();
            let _ = rx.wait_for(|s| *s).await;
        };
        let server = tonic::transport::Server::builder()
            .add_service(ShimServer::new(svc))
            .serve_with_incoming_shutdown(
                UnixListenerStream::new(listener),
                stopping(inner.clone()),
            );
        tokio::select! {
            r = server => r.map_err(|e| io_err("serve")(std::io::Error::other(e)))?,
            _ = async {
                stopping(inner).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            } => {}
        }
        Ok(())
    });
    for name in ["address", "shim.pid"] {
        let _ = std::fs::remove_file(o.bundle.join(name));
    }
    let _ = std::fs::remove_file(&address);
    let _ = std::fs::remove_dir_all(&console_dir);
    result
}

/// `berth-shim delete`: cleans up a container whose shim is gone — kills
/// what is left of it, deletes it in the runtime, unmounts its rootfs.
/// Returns the exit status to report (137: killed).
pub fn delete(o: &Options) -> Result<u32, DaemonError> {
    if let Some(a) = &o.address {
        if listening(a) {
            return Err(DaemonError::Usage(format!(
                "the shim of {} still serves at {}: use its Delete and Shutdown",
                o.id,
                a.display()
            )));
        }
    }
    let run = |args: &[&str]| {
        let mut c = Command::new(&o.runtime);
        if let Some(r) = &o.runtime_root {
            c.arg("--root").arg(r);
        }
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
    };
    // Errors are expected here (nothing left to kill); delete tells the truth.
    let _ = run(&["kill", "--all", &o.id, "KILL"]);
    let out = run(&["delete", "--force", &o.id])
        .map_err(io_err(format!("run {}", o.runtime.display())))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !err.contains("does not exist") && !err.contains("not found") {
        return Err(DaemonError::Usage(format!(
            "{} delete --force {}: {}",
            o.runtime.display(),
            o.id,
            err.trim()
        )));
    }
    crate::mount::unmount_all(&o.bundle.join("rootfs"))
        .map_err(|e| DaemonError::Usage(e.to_string()))?;
    for name in ["address", "shim.pid", "init.pid"] {
        let _ = std::fs::remove_file(o.bundle.join(name));
    }
    if let Some(a) = &o.address {
        let _ = std::fs::remove_file(a);
    }
    if let Some(d) = &o.console_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(128 + libc::SIGKILL as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shims_scope_shares_its_containers_slice() {
        let c = serde_json::json!({"linux": {"cgroupsPath": "kubepods-besteffort-podu1.slice:berth:c1"}});
        assert_eq!(shim_slice(&c, true), "kubepods-besteffort-podu1.slice");
        assert_eq!(shim_slice(&serde_json::json!({}), true), "system.slice");
        assert_eq!(shim_slice(&serde_json::json!({}), false), "user.slice");
        let cgroupfs = serde_json::json!({"linux": {"cgroupsPath": "/berth/default/c1"}});
        assert_eq!(shim_slice(&cgroupfs, true), "system.slice");
    }
}
