//! berthctl's container commands: the flags (`args`), the lifecycle, `exec`,
//! the commands that look (`observe`), volumes, networks and `commit`, each
//! over the `Clients` of berthd's services defined here.

mod args;
mod attach;
mod commit;
mod exec;
mod lifecycle;
mod networks;
mod observe;
mod show;
mod volumes;

use std::time::Duration;

use berth_proto::containers::containers_client::ContainersClient;
use berth_proto::containers::tasks_client::TasksClient;
use berth_proto::containers::{self as pb};
use berth_proto::images::images_client::ImagesClient;
use berth_proto::images::{self as ipb};
use tonic::transport::Channel;
use tonic::Code;

use self::args::{parse_volume, CreateArgs};
use crate::failure::{failed, start_failure_code, status_err};
use crate::request;

pub use args::ContainerCmd;
pub use commit::commit;

/// Clients of berthd's services.
#[derive(Clone)]
pub struct Clients {
    ns: String,
    containers: ContainersClient<Channel>,
    tasks: TasksClient<Channel>,
    images: ImagesClient<Channel>,
    ch: Channel,
}

impl Clients {
    /// The namespace's containers: all, or the running and paused ones.
    pub(crate) async fn list(&mut self, all: bool) -> anyhow::Result<Vec<pb::Container>> {
        let r = self.req(pb::ListContainersRequest::default());
        Ok(self
            .containers
            .list(r)
            .await
            .map_err(|s| status_err("list containers", s))?
            .into_inner()
            .containers
            .into_iter()
            .filter(|x| {
                all || matches!(x.status(), pb::TaskStatus::Running | pb::TaskStatus::Paused)
            })
            .collect())
    }

    /// Clients on one channel.
    pub fn new(ch: Channel, ns: &str) -> Clients {
        Clients {
            ns: ns.into(),
            containers: ContainersClient::new(ch.clone()),
            tasks: TasksClient::new(ch.clone()),
            images: ImagesClient::new(ch.clone()),
            ch,
        }
    }

    pub(crate) fn req<T>(&self, m: T) -> tonic::Request<T> {
        request(&self.ns, m)
    }

    pub(crate) async fn get(&mut self, id: &str) -> anyhow::Result<pb::Container> {
        let r = self.req(pb::ContainerRef { id: id.into() });
        self.containers
            .get(r)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| match s.code() {
                Code::NotFound => failed(1, format!("no such container: {id}")),
                _ => status_err(&format!("container {id}"), s),
            })
    }

    /// Pulls the image unless it is here.
    pub(crate) async fn ensure_image(&mut self, image: &str) -> anyhow::Result<()> {
        let r = self.req(ipb::GetImageRequest { name: image.into() });
        match self.images.get(r).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => {
                eprintln!("Unable to find image '{image}' locally");
                let ns = self.ns.clone();
                crate::images::pull(
                    &mut self.images,
                    &ns,
                    image.into(),
                    String::new(),
                    true,
                    false,
                )
                .await
                .map_err(|e| failed(125, e.to_string()))
            }
            Err(s) => Err(status_err(&format!("image {image}"), s)),
        }
    }

    pub(crate) async fn create(
        &mut self,
        a: &CreateArgs,
        auto_remove: bool,
    ) -> anyhow::Result<pb::Container> {
        let mut seccomp = String::new();
        for o in &a.security_opt {
            match o.split_once(['=', ':']) {
                Some(("seccomp", "unconfined")) => seccomp = "unconfined".into(),
                Some(("seccomp", file)) => {
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| failed(125, format!("read seccomp profile {file}: {e}")))?;
                    seccomp = text;
                }
                _ => {
                    return Err(failed(
                        125,
                        format!("unsupported --security-opt {o:?} (seccomp=FILE|unconfined)"),
                    ))
                }
            }
        }
        let mounts = a
            .volume
            .iter()
            .map(|v| parse_volume(v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed(125, e))?;
        let memory = match &a.memory {
            Some(m) => berth_rules::size::parse(m).map_err(|e| failed(125, e.to_string()))?,
            None => 0,
        };
        let labels = a
            .label
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect();
        let ports = a
            .publish
            .iter()
            .map(|p| {
                berth_rules::port::PortMapping::parse(p).map(|p| pb::PortMapping {
                    host_ip: p.host_ip,
                    host_port: p.host_port.into(),
                    container_port: p.container_port.into(),
                    protocol: p.protocol,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed(125, e.to_string()))?;
        let image = berth_rules::reference::Reference::parse(&a.image)
            .map(|r| r.to_string())
            .map_err(|e| failed(125, e.to_string()))?;
        self.ensure_image(&image).await?;
        let req = pb::CreateContainerRequest {
            id: a.name.clone().unwrap_or_default(),
            image,
            args: a.command.clone(),
            entrypoint: a
                .entrypoint
                .iter()
                .filter(|e| !e.is_empty())
                .cloned()
                .collect(),
            entrypoint_set: a.entrypoint.is_some(),
            env: a.process.env(),
            workdir: a.process.workdir.clone().unwrap_or_default(),
            user: a.process.user.clone().unwrap_or_default(),
            tty: a.tty,
            stdin: a.interactive,
            mounts,
            network: a.net.clone(),
            hostname: a.hostname.clone().unwrap_or_default(),
            memory,
            milli_cpus: match a.cpus {
                None => 0,
                // In range and rounded: the conversion is exact.
                #[allow(clippy::cast_possible_truncation)]
                Some(c) if c.is_finite() && (0.0..=1e6).contains(&c) => (c * 1000.0).round() as i64,
                Some(c) => {
                    return Err(failed(
                        125,
                        format!("invalid --cpus {c}: want a number of CPUs"),
                    ))
                }
            },
            pids_limit: a.pids_limit.unwrap_or(0),
            read_only: a.read_only,
            cap_add: a.cap_add.clone(),
            cap_drop: a.cap_drop.clone(),
            seccomp,
            runtime: a.runtime.clone().unwrap_or_default(),
            labels,
            auto_remove,
            spec: String::new(),
            privileged: a.privileged,
            ports,
            log_opts: a
                .log_opts
                .iter()
                .map(|o| {
                    o.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| {
                            failed(125, format!("invalid --log-opt {o:?}: want KEY=VALUE"))
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let r = self.req(req);
        self.containers
            .create(r)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| status_err("create container", s))
    }

    pub(crate) async fn create_task(&mut self, id: &str) -> anyhow::Result<()> {
        let r = self.req(pb::CreateTaskRequest {
            container_id: id.into(),
        });
        self.tasks.create(r).await.map_err(|s| {
            let m = s.message().to_string();
            failed(start_failure_code(&m), format!("start container {id}: {m}"))
        })?;
        Ok(())
    }

    pub(crate) async fn start_task(&mut self, id: &str, exec_id: &str) -> anyhow::Result<()> {
        let r = self.req(pb::TaskRef {
            container_id: id.into(),
            exec_id: exec_id.into(),
        });
        self.tasks.start(r).await.map_err(|s| {
            let m = s.message().to_string();
            failed(start_failure_code(&m), format!("start {id}: {m}"))
        })?;
        Ok(())
    }

    pub(crate) async fn wait(&mut self, id: &str, exec_id: &str) -> anyhow::Result<u32> {
        let r = self.req(pb::TaskRef {
            container_id: id.into(),
            exec_id: exec_id.into(),
        });
        Ok(self
            .tasks
            .wait(r)
            .await
            .map_err(|s| status_err(&format!("wait for {id}"), s))?
            .into_inner()
            .exit_status)
    }

    pub(crate) async fn kill(
        &mut self,
        id: &str,
        signal: u32,
        all: bool,
    ) -> Result<(), tonic::Status> {
        let r = self.req(pb::KillRequest {
            container_id: id.into(),
            exec_id: String::new(),
            signal,
            all,
        });
        self.tasks.kill(r).await.map(drop)
    }

    pub(crate) async fn remove(&mut self, id: &str, force: bool) -> anyhow::Result<()> {
        let r = self.req(pb::DeleteContainerRequest {
            id: id.into(),
            force,
            keep_snapshot: false,
        });
        self.containers
            .delete(r)
            .await
            .map_err(|s| match s.code() {
                Code::NotFound => failed(1, format!("no such container: {id}")),
                _ => status_err(&format!("remove {id}"), s),
            })?;
        Ok(())
    }

    /// `pause` (freeze) or `unpause` each container, printing its id.
    pub(crate) async fn freeze_all(&mut self, ids: &[String], freeze: bool) -> anyhow::Result<u8> {
        for id in ids {
            let r = self.req(pb::TaskRef {
                container_id: id.clone(),
                exec_id: String::new(),
            });
            let (what, res) = if freeze {
                ("pause", self.tasks.pause(r).await)
            } else {
                ("unpause", self.tasks.resume(r).await)
            };
            res.map_err(|s| status_err(&format!("{what} {id}"), s))?;
            println!("{id}");
        }
        Ok(0)
    }

    pub(crate) async fn stop(&mut self, id: &str, secs: u64) -> anyhow::Result<()> {
        let c = self.get(id).await?;
        if !matches!(
            c.status(),
            pb::TaskStatus::Running | pb::TaskStatus::Paused | pb::TaskStatus::Created
        ) {
            return Ok(());
        }
        if c.status() == pb::TaskStatus::Paused {
            let r = self.req(pb::TaskRef {
                container_id: id.into(),
                exec_id: String::new(),
            });
            let _ = self.tasks.resume(r).await;
        }
        if let Err(s) = self.kill(id, libc::SIGTERM as u32, false).await {
            if s.code() != Code::FailedPrecondition {
                return Err(status_err(&format!("stop {id}"), s));
            }
        }
        let mut waiter = self.tasks.clone();
        let r = self.req(pb::TaskRef {
            container_id: id.into(),
            exec_id: String::new(),
        });
        match tokio::time::timeout(Duration::from_secs(secs), waiter.wait(r)).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = self.kill(id, libc::SIGKILL as u32, true).await;
                let _ = self.wait(id, "").await;
                Ok(())
            }
        }
    }
}

/// Runs a container command; the exit status.
pub async fn run(ch: Channel, ns: &str, cmd: ContainerCmd) -> anyhow::Result<u8> {
    let mut c = Clients::new(ch, ns);
    let c = &mut c;
    match cmd {
        ContainerCmd::Run {
            create,
            detach,
            rm,
            detach_keys,
        } => lifecycle::run(c, create, detach, rm, detach_keys).await,
        ContainerCmd::Create { create } => lifecycle::create(c, create).await,
        ContainerCmd::Start {
            attach,
            interactive,
            detach_keys,
            containers,
        } => lifecycle::start(c, attach, interactive, detach_keys, containers).await,
        ContainerCmd::Stop { time, containers } => lifecycle::stop(c, time, containers).await,
        ContainerCmd::Kill { signal, containers } => lifecycle::kill(c, signal, containers).await,
        ContainerCmd::Rm { force, containers } => lifecycle::rm(c, force, containers).await,
        ContainerCmd::Pause { containers } => c.freeze_all(&containers, true).await,
        ContainerCmd::Unpause { containers } => c.freeze_all(&containers, false).await,
        ContainerCmd::Exec(a) => exec::exec(c, a).await,
        ContainerCmd::Ps { all, quiet, format } => observe::ps(c, all, quiet, format).await,
        ContainerCmd::Logs {
            follow,
            tail,
            since,
            timestamps,
            container,
        } => observe::logs(c, follow, tail, since, timestamps, container).await,
        ContainerCmd::Inspect { containers } => observe::inspect(c, containers).await,
        ContainerCmd::Stats {
            no_stream,
            containers,
        } => observe::stats(c, no_stream, containers).await,
        ContainerCmd::Events { filter, format } => observe::events(c, filter, format).await,
        ContainerCmd::Volume { cmd } => volumes::run(c, cmd).await,
        ContainerCmd::Network { cmd } => networks::network(c.clone(), cmd).await,
    }
}
