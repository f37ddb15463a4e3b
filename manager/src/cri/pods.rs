//! Pod sandboxes: RunPodSandbox, StopPodSandbox, RemovePodSandbox,
//! PodSandboxStatus and ListPodSandbox.
//!
//! A pod is a record (its CRI config, kept whole) and a directory
//! `<state>/pods/<id>`: its network namespace pinned at `net` and attached
//! to the first CNI network of kubelet's directory, its shared namespaces
//! pinned under `ns/` (see `holder`), its `/dev/shm` (a tmpfs at `shm`), and
//! the `hostname`, `hosts` and `resolv.conf` its containers bind. Stopping
//! tears down the processes and the network and keeps the record; removing
//! takes the rest. Both are idempotent, as kubelet expects.

use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use berth_rules::idmap::{self, IdMap, UserMaps};

use super::holder::{self, Shared};
use super::{io, pod_files, Cri, CriError, HANDLER, NAMESPACE};
use crate::network::networks::PortMapping;
use crate::store::meta::Table;

/// A pod sandbox record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pod {
    /// Its id (64 hex digits).
    pub id: String,
    /// kubelet's config, as given.
    pub config: cri::PodSandboxConfig,
    /// The runtime handler it was run with.
    pub runtime_handler: String,
    /// Creation, nanoseconds since the epoch.
    pub created_ns: i64,
    /// Ready until stopped.
    pub ready: bool,
    /// The holder of its namespaces (0: none).
    pub holder_pid: u32,
    /// The CNI network it is attached to ("": the host's network).
    pub network: String,
    /// Its addresses on that network, IPv4 first.
    pub ips: Vec<String>,
}

/// The namespace options of a pod config (kubelet's defaults when absent:
/// everything of the pod's own, PID per container).
pub fn namespace_options(c: &cri::PodSandboxConfig) -> cri::NamespaceOption {
    c.linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or(cri::NamespaceOption {
            pid: cri::NamespaceMode::Container as i32,
            ..Default::default()
        })
}

/// Whether the pod uses the node's network (and UTS) namespace.
pub fn host_network(c: &cri::PodSandboxConfig) -> bool {
    namespace_options(c).network == cri::NamespaceMode::Node as i32
}

/// The pod's hostname: kubelet's, else the node's (as containerd does: a
/// pod's name may be longer than a hostname can be).
pub fn hostname(c: &cri::PodSandboxConfig) -> String {
    if !c.hostname.is_empty() {
        return c.hostname.clone();
    }
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// The pod's user namespace maps (uid, gid), from `userns_options`: `None`
/// for NODE (the host's), one uid and one gid range mapping the pod's root
/// for POD, as kubelet sends them; CONTAINER and TARGET are not modes a
/// pod's user namespace can have.
pub fn userns(c: &cri::PodSandboxConfig) -> Result<Option<UserMaps>, CriError> {
    let o = namespace_options(c);
    let Some(u) = o.userns_options else {
        return Ok(None);
    };
    match cri::NamespaceMode::try_from(u.mode) {
        Ok(cri::NamespaceMode::Node) => Ok(None),
        Ok(cri::NamespaceMode::Pod) => {
            let one = |what: &str, maps: &[cri::IdMapping]| -> Result<Vec<IdMap>, CriError> {
                let [m] = maps else {
                    return Err(CriError::Invalid(format!(
                        "user namespace of the pod: {} {what} mappings given, berthd takes exactly one",
                        maps.len()
                    )));
                };
                if m.container_id != 0 {
                    return Err(CriError::Invalid(format!(
                        "user namespace of the pod: the {what} mapping starts at container id {}, it must map root (0)",
                        m.container_id
                    )));
                }
                IdMap::new(m.container_id, m.host_id, m.length)
                    .map(|m| vec![m])
                    .map_err(|e| CriError::Invalid(format!("user namespace of the pod: {e}")))
            };
            if o.network == cri::NamespaceMode::Node as i32 {
                return Err(CriError::Invalid(
                    "user namespace of the pod: a pod on the node's network cannot have one (its network namespace is the host's, owned by the host's user namespace)".into(),
                ));
            }
            Ok(Some((one("uid", &u.uids)?, one("gid", &u.gids)?)))
        }
        _ => Err(CriError::Invalid(format!(
            "user namespace mode {}: a pod's user namespace is NODE (the host's) or POD",
            cri::NamespaceMode::try_from(u.mode)
                .map(|m| m.as_str_name().to_string())
                .unwrap_or_else(|_| u.mode.to_string())
        ))),
    }
}

/// What the pod's holder shares among its containers.
pub fn shared(c: &cri::PodSandboxConfig) -> Shared {
    let o = namespace_options(c);
    Shared {
        ipc: o.ipc != cri::NamespaceMode::Node as i32,
        hostname: (o.network != cri::NamespaceMode::Node as i32).then(|| hostname(c)),
        pid: o.pid == cri::NamespaceMode::Pod as i32,
        // Checked by RunPodSandbox before anything is made.
        userns: userns(c).ok().flatten(),
    }
}

/// The host ports a pod publishes (portmap's `portMappings`).
pub fn port_mappings(c: &cri::PodSandboxConfig) -> Result<Vec<PortMapping>, CriError> {
    let mut out = Vec::new();
    for p in c.port_mappings.iter().filter(|p| p.host_port > 0) {
        let port = |n: i32, what: &str| {
            u16::try_from(n)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| CriError::Invalid(format!("{what} {n}: not from 1 to 65535")))
        };
        let protocol = match cri::Protocol::try_from(p.protocol) {
            Ok(cri::Protocol::Tcp) => "tcp",
            Ok(cri::Protocol::Udp) => "udp",
            _ => {
                return Err(CriError::Invalid(format!(
                    "port mapping protocol {}: only TCP and UDP are supported",
                    p.protocol
                )))
            }
        };
        out.push(PortMapping {
            host_ip: p.host_ip.clone(),
            host_port: port(p.host_port, "host port")?,
            container_port: port(p.container_port, "container port")?,
            protocol: protocol.into(),
        });
    }
    Ok(out)
}

/// The pod's /dev/shm tmpfs options: owned by the pod's root, the mapped
/// one in a user namespace.
fn shm_options(shared: &Shared) -> String {
    let mut o = "mode=1777,size=65536k".to_string();
    if let Some((u, g)) = &shared.userns {
        if let (Some(u), Some(g)) = (idmap::to_host(u, 0), idmap::to_host(g, 0)) {
            o.push_str(&format!(",uid={u},gid={g}"));
        }
    }
    o
}

fn same_pod(a: &cri::PodSandboxConfig, b: &cri::PodSandboxConfig) -> bool {
    a.metadata == b.metadata
}

impl Cri {
    /// The pod's directory.
    pub fn pod_dir(&self, id: &str) -> PathBuf {
        self.config.state.join("pods").join(id)
    }

    /// One pod record.
    pub fn pod(&self, id: &str) -> Result<Option<Pod>, CriError> {
        Ok(self.manager.images.meta.get(Table::Pods, id)?)
    }

    /// A pod by id or unique id prefix, or NotFound.
    pub fn find_pod(&self, id: &str) -> Result<Pod, CriError> {
        super::by_id_or_prefix(
            "pod sandbox",
            id,
            |id| self.pod(id),
            || {
                Ok(self
                    .pods()?
                    .into_iter()
                    .map(|p| (p.id.clone(), p))
                    .collect())
            },
        )
    }

    /// Every pod.
    pub fn pods(&self) -> Result<Vec<Pod>, CriError> {
        Ok(self
            .manager
            .images
            .meta
            .list::<Pod>(Table::Pods, "")?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    fn save_pod(&self, p: &Pod) -> Result<(), CriError> {
        self.manager
            .images
            .meta
            .update(|t| t.put(Table::Pods, &p.id, p))?;
        Ok(())
    }

    /// Whether the pod is ready: not stopped, and its holder (if it needs
    /// one) alive.
    pub fn pod_ready(&self, p: &Pod) -> bool {
        p.ready
            && (!shared(&p.config).any() || holder::is_holder(p.holder_pid, &self.pod_dir(&p.id)))
    }

    /// RunPodSandbox: the pod's namespaces, network and files; its id.
    pub async fn run_pod(
        &self,
        config: cri::PodSandboxConfig,
        runtime_handler: String,
    ) -> Result<String, CriError> {
        let meta = config
            .metadata
            .as_ref()
            .ok_or_else(|| CriError::Invalid("pod sandbox config has no metadata".into()))?;
        if meta.name.is_empty() {
            return Err(CriError::Invalid("pod sandbox metadata has no name".into()));
        }
        self.config.handlers.resolve(&runtime_handler)?;
        if let Some(other) = self
            .pods()?
            .into_iter()
            .find(|p| same_pod(&p.config, &config))
        {
            return Err(CriError::Exists(format!(
                "pod sandbox name {}_{}_{}_{} is reserved for {}",
                meta.name, meta.namespace, meta.uid, meta.attempt, other.id
            )));
        }
        let ports = port_mappings(&config)?;
        if userns(&config)?.is_some() {
            self.config.handlers.user_namespaces().map_err(|why| {
                CriError::Invalid(format!(
                    "user namespace of the pod: not on this node: {why}"
                ))
            })?;
        }
        let id = super::new_id();
        let _g = self.lock(&id).await;
        let dir = self.pod_dir(&id);
        crate::perm::dir(&dir, 0o711).map_err(io("create", &dir))?;
        let mut pod = Pod {
            id: id.clone(),
            config,
            runtime_handler: if runtime_handler.is_empty() {
                HANDLER.into()
            } else {
                runtime_handler
            },
            created_ns: super::now_ns(),
            ready: true,
            holder_pid: 0,
            network: String::new(),
            ips: Vec::new(),
        };
        let made = async {
            self.setup_pod(&mut pod, &dir, &ports).await?;
            self.save_pod(&pod)
        }
        .await;
        if let Err(e) = made {
            self.teardown_pod(&pod).await;
            self.release_pod_dir(&dir);
            return Err(e);
        }
        tracing::info!(pod = %id, name = %meta_name(&pod.config), ip = %pod.ips.first().map(String::as_str).unwrap_or(""), "pod sandbox running");
        for kind in [
            cri::ContainerEventType::ContainerCreatedEvent,
            cri::ContainerEventType::ContainerStartedEvent,
        ] {
            self.emit(&id, &id, kind).await;
        }
        Ok(id)
    }

    async fn setup_pod(
        &self,
        pod: &mut Pod,
        dir: &Path,
        ports: &[PortMapping],
    ) -> Result<(), CriError> {
        let shared = shared(&pod.config);
        // A user namespace's holder makes the network namespace inside it,
        // so it comes first; otherwise berthd makes the network namespace.
        if shared.userns.is_some() {
            pod.holder_pid = holder::start(&self.config.shim, &shared, dir).await?;
        }
        if !host_network(&pod.config) {
            let net = self.networks.list().into_iter().next().ok_or_else(|| {
                CriError::State(format!(
                    "no CNI network configuration in {}: a pod needs one unless it uses the node's network",
                    self.config.cni_conf_dir.display()
                ))
            })?;
            let netns = dir.join("net");
            if shared.userns.is_none() {
                crate::network::netns::create(&netns)
                    .map_err(|e| CriError::State(e.to_string()))?;
            }
            pod.network = net.name.clone();
            let rec = self
                .networks
                .attach(NAMESPACE, &pod.id, &net.name, &netns, ports)
                .await?;
            pod.ips = rec.addresses();
        } else if !ports.is_empty() {
            return Err(CriError::Invalid(
                "port mappings of a pod on the node's network: its ports are the node's already"
                    .into(),
            ));
        }
        if shared.any() && shared.userns.is_none() {
            pod.holder_pid = holder::start(&self.config.shim, &shared, dir).await?;
        }
        self.write_pod_files(pod, dir)?;
        if shared.ipc {
            let shm = dir.join("shm");
            std::fs::create_dir_all(&shm).map_err(io("create", &shm))?;
            mount(
                Some("shm"),
                &shm,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some(shm_options(&shared).as_str()),
            )
            .map_err(|e| io("mount the pod's /dev/shm on", &shm)(e.into()))?;
        }
        Ok(())
    }

    fn write_pod_files(&self, pod: &Pod, dir: &Path) -> Result<(), CriError> {
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let files = if host_network(&pod.config) {
            // The node's own names, as the pod shares its network.
            let name = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().to_string())
                .unwrap_or_default();
            let dns = pod
                .config
                .dns_config
                .as_ref()
                .filter(|d| !d.servers.is_empty());
            [
                ("hostname", format!("{name}\n")),
                (
                    "hosts",
                    std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
                ),
                (
                    "resolv.conf",
                    match dns {
                        Some(d) => pod_files::resolv_conf(Some(d), &host_resolv),
                        None => host_resolv,
                    },
                ),
            ]
        } else {
            let name = hostname(&pod.config);
            let ip = pod.ips.first().cloned().unwrap_or_default();
            [
                ("hostname", format!("{name}\n")),
                ("hosts", pod_files::hosts(&name, &ip)),
                (
                    "resolv.conf",
                    pod_files::resolv_conf(pod.config.dns_config.as_ref(), &host_resolv),
                ),
            ]
        };
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(io("write", &p))?;
        }
        Ok(())
    }

    /// Stops the pod's processes and tears its network down (errors are
    /// logged: a retry, or berthd's next start, finishes the job).
    async fn teardown_pod(&self, pod: &Pod) {
        let dir = self.pod_dir(&pod.id);
        holder::stop(pod.holder_pid, &dir);
        if let Err(e) = self.networks.detach(NAMESPACE, &pod.id).await {
            tracing::warn!(pod = %pod.id, error = %e, "detach the pod from its network");
        }
        if let Err(e) = crate::network::netns::remove(&dir.join("net")) {
            tracing::warn!(pod = %pod.id, error = %e, "remove the pod's network namespace");
        }
    }

    /// Unpins the namespaces, unmounts /dev/shm and removes the directory.
    fn release_pod_dir(&self, dir: &Path) {
        holder::unpin(dir);
        let _ = umount2(&dir.join("shm"), MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// StopPodSandbox: its containers killed, its holder and network gone.
    /// An unknown or stopped pod is fine.
    pub async fn stop_pod(&self, id: &str) -> Result<(), CriError> {
        let Some(pod) = super::found(self.find_pod(id))? else {
            return Ok(());
        };
        for c in self.pod_containers(&pod.id)? {
            self.stop_container(&c.id, 0).await?;
        }
        let _g = self.lock(&pod.id).await;
        let mut pod = self.find_pod(&pod.id)?;
        self.teardown_pod(&pod).await;
        if pod.ready {
            pod.ready = false;
            self.save_pod(&pod)?;
            drop(_g);
            self.emit(
                &pod.id,
                &pod.id,
                cri::ContainerEventType::ContainerStoppedEvent,
            )
            .await;
        }
        Ok(())
    }

    /// RemovePodSandbox: stopped, its containers removed, everything gone.
    /// An unknown pod is fine.
    pub async fn remove_pod(&self, id: &str) -> Result<(), CriError> {
        let Some(pod) = super::found(self.find_pod(id))? else {
            return Ok(());
        };
        self.stop_pod(&pod.id).await?;
        for c in self.pod_containers(&pod.id)? {
            self.remove_container(&c.id).await?;
        }
        let _g = self.lock(&pod.id).await;
        self.release_pod_dir(&self.pod_dir(&pod.id));
        if let Some(own) = self.own_pod_cgroup(&pod) {
            super::pod_cgroup::remove(&own);
        }
        self.manager
            .images
            .meta
            .update(|t| t.delete(Table::Pods, &pod.id))?;
        self.forget(&pod.id);
        drop(_g);
        self.emit(
            &pod.id,
            &pod.id,
            cri::ContainerEventType::ContainerDeletedEvent,
        )
        .await;
        Ok(())
    }

    /// PodSandboxStatus.
    pub fn pod_status(&self, p: &Pod) -> cri::PodSandboxStatus {
        let ready = self.pod_ready(p);
        let state = if ready {
            cri::PodSandboxState::SandboxReady
        } else {
            cri::PodSandboxState::SandboxNotready
        };
        let network = (!host_network(&p.config) && ready).then(|| cri::PodSandboxNetworkStatus {
            ip: p.ips.first().cloned().unwrap_or_default(),
            additional_ips: p
                .ips
                .iter()
                .skip(1)
                .map(|ip| cri::PodIp { ip: ip.clone() })
                .collect(),
        });
        cri::PodSandboxStatus {
            id: p.id.clone(),
            metadata: p.config.metadata.clone(),
            state: state as i32,
            created_at: p.created_ns,
            network: Some(network.unwrap_or_default()),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: Some(namespace_options(&p.config)),
                }),
            }),
            labels: p.config.labels.clone(),
            annotations: p.config.annotations.clone(),
            runtime_handler: p.runtime_handler.clone(),
        }
    }

    /// The verbose `info` of PodSandboxStatus: what berthd knows, as JSON.
    pub fn pod_info(&self, p: &Pod) -> String {
        serde_json::json!({
            "pid": p.holder_pid,
            "network": p.network,
            "netns": (!host_network(&p.config)).then(|| self.pod_dir(&p.id).join("net")),
            "runtimeHandler": p.runtime_handler,
            "config": p.config,
        })
        .to_string()
    }

    /// ListPodSandbox with its filter.
    pub fn list_pods(
        &self,
        f: Option<&cri::PodSandboxFilter>,
    ) -> Result<Vec<cri::PodSandbox>, CriError> {
        let mut out = Vec::new();
        for p in self.pods()? {
            let st = self.pod_status(&p);
            if let Some(f) = f {
                if !super::matches_id(&p.id, &f.id)
                    || f.state.as_ref().is_some_and(|s| s.state != st.state)
                    || !super::matches_labels(&p.config.labels, &f.label_selector)
                {
                    continue;
                }
            }
            out.push(cri::PodSandbox {
                id: st.id,
                metadata: st.metadata,
                state: st.state,
                created_at: st.created_at,
                labels: st.labels,
                annotations: st.annotations,
                runtime_handler: st.runtime_handler,
            });
        }
        Ok(out)
    }
}

fn meta_name(c: &cri::PodSandboxConfig) -> String {
    c.metadata
        .as_ref()
        .map(|m| format!("{}/{}", m.namespace, m.name))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(network: cri::NamespaceMode, pid: cri::NamespaceMode) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "web".into(),
                namespace: "default".into(),
                uid: "u1".into(),
                attempt: 0,
            }),
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: network as i32,
                        pid: pid as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_pod_shares_what_its_namespace_options_say() {
        let c = config(cri::NamespaceMode::Pod, cri::NamespaceMode::Pod);
        assert_eq!(
            shared(&c),
            Shared {
                ipc: true,
                hostname: Some(hostname(&c)),
                pid: true,
                userns: None,
            }
        );
        // Host network: the node's UTS namespace too; PID per container.
        let c = config(cri::NamespaceMode::Node, cri::NamespaceMode::Container);
        assert!(host_network(&c));
        assert_eq!(
            shared(&c),
            Shared {
                ipc: true,
                hostname: None,
                pid: false,
                userns: None,
            }
        );
        // No options at all: kubelet's defaults.
        let none = cri::PodSandboxConfig::default();
        assert!(!host_network(&none));
        assert!(!shared(&none).pid && shared(&none).ipc);
    }

    #[test]
    fn only_host_ports_are_published() {
        let mut c = config(cri::NamespaceMode::Pod, cri::NamespaceMode::Container);
        c.port_mappings = vec![
            cri::PortMapping {
                protocol: cri::Protocol::Tcp as i32,
                container_port: 80,
                host_port: 8080,
                host_ip: String::new(),
            },
            cri::PortMapping {
                protocol: cri::Protocol::Udp as i32,
                container_port: 53,
                host_port: 0,
                host_ip: String::new(),
            },
        ];
        let p = port_mappings(&c).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].host_port, p[0].container_port), (8080, 80));
        assert_eq!(p[0].protocol, "tcp");
        c.port_mappings[0].protocol = cri::Protocol::Sctp as i32;
        assert!(port_mappings(&c)
            .unwrap_err()
            .to_string()
            .contains("TCP and UDP"));
        c.port_mappings[0].protocol = cri::Protocol::Tcp as i32;
        c.port_mappings[0].host_port = 70000;
        assert!(port_mappings(&c).is_err());
    }

    #[test]
    fn the_hostname_is_kubelets_else_the_nodes() {
        let mut c = config(cri::NamespaceMode::Pod, cri::NamespaceMode::Container);
        let node = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname(&c), node.trim());
        c.hostname = "web-0.svc".into();
        assert_eq!(hostname(&c), "web-0.svc");
    }

    #[test]
    fn a_pods_user_namespace_is_one_mapping_of_root_and_only_node_or_pod() {
        let with = |mode: cri::NamespaceMode, maps: Vec<cri::IdMapping>| {
            let mut c = config(cri::NamespaceMode::Pod, cri::NamespaceMode::Container);
            let sc = c.linux.as_mut().unwrap().security_context.as_mut().unwrap();
            sc.namespace_options.as_mut().unwrap().userns_options = Some(cri::UserNamespace {
                mode: mode as i32,
                uids: maps.clone(),
                gids: maps,
            });
            c
        };
        let m = |c: u32, h: u32, l: u32| cri::IdMapping {
            container_id: c,
            host_id: h,
            length: l,
        };
        let (u, g) = userns(&with(cri::NamespaceMode::Pod, vec![m(0, 1000, 100000)]))
            .unwrap()
            .unwrap();
        assert_eq!(idmap::format(&u), "0:1000:100000");
        assert_eq!(idmap::format(&g), "0:1000:100000");
        let c = with(cri::NamespaceMode::Pod, vec![m(0, 1000, 100000)]);
        assert!(shared(&c).userns.is_some());
        assert_eq!(
            shm_options(&shared(&c)),
            "mode=1777,size=65536k,uid=1000,gid=1000"
        );
        assert!(userns(&with(cri::NamespaceMode::Node, vec![]))
            .unwrap()
            .is_none());
        for (bad, why) in [
            (
                with(cri::NamespaceMode::Pod, vec![m(0, 1000, 1), m(1, 2000, 5)]),
                "exactly one",
            ),
            (
                with(cri::NamespaceMode::Pod, vec![m(1, 1000, 100000)]),
                "must map root",
            ),
            (with(cri::NamespaceMode::Pod, vec![]), "exactly one"),
            (with(cri::NamespaceMode::Container, vec![]), "CONTAINER"),
            (with(cri::NamespaceMode::Target, vec![]), "TARGET"),
        ] {
            let e = userns(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        let mut host = with(cri::NamespaceMode::Pod, vec![m(0, 1000, 100000)]);
        let sc = host
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap();
        sc.namespace_options.as_mut().unwrap().network = cri::NamespaceMode::Node as i32;
        assert!(userns(&host)
            .unwrap_err()
            .to_string()
            .contains("node's network"));
    }
}
