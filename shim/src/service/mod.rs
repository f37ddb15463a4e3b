//! The gRPC service: one container and its exec processes, driven through the
//! runtime binary. Requests name the container by id and a process by exec
//! id ("" is the init); both are validated before anything touches a path.

mod api;
mod processes;

use crate::events::Events;
use crate::process::Proc;
use crate::reaper::Reaper;
use crate::runtime::{Runtime, RuntimeError};
use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tonic::Status;

/// How long a process's output may keep flowing after it exited before its
/// exit is published anyway.
const DRAIN: Duration = Duration::from_secs(2);

/// How long the runtime may take to send a pty master.
const CONSOLE_WAIT: Duration = Duration::from_secs(10);

/// Checks a container or exec id: docker's name rule (`berth_rules::id`),
/// so it is safe in a file name.
pub fn valid_id(id: &str) -> bool {
    berth_rules::id::is_name(id)
}

/// The container as created.
struct Container {
    init: Arc<Proc>,
    execs: HashMap<String, Arc<Proc>>,
    paused: bool,
    mounted: bool,
    oom: Option<tokio::task::AbortHandle>,
    /// Set at the container's first OOM kill.
    oom_killed: Arc<std::sync::atomic::AtomicBool>,
}

enum Slot {
    Empty,
    Creating,
    Ready(Container),
    Deleted,
}

/// What the service and its background tasks share.
pub struct Inner {
    id: String,
    bundle: PathBuf,
    runtime: Runtime,
    reaper: Arc<Reaper>,
    events: Events,
    slot: Mutex<Slot>,
    console_dir: PathBuf,
    console_seq: AtomicU64,
    /// Set when Shutdown is accepted.
    pub shutdown: watch::Sender<bool>,
}

/// The `Shim` gRPC service.
#[derive(Clone)]
pub struct Service(pub Arc<Inner>);

impl Service {
    /// A service for container `id` in `bundle`, running `runtime`; console
    /// sockets are made in `console_dir` (private to the shim).
    pub fn new(
        id: String,
        bundle: PathBuf,
        runtime: Runtime,
        reaper: Arc<Reaper>,
        console_dir: PathBuf,
    ) -> Service {
        Service(Arc::new(Inner {
            id,
            bundle,
            runtime,
            reaper,
            events: Events::default(),
            slot: Mutex::new(Slot::Empty),
            console_dir,
            console_seq: AtomicU64::new(0),
            shutdown: watch::channel(false).0,
        }))
    }
}

impl Service {
    /// A process of the container ("" for its init), for another front end
    /// (the containerd v2 adapter wires its stdio to FIFOs).
    pub fn process(&self, id: &str, exec_id: &str) -> Result<Arc<Proc>, Status> {
        self.0.process(id, exec_id)
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// Every event published from now on.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<berth_proto::shim::Event> {
        self.0.events.subscribe()
    }
}

fn runtime_status(e: RuntimeError) -> Status {
    if e.is_not_found() {
        Status::not_found(e.to_string())
    } else if e.to_string().contains("already exists") {
        Status::already_exists(e.to_string())
    } else {
        Status::internal(e.to_string())
    }
}

fn io_status(what: &str, e: std::io::Error) -> Status {
    Status::internal(format!("{what}: {e}"))
}

fn ts(t: SystemTime) -> Option<prost_types::Timestamp> {
    Some(t.into())
}

/// Writes `data` to `<bundle>/<name>` (0600, never through a symlink).
fn write_private(bundle: &Path, name: &str, data: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let p = bundle.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)?;
    f.write_all(data)?;
    Ok(p)
}

/// Reads the pid a runtime wrote to `path` (never through a symlink).
fn read_pid(path: &Path) -> std::io::Result<u32> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .read_to_string(&mut s)?;
    s.trim().parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("pid file {}: {s:?}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::valid_id;

    #[test]
    fn ids_are_safe_file_names() {
        for ok in ["a", "c1", "my-container_1.2", &"x".repeat(128)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "-a",
            "a b",
            "a\0",
            &"x".repeat(129),
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
