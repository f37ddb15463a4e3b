//! Kubernetes' remotecommand protocol (exec and attach) over SPDY streams
//! or WebSocket channels, turned into plain channels for the process side
//! ([`Io`]) and ended with the status the client expects ([`Outcome`]).
//!
//! Versions: 1 (`channel.k8s.io`, errors as text), 2, 3 (a resize stream),
//! 4 (a JSON `Status` on the error stream, exit codes as causes), 5
//! (WebSocket only: the client can close stdin).

use std::future::Future;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::spdy::frame::header;
use super::spdy::session::{Session, Stream, StreamWriter};

/// Which streams the request asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The client sends input.
    pub stdin: bool,
    /// The client reads output.
    pub stdout: bool,
    /// The client reads errors (never with a tty: it has one stream).
    pub stderr: bool,
    /// A terminal, resizable.
    pub tty: bool,
}

/// A terminal size, as the client sends it on the resize stream.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub struct TermSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The process side's view of a session.
pub struct Io {
    /// The client's input; the channel ends when the client closes stdin.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    /// Output to the client.
    pub stdout: Option<mpsc::Sender<Vec<u8>>>,
    /// Errors to the client.
    pub stderr: Option<mpsc::Sender<Vec<u8>>>,
    /// Terminal sizes.
    pub resize: Option<mpsc::Receiver<TermSize>>,
    /// Flips to true when the client goes away.
    pub gone: watch::Receiver<bool>,
}

/// How the command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The process exited with this code (attach reports 0).
    Exited(i32),
    /// It could not run, or the stream failed: why.
    Failed(String),
}

/// The protocol version a negotiated name stands for.
pub fn version(protocol: &str) -> u8 {
    match protocol.split('.').next() {
        Some("v5") => 5,
        Some("v4") => 4,
        Some("v3") => 3,
        Some("v2") => 2,
        _ => 1,
    }
}

/// The error stream's content for protocol 4 and later: a Kubernetes
/// `Status`, an exit code as kubelet reports it.
pub fn status_json(o: &Outcome) -> serde_json::Value {
    match o {
        Outcome::Exited(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited(code) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failed(why) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: {why}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": why}]},
            "code": 500,
        }),
    }
}

/// What the error stream carries for `o` in protocol `v`: nothing for a
/// success before version 4.
pub fn error_stream(v: u8, o: &Outcome) -> Vec<u8> {
    if v >= 4 {
        return status_json(o).to_string().into_bytes();
    }
    match o {
        Outcome::Exited(0) => Vec::new(),
        Outcome::Exited(code) => {
            format!("command terminated with non-zero exit code: exit status {code}").into_bytes()
        }
        Outcome::Failed(why) => why.clone().into_bytes(),
    }
}

/// Sizes from a byte stream of concatenated JSON objects.
#[derive(Default)]
pub struct SizeParser {
    buf: Vec<u8>,
}

impl SizeParser {
    /// Takes `data`, returns the sizes it completes.
    pub fn feed(&mut self, data: &[u8]) -> Vec<TermSize> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<TermSize>();
        let mut garbage = false;
        loop {
            match it.next() {
                Some(Ok(s)) => out.push(s),
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(_)) => {
                    garbage = true;
                    break;
                }
                None => break,
            }
        }
        let used = it.byte_offset();
        if garbage {
            self.buf.clear();
        } else {
            self.buf.drain(..used);
        }
        out
    }
}

fn resize_pump(mut rx: mpsc::Receiver<Vec<u8>>) -> mpsc::Receiver<TermSize> {
    let (tx, out) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut p = SizeParser::default();
        while let Some(d) = rx.recv().await {
            for s in p.feed(&d) {
                if tx.send(s).await.is_err() {
                    return;
                }
            }
        }
    });
    out
}

fn output_pump(w: StreamWriter) -> (mpsc::Sender<Vec<u8>>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let h = tokio::spawn(async move {
        while let Some(d) = rx.recv().await {
            if w.write(&d).await.is_err() {
                break;
            }
        }
    });
    (tx, h)
}

/// How long a client has to open its streams (kubelet's default).
const STREAM_CREATION: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves one remotecommand session over SPDY: waits for the streams
/// `opts` call for, runs `run`, reports its outcome, closes.
pub async fn serve_spdy<F, Fut>(mut session: Session, protocol: &str, opts: Options, run: F)
where
    F: FnOnce(Io) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let v = version(protocol);
    let resizable = opts.tty && v >= 3;
    let expected = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr && !opts.tty)
        + usize::from(resizable);
    let mut streams: Vec<(String, Stream)> = Vec::new();
    let deadline = tokio::time::sleep(STREAM_CREATION);
    tokio::pin!(deadline);
    while streams.len() < expected {
        tokio::select! {
            s = session.accept() => match s {
                Some(s) => {
                    let kind = header(&s.headers, "streamtype").unwrap_or("").to_string();
                    if streams.iter().any(|(k, _)| *k == kind) || !matches!(kind.as_str(), "error" | "stdin" | "stdout" | "stderr" | "resize") {
                        tracing::debug!(stream = %kind, "streaming: unexpected stream, reset");
                        let _ = s.tx.reset().await;
                        continue;
                    }
                    streams.push((kind, s));
                }
                None => return,
            },
            _ = &mut deadline => {
                tracing::info!(got = streams.len(), expected, "streaming: the client did not open its streams in time");
                session.close().await;
                return;
            }
        }
    }
    let mut take = |k: &str| {
        streams
            .iter()
            .position(|(kind, _)| kind == k)
            .map(|i| streams.remove(i).1)
    };
    let (error, stdin, stdout, stderr, resize) = (
        take("error"),
        take("stdin"),
        take("stdout"),
        take("stderr"),
        take("resize"),
    );
    let Some(error) = error else {
        session.close().await;
        return;
    };
    let mut writers = vec![error.tx.clone()];
    let mut pumps = Vec::new();
    let mut out = |s: Option<Stream>| {
        s.map(|s| {
            writers.push(s.tx.clone());
            let (tx, h) = output_pump(s.tx);
            pumps.push(h);
            tx
        })
    };
    let (stdout, stderr) = (out(stdout), out(stderr));
    let stdin = stdin.map(|s| {
        writers.push(s.tx.clone());
        s.rx
    });
    let resize = resize.map(|s| {
        writers.push(s.tx.clone());
        resize_pump(s.rx)
    });
    let io = Io {
        stdin,
        stdout,
        stderr,
        resize,
        gone: session.gone(),
    };
    let outcome = run(io).await;
    for p in pumps {
        let _ = p.await;
    }
    let report = error_stream(v, &outcome);
    if !report.is_empty() {
        let _ = error.tx.write(&report).await;
    }
    for w in writers {
        let _ = w.close().await;
    }
    session.close().await;
}

/// The WebSocket channels (kubelet's numbering).
mod channel {
    pub const STDIN: u8 = 0;
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    pub const ERROR: u8 = 3;
    pub const RESIZE: u8 = 4;
    /// Version 5: `[255, n]` closes channel n.
    pub const CLOSE: u8 = 255;
}

enum WsOut {
    Data(u8, Vec<u8>),
    Close,
}

/// The next message of a WebSocket, or None once the peer has sent none for
/// `idle` (kubelet's streaming idle timeout, as the SPDY sessions have it).
pub async fn next_within<S, T>(source: &mut S, idle: std::time::Duration) -> Option<T>
where
    S: futures_util::Stream<Item = T> + Unpin,
{
    match tokio::time::timeout(idle, futures_util::StreamExt::next(source)).await {
        Ok(m) => m,
        Err(_) => {
            tracing::info!(idle_s = idle.as_secs(), "websocket: idle, closing");
            None
        }
    }
}

/// A WebSocket close with the normal code: what clients read as the end.
pub fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// A channel message: binary `[channel, data...]`, or for the base64
/// protocols text `'0'+channel` then the data in base64.
pub fn ws_message(base64: bool, ch: u8, data: &[u8]) -> Message {
    if base64 {
        use base64::Engine;
        let mut s = String::with_capacity(1 + data.len() * 4 / 3 + 4);
        s.push(char::from(b'0' + ch));
        s.push_str(&base64::engine::general_purpose::STANDARD.encode(data));
        Message::text(s)
    } else {
        let mut b = Vec::with_capacity(1 + data.len());
        b.push(ch);
        b.extend_from_slice(data);
        Message::binary(b)
    }
}

/// A channel message's channel and data; `None` if it is not one.
pub fn ws_parse(base64: bool, m: Message) -> Option<(u8, Vec<u8>)> {
    match m {
        Message::Binary(b) if !base64 && !b.is_empty() => Some((b[0], b[1..].to_vec())),
        Message::Text(t) if base64 && !t.is_empty() => {
            use base64::Engine;
            let t = t.as_str();
            let ch = t.as_bytes()[0].checked_sub(b'0')?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(&t[1..])
                .ok()?;
            Some((ch, data))
        }
        _ => None,
    }
}

/// Serves one remotecommand session over a WebSocket with subprotocol
/// `protocol`.
pub async fn serve_ws<S, F, Fut>(ws: WebSocketStream<S>, protocol: &str, opts: Options, run: F)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(Io) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let v = version(protocol);
    let b64 = protocol.contains("base64");
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<WsOut>(32);
    let writer = tokio::spawn(async move {
        while let Some(o) = out_rx.recv().await {
            match o {
                WsOut::Data(ch, d) => {
                    if sink.send(ws_message(b64, ch, &d)).await.is_err() {
                        return;
                    }
                }
                WsOut::Close => {
                    let _ = sink.send(normal_close()).await;
                    let _ = sink.flush().await;
                    return;
                }
            }
        }
    });
    // The lowest channel the client reads gets an empty message first:
    // older clients wait for it to know the session is up.
    let first = if opts.stdout {
        channel::STDOUT
    } else if opts.stderr && !opts.tty {
        channel::STDERR
    } else {
        channel::ERROR
    };
    let _ = out_tx.send(WsOut::Data(first, Vec::new())).await;

    let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<Vec<u8>>(8);
    let (gone_tx, gone) = watch::channel(false);
    let reader = tokio::spawn(async move {
        let mut stdin = Some(stdin_tx);
        while let Some(Ok(m)) = next_within(&mut source, super::spdy::session::IDLE).await {
            if m.is_close() {
                break;
            }
            let Some((ch, data)) = ws_parse(b64, m) else {
                continue;
            };
            match ch {
                channel::STDIN => {
                    if let Some(s) = &stdin {
                        let _ = s.send(data).await;
                    }
                }
                channel::RESIZE => {
                    let _ = resize_tx.send(data).await;
                }
                channel::CLOSE if v >= 5 && data.first() == Some(&channel::STDIN) => {
                    stdin = None;
                }
                _ => {}
            }
        }
        drop(stdin);
        let _ = gone_tx.send(true);
    });
    let mut pumps = Vec::new();
    let mut out = |want: bool, ch: u8| {
        want.then(|| {
            let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
            let o = out_tx.clone();
            pumps.push(tokio::spawn(async move {
                while let Some(d) = rx.recv().await {
                    if o.send(WsOut::Data(ch, d)).await.is_err() {
                        break;
                    }
                }
            }));
            tx
        })
    };
    let stdout = out(opts.stdout, channel::STDOUT);
    let stderr = out(opts.stderr && !opts.tty, channel::STDERR);
    let io = Io {
        stdin: opts.stdin.then_some(stdin_rx),
        stdout,
        stderr,
        resize: opts.tty.then(|| resize_pump(resize_rx)),
        gone,
    };
    let outcome = run(io).await;
    for p in pumps {
        let _ = p.await;
    }
    let report = error_stream(v, &outcome);
    if !report.is_empty() {
        let _ = out_tx.send(WsOut::Data(channel::ERROR, report)).await;
    }
    let _ = out_tx.send(WsOut::Close).await;
    let _ = writer.await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_names() {
        assert_eq!(version("v4.channel.k8s.io"), 4);
        assert_eq!(version("v5.channel.k8s.io"), 5);
        assert_eq!(version("v4.base64.channel.k8s.io"), 4);
        assert_eq!(version("channel.k8s.io"), 1);
        assert_eq!(version(""), 1);
    }

    #[test]
    fn a_non_zero_exit_is_a_cause_as_client_go_reads_it() {
        let s = status_json(&Outcome::Exited(3));
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(status_json(&Outcome::Exited(0))["status"], "Success");
        assert!(error_stream(2, &Outcome::Exited(0)).is_empty());
        assert!(!error_stream(2, &Outcome::Exited(1)).is_empty());
    }

    #[test]
    fn sizes_are_parsed_across_pieces() {
        let mut p = SizeParser::default();
        assert_eq!(p.feed(br#"{"Width":80,"Hei"#), vec![]);
        assert_eq!(
            p.feed(br#"ght":24}{"Width":100,"Height":30}"#),
            vec![
                TermSize {
                    width: 80,
                    height: 24
                },
                TermSize {
                    width: 100,
                    height: 30
                }
            ]
        );
        assert_eq!(p.feed(b"garbage"), vec![]);
        assert_eq!(
            p.feed(br#"{"Width":1,"Height":2}"#),
            vec![TermSize {
                width: 1,
                height: 2
            }]
        );
    }

    #[test]
    fn channel_messages_in_binary_and_base64() {
        for b64 in [false, true] {
            let m = ws_message(b64, 1, b"hi\n");
            assert_eq!(ws_parse(b64, m), Some((1, b"hi\n".to_vec())));
        }
        assert_eq!(ws_message(true, 2, b"a"), Message::text("2YQ=="));
    }

    #[tokio::test]
    async fn a_silent_websocket_peer_is_given_up() {
        let mut silent = futures_util::stream::pending::<u8>();
        let t = std::time::Instant::now();
        assert_eq!(
            next_within(&mut silent, std::time::Duration::from_millis(50)).await,
            None
        );
        assert!(t.elapsed() >= std::time::Duration::from_millis(50));
        let mut one = futures_util::stream::iter([7u8]);
        assert_eq!(
            next_within(&mut one, std::time::Duration::from_secs(5)).await,
            Some(7)
        );
    }
}
