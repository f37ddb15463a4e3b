//! Containers' tasks through their shims: berthd launches one `berth-shim`
//! per running container (fork+exec), drives it over its socket, forwards its
//! events, records its init's exit on the container, then deletes the task
//! and lets the shim go. After a restart, `recover` finds every shim by the
//! address file in its bundle and picks up where the last berthd left off.
//!
//! Layout: bundles in `<state>/bundles/<ns>/<id>` (config.json, rootfs),
//! shim sockets in `<state>/s/`, runtime state in `<state>/runtime/<ns>`,
//! per-container data (its log) in `<root>/containers/<ns>/<id>`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::containers::Envelope;
use berth_proto::shim::shim_client::ShimClient;
use berth_proto::shim::{self as shimpb};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tonic::transport::Channel;

use crate::containers::{Container, Containers, Exit, MountRecord, RecordError, Volumes};
use crate::images::{ImageError, Images};
use crate::network::{NetworkError, Networks, PortMapping};
use crate::oci::Platform;
use crate::spec::{self, SpecError};

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
    /// The cgroup under which containers' cgroups go (`<parent>/<ns>/<id>`).
    pub cgroup_parent: String,
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
}

/// What the user asks of a new container.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// The id (empty: generated).
    pub id: String,
    /// The image.
    pub image: String,
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
        status,
        at_ms: ms_of(at),
    }
}

fn ms_of(t: Option<&prost_types::Timestamp>) -> u64 {
    t.map(|t| t.seconds.max(0) as u64 * 1000 + t.nanos.max(0) as u64 / 1_000_000)
        .unwrap_or_else(berth_rules::time::now_ms)
}

/// A random id: 16 hex digits from the kernel's generator.
/// Reads `path` (relative to an image root) from the topmost layer that has
/// it, resolving symlinks inside that layer only; at most 1 MiB.
fn layer_file(layers: &[PathBuf], path: &str) -> Option<Vec<u8>> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::io::Read;
    for dir in layers {
        let Ok(d) = std::fs::File::open(dir) else {
            continue;
        };
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        if let Ok(fd) = openat2(&d, path, how) {
            let mut out = Vec::new();
            let f = std::fs::File::from(fd);
            if f.metadata().map(|m| m.is_file()).unwrap_or(false)
                && f.take(1 << 20).read_to_end(&mut out).is_ok()
            {
                return Some(out);
            }
        }
    }
    None
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

    fn records(&self) -> Containers<'_> {
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

    fn bundle(&self, ns: &str, id: &str) -> PathBuf {
        self.paths.state.join("bundles").join(ns).join(id)
    }

    fn data_dir(&self, ns: &str, id: &str) -> PathBuf {
        self.paths.root.join("containers").join(ns).join(id)
    }

    /// The container's log file.
    pub fn log_path(&self, ns: &str, id: &str) -> PathBuf {
        self.data_dir(ns, id).join("container.log")
    }

    /// The pinned network namespace of a task berthd networks (none or CNI).
    fn netns_path(&self, ns: &str, id: &str) -> PathBuf {
        self.paths.state.join("netns").join(ns).join(id)
    }

    fn runtime_root(&self, ns: &str) -> PathBuf {
        self.paths.state.join("runtime").join(ns)
    }

    fn address(&self, ns: &str, id: &str) -> PathBuf {
        let h = crate::digest::sha256_of(key(ns, id).as_bytes()).to_string();
        let hex = h.rsplit(':').next().unwrap_or(&h);
        self.paths
            .state
            .join("s")
            .join(format!("{}.sock", &hex[..24]))
    }

    async fn lock(&self, ns: &str, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self
            .locks
            .lock()
            .unwrap()
            .entry(key(ns, id))
            .or_default()
            .clone();
        m.lock_owned().await
    }

    fn task(&self, ns: &str, id: &str) -> Option<Arc<Task>> {
        self.tasks.lock().unwrap().get(&key(ns, id)).cloned()
    }

    fn running_task(&self, ns: &str, id: &str) -> Result<Arc<Task>, TaskError> {
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

    /// Records a container: unpacks its image if needed, prepares its
    /// snapshot, generates its spec.
    pub async fn create(&self, ns: &str, o: CreateOptions) -> Result<Container, TaskError> {
        let id = if o.id.is_empty() {
            berth_rules::id::random()
        } else {
            o.id.clone()
        };
        if !berth_rules::id::is_name(&id) {
            return Err(RecordError::InvalidName {
                kind: "container",
                name: id,
            }
            .into());
        }
        if self.records().get(ns, &id).is_ok() {
            return Err(RecordError::Exists {
                kind: "container",
                name: id,
            }
            .into());
        }
        let _g = self.lock(ns, &id).await;
        let network = spec::Network::parse(&o.network)?;
        let images = self.images.clone();
        let (ns2, image_name) = (ns.to_string(), o.image.clone());
        let snapshot = format!("container-{id}");
        let snap2 = snapshot.clone();
        let _shared = self.images.gc_lock.read().await;
        let (image, config, layers) = tokio::task::spawn_blocking(move || {
            let img = images.get(&ns2, &image_name)?;
            let platform = Platform::host();
            let chain = images.unpack(&ns2, &img, &platform)?;
            let cfg = images.config(&img, &platform)?;
            if images.snapshots.exists(&ns2, &snap2)? {
                // A leftover of a container record that was never written.
                images.snapshots.remove(&ns2, &snap2)?;
            }
            images
                .snapshots
                .prepare(&ns2, &snap2, Some(&chain.to_string()))?;
            let layers = images.snapshots.layer_dirs(&ns2, &snap2)?;
            Ok::<_, ImageError>((img, cfg, layers))
        })
        .await
        .map_err(|e| TaskError::Invalid(format!("worker: {e}")))??;
        let made = (|| {
            let mut so = o.spec.clone();
            match &network {
                spec::Network::Container(other) => {
                    self.records().get(ns, other)?;
                }
                spec::Network::Cni(name) => {
                    self.networks.get(name)?;
                }
                _ => {}
            }
            if !o.ports.is_empty() && !matches!(network, spec::Network::Cni(_)) {
                return Err(TaskError::Invalid(format!(
                    "ports cannot be published with --net {}: only on a CNI network (bridge or one from network create)",
                    o.network
                )));
            }
            so.network = Some(network.clone());
            if network != spec::Network::Host {
                so.etc_files = Some(self.data_dir(ns, &id));
            }
            so.binds = Vec::new();
            for m in &o.mounts {
                let source = match m.kind.as_str() {
                    "volume" => {
                        self.volumes().create(ns, &m.source)?;
                        self.volumes().data_dir(ns, &m.source)
                    }
                    "bind" => {
                        let p = PathBuf::from(&m.source);
                        if !p.is_absolute() {
                            return Err(TaskError::Invalid(format!(
                                "bind mount source {:?} is not an absolute path",
                                m.source
                            )));
                        }
                        if !p.exists() {
                            // docker creates a missing bind source as a directory.
                            std::fs::create_dir_all(&p).map_err(io("create bind source", &p))?;
                        }
                        p
                    }
                    k => return Err(TaskError::Invalid(format!("unknown mount kind {k:?}"))),
                };
                so.binds.push(spec::Bind {
                    source: source.display().to_string(),
                    destination: m.destination.clone(),
                    read_only: m.read_only,
                });
            }
            let spec = match &o.raw_spec {
                Some(raw) => {
                    let mut v: Value = serde_json::from_str(raw)
                        .map_err(|e| TaskError::Invalid(format!("spec: {e}")))?;
                    if !v.is_object() {
                        return Err(TaskError::Invalid("spec: not a JSON object".into()));
                    }
                    v["root"]["path"] = Value::String("rootfs".into());
                    v
                }
                None => spec::generate(
                    &id,
                    ns,
                    &self.paths.cgroup_parent,
                    &config["config"],
                    &so,
                    layer_file(&layers, "etc/passwd").as_deref(),
                    layer_file(&layers, "etc/group").as_deref(),
                )?,
            };
            let tty = spec["process"]["terminal"].as_bool().unwrap_or(false);
            let c = Container {
                id: id.clone(),
                image: image.name.clone(),
                spec,
                snapshot: snapshot.clone(),
                runtime: o.runtime.clone(),
                labels: o.labels.clone(),
                created_ms: berth_rules::time::now_ms(),
                tty,
                stdin: o.stdin,
                auto_remove: o.auto_remove,
                mounts: o.mounts.clone(),
                network: network.to_string(),
                ports: o.ports.clone(),
                started_ms: None,
                exit: None,
            };
            let dir = self.data_dir(ns, &id);
            std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
            self.records().insert(ns, &c)?;
            Ok(c)
        })();
        if made.is_err() {
            let _ = self.images.snapshots.remove(ns, &snapshot);
            let _ = std::fs::remove_dir_all(self.data_dir(ns, &id));
        }
        let c = made?;
        self.publish(ns, "/containers/create", &id, "", 0, 0);
        Ok(c)
    }

    /// Launches the container's shim and creates its init.
    pub async fn create_task(self: &Arc<Self>, ns: &str, id: &str) -> Result<u32, TaskError> {
        let _g = self.lock(ns, id).await;
        let c = self.records().get(ns, id)?;
        if self.task(ns, id).is_some() {
            return Err(TaskError::State(format!(
                "container {id} already has a task: it is running"
            )));
        }
        let mut spec = c.spec.clone();
        let netns = if let Some(other) = c.network.strip_prefix("container:") {
            // Join the other container's network namespace through its init.
            let t = self.task(ns, other).ok_or_else(|| {
                TaskError::State(format!(
                    "cannot join the network of container {other}: it is not running"
                ))
            })?;
            Some(PathBuf::from(format!("/proc/{}/ns/net", t.pid)))
        } else if c.network != "host" {
            // berthd's own namespace (lo up), attached to the CNI network when
            // the container has one; both go with the task.
            let p = self.netns_path(ns, id);
            self.teardown_network(ns, id).await;
            crate::netns::create(&p).map_err(|e| TaskError::State(e.to_string()))?;
            Some(p)
        } else {
            None
        };
        if let (Some(p), Some(list)) = (&netns, spec["linux"]["namespaces"].as_array_mut()) {
            for n in list.iter_mut().filter(|n| n["type"] == "network") {
                n["path"] = Value::String(p.display().to_string());
            }
        }
        let r = async {
            self.setup_network(ns, &c, netns.as_deref()).await?;
            self.launch(ns, id, &c, &spec).await
        }
        .await;
        if r.is_err() {
            self.teardown_network(ns, id).await;
        }
        r
    }

    /// Attaches a CNI container's namespace to its network and writes the
    /// container's /etc/hosts, /etc/hostname and /etc/resolv.conf.
    async fn setup_network(
        &self,
        ns: &str,
        c: &Container,
        netns: Option<&Path>,
    ) -> Result<(), TaskError> {
        let network = spec::Network::parse(&c.network)?;
        let mut addrs = Vec::new();
        if let (spec::Network::Cni(name), Some(p)) = (&network, netns) {
            let ports = self.free_host_ports(&c.ports)?;
            addrs = self
                .networks
                .attach(ns, &c.id, name, p, &ports)
                .await?
                .addresses();
        }
        if !self.bound_etc_files(ns, c) {
            return Ok(());
        }
        let dir = self.data_dir(ns, &c.id);
        let hostname = c.spec["hostname"].as_str().unwrap_or(&c.id).to_string();
        let (hosts, resolv) = match &network {
            spec::Network::Container(other) => {
                // The other container's files: the same network, the same names.
                let od = self.data_dir(ns, other);
                (
                    std::fs::read_to_string(od.join("hosts")).unwrap_or_default(),
                    std::fs::read_to_string(od.join("resolv.conf")).unwrap_or_default(),
                )
            }
            _ => (
                crate::network::hosts_file(&hostname, &addrs, &[]),
                crate::network::resolv_conf(
                    &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
                    &[],
                ),
            ),
        };
        for (name, text) in [
            ("hosts", hosts),
            ("hostname", format!("{hostname}\n")),
            ("resolv.conf", resolv),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(io("write", &p))?;
        }
        Ok(())
    }

    /// Whether the container's spec binds berthd's /etc files over its own.
    fn bound_etc_files(&self, ns: &str, c: &Container) -> bool {
        let hosts = self.data_dir(ns, &c.id).join("hosts");
        c.spec["mounts"].as_array().is_some_and(|m| {
            m.iter().any(|m| {
                m["destination"] == "/etc/hosts"
                    && m["source"].as_str().map(Path::new) == Some(hosts.as_path())
            })
        })
    }

    /// The mappings with every host port 0 replaced by a free one.
    fn free_host_ports(&self, ports: &[PortMapping]) -> Result<Vec<PortMapping>, TaskError> {
        ports
            .iter()
            .map(|p| {
                let mut p = p.clone();
                if p.host_port == 0 {
                    let ip = if p.host_ip.is_empty() {
                        "0.0.0.0"
                    } else {
                        &p.host_ip
                    };
                    let addr = (ip, 0);
                    let port = if p.protocol == "udp" {
                        std::net::UdpSocket::bind(addr).and_then(|s| s.local_addr())
                    } else {
                        std::net::TcpListener::bind(addr).and_then(|s| s.local_addr())
                    };
                    p.host_port = port
                        .map_err(io("find a free port on", Path::new(ip)))?
                        .port();
                }
                Ok(p)
            })
            .collect()
    }

    /// Undoes a task's networking: CNI DEL (kept for a retry at the next
    /// start when it fails), then the namespace.
    async fn teardown_network(&self, ns: &str, id: &str) {
        if let Err(e) = self.networks.detach(ns, id).await {
            tracing::warn!(namespace = %ns, id = %id, error = %e, "detach from network");
        }
        if let Err(e) = crate::netns::remove(&self.netns_path(ns, id)) {
            tracing::warn!(namespace = %ns, id = %id, error = %e, "remove network namespace");
        }
    }

    /// Writes the bundle, starts the shim, creates the task.
    async fn launch(
        self: &Arc<Self>,
        ns: &str,
        id: &str,
        c: &Container,
        spec: &Value,
    ) -> Result<u32, TaskError> {
        let bundle = self.bundle(ns, id);
        let _ = std::fs::remove_dir_all(&bundle);
        std::fs::create_dir_all(bundle.join("rootfs")).map_err(io("create", &bundle))?;
        let spec = serde_json::to_vec_pretty(spec).unwrap_or_default();
        // The config carries the container's environment (secrets given with -e).
        crate::perm::write_secret(&bundle.join("config.json"), &spec)
            .map_err(io("write", &bundle.join("config.json")))?;
        let mounts = self
            .images
            .snapshots
            .mounts(ns, &c.snapshot)
            .map_err(ImageError::from)?;
        let runtime = if c.runtime.is_empty() {
            self.paths.runtime.clone()
        } else {
            PathBuf::from(&c.runtime)
        };
        let address = self.address(ns, id);
        let out = tokio::process::Command::new(&self.paths.shim)
            .arg("start")
            .arg("--id")
            .arg(id)
            .arg("--bundle")
            .arg(&bundle)
            .arg("--address")
            .arg(&address)
            .arg("--runtime")
            .arg(&runtime)
            .arg("--runtime-root")
            .arg(self.runtime_root(ns))
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(io("run", &self.paths.shim))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&bundle);
            return Err(TaskError::State(format!(
                "start shim for {id}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let result = async {
            let ch = berth_proto::connect_unix(&address)
                .await
                .map_err(|e| TaskError::State(format!("connect to shim of {id}: {e}")))?;
            let mut client = ShimClient::new(ch);
            let events = client
                .events(shimpb::EventsRequest {})
                .await
                .map_err(shim_err(id))?
                .into_inner();
            let log = self.log_path(ns, id);
            let r = client
                .create(shimpb::CreateRequest {
                    id: id.into(),
                    bundle: bundle.display().to_string(),
                    terminal: c.tty,
                    stdin: c.stdin,
                    rootfs: mounts
                        .iter()
                        .map(|m| shimpb::Mount {
                            r#type: m.kind.clone(),
                            source: m.source.clone(),
                            options: m.options.clone(),
                        })
                        .collect(),
                    log_path: log.display().to_string(),
                    log_max_size: 0,
                    log_max_files: 0,
                })
                .await;
            match r {
                Ok(r) => Ok((client, events, r.into_inner().pid)),
                Err(status) => {
                    let _ = client
                        .shutdown(shimpb::ShutdownRequest { id: id.into() })
                        .await;
                    Err(TaskError::Shim {
                        id: id.into(),
                        status,
                    })
                }
            }
        }
        .await;
        let (client, events, pid) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&bundle);
                return Err(e);
            }
        };
        let task = Arc::new(Task {
            client,
            pid,
            exit: watch::channel(None).0,
        });
        self.tasks.lock().unwrap().insert(key(ns, id), task.clone());
        self.watch(ns, id, task, events);
        Ok(pid)
    }

    /// Forwards a shim's events; on its init's exit, records it and deletes
    /// the task. A stream that ends while the task is registered means the
    /// shim died: its leftovers are cleaned with `berth-shim delete`.
    fn watch(
        self: &Arc<Self>,
        ns: &str,
        id: &str,
        task: Arc<Task>,
        mut events: tonic::Streaming<shimpb::Event>,
    ) {
        let (me, ns, id) = (self.clone(), ns.to_string(), id.to_string());
        tokio::spawn(async move {
            loop {
                let ev = match events.message().await {
                    Ok(Some(ev)) => ev,
                    _ => break,
                };
                let (pid, status) = match &ev.event {
                    Some(shimpb::event::Event::Create(e)) => (e.pid, 0),
                    Some(shimpb::event::Event::Start(e)) => (e.pid, 0),
                    Some(shimpb::event::Event::Exit(e)) => (e.pid, e.exit_status),
                    Some(shimpb::event::Event::Delete(e)) => (e.pid, e.exit_status),
                    Some(shimpb::event::Event::ExecStarted(e)) => (e.pid, 0),
                    _ => (0, 0),
                };
                // The init's delete is published by `finish`, in order with
                // what follows it (a container removal).
                if !(ev.exec_id.is_empty() && ev.topic == "/tasks/delete") {
                    me.publish(&ns, &ev.topic, &id, &ev.exec_id, pid, status);
                }
                if let Some(shimpb::event::Event::Exit(e)) = &ev.event {
                    if ev.exec_id.is_empty() {
                        let exit = exit_of(e.exit_status, e.exited_at.as_ref());
                        me.init_exited(&ns, &id, &task, exit).await;
                    }
                }
            }
            // The stream ended. Our own cleanup removed the task first; if it
            // is still registered, the shim is gone without telling.
            let still = me.task(&ns, &id).is_some_and(|t| Arc::ptr_eq(&t, &task));
            if still {
                tracing::warn!(namespace = %ns, id = %id, "shim connection lost; cleaning up");
                let status = me.shim_delete(&ns, &id).await;
                let exit = Exit {
                    status,
                    at_ms: berth_rules::time::now_ms(),
                };
                me.init_exited(&ns, &id, &task, exit).await;
            }
        });
    }

    /// Records an init's exit, wakes waiters, then (under the container's
    /// lock) deletes the task and, for an auto-remove container, the container.
    async fn init_exited(&self, ns: &str, id: &str, task: &Arc<Task>, exit: Exit) {
        self.record_exit(ns, id, task, exit);
        let _g = self.lock(ns, id).await;
        if self.finish(ns, id, task).await {
            let auto = self.records().get(ns, id).map(|c| c.auto_remove);
            if auto.unwrap_or(false) {
                if let Err(e) = self.remove_container(ns, id, false).await {
                    tracing::warn!(namespace = %ns, id = %id, error = %e, "auto-remove failed");
                }
            }
        }
    }

    /// Records an init's first reported exit on the container and wakes
    /// its waiters; later reports of the same exit change nothing.
    fn record_exit(&self, ns: &str, id: &str, task: &Task, exit: Exit) {
        if task.exit.borrow().is_none() {
            let _ = self.records().modify(ns, id, |c| c.exit = Some(exit));
            task.exit.send_replace(Some(exit));
        }
    }

    /// SIGKILL to every process of the container; errors mean nothing is left.
    async fn kill_all(&self, id: &str, task: &Task) {
        let _ = task
            .client
            .clone()
            .kill(shimpb::KillRequest {
                id: id.into(),
                exec_id: String::new(),
                signal: libc::SIGKILL as u32,
                all: true,
            })
            .await;
    }

    /// Deletes a stopped task in its shim and lets the shim exit; false when
    /// another caller already did. Call with the container's lock held.
    async fn finish(&self, ns: &str, id: &str, task: &Arc<Task>) -> bool {
        {
            let mut tasks = self.tasks.lock().unwrap();
            match tasks.get(&key(ns, id)) {
                Some(t) if Arc::ptr_eq(t, task) => {
                    tasks.remove(&key(ns, id));
                }
                _ => return false,
            }
        }
        let mut c = task.client.clone();
        let _ = c
            .delete(shimpb::DeleteRequest {
                id: id.into(),
                exec_id: String::new(),
            })
            .await;
        let _ = c.shutdown(shimpb::ShutdownRequest { id: id.into() }).await;
        let _ = std::fs::remove_dir_all(self.bundle(ns, id));
        self.teardown_network(ns, id).await;
        let status = task.exit.borrow().map(|e| e.status).unwrap_or(0);
        self.publish(ns, "/tasks/delete", id, "", task.pid, status);
        true
    }

    /// `berth-shim delete` for a container whose shim is gone; the exit
    /// status to report.
    async fn shim_delete(&self, ns: &str, id: &str) -> u32 {
        let bundle = self.bundle(ns, id);
        let out = tokio::process::Command::new(&self.paths.shim)
            .arg("delete")
            .arg("--id")
            .arg(id)
            .arg("--bundle")
            .arg(&bundle)
            .stdin(std::process::Stdio::null())
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => serde_json::from_slice::<Value>(&o.stdout)
                .ok()
                .and_then(|v| v["exit_status"].as_u64())
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(255),
            Ok(o) => {
                tracing::warn!(id = %id, error = %String::from_utf8_lossy(&o.stderr).trim(), "berth-shim delete failed");
                255
            }
            Err(e) => {
                tracing::warn!(id = %id, error = %e, "berth-shim delete failed");
                255
            }
        }
    }

    /// Starts the init or an exec process.
    pub async fn start(&self, ns: &str, id: &str, exec_id: &str) -> Result<u32, TaskError> {
        let t = self.running_task(ns, id)?;
        let pid = t
            .client
            .clone()
            .start(shimpb::StartRequest {
                id: id.into(),
                exec_id: exec_id.into(),
            })
            .await
            .map_err(shim_err(id))?
            .into_inner()
            .pid;
        if exec_id.is_empty() {
            let now = berth_rules::time::now_ms();
            // The exit was cleared by create_task: a fast init may already
            // have exited and recorded its status by now.
            self.records()
                .modify(ns, id, |c| c.started_ms = Some(now))?;
        }
        Ok(pid)
    }

    /// Waits for the init (or an exec process) to exit.
    pub async fn wait(&self, ns: &str, id: &str, exec_id: &str) -> Result<Exit, TaskError> {
        self.records().get(ns, id)?;
        let Some(t) = self.task(ns, id) else {
            // Read after the task lookup: an exit recorded meanwhile is seen.
            let c = self.records().get(ns, id)?;
            return c.exit.filter(|_| exec_id.is_empty()).ok_or_else(|| {
                TaskError::State(format!("container {id} has no task to wait for"))
            });
        };
        if !exec_id.is_empty() {
            let r = t
                .client
                .clone()
                .wait(shimpb::WaitRequest {
                    id: id.into(),
                    exec_id: exec_id.into(),
                })
                .await
                .map_err(shim_err(id))?
                .into_inner();
            return Ok(exit_of(r.exit_status, r.exited_at.as_ref()));
        }
        let mut rx = t.exit.subscribe();
        let exit = rx
            .wait_for(|e| e.is_some())
            .await
            .map_err(|_| TaskError::State(format!("container {id}: task went away")))?;
        Ok(exit.expect("waited for Some"))
    }

    /// Signals the init (`all`: every process) or an exec process.
    pub async fn kill(
        &self,
        ns: &str,
        id: &str,
        exec_id: &str,
        signal: u32,
        all: bool,
    ) -> Result<(), TaskError> {
        let t = self.running_task(ns, id)?;
        t.client
            .clone()
            .kill(shimpb::KillRequest {
                id: id.into(),
                exec_id: exec_id.into(),
                signal,
                all,
            })
            .await
            .map_err(shim_err(id))?;
        Ok(())
    }

    /// Adds an exec process: the container's process with `args`, and the
    /// given env, workdir and user over it.
    #[allow(clippy::too_many_arguments)]
    pub async fn exec(
        &self,
        ns: &str,
        id: &str,
        exec_id: &str,
        args: Vec<String>,
        env: Vec<String>,
        workdir: String,
        user: String,
        tty: bool,
        stdin: bool,
        privileged: bool,
    ) -> Result<(), TaskError> {
        if !berth_rules::id::is_name(exec_id) {
            return Err(TaskError::Invalid(format!("invalid exec id {exec_id:?}")));
        }
        if args.is_empty() {
            return Err(TaskError::Invalid("exec needs a command".into()));
        }
        let c = self.records().get(ns, id)?;
        let t = self.running_task(ns, id)?;
        let mut p = c.spec["process"].clone();
        p["args"] = serde_json::json!(args);
        p["terminal"] = Value::Bool(tty);
        let base: Vec<String> = serde_json::from_value(p["env"].clone()).unwrap_or_default();
        let mut env = spec::merge_env(&base, &env);
        if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        p["env"] = serde_json::json!(env);
        if !workdir.is_empty() {
            p["cwd"] = Value::String(workdir);
        }
        if !user.is_empty() {
            let layers = self
                .images
                .snapshots
                .layer_dirs(ns, &c.snapshot)
                .map_err(ImageError::from)?;
            let u = spec::resolve_user(
                &user,
                layer_file(&layers, "etc/passwd").as_deref(),
                layer_file(&layers, "etc/group").as_deref(),
            )?;
            p["user"] = serde_json::json!({"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids});
        }
        if privileged {
            let all = spec::capabilities(&["ALL".into()], &[])?;
            p["capabilities"] =
                serde_json::json!({"bounding": all, "effective": all, "permitted": all});
        }
        t.client
            .clone()
            .exec(shimpb::ExecRequest {
                id: id.into(),
                exec_id: exec_id.into(),
                terminal: tty,
                stdin,
                spec: p.to_string(),
            })
            .await
            .map_err(shim_err(id))?;
        Ok(())
    }

    /// The shim's client of a running container (for attach and friends).
    pub fn shim(&self, ns: &str, id: &str) -> Result<ShimClient<Channel>, TaskError> {
        Ok(self.running_task(ns, id)?.client.clone())
    }

    /// Deletes an exited exec process, or the container's stopped task.
    pub async fn delete_task(&self, ns: &str, id: &str, exec_id: &str) -> Result<Exit, TaskError> {
        let c = self.records().get(ns, id)?;
        if !exec_id.is_empty() {
            let t = self.running_task(ns, id)?;
            let r = t
                .client
                .clone()
                .delete(shimpb::DeleteRequest {
                    id: id.into(),
                    exec_id: exec_id.into(),
                })
                .await
                .map_err(shim_err(id))?
                .into_inner();
            return Ok(exit_of(r.exit_status, r.exited_at.as_ref()));
        }
        let _g = self.lock(ns, id).await;
        match self.task(ns, id) {
            None => c
                .exit
                .ok_or_else(|| TaskError::State(format!("container {id} has no task"))),
            Some(t) => match self.status(ns, id).await.0 {
                st @ (Status::Created | Status::Stopped | Status::None) => {
                    if st == Status::Created {
                        // Never started: kill it, then delete the task.
                        self.kill_all(id, &t).await;
                    }
                    let exit = self.wait_exit(&t, Duration::from_secs(10)).await;
                    self.finish(ns, id, &t).await;
                    Ok(exit)
                }
                _ => Err(TaskError::State(format!(
                    "container {id} is running: stop it first"
                ))),
            },
        }
    }

    /// The task's exit, waiting up to `limit` (then 137: killed).
    async fn wait_exit(&self, t: &Arc<Task>, limit: Duration) -> Exit {
        let mut rx = t.exit.subscribe();
        let got = match tokio::time::timeout(limit, rx.wait_for(|e| e.is_some())).await {
            Ok(Ok(e)) => *e,
            _ => None,
        };
        got.unwrap_or(Exit {
            status: 137,
            at_ms: berth_rules::time::now_ms(),
        })
    }

    /// Removes a container: refused while its task runs unless `force`
    /// (which kills it first). Its snapshot goes too unless `keep_snapshot`.
    pub async fn delete(
        &self,
        ns: &str,
        id: &str,
        force: bool,
        keep_snapshot: bool,
    ) -> Result<(), TaskError> {
        let _g = self.lock(ns, id).await;
        self.records().get(ns, id)?;
        if let Some(t) = self.task(ns, id) {
            let st = self.status(ns, id).await.0;
            if st != Status::Stopped && !force {
                return Err(TaskError::State(format!(
                    "container {id} is running: stop it first, or force the removal (rm -f)"
                )));
            }
            if st == Status::Paused {
                let _ = t
                    .client
                    .clone()
                    .resume(shimpb::ResumeRequest { id: id.into() })
                    .await;
            }
            self.kill_all(id, &t).await;
            let exit = self.wait_exit(&t, Duration::from_secs(10)).await;
            self.record_exit(ns, id, &t, exit);
            self.finish(ns, id, &t).await;
        }
        self.remove_container(ns, id, keep_snapshot).await
    }

    /// Removes a container without a task. Call with its lock held.
    async fn remove_container(
        &self,
        ns: &str,
        id: &str,
        keep_snapshot: bool,
    ) -> Result<(), TaskError> {
        let c = self.records().get(ns, id)?;
        if !keep_snapshot {
            let images = self.images.clone();
            let (ns2, snap) = (ns.to_string(), c.snapshot.clone());
            tokio::task::spawn_blocking(move || match images.snapshots.remove(&ns2, &snap) {
                Err(crate::snapshot::SnapshotError::NotFound(_)) => Ok(()),
                r => r,
            })
            .await
            .map_err(|e| TaskError::Invalid(format!("worker: {e}")))?
            .map_err(ImageError::from)?;
        }
        let dir = self.data_dir(ns, id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("remove", &dir)(e));
            }
            _ => {}
        }
        let _ = std::fs::remove_dir_all(self.bundle(ns, id));
        self.records().remove(ns, id)?;
        self.locks.lock().unwrap().remove(&key(ns, id));
        self.publish(ns, "/containers/delete", id, "", 0, 0);
        Ok(())
    }

    /// Freezes the container.
    pub async fn pause(&self, ns: &str, id: &str) -> Result<(), TaskError> {
        let t = self.running_task(ns, id)?;
        t.client
            .clone()
            .pause(shimpb::PauseRequest { id: id.into() })
            .await
            .map_err(shim_err(id))?;
        Ok(())
    }

    /// Thaws the container.
    pub async fn resume(&self, ns: &str, id: &str) -> Result<(), TaskError> {
        let t = self.running_task(ns, id)?;
        t.client
            .clone()
            .resume(shimpb::ResumeRequest { id: id.into() })
            .await
            .map_err(shim_err(id))?;
        Ok(())
    }

    /// New limits (OCI `linux.resources` JSON) for the running container;
    /// the stored spec follows, so a restart keeps them.
    pub async fn update(&self, ns: &str, id: &str, resources: &str) -> Result<(), TaskError> {
        let v: Value = serde_json::from_str(resources)
            .map_err(|e| TaskError::Invalid(format!("resources: {e}")))?;
        let t = self.running_task(ns, id)?;
        t.client
            .clone()
            .update(shimpb::UpdateRequest {
                id: id.into(),
                resources: resources.into(),
            })
            .await
            .map_err(shim_err(id))?;
        self.records().modify(ns, id, |c| {
            if let (Some(old), Some(new)) =
                (c.spec["linux"]["resources"].as_object_mut(), v.as_object())
            {
                for (k, val) in new {
                    old.insert(k.clone(), val.clone());
                }
            }
        })?;
        Ok(())
    }

    /// The container's resource usage.
    pub async fn stats(&self, ns: &str, id: &str) -> Result<shimpb::StatsResponse, TaskError> {
        let t = self.running_task(ns, id)?;
        Ok(t.client
            .clone()
            .stats(shimpb::StatsRequest { id: id.into() })
            .await
            .map_err(shim_err(id))?
            .into_inner())
    }

    /// The container's processes.
    pub async fn pids(&self, ns: &str, id: &str) -> Result<Vec<u32>, TaskError> {
        let t = self.running_task(ns, id)?;
        Ok(t.client
            .clone()
            .pids(shimpb::PidsRequest { id: id.into() })
            .await
            .map_err(shim_err(id))?
            .into_inner()
            .processes
            .into_iter()
            .map(|p| p.pid)
            .collect())
    }

    /// Makes the container's changes a new image `name` (paused meanwhile
    /// when running, as docker does).
    pub async fn commit(
        &self,
        ns: &str,
        id: &str,
        name: &str,
        comment: &str,
    ) -> Result<crate::images::Image, TaskError> {
        let c = self.records().get(ns, id)?;
        let paused = match self.status(ns, id).await.0 {
            Status::Running => self.pause(ns, id).await.is_ok(),
            _ => false,
        };
        let images = self.images.clone();
        let bound = self.bound_etc_files(ns, &c);
        let (ns2, name, comment) = (ns.to_string(), name.to_string(), comment.to_string());
        let r = tokio::task::spawn_blocking(move || {
            // The /etc files berthd binds (hosts, hostname, resolv.conf) are
            // the container's runtime configuration, not its changes; their
            // mount points in the upper layer stay out, as docker's init layer.
            let skip: &[&str] = if bound {
                &["etc/hosts", "etc/hostname", "etc/resolv.conf"]
            } else {
                &[]
            };
            images.commit(&ns2, &c.snapshot, &c.image, &name, &comment, skip)
        })
        .await
        .map_err(|e| TaskError::Invalid(format!("worker: {e}")));
        if paused {
            let _ = self.resume(ns, id).await;
        }
        let img = r??;
        self.publish(ns, "/images/create", &img.name, "", 0, 0);
        Ok(img)
    }

    /// Whether the container has a task (its log may still grow).
    pub fn has_task(&self, ns: &str, id: &str) -> bool {
        self.task(ns, id).is_some()
    }

    /// After a restart: reconnects to every container's shim, records the
    /// exits that happened meanwhile, cleans up after shims that died, and
    /// removes bundles no container owns. Containers are handled in parallel.
    pub async fn recover(self: &Arc<Self>) -> Result<(), TaskError> {
        let all = self.records().all()?;
        let mut jobs = tokio::task::JoinSet::new();
        for (ns, c) in &all {
            let bundle = self.bundle(ns, &c.id);
            if !bundle.join("address").exists() && !bundle.join("shim.pid").exists() {
                continue;
            }
            let (me, ns, id) = (self.clone(), ns.clone(), c.id.clone());
            jobs.spawn(async move { me.recover_one(&ns, &id).await });
        }
        while let Some(r) = jobs.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "recover");
            }
        }
        // Networking of tasks that are gone (berthd died between a task's
        // end and its teardown, or during a setup): DEL and the namespace,
        // in the background under the container's lock. Attachments of live
        // tasks get a CHECK.
        let mut net: std::collections::BTreeSet<(String, String)> =
            self.networks.recorded().into_iter().collect();
        net.extend(
            per_container(&self.paths.state.join("netns"))
                .into_iter()
                .map(|(n, i, _)| (n, i)),
        );
        for (ns, id) in net {
            let me = self.clone();
            tokio::spawn(async move {
                let _g = me.lock(&ns, &id).await;
                if me.task(&ns, &id).is_some() {
                    if let Err(e) = me.networks.check(&ns, &id).await {
                        tracing::warn!(namespace = %ns, id = %id, error = %e, "network CHECK failed");
                    }
                } else if !me.bundle(&ns, &id).join("address").exists() {
                    tracing::info!(namespace = %ns, id = %id, "tearing down orphaned networking");
                    me.teardown_network(&ns, &id).await;
                }
            });
        }
        // Bundles without a record (a crash between a shim's start and the
        // end of a removal).
        let owned: std::collections::HashSet<(String, String)> =
            all.iter().map(|(n, c)| (n.clone(), c.id.clone())).collect();
        for (ns, id, path) in per_container(&self.paths.state.join("bundles")) {
            if !owned.contains(&(ns.clone(), id.clone())) {
                tracing::info!(namespace = %ns, id = %id, "removing orphaned bundle");
                self.shim_delete(&ns, &id).await;
                let _ = std::fs::remove_dir_all(path);
            }
        }
        Ok(())
    }

    async fn recover_one(self: &Arc<Self>, ns: &str, id: &str) -> Result<(), TaskError> {
        let bundle = self.bundle(ns, id);
        let address = std::fs::read_to_string(bundle.join("address")).unwrap_or_default();
        let connected = async {
            let ch = tokio::time::timeout(
                Duration::from_secs(2),
                berth_proto::connect_unix(address.trim()),
            )
            .await
            .ok()?
            .ok()?;
            let mut client = ShimClient::new(ch);
            let events = client
                .events(shimpb::EventsRequest {})
                .await
                .ok()?
                .into_inner();
            let st = client
                .state(shimpb::StateRequest {
                    id: id.into(),
                    exec_id: String::new(),
                })
                .await
                .ok()?
                .into_inner();
            Some((client, events, st))
        }
        .await;
        let Some((client, events, st)) = connected else {
            // The shim is gone: its container was killed with it (137). The
            // cleanup (`berth-shim delete`: kill, runtime delete, unmount) runs
            // in the background under the container's lock, so berthd serves
            // at once and calls on this container wait for it.
            let guard = self.lock(ns, id).await;
            let status = 128 + libc::SIGKILL as u32;
            let c = self.records().get(ns, id)?;
            if c.exit.is_none() {
                self.records().modify(ns, id, |c| {
                    c.exit = Some(Exit {
                        status,
                        at_ms: berth_rules::time::now_ms(),
                    })
                })?;
            }
            self.publish(ns, "/tasks/exit", id, "", 0, status);
            let (me, ns, id) = (self.clone(), ns.to_string(), id.to_string());
            tokio::spawn(async move {
                let _guard = guard;
                me.shim_delete(&ns, &id).await;
                let _ = std::fs::remove_dir_all(me.bundle(&ns, &id));
                me.teardown_network(&ns, &id).await;
                tracing::info!(namespace = %ns, id = %id, "shim was gone; cleaned up");
            });
            return Ok(());
        };
        let task = Arc::new(Task {
            client,
            pid: st.pid,
            exit: watch::channel(None).0,
        });
        self.tasks.lock().unwrap().insert(key(ns, id), task.clone());
        self.watch(ns, id, task.clone(), events);
        if st.status() == shimpb::Status::Stopped {
            let exit = exit_of(st.exit_status, st.exited_at.as_ref());
            self.publish(ns, "/tasks/exit", id, "", st.pid, st.exit_status);
            // Recorded now; the task's deletion and the shim's exit follow in
            // the background (under the container's lock), so berthd serves at once.
            self.record_exit(ns, id, &task, exit);
            let (me, ns, id) = (self.clone(), ns.to_string(), id.to_string());
            tokio::spawn(async move { me.init_exited(&ns, &id, &task, exit).await });
            return Ok(());
        }
        tracing::info!(namespace = %ns, id = %id, "reconnected to shim");
        Ok(())
    }
}
