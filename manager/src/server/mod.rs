//! berthd's gRPC server: the images, snapshots, content, leases, containers,
//! tasks, events, volumes and networks services on a unix socket (0600), in
//! the namespace each request names.

mod build;
mod containers;
mod content;
mod events;
mod images;
mod leases;
mod networks;
mod snapshots;
mod usage;
mod volumes;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_proto::images::content_server::ContentServer;
use berth_proto::images::images_server::ImagesServer;
use berth_proto::images::leases_server::LeasesServer;
use berth_proto::images::snapshots_server::SnapshotsServer;
use serde::Deserialize;
use tonic::{Request, Status};

use crate::containers::tasks::{Manager, Paths};
use crate::store::images::{ImageError, Images};
use berth_proto::containers::containers_server::ContainersServer;
use berth_proto::containers::events_server::EventsServer;
use berth_proto::containers::networks_server::NetworksServer;
use berth_proto::containers::tasks_server::TasksServer;
use berth_proto::containers::volumes_server::VolumesServer;

/// berthd's settings: built-in defaults, then the TOML file, then flags.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Persistent data: content, metadata, snapshots.
    pub root: PathBuf,
    /// Runtime state (sockets, shims' bundles).
    pub state: PathBuf,
    /// The gRPC socket.
    pub address: PathBuf,
    /// The berth-shim binary (default: beside berthd, else on PATH).
    pub shim: Option<PathBuf>,
    /// The runtime containers use unless they name one (default: `berth`
    /// beside berthd, else on PATH).
    pub runtime: Option<PathBuf>,
    /// The cgroup containers' cgroups go under, as `<parent>/<ns>/<id>`.
    pub cgroup_parent: String,
    /// `cgroupfs` (berth's directories) or `systemd` (each container a
    /// transient scope, as kubelet's systemd driver expects).
    pub cgroup_driver: String,
    /// Containers' logs rotate past this many bytes unless they say
    /// otherwise (`log_max_size`; docker's local driver's 20 MB).
    pub log_max_size: u64,
    /// And keep this many files, the log included (`log_max_files`).
    pub log_max_files: u32,
    /// The CNI network configuration lists (the default network is
    /// written here on first start).
    pub cni_conf_dir: PathBuf,
    /// Where CNI plugins are looked for, in order.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Registries pulled from over plain HTTP, besides loopback ones:
    /// `host`, `host:port` or an address range `addr/len`.
    pub insecure_registries: Vec<String>,
    /// docker.io's mirrors, tried in order before it (dockerd's
    /// `registry-mirrors`).
    pub registry_mirrors: Vec<String>,
    /// Per-registry settings: `[registries."registry.k8s.io"] mirrors = [...]`.
    pub registries: std::collections::BTreeMap<String, crate::store::mirrors::RegistryHosts>,
    /// The Kubernetes CRI socket (empty: no CRI server).
    pub cri_address: PathBuf,
    /// The CNI configuration lists CRI pods are networked by (kubelet's
    /// node's, apart from berthctl's `cni_conf_dir`).
    pub cri_cni_conf_dir: PathBuf,
    /// CRI runtime handlers beside berthd's own runtime: name → OCI runtime
    /// binary (runc's command line), `[runtime_handlers] runc = "/usr/sbin/runc"`.
    pub runtime_handlers: std::collections::BTreeMap<String, PathBuf>,
    /// The CRI streaming server (exec, attach, port-forward URLs):
    /// `host:port`, port 0 for any free one; empty: none.
    pub stream_address: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            root: "/var/lib/berth".into(),
            state: "/run/berth".into(),
            address: "/run/berth/berthd.sock".into(),
            shim: None,
            runtime: None,
            cgroup_parent: "/berth".into(),
            cgroup_driver: "cgroupfs".into(),
            log_max_size: 20_000_000,
            log_max_files: 5,
            // Berth's own directory: its default "bridge" stays out of the
            // lists podman and containerd read from /etc/cni/net.d.
            cni_conf_dir: "/etc/berth/net.d".into(),
            // Debian's containernetworking-plugins, then the upstream default.
            cni_bin_dirs: vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
            insecure_registries: Vec::new(),
            registry_mirrors: Vec::new(),
            registries: Default::default(),
            cri_address: "/run/berth/cri.sock".into(),
            cri_cni_conf_dir: "/etc/cni/net.d".into(),
            runtime_handlers: Default::default(),
            // Loopback only, as containerd's default: kubelet proxies.
            stream_address: "127.0.0.1:0".into(),
        }
    }
}

/// A failure to start or run the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config file cannot be read or parsed.
    #[error("config {path}: {why}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// Opening the store failed.
    #[error(transparent)]
    Store(#[from] ImageError),
    /// A socket or directory step failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reconnecting to the shims of a previous run failed.
    #[error("recover containers: {0}")]
    Recover(String),
    /// The transport failed.
    #[error("serve: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl Config {
    /// The defaults overridden by the TOML file at `path`.
    pub fn load(path: &Path) -> Result<Config, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ServeError::Config {
            path: path.into(),
            why: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ServeError::Config {
            path: path.into(),
            why: e.to_string(),
        })
    }
}

/// The namespace a request names (default "default").
fn namespace<T>(r: &Request<T>) -> Result<String, Status> {
    let ns = match r.metadata().get(berth_proto::NAMESPACE_HEADER) {
        None => "default".to_string(),
        Some(v) => v
            .to_str()
            .map_err(|_| Status::invalid_argument("namespace header is not text"))?
            .to_string(),
    };
    if !berth_rules::id::is_namespace(&ns) {
        return Err(Status::invalid_argument(format!(
            "invalid namespace {ns:?}"
        )));
    }
    Ok(ns)
}

/// The API form of an image (for the pull stream).
pub fn image_to_pb(
    store: &Images,
    i: &crate::store::images::Image,
    p: &crate::store::oci::Platform,
) -> berth_proto::images::Image {
    images::to_pb(store, i, p)
}

pub use crate::codes::image_status as status_of;

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker: {e}")))?
        .map_err(status_of)
}

/// A helper binary: beside our own, else the first on PATH.
fn find_binary(name: &str) -> PathBuf {
    if let Some(p) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
    {
        return p;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Serves until SIGTERM or SIGINT.
pub async fn serve(cfg: Config) -> Result<(), ServeError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| ServeError::Io { what, path, source }
    };
    if let Some(bad) = cfg
        .insecure_registries
        .iter()
        .find(|e| !crate::store::pull::valid_insecure_entry(e))
    {
        return Err(ServeError::Config {
            path: "insecure_registries".into(),
            why: format!("{bad:?} is not a host, host:port or address range"),
        });
    }
    let registries = Arc::new(
        crate::store::mirrors::RegistrySettings::new(
            cfg.insecure_registries.clone(),
            &cfg.registry_mirrors,
            &cfg.registries,
        )
        .map_err(|e| ServeError::Config {
            path: "registries".into(),
            why: e.to_string(),
        })?,
    );
    let cgroup_driver: crate::containers::cgroups::CgroupDriver = cfg
        .cgroup_driver
        .parse()
        .map_err(|why| ServeError::Config {
            path: "cgroup_driver".into(),
            why,
        })?;
    // Closed to other users before anything is put there (perm.rs says why).
    crate::perm::dir(&cfg.root, crate::perm::ROOT).map_err(io("create", &cfg.root))?;
    crate::perm::dir(&cfg.state, crate::perm::STATE).map_err(io("create", &cfg.state))?;
    let bundles = cfg.state.join("bundles");
    crate::perm::close_bundles(&bundles).map_err(io("close", &bundles))?;
    let store = Arc::new(Images::open(&cfg.root)?);
    let tmp = cfg.root.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(io("create", &tmp))?;
    let listener =
        crate::perm::listen(&cfg.address, "another berthd").map_err(|(what, source)| {
            ServeError::Io {
                what,
                path: cfg.address.clone(),
                source,
            }
        })?;
    let manager = Arc::new(Manager::new(
        store.clone(),
        Paths {
            root: cfg.root.clone(),
            state: cfg.state.clone(),
            shim: cfg
                .shim
                .clone()
                .unwrap_or_else(|| find_binary("berth-shim")),
            runtime: cfg.runtime.clone().unwrap_or_else(|| find_binary("berth")),
            cgroup_parent: cfg.cgroup_parent.clone(),
            cgroup_driver,
            cni_conf_dir: cfg.cni_conf_dir.clone(),
            cni_bin_dirs: cfg.cni_bin_dirs.clone(),
        },
    ));
    manager
        .networks
        .ensure_default()
        .map_err(|e| ServeError::Recover(format!("default network: {e}")))?;
    let t = std::time::Instant::now();
    manager
        .recover()
        .await
        .map_err(|e| ServeError::Recover(e.to_string()))?;
    tracing::info!(address = %cfg.address.display(), root = %cfg.root.display(), recovered_in_ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX), "berthd serving");
    let cs = containers::Service {
        manager: manager.clone(),
        log_defaults: (cfg.log_max_size, cfg.log_max_files),
    };
    let (stopped_tx, stopped) = tokio::sync::watch::channel(false);
    let stop = async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("stopping");
        let _ = stopped_tx.send(true);
    };
    let cri = if cfg.cri_address.as_os_str().is_empty() {
        None
    } else {
        let listener = crate::cri::socket::listen(&cfg.cri_address)
            .map_err(|e| ServeError::Recover(format!("CRI: {e}")))?;
        let streams = if cfg.stream_address.is_empty() {
            None
        } else {
            Some(
                crate::cri::streaming::bind(&cfg.stream_address)
                    .await
                    .map_err(|source| ServeError::Io {
                        what: "bind the streaming server",
                        path: cfg.stream_address.clone().into(),
                        source,
                    })?,
            )
        };
        let userns =
            crate::cri::handlers::probe_user_namespaces(manager.shim_binary(), &cfg.root).await;
        if let crate::cri::handlers::UserNamespaces::No(why) = &userns {
            tracing::info!(reason = %why, "CRI: no user namespaces for pods (idmapped layers)");
        }
        let c = Arc::new(crate::cri::Cri::new(
            manager.clone(),
            crate::cri::CriConfig {
                cni_conf_dir: cfg.cri_cni_conf_dir.clone(),
                cni_bin_dirs: cfg.cni_bin_dirs.clone(),
                root: cfg.root.clone(),
                state: cfg.state.clone(),
                shim: manager.shim_binary().to_path_buf(),
                cgroup_parent: cfg.cgroup_parent.clone(),
                cgroup_driver,
                registries: registries.clone(),
                stream_url: streams.as_ref().map(|s| s.1.clone()).unwrap_or_default(),
                handlers: crate::cri::handlers::Handlers::probe(&cfg.runtime_handlers)
                    .map_err(|e| ServeError::Recover(format!("CRI: {e}")))?
                    .with_user_namespaces(userns),
            },
        ));
        tokio::spawn(c.clone().watch_exits());
        if let Some((l, url)) = streams {
            tracing::info!(url = %url, "CRI streaming serving");
            let mut rx = stopped.clone();
            tokio::spawn(crate::cri::streaming::serve(c.clone(), l, async move {
                let _ = rx.wait_for(|s| *s).await;
            }));
        }
        let mut rx = stopped.clone();
        let address = cfg.cri_address.clone();
        tracing::info!(address = %address.display(), "CRI serving");
        Some(tokio::spawn(async move {
            let r = crate::cri::socket::serve(c, listener, async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
            let _ = std::fs::remove_file(&address);
            r
        }))
    };
    let result = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(crate::conns::PING_EVERY))
        .add_service(ImagesServer::new(images::Service {
            store: store.clone(),
            tmp,
            manager: manager.clone(),
            registries: registries.clone(),
            builder: Arc::new(crate::build::Builder {
                manager: manager.clone(),
                store: store.clone(),
                registries,
                work: cfg.state.join("build"),
            }),
        }))
        .add_service(SnapshotsServer::new(snapshots::Service {
            store: store.clone(),
        }))
        .add_service(LeasesServer::new(leases::Service {
            store: store.clone(),
        }))
        .add_service(ContentServer::new(content::Service { store }))
        .add_service(ContainersServer::new(cs.clone()))
        .add_service(TasksServer::new(cs.clone()))
        .add_service(EventsServer::new(cs.clone()))
        .add_service(VolumesServer::new(cs.clone()))
        .add_service(NetworksServer::new(cs))
        .serve_with_incoming_shutdown(
            crate::conns::incoming(listener, crate::conns::Limits::default()),
            stop,
        )
        .await;
    let _ = std::fs::remove_file(&cfg.address);
    drop(stopped);
    if let Some(c) = cri {
        if let Ok(Err(e)) = c.await {
            tracing::warn!(error = %e, "CRI server");
        }
    }
    result?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_overrides_defaults() {
        let c: Config = toml::from_str("root = \"/srv/berth\"").unwrap();
        assert_eq!(c.root, PathBuf::from("/srv/berth"));
        assert_eq!(c.address, Config::default().address);
        assert!(toml::from_str::<Config>("nope = 1").is_err());
        let c: Config = toml::from_str(
            "registry_mirrors = [\"http://127.0.0.1:5000\"]\n[registries.\"registry.k8s.io\"]\nmirrors = [\"http://127.0.0.1:5001\"]",
        )
        .unwrap();
        assert_eq!(c.registry_mirrors, ["http://127.0.0.1:5000"]);
        assert_eq!(c.registries["registry.k8s.io"].mirrors.len(), 1);
        let c: Config = toml::from_str("insecure_registries = [\"10.0.0.0/8\"]").unwrap();
        assert_eq!(c.insecure_registries, ["10.0.0.0/8"]);
        assert!(
            berth_rules::id::is_namespace("default") && berth_rules::id::is_namespace("k8s.io")
        );
        assert!(
            !berth_rules::id::is_namespace("")
                && !berth_rules::id::is_namespace("../x")
                && !berth_rules::id::is_namespace("A")
        );
    }
}
