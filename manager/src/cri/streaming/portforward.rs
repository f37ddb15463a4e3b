//! Port-forward: connections to ports on a pod's loopback, reached inside
//! the pod's network namespace (not the node's), over SPDY stream pairs
//! (`portforward.k8s.io`), SPDY tunnelled through a WebSocket (client-go's
//! and crictl's `--transport websocket`), or WebSocket channels per port.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::remotecommand::{normal_close, ws_message, ws_parse};
use super::spdy::frame::header;
use super::spdy::session::{Session, Stream};

/// Where a pod's ports are: its network namespace (`None`: the node's,
/// for a host-network pod), and its id for messages.
#[derive(Clone, Debug)]
pub struct Target {
    /// The pinned network namespace.
    pub netns: Option<PathBuf>,
    /// The pod sandbox id.
    pub pod: String,
}

const CONNECT: Duration = Duration::from_secs(10);

fn connect_here(port: u16) -> Result<std::net::TcpStream, String> {
    let v4 = std::net::TcpStream::connect_timeout(
        &(std::net::Ipv4Addr::LOCALHOST, port).into(),
        CONNECT,
    );
    let e4 = match v4 {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    match std::net::TcpStream::connect_timeout(
        &(std::net::Ipv6Addr::LOCALHOST, port).into(),
        CONNECT,
    ) {
        Ok(s) => Ok(s),
        Err(e6) => Err(format!(
            "failed to connect to localhost:{port}, IPv4: {e4} IPv6: {e6}"
        )),
    }
}

/// A connection to `port` on the target's loopback.
pub async fn dial(t: &Target, port: u16) -> Result<TcpStream, String> {
    let std = match &t.netns {
        None => tokio::task::spawn_blocking(move || connect_here(port))
            .await
            .map_err(|e| e.to_string())?,
        Some(ns) => {
            // A socket belongs to the namespace of the thread that made
            // it: a thread of its own joins the pod's, connects and ends
            // (never a pool thread, which would stay in the pod's).
            let ns = ns.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("berthd-portfwd".into())
                .spawn(move || {
                    let r = std::fs::File::open(&ns)
                        .map_err(|e| format!("open {}: {e}", ns.display()))
                        .and_then(|f| {
                            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                                .map_err(|e| format!("setns {}: {e}", ns.display()))
                        })
                        .and_then(|()| connect_here(port));
                    let _ = tx.send(r);
                })
                .map_err(|e| format!("spawn a thread: {e}"))?;
            rx.await
                .map_err(|_| "port-forward thread died".to_string())?
        }
    }
    .map_err(|e| format!("error forwarding port {port} to pod {}: {e}", t.pod))?;
    std.set_nonblocking(true).map_err(|e| e.to_string())?;
    TcpStream::from_std(std).map_err(|e| e.to_string())
}

/// The pair a stream belongs to: its `requestID`, or for clients too old
/// to send one, derived from the stream id as kubelet does (an error
/// stream then its data stream, consecutive odd ids).
fn request_id(s: &Stream, kind: &str) -> String {
    match header(&s.headers, "requestid") {
        Some(r) if !r.is_empty() => r.to_string(),
        _ if kind == "data" => s.id.saturating_sub(2).to_string(),
        _ => s.id.to_string(),
    }
}

/// Serves port-forward stream pairs on `session` until the client ends it.
pub async fn serve_spdy(mut session: Session, t: Target) {
    let mut half: std::collections::HashMap<String, (Option<Stream>, Option<Stream>)> =
        Default::default();
    while let Some(s) = session.accept().await {
        let kind = header(&s.headers, "streamtype").unwrap_or("").to_string();
        let port = header(&s.headers, "port").and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port.filter(|p| *p != 0) else {
            tracing::debug!("port-forward: a stream without a valid port, reset");
            let _ = s.tx.reset().await;
            continue;
        };
        let id = request_id(&s, &kind);
        let entry = half.entry(id.clone()).or_default();
        match kind.as_str() {
            "error" => entry.0 = Some(s),
            "data" => entry.1 = Some(s),
            _ => {
                let _ = s.tx.reset().await;
                continue;
            }
        }
        if let (Some(_), Some(_)) = entry {
            let (error, data) = half.remove(&id).expect("present");
            let t = t.clone();
            tokio::spawn(forward(error.expect("pair"), data.expect("pair"), port, t));
        }
    }
    session.close().await;
}

async fn forward(error: Stream, mut data: Stream, port: u16, t: Target) {
    let conn = match dial(&t, port).await {
        Ok(c) => c,
        Err(why) => {
            tracing::info!(pod = %t.pod, port, error = %why, "port-forward");
            let _ = error.tx.write(why.as_bytes()).await;
            let _ = error.tx.close().await;
            let _ = data.tx.close().await;
            return;
        }
    };
    let (r, w) = conn.into_split();
    let up = into_conn(&mut data.rx, w);
    let tx = &data.tx;
    let down = from_conn(r, |d| async move { tx.write(&d).await.is_ok() });
    // When one direction ends the other gets a moment to finish, then
    // both streams close (containerd's behaviour: a client that keeps its
    // side open does not hold the connection forever).
    tokio::pin!(up, down);
    tokio::select! {
        _ = &mut up => { let _ = tokio::time::timeout(LINGER, &mut down).await; }
        _ = &mut down => { let _ = tokio::time::timeout(LINGER, &mut up).await; }
    }
    let _ = data.tx.close().await;
    let _ = error.tx.close().await;
}

/// The client's bytes into the connection; its write side shut at their end.
async fn into_conn(rx: &mut mpsc::Receiver<Vec<u8>>, mut w: impl AsyncWrite + Unpin) {
    while let Some(d) = rx.recv().await {
        if w.write_all(&d).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// The connection's bytes to `send` until its end, or until `send` says
/// the client is gone (false).
async fn from_conn<F, Fut>(mut r: impl AsyncRead + Unpin, mut send: F)
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut buf = vec![0u8; 32 << 10];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if !send(buf[..n].to_vec()).await {
                    return;
                }
            }
        }
    }
}

/// How long the second direction of a forwarded connection may go on
/// after the first ended.
const LINGER: Duration = Duration::from_secs(1);

/// A WebSocket as a byte stream: binary messages both ways (the SPDY
/// tunnel of client-go's `SPDY/3.1+portforward.k8s.io`).
pub fn tunnel<S>(ws: WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (near, far) = tokio::io::duplex(64 << 10);
    let (mut far_r, mut far_w) = tokio::io::split(far);
    let (mut sink, mut source) = ws.split();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 << 10];
        loop {
            match far_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.send(normal_close()).await;
    });
    tokio::spawn(async move {
        while let Some(Ok(m)) = source.next().await {
            match m {
                Message::Binary(b) if far_w.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = far_w.shutdown().await;
    });
    near
}

/// Serves the WebSocket channel protocol: for the i-th of `ports`, data on
/// channel 2i and errors on 2i+1 (from version 4 each channel first
/// carries its port, 2 bytes little-endian), one connection per port for
/// the session's life.
pub async fn serve_ws_channels<S>(
    ws: WebSocketStream<S>,
    protocol: &str,
    ports: Vec<u16>,
    t: Target,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let b64 = protocol.contains("base64");
    let v4 = protocol.starts_with("v4.");
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Option<(u8, Vec<u8>)>>(32);
    let writer = tokio::spawn(async move {
        while let Some(Some((ch, d))) = out_rx.recv().await {
            if sink.send(ws_message(b64, ch, &d)).await.is_err() {
                return;
            }
        }
        let _ = sink.send(normal_close()).await;
    });
    let mut inputs = Vec::new();
    let mut forwards = Vec::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let Ok(ch) = u8::try_from(i * 2) else { break };
        if v4 {
            for c in [ch, ch + 1] {
                let _ = out_tx.send(Some((c, port.to_le_bytes().to_vec()))).await;
            }
        }
        let (in_tx, mut in_rx) = mpsc::channel::<Vec<u8>>(16);
        inputs.push(in_tx);
        let (out, t) = (out_tx.clone(), t.clone());
        forwards.push(tokio::spawn(async move {
            let conn = match dial(&t, port).await {
                Ok(c) => c,
                Err(why) => {
                    let _ = out.send(Some((ch + 1, why.into_bytes()))).await;
                    return;
                }
            };
            let (r, w) = conn.into_split();
            let up = into_conn(&mut in_rx, w);
            let down = from_conn(r, |d| {
                let out = &out;
                async move { out.send(Some((ch, d))).await.is_ok() }
            });
            tokio::join!(up, down);
        }));
    }
    while let Some(Ok(m)) =
        super::remotecommand::next_within(&mut source, super::spdy::session::IDLE).await
    {
        if m.is_close() {
            break;
        }
        if let Some((ch, d)) = ws_parse(b64, m) {
            if ch % 2 == 0 {
                if let Some(i) = inputs.get(usize::from(ch / 2)) {
                    let _ = i.send(d).await;
                }
            }
        }
    }
    drop(inputs);
    for f in forwards {
        f.abort();
    }
    let _ = out_tx.send(None).await;
    let _ = writer.await;
}
