//! The content store: blobs addressed by digest under `<root>/blobs/<alg>/<hex>`.
//! A blob is written to `<root>/ingest/<alg>-<hex>`, hashed and counted while
//! it streams in, checked against the expected digest and size, fsynced and
//! renamed into place: a blob in `blobs/` is always complete and correct. An
//! interrupted write stays in `ingest/` and the next writer resumes from its
//! end (its bytes are hashed again first, never trusted).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::store::digest::{Digest, Hasher};

/// A content store failure.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The blob is not in the store.
    #[error("content {0} not found")]
    NotFound(Digest),
    /// What was written does not hash to the expected digest.
    #[error("content {expected}: written data has digest {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes.
        actual: Digest,
    },
    /// The size differs from the expected one.
    #[error("content {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// Bytes expected.
        expected: u64,
        /// Bytes written (or, on overflow, at least).
        actual: u64,
    },
    /// Another writer holds the same blob's ingest.
    #[error("content {0} is being written by another client")]
    Busy(Digest),
    /// An I/O failure on a store path.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContentError + 'a {
    move |source| ContentError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A blob's digest and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// The store on disk.
#[derive(Clone, Debug)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating) a store at `root`.
    pub fn open(root: &Path) -> Result<ContentStore, ContentError> {
        for d in ["blobs/sha256", "blobs/sha512", "ingest"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err("create", &p))?;
        }
        Ok(ContentStore {
            root: root.to_path_buf(),
        })
    }

    /// Removes what interrupted writers left in `ingest/`: blobs of unknown
    /// digest (never resumable), and resumable ones untouched for `age`.
    /// Called at start, before any writer runs.
    pub fn clean_stale(&self, age: std::time::Duration) {
        let now = std::time::SystemTime::now();
        for e in fs::read_dir(self.root.join("ingest"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|d| d > age);
            if name.starts_with("unknown-") || old {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// The files and bytes interrupted writes hold in `ingest/` (resumable
    /// downloads).
    pub fn partial(&self) -> (usize, u64) {
        fs::read_dir(self.root.join("ingest"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
    }

    /// Where a blob lives.
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().name())
            .join(d.hex())
    }

    fn ingest_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("ingest")
            .join(format!("{}-{}", d.algorithm().name(), d.hex()))
    }

    /// Whether the blob is stored.
    pub fn exists(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Digest and size of a stored blob.
    pub fn info(&self, d: &Digest) -> Result<Info, ContentError> {
        let p = self.path(d);
        match fs::metadata(&p) {
            Ok(m) => Ok(Info {
                digest: d.clone(),
                size: m.len(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound(d.clone())),
            Err(e) => Err(io_err("stat", &p)(e)),
        }
    }

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File, ContentError> {
        let p = self.path(d);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound(d.clone())
            } else {
                io_err("open", &p)(e)
            }
        })
    }

    /// Reads a whole (small) blob, refusing one larger than `max` bytes.
    pub fn read_all(&self, d: &Digest, max: u64) -> Result<Vec<u8>, ContentError> {
        let info = self.info(d)?;
        if info.size > max {
            return Err(ContentError::SizeMismatch {
                digest: d.clone(),
                expected: max,
                actual: info.size,
            });
        }
        let mut v = Vec::with_capacity(usize::try_from(info.size).unwrap_or(0));
        self.open_blob(d)?
            .read_to_end(&mut v)
            .map_err(io_err("read", &self.path(d)))?;
        Ok(v)
    }

    /// Starts (or resumes) writing the blob `expected`, of `size` bytes if known.
    pub fn writer(&self, expected: &Digest, size: Option<u64>) -> Result<Writer, ContentError> {
        let path = self.ingest_path(expected);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let mut file = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| ContentError::Busy(expected.clone()))?;
        // Resume: what an earlier writer left is hashed again, not trusted.
        let mut hasher = Hasher::new(expected.algorithm());
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io_err("read", &path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            written += n as u64;
        }
        let w = Writer {
            store: self.clone(),
            file,
            hasher,
            written,
            expected: expected.clone(),
            size,
            path,
        };
        w.check_overflow()?;
        Ok(w)
    }

    /// Writes a whole blob from memory.
    pub fn write_all(&self, expected: &Digest, data: &[u8]) -> Result<(), ContentError> {
        if self.exists(expected) {
            return Ok(());
        }
        let mut w = self.writer(expected, Some(data.len() as u64))?;
        if w.offset() > 0 {
            // Start over: an in-memory blob is cheaper to rewrite than to splice.
            w.reset()?;
        }
        w.write(data)?;
        w.commit()
    }

    /// Stores a blob whose digest is not known beforehand (a `docker save`
    /// layer): it is hashed (sha256) as it streams, then put in place.
    pub fn write_unknown(&self, r: &mut impl Read) -> Result<Info, ContentError> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self
            .root
            .join("ingest")
            .join(format!("unknown-{}-{n}", std::process::id()));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("create", &path))?;
        let mut hasher = Hasher::new(crate::store::digest::Algorithm::Sha256);
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        let result = (|| {
            loop {
                let k = r.read(&mut buf).map_err(io_err("read into", &path))?;
                if k == 0 {
                    break;
                }
                f.write_all(&buf[..k]).map_err(io_err("write", &path))?;
                hasher.update(&buf[..k]);
                size += k as u64;
            }
            f.sync_all().map_err(io_err("fsync", &path))
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        let digest = hasher.finish();
        let dest = self.path(&digest);
        fs::rename(&path, &dest).map_err(io_err("rename", &dest))?;
        Ok(Info { digest, size })
    }

    /// Removes a blob.
    pub fn delete(&self, d: &Digest) -> Result<(), ContentError> {
        let p = self.path(d);
        fs::remove_file(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound(d.clone())
            } else {
                io_err("remove", &p)(e)
            }
        })
    }

    /// Every stored blob.
    pub fn list(&self) -> Result<Vec<Info>, ContentError> {
        let mut out = Vec::new();
        for alg in ["sha256", "sha512"] {
            let dir = self.root.join("blobs").join(alg);
            for e in fs::read_dir(&dir).map_err(io_err("read", &dir))?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Ok(d) = format!("{alg}:{name}").parse::<Digest>() {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    out.push(Info { digest: d, size });
                }
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }
}

/// An ingest in progress; [`Writer::commit`] verifies and publishes it.
pub struct Writer {
    store: ContentStore,
    file: Flock<File>,
    hasher: Hasher,
    written: u64,
    expected: Digest,
    size: Option<u64>,
    path: PathBuf,
}

impl Writer {
    /// Bytes already written (resume from here).
    pub fn offset(&self) -> u64 {
        self.written
    }

    /// Discards what an earlier writer left.
    pub fn reset(&mut self) -> Result<(), ContentError> {
        self.file
            .set_len(0)
            .map_err(io_err("truncate", &self.path))?;
        self.hasher = Hasher::new(self.expected.algorithm());
        self.written = 0;
        Ok(())
    }

    fn check_overflow(&self) -> Result<(), ContentError> {
        match self.size {
            Some(s) if self.written > s => Err(ContentError::SizeMismatch {
                digest: self.expected.clone(),
                expected: s,
                actual: self.written,
            }),
            _ => Ok(()),
        }
    }

    /// Appends bytes.
    pub fn write(&mut self, data: &[u8]) -> Result<(), ContentError> {
        self.file
            .write_all(data)
            .map_err(io_err("write", &self.path))?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        self.check_overflow()
    }

    /// Verifies size and digest, syncs, and moves the blob into place. On a
    /// mismatch the ingest is discarded.
    pub fn commit(self) -> Result<(), ContentError> {
        let discard = |e| {
            let _ = fs::remove_file(&self.path);
            e
        };
        if let Some(s) = self.size {
            if self.written != s {
                return Err(discard(ContentError::SizeMismatch {
                    digest: self.expected.clone(),
                    expected: s,
                    actual: self.written,
                }));
            }
        }
        let actual = self.hasher.finish();
        if actual != self.expected {
            let _ = fs::remove_file(&self.path);
            return Err(ContentError::DigestMismatch {
                expected: self.expected,
                actual,
            });
        }
        self.file.sync_all().map_err(io_err("fsync", &self.path))?;
        let dest = self.store.path(&self.expected);
        fs::rename(&self.path, &dest).map_err(io_err("rename", &dest))?;
        // The rename is durable once its directory is.
        if let Some(dir) = dest.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("fsync", dir))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str) -> (ContentStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!("berth-content-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        (ContentStore::open(&dir).unwrap(), dir)
    }

    #[test]
    fn verified_writes_resume_and_mismatches() {
        let (s, dir) = store("t");
        let data = b"hello, content".repeat(1000);
        let d = crate::store::digest::sha256_of(&data);
        // An interrupted write resumes from where it stopped.
        let mut w = s.writer(&d, Some(data.len() as u64)).unwrap();
        w.write(&data[..5000]).unwrap();
        drop(w);
        let mut w = s.writer(&d, Some(data.len() as u64)).unwrap();
        assert_eq!(w.offset(), 5000);
        // A second writer of the same blob is refused while one holds it.
        assert!(matches!(s.writer(&d, None), Err(ContentError::Busy(_))));
        w.write(&data[5000..]).unwrap();
        w.commit().unwrap();
        assert_eq!(s.read_all(&d, 1 << 20).unwrap(), data);
        assert_eq!(s.info(&d).unwrap().size, data.len() as u64);

        // Wrong bytes never reach blobs/.
        let other = crate::store::digest::sha256_of(b"other");
        let mut w = s.writer(&other, Some(5)).unwrap();
        w.write(b"OTHER").unwrap();
        assert!(matches!(
            w.commit(),
            Err(ContentError::DigestMismatch { .. })
        ));
        assert!(!s.exists(&other));
        let mut w = s.writer(&other, Some(3)).unwrap();
        assert!(matches!(
            w.write(b"other"),
            Err(ContentError::SizeMismatch { .. })
        ));
        s.delete(&d).unwrap();
        assert!(matches!(s.info(&d), Err(ContentError::NotFound(_))));
        fs::remove_dir_all(dir).unwrap();
    }
}
