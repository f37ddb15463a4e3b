//! What COPY and ADD read: paths in the build context or in another
//! stage's (or image's) root filesystem. Both are hostile trees: a source
//! path is resolved by fd inside its root (`openat2` RESOLVE_IN_ROOT, so
//! `/x`, `..` and symlinks stay in it, as docker scopes them), wildcards are
//! matched component by component, and below a resolved source nothing is
//! followed: symlinks are copied as symlinks. The sources become the
//! entries of a tar (named relative to the destination), hashed without
//! their times for the build cache.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

use crate::store::digest::{Algorithm, Digest, Hasher};

/// A source that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Nothing matches.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// The pattern leaves its root.
    #[error("{0}: forbidden path outside the build context")]
    Outside(String),
    /// Reading failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The source.
        path: String,
        /// Why.
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a str) -> impl FnOnce(io::Error) -> SourceError + 'a {
    move |source| SourceError::Io {
        what,
        path: path.to_string(),
        source,
    }
}

/// A tree sources are read from: the context or a stage's root.
pub struct Root {
    fd: OwnedFd,
}

/// One resolved source: an `O_PATH` fd and its path as the user wrote it.
pub struct Source {
    fd: OwnedFd,
    /// The path in its root, for messages and names.
    pub rel: String,
    /// Whether it is a directory (its contents are copied).
    pub is_dir: bool,
    /// Fetched from a URL (ADD copies it as it is, archive or not).
    pub remote: bool,
}

impl Source {
    /// A path the kernel resolves to this very object (`/proc/self/fd/N`).
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Its text, when it is a file of at most `max` bytes of UTF-8.
    pub fn read_text(&self, max: u64) -> io::Result<String> {
        if self.is_dir {
            return Err(io::Error::other("is a directory"));
        }
        let f = std::fs::File::open(self.proc_path())?;
        let mut text = String::new();
        f.take(max).read_to_string(&mut text)?;
        Ok(text)
    }

    /// The last component of its path (for a file copied into a directory).
    pub fn base_name(&self) -> Vec<u8> {
        Path::new(&self.rel)
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default()
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Root {
    /// Opens the tree at `dir`.
    pub fn open(dir: &Path) -> Result<Root, SourceError> {
        let shown = dir.display().to_string();
        let f = std::fs::File::open(dir).map_err(io_err("open", &shown))?;
        Ok(Root { fd: f.into() })
    }

    /// A tree already open (a mounted stage's root).
    pub fn from_fd(fd: OwnedFd) -> Root {
        Root { fd }
    }

    /// Resolves `rel` inside the root.
    fn resolve(&self, rel: &str) -> Result<OwnedFd, nix::errno::Errno> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let p = if rel.is_empty() { "." } else { rel };
        openat2(&self.fd, p, how)
    }

    /// The sources `pattern` names (with wildcards, every match, sorted); an
    /// error when there is none.
    pub fn sources(&self, pattern: &str) -> Result<Vec<Source>, SourceError> {
        // Cleaned lexically: `..` cannot climb above the root, as docker's
        // context paths cannot.
        let mut parts: Vec<&str> = Vec::new();
        for c in pattern.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(SourceError::Outside(pattern.into()));
                    }
                }
                c => parts.push(c),
            }
        }
        let mut found = vec![String::new()];
        for part in parts {
            let mut next = Vec::new();
            for base in found {
                let join = |n: &str| {
                    if base.is_empty() {
                        n.to_string()
                    } else {
                        format!("{base}/{n}")
                    }
                };
                if !has_glob(part) {
                    next.push(join(part));
                    continue;
                }
                let Ok(dfd) = self.resolve(&base) else {
                    continue;
                };
                let Ok(rd) = std::fs::read_dir(format!("/proc/self/fd/{}", dfd.as_raw_fd())) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .filter(|n| berth_rules::dockerignore::component(part.as_bytes(), n.as_bytes()))
                    .collect();
                names.sort();
                next.extend(names.iter().map(|n| join(n)));
            }
            found = next;
        }
        let mut out = Vec::new();
        for rel in found {
            let Ok(fd) = self.resolve(&rel) else {
                continue;
            };
            let st = nix::sys::stat::fstat(&fd).map_err(|e| SourceError::Io {
                what: "stat",
                path: rel.clone(),
                source: e.into(),
            })?;
            out.push(Source {
                remote: false,
                fd,
                is_dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
                rel: if rel.is_empty() { ".".into() } else { rel },
            });
        }
        if out.is_empty() {
            return Err(SourceError::NotFound(pattern.into()));
        }
        Ok(out)
    }
}

/// Ownership and mode given to what is copied (`--chown`, `--chmod`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// uid:gid; None keeps the source's (COPY --from) or makes it 0:0.
    pub ids: Option<(u32, u32)>,
    /// Permission bits for every entry.
    pub mode: Option<u32>,
}

/// One entry to copy: where it comes from and its name below the
/// destination directory.
pub struct Entry {
    path: PathBuf,
    /// The name below the destination (`a/b`), never empty.
    pub name: Vec<u8>,
    meta: std::fs::Metadata,
}

/// The entries of `src`, named below the destination: a directory's
/// contents (recursively), or the file itself as `as_name`. `skip` leaves
/// out context paths (a `.dockerignore`'s), given the source's context path.
pub fn entries(
    src: &Source,
    as_name: &[u8],
    skip: &dyn Fn(&str) -> bool,
) -> Result<Vec<Entry>, SourceError> {
    let base = src.proc_path();
    if !src.is_dir {
        // The resolved object itself (a symlink source was followed in its root).
        let meta = std::fs::metadata(&base).map_err(io_err("stat", &src.rel))?;
        return Ok(vec![Entry {
            path: base,
            name: as_name.to_vec(),
            meta,
        }]);
    }
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, Vec<u8>, String)> = vec![(base, Vec::new(), src.rel.clone())];
    while let Some((dir, prefix, rel)) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io_err("read", &rel))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let path = dir.join(&n);
            let crel = if rel == "." {
                n.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", n.to_string_lossy())
            };
            if skip(&crel) {
                continue;
            }
            let mut name = prefix.clone();
            if !name.is_empty() {
                name.push(b'/');
            }
            name.extend_from_slice(n.as_bytes());
            let meta = std::fs::symlink_metadata(&path).map_err(io_err("stat", &crel))?;
            if meta.is_dir() {
                stack.push((path.clone(), name.clone(), crel));
            }
            out.push(Entry { path, name, meta });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Hashes what the entries will make, times left out: the build cache's
/// input for COPY and ADD.
pub fn hash(entries: &[Entry], owner: Owner, h: &mut Hasher) -> Result<(), SourceError> {
    for e in entries {
        let (uid, gid) = owner.ids.unwrap_or((e.meta.uid(), e.meta.gid()));
        let mode = owner.mode.unwrap_or(e.meta.mode() & 0o7777);
        h.update(&e.name);
        h.update(
            format!(
                "\0{:o}\0{uid}\0{gid}\0{:o}\0",
                e.meta.mode() & libc::S_IFMT,
                mode
            )
            .as_bytes(),
        );
        let ft = e.meta.file_type();
        if ft.is_symlink() {
            let t = std::fs::read_link(&e.path).map_err(io_err("read link", "source"))?;
            h.update(t.as_os_str().as_bytes());
        } else if ft.is_file() {
            let mut f = std::fs::File::open(&e.path).map_err(io_err("read", "source"))?;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = f.read(&mut buf).map_err(io_err("read", "source"))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        h.update(b"\n");
    }
    Ok(())
}

/// A digest of the entries (see [`hash`]).
pub fn digest(entries: &[Entry], owner: Owner) -> Result<Digest, SourceError> {
    let mut h = Hasher::new(Algorithm::Sha256);
    hash(entries, owner, &mut h)?;
    Ok(h.finish())
}

/// Writes the entries as a tar to `w`, with `owner` applied; hard links
/// between copied files are kept.
pub fn write_tar(entries: &[Entry], owner: Owner, w: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let mut links: std::collections::HashMap<(u64, u64), Vec<u8>> = Default::default();
    for e in entries {
        let m = &e.meta;
        let ft = m.file_type();
        let mut h = tar::Header::new_gnu();
        let (uid, gid) = owner.ids.unwrap_or((m.uid(), m.gid()));
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        h.set_mode(owner.mode.unwrap_or(m.mode() & 0o7777));
        h.set_mtime(m.mtime().max(0).unsigned_abs());
        let name = std::ffi::OsStr::from_bytes(&e.name);
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, name, io::empty())?;
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            let target = std::fs::read_link(&e.path)?;
            b.append_link(&mut h, name, target)?;
        } else if ft.is_file() {
            if m.nlink() > 1 {
                if let Some(first) = links.get(&(m.dev(), m.ino())) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, name, std::ffi::OsStr::from_bytes(first))?;
                    continue;
                }
                links.insert((m.dev(), m.ino()), e.name.clone());
            }
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(m.len());
            let f = std::fs::File::open(&e.path)?;
            b.append_data(&mut h, name, f.take(m.len()))?;
        } else if ft.is_fifo() {
            h.set_entry_type(tar::EntryType::Fifo);
            h.set_size(0);
            b.append_data(&mut h, name, io::empty())?;
        } else if ft.is_char_device() || ft.is_block_device() {
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            let rdev = m.rdev();
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            h.set_size(0);
            b.append_data(&mut h, name, io::empty())?;
        }
        // Sockets are not copied, as docker's copier skips them.
    }
    b.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempdir::Dir {
        let d = tempdir::Dir::new("sources");
        std::fs::create_dir_all(d.0.join("src/sub")).unwrap();
        std::fs::write(d.0.join("src/a.txt"), "a").unwrap();
        std::fs::write(d.0.join("src/b.txt"), "b").unwrap();
        std::fs::write(d.0.join("src/sub/c"), "c").unwrap();
        std::os::unix::fs::symlink("/etc", d.0.join("escape")).unwrap();
        d
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new(n: &str) -> Dir {
                let p = std::env::temp_dir().join(format!("berth-{n}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn wildcards_match_and_paths_stay_in_their_root() {
        let d = tree();
        let root = Root::open(&d.0).unwrap();
        let s = root.sources("src/*.txt").unwrap();
        let names: Vec<&str> = s.iter().map(|s| s.rel.as_str()).collect();
        assert_eq!(names, ["src/a.txt", "src/b.txt"]);
        assert!(matches!(
            root.sources("src/*.md"),
            Err(SourceError::NotFound(_))
        ));
        assert!(matches!(root.sources("../x"), Err(SourceError::Outside(_))));
        // An absolute symlink resolves inside the root: /etc is not the host's.
        assert!(matches!(
            root.sources("escape/passwd"),
            Err(SourceError::NotFound(_))
        ));
        let all = root.sources("/src").unwrap();
        assert!(all[0].is_dir);
        let e = entries(&all[0], b"", &|p| p == "src/b.txt").unwrap();
        let names: Vec<&[u8]> = e.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(names, [&b"a.txt"[..], b"sub", b"sub/c"]);
        // Times do not change the hash; contents and owners do.
        let h1 = digest(&e, Owner::default()).unwrap();
        std::fs::File::options()
            .write(true)
            .open(d.0.join("src/a.txt"))
            .unwrap()
            .set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        let e = entries(&all[0], b"", &|p| p == "src/b.txt").unwrap();
        assert_eq!(digest(&e, Owner::default()).unwrap(), h1);
        let owned = Owner {
            ids: Some((7, 7)),
            mode: None,
        };
        assert_ne!(digest(&e, owned).unwrap(), h1);
        std::fs::write(d.0.join("src/a.txt"), "changed").unwrap();
        let e = entries(&all[0], b"", &|_| false).unwrap();
        assert_ne!(digest(&e, Owner::default()).unwrap(), h1);
        let mut tar = Vec::new();
        write_tar(&e, owned, &mut tar).unwrap();
        let mut ar = tar::Archive::new(&tar[..]);
        let got: Vec<(String, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a.txt".into(), 7),
                ("b.txt".into(), 7),
                ("sub".into(), 7),
                ("sub/c".into(), 7)
            ]
        );
    }
}
