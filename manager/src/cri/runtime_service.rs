//! The CRI RuntimeService: request checks and conversions around [`Cri`].
//! Exec, Attach and PortForward hand out URLs of the streaming server.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService as Api;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::streaming::tokens::Pending;
use super::streaming::UrlError;
use super::{status_of, Cri, HANDLER};

/// The service over one CRI runtime.
#[derive(Clone)]
pub struct RuntimeService {
    /// The runtime.
    pub cri: Arc<Cri>,
}

type Out<T> = Result<Response<T>, Status>;

fn ok<T>(t: T) -> Out<T> {
    Ok(Response::new(t))
}

/// kubelet's checks of a streaming request: something to stream, and a
/// tty (one output stream) without stderr.
fn streams_asked(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Result<(), Status> {
    if tty && stderr {
        return Err(Status::invalid_argument(
            "tty and stderr cannot both be true",
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(Status::invalid_argument(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    Ok(())
}

/// The CRI API version Berth speaks.
pub const API_VERSION: &str = "v1";

impl RuntimeService {
    /// A streaming URL for `p`.
    fn url(&self, p: Pending) -> Result<String, Status> {
        self.cri.streams.url(p).map_err(|e| match e {
            UrlError::Disabled => Status::unavailable(e.to_string()),
            UrlError::Full(_) => Status::resource_exhausted(e.to_string()),
        })
    }

    fn conditions(&self) -> Vec<cri::RuntimeCondition> {
        let nets = self.cri.networks.list();
        let net_ready = !nets.is_empty();
        vec![
            cri::RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: true,
                reason: String::new(),
                message: String::new(),
            },
            cri::RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: net_ready,
                reason: if net_ready {
                    String::new()
                } else {
                    "NetworkPluginNotReady".into()
                },
                message: if net_ready {
                    String::new()
                } else {
                    format!(
                        "no CNI network configuration in {}",
                        self.cri.config.cni_conf_dir.display()
                    )
                },
            },
        ]
    }
}

#[tonic::async_trait]
impl Api for RuntimeService {
    async fn version(&self, _: Request<cri::VersionRequest>) -> Out<cri::VersionResponse> {
        ok(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: HANDLER.into(),
            runtime_version: berth_proto::VERSION.into(),
            runtime_api_version: API_VERSION.into(),
        })
    }

    async fn run_pod_sandbox(
        &self,
        r: Request<cri::RunPodSandboxRequest>,
    ) -> Out<cri::RunPodSandboxResponse> {
        let r = r.into_inner();
        let config = r
            .config
            .ok_or_else(|| Status::invalid_argument("RunPodSandbox without a config"))?;
        let id = self
            .cri
            .run_pod(config, r.runtime_handler)
            .await
            .map_err(status_of)?;
        ok(cri::RunPodSandboxResponse { pod_sandbox_id: id })
    }

    async fn stop_pod_sandbox(
        &self,
        r: Request<cri::StopPodSandboxRequest>,
    ) -> Out<cri::StopPodSandboxResponse> {
        self.cri
            .stop_pod(&r.into_inner().pod_sandbox_id)
            .await
            .map_err(status_of)?;
        ok(cri::StopPodSandboxResponse {})
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<cri::RemovePodSandboxRequest>,
    ) -> Out<cri::RemovePodSandboxResponse> {
        self.cri
            .remove_pod(&r.into_inner().pod_sandbox_id)
            .await
            .map_err(status_of)?;
        ok(cri::RemovePodSandboxResponse {})
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<cri::PodSandboxStatusRequest>,
    ) -> Out<cri::PodSandboxStatusResponse> {
        let r = r.into_inner();
        let pod = self.cri.find_pod(&r.pod_sandbox_id).map_err(status_of)?;
        let mut info = HashMap::new();
        if r.verbose {
            info.insert("info".to_string(), self.cri.pod_info(&pod));
        }
        let mut containers_statuses = Vec::new();
        for c in self.cri.pod_containers(&pod.id).map_err(status_of)? {
            containers_statuses.push(self.cri.container_status(&c).await.map_err(status_of)?);
        }
        ok(cri::PodSandboxStatusResponse {
            status: Some(self.cri.pod_status(&pod)),
            info,
            containers_statuses,
            timestamp: super::now_ns(),
        })
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<cri::ListPodSandboxRequest>,
    ) -> Out<cri::ListPodSandboxResponse> {
        let items = self
            .cri
            .list_pods(r.into_inner().filter.as_ref())
            .map_err(status_of)?;
        ok(cri::ListPodSandboxResponse { items })
    }

    async fn create_container(
        &self,
        r: Request<cri::CreateContainerRequest>,
    ) -> Out<cri::CreateContainerResponse> {
        let r = r.into_inner();
        let config = r
            .config
            .ok_or_else(|| Status::invalid_argument("CreateContainer without a config"))?;
        let id = self
            .cri
            .create_container(&r.pod_sandbox_id, config)
            .await
            .map_err(status_of)?;
        ok(cri::CreateContainerResponse { container_id: id })
    }

    async fn start_container(
        &self,
        r: Request<cri::StartContainerRequest>,
    ) -> Out<cri::StartContainerResponse> {
        self.cri
            .start_container(&r.into_inner().container_id)
            .await
            .map_err(status_of)?;
        ok(cri::StartContainerResponse {})
    }

    async fn stop_container(
        &self,
        r: Request<cri::StopContainerRequest>,
    ) -> Out<cri::StopContainerResponse> {
        let r = r.into_inner();
        self.cri
            .stop_container(&r.container_id, r.timeout)
            .await
            .map_err(status_of)?;
        ok(cri::StopContainerResponse {})
    }

    async fn remove_container(
        &self,
        r: Request<cri::RemoveContainerRequest>,
    ) -> Out<cri::RemoveContainerResponse> {
        self.cri
            .remove_container(&r.into_inner().container_id)
            .await
            .map_err(status_of)?;
        ok(cri::RemoveContainerResponse {})
    }

    async fn list_containers(
        &self,
        r: Request<cri::ListContainersRequest>,
    ) -> Out<cri::ListContainersResponse> {
        let containers = self
            .cri
            .list_containers(r.into_inner().filter.as_ref())
            .await
            .map_err(status_of)?;
        ok(cri::ListContainersResponse { containers })
    }

    async fn container_status(
        &self,
        r: Request<cri::ContainerStatusRequest>,
    ) -> Out<cri::ContainerStatusResponse> {
        let r = r.into_inner();
        let c = self
            .cri
            .find_container(&r.container_id)
            .map_err(status_of)?;
        let status = self.cri.container_status(&c).await.map_err(status_of)?;
        let mut info = HashMap::new();
        if r.verbose {
            let spec = self
                .cri
                .manager
                .get(super::NAMESPACE, &c.id)
                .map(|c| c.spec)
                .unwrap_or_default();
            let pid = self.cri.manager.status(super::NAMESPACE, &c.id).await.1;
            info.insert(
                "info".to_string(),
                serde_json::json!({"sandboxID": c.sandbox_id, "pid": pid, "runtimeSpec": spec,
                    "runtime": self.cri.manager.get(super::NAMESPACE, &c.id).map(|r| r.runtime).ok().filter(|r| !r.is_empty()).unwrap_or_else(|| HANDLER.to_string())})
                    .to_string(),
            );
        }
        ok(cri::ContainerStatusResponse {
            status: Some(status),
            info,
        })
    }

    async fn update_container_resources(
        &self,
        r: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Out<cri::UpdateContainerResourcesResponse> {
        let r = r.into_inner();
        let linux = r.linux.ok_or_else(|| {
            Status::invalid_argument("UpdateContainerResources without linux resources")
        })?;
        self.cri
            .update_container(&r.container_id, linux)
            .await
            .map_err(status_of)?;
        ok(cri::UpdateContainerResourcesResponse {})
    }

    async fn reopen_container_log(
        &self,
        r: Request<cri::ReopenContainerLogRequest>,
    ) -> Out<cri::ReopenContainerLogResponse> {
        self.cri
            .reopen_log(&r.into_inner().container_id)
            .await
            .map_err(status_of)?;
        ok(cri::ReopenContainerLogResponse {})
    }

    async fn exec_sync(&self, r: Request<cri::ExecSyncRequest>) -> Out<cri::ExecSyncResponse> {
        let r = r.into_inner();
        if r.cmd.is_empty() {
            return Err(Status::invalid_argument("ExecSync without a command"));
        }
        ok(self
            .cri
            .exec_sync(&r.container_id, r.cmd, r.timeout)
            .await
            .map_err(status_of)?)
    }

    async fn exec(&self, r: Request<cri::ExecRequest>) -> Out<cri::ExecResponse> {
        let r = r.into_inner();
        if r.cmd.is_empty() {
            return Err(Status::invalid_argument("Exec without a command"));
        }
        streams_asked(r.stdin, r.stdout, r.stderr, r.tty)?;
        self.cri
            .running_container(&r.container_id)
            .await
            .map_err(status_of)?;
        let url = self.url(Pending::Exec(r))?;
        ok(cri::ExecResponse { url })
    }

    async fn attach(&self, r: Request<cri::AttachRequest>) -> Out<cri::AttachResponse> {
        let r = r.into_inner();
        streams_asked(r.stdin, r.stdout, r.stderr, r.tty)?;
        self.cri
            .running_container(&r.container_id)
            .await
            .map_err(status_of)?;
        let url = self.url(Pending::Attach(r))?;
        ok(cri::AttachResponse { url })
    }

    async fn port_forward(
        &self,
        r: Request<cri::PortForwardRequest>,
    ) -> Out<cri::PortForwardResponse> {
        let r = r.into_inner();
        let pod = self.cri.find_pod(&r.pod_sandbox_id).map_err(status_of)?;
        if !pod.ready {
            return Err(Status::failed_precondition(format!(
                "pod sandbox {} is not ready",
                pod.id
            )));
        }
        if let Some(p) = r
            .port
            .iter()
            .find(|p| u16::try_from(**p).map_or(true, |p| p == 0))
        {
            return Err(Status::invalid_argument(format!(
                "port-forward: invalid port {p}"
            )));
        }
        let url = self.url(Pending::PortForward(r))?;
        ok(cri::PortForwardResponse { url })
    }

    async fn container_stats(
        &self,
        r: Request<cri::ContainerStatsRequest>,
    ) -> Out<cri::ContainerStatsResponse> {
        let c = self
            .cri
            .find_container(&r.into_inner().container_id)
            .map_err(status_of)?;
        let stats = self.cri.container_stats(&c).await.map_err(status_of)?;
        ok(cri::ContainerStatsResponse { stats: Some(stats) })
    }

    async fn list_container_stats(
        &self,
        r: Request<cri::ListContainerStatsRequest>,
    ) -> Out<cri::ListContainerStatsResponse> {
        let stats = self
            .cri
            .list_container_stats(r.into_inner().filter.as_ref())
            .await
            .map_err(status_of)?;
        ok(cri::ListContainerStatsResponse { stats })
    }

    async fn pod_sandbox_stats(
        &self,
        r: Request<cri::PodSandboxStatsRequest>,
    ) -> Out<cri::PodSandboxStatsResponse> {
        let p = self
            .cri
            .find_pod(&r.into_inner().pod_sandbox_id)
            .map_err(status_of)?;
        let stats = self.cri.pod_sandbox_stats(&p).await.map_err(status_of)?;
        ok(cri::PodSandboxStatsResponse { stats: Some(stats) })
    }

    async fn list_pod_sandbox_stats(
        &self,
        r: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Out<cri::ListPodSandboxStatsResponse> {
        let stats = self
            .cri
            .list_pod_sandbox_stats(r.into_inner().filter.as_ref())
            .await
            .map_err(status_of)?;
        ok(cri::ListPodSandboxStatsResponse { stats })
    }

    async fn update_runtime_config(
        &self,
        r: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Out<cri::UpdateRuntimeConfigResponse> {
        let cidr = r
            .into_inner()
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        if !cidr.is_empty() {
            tracing::info!(pod_cidr = %cidr, "kubelet gave the pod CIDR");
            *self.cri.pod_cidr.lock().unwrap() = cidr;
        }
        ok(cri::UpdateRuntimeConfigResponse {})
    }

    async fn status(&self, r: Request<cri::StatusRequest>) -> Out<cri::StatusResponse> {
        let mut info = HashMap::new();
        if r.into_inner().verbose {
            info.insert(
                "config".to_string(),
                serde_json::json!({
                    "cniConfDir": self.cri.config.cni_conf_dir,
                    "cniBinDirs": self.cri.config.cni_bin_dirs,
                    "podCIDR": *self.cri.pod_cidr.lock().unwrap(),
                    "cgroupDriver": self.cri.config.cgroup_driver.as_str(),
                    "rootDir": self.cri.config.root,
                    "stateDir": self.cri.config.state,
                })
                .to_string(),
            );
        }
        ok(cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: self.conditions(),
            }),
            info,
            // Only what works is advertised (cri/handlers.rs): recursive
            // read-only mounts where the runtime has them, the supplemental
            // groups policy (berthd's own); user namespaces for pods where
            // the layers' filesystem takes idmapped mounts.
            runtime_handlers: self.cri.config.handlers.list(),
            features: Some(cri::RuntimeFeatures {
                supplemental_groups_policy: true,
            }),
        })
    }

    async fn checkpoint_container(
        &self,
        _: Request<cri::CheckpointContainerRequest>,
    ) -> Out<cri::CheckpointContainerResponse> {
        Err(Status::unimplemented(
            "CheckpointContainer: berth has no checkpointing",
        ))
    }

    type GetContainerEventsStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>,
    >;

    async fn get_container_events(
        &self,
        _: Request<cri::GetEventsRequest>,
    ) -> Out<Self::GetContainerEventsStream> {
        let rx = self.cri.events.subscribe();
        // A subscriber too slow for the bus is told (kubelet then relists),
        // never silently skipped.
        let s = tokio_stream::wrappers::BroadcastStream::new(rx).map(|e| {
            e.map_err(|_| {
                Status::data_loss("container events: this subscriber fell behind and missed events")
            })
        });
        ok(Box::pin(s))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Out<cri::ListMetricDescriptorsResponse> {
        ok(cri::ListMetricDescriptorsResponse {
            descriptors: super::metrics::descriptors(),
        })
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Out<cri::ListPodSandboxMetricsResponse> {
        let pod_metrics = self.cri.pod_sandbox_metrics().await.map_err(status_of)?;
        ok(cri::ListPodSandboxMetricsResponse { pod_metrics })
    }

    async fn runtime_config(
        &self,
        _: Request<cri::RuntimeConfigRequest>,
    ) -> Out<cri::RuntimeConfigResponse> {
        ok(cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration {
                cgroup_driver: match self.cri.config.cgroup_driver {
                    crate::containers::cgroups::CgroupDriver::Cgroupfs => {
                        cri::CgroupDriver::Cgroupfs
                    }
                    crate::containers::cgroups::CgroupDriver::Systemd => cri::CgroupDriver::Systemd,
                } as i32,
            }),
        })
    }
}
