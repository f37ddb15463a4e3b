//! GetContainerEvents: what kubelet's evented PLEG consumes. Each change of
//! a container (and of a pod sandbox, under its own id, as containerd
//! reports them) goes out to every subscriber with its pod's status and
//! the statuses of the pod's containers at that moment.

use std::sync::Arc;

use k8s_cri::v1 as cri;
use tokio::sync::broadcast;

use super::{Cri, NAMESPACE};

/// How many events a slow subscriber may fall behind before it is told.
const BACKLOG: usize = 1024;

/// The event bus of the CRI.
pub struct Events(broadcast::Sender<cri::ContainerEventResponse>);

impl Default for Events {
    fn default() -> Self {
        Events(broadcast::channel(BACKLOG).0)
    }
}

impl Events {
    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<cri::ContainerEventResponse> {
        self.0.subscribe()
    }
}

impl Cri {
    /// Sends `kind` for `id` (a container, or a pod sandbox) of `pod`; the
    /// statuses are read only when someone listens.
    pub async fn emit(&self, id: &str, pod: &str, kind: cri::ContainerEventType) {
        if self.events.0.receiver_count() == 0 {
            return;
        }
        let pod_status = self.pod(pod).ok().flatten().map(|p| self.pod_status(&p));
        let mut statuses = Vec::new();
        for c in self.pod_containers(pod).unwrap_or_default() {
            if let Ok(s) = self.container_status(&c).await {
                statuses.push(s);
            }
        }
        let _ = self.events.0.send(cri::ContainerEventResponse {
            container_id: id.to_string(),
            container_event_type: kind as i32,
            created_at: super::now_ns(),
            pod_sandbox_status: pod_status,
            containers_statuses: statuses,
        });
    }

    /// Turns the exits of CRI containers on berthd's bus into
    /// CONTAINER_STOPPED events, until the bus ends.
    pub async fn watch_exits(self: Arc<Self>) {
        let mut rx = self.manager.subscribe();
        loop {
            let e = match rx.recv().await {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "CRI events: fell behind berthd's bus");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if e.namespace != NAMESPACE || e.topic != "/tasks/exit" || !e.exec_id.is_empty() {
                continue;
            }
            if self.events.0.receiver_count() == 0
                || !matches!(self.cri_container(&e.id), Ok(Some(_)))
            {
                continue;
            }
            // After its start's event (emitted under this lock); a container
            // removed meanwhile has its DELETED instead (and its lock goes).
            let g = self.lock(&e.id).await;
            match self.cri_container(&e.id) {
                Ok(Some(c)) => {
                    self.emit(
                        &c.id,
                        &c.sandbox_id,
                        cri::ContainerEventType::ContainerStoppedEvent,
                    )
                    .await
                }
                _ => {
                    drop(g);
                    self.forget(&e.id);
                }
            }
        }
    }
}
