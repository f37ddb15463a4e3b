//! The Kubernetes CRI v1 server (kubelet's and crictl's protocol), beside
//! the gRPC layer of berthd's own API, over the same container, network and
//! store layers. Its objects live in the manager namespace `k8s.io`, so
//! `berthctl -n k8s.io ps` and `images` show them.
//!
//! - `pods` (pod sandbox records and lifecycle), `holder` (the process that
//!   holds a pod's IPC, UTS and PID namespaces: no pause image), `pod_files`
//!   (the pod's hostname, hosts and resolv.conf); `pod_cgroup` (a pod's own
//!   cgroup with its resources and overhead, when kubelet gives it none);
//! - `spec` (a CRI container config over a pod to an OCI spec, pure),
//!   `containers` (create, start, stop, remove, status, list, exec_sync,
//!   update, log reopening);
//! - `handlers` (runtime handlers: berthd's runtime and configured ones);
//! - `events` (GetContainerEvents' bus); `pod_stats` (a pod's sums,
//!   processes and network counters); `metrics` (the same as cAdvisor
//!   metrics);
//! - `stats` (container CPU, memory, swap and writable-layer usage);
//! - `images` (the image service over the store: ids, tags, digests, pulls);
//! - `streaming/`: the server behind Exec, Attach and PortForward URLs;
//! - `runtime_service` and `image_service`: the gRPC services, which only
//!   adapt; `socket`: where they listen; `authority`: the relay that lets
//!   old gRPC clients in.

pub mod authority;
pub mod containers;
pub mod events;
pub mod handlers;
pub mod holder;
pub mod image_service;
pub mod images;
pub mod metrics;
pub mod pod_cgroup;
pub mod pod_files;
pub mod pod_stats;
pub mod pods;
pub mod runtime_service;
pub mod socket;
pub mod spec;
pub mod stats;
pub mod streaming;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tonic::Status;

use crate::containers::spec::SpecError;
use crate::containers::tasks::{Manager, TaskError};
use crate::network::networks::{NetworkError, Networks};
use crate::store::images::ImageError;
use crate::store::meta::MetaError;

/// The manager namespace of CRI objects.
pub const NAMESPACE: &str = "k8s.io";

/// The runtime handler Berth answers to (kubelet's default is "").
pub const HANDLER: &str = "berth";

/// A CRI operation failure.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// No such pod, container or image.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// "pod sandbox", "container", "image".
        kind: &'static str,
        /// What was asked for.
        id: String,
    },
    /// The name or object exists.
    #[error("{0}")]
    Exists(String),
    /// The request is malformed or unsupported.
    #[error("{0}")]
    Invalid(String),
    /// The object is in the wrong state for the call.
    #[error("{0}")]
    State(String),
    /// The call ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// The container layer failed.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Networking failed.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A spec cannot be made.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A file, mount or process step failed.
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

pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CriError {
    let path = path.to_path_buf();
    move |source| CriError::Io { what, path, source }
}

/// The gRPC status kubelet acts on for a CRI error.
pub fn status_of(e: CriError) -> Status {
    let msg = e.to_string();
    match e {
        CriError::NotFound { .. } => Status::not_found(msg),
        CriError::Exists(_) => Status::already_exists(msg),
        CriError::Invalid(_) | CriError::Spec(_) => Status::invalid_argument(msg),
        CriError::State(_) => Status::failed_precondition(msg),
        CriError::Timeout(_) => Status::deadline_exceeded(msg),
        CriError::Task(e) => crate::codes::task_status(e),
        CriError::Image(e) => crate::codes::image_status(e),
        CriError::Network(NetworkError::NotFound(_)) => Status::failed_precondition(msg),
        CriError::Network(_) => Status::unavailable(msg),
        CriError::Meta(_) | CriError::Io { .. } => Status::internal(msg),
    }
}

/// What the CRI server is configured with.
#[derive(Clone, Debug)]
pub struct CriConfig {
    /// The CNI configuration lists pods are networked by (the first, in
    /// libcni's order).
    pub cni_conf_dir: PathBuf,
    /// Where CNI plugins are looked for.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// berthd's data root (the CRI's network records go under `cri/`).
    pub root: PathBuf,
    /// berthd's state directory (pods go under `pods/`).
    pub state: PathBuf,
    /// The berth-shim binary (its `hold` mode holds pods' namespaces).
    pub shim: PathBuf,
    /// The cgroup pods without a cgroup parent of their own go under.
    pub cgroup_parent: String,
    /// berthd's cgroup driver (RuntimeConfig reports it to kubelet).
    pub cgroup_driver: crate::containers::cgroups::CgroupDriver,
    /// Registries' mirrors and which are spoken to in plain HTTP.
    pub registries: Arc<crate::store::mirrors::RegistrySettings>,
    /// The streaming server's URL base (`http://127.0.0.1:port`; "": none).
    pub stream_url: String,
    /// Runtime handlers beside berthd's own runtime.
    pub handlers: handlers::Handlers,
}

/// The CRI runtime: pods and their containers over berthd's manager.
pub struct Cri {
    /// The containers (and through it the image store).
    pub manager: Arc<Manager>,
    /// The networks pods attach to (kubelet's CNI directory, not berthctl's).
    pub networks: Networks,
    /// Settings.
    pub config: CriConfig,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The pod CIDR kubelet last gave (UpdateRuntimeConfig).
    pub pod_cidr: Mutex<String>,
    /// Each container's previous CPU sample (for nano-cores).
    pub cpu_samples: stats::CpuSamples,
    /// Streaming URLs handed out and the requests behind them.
    pub streams: streaming::Urls,
    /// Container and pod events for GetContainerEvents.
    pub events: events::Events,
}

impl Cri {
    /// The CRI over `manager`.
    pub fn new(manager: Arc<Manager>, config: CriConfig) -> Cri {
        Cri {
            manager,
            // Records of pods' attachments are apart from the containers'
            // (berthd's recovery tears down those without a task).
            networks: Networks::new(
                config.cni_conf_dir.clone(),
                config.cni_bin_dirs.clone(),
                &config.root.join("cri"),
            ),
            streams: streaming::Urls::new(config.stream_url.clone()),
            events: Default::default(),
            config,
            locks: Mutex::new(HashMap::new()),
            pod_cidr: Mutex::new(String::new()),
            cpu_samples: Default::default(),
        }
    }

    /// Serializes work on one pod or container.
    pub(crate) async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self
            .locks
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .clone();
        m.lock_owned().await
    }

    /// Forgets a removed object's lock.
    pub(crate) fn forget(&self, id: &str) {
        self.locks.lock().unwrap().remove(id);
    }
}

/// A new 64-hex-digit id, as containerd's and kubelet's tools expect.
pub fn new_id() -> String {
    let mut s = String::with_capacity(64);
    for _ in 0..4 {
        s.push_str(&berth_rules::id::random());
    }
    s
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether `labels` has every pair of `selector`.
pub fn matches_labels(
    labels: &HashMap<String, String>,
    selector: &HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The one record whose id is `id`, or begins with it (crictl passes
/// short ids): `exact` looks the id up, `all` lists every record.
pub(crate) fn by_id_or_prefix<T>(
    kind: &'static str,
    id: &str,
    exact: impl FnOnce(&str) -> Result<Option<T>, CriError>,
    all: impl FnOnce() -> Result<Vec<(String, T)>, CriError>,
) -> Result<T, CriError> {
    let not_found = || CriError::NotFound {
        kind,
        id: id.into(),
    };
    if id.is_empty() {
        return Err(not_found());
    }
    if let Some(t) = exact(id)? {
        return Ok(t);
    }
    let mut hits: Vec<T> = all()?
        .into_iter()
        .filter(|(k, _)| k.starts_with(id))
        .map(|(_, t)| t)
        .collect();
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => Err(not_found()),
        _ => Err(CriError::Invalid(format!(
            "{kind} id prefix {id:?} is ambiguous"
        ))),
    }
}

/// `Ok(None)` for a NotFound: the calls kubelet expects to be idempotent
/// (stopping or removing what is gone) take it as done.
pub(crate) fn found<T>(r: Result<T, CriError>) -> Result<Option<T>, CriError> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(CriError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `id` is `want` or begins with it (crictl passes short ids).
pub fn matches_id(id: &str, want: &str) -> bool {
    want.is_empty() || id.starts_with(want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn filters_match_labels_and_id_prefixes() {
        let l: HashMap<String, String> = [("app".into(), "web".into())].into();
        assert!(matches_labels(&l, &HashMap::new()));
        assert!(matches_labels(&l, &l));
        assert!(!matches_labels(
            &l,
            &[("app".to_string(), "db".to_string())].into()
        ));
        assert!(matches_id("abcdef", "abc") && matches_id("abcdef", ""));
        assert!(!matches_id("abcdef", "bc"));
    }

    #[test]
    fn errors_get_the_codes_kubelet_acts_on() {
        let nf = CriError::NotFound {
            kind: "container",
            id: "x".into(),
        };
        assert_eq!(status_of(nf).code(), tonic::Code::NotFound);
        assert_eq!(
            status_of(CriError::State("not running".into())).code(),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            status_of(CriError::Timeout("exec".into())).code(),
            tonic::Code::DeadlineExceeded
        );
        assert_eq!(
            status_of(CriError::Exists("name taken".into())).code(),
            tonic::Code::AlreadyExists
        );
    }
}
