//! berthd's streaming server: the URLs Exec, Attach and PortForward answer
//! with (`--stream-address`, a loopback port by default), served over
//! HTTP/1.1 upgraded to SPDY/3.1 or WebSocket, as kubelet's clients
//! (`kubectl exec`, `crictl exec -it`, `crictl port-forward`) speak them.
//!
//! - `tokens`: single-use, expiring URLs;
//! - `handshake`: which upgrade and protocol version a request gets;
//! - `spdy/`: the SPDY/3.1 framing and session;
//! - `remotecommand`: exec's and attach's streams and statuses;
//! - `exec`: those streams joined to a process in the shim;
//! - `portforward`: connections into a pod's network namespace.

pub mod exec;
pub mod handshake;
pub mod portforward;
pub mod remotecommand;
pub mod spdy;
pub mod tokens;

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::WebSocketStream;

use self::handshake::{negotiate, Upgrade};
use self::remotecommand::Options;
use self::spdy::session::{Role, Session};
use self::tokens::Pending;
use super::Cri;

/// Where streaming URLs point, and the requests waiting behind them.
pub struct Urls {
    /// `http://host:port` ("": no streaming server).
    base: String,
    tokens: tokens::Tokens,
}

/// A streaming URL cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// berthd runs without a streaming server.
    #[error("streaming: berthd runs without a streaming server (stream_address is empty)")]
    Disabled,
    /// Too many wait.
    #[error(transparent)]
    Full(#[from] tokens::Full),
}

impl Urls {
    /// URLs under `base` (`http://host:port`; "" when there is no server).
    pub fn new(base: String) -> Urls {
        Urls {
            base,
            tokens: Default::default(),
        }
    }

    /// A URL for `p`, valid once for a minute.
    pub fn url(&self, p: Pending) -> Result<String, UrlError> {
        if self.base.is_empty() {
            return Err(UrlError::Disabled);
        }
        let kind = p.kind();
        let token = self.tokens.insert(p)?;
        Ok(format!("{}/{kind}/{token}", self.base))
    }

    /// The request behind `/kind/token`, taken.
    pub fn consume(&self, kind: &str, token: &str) -> Option<Pending> {
        self.tokens.consume(kind, token)
    }
}

/// Binds the streaming server's address (`host:port`, port 0 for any) and
/// returns the listener and the base of its URLs.
pub async fn bind(address: &str) -> std::io::Result<(TcpListener, String)> {
    let l = TcpListener::bind(address).await?;
    let a = l.local_addr()?;
    Ok((l, format!("http://{a}")))
}

/// Serves streaming sessions on `listener` until `stop` resolves; sessions
/// under way go on to their end.
pub async fn serve(
    cri: Arc<Cri>,
    listener: TcpListener,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = &mut stop => return,
        };
        let (tcp, _) = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "streaming: accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let cri = cri.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let cri = cri.clone();
                async move { Ok::<_, Infallible>(handle(cri, req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .with_upgrades()
                .await;
        });
    }
}

fn plain(code: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        "content-type",
        "text/plain; charset=utf-8".parse().expect("header"),
    );
    r
}

/// `port=N` values of a query (the WebSocket port-forward's ports).
fn query_ports(query: Option<&str>) -> Vec<u16> {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.strip_prefix("port="))
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn handle(cri: Arc<Cri>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let [kind, token] = path[..] else {
        return plain(StatusCode::NOT_FOUND, "no such streaming endpoint\n".into());
    };
    let Some(pending) = cri.streams.consume(kind, token) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("streaming: {kind} token {token:?} is unknown, used or expired\n"),
        );
    };
    let (spdy, ws) = match pending {
        Pending::PortForward(_) => (handshake::SPDY_PORT_FORWARD, handshake::WS_PORT_FORWARD),
        _ => (handshake::SPDY_EXEC, handshake::WS_EXEC),
    };
    let upgrade = match negotiate(req.headers(), spdy, ws) {
        Ok(u) => u,
        Err(e) => {
            let mut r = plain(StatusCode::FORBIDDEN, format!("{e}\n"));
            if let Ok(v) = spdy.join(",").parse() {
                r.headers_mut()
                    .insert("x-accepted-stream-protocol-versions", v);
            }
            return r;
        }
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert("connection", "Upgrade".parse().expect("header"));
    match &upgrade {
        Upgrade::Spdy(v) => {
            h.insert("upgrade", "SPDY/3.1".parse().expect("header"));
            if let (false, Ok(v)) = (v.is_empty(), v.parse()) {
                h.insert("x-stream-protocol-version", v);
            }
        }
        Upgrade::WebSocket { protocol, accept } => {
            h.insert("upgrade", "websocket".parse().expect("header"));
            if let Ok(a) = accept.parse() {
                h.insert("sec-websocket-accept", a);
            }
            if let (false, Ok(p)) = (protocol.is_empty(), protocol.parse()) {
                h.insert("sec-websocket-protocol", p);
            }
        }
    }
    let ports = query_ports(req.uri().query());
    tokio::spawn(async move {
        let io = match hyper::upgrade::on(req).await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::info!(error = %e, "streaming: upgrade failed");
                return;
            }
        };
        match upgrade {
            Upgrade::Spdy(v) => {
                let session = Session::new(io, Role::Server);
                session_of(cri, pending, Transport::Spdy(session, v)).await;
            }
            Upgrade::WebSocket { protocol, .. } => {
                let ws = WebSocketStream::from_raw_socket(io, WsRole::Server, None).await;
                session_of(cri, pending, Transport::Ws(Box::new(ws), protocol, ports)).await;
            }
        }
    });
    resp
}

type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

enum Transport {
    Spdy(Session, String),
    Ws(Box<WebSocketStream<Upgraded>>, String, Vec<u16>),
}

async fn session_of(cri: Arc<Cri>, pending: Pending, t: Transport) {
    let opts = |stdin, stdout, stderr, tty| Options {
        stdin,
        stdout,
        stderr,
        tty,
    };
    match pending {
        Pending::Exec(r) => {
            let o = opts(r.stdin, r.stdout, r.stderr, r.tty);
            let run = |io| async move { exec::exec(&cri, r, io).await };
            match t {
                Transport::Spdy(s, v) => remotecommand::serve_spdy(s, &v, o, run).await,
                Transport::Ws(ws, p, _) => remotecommand::serve_ws(*ws, &p, o, run).await,
            }
        }
        Pending::Attach(r) => {
            let o = opts(r.stdin, r.stdout, r.stderr, r.tty);
            let run = |io| async move { exec::attach(&cri, r, io).await };
            match t {
                Transport::Spdy(s, v) => remotecommand::serve_spdy(s, &v, o, run).await,
                Transport::Ws(ws, p, _) => remotecommand::serve_ws(*ws, &p, o, run).await,
            }
        }
        Pending::PortForward(r) => {
            let target = match cri.find_pod(&r.pod_sandbox_id) {
                Ok(p) => portforward::Target {
                    netns: (!super::pods::host_network(&p.config))
                        .then(|| cri.pod_dir(&p.id).join("net")),
                    pod: p.id,
                },
                Err(e) => {
                    tracing::info!(error = %e, "port-forward");
                    return;
                }
            };
            match t {
                Transport::Spdy(s, _) => portforward::serve_spdy(s, target).await,
                Transport::Ws(ws, p, _) if p.starts_with("SPDY/3.1+") => {
                    let s = Session::new(portforward::tunnel(*ws), Role::Server);
                    portforward::serve_spdy(s, target).await
                }
                Transport::Ws(ws, p, ports) => {
                    let ports = if ports.is_empty() {
                        r.port
                            .iter()
                            .filter_map(|p| u16::try_from(*p).ok())
                            .collect()
                    } else {
                        ports
                    };
                    portforward::serve_ws_channels(*ws, &p, ports, target).await
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_the_query() {
        assert_eq!(query_ports(Some("port=80&port=8080&x=1")), vec![80, 8080]);
        assert!(query_ports(None).is_empty());
    }
}
