//! The `berth.shim.v1` gRPC API over the processes: each call checks its
//! ids, then adapts to `Inner`.

use crate::log::LogWriter;
use crate::process::{self, Proc};
use berth_proto::shim::shim_server::Shim;
use berth_proto::shim::{self as pb, attach_request, event};
use std::collections::HashMap;
use std::pin::Pin;
use std::time::SystemTime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::*;

/// Runs a call that changes the container to its end even when its client
/// goes away meanwhile (a manager killed mid-call): tonic drops the call's
/// future then, which would leave a container half made (its init created,
/// the shim still "creating" it) for the next manager to find.
async fn to_completion<T: Send + 'static>(
    f: impl std::future::Future<Output = Result<T, Status>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(f)
        .await
        .map_err(|e| Status::internal(format!("shim call ended abnormally: {e}")))?
}

pub(super) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

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
        let inner = self.0.clone();
        let pid = to_completion(async move { inner.create(r).await }).await?;
        Ok(Response::new(pb::CreateResponse { pid }))
    }

    async fn start(
        &self,
        r: Request<pb::StartRequest>,
    ) -> Result<Response<pb::StartResponse>, Status> {
        let r = r.into_inner();
        let inner = self.0.clone();
        let pid = to_completion(async move { inner.start(&r.id, &r.exec_id).await }).await?;
        Ok(Response::new(pb::StartResponse { pid }))
    }

    async fn state(
        &self,
        r: Request<pb::StateRequest>,
    ) -> Result<Response<pb::StateResponse>, Status> {
        let r = r.into_inner();
        let p = self.0.process(&r.id, &r.exec_id)?;
        let (paused, oom_killed) = self.0.with(&r.id, |c| {
            Ok((
                c.paused,
                r.exec_id.is_empty() && c.oom_killed.load(std::sync::atomic::Ordering::Relaxed),
            ))
        })?;
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
            oom_killed,
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

    async fn reopen_log(
        &self,
        r: Request<pb::ReopenLogRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = r.into_inner();
        let p = self.0.process(&r.id, &r.exec_id)?;
        p.reopen_log().map_err(|e| io_status("reopen log", e))?;
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
        let inner = self.0.clone();
        Ok(Response::new(
            to_completion(async move { inner.delete(&r.id, &r.exec_id).await }).await?,
        ))
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
