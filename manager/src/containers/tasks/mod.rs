//! Containers' tasks through their shims: berthd launches one `berth-shim`
//! per running container (fork+exec), drives it over its socket, forwards its
//! events, records its init's exit on the container, then deletes the task
//! and lets the shim go. After a restart, `recover` finds every shim by the
//! address file in its bundle and picks up where the last berthd left off.
//!
//! Layout: bundles in `<state>/bundles/<ns>/<id>` (config.json, rootfs),
//! shim sockets in `<state>/s/`, runtime state in `<state>/runtime/<ns>`,
//! per-container data (its log) in `<root>/containers/<ns>/<id>`.

mod attach;
mod commit;
mod create;
mod exec;
mod lifecycle;
mod recovery;
mod shim;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_proto::containers::Envelope;
use berth_proto::shim::shim_client::ShimClient;
use berth_proto::shim::{self as shimpb};
use tokio::sync::{broadcast, watch};
use tonic::transport::Channel;

use crate::containers::records::{Container, Containers, Exit, MountRecord, RecordError, Volumes};
use crate::containers::spec::{self, SpecError};
use crate::network::networks::{NetworkError, Networks, PortMapping};
use crate::store::images::{ImageError, Images};

/// A container or task operation failure.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A record failure (not found, exists, invalid name, volume in use).
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The spec cannot be made.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Networking failed.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The operation does not fit the container's state.
    #[error("{0}")]
    State(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The shim refused or failed.
    #[error("container {id}: {status}")]
    Shim {
        /// The container.
        id: String,
        /// The shim's answer.
        status: tonic::Status,
    },
    /// A file or process step failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The object.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TaskError {
    let path = path.to_path_buf();
    move |source| TaskError::Io { what, path, source }
}

/// Where berthd keeps things and which binaries it runs.
#[derive(Clone, Debug)]
pub struct Paths {
    /// Persistent data.
    pub root: PathBuf,
    /// Runtime state.
    pub state: PathBuf,
    /// The berth-shim binary.
    pub shim: PathBuf,
    /// The default runtime binary.
    pub runtime: PathBuf,
    /// The cgroup under which containers' cgroups go (`<parent>/<ns>/<id>`;
    /// under systemd, its slice if it names one).
    pub cgroup_parent: String,
    /// Directories of berth's, or systemd scopes.
    pub cgroup_driver: crate::containers::cgroups::CgroupDriver,
    /// Where the CNI network configuration lists are.
    pub cni_conf_dir: PathBuf,
    /// Where CNI plugin binaries are looked for, in order.
    pub cni_bin_dirs: Vec<PathBuf>,
}

/// A running task: a container's shim and its init.
pub struct Task {
    client: ShimClient<Channel>,
    /// Its init's pid.
    pub pid: u32,
    exit: watch::Sender<Option<Exit>>,
    /// The shim reported an OOM kill (it does so before the init's exit).
    oom: std::sync::atomic::AtomicBool,
}

/// What the user asks of a new container.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// The id (empty: generated).
    pub id: String,
    /// The image.
    pub image: String,
    /// The image itself, when it has no record (a build step's): `image`
    /// is then only the name the container shows.
    pub image_record: Option<crate::store::images::Image>,
    /// Spec overrides.
    pub spec: spec::Options,
    /// A whole spec instead of a generated one.
    pub raw_spec: Option<String>,
    /// Mounts (bind or volume).
    pub mounts: Vec<MountRecord>,
    /// The runtime binary ("" for berthd's).
    pub runtime: String,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Removed when its task exits.
    pub auto_remove: bool,
    /// Keep stdin open.
    pub stdin: bool,
    /// "none", "host", "container:NAME" or a CNI network's name.
    pub network: String,
    /// Ports published on the host (CNI networks only).
    pub ports: Vec<PortMapping>,
    /// Makes the whole spec from the image (the CRI's), instead of `spec`.
    pub spec_fn: Option<SpecFn>,
    /// Where the output is logged (default: the container's data directory).
    pub log_path: Option<PathBuf>,
    /// Rotation of that log: (bytes, files); 0 bytes: never.
    pub log_rotation: (u64, u32),
}

/// What a spec is made from: the image's config and account files.
pub struct ImageContext<'a> {
    /// The image config's `config` object (Entrypoint, Cmd, Env, User, …).
    pub config: &'a serde_json::Value,
    /// The image's /etc/passwd.
    pub passwd: Option<&'a [u8]>,
    /// The image's /etc/group.
    pub group: Option<&'a [u8]>,
}

/// A caller's spec maker (see [`CreateOptions::spec_fn`]).
#[derive(Clone)]
#[allow(clippy::type_complexity)]
pub struct SpecFn(
    pub Arc<dyn Fn(&ImageContext<'_>) -> Result<serde_json::Value, SpecError> + Send + Sync>,
);

impl std::fmt::Debug for SpecFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpecFn")
    }
}

/// The task's state as the shim reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// No task.
    None,
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited, not yet deleted.
    Stopped,
    /// Frozen.
    Paused,
}

/// The manager of containers and tasks.
pub struct Manager {
    /// The image store (and the metadata store).
    pub images: Arc<Images>,
    /// The CNI networks.
    pub networks: Networks,
    paths: Paths,
    volumes_dir: PathBuf,
    tasks: Mutex<HashMap<String, Arc<Task>>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    events: broadcast::Sender<Envelope>,
}

fn key(ns: &str, id: &str) -> String {
    format!("{ns}/{id}")
}

/// A protobuf timestamp for milliseconds since the epoch.
pub fn timestamp(ms: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    }
}

/// An exit as a shim reports it.
fn exit_of(status: u32, at: Option<&prost_types::Timestamp>) -> Exit {
    Exit {
        oom_killed: false,
        status,
        at_ms: ms_of(at),
    }
}

fn ms_of(t: Option<&prost_types::Timestamp>) -> u64 {
    t.map(|t| t.seconds.max(0) as u64 * 1000 + t.nanos.max(0) as u64 / 1_000_000)
        .unwrap_or_else(berth_rules::time::now_ms)
}

/// The `<dir>/<namespace>/<id>` entries under `dir`.
fn per_container(dir: &Path) -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    for ns in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let nsname = ns.file_name().to_string_lossy().to_string();
        for e in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().to_string();
            out.push((nsname.clone(), id, e.path()));
        }
    }
    out
}

fn shim_err(id: &str) -> impl FnOnce(tonic::Status) -> TaskError + '_ {
    move |status| TaskError::Shim {
        id: id.to_string(),
        status,
    }
}

impl Manager {
    /// A manager over `images`, keeping its files in `paths`.
    pub fn new(images: Arc<Images>, paths: Paths) -> Manager {
        Manager {
            images,
            networks: Networks::new(
                paths.cni_conf_dir.clone(),
                paths.cni_bin_dirs.clone(),
                &paths.root,
            ),
            volumes_dir: paths.root.join("volumes"),
            paths,
            tasks: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            events: broadcast::channel(1024).0,
        }
    }

    /// The berth-shim binary.
    pub fn shim_binary(&self) -> &Path {
        &self.paths.shim
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.events.subscribe()
    }

    /// Publishes an event.
    pub fn publish(&self, ns: &str, topic: &str, id: &str, exec_id: &str, pid: u32, status: u32) {
        let _ = self.events.send(Envelope {
            timestamp: Some(timestamp(berth_rules::time::now_ms())),
            namespace: ns.into(),
            topic: topic.into(),
            id: id.into(),
            exec_id: exec_id.into(),
            pid,
            exit_status: status,
        });
    }

    pub(super) fn records(&self) -> Containers<'_> {
        Containers(&self.images.meta)
    }

    /// The containers (namespace, id) on CNI network `name`, each with its
    /// addresses while its task is attached.
    pub fn network_users(
        &self,
        name: &str,
    ) -> Result<Vec<(String, String, Vec<String>)>, TaskError> {
        Ok(self
            .records()
            .all()?
            .into_iter()
            .filter(|(_, c)| c.network == name)
            .map(|(ns, c)| {
                let addrs = self
                    .networks
                    .record(&ns, &c.id)
                    .map(|r| r.addresses())
                    .unwrap_or_default();
                (ns, c.id, addrs)
            })
            .collect())
    }

    /// Removes a CNI network no container uses.
    pub fn remove_network(&self, name: &str) -> Result<(), TaskError> {
        if let Some((ns, id, _)) = self.network_users(name)?.first() {
            return Err(TaskError::State(format!(
                "network {name} is in use by container {id} (namespace {ns})"
            )));
        }
        Ok(self.networks.remove(name)?)
    }

    /// The named volumes.
    pub fn volumes(&self) -> Volumes<'_> {
        Volumes {
            meta: &self.images.meta,
            dir: &self.volumes_dir,
        }
    }

    pub(super) fn bundle(&self, ns: &str, id: &str) -> PathBuf {
        self.paths.state.join("bundles").join(ns).join(id)
    }

    pub(super) fn data_dir(&self, ns: &str, id: &str) -> PathBuf {
        self.paths.root.join("containers").join(ns).join(id)
    }

    /// The log file of container `c`: where its creator said, else in its
    /// data directory.
    pub fn log_file(&self, ns: &str, c: &Container) -> PathBuf {
        if c.log_path.is_empty() {
            self.data_dir(ns, &c.id).join("container.log")
        } else {
            PathBuf::from(&c.log_path)
        }
    }

    /// The pinned network namespace of a task berthd networks (none or CNI).
    pub(super) fn netns_path(&self, ns: &str, id: &str) -> PathBuf {
        self.paths.state.join("netns").join(ns).join(id)
    }

    pub(super) fn runtime_root(&self, ns: &str) -> PathBuf {
        self.paths.state.join("runtime").join(ns)
    }

    pub(super) fn address(&self, ns: &str, id: &str) -> PathBuf {
        let h = crate::store::digest::sha256_of(key(ns, id).as_bytes()).to_string();
        let hex = h.rsplit(':').next().unwrap_or(&h);
        self.paths
            .state
            .join("s")
            .join(format!("{}.sock", &hex[..24]))
    }

    pub(super) async fn lock(&self, ns: &str, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self
            .locks
            .lock()
            .unwrap()
            .entry(key(ns, id))
            .or_default()
            .clone();
        m.lock_owned().await
    }

    pub(super) fn task(&self, ns: &str, id: &str) -> Option<Arc<Task>> {
        self.tasks.lock().unwrap().get(&key(ns, id)).cloned()
    }

    pub(super) fn running_task(&self, ns: &str, id: &str) -> Result<Arc<Task>, TaskError> {
        self.records().get(ns, id)?;
        self.task(ns, id)
            .ok_or_else(|| TaskError::State(format!("container {id} is not running")))
    }

    /// One container.
    pub fn get(&self, ns: &str, id: &str) -> Result<Container, TaskError> {
        Ok(self.records().get(ns, id)?)
    }

    /// A namespace's containers.
    pub fn list(&self, ns: &str) -> Result<Vec<Container>, TaskError> {
        Ok(self.records().list(ns)?)
    }

    /// Replaces a container's labels.
    pub fn set_labels(
        &self,
        ns: &str,
        id: &str,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<Container, TaskError> {
        Ok(self.records().modify(ns, id, |c| c.labels = labels)?)
    }

    /// The task's status and init pid.
    pub async fn status(&self, ns: &str, id: &str) -> (Status, u32) {
        let Some(t) = self.task(ns, id) else {
            return (Status::None, 0);
        };
        let st = t
            .client
            .clone()
            .state(shimpb::StateRequest {
                id: id.into(),
                exec_id: String::new(),
            })
            .await;
        match st.map(|r| r.into_inner().status()) {
            Ok(shimpb::Status::Created) => (Status::Created, t.pid),
            Ok(shimpb::Status::Running) => (Status::Running, t.pid),
            Ok(shimpb::Status::Paused) => (Status::Paused, t.pid),
            Ok(_) => (Status::Stopped, t.pid),
            Err(_) => (Status::Stopped, t.pid),
        }
    }

    /// Whether the container has a task (its log may still grow).
    pub fn has_task(&self, ns: &str, id: &str) -> bool {
        self.task(ns, id).is_some()
    }
}
