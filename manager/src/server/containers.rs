//! The Containers and Tasks services: request checks and conversions around
//! [`Manager`]. The same `Service` serves `networks`, `events` and `volumes`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use berth_proto::containers::containers_server::Containers as ContainersApi;
use berth_proto::containers::tasks_server::Tasks as TasksApi;
use berth_proto::containers::{self as pb};
use berth_proto::shim as shimpb;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::namespace;
use crate::containers::logs;
use crate::containers::records::{Container, MountRecord};
use crate::containers::spec;
use crate::containers::tasks::{CreateOptions, Manager, Status as TaskStatus};
use crate::network::networks::PortMapping;

/// The services over one manager.
#[derive(Clone)]
pub struct Service {
    pub(super) manager: Arc<Manager>,
    /// Log rotation when a container asks for none: (bytes, files).
    pub(super) log_defaults: (u64, u32),
}

pub use crate::codes::task_status as status_of;

use crate::containers::tasks::timestamp as ts;

impl Service {
    async fn to_pb(&self, ns: &str, c: Container) -> pb::Container {
        let (st, pid) = self.manager.status(ns, &c.id).await;
        let status = match st {
            TaskStatus::None => pb::TaskStatus::None,
            TaskStatus::Created => pb::TaskStatus::Created,
            TaskStatus::Running => pb::TaskStatus::Running,
            TaskStatus::Stopped => pb::TaskStatus::Stopped,
            TaskStatus::Paused => pb::TaskStatus::Paused,
        };
        let att = if st == TaskStatus::None {
            None
        } else {
            self.manager
                .networks
                .record(ns, &c.id)
                .filter(|a| !a.result.is_null())
        };
        pb::Container {
            log_path: self.manager.log_file(ns, &c).display().to_string(),
            id: c.id,
            image: c.image,
            spec: c.spec.to_string(),
            snapshot: c.snapshot,
            runtime: c.runtime,
            labels: c.labels.into_iter().collect(),
            created: Some(ts(c.created_ms)),
            tty: c.tty,
            stdin: c.stdin,
            auto_remove: c.auto_remove,
            mounts: c
                .mounts
                .into_iter()
                .map(|m| pb::MountSpec {
                    kind: m.kind,
                    source: m.source,
                    destination: m.destination,
                    read_only: m.read_only,
                })
                .collect(),
            status: status as i32,
            pid,
            started_at: c.started_ms.map(ts),
            exited: c.exit.is_some(),
            exit_status: c.exit.map(|e| e.status).unwrap_or(0),
            exited_at: c.exit.map(|e| ts(e.at_ms)),
            network: c.network,
            ports: c.ports.iter().map(port_pb).collect(),
            ip_addresses: att.as_ref().map(|a| a.addresses()).unwrap_or_default(),
            gateway: att
                .as_ref()
                .and_then(|a| crate::network::cni::gateway(&a.result))
                .unwrap_or_default(),
            published: att
                .as_ref()
                .map(|a| published(&a.capabilities))
                .unwrap_or_default(),
        }
    }
}

fn port_pb(p: &PortMapping) -> pb::PortMapping {
    pb::PortMapping {
        host_ip: p.host_ip.clone(),
        host_port: p.host_port.into(),
        container_port: p.container_port.into(),
        protocol: p.protocol.clone(),
    }
}

fn port_from_pb(p: pb::PortMapping) -> Result<PortMapping, Status> {
    let port = |n: u32, zero_ok: bool| {
        u16::try_from(n)
            .ok()
            .filter(|&n| zero_ok || n > 0)
            .ok_or_else(|| Status::invalid_argument(format!("port {n}: not from 1 to 65535")))
    };
    let protocol = if p.protocol.is_empty() {
        "tcp".to_string()
    } else {
        p.protocol.to_ascii_lowercase()
    };
    if protocol != "tcp" && protocol != "udp" {
        return Err(Status::invalid_argument(format!(
            "port protocol {protocol:?}: not tcp or udp"
        )));
    }
    Ok(PortMapping {
        host_ip: p.host_ip,
        host_port: port(p.host_port, true)?,
        container_port: port(p.container_port, false)?,
        protocol,
    })
}

/// The port mappings an attachment was given (host ports as chosen).
fn published(caps: &serde_json::Value) -> Vec<pb::PortMapping> {
    caps["portMappings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| pb::PortMapping {
            host_ip: m["hostIP"].as_str().unwrap_or("").into(),
            host_port: m["hostPort"]
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0),
            container_port: m["containerPort"]
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0),
            protocol: m["protocol"].as_str().unwrap_or("tcp").into(),
        })
        .collect()
}

pub(super) type Out<T> = Result<Response<T>, Status>;

/// docker's `--log-opt max-size=… max-file=…` as (bytes, files), over
/// berthd's defaults; any other option is refused, naming it.
fn log_rotation(
    opts: &std::collections::HashMap<String, String>,
    defaults: (u64, u32),
) -> Result<(u64, u32), Status> {
    let (mut size, mut files) = defaults;
    for (k, v) in opts {
        match k.as_str() {
            "max-size" => {
                size = if v == "-1" {
                    0
                } else {
                    berth_rules::size::parse(v)
                        .ok()
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or_else(|| {
                            Status::invalid_argument(format!("log option max-size={v}: not a size"))
                        })?
                }
            }
            "max-file" => {
                files = v.parse().ok().filter(|&n: &u32| n >= 1).ok_or_else(|| {
                    Status::invalid_argument(format!("log option max-file={v}: at least 1"))
                })?
            }
            other => {
                return Err(Status::invalid_argument(format!(
                    "log option {other} is not supported (max-size, max-file)"
                )))
            }
        }
    }
    Ok((size, files.max(1)))
}

#[tonic::async_trait]
impl ContainersApi for Service {
    async fn create(&self, r: Request<pb::CreateContainerRequest>) -> Out<pb::Container> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let image = crate::store::images::normalize(&r.image).map_err(super::status_of)?;
        let o = CreateOptions {
            id: r.id,
            image,
            image_record: None,
            spec: spec::Options {
                args: r.args,
                entrypoint: r.entrypoint_set.then_some(r.entrypoint),
                env: r.env,
                workdir: r.workdir,
                user: r.user,
                tty: r.tty,
                binds: Vec::new(),
                network: None,
                hostname: r.hostname,
                memory: r.memory,
                milli_cpus: r.milli_cpus,
                pids_limit: r.pids_limit,
                read_only: r.read_only,
                cap_add: r.cap_add,
                cap_drop: r.cap_drop,
                seccomp: r.seccomp,
                privileged: r.privileged,
                etc_files: None,
                // Set by the manager, which knows its own.
                available_caps: None,
            },
            raw_spec: (!r.spec.is_empty()).then_some(r.spec),
            mounts: r
                .mounts
                .into_iter()
                .map(|m| MountRecord {
                    kind: m.kind,
                    source: m.source,
                    destination: m.destination,
                    read_only: m.read_only,
                })
                .collect(),
            runtime: r.runtime,
            labels: r.labels.into_iter().collect(),
            auto_remove: r.auto_remove,
            stdin: r.stdin,
            network: r.network,
            ports: r
                .ports
                .into_iter()
                .map(port_from_pb)
                .collect::<Result<_, _>>()?,
            spec_fn: None,
            log_path: None,
            log_rotation: log_rotation(&r.log_opts, self.log_defaults)?,
        };
        if o.network.starts_with("netns:") {
            // Joining a namespace by path is for berthd's own pods only.
            return Err(Status::invalid_argument(format!(
                "network {:?}: not none, host, container:NAME or a network name",
                o.network
            )));
        }
        let c = self.manager.create(&ns, o).await.map_err(status_of)?;
        Ok(Response::new(self.to_pb(&ns, c).await))
    }

    async fn get(&self, r: Request<pb::ContainerRef>) -> Out<pb::Container> {
        let ns = namespace(&r)?;
        let c = self
            .manager
            .get(&ns, &r.into_inner().id)
            .map_err(status_of)?;
        Ok(Response::new(self.to_pb(&ns, c).await))
    }

    async fn list(&self, r: Request<pb::ListContainersRequest>) -> Out<pb::ListContainersResponse> {
        let ns = namespace(&r)?;
        let want = r.into_inner().labels;
        let mut out = Vec::new();
        for c in self.manager.list(&ns).map_err(status_of)? {
            if want.iter().all(|(k, v)| c.labels.get(k) == Some(v)) {
                out.push(self.to_pb(&ns, c).await);
            }
        }
        Ok(Response::new(pb::ListContainersResponse {
            containers: out,
        }))
    }

    async fn update(&self, r: Request<pb::UpdateContainerRequest>) -> Out<pb::Container> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let c = self
            .manager
            .set_labels(&ns, &r.id, r.labels.into_iter().collect())
            .map_err(status_of)?;
        Ok(Response::new(self.to_pb(&ns, c).await))
    }

    async fn delete(&self, r: Request<pb::DeleteContainerRequest>) -> Out<pb::Empty> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        self.manager
            .delete(&ns, &r.id, r.force, r.keep_snapshot)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::Empty {}))
    }
}

pub(super) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn exit_pb(e: crate::containers::records::Exit) -> pb::ExitInfo {
    pb::ExitInfo {
        exit_status: e.status,
        exited_at: Some(ts(e.at_ms)),
    }
}

fn line_pb(l: logs::Line) -> pb::LogEntry {
    pb::LogEntry {
        time: Some(prost_types::Timestamp {
            seconds: l.time_ns.div_euclid(1_000_000_000),
            nanos: i32::try_from(l.time_ns.rem_euclid(1_000_000_000)).unwrap_or(0),
        }),
        stream: if l.stderr {
            pb::StreamKind::Stderr
        } else {
            pb::StreamKind::Stdout
        } as i32,
        data: l.data,
    }
}

#[tonic::async_trait]
impl TasksApi for Service {
    async fn create(&self, r: Request<pb::CreateTaskRequest>) -> Out<pb::TaskInfo> {
        let ns = namespace(&r)?;
        let id = r.into_inner().container_id;
        let pid = self
            .manager
            .create_task(&ns, &id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::TaskInfo {
            container_id: id,
            exec_id: String::new(),
            pid,
        }))
    }

    async fn start(&self, r: Request<pb::TaskRef>) -> Out<pb::TaskInfo> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let pid = self
            .manager
            .start(&ns, &r.container_id, &r.exec_id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::TaskInfo {
            container_id: r.container_id,
            exec_id: r.exec_id,
            pid,
        }))
    }

    async fn wait(&self, r: Request<pb::TaskRef>) -> Out<pb::ExitInfo> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let e = self
            .manager
            .wait(&ns, &r.container_id, &r.exec_id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(exit_pb(e)))
    }

    async fn kill(&self, r: Request<pb::KillRequest>) -> Out<pb::Empty> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        self.manager
            .kill(&ns, &r.container_id, &r.exec_id, r.signal, r.all)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn exec(&self, r: Request<pb::ExecRequest>) -> Out<pb::Empty> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        self.manager
            .exec(
                &ns,
                &r.container_id,
                &r.exec_id,
                r.args,
                r.env,
                r.workdir,
                r.user,
                r.tty,
                r.stdin,
                r.privileged,
            )
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::Empty {}))
    }

    type AttachStream = BoxStream<pb::Output>;

    async fn attach(&self, r: Request<Streaming<pb::AttachRequest>>) -> Out<Self::AttachStream> {
        let ns = namespace(&r)?;
        let mut input = r.into_inner();
        let start = match input.message().await? {
            Some(pb::AttachRequest {
                msg: Some(pb::attach_request::Msg::Start(s)),
            }) => s,
            _ => {
                return Err(Status::invalid_argument(
                    "attach: the first message must be start",
                ))
            }
        };
        let mut shim = self
            .manager
            .shim(&ns, &start.container_id)
            .map_err(status_of)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<shimpb::AttachRequest>(16);
        tx.send(shimpb::AttachRequest {
            msg: Some(shimpb::attach_request::Msg::Start(shimpb::AttachStart {
                id: start.container_id.clone(),
                exec_id: start.exec_id.clone(),
                stdout: start.stdout,
                stderr: start.stderr,
            })),
        })
        .await
        .map_err(|_| Status::internal("attach: channel closed"))?;
        let output = shim
            .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        // The client's stdin, stdin close and resizes go to the shim.
        let mut resizer = shim.clone();
        let (cid, eid) = (start.container_id, start.exec_id);
        tokio::spawn(async move {
            while let Ok(Some(m)) = input.message().await {
                let msg = match m.msg {
                    Some(pb::attach_request::Msg::Stdin(b)) => {
                        shimpb::attach_request::Msg::Stdin(b)
                    }
                    Some(pb::attach_request::Msg::CloseStdin(c)) => {
                        shimpb::attach_request::Msg::CloseStdin(c)
                    }
                    Some(pb::attach_request::Msg::Resize(rz)) => {
                        let _ = resizer
                            .resize_pty(shimpb::ResizePtyRequest {
                                id: cid.clone(),
                                exec_id: eid.clone(),
                                width: rz.width,
                                height: rz.height,
                            })
                            .await;
                        continue;
                    }
                    _ => continue,
                };
                if tx
                    .send(shimpb::AttachRequest { msg: Some(msg) })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let out = output.map(|m| {
            m.map(|o| pb::Output {
                stream: if o.stream == shimpb::Stream::Stderr as i32 {
                    pb::StreamKind::Stderr
                } else {
                    pb::StreamKind::Stdout
                } as i32,
                data: o.data,
            })
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn resize_pty(&self, r: Request<pb::ResizeRequest>) -> Out<pb::Empty> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let mut shim = self.manager.shim(&ns, &r.container_id).map_err(status_of)?;
        shim.resize_pty(shimpb::ResizePtyRequest {
            id: r.container_id,
            exec_id: r.exec_id,
            width: r.width,
            height: r.height,
        })
        .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn close_io(&self, r: Request<pb::TaskRef>) -> Out<pb::Empty> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let mut shim = self.manager.shim(&ns, &r.container_id).map_err(status_of)?;
        shim.close_io(shimpb::CloseIoRequest {
            id: r.container_id,
            exec_id: r.exec_id,
            stdin: true,
        })
        .await?;
        Ok(Response::new(pb::Empty {}))
    }

    type LogsStream = BoxStream<pb::LogEntry>;

    async fn logs(&self, r: Request<pb::LogsRequest>) -> Out<Self::LogsStream> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let c = self.manager.get(&ns, &r.container_id).map_err(status_of)?;
        let path = self.manager.log_file(&ns, &c);
        let since_ns = r.since.saturating_mul(1_000_000_000);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let manager = self.manager.clone();
        tokio::spawn(async move {
            // What is logged so far, streamed: `--tail` starts near the end
            // and nothing is held but one record at a time.
            let (p, tx2, tail) = (path.clone(), tx.clone(), r.tail);
            let first = tokio::task::spawn_blocking(move || {
                let (files, offset) = match u64::try_from(tail) {
                    Ok(n) => logs::tail_start(&p, n)?,
                    Err(_) => (logs::files(&p), 0),
                };
                let mut j = logs::Joiner::default();
                let reached = logs::stream(&files, offset, since_ns, &mut j, |l| {
                    tx2.blocking_send(Ok(line_pb(l))).is_ok()
                })?;
                Ok::<_, std::io::Error>((reached, j))
            })
            .await;
            let (mut offset, mut j) = match first {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    let _ = tx
                        .send(Err(Status::internal(format!(
                            "read {}: {e}",
                            path.display()
                        ))))
                        .await;
                    return;
                }
                Err(_) => return,
            };
            if !r.follow {
                // A last line without its end (its writer died) is shown too.
                for l in j.pending() {
                    if tx.send(Ok(line_pb(l))).await.is_err() {
                        return;
                    }
                }
                return;
            }
            loop {
                // Checked before the read, so the last lines of an exited
                // task are still sent.
                let live = manager.has_task(&ns, &r.container_id);
                let p = path.clone();
                let read = tokio::task::spawn_blocking(move || {
                    let mut j2 = std::mem::take(&mut j);
                    let r = logs::read_from(&p, offset, &mut j2);
                    (r, j2)
                })
                .await;
                let Ok((res, j2)) = read else { return };
                j = j2;
                match res {
                    Ok((new, off)) => {
                        offset = off;
                        for l in new {
                            if tx.send(Ok(line_pb(l))).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::internal(format!("read log: {e}"))))
                            .await;
                        return;
                    }
                }
                if !live || tx.is_closed() {
                    for l in j.pending() {
                        let _ = tx.send(Ok(line_pb(l))).await;
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn pause(&self, r: Request<pb::TaskRef>) -> Out<pb::Empty> {
        let ns = namespace(&r)?;
        self.manager
            .pause(&ns, &r.into_inner().container_id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn resume(&self, r: Request<pb::TaskRef>) -> Out<pb::Empty> {
        let ns = namespace(&r)?;
        self.manager
            .resume(&ns, &r.into_inner().container_id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn update(&self, r: Request<pb::UpdateTaskRequest>) -> Out<pb::Empty> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        self.manager
            .update(&ns, &r.container_id, &r.resources)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn stats(&self, r: Request<pb::TaskRef>) -> Out<pb::TaskStats> {
        let ns = namespace(&r)?;
        let s = self
            .manager
            .stats(&ns, &r.into_inner().container_id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::TaskStats {
            cpu_usage_ns: s.cpu_usage_ns,
            memory_usage_bytes: s.memory_usage_bytes,
            memory_limit_bytes: s.memory_limit_bytes,
            pids_current: s.pids_current,
            pids_limit: s.pids_limit,
            json: s.json,
            read_at: Some(ts(berth_rules::time::now_ms())),
        }))
    }

    async fn pids(&self, r: Request<pb::TaskRef>) -> Out<pb::PidsResponse> {
        let ns = namespace(&r)?;
        let pids = self
            .manager
            .pids(&ns, &r.into_inner().container_id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::PidsResponse { pids }))
    }

    async fn delete(&self, r: Request<pb::TaskRef>) -> Out<pb::ExitInfo> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let e = self
            .manager
            .delete_task(&ns, &r.container_id, &r.exec_id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(exit_pb(e)))
    }

    async fn commit(&self, r: Request<pb::CommitRequest>) -> Out<pb::CommitResponse> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let img = self
            .manager
            .commit(&ns, &r.container_id, &r.image, &r.comment)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::CommitResponse {
            image: img.name,
            digest: img.target.digest.to_string(),
        }))
    }
}
