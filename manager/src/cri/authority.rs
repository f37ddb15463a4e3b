//! Old gRPC clients on the CRI socket. Go's gRPC before about 1.31 (the
//! kubelet, crictl and critest of those releases) sends the unix socket's
//! path as the HTTP/2 `:authority`, and Python's grpcio sends it
//! percent-encoded; h2 resets such a stream as malformed. Each connection
//! is relayed through here: the client's header blocks are decoded (HPACK),
//! an `:authority` that is not one becomes `localhost` (the socket is the
//! only place a request can go anyway), and every block is encoded again
//! (from then on the server's decoder follows our encoder, so every block
//! goes through it). Other frames and the server's answers pass unchanged.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// HTTP/2's connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame payload a peer must accept without a setting.
const MAX_FRAME: usize = 16_384;
/// The largest header block accepted (h2's default list size is 16 MiB).
const MAX_BLOCK: usize = 1 << 20;

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("http/2 from client: {what}"),
    )
}

/// Whether h2 takes `v` as an `:authority`.
pub fn acceptable(v: &[u8]) -> bool {
    http::uri::Authority::try_from(v).is_ok()
}

/// The header block with a malformed `:authority` replaced by `localhost`.
pub fn fix_headers(headers: &mut [(Vec<u8>, Vec<u8>)]) -> bool {
    let mut changed = false;
    for (n, v) in headers.iter_mut() {
        if n.as_slice() == b":authority" && !acceptable(v) {
            *v = b"localhost".to_vec();
            changed = true;
        }
    }
    changed
}

/// One frame: its header fields and payload.
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Frame>> {
    let mut h = [0u8; 9];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
    if len > MAX_BLOCK {
        return Err(bad("frame too large"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some(Frame {
        kind: h[3],
        flags: h[4],
        stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        payload,
    }))
}

fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8], out: &mut Vec<u8>) {
    // Payloads here are at most MAX_BLOCK (2^20), within the 24-bit length.
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// A HEADERS frame's fragment, without padding and priority fields.
fn fragment(f: &Frame) -> io::Result<&[u8]> {
    let mut p = f.payload.as_slice();
    let mut pad = 0usize;
    if f.flags & PADDED != 0 {
        pad = usize::from(*p.first().ok_or_else(|| bad("short padded frame"))?);
        p = &p[1..];
    }
    if f.flags & PRIORITY != 0 {
        p = p.get(5..).ok_or_else(|| bad("short priority frame"))?;
    }
    let end = p
        .len()
        .checked_sub(pad)
        .ok_or_else(|| bad("padding past the frame"))?;
    Ok(&p[..end])
}

/// The header block re-encoded as HEADERS (and CONTINUATION) frames.
fn encode_block(block: &[u8], end_stream: bool, stream: u32, out: &mut Vec<u8>) {
    let mut chunks = block.chunks(MAX_FRAME).peekable();
    let mut first = true;
    if block.is_empty() {
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        frame_bytes(HEADERS, flags, stream, &[], out);
        return;
    }
    while let Some(c) = chunks.next() {
        let last = chunks.peek().is_none();
        let mut flags = if last { END_HEADERS } else { 0 };
        let kind = if first {
            if end_stream {
                flags |= END_STREAM;
            }
            HEADERS
        } else {
            CONTINUATION
        };
        frame_bytes(kind, flags, stream, c, out);
        first = false;
    }
}

/// Relays the client's half of a connection to the server, rewriting
/// header blocks.
async fn client_to_server<R, W>(mut from: R, mut to: W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut preface = [0u8; PREFACE.len()];
    from.read_exact(&mut preface).await?;
    if preface != PREFACE {
        return Err(bad("no HTTP/2 preface"));
    }
    to.write_all(PREFACE).await?;
    let mut decoder = loona_hpack::Decoder::new();
    let mut encoder = loona_hpack::Encoder::new();
    let mut out = Vec::new();
    while let Some(f) = read_frame(&mut from).await? {
        out.clear();
        if f.kind != HEADERS {
            frame_bytes(f.kind, f.flags, f.stream, &f.payload, &mut out);
            to.write_all(&out).await?;
            continue;
        }
        let (stream, end_stream) = (f.stream, f.flags & END_STREAM != 0);
        let mut block = fragment(&f)?.to_vec();
        let mut done = f.flags & END_HEADERS != 0;
        while !done {
            let c = read_frame(&mut from)
                .await?
                .ok_or_else(|| bad("end inside a header block"))?;
            if c.kind != CONTINUATION || c.stream != stream {
                return Err(bad("a header block interrupted"));
            }
            if block.len() + c.payload.len() > MAX_BLOCK {
                return Err(bad("header block too large"));
            }
            block.extend_from_slice(&c.payload);
            done = c.flags & END_HEADERS != 0;
        }
        let mut headers = decoder
            .decode(&block)
            .map_err(|e| bad(&format!("hpack: {e:?}")))?;
        fix_headers(&mut headers);
        let encoded = encoder.encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        encode_block(&encoded, end_stream, stream, &mut out);
        to.write_all(&out).await?;
    }
    to.shutdown().await
}

/// Serves one client connection through the relay: `server` is the end
/// the gRPC server reads.
pub async fn relay<C, S>(client: C, server: S)
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (cr, mut cw) = tokio::io::split(client);
    let (mut sr, sw) = tokio::io::split(server);
    let up = client_to_server(cr, sw);
    let down = async {
        let r = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
        r
    };
    let (u, d) = tokio::join!(up, down);
    if let Err(e) = u.and(d.map(drop)) {
        tracing::debug!(error = %e, "CRI connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_are_not_authorities_and_become_localhost() {
        assert!(acceptable(b"localhost"));
        assert!(acceptable(b"127.0.0.1:10250"));
        assert!(!acceptable(b"/run/berth/cri.sock"));
        assert!(!acceptable(b"%2Frun%2Fberth%2Fcri.sock") || acceptable(b"localhost"));
        let mut h = vec![
            (b":method".to_vec(), b"POST".to_vec()),
            (b":authority".to_vec(), b"/run/berth/cri.sock".to_vec()),
        ];
        assert!(fix_headers(&mut h));
        assert_eq!(h[1].1, b"localhost");
        assert!(!fix_headers(&mut h));
    }

    #[tokio::test]
    async fn header_blocks_are_rewritten_and_other_frames_pass() {
        let mut enc = loona_hpack::Encoder::new();
        let block = enc.encode([
            (&b":method"[..], &b"POST"[..]),
            (&b":authority"[..], &b"/run/berth/cri.sock"[..]),
            (&b":path"[..], &b"/runtime.v1.RuntimeService/Version"[..]),
        ]);
        let mut input = PREFACE.to_vec();
        // A HEADERS frame split in two with a CONTINUATION, padded.
        let (a, b) = block.split_at(5);
        let mut padded = vec![2u8];
        padded.extend_from_slice(a);
        padded.extend_from_slice(&[0, 0]);
        frame_bytes(HEADERS, PADDED, 1, &padded, &mut input);
        frame_bytes(CONTINUATION, END_HEADERS, 1, b, &mut input);
        frame_bytes(0x0, END_STREAM, 1, b"\0\0\0\0\0", &mut input);
        let mut output = Vec::new();
        client_to_server(&input[..], &mut output).await.unwrap();
        assert!(output.starts_with(PREFACE));
        let mut r = &output[PREFACE.len()..];
        let h = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!((h.kind, h.flags, h.stream), (HEADERS, END_HEADERS, 1));
        let got = loona_hpack::Decoder::new().decode(&h.payload).unwrap();
        assert!(got.contains(&(b":authority".to_vec(), b"localhost".to_vec())));
        assert!(got.contains(&(
            b":path".to_vec(),
            b"/runtime.v1.RuntimeService/Version".to_vec()
        )));
        let d = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!(
            (d.kind, d.flags, d.payload.as_slice()),
            (0x0, END_STREAM, &b"\0\0\0\0\0"[..])
        );
        assert!(read_frame(&mut r).await.unwrap().is_none());
    }
}
