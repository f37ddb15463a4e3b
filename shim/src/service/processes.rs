//! The shim's processes: a container's init and its exec'd processes
//! launched through the runtime, watched until they exit, deleted.

use crate::io::ConsoleSocket;
use crate::log::LogWriter;
use crate::process::{self, Proc};
use crate::reaper::{self, Exit};
use crate::runtime::{Launch, RuntimeError};
use berth_proto::shim::{self as pb, event};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tonic::Status;

use super::*;

impl Inner {
    pub(super) fn check(&self, id: &str, exec_id: &str) -> Result<(), Status> {
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
    pub(super) fn with<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Container) -> Result<T, Status>,
    ) -> Result<T, Status> {
        match &mut *self.slot.lock().expect("slot") {
            Slot::Ready(c) => f(c),
            // A manager reconnecting mid-create waits for it, rather than
            // taking a container on its way as one that is not there.
            Slot::Creating => Err(Status::unavailable(format!(
                "container {id} is being created"
            ))),
            _ => Err(Status::not_found(format!("container {id} not found"))),
        }
    }

    pub(super) fn process(&self, id: &str, exec_id: &str) -> Result<Arc<Proc>, Status> {
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
    pub(super) fn console_path(&self) -> PathBuf {
        let n = self.console_seq.fetch_add(1, Ordering::Relaxed);
        self.console_dir.join(format!("c{n}.sock"))
    }

    /// Watches `p`'s exit: once reaped and its output drained, and not before
    /// its start is published, records it, publishes it and wakes waiters.
    /// For the init, `oom` is its memory cgroup and whether an OOM kill was
    /// published: one not yet published is, before the exit, so a client
    /// knows why the init died when it learns that it did.
    pub(super) fn watch_exit(
        self: &Arc<Self>,
        p: Arc<Proc>,
        w: reaper::ExitWatch,
        oom: Option<(crate::oom::MemoryCgroup, Arc<AtomicBool>)>,
    ) {
        let inner = self.clone();
        tokio::spawn(async move {
            let exit = reaper::exited(w).await.unwrap_or(Exit {
                status: 255,
                at: SystemTime::now(),
            });
            p.drain_output(DRAIN).await;
            let _started = p.start_lock.lock().await;
            if let Some((cg, published)) = &oom {
                if !published.load(Ordering::Relaxed)
                    && crate::oom::kills(cg).is_some_and(|n| n > 0)
                {
                    published.store(true, Ordering::Relaxed);
                    inner
                        .events
                        .publish(&inner.id, "", event::Event::Oom(pb::TaskOom {}));
                }
            }
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
    pub(super) async fn launch<F, Fut>(
        &self,
        p: &Arc<Proc>,
        pid_file: &Path,
        run: F,
    ) -> Result<u32, Status>
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
    pub(super) fn create_paths(&self, r: &pb::CreateRequest) -> Result<PathBuf, Status> {
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

    pub(super) async fn create(self: &Arc<Self>, r: pb::CreateRequest) -> Result<u32, Status> {
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
        let cg = crate::oom::memory_cgroup(pid);
        let published = Arc::new(AtomicBool::new(false));
        self.watch_exit(init.clone(), w, cg.clone().map(|c| (c, published.clone())));
        let oom_killed = published.clone();
        let oom = cg.map(|cg| {
            let inner = self.clone();
            tokio::spawn(async move {
                let _ = crate::oom::watch(cg, || {
                    published.store(true, Ordering::Relaxed);
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
            oom_killed,
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

    pub(super) async fn start(self: &Arc<Self>, id: &str, exec_id: &str) -> Result<u32, Status> {
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
        self.watch_exit(p.clone(), w, None);
        self.events.publish(
            id,
            exec_id,
            event::Event::ExecStarted(pb::TaskExecStarted { pid }),
        );
        Ok(pid)
    }

    pub(super) async fn delete(
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
