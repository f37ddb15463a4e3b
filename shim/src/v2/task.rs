//! containerd's Task service, served by the shim's own machinery: each call
//! becomes the `berth.shim.v1` call that does the same thing (the runtime
//! driven, stdio and exits tracked, events published), and its answer
//! containerd's. What only containerd has is handled here: its stdio FIFOs,
//! the runc options of Create (BinaryName, Root), cgroup metrics as
//! containerd's types, the shim's shutdown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_proto::shim::shim_server::Shim;
use berth_proto::shim::{self as pb};
use protobuf::well_known_types::any::Any;
use protobuf::{Message, MessageField};
use tokio::sync::watch;
use tonic::Request;

use super::proto::{
    empty::Empty, metrics_v1 as m1, metrics_v2 as m2, task, task_ttrpc, task_types,
};
use super::publish::{timestamp, CreateFacts, Publisher};
use crate::reaper::Reaper;
use crate::runtime::Runtime;
use crate::service::Service;

/// Where runtime state goes when the runc options name no root.
const DEFAULT_ROOT: &str = "/run/containerd/berth";

type TResult<T> = ttrpc::Result<T>;

/// A ttrpc error from the shim's gRPC one, with the matching code.
fn status(s: tonic::Status) -> ttrpc::Error {
    use ttrpc::Code;
    let code = match s.code() {
        tonic::Code::NotFound => Code::NOT_FOUND,
        tonic::Code::AlreadyExists => Code::ALREADY_EXISTS,
        tonic::Code::InvalidArgument => Code::INVALID_ARGUMENT,
        tonic::Code::FailedPrecondition => Code::FAILED_PRECONDITION,
        tonic::Code::Unimplemented => Code::UNIMPLEMENTED,
        tonic::Code::DeadlineExceeded => Code::DEADLINE_EXCEEDED,
        _ => Code::UNKNOWN,
    };
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, s.message()))
}

fn invalid(msg: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(ttrpc::Code::INVALID_ARGUMENT, msg))
}

/// The Task service of one shim.
pub struct Task {
    ns: String,
    /// The socket this shim serves (recorded for `delete`).
    address: PathBuf,
    reaper: Arc<Reaper>,
    console_dir: PathBuf,
    /// The containers this shim serves, by id (a pod's share one shim).
    svcs: Mutex<HashMap<String, Service>>,
    facts: Arc<Mutex<HashMap<String, CreateFacts>>>,
    publisher: Arc<Publisher>,
    /// Set when Shutdown is accepted.
    pub shutdown: watch::Sender<bool>,
}

impl Task {
    /// The service for namespace `ns`, serving at `address`.
    pub fn new(
        ns: String,
        address: PathBuf,
        reaper: Arc<Reaper>,
        console_dir: PathBuf,
        publisher: Arc<Publisher>,
    ) -> Task {
        Task {
            ns,
            address,
            reaper,
            console_dir,
            svcs: Mutex::default(),
            facts: Arc::default(),
            publisher,
            shutdown: watch::channel(false).0,
        }
    }

    fn svc(&self, id: &str) -> TResult<Service> {
        self.svcs
            .lock()
            .expect("svcs")
            .get(id)
            .cloned()
            .ok_or_else(|| {
                ttrpc::Error::RpcStatus(ttrpc::get_status(
                    ttrpc::Code::NOT_FOUND,
                    format!("container {id} is not served by this shim"),
                ))
            })
    }
}

fn berth_status(s: i32) -> task_types::Status {
    match pb::Status::try_from(s).unwrap_or(pb::Status::Unknown) {
        pb::Status::Unknown => task_types::Status::UNKNOWN,
        pb::Status::Created => task_types::Status::CREATED,
        pb::Status::Running => task_types::Status::RUNNING,
        pb::Status::Stopped => task_types::Status::STOPPED,
        pb::Status::Paused => task_types::Status::PAUSED,
    }
}

/// Writes what `delete` needs to clean up after this shim.
fn write_shim_json(
    bundle: &Path,
    id: &str,
    address: &Path,
    runtime: &Path,
    root: &Path,
    console_dir: &Path,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let v = serde_json::json!({
        "id": id,
        "address": address,
        "runtime": runtime,
        "runtime_root": root,
        "console_dir": console_dir,
    });
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(bundle.join("shim.json"))?
        .write_all(v.to_string().as_bytes())
}

#[async_trait::async_trait]
impl task_ttrpc::Task for Task {
    async fn create(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::CreateTaskRequest,
    ) -> TResult<task::CreateTaskResponse> {
        if !r.checkpoint.is_empty() {
            return Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                ttrpc::Code::UNIMPLEMENTED,
                "restoring from a checkpoint is not supported by berth",
            )));
        }
        super::stdio::check(&r.stdin, &r.stdout, &r.stderr).map_err(invalid)?;
        if self.svcs.lock().expect("svcs").contains_key(&r.id) {
            return Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                ttrpc::Code::ALREADY_EXISTS,
                format!("container {} already exists", r.id),
            )));
        }
        let opts = super::options::from_any(r.options.as_ref()).map_err(invalid)?;
        // The default `berth` beside this binary, else on PATH; a name
        // given, as given or on PATH: as berth-shim's own --runtime.
        let given = (!opts.binary_name.is_empty()).then(|| PathBuf::from(&opts.binary_name));
        let binary = crate::daemon::resolve_runtime(given).map_err(invalid)?;
        let root = if opts.root.is_empty() {
            Path::new(DEFAULT_ROOT).join(&self.ns)
        } else {
            PathBuf::from(&opts.root).join(&self.ns)
        };
        let bundle = PathBuf::from(&r.bundle);
        write_shim_json(
            &bundle,
            &r.id,
            &self.address,
            &binary,
            &root,
            &self.console_dir,
        )
        .map_err(|e| invalid(format!("write {}/shim.json: {e}", bundle.display())))?;
        let mut global = Vec::new();
        if opts.systemd_cgroup {
            // The runtime says whether it can (berth: not yet, and why).
            global.push("--systemd-cgroup".to_string());
        }
        let mut create = Vec::new();
        if opts.no_pivot_root {
            create.push("--no-pivot".to_string());
        }
        if opts.no_new_keyring {
            create.push("--no-new-keyring".to_string());
        }
        let runtime = Runtime::new(
            binary,
            Some(root),
            bundle.join("runtime.log"),
            self.reaper.clone(),
        )
        .with_flags(global, create);
        let svc = Service::new(
            r.id.clone(),
            bundle.clone(),
            runtime,
            self.reaper.clone(),
            self.console_dir.clone(),
        );
        self.facts.lock().expect("facts").insert(
            r.id.clone(),
            CreateFacts {
                rootfs: r.rootfs.clone(),
                io: (
                    r.stdin.clone(),
                    r.stdout.clone(),
                    r.stderr.clone(),
                    r.terminal,
                ),
            },
        );
        self.publisher
            .forward_all(svc.subscribe_events(), self.facts.clone());
        let created = svc
            .create(Request::new(pb::CreateRequest {
                id: r.id.clone(),
                bundle: r.bundle.clone(),
                terminal: r.terminal,
                stdin: !r.stdin.is_empty(),
                rootfs: r
                    .rootfs
                    .iter()
                    .map(|m| pb::Mount {
                        r#type: m.type_.clone(),
                        source: m.source.clone(),
                        options: m.options.clone(),
                    })
                    .collect(),
                // The shim's own record of the output, kept small: the
                // client's FIFOs are where output goes.
                log_path: bundle.join("output.log").display().to_string(),
                log_max_size: 1 << 20,
                log_max_files: 1,
            }))
            .await
            .map_err(status)?
            .into_inner();
        let p = svc.process(&r.id, "").map_err(status)?;
        super::stdio::wire(&p, &r.stdin, &r.stdout, &r.stderr).map_err(invalid)?;
        self.svcs.lock().expect("svcs").insert(r.id.clone(), svc);
        Ok(task::CreateTaskResponse {
            pid: created.pid,
            ..Default::default()
        })
    }

    async fn start(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::StartRequest,
    ) -> TResult<task::StartResponse> {
        let s = self
            .svc(&r.id)?
            .start(Request::new(pb::StartRequest {
                id: r.id,
                exec_id: r.exec_id,
            }))
            .await
            .map_err(status)?
            .into_inner();
        Ok(task::StartResponse {
            pid: s.pid,
            ..Default::default()
        })
    }

    async fn state(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::StateRequest,
    ) -> TResult<task::StateResponse> {
        let s = self
            .svc(&r.id)?
            .state(Request::new(pb::StateRequest {
                id: r.id.clone(),
                exec_id: r.exec_id.clone(),
            }))
            .await
            .map_err(status)?
            .into_inner();
        let io = if r.exec_id.is_empty() {
            self.facts
                .lock()
                .expect("facts")
                .get(&r.id)
                .map(|f| f.io.clone())
        } else {
            None
        };
        let (stdin, stdout, stderr, _) = io.unwrap_or_default();
        Ok(task::StateResponse {
            id: if r.exec_id.is_empty() {
                r.id
            } else {
                r.exec_id.clone()
            },
            bundle: s.bundle,
            pid: s.pid,
            status: berth_status(s.status).into(),
            stdin,
            stdout,
            stderr,
            terminal: s.terminal,
            exit_status: s.exit_status,
            exited_at: timestamp(s.exited_at.as_ref()),
            exec_id: r.exec_id,
            ..Default::default()
        })
    }

    async fn delete(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::DeleteRequest,
    ) -> TResult<task::DeleteResponse> {
        let d = self
            .svc(&r.id)?
            .delete(Request::new(pb::DeleteRequest {
                id: r.id.clone(),
                exec_id: r.exec_id.clone(),
            }))
            .await
            .map_err(status)?
            .into_inner();
        if r.exec_id.is_empty() {
            self.svcs.lock().expect("svcs").remove(&r.id);
            self.facts.lock().expect("facts").remove(&r.id);
        }
        Ok(task::DeleteResponse {
            pid: d.pid,
            exit_status: d.exit_status,
            exited_at: timestamp(d.exited_at.as_ref()),
            ..Default::default()
        })
    }

    async fn pids(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::PidsRequest,
    ) -> TResult<task::PidsResponse> {
        let p = self
            .svc(&r.id)?
            .pids(Request::new(pb::PidsRequest { id: r.id }))
            .await
            .map_err(status)?
            .into_inner();
        Ok(task::PidsResponse {
            processes: p
                .processes
                .into_iter()
                .map(|i| task_types::ProcessInfo {
                    pid: i.pid,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    async fn pause(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::PauseRequest,
    ) -> TResult<Empty> {
        self.svc(&r.id)?
            .pause(Request::new(pb::PauseRequest { id: r.id }))
            .await
            .map_err(status)?;
        Ok(Empty::new())
    }

    async fn resume(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::ResumeRequest,
    ) -> TResult<Empty> {
        self.svc(&r.id)?
            .resume(Request::new(pb::ResumeRequest { id: r.id }))
            .await
            .map_err(status)?;
        Ok(Empty::new())
    }

    async fn checkpoint(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        _r: task::CheckpointTaskRequest,
    ) -> TResult<Empty> {
        Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
            ttrpc::Code::UNIMPLEMENTED,
            "checkpointing is not supported by berth (it has no CRIU integration)",
        )))
    }

    async fn kill(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::KillRequest,
    ) -> TResult<Empty> {
        self.svc(&r.id)?
            .kill(Request::new(pb::KillRequest {
                id: r.id,
                exec_id: r.exec_id,
                signal: r.signal,
                all: r.all,
            }))
            .await
            .map_err(status)?;
        Ok(Empty::new())
    }

    async fn exec(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::ExecProcessRequest,
    ) -> TResult<Empty> {
        super::stdio::check(&r.stdin, &r.stdout, &r.stderr).map_err(invalid)?;
        let spec = r
            .spec
            .as_ref()
            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
            .ok_or_else(|| invalid("exec needs a process spec"))?;
        let svc = self.svc(&r.id)?;
        svc.exec(Request::new(pb::ExecRequest {
            id: r.id.clone(),
            exec_id: r.exec_id.clone(),
            terminal: r.terminal,
            stdin: !r.stdin.is_empty(),
            spec,
        }))
        .await
        .map_err(status)?;
        let p = svc.process(&r.id, &r.exec_id).map_err(status)?;
        super::stdio::wire(&p, &r.stdin, &r.stdout, &r.stderr).map_err(invalid)?;
        Ok(Empty::new())
    }

    async fn resize_pty(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::ResizePtyRequest,
    ) -> TResult<Empty> {
        self.svc(&r.id)?
            .resize_pty(Request::new(pb::ResizePtyRequest {
                id: r.id,
                exec_id: r.exec_id,
                width: r.width,
                height: r.height,
            }))
            .await
            .map_err(status)?;
        Ok(Empty::new())
    }

    async fn close_io(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::CloseIORequest,
    ) -> TResult<Empty> {
        self.svc(&r.id)?
            .close_io(Request::new(pb::CloseIoRequest {
                id: r.id,
                exec_id: r.exec_id,
                stdin: r.stdin,
            }))
            .await
            .map_err(status)?;
        Ok(Empty::new())
    }

    async fn update(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::UpdateTaskRequest,
    ) -> TResult<Empty> {
        let resources = r
            .resources
            .as_ref()
            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
            .ok_or_else(|| invalid("update needs resources"))?;
        self.svc(&r.id)?
            .update(Request::new(pb::UpdateRequest {
                id: r.id,
                resources,
            }))
            .await
            .map_err(status)?;
        Ok(Empty::new())
    }

    async fn wait(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::WaitRequest,
    ) -> TResult<task::WaitResponse> {
        let w = self
            .svc(&r.id)?
            .wait(Request::new(pb::WaitRequest {
                id: r.id,
                exec_id: r.exec_id,
            }))
            .await
            .map_err(status)?
            .into_inner();
        Ok(task::WaitResponse {
            exit_status: w.exit_status,
            exited_at: timestamp(w.exited_at.as_ref()),
            ..Default::default()
        })
    }

    async fn stats(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::StatsRequest,
    ) -> TResult<task::StatsResponse> {
        let s = self
            .svc(&r.id)?
            .stats(Request::new(pb::StatsRequest { id: r.id }))
            .await
            .map_err(status)?
            .into_inner();
        let (type_url, value) = metrics(&s).map_err(|e| invalid(format!("encode metrics: {e}")))?;
        Ok(task::StatsResponse {
            stats: MessageField::some(Any {
                type_url,
                value,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn connect(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        r: task::ConnectRequest,
    ) -> TResult<task::ConnectResponse> {
        let task_pid = match self.svc(&r.id) {
            Ok(svc) => svc
                .connect(Request::new(pb::ConnectRequest { id: r.id }))
                .await
                .map(|c| c.into_inner().task_pid)
                .unwrap_or(0),
            Err(_) => 0,
        };
        Ok(task::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: berth_proto::VERSION.into(),
            ..Default::default()
        })
    }

    async fn shutdown(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        _r: task::ShutdownRequest,
    ) -> TResult<Empty> {
        // containerd asks after each container's delete; the shim goes when
        // it serves none (a pod's last container).
        if self.svcs.lock().expect("svcs").is_empty() {
            let _ = self.shutdown.send(true);
        }
        Ok(Empty::new())
    }
}

/// The container's stats as containerd's cgroup metrics: v2's on a
/// unified hierarchy, else v1's.
pub fn metrics(s: &pb::StatsResponse) -> Result<(String, Vec<u8>), protobuf::Error> {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let m = m2::Metrics {
            pids: MessageField::some(m2::PidsStat {
                current: s.pids_current,
                limit: s.pids_limit,
                ..Default::default()
            }),
            cpu: MessageField::some(m2::CPUStat {
                usage_usec: s.cpu_usage_ns / 1000,
                user_usec: s.cpu_user_ns / 1000,
                system_usec: s.cpu_kernel_ns / 1000,
                ..Default::default()
            }),
            memory: MessageField::some(m2::MemoryStat {
                usage: s.memory_usage_bytes,
                usage_limit: s.memory_limit_bytes,
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok((
            "io.containerd.cgroups.v2.Metrics".into(),
            m.write_to_bytes()?,
        ))
    } else {
        let m = m1::Metrics {
            pids: MessageField::some(m1::PidsStat {
                current: s.pids_current,
                limit: s.pids_limit,
                ..Default::default()
            }),
            cpu: MessageField::some(m1::CPUStat {
                usage: MessageField::some(m1::CPUUsage {
                    total: s.cpu_usage_ns,
                    kernel: s.cpu_kernel_ns,
                    user: s.cpu_user_ns,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            memory: MessageField::some(m1::MemoryStat {
                usage: MessageField::some(m1::MemoryEntry {
                    limit: s.memory_limit_bytes,
                    usage: s.memory_usage_bytes,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok((
            "io.containerd.cgroups.v1.Metrics".into(),
            m.write_to_bytes()?,
        ))
    }
}
