//! Streaming clients for the CRI suite, as kubectl and crictl speak to a
//! runtime's streaming server: HTTP/1.1 upgraded to SPDY/3.1 (Berth's own
//! session, in its client role) or to WebSocket (tungstenite), dialled
//! inside berthd's network namespace where its loopback URLs live.

use std::path::Path;

use berth_manager::cri::streaming::spdy::session::{Role, Session, Stream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A URL's `host:port` and path.
pub fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    (host.to_string(), format!("/{path}"))
}

/// A TCP connection to `addr` made inside the network namespace pinned at
/// `netns` (a thread of its own joins it).
pub async fn dial_in(netns: &Path, addr: &str) -> TcpStream {
    let (ns, addr) = (netns.to_path_buf(), addr.to_string());
    let s = std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).expect("open netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        std::net::TcpStream::connect(&addr).expect("connect to the streaming server")
    })
    .join()
    .expect("dial thread");
    s.set_nonblocking(true).unwrap();
    TcpStream::from_std(s).unwrap()
}

/// The status line and headers of an HTTP response, read byte by byte (the
/// upgraded protocol's bytes follow them).
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if tcp.read(&mut b).await.expect("read response") == 0 {
            break;
        }
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).to_string()
}

/// Upgrades to SPDY/3.1 offering `versions`: the session and the response
/// head, or the head of a refusal.
pub async fn spdy(
    mut tcp: TcpStream,
    path: &str,
    versions: &[&str],
) -> Result<(Session, String), String> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n"
    );
    for v in versions {
        req.push_str(&format!("X-Stream-Protocol-Version: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    if !head.starts_with("HTTP/1.1 101") {
        return Err(head);
    }
    Ok((Session::new(tcp, Role::Client), head))
}

/// Opens a stream with `streamType: kind` and more headers.
pub async fn open(s: &Session, kind: &str, more: &[(&str, &str)]) -> Stream {
    let mut h = vec![("streamType".to_string(), kind.to_string())];
    h.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    s.open(h, false).await.expect("open a stream")
}

/// Everything a stream carries until the peer's FIN.
pub async fn drain(s: &mut Stream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(d) = s.rx.recv().await {
        out.extend_from_slice(&d);
    }
    out
}

/// A WebSocket upgrade offering `protocols`; the stream and the chosen one.
pub async fn websocket(
    tcp: TcpStream,
    url: &str,
    protocols: &str,
) -> (WebSocketStream<TcpStream>, String) {
    let url = url.replacen("http://", "ws://", 1);
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("websocket upgrade");
    let chosen = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (ws, chosen)
}

/// Sends `[channel, data...]`.
pub async fn ws_send(ws: &mut WebSocketStream<TcpStream>, ch: u8, data: &[u8]) {
    let mut m = vec![ch];
    m.extend_from_slice(data);
    ws.send(Message::binary(m)).await.unwrap();
}

/// Every channel's bytes until the server closes the connection.
pub async fn ws_collect(
    ws: &mut WebSocketStream<TcpStream>,
) -> std::collections::BTreeMap<u8, Vec<u8>> {
    let mut out = std::collections::BTreeMap::<u8, Vec<u8>>::new();
    while let Some(Ok(m)) = ws.next().await {
        match m {
            Message::Binary(b) if !b.is_empty() => {
                out.entry(b[0]).or_default().extend_from_slice(&b[1..]);
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    out
}
