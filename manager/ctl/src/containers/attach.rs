//! Attaching a terminal or pipes to a container's process: stdin, output,
//! window size, detach keys.

use std::io::Write;

use berth_proto::containers::{self as pb};

use super::Clients;
use crate::failure::{failed, status_err};
use crate::{request, tty};

impl Clients {
    /// Attaches to a process, starts it (unless `start` is false), pumps
    /// stdio until it ends; returns whether the user detached.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn attach_and_run(
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
}
