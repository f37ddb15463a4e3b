//! Exec and attach, as the streaming server runs them: the remotecommand
//! session's channels joined to a process in the container's shim.

use std::time::Duration;

use berth_proto::shim::{self as shimpb, attach_request::Msg};
use k8s_cri::v1 as cri;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use berth_proto::shim::shim_client::ShimClient;
use tonic::transport::Channel;

use super::remotecommand::{Io, Outcome, TermSize};
use crate::containers::tasks::Status;
use crate::cri::{Cri, NAMESPACE};

/// How long output may trail a process's exit (a child it left behind
/// may hold the pipe open).
const DRAIN: Duration = Duration::from_secs(2);

/// Runs `r`'s command in its container with `io`, until it exits or the
/// client goes (then it is killed, as kubelet's runtimes do).
pub async fn exec(cri: &Cri, r: cri::ExecRequest, io: Io) -> Outcome {
    match run_exec(cri, r, io).await {
        Ok(o) => o,
        Err(why) => Outcome::Failed(why),
    }
}

async fn run_exec(cri: &Cri, r: cri::ExecRequest, mut io: Io) -> Result<Outcome, String> {
    let c = cri
        .find_container(&r.container_id)
        .map_err(|e| e.to_string())?;
    let m = &cri.manager;
    let exec_id = format!("exec-{}", &berth_rules::id::random()[..16]);
    cri.add_exec(&c.id, &exec_id, r.cmd.clone(), r.tty, io.stdin.is_some())
        .await
        .map_err(|e| e.to_string())?;
    let streams = Streams::attach(cri, &c.id, &exec_id, &mut io).await;
    let streams = match streams {
        Ok(s) => s,
        Err(e) => {
            let _ = m.delete_task(NAMESPACE, &c.id, &exec_id).await;
            return Err(e);
        }
    };
    if let Err(e) = m.start(NAMESPACE, &c.id, &exec_id).await {
        let _ = m.delete_task(NAMESPACE, &c.id, &exec_id).await;
        return Err(e.to_string());
    }
    // Input ends the process's stdin when the client closes it.
    streams.pump_stdin(io.stdin.take(), true);
    streams.pump_resize(io.resize.take());
    let output = streams.output;
    let mut gone = io.gone.clone();
    let exited = tokio::select! {
        e = m.wait(NAMESPACE, &c.id, &exec_id) => e.ok(),
        _ = gone.wait_for(|g| *g) => None,
    };
    let status = match exited {
        Some(e) => e.status,
        None => {
            tracing::info!(container = %c.id, exec = %exec_id, "exec client went away: killing the process");
            let _ = m
                .kill(NAMESPACE, &c.id, &exec_id, libc::SIGKILL as u32, false)
                .await;
            m.wait(NAMESPACE, &c.id, &exec_id)
                .await
                .map(|e| e.status)
                .unwrap_or(137)
        }
    };
    let _ = tokio::time::timeout(DRAIN, output).await;
    let _ = m.delete_task(NAMESPACE, &c.id, &exec_id).await;
    Ok(Outcome::Exited(i32::try_from(status).unwrap_or(i32::MAX)))
}

/// Joins `io` to the container's own process until its output ends or
/// the client goes. Closing stdin closes the process's only when the
/// container asked for `stdin_once`.
pub async fn attach(cri: &Cri, r: cri::AttachRequest, mut io: Io) -> Outcome {
    let c = match cri.find_container(&r.container_id) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let streams = match Streams::attach(cri, &c.id, "", &mut io).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e),
    };
    streams.pump_stdin(io.stdin.take(), c.config.stdin_once);
    streams.pump_resize(io.resize.take());
    let mut gone = io.gone.clone();
    tokio::select! {
        _ = streams.output => {}
        _ = gone.wait_for(|g| *g) => {}
    }
    Outcome::Exited(0)
}

/// A shim attachment: requests to the shim, output copied to the client.
struct Streams {
    requests: mpsc::Sender<shimpb::AttachRequest>,
    /// Ends when the process's output does.
    output: tokio::task::JoinHandle<()>,
    shim: ShimClient<Channel>,
    id: String,
    exec_id: String,
}

impl Streams {
    async fn attach(cri: &Cri, id: &str, exec_id: &str, io: &mut Io) -> Result<Streams, String> {
        if exec_id.is_empty() && cri.manager.status(NAMESPACE, id).await.0 != Status::Running {
            return Err(format!("container {id} is not running"));
        }
        let (requests, rx) = mpsc::channel(16);
        let (shim, mut output) = cri
            .attach_process(
                id,
                exec_id,
                io.stdout.is_some(),
                io.stderr.is_some(),
                tokio_stream::wrappers::ReceiverStream::new(rx),
            )
            .await
            .map_err(|e| format!("attach to {id}: {e}"))?;
        let (stdout, stderr) = (io.stdout.take(), io.stderr.take());
        let output = tokio::spawn(async move {
            while let Some(Ok(o)) = output.next().await {
                let to = if o.stream == shimpb::Stream::Stderr as i32 {
                    stderr.as_ref().or(stdout.as_ref())
                } else {
                    stdout.as_ref()
                };
                if let Some(to) = to {
                    if to.send(o.data).await.is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Streams {
            requests,
            output,
            shim,
            id: id.to_string(),
            exec_id: exec_id.to_string(),
        })
    }

    /// Applies the client's terminal sizes to the process's pty: only once
    /// it runs (a pty exists from its start; an earlier size would be lost).
    fn pump_resize(&self, sizes: Option<mpsc::Receiver<TermSize>>) {
        let Some(mut sizes) = sizes else { return };
        let (mut shim, id, exec_id) = (self.shim.clone(), self.id.clone(), self.exec_id.clone());
        tokio::spawn(async move {
            while let Some(s) = sizes.recv().await {
                let _ = shim
                    .resize_pty(shimpb::ResizePtyRequest {
                        id: id.clone(),
                        exec_id: exec_id.clone(),
                        width: u32::from(s.width),
                        height: u32::from(s.height),
                    })
                    .await;
            }
        });
    }

    /// Copies the client's input to the process; at its end, closes the
    /// process's stdin if `close`.
    fn pump_stdin(&self, stdin: Option<mpsc::Receiver<Vec<u8>>>, close: bool) {
        let Some(mut stdin) = stdin else { return };
        let tx = self.requests.clone();
        tokio::spawn(async move {
            while let Some(d) = stdin.recv().await {
                let m = shimpb::AttachRequest {
                    msg: Some(Msg::Stdin(d)),
                };
                if tx.send(m).await.is_err() {
                    return;
                }
            }
            if close {
                let _ = tx
                    .send(shimpb::AttachRequest {
                        msg: Some(Msg::CloseStdin(true)),
                    })
                    .await;
            }
            // Dropping the sender ends the request stream: the shim stops
            // reading input, the output goes on.
        });
    }
}
