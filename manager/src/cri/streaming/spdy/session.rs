//! A SPDY/3.1 session over any byte stream, as kubelet's clients speak it
//! (moby/spdystream's behaviour): every stream the peer opens is accepted
//! with an empty SYN_REPLY, pings are echoed, and there is no flow control
//! (those clients neither send nor honour WINDOW_UPDATE).
//!
//! A reader task turns frames into per-stream byte channels; a writer task
//! owns the header compression context, so frames leave in encoding order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::frame::{Decoder, Encoder, Frame, Headers};

/// Which end of the connection this is: it decides stream and ping ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Accepts streams (berthd's streaming server); its ids are even.
    Server,
    /// Opens streams (a kubectl-like client); its ids are odd.
    Client,
}

/// The session is closed, or the peer went away.
#[derive(Debug, thiserror::Error)]
#[error("spdy session closed")]
pub struct Closed;

/// How many chunks a stream buffers before the session's reader waits.
const STREAM_BUFFER: usize = 128;
/// The largest data frame sent: big enough to be cheap, small enough to
/// interleave streams.
const CHUNK: usize = 32 << 10;
/// A session with no frame from the peer for this long is closed (kubelet's
/// streaming default; clients' pings keep a quiet session alive).
pub const IDLE: Duration = Duration::from_secs(4 * 3600);

enum Out {
    Frame(Frame),
    /// GOAWAY, flush, shut the write side, stop.
    Close,
}

#[derive(Default)]
struct Table {
    data: HashMap<u32, mpsc::Sender<Vec<u8>>>,
    replies: HashMap<u32, oneshot::Sender<()>>,
    last_peer: u32,
}

/// One side of a SPDY session.
pub struct Session {
    out: mpsc::Sender<Out>,
    incoming: mpsc::Receiver<Stream>,
    table: Arc<Mutex<Table>>,
    next_id: AtomicU32,
    gone: watch::Receiver<bool>,
    reader: tokio::task::AbortHandle,
}

impl Drop for Session {
    /// A dropped session hangs up: GOAWAY if there is room for it, and the
    /// reader stops, so the connection closes once the writer is done.
    fn drop(&mut self) {
        let _ = self.out.try_send(Out::Close);
        self.reader.abort();
    }
}

/// A stream: its headers, what the peer sends on it, and its sending half.
pub struct Stream {
    /// The stream id.
    pub id: u32,
    /// The headers it was opened with.
    pub headers: Headers,
    /// The peer's data; the channel ends at the peer's FIN or a reset.
    pub rx: mpsc::Receiver<Vec<u8>>,
    /// Sends on the stream.
    pub tx: StreamWriter,
}

/// The sending half of a stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Out>,
}

impl StreamWriter {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends `data` (in frames of at most 32 KiB).
    pub async fn write(&self, data: &[u8]) -> Result<(), Closed> {
        for chunk in data.chunks(CHUNK) {
            self.frame(Frame::Data {
                stream: self.id,
                fin: false,
                data: chunk.to_vec(),
            })
            .await?;
        }
        Ok(())
    }

    /// Ends this side of the stream (an empty data frame with FIN).
    pub async fn close(&self) -> Result<(), Closed> {
        self.frame(Frame::Data {
            stream: self.id,
            fin: true,
            data: Vec::new(),
        })
        .await
    }

    /// Aborts the stream (RST_STREAM, CANCEL).
    pub async fn reset(&self) -> Result<(), Closed> {
        self.frame(Frame::RstStream {
            stream: self.id,
            status: 5,
        })
        .await
    }

    async fn frame(&self, f: Frame) -> Result<(), Closed> {
        self.out.send(Out::Frame(f)).await.map_err(|_| Closed)
    }
}

impl Session {
    /// Starts a session over `io`, closed after [`IDLE`] without a frame.
    pub fn new<T>(io: T, role: Role) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        Session::with_idle(io, role, IDLE)
    }

    /// Starts a session over `io`, closed after `idle` without a frame.
    pub fn with_idle<T>(io: T, role: Role, idle: Duration) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(64);
        let (in_tx, incoming) = mpsc::channel(16);
        let (gone_tx, gone) = watch::channel(false);
        let table = Arc::new(Mutex::new(Table::default()));
        tokio::spawn(write_loop(w, out_rx));
        let reader = tokio::spawn(read_loop(
            r,
            role,
            idle,
            out_tx.clone(),
            in_tx,
            table.clone(),
            gone_tx,
        ))
        .abort_handle();
        Session {
            out: out_tx,
            incoming,
            table,
            next_id: AtomicU32::new(if role == Role::Server { 2 } else { 1 }),
            gone,
            reader,
        }
    }

    /// The next stream the peer opens; `None` once the session is over.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.incoming.recv().await
    }

    /// Flips to true when the peer's side of the connection ends.
    pub fn gone(&self) -> watch::Receiver<bool> {
        self.gone.clone()
    }

    /// Opens a stream with `headers` and waits for the peer's reply.
    pub async fn open(&self, headers: Headers, fin: bool) -> Result<Stream, Closed> {
        let id = self.next_id.fetch_add(2, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let (reply_tx, reply) = oneshot::channel();
        {
            let mut t = self.table.lock().expect("spdy table");
            t.data.insert(id, tx);
            t.replies.insert(id, reply_tx);
        }
        self.out
            .send(Out::Frame(Frame::SynStream {
                stream: id,
                associated: 0,
                priority: 0,
                fin,
                unidirectional: false,
                headers: headers.clone(),
            }))
            .await
            .map_err(|_| Closed)?;
        match tokio::time::timeout(Duration::from_secs(30), reply).await {
            Ok(Ok(())) => Ok(Stream {
                id,
                headers,
                rx,
                tx: StreamWriter {
                    id,
                    out: self.out.clone(),
                },
            }),
            _ => Err(Closed),
        }
    }

    /// Says GOAWAY and closes the connection once what was sent is out.
    pub async fn close(&self) {
        let _ = self.out.send(Out::Close).await;
    }
}

async fn write_loop<W: AsyncWrite>(w: W, mut rx: mpsc::Receiver<Out>) {
    let mut w = std::pin::pin!(w);
    let mut enc = Encoder::default();
    let mut buf = Vec::new();
    let mut last = 0u32;
    while let Some(o) = rx.recv().await {
        buf.clear();
        let close = matches!(o, Out::Close);
        let f = match o {
            Out::Frame(f) => f,
            Out::Close => Frame::GoAway {
                last_good: last,
                status: 0,
            },
        };
        if let Frame::SynReply { stream, .. } = &f {
            last = last.max(*stream);
        }
        if let Err(e) = enc.encode(&f, &mut buf) {
            tracing::warn!(error = %e, "spdy: encode");
            break;
        }
        // Batch what is already queued into one write.
        let mut more = !close;
        while more {
            match rx.try_recv() {
                Ok(Out::Frame(f)) => {
                    if enc.encode(&f, &mut buf).is_err() {
                        break;
                    }
                }
                Ok(Out::Close) => {
                    let _ = enc.encode(
                        &Frame::GoAway {
                            last_good: last,
                            status: 0,
                        },
                        &mut buf,
                    );
                    let _ = w.write_all(&buf).await;
                    let _ = w.shutdown().await;
                    return;
                }
                Err(_) => more = false,
            }
        }
        if w.write_all(&buf).await.is_err() {
            break;
        }
        if close {
            let _ = w.shutdown().await;
            return;
        }
    }
    let _ = w.shutdown().await;
}

async fn read_loop<R: AsyncRead>(
    r: R,
    role: Role,
    idle: Duration,
    out: mpsc::Sender<Out>,
    incoming: mpsc::Sender<Stream>,
    table: Arc<Mutex<Table>>,
    gone: watch::Sender<bool>,
) {
    let mut r = std::pin::pin!(r);
    let mut dec = Decoder::default();
    let mut buf = Vec::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    // Ping ids the peer starts have the peer's parity.
    let peer_parity = if role == Role::Server { 1 } else { 0 };
    'read: loop {
        loop {
            let f = match dec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "spdy: bad frame, closing");
                    break 'read;
                }
            };
            match f {
                Frame::SynStream {
                    stream,
                    fin,
                    headers,
                    ..
                } => {
                    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                    {
                        let mut t = table.lock().expect("spdy table");
                        t.last_peer = t.last_peer.max(stream);
                        if !fin {
                            t.data.insert(stream, tx);
                        }
                    }
                    let reply = Frame::SynReply {
                        stream,
                        fin: false,
                        headers: Vec::new(),
                    };
                    if out.send(Out::Frame(reply)).await.is_err() {
                        break 'read;
                    }
                    let s = Stream {
                        id: stream,
                        headers,
                        rx,
                        tx: StreamWriter {
                            id: stream,
                            out: out.clone(),
                        },
                    };
                    if incoming.send(s).await.is_err() {
                        // Nobody accepts streams any more: refuse it.
                        let _ = out
                            .send(Out::Frame(Frame::RstStream { stream, status: 3 }))
                            .await;
                    }
                }
                Frame::SynReply { stream, fin, .. } => {
                    let mut t = table.lock().expect("spdy table");
                    if let Some(r) = t.replies.remove(&stream) {
                        let _ = r.send(());
                    }
                    if fin {
                        t.data.remove(&stream);
                    }
                }
                Frame::Data { stream, fin, data } => {
                    let tx = table.lock().expect("spdy table").data.get(&stream).cloned();
                    if let Some(tx) = tx {
                        if !data.is_empty() {
                            // The receiver may be gone (its user finished):
                            // the data is dropped, as a closed pipe would.
                            let _ = tx.send(data).await;
                        }
                    }
                    if fin {
                        table.lock().expect("spdy table").data.remove(&stream);
                    }
                }
                Frame::RstStream { stream, .. } => {
                    let mut t = table.lock().expect("spdy table");
                    t.data.remove(&stream);
                    t.replies.remove(&stream);
                }
                Frame::Headers { stream, fin, .. } => {
                    if fin {
                        table.lock().expect("spdy table").data.remove(&stream);
                    }
                }
                Frame::Ping { id } => {
                    if id % 2 == peer_parity
                        && out.send(Out::Frame(Frame::Ping { id })).await.is_err()
                    {
                        break 'read;
                    }
                }
                Frame::GoAway { .. } | Frame::Settings { .. } | Frame::WindowUpdate { .. } => {}
            }
        }
        match tokio::time::timeout(idle, r.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {
                tracing::info!(idle_s = idle.as_secs(), "spdy: session idle, closing");
                let _ = out.send(Out::Close).await;
                break;
            }
        }
    }
    {
        let mut t = table.lock().expect("spdy table");
        t.data.clear();
        t.replies.clear();
    }
    let _ = gone.send(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_and_a_server_exchange_data_on_streams() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let mut server = Session::new(a, Role::Server);
        let client = Session::new(b, Role::Client);
        let opened = tokio::spawn(async move {
            let s = client
                .open(vec![("streamtype".into(), "stdin".into())], false)
                .await
                .unwrap();
            s.tx.write(b"ping").await.unwrap();
            s.tx.close().await.unwrap();
            (client, s)
        });
        let mut s = server.accept().await.unwrap();
        assert_eq!(s.id, 1);
        assert_eq!(
            super::super::frame::header(&s.headers, "streamType"),
            Some("stdin")
        );
        assert_eq!(s.rx.recv().await.unwrap(), b"ping");
        assert!(s.rx.recv().await.is_none(), "FIN ends the channel");
        let (client, mut cs) = opened.await.unwrap();
        s.tx.write(&vec![7u8; 100_000]).await.unwrap();
        s.tx.close().await.unwrap();
        let mut got = 0;
        while let Some(d) = cs.rx.recv().await {
            got += d.len();
        }
        assert_eq!(got, 100_000);
        let mut gone = client.gone();
        server.close().await;
        gone.wait_for(|g| *g).await.unwrap();
    }

    #[tokio::test]
    async fn an_idle_session_is_closed() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let server = Session::with_idle(a, Role::Server, Duration::from_millis(100));
        let client = Session::new(b, Role::Client);
        let mut gone = server.gone();
        let mut client_gone = client.gone();
        tokio::time::timeout(Duration::from_secs(5), gone.wait_for(|g| *g))
            .await
            .expect("the server gave up on the idle peer")
            .unwrap();
        // The peer sees the connection end.
        tokio::time::timeout(Duration::from_secs(5), client_gone.wait_for(|g| *g))
            .await
            .expect("the client saw the close")
            .unwrap();
    }
}
