//! SPDY/3.1 frames (the framing layer of the protocol's §2): what a
//! session sends and receives, encoded and decoded here without I/O.

use super::zlib::{Compressor, Decompressor, ZlibError};

/// A frame's FIN flag: the sender's half of the stream ends with it.
const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM's UNIDIRECTIONAL flag.
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
const VERSION: u16 = 3;
/// The largest payload a frame's 24-bit length can carry.
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;

/// A stream's headers: lowercase names, values as sent (several values
/// of one name joined by NUL).
pub type Headers = Vec<(String, String)>;

/// The first value of header `name` (case-insensitive).
pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

/// One SPDY/3.1 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream (odd from clients, even from servers).
        stream: u32,
        /// A pushed stream's origin, else 0.
        associated: u32,
        /// 0 (highest) to 7.
        priority: u8,
        /// The opener sends nothing more.
        fin: bool,
        /// The receiver may not send.
        unidirectional: bool,
        /// The stream's headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// The stream.
        stream: u32,
        /// The replier sends nothing more.
        fin: bool,
        /// Reply headers.
        headers: Headers,
    },
    /// Aborts a stream.
    RstStream {
        /// The stream.
        stream: u32,
        /// Why (1 protocol error, 5 cancel, ...).
        status: u32,
    },
    /// Session settings (ignored beyond parsing: no flow control here).
    Settings {
        /// (flags, id, value) triples.
        entries: Vec<(u8, u32, u32)>,
    },
    /// A liveness check, echoed by the peer.
    Ping {
        /// Odd from clients, even from servers.
        id: u32,
    },
    /// The sender opens no more streams.
    GoAway {
        /// The last stream the sender acted on.
        last_good: u32,
        /// 0 ok, 1 protocol error, 2 internal error.
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream: u32,
        /// The sender's half ends.
        fin: bool,
        /// The headers.
        headers: Headers,
    },
    /// A flow-control window grows.
    WindowUpdate {
        /// The stream (0: the session).
        stream: u32,
        /// By how much.
        delta: u32,
    },
    /// Stream data.
    Data {
        /// The stream.
        stream: u32,
        /// The sender's half ends.
        fin: bool,
        /// The bytes.
        data: Vec<u8>,
    },
}

/// A frame that breaks the protocol.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A control frame of another SPDY version.
    #[error("spdy: version {0} frames are not spoken (only 3)")]
    Version(u16),
    /// A field or length is wrong.
    #[error("spdy: malformed {what} frame")]
    Malformed {
        /// The frame type.
        what: &'static str,
    },
    /// A header block would not (de)compress.
    #[error(transparent)]
    Zlib(#[from] ZlibError),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes frames from a byte stream, keeping the header decompression
/// context.
#[derive(Default)]
pub struct Decoder {
    z: Decompressor,
}

impl Decoder {
    /// The next whole frame at the front of `buf`, removed from it;
    /// `Ok(None)` when more bytes are needed. Unknown control frames are
    /// skipped, as the protocol asks.
    pub fn decode(&mut self, buf: &mut Vec<u8>) -> Result<Option<Frame>, FrameError> {
        loop {
            if buf.len() < 8 {
                return Ok(None);
            }
            let first = u32_at(buf, 0);
            let flags = buf[4];
            let len = usize::try_from(u32_at(buf, 4) & 0x00ff_ffff).unwrap_or(usize::MAX);
            if buf.len() < 8 + len {
                return Ok(None);
            }
            let body: Vec<u8> = buf.drain(..8 + len).skip(8).collect();
            let fin = flags & FLAG_FIN != 0;
            if first & 0x8000_0000 == 0 {
                return Ok(Some(Frame::Data {
                    stream: first & 0x7fff_ffff,
                    fin,
                    data: body,
                }));
            }
            let version = u16::try_from((first >> 16) & 0x7fff).unwrap_or(0);
            if version != VERSION {
                return Err(FrameError::Version(version));
            }
            let kind = first & 0xffff;
            if let Some(f) = self.control(kind, flags, &body)? {
                return Ok(Some(f));
            }
        }
    }

    fn control(&mut self, kind: u32, flags: u8, b: &[u8]) -> Result<Option<Frame>, FrameError> {
        let fin = flags & FLAG_FIN != 0;
        let need = |what, n: usize| {
            if b.len() < n {
                Err(FrameError::Malformed { what })
            } else {
                Ok(())
            }
        };
        Ok(Some(match kind {
            1 => {
                need("SYN_STREAM", 10)?;
                Frame::SynStream {
                    stream: u32_at(b, 0) & 0x7fff_ffff,
                    associated: u32_at(b, 4) & 0x7fff_ffff,
                    priority: b[8] >> 5,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.headers("SYN_STREAM", &b[10..])?,
                }
            }
            2 => {
                need("SYN_REPLY", 4)?;
                Frame::SynReply {
                    stream: u32_at(b, 0) & 0x7fff_ffff,
                    fin,
                    headers: self.headers("SYN_REPLY", &b[4..])?,
                }
            }
            3 => {
                need("RST_STREAM", 8)?;
                Frame::RstStream {
                    stream: u32_at(b, 0) & 0x7fff_ffff,
                    status: u32_at(b, 4),
                }
            }
            4 => {
                need("SETTINGS", 4)?;
                let n = usize::try_from(u32_at(b, 0)).unwrap_or(usize::MAX);
                if b.len() != 4 + n.saturating_mul(8) {
                    return Err(FrameError::Malformed { what: "SETTINGS" });
                }
                let entries = (0..n)
                    .map(|i| {
                        let at = 4 + i * 8;
                        (b[at], u32_at(b, at) & 0x00ff_ffff, u32_at(b, at + 4))
                    })
                    .collect();
                Frame::Settings { entries }
            }
            6 => {
                need("PING", 4)?;
                Frame::Ping { id: u32_at(b, 0) }
            }
            7 => {
                need("GOAWAY", 8)?;
                Frame::GoAway {
                    last_good: u32_at(b, 0) & 0x7fff_ffff,
                    status: u32_at(b, 4),
                }
            }
            8 => {
                need("HEADERS", 4)?;
                Frame::Headers {
                    stream: u32_at(b, 0) & 0x7fff_ffff,
                    fin,
                    headers: self.headers("HEADERS", &b[4..])?,
                }
            }
            9 => {
                need("WINDOW_UPDATE", 8)?;
                Frame::WindowUpdate {
                    stream: u32_at(b, 0) & 0x7fff_ffff,
                    delta: u32_at(b, 4) & 0x7fff_ffff,
                }
            }
            _ => return Ok(None),
        }))
    }

    fn headers(&mut self, what: &'static str, z: &[u8]) -> Result<Headers, FrameError> {
        let b = self.z.decompress(z)?;
        let bad = || FrameError::Malformed { what };
        let mut at = 0usize;
        let word = |at: &mut usize| -> Result<usize, FrameError> {
            let w = b.get(*at..*at + 4).ok_or_else(bad)?;
            *at += 4;
            usize::try_from(u32_at(w, 0)).map_err(|_| bad())
        };
        let count = word(&mut at)?;
        let mut h = Vec::new();
        for _ in 0..count {
            let mut pair = [String::new(), String::new()];
            for s in &mut pair {
                let n = word(&mut at)?;
                let bytes = b.get(at..at + n).ok_or_else(bad)?;
                at += n;
                *s = String::from_utf8(bytes.to_vec()).map_err(|_| bad())?;
            }
            let [k, v] = pair;
            h.push((k.to_ascii_lowercase(), v));
        }
        Ok(h)
    }
}

/// Encodes frames, keeping the header compression context: frames must be
/// written in the order they are encoded.
#[derive(Default)]
pub struct Encoder {
    z: Compressor,
}

fn control(out: &mut Vec<u8>, kind: u16, flags: u8, body: &[u8]) {
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    length(out, flags, body.len());
    out.extend_from_slice(body);
}

fn length(out: &mut Vec<u8>, flags: u8, len: usize) {
    let len = u32::try_from(len.min(MAX_PAYLOAD)).unwrap_or(0);
    out.extend_from_slice(&((u32::from(flags) << 24) | len).to_be_bytes());
}

fn fin_flag(fin: bool) -> u8 {
    if fin {
        FLAG_FIN
    } else {
        0
    }
}

impl Encoder {
    /// Appends `f`'s bytes to `out`. A data frame longer than
    /// [`MAX_PAYLOAD`] is the caller's mistake and is cut.
    pub fn encode(&mut self, f: &Frame, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let mut b = Vec::new();
        match f {
            Frame::Data { stream, fin, data } => {
                out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
                let n = data.len().min(MAX_PAYLOAD);
                length(out, fin_flag(*fin), n);
                out.extend_from_slice(&data[..n]);
                return Ok(());
            }
            Frame::SynStream {
                stream,
                associated,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                b.extend_from_slice(&stream.to_be_bytes());
                b.extend_from_slice(&associated.to_be_bytes());
                b.extend_from_slice(&[(priority & 7) << 5, 0]);
                b.extend_from_slice(&self.header_block(headers)?);
                let uni = if *unidirectional {
                    FLAG_UNIDIRECTIONAL
                } else {
                    0
                };
                control(out, 1, fin_flag(*fin) | uni, &b);
            }
            Frame::SynReply {
                stream,
                fin,
                headers,
            } => {
                b.extend_from_slice(&stream.to_be_bytes());
                b.extend_from_slice(&self.header_block(headers)?);
                control(out, 2, fin_flag(*fin), &b);
            }
            Frame::RstStream { stream, status } => {
                b.extend_from_slice(&stream.to_be_bytes());
                b.extend_from_slice(&status.to_be_bytes());
                control(out, 3, 0, &b);
            }
            Frame::Settings { entries } => {
                let n = u32::try_from(entries.len()).unwrap_or(0);
                b.extend_from_slice(&n.to_be_bytes());
                for (flags, id, value) in entries {
                    b.extend_from_slice(
                        &((u32::from(*flags) << 24) | (id & 0xff_ffff)).to_be_bytes(),
                    );
                    b.extend_from_slice(&value.to_be_bytes());
                }
                control(out, 4, 0, &b);
            }
            Frame::Ping { id } => control(out, 6, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => {
                b.extend_from_slice(&last_good.to_be_bytes());
                b.extend_from_slice(&status.to_be_bytes());
                control(out, 7, 0, &b);
            }
            Frame::Headers {
                stream,
                fin,
                headers,
            } => {
                b.extend_from_slice(&stream.to_be_bytes());
                b.extend_from_slice(&self.header_block(headers)?);
                control(out, 8, fin_flag(*fin), &b);
            }
            Frame::WindowUpdate { stream, delta } => {
                b.extend_from_slice(&stream.to_be_bytes());
                b.extend_from_slice(&delta.to_be_bytes());
                control(out, 9, 0, &b);
            }
        }
        Ok(())
    }

    fn header_block(&mut self, h: &Headers) -> Result<Vec<u8>, FrameError> {
        let mut b = Vec::new();
        let n = |len: usize| u32::try_from(len).unwrap_or(0).to_be_bytes();
        b.extend_from_slice(&n(h.len()));
        for (k, v) in h {
            let k = k.to_ascii_lowercase();
            b.extend_from_slice(&n(k.len()));
            b.extend_from_slice(k.as_bytes());
            b.extend_from_slice(&n(v.len()));
            b.extend_from_slice(v.as_bytes());
        }
        Ok(self.z.compress(&b)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_frame_round_trips_in_order() {
        let frames = vec![
            Frame::SynStream {
                stream: 1,
                associated: 0,
                priority: 2,
                fin: false,
                unidirectional: false,
                headers: h(&[("streamtype", "error"), ("port", "80")]),
            },
            Frame::SynReply {
                stream: 1,
                fin: false,
                headers: Vec::new(),
            },
            Frame::Data {
                stream: 1,
                fin: true,
                data: b"hello".to_vec(),
            },
            Frame::RstStream {
                stream: 3,
                status: 5,
            },
            Frame::Settings {
                entries: vec![(0, 7, 65536)],
            },
            Frame::Ping { id: 2 },
            Frame::GoAway {
                last_good: 3,
                status: 0,
            },
            Frame::Headers {
                stream: 5,
                fin: true,
                headers: h(&[("a", "b\0c")]),
            },
            Frame::WindowUpdate {
                stream: 0,
                delta: 1000,
            },
        ];
        let (mut enc, mut dec) = (Encoder::default(), Decoder::default());
        let mut wire = Vec::new();
        for f in &frames {
            enc.encode(f, &mut wire).unwrap();
        }
        // Bytes arrive in pieces: nothing is decoded before it is whole.
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(3) {
            buf.extend_from_slice(chunk);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert!(buf.is_empty());
    }

    #[test]
    fn unknown_control_frames_are_skipped_and_other_versions_refused() {
        let mut dec = Decoder::default();
        // type 10 (CREDENTIAL, gone in 3.1), then a PING.
        let mut buf = vec![0x80, 3, 0, 10, 0, 0, 0, 2, 9, 9];
        let mut enc = Encoder::default();
        enc.encode(&Frame::Ping { id: 1 }, &mut buf).unwrap();
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(Frame::Ping { id: 1 }));
        let mut v2 = vec![0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1];
        assert!(matches!(dec.decode(&mut v2), Err(FrameError::Version(2))));
    }

    #[test]
    fn header_lookup_ignores_case_and_takes_the_first_value() {
        let hs = h(&[("streamtype", "data"), ("port", "80\08080")]);
        assert_eq!(header(&hs, "streamType"), Some("data"));
        assert_eq!(header(&hs, "Port"), Some("80"));
        assert_eq!(header(&hs, "requestID"), None);
    }
}
