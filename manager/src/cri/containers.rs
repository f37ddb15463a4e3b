//! CRI containers: CreateContainer, StartContainer, StopContainer,
//! RemoveContainer, ContainerStatus, ListContainers, ExecSync,
//! UpdateContainerResources and ReopenContainerLog.
//!
//! A CRI container is a manager container in the `k8s.io` namespace (its
//! spec from `cri::spec`, its task through a shim, logging where kubelet
//! says) plus a record of what the CRI alone knows: kubelet's config, the
//! pod, the image as asked for, and whether the kernel OOM-killed it.
//! CreateContainer makes the record and the filesystem; StartContainer the
//! task, as containerd does.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

use super::pods::{self, Pod};
use super::spec::{self, DeviceNode, PidMode, PodContext};
use super::{io, Cri, CriError, NAMESPACE};
use crate::containers::records::RecordError;
use crate::containers::tasks::{CreateOptions, ImageContext, SpecFn, Status, TaskError};
use crate::store::meta::Table;

/// What the CRI keeps of a container besides the manager's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CriContainer {
    /// Its id.
    pub id: String,
    /// Its pod.
    pub sandbox_id: String,
    /// kubelet's config, as given.
    pub config: cri::ContainerConfig,
    /// The image's id (its config's digest).
    pub image_id: String,
    /// A digest reference to the image (`repo@sha256:…`), else its id.
    pub image_ref: String,
    /// The image's stop signal (its `StopSignal`, else SIGTERM).
    pub stop_signal: u32,
    /// Its log file ("": none asked for).
    pub log_path: String,
    /// Creation, nanoseconds since the epoch.
    pub created_ns: i64,
}

/// A device kubelet asked for, looked up on the node.
fn device_node(d: &cri::Device) -> Result<DeviceNode, CriError> {
    let m = std::fs::metadata(&d.host_path).map_err(io("device", d.host_path.as_ref()))?;
    let kind = if m.file_type().is_char_device() {
        'c'
    } else if m.file_type().is_block_device() {
        'b'
    } else {
        return Err(CriError::Invalid(format!(
            "device {}: not a character or block device",
            d.host_path
        )));
    };
    let rdev = m.rdev();
    Ok(DeviceNode {
        path: if d.container_path.is_empty() {
            d.host_path.clone()
        } else {
            d.container_path.clone()
        },
        kind,
        major: i64::try_from(nix::sys::stat::major(rdev)).unwrap_or(i64::MAX),
        minor: i64::try_from(nix::sys::stat::minor(rdev)).unwrap_or(i64::MAX),
        mode: m.mode(),
        access: d.permissions.clone(),
    })
}

/// What berthd can give a container: its own capabilities and
/// oom_score_adj (the lowest it can set).
fn host_limits() -> spec::HostLimits {
    spec::HostLimits {
        caps: crate::containers::spec::own_capabilities().to_vec(),
        min_oom_score_adj: std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0),
    }
}

impl Cri {
    /// One CRI container record.
    pub fn cri_container(&self, id: &str) -> Result<Option<CriContainer>, CriError> {
        Ok(self.manager.images.meta.get(Table::CriContainers, id)?)
    }

    /// A container by id or unique id prefix, or NotFound.
    pub fn find_container(&self, id: &str) -> Result<CriContainer, CriError> {
        super::by_id_or_prefix(
            "container",
            id,
            |id| self.cri_container(id),
            || {
                Ok(self
                    .cri_containers()?
                    .into_iter()
                    .map(|c| (c.id.clone(), c))
                    .collect())
            },
        )
    }

    /// The containers that pass a filter's id (prefix), pod and labels.
    pub fn filtered_containers(
        &self,
        id: &str,
        pod: &str,
        labels: &std::collections::HashMap<String, String>,
    ) -> Result<Vec<CriContainer>, CriError> {
        Ok(self
            .cri_containers()?
            .into_iter()
            .filter(|c| {
                super::matches_id(&c.id, id)
                    && super::matches_id(&c.sandbox_id, pod)
                    && super::matches_labels(&c.config.labels, labels)
            })
            .collect())
    }

    /// Every CRI container.
    pub fn cri_containers(&self) -> Result<Vec<CriContainer>, CriError> {
        Ok(self
            .manager
            .images
            .meta
            .list::<CriContainer>(Table::CriContainers, "")?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    }

    /// The containers of a pod.
    pub fn pod_containers(&self, pod: &str) -> Result<Vec<CriContainer>, CriError> {
        Ok(self
            .cri_containers()?
            .into_iter()
            .filter(|c| c.sandbox_id == pod)
            .collect())
    }

    fn save_container(&self, c: &CriContainer) -> Result<(), CriError> {
        self.manager
            .images
            .meta
            .update(|t| t.put(Table::CriContainers, &c.id, c))?;
        Ok(())
    }

    /// What a container of `pod` takes from it.
    async fn pod_context(
        &self,
        pod: &Pod,
        cfg: &cri::ContainerConfig,
    ) -> Result<PodContext, CriError> {
        let dir = self.pod_dir(&pod.id);
        let shared = pods::shared(&pod.config);
        let host_net = pods::host_network(&pod.config);
        let own = cfg
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_else(|| pods::namespace_options(&pod.config));
        let pid =
            match cri::NamespaceMode::try_from(own.pid) {
                Ok(cri::NamespaceMode::Node) => PidMode::Node,
                Ok(cri::NamespaceMode::Pod) if shared.pid => {
                    PidMode::Join(super::holder::pin_path(&dir, "pid"))
                }
                Ok(cri::NamespaceMode::Pod) => return Err(CriError::Invalid(
                    "a container asks for its pod's PID namespace, which the pod does not share"
                        .into(),
                )),
                Ok(cri::NamespaceMode::Target) => {
                    let target = self.find_container(&own.target_id)?;
                    let (st, pid) = self.manager.status(NAMESPACE, &target.id).await;
                    if st != Status::Running || pid == 0 {
                        return Err(CriError::State(format!(
                            "target container {} is not running",
                            own.target_id
                        )));
                    }
                    PidMode::Join(PathBuf::from(format!("/proc/{pid}/ns/pid")))
                }
                _ => PidMode::Container,
            };
        let linux = pod.config.linux.clone().unwrap_or_default();
        let userns = shared
            .userns
            .map(|(u, g)| (super::holder::pin_path(&dir, "user"), u, g));
        Ok(PodContext {
            id: pod.id.clone(),
            netns: (!host_net).then(|| dir.join("net")),
            ipc: shared.ipc.then(|| super::holder::pin_path(&dir, "ipc")),
            uts: shared
                .hostname
                .is_some()
                .then(|| super::holder::pin_path(&dir, "uts")),
            pid,
            shm: shared.ipc.then(|| dir.join("shm")),
            dir,
            cgroup_parent: self.pod_cgroup_parent(pod),
            cgroup_driver: self.config.cgroup_driver,
            sysctls: linux.sysctls.into_iter().collect(),
            resources: linux.resources.clone(),
            userns,
        })
    }

    /// The pod's cgroup parent: kubelet's, else berthd's own for the pod
    /// (`own_pod_cgroup`), else none (berthd's default place).
    pub fn pod_cgroup_parent(&self, pod: &super::pods::Pod) -> String {
        self.own_pod_cgroup(pod).unwrap_or_else(|| {
            pod.config
                .linux
                .as_ref()
                .map(|l| l.cgroup_parent.clone())
                .unwrap_or_default()
        })
    }

    /// The cgroup berthd makes for a pod that kubelet gave no parent and
    /// that names resources or an overhead, under the cgroupfs driver.
    pub fn own_pod_cgroup(&self, pod: &super::pods::Pod) -> Option<String> {
        let given = pod.config.linux.as_ref().map(|l| l.cgroup_parent.as_str());
        let own = given.unwrap_or_default().is_empty()
            && self.config.cgroup_driver == crate::containers::cgroups::CgroupDriver::Cgroupfs
            && super::pod_cgroup::limits(&pod.config).is_some();
        own.then(|| super::pod_cgroup::parent(&pod.id))
    }

    /// Writes a pod's limits into its own cgroup, which exists once one of
    /// its containers has a task (nothing for a pod placed by kubelet).
    fn apply_pod_limits(&self, pod_id: &str) -> Result<(), CriError> {
        let pod = self.find_pod(pod_id)?;
        let (Some(own), Some(l)) = (
            self.own_pod_cgroup(&pod),
            super::pod_cgroup::limits(&pod.config),
        ) else {
            return Ok(());
        };
        super::pod_cgroup::apply(&own, &l)
            .map_err(|e| CriError::State(format!("pod {pod_id}'s resources and overhead: {e}")))
    }

    /// CreateContainer: the record, the filesystem and the spec; its id.
    pub async fn create_container(
        &self,
        pod_id: &str,
        cfg: cri::ContainerConfig,
    ) -> Result<String, CriError> {
        let pod = self.find_pod(pod_id)?;
        if !self.pod_ready(&pod) {
            return Err(CriError::State(format!(
                "pod sandbox {} is not ready",
                pod.id
            )));
        }
        let meta = cfg
            .metadata
            .clone()
            .ok_or_else(|| CriError::Invalid("container config has no metadata".into()))?;
        if meta.name.is_empty() {
            return Err(CriError::Invalid("container metadata has no name".into()));
        }
        if let Some(other) = self
            .pod_containers(&pod.id)?
            .into_iter()
            .find(|c| c.config.metadata.as_ref() == Some(&meta))
        {
            return Err(CriError::Exists(format!(
                "container name {} (attempt {}) is reserved in pod sandbox {} for {}",
                meta.name, meta.attempt, pod.id, other.id
            )));
        }
        let wanted = cfg
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let store = self.manager.images.clone();
        let w = wanted.clone();
        let found = tokio::task::spawn_blocking(move || super::images::resolve(&store, &w))
            .await
            .map_err(|e| CriError::State(format!("worker: {e}")))??;
        let Some(img) = found else {
            return Err(CriError::NotFound {
                kind: "image",
                id: wanted,
            });
        };
        let id = super::new_id();
        let _g = self.lock(&id).await;
        let log_path = match (pod.config.log_directory.as_str(), cfg.log_path.as_str()) {
            (_, "") => None,
            ("", p) => Some(PathBuf::from(p)),
            (d, p) => Some(PathBuf::from(d).join(p)),
        };
        if let Some(dir) = log_path.as_ref().and_then(|p| p.parent()) {
            std::fs::create_dir_all(dir).map_err(io("create log directory", dir))?;
        }
        for m in &cfg.mounts {
            let p = std::path::Path::new(&m.host_path);
            if p.is_absolute() && !p.exists() {
                // As containerd does: a missing host path becomes a directory.
                std::fs::create_dir_all(p).map_err(io("create mount source", p))?;
            }
        }
        let devices = cfg
            .devices
            .iter()
            .map(device_node)
            .collect::<Result<Vec<_>, _>>()?;
        let sc = cfg
            .linux
            .as_ref()
            .and_then(|l| l.security_context.clone())
            .unwrap_or_default();
        let profile = match spec::seccomp_choice(&sc)? {
            spec::Seccomp::Localhost(path) => Some(
                std::fs::read_to_string(&path)
                    .map_err(io("read seccomp profile", path.as_ref()))?,
            ),
            _ => None,
        };
        let ctx = self.pod_context(&pod, &cfg).await?;
        let host = host_limits();
        let (cid, c2) = (id.clone(), cfg.clone());
        let make = SpecFn(Arc::new(move |image: &ImageContext<'_>| {
            spec::container_spec(&cid, &c2, &ctx, image, &devices, profile.as_deref(), &host)
        }));
        let network = if pods::host_network(&pod.config) {
            "host".to_string()
        } else {
            format!("netns:{}", self.pod_dir(&pod.id).join("net").display())
        };
        let mut labels: std::collections::BTreeMap<String, String> =
            cfg.labels.clone().into_iter().collect();
        labels.insert("io.kubernetes.cri.sandbox-id".into(), pod.id.clone());
        self.manager
            .create(
                NAMESPACE,
                CreateOptions {
                    id: id.clone(),
                    image: img.name.clone(),
                    spec_fn: Some(make),
                    log_path: log_path.clone(),
                    stdin: cfg.stdin,
                    network,
                    labels,
                    runtime: self
                        .config
                        .handlers
                        .resolve(&pod.runtime_handler)?
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    ..Default::default()
                },
            )
            .await?;
        let rec = CriContainer {
            id: id.clone(),
            sandbox_id: pod.id.clone(),
            config: cfg,
            image_ref: img.image_ref.clone(),
            image_id: img.id.clone(),
            stop_signal: img.stop_signal,
            log_path: log_path
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            created_ns: super::now_ns(),
        };
        if let Err(e) = self.save_container(&rec) {
            let _ = self.manager.delete(NAMESPACE, &id, true, false).await;
            return Err(e);
        }
        self.emit(&id, &pod.id, cri::ContainerEventType::ContainerCreatedEvent)
            .await;
        Ok(id)
    }

    /// StartContainer: its task created and started.
    pub async fn start_container(&self, id: &str) -> Result<(), CriError> {
        let c = self.find_container(id)?;
        let _g = self.lock(&c.id).await;
        let rec = self.manager.get(NAMESPACE, &c.id)?;
        if self.manager.has_task(NAMESPACE, &c.id) || rec.exit.is_some() {
            return Err(CriError::State(format!(
                "container {} is not in the created state",
                c.id
            )));
        }
        match self.find_pod(&c.sandbox_id) {
            Ok(p) if self.pod_ready(&p) => {}
            _ => {
                return Err(CriError::State(format!(
                    "pod sandbox {} of container {} is not ready",
                    c.sandbox_id, c.id
                )))
            }
        }
        self.manager.create_task(NAMESPACE, &c.id).await?;
        if let Err(e) = self.apply_pod_limits(&c.sandbox_id) {
            let _ = self.manager.delete_task(NAMESPACE, &c.id, "").await;
            return Err(e);
        }
        if let Err(e) = self.manager.start(NAMESPACE, &c.id, "").await {
            let _ = self.manager.delete_task(NAMESPACE, &c.id, "").await;
            return Err(e.into());
        }
        // Under the container's lock: its exit's STOPPED (cri/events.rs)
        // waits for it, so a container that exits at once is still seen
        // to start first.
        self.emit(
            &c.id,
            &c.sandbox_id,
            cri::ContainerEventType::ContainerStartedEvent,
        )
        .await;
        drop(_g);
        Ok(())
    }

    /// StopContainer: its stop signal, then SIGKILL after `timeout` seconds.
    /// An unknown or stopped container is fine.
    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), CriError> {
        let Some(c) = super::found(self.find_container(id))? else {
            return Ok(());
        };
        if !self.manager.has_task(NAMESPACE, &c.id) {
            return Ok(());
        }
        let st = self.manager.status(NAMESPACE, &c.id).await.0;
        if st == Status::Paused {
            let _ = self.manager.resume(NAMESPACE, &c.id).await;
        }
        if timeout > 0 && st != Status::Created {
            let _ = self
                .manager
                .kill(NAMESPACE, &c.id, "", c.stop_signal, false)
                .await;
            let secs = u64::try_from(timeout).unwrap_or(0);
            let waited = tokio::time::timeout(
                Duration::from_secs(secs),
                self.manager.wait(NAMESPACE, &c.id, ""),
            )
            .await;
            if matches!(waited, Ok(Ok(_))) {
                return Ok(());
            }
        }
        if let Err(e) = self
            .manager
            .kill(NAMESPACE, &c.id, "", libc::SIGKILL as u32, true)
            .await
        {
            // It may have ended meanwhile (the runtime says "not running").
            if self.manager.status(NAMESPACE, &c.id).await.0 == Status::Running {
                return Err(e.into());
            }
            return Ok(());
        }
        let waited = tokio::time::timeout(
            Duration::from_secs(10),
            self.manager.wait(NAMESPACE, &c.id, ""),
        )
        .await;
        match waited {
            Err(_) => Err(CriError::Timeout(format!(
                "container {} did not exit 10s after SIGKILL",
                c.id
            ))),
            Ok(_) => Ok(()),
        }
    }

    /// RemoveContainer: killed if it runs, then gone. An unknown container
    /// is fine.
    pub async fn remove_container(&self, id: &str) -> Result<(), CriError> {
        let Some(c) = super::found(self.find_container(id))? else {
            return Ok(());
        };
        let _g = self.lock(&c.id).await;
        match self.manager.delete(NAMESPACE, &c.id, true, false).await {
            Ok(()) | Err(TaskError::Record(RecordError::NotFound { .. })) => {}
            Err(e) => return Err(e.into()),
        }
        self.manager
            .images
            .meta
            .update(|t| t.delete(Table::CriContainers, &c.id))?;
        self.forget(&c.id);
        self.cpu_samples.forget(&c.id);
        drop(_g);
        self.emit(
            &c.id,
            &c.sandbox_id,
            cri::ContainerEventType::ContainerDeletedEvent,
        )
        .await;
        Ok(())
    }

    /// The CRI state, times, exit code and reason of a container.
    pub async fn container_status(
        &self,
        c: &CriContainer,
    ) -> Result<cri::ContainerStatus, CriError> {
        let rec = match self.manager.get(NAMESPACE, &c.id) {
            Ok(r) => Some(r),
            Err(TaskError::Record(RecordError::NotFound { .. })) => None,
            Err(e) => return Err(e.into()),
        };
        let st = self.manager.status(NAMESPACE, &c.id).await.0;
        let exit = rec.as_ref().and_then(|r| r.exit);
        let state = match (rec.is_some(), st, exit) {
            (false, _, _) => cri::ContainerState::ContainerUnknown,
            (_, Status::Stopped | Status::None, Some(_)) => cri::ContainerState::ContainerExited,
            // Stopped but its exit not recorded yet: a moment more running,
            // so kubelet never sees an exit without its code and reason.
            (_, Status::Running | Status::Paused | Status::Stopped, _) => {
                cri::ContainerState::ContainerRunning
            }
            _ => cri::ContainerState::ContainerCreated,
        };
        let ms_ns = |ms: u64| i64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000);
        let started = rec
            .as_ref()
            .and_then(|r| r.started_ms)
            .map(ms_ns)
            .unwrap_or(0);
        let (exit_code, finished, reason) = match (state, exit) {
            (cri::ContainerState::ContainerExited, Some(e)) => {
                let reason = if e.oom_killed {
                    "OOMKilled"
                } else if e.status == 0 {
                    "Completed"
                } else {
                    "Error"
                };
                (
                    i32::try_from(e.status).unwrap_or(255),
                    ms_ns(e.at_ms),
                    reason,
                )
            }
            _ => (0, 0, ""),
        };
        let limits = c.config.linux.as_ref().and_then(|l| l.resources.clone());
        Ok(cri::ContainerStatus {
            id: c.id.clone(),
            metadata: c.config.metadata.clone(),
            state: state as i32,
            created_at: c.created_ns,
            started_at: started,
            finished_at: finished,
            exit_code,
            image: c.config.image.clone(),
            image_ref: c.image_ref.clone(),
            image_id: c.image_id.clone(),
            reason: reason.into(),
            message: String::new(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            mounts: c.config.mounts.clone(),
            log_path: c.log_path.clone(),
            resources: limits.map(|l| cri::ContainerResources {
                linux: Some(l),
                windows: None,
            }),
            user: rec.as_ref().map(|r| {
                let u = &r.spec["process"]["user"];
                cri::ContainerUser {
                    linux: Some(cri::LinuxContainerUser {
                        uid: u["uid"].as_i64().unwrap_or(0),
                        gid: u["gid"].as_i64().unwrap_or(0),
                        supplemental_groups: u["additionalGids"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(serde_json::Value::as_i64)
                            .collect(),
                    }),
                }
            }),
        })
    }

    /// ListContainers with its filter.
    pub async fn list_containers(
        &self,
        f: Option<&cri::ContainerFilter>,
    ) -> Result<Vec<cri::Container>, CriError> {
        let mut out = Vec::new();
        let none = Default::default();
        let (id, pod, labels) = f.map_or(("", "", &none), |f| {
            (f.id.as_str(), f.pod_sandbox_id.as_str(), &f.label_selector)
        });
        for c in self.filtered_containers(id, pod, labels)? {
            let st = self.container_status(&c).await?;
            if f.and_then(|f| f.state.as_ref())
                .is_some_and(|s| s.state != st.state)
            {
                continue;
            }
            out.push(cri::Container {
                id: c.id.clone(),
                pod_sandbox_id: c.sandbox_id.clone(),
                metadata: st.metadata,
                image: st.image,
                image_ref: st.image_ref,
                state: st.state,
                created_at: st.created_at,
                labels: st.labels,
                annotations: st.annotations,
                image_id: st.image_id,
            });
        }
        Ok(out)
    }

    /// ExecSync: runs `cmd` in the container, returns its output and exit
    /// code; past `timeout` seconds (0: none) it is killed and the call fails.
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: i64,
    ) -> Result<cri::ExecSyncResponse, CriError> {
        let c = self.running_container(id).await?;
        let exec_id = format!("sync-{}", berth_rules::id::random());
        self.add_exec(&c.id, &exec_id, cmd, false, false).await?;
        let (_, mut output) = self
            .attach_process(&c.id, &exec_id, true, true, tokio_stream::empty())
            .await?;
        let run = async {
            self.manager.start(NAMESPACE, &c.id, &exec_id).await?;
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            // Output as kubelet bounds it: 16 MiB each.
            const MAX: usize = 16 << 20;
            while let Some(Ok(o)) = output.next().await {
                let buf = if o.stream == berth_proto::shim::Stream::Stderr as i32 {
                    &mut stderr
                } else {
                    &mut stdout
                };
                if buf.len() + o.data.len() <= MAX {
                    buf.extend_from_slice(&o.data);
                }
            }
            let exit = self.manager.wait(NAMESPACE, &c.id, &exec_id).await?;
            Ok::<_, CriError>((stdout, stderr, exit.status))
        };
        let result = if timeout > 0 {
            let secs = u64::try_from(timeout).unwrap_or(0);
            match tokio::time::timeout(Duration::from_secs(secs), run).await {
                Ok(r) => r,
                Err(_) => {
                    let _ = self
                        .manager
                        .kill(NAMESPACE, &c.id, &exec_id, libc::SIGKILL as u32, false)
                        .await;
                    let _ = self.manager.wait(NAMESPACE, &c.id, &exec_id).await;
                    let _ = self.manager.delete_task(NAMESPACE, &c.id, &exec_id).await;
                    return Err(CriError::Timeout(format!(
                        "command timed out after {timeout}s in container {}: killed",
                        c.id
                    )));
                }
            }
        } else {
            run.await
        };
        let _ = self.manager.delete_task(NAMESPACE, &c.id, &exec_id).await;
        let (stdout, stderr, status) = result?;
        Ok(cri::ExecSyncResponse {
            stdout,
            stderr,
            exit_code: i32::try_from(status).unwrap_or(255),
        })
    }

    /// UpdateContainerResources: new limits on the running container (its
    /// stored spec follows); the config keeps them for ContainerStatus.
    pub async fn update_container(
        &self,
        id: &str,
        r: cri::LinuxContainerResources,
    ) -> Result<(), CriError> {
        let mut c = self.find_container(id)?;
        let json = spec::resources_json(&r);
        self.manager
            .update(NAMESPACE, &c.id, &json.to_string())
            .await?;
        let linux = c.config.linux.get_or_insert_with(Default::default);
        linux.resources = Some(r);
        self.save_container(&c)
    }

    /// Adds `cmd` as process `exec_id` of container `id`, as kubelet's exec
    /// asks: the container's own env, user and directory.
    pub(crate) async fn add_exec(
        &self,
        id: &str,
        exec_id: &str,
        cmd: Vec<String>,
        tty: bool,
        stdin: bool,
    ) -> Result<(), CriError> {
        self.manager
            .exec(
                NAMESPACE,
                id,
                exec_id,
                cmd,
                Vec::new(),
                String::new(),
                String::new(),
                tty,
                stdin,
                false,
            )
            .await?;
        Ok(())
    }

    /// Attaches to a process's output in the container's shim; `input`
    /// carries its stdin (and its close) after the start message. The shim
    /// client comes back too, for resizes.
    pub(crate) async fn attach_process(
        &self,
        id: &str,
        exec_id: &str,
        stdout: bool,
        stderr: bool,
        input: impl tokio_stream::Stream<Item = berth_proto::shim::AttachRequest> + Send + 'static,
    ) -> Result<
        (
            berth_proto::shim::shim_client::ShimClient<tonic::transport::Channel>,
            tonic::Streaming<berth_proto::shim::AttachResponse>,
        ),
        CriError,
    > {
        let mut shim = self.manager.shim(NAMESPACE, id)?;
        let start = berth_proto::shim::AttachRequest {
            msg: Some(berth_proto::shim::attach_request::Msg::Start(
                berth_proto::shim::AttachStart {
                    id: id.to_string(),
                    exec_id: exec_id.to_string(),
                    stdout,
                    stderr,
                },
            )),
        };
        let output = shim
            .attach(tokio_stream::once(start).chain(input))
            .await
            .map_err(|status| TaskError::Shim {
                id: id.to_string(),
                status,
            })?
            .into_inner();
        Ok((shim, output))
    }

    /// The container of `id` (or a prefix), which must be running.
    pub async fn running_container(&self, id: &str) -> Result<CriContainer, CriError> {
        let c = self.find_container(id)?;
        if self.manager.status(NAMESPACE, &c.id).await.0 != Status::Running {
            return Err(CriError::State(format!(
                "container {} is not running",
                c.id
            )));
        }
        Ok(c)
    }

    /// ReopenContainerLog: the shim reopens the log at its path (kubelet
    /// has moved the old one away).
    pub async fn reopen_log(&self, id: &str) -> Result<(), CriError> {
        let c = self.running_container(id).await?;
        self.manager.reopen_log(NAMESPACE, &c.id).await?;
        Ok(())
    }
}
