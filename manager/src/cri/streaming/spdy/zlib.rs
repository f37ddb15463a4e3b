//! SPDY/3 header compression: one zlib stream per direction for the
//! whole session, primed with the protocol's dictionary (SPDY/3 §2.6.10.1),
//! each header block ended with a sync flush.

use std::sync::OnceLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The header names the dictionary lists, each as a 4-byte big-endian
/// length and the name.
const WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// What follows the names, unprefixed: status codes, reason phrases, dates,
/// content types and common values.
const TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,",
    "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch",
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 header compression dictionary (1423 bytes).
pub fn dictionary() -> &'static [u8] {
    static D: OnceLock<Vec<u8>> = OnceLock::new();
    D.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            let len = u32::try_from(w.len()).expect("short word");
            d.extend_from_slice(&len.to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

/// A header block could not be compressed or decompressed.
#[derive(Debug, thiserror::Error)]
#[error("spdy header compression: {0}")]
pub struct ZlibError(String);

/// The sending side's compression context.
pub struct Compressor(Compress);

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Compressor {
    /// A fresh context with the dictionary set.
    pub fn new() -> Compressor {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(dictionary())
            .expect("a fresh zlib stream takes a dictionary");
        Compressor(c)
    }

    /// `block` compressed and sync-flushed, continuing the stream.
    pub fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, ZlibError> {
        let mut out = Vec::with_capacity(block.len() / 2 + 64);
        let start = self.0.total_in();
        loop {
            let done = usize::try_from(self.0.total_in() - start).unwrap_or(usize::MAX);
            out.reserve(256);
            self.0
                .compress_vec(&block[done..], &mut out, FlushCompress::Sync)
                .map_err(|e| ZlibError(e.to_string()))?;
            let done = usize::try_from(self.0.total_in() - start).unwrap_or(usize::MAX);
            // A sync flush is complete when all input is taken and output
            // space was left over.
            if done == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The receiving side's decompression context.
pub struct Decompressor {
    z: Decompress,
    primed: bool,
}

impl Default for Decompressor {
    fn default() -> Self {
        Self::new()
    }
}

/// The most a header block may inflate to: headers are small, a bomb is not.
const MAX_BLOCK: usize = 1 << 20;

impl Decompressor {
    /// A fresh context (the dictionary is set when the stream asks for it).
    pub fn new() -> Decompressor {
        Decompressor {
            z: Decompress::new(true),
            primed: false,
        }
    }

    /// The header block `data` inflated, continuing the stream.
    pub fn decompress(&mut self, data: &[u8]) -> Result<Vec<u8>, ZlibError> {
        let mut out = Vec::with_capacity(data.len() * 4 + 64);
        let start = self.z.total_in();
        loop {
            let done = usize::try_from(self.z.total_in() - start).unwrap_or(usize::MAX);
            if out.len() == out.capacity() {
                out.reserve(out.len().max(256));
            }
            match self
                .z
                .decompress_vec(&data[done..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() && !self.primed => {
                    self.primed = true;
                    self.z
                        .set_dictionary(dictionary())
                        .map_err(|e| ZlibError(format!("set dictionary: {e}")))?;
                }
                Err(e) => return Err(ZlibError(e.to_string())),
            }
            let done = usize::try_from(self.z.total_in() - start).unwrap_or(usize::MAX);
            if out.len() > MAX_BLOCK {
                return Err(ZlibError(format!(
                    "header block inflates past {MAX_BLOCK} bytes"
                )));
            }
            if done == data.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_protocols() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // Its Adler-32, as every SPDY/3 peer's zlib header names it.
        let (mut a, mut b) = (1u32, 0u32);
        for &x in d {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn blocks_round_trip_across_one_stream() {
        let (mut c, mut d) = (Compressor::new(), Decompressor::new());
        for block in [
            &b"streamtype\0error"[..],
            b"",
            &[7u8; 5000][..],
            b"port 8080",
        ] {
            let z = c.compress(block).unwrap();
            assert_eq!(d.decompress(&z).unwrap(), block);
        }
    }

    #[test]
    fn a_bomb_is_refused() {
        let mut c = Compressor::new();
        let z = c.compress(&vec![0u8; MAX_BLOCK + 4096]).unwrap();
        assert!(Decompressor::new().decompress(&z).is_err());
    }
}
