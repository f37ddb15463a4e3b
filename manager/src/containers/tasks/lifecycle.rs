//! The task lifecycle after launch: start, wait, kill, pause and resume,
//! update, stats and pids, and deleting tasks and containers.

use crate::containers::records::Exit;
use crate::store::images::ImageError;
use berth_proto::shim::{self as shimpb};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

use super::*;

impl Manager {
    /// Starts the init or an exec process.
    pub async fn start(&self, ns: &str, id: &str, exec_id: &str) -> Result<u32, TaskError> {
        let t = self.running_task(ns, id)?;
        // Recorded before the start: a fast init's exit, recorded as soon
        // as it happens, never comes before its start.
        let before = if exec_id.is_empty() {
            let now = berth_rules::time::now_ms();
            let mut old = None;
            self.records()
                .modify(ns, id, |c| old = c.started_ms.replace(now))?;
            Some(old)
        } else {
            None
        };
        let r = t
            .client
            .clone()
            .start(shimpb::StartRequest {
                id: id.into(),
                exec_id: exec_id.into(),
            })
            .await;
        match r {
            Ok(r) => Ok(r.into_inner().pid),
            Err(status) => {
                if let Some(old) = before {
                    let _ = self.records().modify(ns, id, |c| c.started_ms = old);
                }
                Err(shim_err(id)(status))
            }
        }
    }

    /// Waits for the init (or an exec process) to exit.
    pub async fn wait(&self, ns: &str, id: &str, exec_id: &str) -> Result<Exit, TaskError> {
        self.records().get(ns, id)?;
        let Some(t) = self.task(ns, id) else {
            // Read after the task lookup: an exit recorded meanwhile is seen.
            let c = self.records().get(ns, id)?;
            return c.exit.filter(|_| exec_id.is_empty()).ok_or_else(|| {
                TaskError::State(format!("container {id} has no task to wait for"))
            });
        };
        if !exec_id.is_empty() {
            let r = t
                .client
                .clone()
                .wait(shimpb::WaitRequest {
                    id: id.into(),
                    exec_id: exec_id.into(),
                })
                .await
                .map_err(shim_err(id))?
                .into_inner();
            return Ok(exit_of(r.exit_status, r.exited_at.as_ref()));
        }
        let mut rx = t.exit.subscribe();
        let exit = rx
            .wait_for(|e| e.is_some())
            .await
            .map_err(|_| TaskError::State(format!("container {id}: task went away")))?;
        Ok(exit.expect("waited for Some"))
    }

    /// Signals the init (`all`: every process) or an exec process.
    pub async fn kill(
        &self,
        ns: &str,
        id: &str,
        exec_id: &str,
        signal: u32,
        all: bool,
    ) -> Result<(), TaskError> {
        let t = self.running_task(ns, id)?;
        t.client
            .clone()
            .kill(shimpb::KillRequest {
                id: id.into(),
                exec_id: exec_id.into(),
                signal,
                all,
            })
            .await
            .map_err(shim_err(id))?;
        Ok(())
    }

    /// SIGKILL to every process of the container; errors mean nothing is left.
    pub(super) async fn kill_all(&self, id: &str, task: &Task) {
        let _ = task
            .client
            .clone()
            .kill(shimpb::KillRequest {
                id: id.into(),
                exec_id: String::new(),
                signal: libc::SIGKILL as u32,
                all: true,
            })
            .await;
    }

    /// Deletes an exited exec process, or the container's stopped task.
    pub async fn delete_task(&self, ns: &str, id: &str, exec_id: &str) -> Result<Exit, TaskError> {
        let c = self.records().get(ns, id)?;
        if !exec_id.is_empty() {
            let t = self.running_task(ns, id)?;
            let r = t
                .client
                .clone()
                .delete(shimpb::DeleteRequest {
                    id: id.into(),
                    exec_id: exec_id.into(),
                })
                .await
                .map_err(shim_err(id))?
                .into_inner();
            return Ok(exit_of(r.exit_status, r.exited_at.as_ref()));
        }
        let _g = self.lock(ns, id).await;
        match self.task(ns, id) {
            None => c
                .exit
                .ok_or_else(|| TaskError::State(format!("container {id} has no task"))),
            Some(t) => match self.status(ns, id).await.0 {
                st @ (Status::Created | Status::Stopped | Status::None) => {
                    if st == Status::Created {
                        // Never started: kill it, then delete the task.
                        self.kill_all(id, &t).await;
                    }
                    let exit = self.wait_exit(&t, Duration::from_secs(10)).await;
                    self.finish(ns, id, &t).await;
                    Ok(exit)
                }
                _ => Err(TaskError::State(format!(
                    "container {id} is running: stop it first"
                ))),
            },
        }
    }

    /// The task's exit, waiting up to `limit` (then 137: killed).
    pub(super) async fn wait_exit(&self, t: &Arc<Task>, limit: Duration) -> Exit {
        let mut rx = t.exit.subscribe();
        let got = match tokio::time::timeout(limit, rx.wait_for(|e| e.is_some())).await {
            Ok(Ok(e)) => *e,
            _ => None,
        };
        got.unwrap_or(Exit {
            oom_killed: t.oom.load(std::sync::atomic::Ordering::Relaxed),
            status: 137,
            at_ms: berth_rules::time::now_ms(),
        })
    }

    /// Removes a container: refused while its task runs unless `force`
    /// (which kills it first). Its snapshot goes too unless `keep_snapshot`.
    pub async fn delete(
        &self,
        ns: &str,
        id: &str,
        force: bool,
        keep_snapshot: bool,
    ) -> Result<(), TaskError> {
        let _g = self.lock(ns, id).await;
        self.records().get(ns, id)?;
        if let Some(t) = self.task(ns, id) {
            let st = self.status(ns, id).await.0;
            if st != Status::Stopped && !force {
                return Err(TaskError::State(format!(
                    "container {id} is running: stop it first, or force the removal (rm -f)"
                )));
            }
            if st == Status::Paused {
                let _ = t
                    .client
                    .clone()
                    .resume(shimpb::ResumeRequest { id: id.into() })
                    .await;
            }
            self.kill_all(id, &t).await;
            let exit = self.wait_exit(&t, Duration::from_secs(10)).await;
            self.record_exit(ns, id, &t, exit);
            self.finish(ns, id, &t).await;
        }
        self.remove_container(ns, id, keep_snapshot).await
    }

    /// Removes a container without a task. Call with its lock held.
    pub(super) async fn remove_container(
        &self,
        ns: &str,
        id: &str,
        keep_snapshot: bool,
    ) -> Result<(), TaskError> {
        let c = self.records().get(ns, id)?;
        if !keep_snapshot {
            let images = self.images.clone();
            let (ns2, snap) = (ns.to_string(), c.snapshot.clone());
            tokio::task::spawn_blocking(move || match images.snapshots.remove(&ns2, &snap) {
                Err(crate::store::snapshot::SnapshotError::NotFound(_)) => Ok(()),
                r => r,
            })
            .await
            .map_err(|e| TaskError::Invalid(format!("worker: {e}")))?
            .map_err(ImageError::from)?;
        }
        let dir = self.data_dir(ns, id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("remove", &dir)(e));
            }
            _ => {}
        }
        let _ = std::fs::remove_dir_all(self.bundle(ns, id));
        self.records().remove(ns, id)?;
        let _ = self
            .images
            .lease_delete(ns, &super::create::image_lease(id));
        self.locks.lock().unwrap().remove(&key(ns, id));
        self.publish(ns, "/containers/delete", id, "", 0, 0);
        Ok(())
    }

    /// Freezes the container.
    pub async fn pause(&self, ns: &str, id: &str) -> Result<(), TaskError> {
        let t = self.running_task(ns, id)?;
        t.client
            .clone()
            .pause(shimpb::PauseRequest { id: id.into() })
            .await
            .map_err(shim_err(id))?;
        Ok(())
    }

    /// Thaws the container.
    pub async fn resume(&self, ns: &str, id: &str) -> Result<(), TaskError> {
        let t = self.running_task(ns, id)?;
        t.client
            .clone()
            .resume(shimpb::ResumeRequest { id: id.into() })
            .await
            .map_err(shim_err(id))?;
        Ok(())
    }

    /// New limits (OCI `linux.resources` JSON) for the running container;
    /// the stored spec follows, so a restart keeps them.
    pub async fn update(&self, ns: &str, id: &str, resources: &str) -> Result<(), TaskError> {
        let v: Value = serde_json::from_str(resources)
            .map_err(|e| TaskError::Invalid(format!("resources: {e}")))?;
        let t = self.running_task(ns, id)?;
        t.client
            .clone()
            .update(shimpb::UpdateRequest {
                id: id.into(),
                resources: resources.into(),
            })
            .await
            .map_err(shim_err(id))?;
        self.records().modify(ns, id, |c| {
            if let (Some(old), Some(new)) =
                (c.spec["linux"]["resources"].as_object_mut(), v.as_object())
            {
                for (k, val) in new {
                    old.insert(k.clone(), val.clone());
                }
            }
        })?;
        Ok(())
    }

    /// Opens the container's log anew at its path (after it was moved away).
    pub async fn reopen_log(&self, ns: &str, id: &str) -> Result<(), TaskError> {
        let t = self.running_task(ns, id)?;
        t.client
            .clone()
            .reopen_log(shimpb::ReopenLogRequest {
                id: id.into(),
                exec_id: String::new(),
            })
            .await
            .map_err(shim_err(id))?;
        Ok(())
    }

    /// The container's resource usage.
    pub async fn stats(&self, ns: &str, id: &str) -> Result<shimpb::StatsResponse, TaskError> {
        let t = self.running_task(ns, id)?;
        Ok(t.client
            .clone()
            .stats(shimpb::StatsRequest { id: id.into() })
            .await
            .map_err(shim_err(id))?
            .into_inner())
    }

    /// The container's processes.
    pub async fn pids(&self, ns: &str, id: &str) -> Result<Vec<u32>, TaskError> {
        let t = self.running_task(ns, id)?;
        Ok(t.client
            .clone()
            .pids(shimpb::PidsRequest { id: id.into() })
            .await
            .map_err(shim_err(id))?
            .into_inner()
            .processes
            .into_iter()
            .map(|p| p.pid)
            .collect())
    }
}
