//! The gRPC service: one container and its exec processes, driven through the
//! runtime binary. Requests name the container by id and a process by exec
//! id ("" is the init); both are validated before anything touches a path.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_proto::shim::shim_server::Shim;
use berth_proto::shim::{self as pb, attach_request, event};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::events::Events;
use crate::io::ConsoleSocket;
use crate::log::LogWriter;
use crate::process::{self, Proc};
use crate::reaper::{self, Exit, Reaper};
use crate::runtime::{Launch, Runtime, RuntimeError};

/// How long a process's output may keep flowing after it exited before its
/// exit is published anyway.
const DRAIN: Duration = Duration::from_secs(2);

/// How long the runtime may take to send a pty master.
const CONSOLE_WAIT: Duration = Duration::from_secs(10);

/// Checks a container or exec id: docker's name rule (`berth_rules::id`),
/// so it is safe in a file name.
pub fn valid_id(id: &str) -> bool {
    berth_rules::id::is_name(id)
}

/// The container as created.
struct Container {
    init: Arc<Proc>,
    execs: HashMap<String, Arc<Proc>>,
    paused: bool,
    mounted: bool,
    oom: Option<tokio::task::AbortHandle>,
}

enum Slot {
    Empty,
    Creating,
    Ready(Container),
    Deleted,
}

/// What the service and its background tasks share.
pub struct Inner {
    id: String,
    bundle: PathBuf,
    runtime: Runtime,
    reaper: Arc<Reaper>,
    events: Events,
    slot: Mutex<Slot>,
    console_dir: PathBuf,
    console_seq: AtomicU64,
    /// Set when Shutdown is accepted.
    pub shutdown: watch::Sender<bool>,
}

/// The `Shim` gRPC service.
#[derive(Clone)]
pub struct Service(pub Arc<Inner>);

impl Service {
    /// A service for container `id` in `bundle`, running `runtime`; console
    /// sockets are made in `console_dir` (private to the shim).
    pub fn new(
        id: String,
        bundle: PathBuf,
        runtime: Runtime,
        reaper: Arc<Reaper>,
        console_dir: PathBuf,
    ) -> Service {
        Service(Arc::new(Inner {
            id,
            bundle,
            runtime,
            reaper,
            events: Events::default(),
            slot: Mutex::new(Slot::Empty),
            console_dir,
            console_seq: AtomicU64::new(0),
            shutdown: watch::channel(false).0,
        }))
    }
}

fn runtime_status(e: RuntimeError) -> Status {
    if e.is_not_found() {
        Status::not_found(e.to_string())
    } else if e.to_string().contains("already exists") {
        Status::already_exists(e.to_string())
    } else {
        Status::internal(e.to_string())
    }
}

fn io_status(what: &str, e: std::io::Error) -> Status {
    Status::internal(format!("{what}: {e}"))
}

fn ts(t: SystemTime) -> Option<prost_types::Timestamp> {
    Some(t.into())
}

/// Writes `data` to `<bundle>/<name>` (0600, never through a symlink).
fn write_private(bundle: &Path, name: &str, data: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let p = bundle.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)?;
    f.write_all(data)?;
    Ok(p)
}

/// Reads the pid a runtime wrote to `path` (never through a symlink).
fn read_pid(path: &Path) -> std::io::Result<u32> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .read_to_string(&mut s)?;
    s.trim().parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("pid file {}: {s:?}", path.display()),
        )
    })
}

impl Inner {
    fn check(&self, id: &str, exec_id: &str) -> Result<(), Status> {
        if !valid_id(id) {
            return Err(Status::invalid_argument(format!(
                "invalid container id {id:?}"
            )));
        }
        if !exec_id.is_empty() && !valid_id(exec_id) {
            return Err(Status::invalid_argument(format!(
                "invalid exec id {exec_id:?}"
            )));
        }
        if id != self.id {
            return Err(Status::not_found(format!(
                "container {id} not found: this shim serves {}",
                self.id
            )));
        }
        Ok(())
    }

    /// Runs `f` on the created container.
    fn with<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Container) -> Result<T, Status>,
    ) -> Result<T, Status> {
        match &mut *self.slot.lock().expect("slot") {
            Slot::Ready(c) => f(c),
            _ => Err(Status::not_found(format!("container {id} not found"))),
        }
    }

    fn process(&self, id: &str, exec_id: &str) -> Result<Arc<Proc>, Status> {
        self.check(id, exec_id)?;
        self.with(id, |c| {
            if exec_id.is_empty() {
                Ok(c.init.clone())
            } else {
                c.execs.get(exec_id).cloned().ok_or_else(|| {
                    Status::not_found(format!("exec {exec_id} in container {id} not found"))
                })
            }
        })
    }

    /// A fresh console socket path; numbered, as an exec id may be too long
    /// for a socket address.
    fn console_path(&self) -> PathBuf {
        let n = self.console_seq.fetch_add(1, Ordering::Relaxed);
        self.console_dir.join(format!("c{n}.sock"))
    }

    /// Watches `p`'s exit: once reaped and its output drained, and not before
    /// its start is published, records it, publishes it and wakes waiters.
    fn watch_exit(self: &Arc<Self>, p: Arc<Proc>, w: reaper::ExitWatch) {
        let inner = self.clone();
        tokio::spawn(async move {
            let exit = reaper::exited(w).await.unwrap_or(Exit {
                status: 255,
                at: SystemTime::now(),
            });
            p.drain_output(DRAIN).await;
            let _started = p.start_lock.lock().await;
            p.set_exited(exit);
            inner.events.publish(
                &inner.id,
                &p.exec_id,
                event::Event::Exit(pb::TaskExit {
                    pid: p.facts().pid,
                    exit_status: exit.status,
                    exited_at: ts(exit.at),
                }),
            );
        });
    }

    /// Runs a runtime command that creates a process (`create` or `exec`),
    /// with the console socket when it has a terminal; returns its pid.
    async fn launch<F, Fut>(&self, p: &Arc<Proc>, pid_file: &Path, run: F) -> Result<u32, Status>
    where
        F: FnOnce(Launch) -> Fut,
        Fut: std::future::Future<Output = Result<(), RuntimeError>>,
    {
        let console_path = self.console_path();
        let _ = std::fs::remove_file(&console_path);
        let console = if p.terminal {
            Some(ConsoleSocket::bind(&console_path).map_err(|e| io_status("console socket", e))?)
        } else {
            None
        };
        let _ = std::fs::remove_file(pid_file);
        let launch = Launch {
            pid_file: pid_file.to_path_buf(),
            console_socket: console.as_ref().map(|_| console_path.clone()),
            stdio: p.take_child_stdio(),
        };
        let master = async {
            match &console {
                Some(c) => Some(c.receive_master().await),
                None => None,
            }
        };
        // The runtime sends the master before it exits; accept while it runs.
        let (ran, master) = tokio::join!(run(launch), async {
            tokio::time::timeout(CONSOLE_WAIT, master).await
        });
        let _ = std::fs::remove_file(&console_path);
        ran.map_err(runtime_status)?;
        let pid = read_pid(pid_file).map_err(|e| io_status("read pid file", e))?;
        if p.terminal {
            let master = match master {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(io_status("receive pty master", e)),
                _ => return Err(Status::internal("the runtime sent no pty master")),
            };
            p.attach_master(master)
                .map_err(|e| io_status("pty master", e))?;
        }
        Ok(pid)
    }

    /// Checks a Create request's bundle and log path; returns the log path.
    fn create_paths(&self, r: &pb::CreateRequest) -> Result<PathBuf, Status> {
        let bundle = Path::new(&r.bundle);
        if bundle.canonicalize().ok().as_deref() != Some(self.bundle.as_path()) {
            return Err(Status::invalid_argument(format!(
                "bundle {} is not this shim's bundle {}",
                r.bundle,
                self.bundle.display()
            )));
        }
        if r.log_path.is_empty() {
            Ok(self.bundle.join("container.log"))
        } else if Path::new(&r.log_path).is_absolute() {
            Ok(PathBuf::from(&r.log_path))
        } else {
            Err(Status::invalid_argument(format!(
                "log_path {} is not absolute",
                r.log_path
            )))
        }
    }

    async fn create(self: &Arc<Self>, r: pb::CreateRequest) -> Result<u32, Status> {
        let log_path = self.create_paths(&r)?;
        let mut mounted = false;
        let result = async {
            if !r.rootfs.is_empty() {
                let target = self.bundle.join("rootfs");
                for m in &r.rootfs {
                    crate::mount::mount_on(&target, &m.r#type, &m.source, &m.options)
                        .map_err(|e| Status::internal(e.to_string()))?;
                    mounted = true;
                }
            }
            let log = LogWriter::open(&log_path, r.log_max_size, r.log_max_files)
                .map_err(|e| io_status(&format!("open log {}", log_path.display()), e))?;
            let init = Proc::new("", r.terminal, r.stdin, log_path.clone(), log)
                .map_err(|e| io_status("container stdio", e))?;
            let pid_file = self.bundle.join("init.pid");
            let pid = self
                .launch(&init, &pid_file, |l| {
                    self.runtime.create(&self.id, &self.bundle, l)
                })
                .await?;
            Ok::<_, Status>((init, pid))
        }
        .await;
        let (init, pid) = match result {
            Ok(v) => v,
            Err(e) => {
                if mounted {
                    let _ = crate::mount::unmount_all(&self.bundle.join("rootfs"));
                }
                *self.slot.lock().expect("slot") = Slot::Empty;
                return Err(e);
            }
        };
        let w = self.reaper.subscribe(pid as i32);
        init.set_pid(pid, w.clone());
        self.watch_exit(init.clone(), w);
        let oom = crate::oom::memory_cgroup(pid).map(|cg| {
            let inner = self.clone();
            tokio::spawn(async move {
                let _ = crate::oom::watch(cg, || {
                    inner
                        .events
                        .publish(&inner.id, "", event::Event::Oom(pb::TaskOom {}))
                })
                .await;
            })
            .abort_handle()
        });
        *self.slot.lock().expect("slot") = Slot::Ready(Container {
            init,
            execs: HashMap::new(),
            paused: false,
            mounted,
            oom,
        });
        self.events.publish(
            &self.id,
            "",
            event::Event::Create(pb::TaskCreate {
                bundle: self.bundle.display().to_string(),
                pid,
            }),
        );
        Ok(pid)
    }

    async fn start(self: &Arc<Self>, id: &str, exec_id: &str) -> Result<u32, Status> {
        let p = self.process(id, exec_id)?;
        let _started = p.start_lock.lock().await;
        if p.facts().status != process::Status::Created {
            return Err(Status::failed_precondition(format!(
                "{} is not in the created state",
                if exec_id.is_empty() {
                    format!("container {id}")
                } else {
                    format!("exec {exec_id}")
                }
            )));
        }
        if exec_id.is_empty() {
            self.runtime.start(id).await.map_err(runtime_status)?;
            p.set_started();
            let pid = p.facts().pid;
            self.events
                .publish(id, "", event::Event::Start(pb::TaskStart { pid }));
            return Ok(pid);
        }
        let spec = self.bundle.join(format!("exec-{exec_id}.json"));
        let pid_file = self.bundle.join(format!("exec-{exec_id}.pid"));
        let launched = self
            .launch(&p, &pid_file, |l| self.runtime.exec(id, &spec, l))
            .await;
        let _ = std::fs::remove_file(&spec);
        let pid = match launched {
            Ok(pid) => pid,
            Err(e) => {
                // It never ran: a waiter learns so instead of waiting for ever.
                p.set_exited(Exit {
                    status: 255,
                    at: SystemTime::now(),
                });
                return Err(e);
            }
        };
        let w = self.reaper.subscribe(pid as i32);
        p.set_running(pid, w.clone());
        self.watch_exit(p.clone(), w);
        self.events.publish(
            id,
            exec_id,
            event::Event::ExecStarted(pb::TaskExecStarted { pid }),
        );
        Ok(pid)
    }

    async fn delete(
        self: &Arc<Self>,
        id: &str,
        exec_id: &str,
    ) -> Result<pb::DeleteResponse, Status> {
        let p = self.process(id, exec_id)?;
        let f = p.facts();
        let response = |f: process::Facts| {
            let exit = f.exit.unwrap_or(Exit {
                status: 255,
                at: SystemTime::now(),
            });
            pb::DeleteResponse {
                pid: f.pid,
                exit_status: exit.status,
                exited_at: ts(exit.at),
            }
        };
        if !exec_id.is_empty() {
            if f.status == process::Status::Running {
                return Err(Status::failed_precondition(format!(
                    "exec {exec_id} is running"
                )));
            }
            self.with(id, |c| {
                c.execs.remove(exec_id);
                Ok(())
            })?;
            let _ = std::fs::remove_file(self.bundle.join(format!("exec-{exec_id}.json")));
            let _ = std::fs::remove_file(self.bundle.join(format!("exec-{exec_id}.pid")));
            return Ok(response(f));
        }
        match f.status {
            process::Status::Running => {
                return Err(Status::failed_precondition(format!(
                    "container {id} is running: kill it first"
                )))
            }
            process::Status::Created => {
                // Never started: delete --force kills the waiting init.
                self.runtime
                    .delete(id, true)
                    .await
                    .map_err(runtime_status)?;
                let _ = tokio::time::timeout(Duration::from_secs(10), p.wait()).await;
            }
            process::Status::Stopped => match self.runtime.delete(id, false).await {
                Err(e) if !e.is_not_found() => return Err(runtime_status(e)),
                _ => {}
            },
        }
        let c = match std::mem::replace(&mut *self.slot.lock().expect("slot"), Slot::Deleted) {
            Slot::Ready(c) => c,
            other => {
                *self.slot.lock().expect("slot") = other;
                return Err(Status::not_found(format!("container {id} not found")));
            }
        };
        if let Some(oom) = &c.oom {
            oom.abort();
        }
        if c.mounted {
            crate::mount::unmount_all(&self.bundle.join("rootfs"))
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        let _ = std::fs::remove_file(self.bundle.join("init.pid"));
        let resp = response(p.facts());
        self.events.publish(
            id,
            "",
            event::Event::Delete(pb::TaskDelete {
                pid: resp.pid,
                exit_status: resp.exit_status,
                exited_at: resp.exited_at,
            }),
        );
        Ok(resp)
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Shim for Service {
    async fn connect(
        &self,
        r: Request<pb::ConnectRequest>,
    ) -> Result<Response<pb::ConnectResponse>, Status> {
        let r = r.into_inner();
        if !r.id.is_empty() {
            self.0.check(&r.id, "")?;
        }
        let task_pid = match &*self.0.slot.lock().expect("slot") {
            Slot::Ready(c) => c.init.facts().pid,
            _ => 0,
        };
        Ok(Response::new(pb::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: berth_proto::VERSION.into(),
        }))
    }

    async fn create(
        &self,
        r: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::CreateResponse>, Status> {
        let r = r.into_inner();
        self.0.check(&r.id, "")?;
        self.0.create_paths(&r)?;
        {
            let mut slot = self.0.slot.lock().expect("slot");
            match *slot {
                Slot::Empty => *slot = Slot::Creating,
                Slot::Deleted => {
                    return Err(Status::failed_precondition(format!(
                        "container {} was deleted: start a new shim",
                        r.id
                    )))
                }
                _ => {
                    return Err(Status::already_exists(format!(
                        "container {} already exists",
                        r.id
                    )))
                }
            }
        }
        let pid = self.0.create(r).await?;
        Ok(Response::new(pb::CreateResponse { pid }))
    }

    async fn start(
        &self,
        r: Request<pb::StartRequest>,
    ) -> Result<Response<pb::StartResponse>, Status> {
        let r = r.into_inner();
        let pid = self.0.start(&r.id, &r.exec_id).await?;
        Ok(Response::new(pb::StartResponse { pid }))
    }

    async fn state(
        &self,
        r: Request<pb::StateRequest>,
    ) -> Result<Response<pb::StateResponse>, Status> {
        let r = r.into_inner();
        let p = self.0.process(&r.id, &r.exec_id)?;
        let paused = self.0.with(&r.id, |c| Ok(c.paused))?;
        let f = p.facts();
        Ok(Response::new(pb::StateResponse {
            id: r.id,
            exec_id: r.exec_id,
            bundle: self.0.bundle.display().to_string(),
            pid: f.pid,
            status: p.api_status(paused) as i32,
            stdin: p.stdin,
            terminal: p.terminal,
            exit_status: f.exit.map_or(0, |e| e.status),
            exited_at: f.exit.and_then(|e| ts(e.at)),
            log_path: p.log_path.display().to_string(),
        }))
    }

    async fn kill(&self, r: Request<pb::KillRequest>) -> Result<Response<pb::Empty>, Status> {
        let r = r.into_inner();
        let p = self.0.process(&r.id, &r.exec_id)?;
        if r.signal == 0 || r.signal > 64 {
            return Err(Status::invalid_argument(format!(
                "invalid signal {}",
                r.signal
            )));
        }
        if r.exec_id.is_empty() {
            if p.is_reaped() && !r.all {
                return Err(Status::not_found(format!(
                    "container {}: process already finished",
                    r.id
                )));
            }
            self.0
                .runtime
                .kill(&r.id, r.signal, r.all)
                .await
                .map_err(runtime_status)?;
            return Ok(Response::new(pb::Empty {}));
        }
        let f = p.facts();
        if f.status != process::Status::Running || p.is_reaped() {
            return Err(Status::not_found(format!(
                "exec {}: process not running",
                r.exec_id
            )));
        }
        // Unreaped, so the pid is still this process: it cannot have been reused.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(f.pid as i32),
            nix::sys::signal::Signal::try_from(r.signal as i32)
                .map_err(|_| Status::invalid_argument(format!("invalid signal {}", r.signal)))?,
        )
        .map_err(|e| Status::internal(format!("kill exec {} (pid {}): {e}", r.exec_id, f.pid)))?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn wait(
        &self,
        r: Request<pb::WaitRequest>,
    ) -> Result<Response<pb::WaitResponse>, Status> {
        let r = r.into_inner();
        let p = self.0.process(&r.id, &r.exec_id)?;
        let exit = p
            .wait()
            .await
            .ok_or_else(|| Status::internal("the process's exit was lost"))?;
        Ok(Response::new(pb::WaitResponse {
            exit_status: exit.status,
            exited_at: ts(exit.at),
        }))
    }

    async fn exec(&self, r: Request<pb::ExecRequest>) -> Result<Response<pb::Empty>, Status> {
        let r = r.into_inner();
        if r.exec_id.is_empty() {
            return Err(Status::invalid_argument("exec id is empty"));
        }
        self.0.check(&r.id, &r.exec_id)?;
        let spec: serde_json::Value = serde_json::from_str(&r.spec)
            .map_err(|e| Status::invalid_argument(format!("exec {} spec: {e}", r.exec_id)))?;
        if spec["args"].as_array().is_none_or(Vec::is_empty) {
            return Err(Status::invalid_argument(format!(
                "exec {} spec: args is missing or empty",
                r.exec_id
            )));
        }
        if spec["terminal"].as_bool().unwrap_or(false) != r.terminal {
            return Err(Status::invalid_argument(format!(
                "exec {}: spec terminal and request terminal differ",
                r.exec_id
            )));
        }
        self.0.with(&r.id, |c| {
            if c.init.facts().status != process::Status::Running {
                return Err(Status::failed_precondition(format!(
                    "container {} is not running",
                    r.id
                )));
            }
            if c.execs.contains_key(&r.exec_id) {
                return Err(Status::already_exists(format!(
                    "exec {} already exists",
                    r.exec_id
                )));
            }
            Ok(())
        })?;
        write_private(
            &self.0.bundle,
            &format!("exec-{}.json", r.exec_id),
            r.spec.as_bytes(),
        )
        .map_err(|e| io_status("write exec spec", e))?;
        let log_path = self.0.bundle.join(format!("exec-{}.log", r.exec_id));
        let log = LogWriter::open(&log_path, 0, 1).map_err(|e| io_status("open exec log", e))?;
        let p = Proc::new(&r.exec_id, r.terminal, r.stdin, log_path, log)
            .map_err(|e| io_status("exec stdio", e))?;
        self.0.with(&r.id, |c| {
            if c.execs.contains_key(&r.exec_id) {
                return Err(Status::already_exists(format!(
                    "exec {} already exists",
                    r.exec_id
                )));
            }
            c.execs.insert(r.exec_id.clone(), p);
            Ok(())
        })?;
        self.0.events.publish(
            &r.id,
            &r.exec_id,
            event::Event::ExecAdded(pb::TaskExecAdded {}),
        );
        Ok(Response::new(pb::Empty {}))
    }

    async fn resize_pty(
        &self,
        r: Request<pb::ResizePtyRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = r.into_inner();
        let p = self.0.process(&r.id, &r.exec_id)?;
        let (rows, cols) = (u16::try_from(r.height), u16::try_from(r.width));
        let (Ok(rows), Ok(cols)) = (rows, cols) else {
            return Err(Status::invalid_argument("window size out of range"));
        };
        p.resize(rows, cols).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTTY) {
                Status::failed_precondition("the process has no terminal")
            } else {
                io_status("resize pty", e)
            }
        })?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn close_io(
        &self,
        r: Request<pb::CloseIoRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = r.into_inner();
        let p = self.0.process(&r.id, &r.exec_id)?;
        if r.stdin {
            p.close_stdin()
                .await
                .map_err(|e| io_status("close stdin", e))?;
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn pids(
        &self,
        r: Request<pb::PidsRequest>,
    ) -> Result<Response<pb::PidsResponse>, Status> {
        let r = r.into_inner();
        self.0.check(&r.id, "")?;
        let execs: HashMap<u32, String> = self.0.with(&r.id, |c| {
            Ok(c.execs
                .iter()
                .map(|(k, p)| (p.facts().pid, k.clone()))
                .collect())
        })?;
        let pids = self.0.runtime.ps(&r.id).await.map_err(runtime_status)?;
        let processes = pids
            .into_iter()
            .map(|pid| pb::ProcessInfo {
                pid,
                exec_id: execs.get(&pid).cloned().unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::PidsResponse { processes }))
    }

    async fn pause(&self, r: Request<pb::PauseRequest>) -> Result<Response<pb::Empty>, Status> {
        let id = r.into_inner().id;
        self.0.check(&id, "")?;
        self.0.with(&id, |_| Ok(()))?;
        self.0.runtime.pause(&id).await.map_err(runtime_status)?;
        self.0.with(&id, |c| {
            c.paused = true;
            Ok(())
        })?;
        self.0
            .events
            .publish(&id, "", event::Event::Paused(pb::TaskPaused {}));
        Ok(Response::new(pb::Empty {}))
    }

    async fn resume(&self, r: Request<pb::ResumeRequest>) -> Result<Response<pb::Empty>, Status> {
        let id = r.into_inner().id;
        self.0.check(&id, "")?;
        self.0.with(&id, |_| Ok(()))?;
        self.0.runtime.resume(&id).await.map_err(runtime_status)?;
        self.0.with(&id, |c| {
            c.paused = false;
            Ok(())
        })?;
        self.0
            .events
            .publish(&id, "", event::Event::Resumed(pb::TaskResumed {}));
        Ok(Response::new(pb::Empty {}))
    }

    async fn update(&self, r: Request<pb::UpdateRequest>) -> Result<Response<pb::Empty>, Status> {
        let r = r.into_inner();
        self.0.check(&r.id, "")?;
        self.0.with(&r.id, |_| Ok(()))?;
        let v: serde_json::Value = serde_json::from_str(&r.resources)
            .map_err(|e| Status::invalid_argument(format!("resources: {e}")))?;
        if !v.is_object() {
            return Err(Status::invalid_argument("resources: not a JSON object"));
        }
        let name = format!(
            ".update-{}.json",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let file = write_private(&self.0.bundle, &name, r.resources.as_bytes())
            .map_err(|e| io_status("write resources", e))?;
        let res = self.0.runtime.update(&r.id, &file).await;
        let _ = std::fs::remove_file(&file);
        res.map_err(runtime_status)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn stats(
        &self,
        r: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        let r = r.into_inner();
        self.0.check(&r.id, "")?;
        self.0.with(&r.id, |_| Ok(()))?;
        let v = self.0.runtime.stats(&r.id).await.map_err(runtime_status)?;
        let d = &v["data"];
        let n = |x: &serde_json::Value| x.as_u64().unwrap_or(0);
        Ok(Response::new(pb::StatsResponse {
            cpu_usage_ns: n(&d["cpu"]["usage"]["total"]),
            cpu_user_ns: n(&d["cpu"]["usage"]["user"]),
            cpu_kernel_ns: n(&d["cpu"]["usage"]["kernel"]),
            memory_usage_bytes: n(&d["memory"]["usage"]["usage"]),
            memory_limit_bytes: n(&d["memory"]["usage"]["limit"]),
            pids_current: n(&d["pids"]["current"]),
            pids_limit: n(&d["pids"]["limit"]),
            json: v.to_string(),
        }))
    }

    type AttachStream = BoxStream<pb::AttachResponse>;

    async fn attach(
        &self,
        r: Request<Streaming<pb::AttachRequest>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut input = r.into_inner();
        let start = match input.next().await {
            Some(Ok(pb::AttachRequest {
                msg: Some(attach_request::Msg::Start(s)),
            })) => s,
            Some(Err(e)) => return Err(e),
            _ => {
                return Err(Status::invalid_argument(
                    "the first attach message must be start",
                ))
            }
        };
        let p = self.0.process(&start.id, &start.exec_id)?;
        let rx = p.subscribe(start.stdout, start.stderr);
        // Stdin from the client, until it closes its side.
        tokio::spawn(async move {
            while let Some(Ok(m)) = input.next().await {
                let r = match m.msg {
                    Some(attach_request::Msg::Stdin(data)) => p.write_stdin(&data).await,
                    Some(attach_request::Msg::CloseStdin(true)) => p.close_stdin().await,
                    _ => Ok(()),
                };
                if r.is_err() {
                    break;
                }
            }
        });
        let stream: Self::AttachStream = match rx {
            Some(rx) => Box::pin(ReceiverStream::new(rx)),
            None => Box::pin(tokio_stream::empty()),
        };
        Ok(Response::new(stream))
    }

    async fn delete(
        &self,
        r: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = r.into_inner();
        Ok(Response::new(self.0.delete(&r.id, &r.exec_id).await?))
    }

    async fn shutdown(
        &self,
        r: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let id = r.into_inner().id;
        if !id.is_empty() {
            self.0.check(&id, "")?;
        }
        if matches!(
            *self.0.slot.lock().expect("slot"),
            Slot::Ready(_) | Slot::Creating
        ) {
            return Err(Status::failed_precondition(format!(
                "container {} still exists: delete it first",
                self.0.id
            )));
        }
        self.0.shutdown.send_replace(true);
        Ok(Response::new(pb::Empty {}))
    }

    type EventsStream = BoxStream<pb::Event>;

    async fn events(
        &self,
        _: Request<pb::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let mut sub = self.0.events.subscribe();
        let mut stopping = self.0.shutdown.subscribe();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                // The stream ends when the shim shuts down.
                let next = tokio::select! {
                    e = sub.recv() => e,
                    _ = stopping.wait_for(|s| *s) => return,
                };
                let item = match next {
                    Ok(e) => Ok(e),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Err(
                        Status::data_loss(format!("events stream fell {n} events behind")),
                    ),
                    Err(_) => return,
                };
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_id;

    #[test]
    fn ids_are_safe_file_names() {
        for ok in ["a", "c1", "my-container_1.2", &"x".repeat(128)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "-a",
            "a b",
            "a\0",
            &"x".repeat(129),
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
