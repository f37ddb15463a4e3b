//! berthctl's container commands, with docker's flags and exit codes: 125
//! when berthd or the request fails, 126 when the command cannot be run,
//! 127 when it is not found, else the container's own status.

use std::io::Write;
use std::time::Duration;

use berth_proto::containers::containers_client::ContainersClient;
use berth_proto::containers::events_client::EventsClient;
use berth_proto::containers::networks_client::NetworksClient;
use berth_proto::containers::tasks_client::TasksClient;
use berth_proto::containers::volumes_client::VolumesClient;
use berth_proto::containers::{self as pb};
use berth_proto::images::images_client::ImagesClient;
use berth_proto::images::{self as ipb};
use clap::{Args, Subcommand};
use tonic::transport::Channel;
use tonic::Code;

use super::{ago, request, tty};

/// A failure with the exit status berthctl ends with.
#[derive(Debug)]
pub struct Failed {
    /// The exit status.
    pub code: u8,
    /// What to print.
    pub message: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

/// The status docker gives a failure to create or start a process.
pub fn start_failure_code(message: &str) -> u8 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") || message.contains("not executable") {
        126
    } else {
        125
    }
}

fn failed(code: u8, message: impl Into<String>) -> anyhow::Error {
    Failed {
        code,
        message: message.into(),
    }
    .into()
}

fn status_err(what: &str, s: tonic::Status) -> anyhow::Error {
    failed(125, format!("{what}: {}", s.message()))
}

/// The process options `run`, `create` and `exec` share.
#[derive(Args, Clone)]
pub struct ProcessArgs {
    /// Set an environment variable (KEY=VALUE, or KEY to take it from here).
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// user[:group], by name or number.
    #[arg(short, long)]
    user: Option<String>,
}

impl ProcessArgs {
    /// KEY=VALUE pairs; a bare KEY takes this process's value, or is dropped.
    fn env(&self) -> Vec<String> {
        self.env
            .iter()
            .filter_map(|e| {
                if e.contains('=') {
                    Some(e.clone())
                } else {
                    std::env::var(e).ok().map(|v| format!("{e}={v}"))
                }
            })
            .collect()
    }
}

/// Options shared by `run` and `create`.
#[derive(Args, Clone)]
pub struct CreateArgs {
    /// The container's name (and id).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    process: ProcessArgs,
    /// Bind mount or named volume: /host:/ctr[:ro] or NAME:/ctr[:ro].
    #[arg(short, long = "volume")]
    volume: Vec<String>,
    /// Network: bridge (the default network), a network's name, none,
    /// host, or container:NAME (another container's).
    #[arg(long = "net", alias = "network", default_value = "bridge")]
    net: String,
    /// Publish a port: [hostip:][hostport:]containerport[/tcp|udp].
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short, long)]
    memory: Option<String>,
    /// CPUs (e.g. 1.5).
    #[arg(long)]
    cpus: Option<f64>,
    /// Maximum number of processes.
    #[arg(long)]
    pids_limit: Option<i64>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    read_only: bool,
    /// Add a capability (or ALL).
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop a capability (or ALL).
    #[arg(long)]
    cap_drop: Vec<String>,
    /// seccomp=FILE or seccomp=unconfined.
    #[arg(long)]
    security_opt: Vec<String>,
    /// Runtime binary for this container.
    #[arg(long)]
    runtime: Option<String>,
    /// Keep stdin open.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Replace the image's entrypoint.
    #[arg(long)]
    entrypoint: Option<String>,
    /// The container's hostname.
    #[arg(long)]
    hostname: Option<String>,
    /// A label (KEY=VALUE).
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// Every capability and device, no seccomp filter.
    #[arg(long)]
    privileged: bool,
    /// The image.
    image: String,
    /// The command and its arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Container commands.
#[derive(Subcommand)]
pub enum ContainerCmd {
    /// Create and start a container.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Run in the background; print the id.
        #[arg(short, long)]
        detach: bool,
        /// Remove the container when it exits.
        #[arg(long)]
        rm: bool,
        /// Keys that detach from the container's terminal.
        #[arg(long, default_value = "ctrl-p,ctrl-q")]
        detach_keys: String,
    },
    /// Create a container without starting it.
    Create {
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Start containers.
    Start {
        /// Attach to its output and wait for it.
        #[arg(short, long)]
        attach: bool,
        /// Attach stdin.
        #[arg(short, long)]
        interactive: bool,
        /// Keys that detach from the container's terminal.
        #[arg(long, default_value = "ctrl-p,ctrl-q")]
        detach_keys: String,
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers.
    Ps {
        /// All containers, not only running ones.
        #[arg(short, long)]
        all: bool,
        /// Ids only.
        #[arg(short, long)]
        quiet: bool,
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// A container's output.
    Logs {
        /// Keep following it.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines ("all": every line).
        #[arg(long, default_value = "all")]
        tail: String,
        /// Only lines since a time (RFC 3339, seconds since the epoch, or a duration like 10m).
        #[arg(long)]
        since: Option<String>,
        /// Prefix each line with its time.
        #[arg(short, long)]
        timestamps: bool,
        /// The container.
        container: String,
    },
    /// Run a command in a running container.
    Exec {
        /// Keep stdin open.
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a terminal.
        #[arg(short, long)]
        tty: bool,
        /// Run in the background.
        #[arg(short, long)]
        detach: bool,
        #[command(flatten)]
        process: ProcessArgs,
        /// Every capability.
        #[arg(long)]
        privileged: bool,
        /// Keys that detach from the terminal.
        #[arg(long, default_value = "ctrl-p,ctrl-q")]
        detach_keys: String,
        /// The container.
        container: String,
        /// The command.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Stop containers: SIGTERM, then SIGKILL after the timeout.
    Stop {
        /// Seconds to wait before killing.
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to containers.
    Kill {
        /// The signal (name or number).
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Kill running ones first.
        #[arg(short, long)]
        force: bool,
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Freeze containers.
    Pause {
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Thaw containers.
    Unpause {
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Containers' details as JSON.
    Inspect {
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Resource usage of running containers.
    Stats {
        /// One sample, then exit.
        #[arg(long)]
        no_stream: bool,
        /// The containers (default: all running).
        containers: Vec<String>,
    },
    /// Stream events.
    Events {
        /// container=ID, topic=PREFIX (e.g. topic=/tasks/exit), event=NAME.
        #[arg(short, long)]
        filter: Vec<String>,
        /// text or json.
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Named volumes.
    Volume {
        #[command(subcommand)]
        cmd: VolumeCmd,
    },
    /// CNI networks.
    Network {
        #[command(subcommand)]
        cmd: NetworkCmd,
    },
}

/// `network` subcommands.
#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a bridge network.
    Create {
        /// Its name.
        name: String,
        /// a.b.c.d/len (default: the first free 10.211-254.0.0/16).
        #[arg(long)]
        subnet: Option<String>,
        /// The gateway (default: the subnet's first address).
        #[arg(long)]
        gateway: Option<String>,
        /// Only bridge.
        #[arg(short, long, default_value = "bridge")]
        driver: String,
    },
    /// List networks.
    Ls {
        /// Names only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove networks.
    Rm {
        /// The networks.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show networks as JSON.
    Inspect {
        /// The networks.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `volume` subcommands.
#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Create a volume.
    Create {
        /// Its name.
        name: String,
    },
    /// List volumes.
    Ls {
        /// Names only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove volumes.
    Rm {
        /// The volumes.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Clients of berthd's services.
pub struct Clients {
    ns: String,
    containers: ContainersClient<Channel>,
    tasks: TasksClient<Channel>,
    images: ImagesClient<Channel>,
    ch: Channel,
}

/// Parses `--since`: RFC 3339, seconds since the epoch, or a duration ago
/// (`90s`, `10m`, `2h`).
pub fn parse_since(s: &str, now_secs: i64) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Some(ns) = berth_rules::time::parse_rfc3339(s) {
        return Ok(ns / 1_000_000_000);
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let mul = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("invalid time {s:?}")),
    };
    let n: i64 = num.parse().map_err(|_| format!("invalid time {s:?}"))?;
    Ok(now_secs - n * mul)
}

/// Parses `-v`: `/host:/ctr[:ro|rw]` or `NAME:/ctr[:ro|rw]`.
pub fn parse_volume(s: &str) -> Result<pb::MountSpec, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, ro) = match parts.as_slice() {
        [d] => return Err(format!("volume {d:?}: give SOURCE:DESTINATION")),
        [s, d] => (*s, *d, false),
        [s, d, "ro"] => (*s, *d, true),
        [s, d, "rw"] => (*s, *d, false),
        _ => return Err(format!("invalid volume {s:?}: SOURCE:DESTINATION[:ro]")),
    };
    if !dst.starts_with('/') {
        return Err(format!("volume {s:?}: the destination must be absolute"));
    }
    Ok(pb::MountSpec {
        kind: if src.starts_with('/') {
            "bind"
        } else {
            "volume"
        }
        .into(),
        source: src.into(),
        destination: dst.into(),
        read_only: ro,
    })
}

fn now_secs() -> i64 {
    berth_rules::time::now_secs() as i64
}

fn rfc3339(t: &prost_types::Timestamp) -> String {
    let nanos = u32::try_from(t.nanos).unwrap_or(0);
    berth_rules::time::format(t.seconds, nanos, berth_rules::time::Fraction::Nanos)
}

/// The signal number for the API, from a name or number.
pub fn parse_signal(s: &str) -> Result<u32, String> {
    berth_rules::signal::parse(s)
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("invalid signal {s:?}"))
}

fn status_text(c: &pb::Container, now: u64) -> String {
    let since = |t: &Option<prost_types::Timestamp>| {
        let s = t.as_ref().map(|t| t.seconds as u64).unwrap_or(now);
        ago(s, now)
    };
    let up = |t: &Option<prost_types::Timestamp>| since(t).trim_end_matches(" ago").to_string();
    match c.status() {
        pb::TaskStatus::Running => format!("Up {}", up(&c.started_at)),
        pb::TaskStatus::Paused => format!("Up {} (Paused)", up(&c.started_at)),
        pb::TaskStatus::Created => "Created".into(),
        pb::TaskStatus::Stopped => format!("Exited ({})", c.exit_status),
        pb::TaskStatus::None if c.exited => {
            format!("Exited ({}) {}", c.exit_status, since(&c.exited_at))
        }
        pb::TaskStatus::None => "Created".into(),
    }
}

fn state_name(c: &pb::Container) -> &'static str {
    match c.status() {
        pb::TaskStatus::Running => "running",
        pb::TaskStatus::Paused => "paused",
        pb::TaskStatus::Created => "created",
        pb::TaskStatus::Stopped => "exited",
        pb::TaskStatus::None if c.exited => "exited",
        pb::TaskStatus::None => "created",
    }
}

/// Port mappings as docker's inspect shows them: `{"80/tcp": [{"HostIp", "HostPort"}]}`.
fn ports_json(ports: &[pb::PortMapping]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for p in ports {
        let e = m
            .entry(format!("{}/{}", p.container_port, p.protocol))
            .or_insert_with(|| serde_json::json!([]));
        if let Some(list) = e.as_array_mut() {
            list.push(
                serde_json::json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()}),
            );
        }
    }
    serde_json::Value::Object(m)
}

/// `0.0.0.0:8080->80/tcp, ...` for `ps`.
fn ports_text(c: &pb::Container) -> String {
    c.published
        .iter()
        .map(|p| {
            // Ports past 65535 never come from berthd; shown as the error says.
            berth_rules::port::PortMapping::from_wire(
                &p.host_ip,
                p.host_port,
                p.container_port,
                &p.protocol,
            )
            .map_or_else(|e| e.to_string(), |m| m.display())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `inspect` form of a container.
fn inspect_json(c: &pb::Container) -> serde_json::Value {
    let t = |t: &Option<prost_types::Timestamp>| t.as_ref().map(rfc3339);
    let spec: serde_json::Value = serde_json::from_str(&c.spec).unwrap_or_default();
    serde_json::json!({
        "Id": c.id,
        "Name": c.id,
        "Image": c.image,
        "Created": t(&c.created),
        "State": {
            "Status": state_name(c),
            "Running": matches!(c.status(), pb::TaskStatus::Running | pb::TaskStatus::Paused),
            "Paused": c.status() == pb::TaskStatus::Paused,
            "Pid": c.pid,
            "ExitCode": c.exit_status,
            "StartedAt": t(&c.started_at),
            "FinishedAt": t(&c.exited_at),
        },
        "Config": {
            "Tty": c.tty,
            "OpenStdin": c.stdin,
            "Cmd": spec["process"]["args"],
            "Env": spec["process"]["env"],
            "WorkingDir": spec["process"]["cwd"],
            "Labels": c.labels,
        },
        "HostConfig": {
            "AutoRemove": c.auto_remove, "NetworkMode": c.network, "Runtime": c.runtime,
            "PortBindings": ports_json(&c.ports),
        },
        "NetworkSettings": {
            "IPAddress": c.ip_addresses.iter().find(|a| !a.contains(':')).cloned().unwrap_or_default(),
            "IPAddresses": c.ip_addresses,
            "Gateway": c.gateway,
            "Ports": ports_json(&c.published),
        },
        "Mounts": c.mounts.iter().map(|m| serde_json::json!({
            "Type": m.kind, "Source": m.source, "Destination": m.destination, "RW": !m.read_only,
        })).collect::<Vec<_>>(),
        "LogPath": c.log_path,
        "Snapshot": c.snapshot,
        "Spec": spec,
    })
}

impl Clients {
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

    fn req<T>(&self, m: T) -> tonic::Request<T> {
        request(&self.ns, m)
    }

    async fn get(&mut self, id: &str) -> anyhow::Result<pb::Container> {
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
    async fn ensure_image(&mut self, image: &str) -> anyhow::Result<()> {
        let r = self.req(ipb::GetImageRequest { name: image.into() });
        match self.images.get(r).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => {
                eprintln!("Unable to find image '{image}' locally");
                let ns = self.ns.clone();
                super::pull(
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

    async fn create(&mut self, a: &CreateArgs, auto_remove: bool) -> anyhow::Result<pb::Container> {
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
                crate::network::PortMapping::parse(p).map(|p| pb::PortMapping {
                    host_ip: p.host_ip,
                    host_port: p.host_port.into(),
                    container_port: p.container_port.into(),
                    protocol: p.protocol,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed(125, e.to_string()))?;
        let image = crate::images::normalize(&a.image).map_err(|e| failed(125, e.to_string()))?;
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
        };
        let r = self.req(req);
        self.containers
            .create(r)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| status_err("create container", s))
    }

    async fn create_task(&mut self, id: &str) -> anyhow::Result<()> {
        let r = self.req(pb::CreateTaskRequest {
            container_id: id.into(),
        });
        self.tasks.create(r).await.map_err(|s| {
            let m = s.message().to_string();
            failed(start_failure_code(&m), format!("start container {id}: {m}"))
        })?;
        Ok(())
    }

    async fn start_task(&mut self, id: &str, exec_id: &str) -> anyhow::Result<()> {
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

    async fn wait(&mut self, id: &str, exec_id: &str) -> anyhow::Result<u32> {
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

    async fn kill(&mut self, id: &str, signal: u32, all: bool) -> Result<(), tonic::Status> {
        let r = self.req(pb::KillRequest {
            container_id: id.into(),
            exec_id: String::new(),
            signal,
            all,
        });
        self.tasks.kill(r).await.map(drop)
    }

    async fn remove(&mut self, id: &str, force: bool) -> anyhow::Result<()> {
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

    /// Attaches to a process, starts it (unless `start` is false), pumps
    /// stdio until it ends; returns whether the user detached.
    #[allow(clippy::too_many_arguments)]
    async fn attach_and_run(
        &mut self,
        id: &str,
        exec_id: &str,
        tty: bool,
        stdin: bool,
        start: bool,
        detach_keys: &str,
    ) -> anyhow::Result<bool> {
        let mut keys = tty::DetachKeys::parse(detach_keys).map_err(|e| failed(125, e))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(16);
        tx.send(pb::AttachRequest {
            msg: Some(pb::attach_request::Msg::Start(pb::AttachStart {
                container_id: id.into(),
                exec_id: exec_id.into(),
                stdout: true,
                stderr: true,
            })),
        })
        .await
        .ok();
        let r = self.req(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut out = self
            .tasks
            .attach(r)
            .await
            .map_err(|s| status_err(&format!("attach to {id}"), s))?
            .into_inner();
        let raw = if tty && stdin {
            tty::RawMode::stdin()
        } else {
            None
        };
        let send_size = |tx: &tokio::sync::mpsc::Sender<pb::AttachRequest>| {
            if let Some((w, h)) = tty::size(1).or_else(|| tty::size(0)) {
                let _ = tx.try_send(pb::AttachRequest {
                    msg: Some(pb::attach_request::Msg::Resize(pb::ResizeRequest {
                        container_id: id.into(),
                        exec_id: exec_id.into(),
                        width: w as u32,
                        height: h as u32,
                    })),
                });
            }
        };
        if tty {
            send_size(&tx);
        }
        if start {
            if let Err(e) = self.start_task(id, exec_id).await {
                drop(raw);
                return Err(e);
            }
        }
        let (detach_tx, mut detach_rx) = tokio::sync::mpsc::channel::<()>(1);
        if stdin {
            let tx = tx.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut input = tokio::io::stdin();
                let mut buf = vec![0u8; 8192];
                loop {
                    let n = match input.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            let _ = tx
                                .send(pb::AttachRequest {
                                    msg: Some(pb::attach_request::Msg::CloseStdin(true)),
                                })
                                .await;
                            return;
                        }
                        Ok(n) => n,
                    };
                    let (data, detach) = if tty {
                        keys.feed(&buf[..n])
                    } else {
                        (buf[..n].to_vec(), false)
                    };
                    if !data.is_empty()
                        && tx
                            .send(pb::AttachRequest {
                                msg: Some(pb::attach_request::Msg::Stdin(data)),
                            })
                            .await
                            .is_err()
                    {
                        return;
                    }
                    if detach {
                        let _ = detach_tx.send(()).await;
                        return;
                    }
                }
            });
        }
        // Resizes while attached, and (without a terminal) signals forwarded
        // to the container, as docker's sig-proxy does.
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut winch = signal(SignalKind::window_change()).ok();
            let tx2 = tx.clone();
            let (cid, eid) = (id.to_string(), exec_id.to_string());
            if tty {
                tokio::spawn(async move {
                    while let Some(w) = winch.as_mut() {
                        if w.recv().await.is_none() {
                            return;
                        }
                        if let Some((c, r)) = tty::size(1).or_else(|| tty::size(0)) {
                            let _ = tx2
                                .send(pb::AttachRequest {
                                    msg: Some(pb::attach_request::Msg::Resize(pb::ResizeRequest {
                                        container_id: cid.clone(),
                                        exec_id: eid.clone(),
                                        width: c as u32,
                                        height: r as u32,
                                    })),
                                })
                                .await;
                        }
                    }
                });
            } else if exec_id.is_empty() {
                let mut tasks = self.tasks.clone();
                let ns = self.ns.clone();
                let cid = id.to_string();
                for kind in [
                    SignalKind::interrupt(),
                    SignalKind::terminate(),
                    SignalKind::hangup(),
                    SignalKind::quit(),
                    SignalKind::user_defined1(),
                    SignalKind::user_defined2(),
                ] {
                    let Ok(mut s) = signal(kind) else { continue };
                    let mut tasks = tasks.clone();
                    let (ns, cid) = (ns.clone(), cid.clone());
                    tokio::spawn(async move {
                        while s.recv().await.is_some() {
                            let _ = tasks
                                .kill(request(
                                    &ns,
                                    pb::KillRequest {
                                        container_id: cid.clone(),
                                        exec_id: String::new(),
                                        signal: kind.as_raw_value() as u32,
                                        all: false,
                                    },
                                ))
                                .await;
                        }
                    });
                }
                let _ = &mut tasks;
            }
        }
        drop(tx);
        let mut stdout = std::io::stdout();
        let mut stderr = std::io::stderr();
        loop {
            tokio::select! {
                m = out.message() => match m {
                    Ok(Some(o)) => {
                        if o.stream == pb::StreamKind::Stderr as i32 {
                            let _ = stderr.write_all(&o.data);
                            let _ = stderr.flush();
                        } else {
                            let _ = stdout.write_all(&o.data);
                            let _ = stdout.flush();
                        }
                    }
                    Ok(None) => break,
                    Err(s) => {
                        drop(raw);
                        return Err(status_err(&format!("attach to {id}"), s));
                    }
                },
                Some(()) = detach_rx.recv() => {
                    drop(raw);
                    eprintln!("\r\nberthctl: detached from {id}\r");
                    return Ok(true);
                }
            }
        }
        drop(raw);
        Ok(false)
    }

    /// `pause` (freeze) or `unpause` each container, printing its id.
    async fn freeze_all(&mut self, ids: &[String], freeze: bool) -> anyhow::Result<u8> {
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

    async fn stop(&mut self, id: &str, secs: u64) -> anyhow::Result<()> {
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

fn print_rows(head: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}   ", width = w[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Runs a container command; the exit status.
pub async fn run(ch: Channel, ns: &str, cmd: ContainerCmd) -> anyhow::Result<u8> {
    let mut c = Clients::new(ch, ns);
    match cmd {
        ContainerCmd::Run {
            create,
            detach,
            rm,
            detach_keys,
        } => {
            let ctr = c.create(&create, rm && detach).await?;
            let id = ctr.id.clone();
            if let Err(e) = c.create_task(&id).await {
                if rm {
                    let _ = c.remove(&id, true).await;
                }
                return Err(e);
            }
            if detach {
                if let Err(e) = c.start_task(&id, "").await {
                    if rm {
                        let _ = c.remove(&id, true).await;
                    }
                    return Err(e);
                }
                println!("{id}");
                return Ok(0);
            }
            let detached = match c
                .attach_and_run(&id, "", create.tty, create.interactive, true, &detach_keys)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    if rm {
                        let _ = c.remove(&id, true).await;
                    }
                    return Err(e);
                }
            };
            if detached {
                return Ok(0);
            }
            let status = c.wait(&id, "").await?;
            if rm {
                c.remove(&id, true).await?;
            }
            Ok(status.min(255) as u8)
        }
        ContainerCmd::Create { create } => {
            let ctr = c.create(&create, false).await?;
            println!("{}", ctr.id);
            Ok(0)
        }
        ContainerCmd::Start {
            attach,
            interactive,
            detach_keys,
            containers,
        } => {
            if (attach || interactive) && containers.len() > 1 {
                return Err(failed(
                    125,
                    "you cannot start and attach multiple containers at once",
                ));
            }
            for id in &containers {
                let ctr = c.get(id).await?;
                if matches!(
                    ctr.status(),
                    pb::TaskStatus::Running | pb::TaskStatus::Paused
                ) {
                    if !attach {
                        println!("{id}");
                    }
                    continue;
                }
                if ctr.status() == pb::TaskStatus::None {
                    c.create_task(id).await?;
                }
                if attach || interactive {
                    if c.attach_and_run(
                        id,
                        "",
                        ctr.tty,
                        interactive && ctr.stdin,
                        true,
                        &detach_keys,
                    )
                    .await?
                    {
                        return Ok(0);
                    }
                    return Ok(c.wait(id, "").await?.min(255) as u8);
                }
                c.start_task(id, "").await?;
                println!("{id}");
            }
            Ok(0)
        }
        ContainerCmd::Ps { all, quiet, format } => {
            let r = c.req(pb::ListContainersRequest::default());
            let list: Vec<pb::Container> = c
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
                .collect();
            if quiet {
                for x in &list {
                    println!("{}", x.id);
                }
                return Ok(0);
            }
            if format == "json" {
                let v: Vec<_> = list.iter().map(inspect_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            let now = now_secs() as u64;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|x| {
                    let spec: serde_json::Value = serde_json::from_str(&x.spec).unwrap_or_default();
                    let cmd: Vec<String> =
                        serde_json::from_value(spec["process"]["args"].clone()).unwrap_or_default();
                    let mut cmd = cmd.join(" ");
                    if cmd.chars().count() > 20 {
                        cmd = cmd.chars().take(19).collect::<String>() + "…";
                    }
                    vec![
                        x.id.clone(),
                        x.image.clone(),
                        format!("\"{cmd}\""),
                        ago(
                            x.created.as_ref().map(|t| t.seconds as u64).unwrap_or(now),
                            now,
                        ),
                        status_text(x, now),
                        ports_text(x),
                        x.id.clone(),
                    ]
                })
                .collect();
            print_rows(
                &[
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES",
                ],
                &rows,
            );
            Ok(0)
        }
        ContainerCmd::Logs {
            follow,
            tail,
            since,
            timestamps,
            container,
        } => {
            let tail = if tail == "all" {
                -1
            } else {
                tail.parse::<i64>()
                    .map_err(|_| failed(125, format!("invalid --tail {tail:?}")))?
            };
            let since = match since {
                Some(s) => parse_since(&s, now_secs()).map_err(|e| failed(125, e))?,
                None => 0,
            };
            let r = c.req(pb::LogsRequest {
                container_id: container.clone(),
                follow,
                tail,
                since,
            });
            let mut s = c
                .tasks
                .logs(r)
                .await
                .map_err(|s| match s.code() {
                    Code::NotFound => failed(1, format!("no such container: {container}")),
                    _ => status_err("logs", s),
                })?
                .into_inner();
            let mut stdout = std::io::stdout();
            let mut stderr = std::io::stderr();
            while let Some(l) = s.message().await.map_err(|s| status_err("logs", s))? {
                let w: &mut dyn Write = if l.stream == pb::StreamKind::Stderr as i32 {
                    &mut stderr
                } else {
                    &mut stdout
                };
                if timestamps {
                    if let Some(t) = &l.time {
                        let _ = write!(w, "{} ", rfc3339(t));
                    }
                }
                let _ = w.write_all(&l.data);
                let _ = w.flush();
            }
            Ok(0)
        }
        ContainerCmd::Exec {
            interactive,
            tty,
            detach,
            process,
            privileged,
            detach_keys,
            container,
            command,
        } => {
            let exec_id = format!("exec-{}", &berth_rules::id::random()[..12]);
            let r = c.req(pb::ExecRequest {
                container_id: container.clone(),
                exec_id: exec_id.clone(),
                args: command,
                env: process.env(),
                workdir: process.workdir.unwrap_or_default(),
                user: process.user.unwrap_or_default(),
                tty,
                stdin: interactive,
                privileged,
            });
            c.tasks.exec(r).await.map_err(|s| match s.code() {
                Code::NotFound => failed(1, format!("no such container: {container}")),
                _ => status_err(&format!("exec in {container}"), s),
            })?;
            let cleanup = |mut tasks: TasksClient<Channel>,
                           ns: String,
                           cid: String,
                           eid: String| async move {
                let _ = tasks
                    .delete(request(
                        &ns,
                        pb::TaskRef {
                            container_id: cid,
                            exec_id: eid,
                        },
                    ))
                    .await;
            };
            if detach {
                c.start_task(&container, &exec_id).await?;
                return Ok(0);
            }
            let r = c
                .attach_and_run(&container, &exec_id, tty, interactive, true, &detach_keys)
                .await;
            let detached = match r {
                Ok(d) => d,
                Err(e) => {
                    cleanup(
                        c.tasks.clone(),
                        c.ns.clone(),
                        container.clone(),
                        exec_id.clone(),
                    )
                    .await;
                    return Err(e);
                }
            };
            if detached {
                return Ok(0);
            }
            let status = c.wait(&container, &exec_id).await?;
            cleanup(c.tasks.clone(), c.ns.clone(), container, exec_id).await;
            Ok(status.min(255) as u8)
        }
        ContainerCmd::Stop { time, containers } => {
            for id in &containers {
                c.stop(id, time).await?;
                println!("{id}");
            }
            Ok(0)
        }
        ContainerCmd::Kill { signal, containers } => {
            let sig = parse_signal(&signal).map_err(|e| failed(125, e))?;
            for id in &containers {
                c.get(id).await?;
                c.kill(id, sig, false)
                    .await
                    .map_err(|s| status_err(&format!("kill {id}"), s))?;
                println!("{id}");
            }
            Ok(0)
        }
        ContainerCmd::Rm { force, containers } => {
            for id in &containers {
                c.remove(id, force).await?;
                println!("{id}");
            }
            Ok(0)
        }
        ContainerCmd::Pause { containers } => c.freeze_all(&containers, true).await,
        ContainerCmd::Unpause { containers } => c.freeze_all(&containers, false).await,
        ContainerCmd::Inspect { containers } => {
            let mut out = Vec::new();
            for id in &containers {
                out.push(inspect_json(&c.get(id).await?));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
        ContainerCmd::Stats {
            no_stream,
            containers,
        } => {
            let ids: Vec<String> = if containers.is_empty() {
                let r = c.req(pb::ListContainersRequest::default());
                c.containers
                    .list(r)
                    .await
                    .map_err(|s| status_err("list containers", s))?
                    .into_inner()
                    .containers
                    .into_iter()
                    .filter(|x| {
                        matches!(x.status(), pb::TaskStatus::Running | pb::TaskStatus::Paused)
                    })
                    .map(|x| x.id)
                    .collect()
            } else {
                containers
            };
            loop {
                let sample = |c: &mut Clients, ids: Vec<String>| {
                    let mut tasks = c.tasks.clone();
                    let ns = c.ns.clone();
                    async move {
                        let mut out = Vec::new();
                        for id in ids {
                            let s = tasks
                                .stats(request(
                                    &ns,
                                    pb::TaskRef {
                                        container_id: id.clone(),
                                        exec_id: String::new(),
                                    },
                                ))
                                .await
                                .map_err(|s| status_err(&format!("stats {id}"), s))?
                                .into_inner();
                            out.push((id, s, std::time::Instant::now()));
                        }
                        Ok::<_, anyhow::Error>(out)
                    }
                };
                let a = sample(&mut c, ids.clone()).await?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let b = sample(&mut c, ids.clone()).await?;
                let rows: Vec<Vec<String>> = a
                    .iter()
                    .zip(&b)
                    .map(|((id, s1, t1), (_, s2, t2))| {
                        let dt = t2.duration_since(*t1).as_nanos().max(1) as f64;
                        let cpu =
                            s2.cpu_usage_ns.saturating_sub(s1.cpu_usage_ns) as f64 / dt * 100.0;
                        let limit =
                            if s2.memory_limit_bytes == 0 || s2.memory_limit_bytes >= 1 << 62 {
                                "unlimited".to_string()
                            } else {
                                super::human_size(s2.memory_limit_bytes)
                            };
                        vec![
                            id.clone(),
                            format!("{cpu:.2}%"),
                            format!("{} / {limit}", super::human_size(s2.memory_usage_bytes)),
                            s2.pids_current.to_string(),
                        ]
                    })
                    .collect();
                print_rows(&["CONTAINER", "CPU %", "MEM USAGE / LIMIT", "PIDS"], &rows);
                if no_stream {
                    return Ok(0);
                }
            }
        }
        ContainerCmd::Events { filter, format } => {
            let mut req = pb::SubscribeRequest::default();
            for f in &filter {
                match f.split_once('=') {
                    Some(("container", v)) => req.containers.push(v.into()),
                    Some(("topic", v)) => req.topics.push(v.into()),
                    Some(("event", v)) => {
                        req.topics.push(format!("/tasks/{v}"));
                        req.topics.push(format!("/containers/{v}"));
                        req.topics.push(format!("/images/{v}"));
                    }
                    _ => {
                        return Err(failed(
                            125,
                            format!("invalid filter {f:?} (container=, topic=, event=)"),
                        ))
                    }
                }
            }
            let mut ev = EventsClient::new(c.ch.clone());
            let r = c.req(req);
            let mut s = ev
                .subscribe(r)
                .await
                .map_err(|s| status_err("events", s))?
                .into_inner();
            let mut stdout = std::io::stdout();
            while let Some(e) = s.message().await.map_err(|s| status_err("events", s))? {
                let t = e.timestamp.as_ref().map(rfc3339).unwrap_or_default();
                if format == "json" {
                    let v = serde_json::json!({
                        "time": t, "namespace": e.namespace, "topic": e.topic, "id": e.id,
                        "exec_id": e.exec_id, "pid": e.pid, "exit_status": e.exit_status,
                    });
                    let _ = writeln!(stdout, "{v}");
                } else {
                    let mut line = format!("{t} {} {} {}", e.topic, e.namespace, e.id);
                    if !e.exec_id.is_empty() {
                        line.push_str(&format!(" exec={}", e.exec_id));
                    }
                    if e.pid != 0 {
                        line.push_str(&format!(" pid={}", e.pid));
                    }
                    if e.topic == "/tasks/exit" || e.topic == "/tasks/delete" {
                        line.push_str(&format!(" status={}", e.exit_status));
                    }
                    let _ = writeln!(stdout, "{line}");
                }
                let _ = stdout.flush();
            }
            Ok(0)
        }
        ContainerCmd::Volume { cmd } => {
            let mut v = VolumesClient::new(c.ch.clone());
            match cmd {
                VolumeCmd::Create { name } => {
                    let r = c.req(pb::VolumeRef { name });
                    let vol = v
                        .create(r)
                        .await
                        .map_err(|s| status_err("volume create", s))?
                        .into_inner();
                    println!("{}", vol.name);
                }
                VolumeCmd::Ls { quiet } => {
                    let r = c.req(pb::Empty {});
                    let list = v
                        .list(r)
                        .await
                        .map_err(|s| status_err("volume ls", s))?
                        .into_inner()
                        .volumes;
                    if quiet {
                        for x in &list {
                            println!("{}", x.name);
                        }
                    } else {
                        let rows: Vec<Vec<String>> = list
                            .iter()
                            .map(|x| vec![x.name.clone(), x.mountpoint.clone()])
                            .collect();
                        print_rows(&["VOLUME NAME", "MOUNTPOINT"], &rows);
                    }
                }
                VolumeCmd::Rm { names } => {
                    for name in names {
                        let r = c.req(pb::VolumeRef { name: name.clone() });
                        v.remove(r)
                            .await
                            .map_err(|s| status_err(&format!("volume rm {name}"), s))?;
                        println!("{name}");
                    }
                }
            }
            Ok(0)
        }
        ContainerCmd::Network { cmd } => network(c, cmd).await,
    }
}

fn network_json(n: &pb::Network) -> serde_json::Value {
    let config: serde_json::Value = serde_json::from_str(&n.config).unwrap_or_default();
    serde_json::json!({
        "Name": n.name,
        "Driver": n.driver,
        "IPAM": {"Config": n.subnets.iter().map(|s| serde_json::json!({"Subnet": s})).collect::<Vec<_>>()},
        "Containers": n.containers.iter().map(|e| serde_json::json!({
            "Namespace": e.namespace, "Name": e.id, "IPAddresses": e.ip_addresses,
        })).collect::<Vec<_>>(),
        "ConfigFile": n.file,
        "Config": config,
    })
}

async fn network(c: Clients, cmd: NetworkCmd) -> anyhow::Result<u8> {
    let mut n = NetworksClient::new(c.ch.clone());
    match cmd {
        NetworkCmd::Create {
            name,
            subnet,
            gateway,
            driver,
        } => {
            if driver != "bridge" {
                return Err(failed(
                    125,
                    format!("network driver {driver:?}: only bridge (write a CNI conflist into berthd's conf dir for others)"),
                ));
            }
            let r = c.req(pb::CreateNetworkRequest {
                name,
                subnet: subnet.unwrap_or_default(),
                gateway: gateway.unwrap_or_default(),
            });
            let net = n
                .create(r)
                .await
                .map_err(|s| status_err("network create", s))?
                .into_inner();
            println!("{}", net.name);
        }
        NetworkCmd::Ls { quiet } => {
            let list = n
                .list(c.req(pb::Empty {}))
                .await
                .map_err(|s| status_err("network ls", s))?
                .into_inner()
                .networks;
            // none and host are modes, listed as docker lists them.
            let mut rows: Vec<Vec<String>> = list
                .iter()
                .map(|x| vec![x.name.clone(), x.driver.clone(), x.subnets.join(",")])
                .collect();
            rows.push(vec!["host".into(), "host".into(), String::new()]);
            rows.push(vec!["none".into(), "null".into(), String::new()]);
            if quiet {
                for r in &rows {
                    println!("{}", r[0]);
                }
            } else {
                print_rows(&["NAME", "DRIVER", "SUBNET"], &rows);
            }
        }
        NetworkCmd::Rm { names } => {
            for name in names {
                let r = c.req(pb::NetworkRef { name: name.clone() });
                n.remove(r)
                    .await
                    .map_err(|s| status_err(&format!("network rm {name}"), s))?;
                println!("{name}");
            }
        }
        NetworkCmd::Inspect { names } => {
            let mut out = Vec::new();
            for name in names {
                let r = c.req(pb::NetworkRef { name: name.clone() });
                let net = n
                    .get(r)
                    .await
                    .map_err(|s| status_err(&format!("network inspect {name}"), s))?
                    .into_inner();
                out.push(network_json(&net));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(0)
}

/// `commit CONTAINER IMAGE`.
pub async fn commit(
    ch: Channel,
    ns: &str,
    container: &str,
    image: &str,
    message: &str,
) -> anyhow::Result<u8> {
    let mut c = Clients::new(ch, ns);
    let r = c.req(pb::CommitRequest {
        container_id: container.into(),
        image: image.into(),
        comment: message.into(),
    });
    let out = c
        .tasks
        .commit(r)
        .await
        .map_err(|s| status_err(&format!("commit {container}"), s))?
        .into_inner();
    println!("{}", out.digest);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_as_docker() {
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("sigkill").unwrap(), 9);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("FOO").is_err());
        assert_eq!(parse_since("10m", 1000).unwrap(), 400);
        assert_eq!(parse_since("1970-01-01T00:01:00Z", 0).unwrap(), 60);
        let v = parse_volume("/data:/d:ro").unwrap();
        assert_eq!((v.kind.as_str(), v.read_only), ("bind", true));
        assert_eq!(parse_volume("cache:/c").unwrap().kind, "volume");
        assert!(parse_volume("cache:rel").is_err());
        assert_eq!(
            start_failure_code("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(start_failure_code("boom"), 125);
        let t = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        };
        assert_eq!(rfc3339(&t), "2023-11-14T22:13:20.000000005Z");
    }
}
