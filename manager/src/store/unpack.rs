//! Applies one layer tar to a snapshot directory, as overlayfs wants it:
//! `.wh.<name>` becomes a whiteout (a 0/0 character device), `.wh..wh..opq`
//! marks its directory opaque (`trusted.overlay.opaque=y`), and hard links,
//! device nodes, FIFOs, xattrs, ownership, modes and times are kept.
//!
//! Layer tars are hostile. Every entry is placed through directory fds
//! walked one component at a time without following symlinks. An absolute
//! path is rooted in the layer (`/` is the layer's root, `/etc/x` is
//! `etc/x`), as tar, containerd and podman take it; an entry that would
//! land outside the directory — a `..` past the root, a parent that is a
//! symlink, a hard link to such a path, a whiteout of `.` or `..` — is
//! refused and the unpack fails; nothing is ever written through a link.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmodat, fstatat, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::store::digest::{Digest, Hasher};

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// An entry that would leave the snapshot, refused.
    #[error("layer entry {entry:?}: {why}: refused")]
    Hostile {
        /// The entry's path in the tar.
        entry: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The tar stream is damaged.
    #[error("layer tar: {0}")]
    Tar(io::Error),
    /// A system call on an entry failed.
    #[error("layer entry {entry:?}: {what}: {errno}")]
    Sys {
        /// The entry.
        entry: String,
        /// The operation.
        what: &'static str,
        /// Why.
        errno: Errno,
    },
}

/// Counts and hashes what is read through it: the DiffID of a layer is the
/// digest of its uncompressed tar.
struct Hashing<R> {
    inner: R,
    hasher: Hasher,
    /// The stream has ended (shared: the tar reader borrows the rest).
    eof: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof.set(true);
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A tar path made safe: its normal components relative to the layer's
/// root. A leading `/` or `./` is the layer's root; a `..` goes up a
/// component, and one that would leave the root is refused.
pub fn clean(raw: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let p = Path::new(std::ffi::OsStr::from_bytes(raw));
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.as_bytes().to_vec()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err("path escapes the layer");
                }
            }
            Component::Prefix(_) => return Err("path has a prefix"),
        }
    }
    Ok(out)
}

/// The directory the layer is applied to, and the walk through it.
struct Root {
    fd: OwnedFd,
    /// Whiteout names are whiteouts (a layer), else plain names.
    layer: bool,
    /// The layers below, topmost first: a hard link may name their files.
    lowers: Vec<OwnedFd>,
}

impl Root {
    /// Opens the directory `parts` below the root, creating missing ones
    /// (0755, as tar does for implied parents) and refusing symlinks.
    fn dir(&self, parts: &[Vec<u8>], entry: &str) -> Result<OwnedFd, UnpackError> {
        let mut cur = self
            .fd
            .try_clone()
            .map_err(|e| sys(entry, "dup", Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
        for p in parts {
            let name = Path::new(std::ffi::OsStr::from_bytes(p));
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            cur = match openat(&cur, name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    mkdirat(&cur, name, Mode::from_bits_truncate(0o755))
                        .map_err(|e| sys(entry, "mkdir parent", e))?;
                    openat(&cur, name, flags, Mode::empty())
                        .map_err(|e| sys(entry, "open parent", e))?
                }
                Err(Errno::ENOTDIR) | Err(Errno::ELOOP) => {
                    return Err(UnpackError::Hostile {
                        entry: entry.into(),
                        why: "a parent is a symlink or not a directory",
                    })
                }
                Err(e) => return Err(sys(entry, "open parent", e)),
            };
        }
        Ok(cur)
    }
}

fn sys(entry: &str, what: &'static str, errno: Errno) -> UnpackError {
    UnpackError::Sys {
        entry: entry.into(),
        what,
        errno,
    }
}

/// Removes whatever is at `name` in `dir` (a tree, recursively).
fn remove_any(dir: &OwnedFd, name: &Path, entry: &str) -> Result<(), UnpackError> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) => {
            let sub = openat(
                dir,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| sys(entry, "open to remove", e))?;
            let names: Vec<_> = nix::dir::Dir::from_fd(
                sub.try_clone()
                    .map_err(|_| sys(entry, "dup", Errno::EBADF))?,
            )
            .map_err(|e| sys(entry, "read dir", e))?
            .iter()
            .flatten()
            .map(|e| e.file_name().to_bytes().to_vec())
            .filter(|n| n != b"." && n != b"..")
            .collect();
            for n in names {
                remove_any(&sub, Path::new(std::ffi::OsStr::from_bytes(&n)), entry)?;
            }
            unlinkat(dir, name, UnlinkatFlags::RemoveDir).map_err(|e| sys(entry, "rmdir", e))
        }
        Err(e) => Err(sys(entry, "remove", e)),
    }
}

/// Copies the file `parts` of the topmost lower layer that has it (none
/// when one above deletes it) to `name` in `dir`, with its mode, owner and
/// times. Every lower path is walked without following a symlink.
fn copy_from_lowers(
    root: &Root,
    parts: &[Vec<u8>],
    dir: &OwnedFd,
    name: &Path,
    shown: &str,
) -> Result<(), UnpackError> {
    use nix::fcntl::{openat2, OpenHow, ResolveFlag};
    let rel = parts.join(&b'/');
    let rel = Path::new(std::ffi::OsStr::from_bytes(&rel));
    for lower in &root.lowers {
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        let fd = match openat2(lower, rel, how) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => continue,
            Err(e) => return Err(sys(shown, "open hard link target", e)),
        };
        let src = std::fs::File::from(fd);
        let m = src.metadata().map_err(|e| {
            sys(
                shown,
                "stat hard link target",
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            )
        })?;
        // A whiteout (0/0 character device): deleted above; not a file.
        if !m.is_file() {
            break;
        }
        use std::os::unix::fs::MetadataExt;
        let out = openat(
            dir,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| sys(shown, "create hard link copy", e))?;
        let mut out = std::fs::File::from(out);
        let mut src = src;
        io::copy(&mut src, &mut out).map_err(UnpackError::Tar)?;
        fchownat(
            dir,
            name,
            Some(Uid::from_raw(m.uid())),
            Some(Gid::from_raw(m.gid())),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| sys(shown, "chown", e))?;
        fchmodat(
            dir,
            name,
            Mode::from_bits_truncate(m.mode() & 0o7777),
            FchmodatFlags::NoFollowSymlink,
        )
        .or_else(|e| {
            if e == Errno::EOPNOTSUPP {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| sys(shown, "chmod", e))?;
        set_times(dir, name, m.mtime(), shown)?;
        return Ok(());
    }
    Err(sys(shown, "hard link", Errno::ENOENT))
}

/// A directory whose times are set after all its entries are in.
struct DirTimes {
    parts: Vec<Vec<u8>>,
    mtime: i64,
}

/// Applies the uncompressed layer tar from `r` to `dest`; returns its DiffID.
pub fn apply(dest: &Path, r: impl Read) -> Result<Digest, UnpackError> {
    apply_over(dest, &[], r)
}

/// [`apply`] over the layers `lowers` (topmost first): a hard link to a
/// file of theirs becomes a copy of it in this layer, as applying onto the
/// mounted layers (containerd's way) makes it.
pub fn apply_over(
    dest: &Path,
    lowers: &[std::path::PathBuf],
    r: impl Read,
) -> Result<Digest, UnpackError> {
    let open = |p: &Path| {
        nix::fcntl::open(
            p,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys(&p.display().to_string(), "open snapshot", e))
    };
    let fd = open(dest)?;
    let lowers = lowers
        .iter()
        .map(|p| open(p))
        .collect::<Result<Vec<_>, _>>()?;
    apply_root(
        Root {
            fd,
            layer: true,
            lowers,
        },
        r,
    )
}

/// Applies the uncompressed tar from `r` below the directory `dest`, with
/// the same refusals; `layer` false takes `.wh.` names as plain files (a
/// build's COPY, an ADDed archive). Returns the tar's digest.
pub fn apply_at(dest: OwnedFd, r: impl Read, layer: bool) -> Result<Digest, UnpackError> {
    apply_root(
        Root {
            fd: dest,
            layer,
            lowers: Vec::new(),
        },
        r,
    )
}

fn apply_root(root: Root, r: impl Read) -> Result<Digest, UnpackError> {
    let mut hashing = Hashing {
        inner: r,
        hasher: Hasher::new(crate::store::digest::Algorithm::Sha256),
        eof: Default::default(),
    };
    let ended = hashing.eof.clone();
    let mut dir_times = Vec::new();
    {
        let mut ar = tar::Archive::new(&mut hashing);
        let mut entries = ar.entries().map_err(UnpackError::Tar)?;
        loop {
            let mut e = match entries.next() {
                None => break,
                Some(Ok(e)) => e,
                // The stream ends after a whole entry, without its padding
                // or the end-of-archive blocks: umoci 0.4's `insert` writes
                // layers so, and containerd and podman take them. Every
                // entry so far was read whole (a short one fails its copy),
                // and the DiffID still checks the bytes as they are.
                Some(Err(_)) if ended.get() => break,
                Some(Err(err)) => return Err(UnpackError::Tar(err)),
            };
            apply_entry(&root, &mut e, &mut dir_times)?;
        }
    }
    // Read to the end: the DiffID covers the tar's trailing blocks too.
    io::copy(&mut hashing, &mut io::sink()).map_err(UnpackError::Tar)?;
    for d in dir_times.iter().rev() {
        let shown = String::from_utf8_lossy(&d.parts.join(&b'/')).into_owned();
        let (parent, name) = d.parts.split_at(d.parts.len() - 1);
        let pfd = root.dir(parent, &shown)?;
        set_times(
            &pfd,
            Path::new(std::ffi::OsStr::from_bytes(&name[0])),
            d.mtime,
            &shown,
        )?;
    }
    Ok(hashing.hasher.finish())
}

fn set_times(dir: &OwnedFd, name: &Path, mtime: i64, entry: &str) -> Result<(), UnpackError> {
    let t = TimeSpec::new(mtime, 0);
    nix::sys::stat::utimensat(
        dir,
        name,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| sys(entry, "set times", e))
}

fn apply_entry<R: Read>(
    root: &Root,
    e: &mut tar::Entry<R>,
    dir_times: &mut Vec<DirTimes>,
) -> Result<(), UnpackError> {
    let raw = e.path_bytes().into_owned();
    let shown = String::from_utf8_lossy(&raw).into_owned();
    let hostile = |why| UnpackError::Hostile {
        entry: shown.clone(),
        why,
    };
    let parts = clean(&raw).map_err(hostile)?;
    let Some((name, parent)) = parts.split_last() else {
        return Ok(()); // the layer's root itself
    };
    let pfd = root.dir(parent, &shown)?;
    // Whiteouts.
    if root.layer && name.as_slice() == b".wh..wh..opq" {
        return crate::sys::set_xattr(&pfd, Path::new(""), b"trusted.overlay.opaque", b"y")
            .map_err(|e| sys(&shown, "mark opaque", e));
    }
    if let Some(hidden) = name.strip_prefix(b".wh.").filter(|_| root.layer) {
        // `.wh..` and `.wh...` would remove the directory itself or its
        // parent, and `.wh.` names nothing.
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(hostile("a whiteout must name one entry"));
        }
        let hidden = Path::new(std::ffi::OsStr::from_bytes(hidden));
        remove_any(&pfd, hidden, &shown)?;
        return mknodat(&pfd, hidden, SFlag::S_IFCHR, Mode::empty(), 0)
            .map_err(|e| sys(&shown, "make whiteout", e));
    }
    let name = Path::new(std::ffi::OsStr::from_bytes(name));
    let h = e.header().clone();
    let mode = Mode::from_bits_truncate(h.mode().map_err(UnpackError::Tar)? & 0o7777);
    let kind = h.entry_type();
    // What is there already goes, unless a directory meets a directory.
    let existing = fstatat(&pfd, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
    let is_dir = |st: &nix::sys::stat::FileStat| st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if let Some(st) = &existing {
        if !(kind.is_dir() && is_dir(st)) {
            remove_any(&pfd, name, &shown)?;
        }
    }
    match kind {
        tar::EntryType::Directory => {
            if !existing.as_ref().is_some_and(is_dir) {
                mkdirat(&pfd, name, mode).map_err(|e| sys(&shown, "mkdir", e))?;
            }
            dir_times.push(DirTimes {
                parts: parts.clone(),
                mtime: h.mtime().unwrap_or(0) as i64,
            });
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let fd = openat(
                &pfd,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(|e| sys(&shown, "create", e))?;
            let mut f = std::fs::File::from(fd);
            let n = io::copy(e, &mut f).map_err(UnpackError::Tar)?;
            // The tar reader stops at the stream's end without a word.
            if n != h.size().map_err(UnpackError::Tar)? {
                return Err(UnpackError::Tar(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("entry {shown:?} is cut short: {n} bytes"),
                )));
            }
        }
        tar::EntryType::Symlink => {
            let target = e
                .link_name_bytes()
                .ok_or_else(|| hostile("symlink without a target"))?;
            symlinkat(std::ffi::OsStr::from_bytes(&target), &pfd, name)
                .map_err(|err| sys(&shown, "symlink", err))?;
        }
        tar::EntryType::Link => {
            let target = e
                .link_name_bytes()
                .ok_or_else(|| hostile("hard link without a target"))?;
            let tparts =
                clean(&target).map_err(|_| hostile("hard link target has a .. component"))?;
            let Some((tname, tparent)) = tparts.split_last() else {
                return Err(hostile("hard link to the layer root"));
            };
            let tfd = root.dir(tparent, &shown)?;
            let tname_path = Path::new(std::ffi::OsStr::from_bytes(tname));
            match linkat(&tfd, tname_path, &pfd, name, AtFlags::empty()) {
                Ok(()) => {}
                // The target is a lower layer's: this layer gets a copy.
                Err(Errno::ENOENT) if !root.lowers.is_empty() => {
                    copy_from_lowers(root, &tparts, &pfd, name, &shown)?;
                }
                Err(err) => return Err(sys(&shown, "hard link", err)),
            }
            // A link shares its target's inode: no metadata of its own.
            return Ok(());
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let (k, dev) = match kind {
                tar::EntryType::Char | tar::EntryType::Block => {
                    let major = h.device_major().ok().flatten().unwrap_or(0) as u64;
                    let minor = h.device_minor().ok().flatten().unwrap_or(0) as u64;
                    let k = if kind == tar::EntryType::Char {
                        SFlag::S_IFCHR
                    } else {
                        SFlag::S_IFBLK
                    };
                    (k, nix::sys::stat::makedev(major, minor))
                }
                _ => (SFlag::S_IFIFO, 0),
            };
            mknodat(&pfd, name, k, mode, dev).map_err(|err| sys(&shown, "mknod", err))?;
        }
        // PAX and GNU headers are consumed by the tar reader; others are not files.
        _ => return Ok(()),
    }
    // Ownership first (it clears set-id bits), then mode, xattrs, times.
    // An id past 32 bits cannot be owned on Linux: refused, not wrapped.
    let id = |n: u64| u32::try_from(n).map_err(|_| sys(&shown, "chown", Errno::EOVERFLOW));
    let uid = id(h.uid().map_err(UnpackError::Tar)?)?;
    let gid = id(h.gid().map_err(UnpackError::Tar)?)?;
    fchownat(
        &pfd,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|err| sys(&shown, "chown", err))?;
    if kind != tar::EntryType::Symlink {
        fchmodat(&pfd, name, mode, FchmodatFlags::NoFollowSymlink)
            .or_else(|err| {
                // Older kernels cannot chmod without following; a non-link follows nothing.
                if err == Errno::EOPNOTSUPP || err == Errno::ENOSYS {
                    fchmodat(&pfd, name, mode, FchmodatFlags::FollowSymlink)
                } else {
                    Err(err)
                }
            })
            .map_err(|err| sys(&shown, "chmod", err))?;
    }
    if let Ok(Some(exts)) = e.pax_extensions() {
        for ext in exts.flatten() {
            if let Some(x) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                crate::sys::set_xattr(&pfd, name, x, ext.value_bytes())
                    .map_err(|err| sys(&shown, "set xattr", err))?;
            }
        }
    }
    if !kind.is_dir() {
        set_times(&pfd, name, h.mtime().unwrap_or(0) as i64, &shown)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean(b"./a/b").unwrap(), [b"a".to_vec(), b"b".to_vec()]);
        assert!(clean(b"a/../../x").is_err());
        assert!(clean(b"..").is_err());
        assert!(clean(b"/../etc").is_err());
        assert!(clean(b"./").unwrap().is_empty());
    }

    #[test]
    fn absolute_paths_are_rooted_in_the_layer() {
        assert!(clean(b"/").unwrap().is_empty(), "umoci's first entry");
        assert_eq!(
            clean(b"/etc/passwd").unwrap(),
            [b"etc".to_vec(), b"passwd".to_vec()]
        );
        assert_eq!(
            clean(b"//etc//x/").unwrap(),
            [b"etc".to_vec(), b"x".to_vec()]
        );
        assert_eq!(clean(b"a/../b").unwrap(), [b"b".to_vec()]);
    }
}

#[cfg(test)]
mod layer_tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    /// A tar of `(path, kind, data or link target)` entries.
    fn layer(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            h.set_uid(123);
            h.set_gid(456);
            h.set_mtime(1_000_000);
            let body: &[u8] = if *kind == tar::EntryType::Regular {
                data.as_bytes()
            } else {
                b""
            };
            h.set_size(body.len() as u64);
            if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                h.set_link_name_literal(data).unwrap();
            }
            // The raw name, so hostile paths reach the unpacker unchanged.
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, body).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("berth-unpack-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_layer_cut_after_a_whole_entry_applies_but_not_one_cut_inside() {
        use tar::EntryType::*;
        let tar = layer(&[("top", Regular, "top\n"), ("etc/", Directory, "")]);
        // umoci's insert: the last entry's data, no padding, no trailer.
        let whole = layer(&[("a", Regular, "aaaa"), ("top", Regular, "top\n")]);
        let cut = &whole[..512 * 3 + 4];
        let d = dir("cut");
        let diff = apply(&d, cut).unwrap();
        assert_eq!(diff, crate::store::digest::sha256_of(cut));
        assert_eq!(std::fs::read(d.join("top")).unwrap(), b"top\n");
        let _ = std::fs::remove_dir_all(&d);
        // Cut inside a file's data: refused.
        let d = dir("cut-inside");
        assert!(apply(&d, &tar[..512 + 2]).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_hard_link_to_a_lower_layers_file_becomes_a_copy() {
        use tar::EntryType::*;
        let lower = dir("lower");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/a"), "from below").unwrap();
        let upper = dir("upper");
        let tar = layer(&[("bin/", Directory, ""), ("bin/b", Link, "etc/a")]);
        apply_over(&upper, std::slice::from_ref(&lower), &tar[..]).unwrap();
        assert_eq!(std::fs::read(upper.join("bin/b")).unwrap(), b"from below");
        // Without the lower layers, the target is missing.
        let alone = dir("alone");
        assert!(apply(&alone, &tar[..]).is_err());
        // A layer between that deletes it: missing too.
        let between = dir("between");
        std::fs::create_dir_all(between.join("etc")).unwrap();
        nix::sys::stat::mknod(&between.join("etc/a"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        let up2 = dir("upper2");
        assert!(apply_over(&up2, &[between.clone(), lower.clone()], &tar[..]).is_err());
        for d in [lower, upper, alone, between, up2] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    fn whiteouts_links_and_metadata() {
        use tar::EntryType::*;
        let d = dir("ok");
        let tar = layer(&[
            ("etc/", Directory, ""),
            ("etc/hosts", Regular, "127.0.0.1 x\n"),
            ("etc/hosts.link", Link, "etc/hosts"),
            ("etc/sym", Symlink, "/etc/hosts"),
            ("usr/.wh..wh..opq", Regular, ""),
            ("var/.wh.cache", Regular, ""),
            ("dev/fifo", Fifo, ""),
        ]);
        let diff = apply(&d, &tar[..]).unwrap();
        assert_eq!(diff, crate::store::digest::sha256_of(&tar));
        let hosts = std::fs::metadata(d.join("etc/hosts")).unwrap();
        assert_eq!(
            (
                hosts.uid(),
                hosts.gid(),
                hosts.mode() & 0o7777,
                hosts.mtime()
            ),
            (123, 456, 0o644, 1_000_000)
        );
        assert_eq!(
            hosts.ino(),
            std::fs::metadata(d.join("etc/hosts.link")).unwrap().ino()
        );
        assert_eq!(
            std::fs::read_link(d.join("etc/sym")).unwrap(),
            Path::new("/etc/hosts")
        );
        let wh = std::fs::symlink_metadata(d.join("var/cache")).unwrap();
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
        assert!(!d.join("var/.wh.cache").exists());
        assert!(std::fs::symlink_metadata(d.join("dev/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(std::fs::metadata(d.join("etc")).unwrap().mtime(), 1_000_000);
        let mut v = [0u8; 4];
        let p = std::ffi::CString::new(d.join("usr").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings and a live buffer of the given length.
        let n = unsafe {
            libc::getxattr(
                p.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                v.as_mut_ptr().cast(),
                v.len(),
            )
        };
        assert_eq!(&v[..n as usize], b"y");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn hostile_entries_are_refused() {
        use tar::EntryType::*;
        let outside = dir("outside");
        let cases: Vec<Vec<(&str, tar::EntryType, &str)>> = vec![
            vec![("../escape", Regular, "x")],
            vec![("/../escape", Regular, "x")],
            vec![("a/../../escape", Regular, "x")],
            // Whiteouts of the directory itself or of its parent.
            vec![("sub/", Directory, ""), ("sub/.wh..", Regular, "")],
            vec![("sub/", Directory, ""), ("sub/.wh...", Regular, "")],
            vec![(".wh.", Regular, "")],
            // Through a symlinked parent the layer itself planted.
            vec![
                ("link", Symlink, outside.to_str().unwrap()),
                ("link/escape", Regular, "x"),
            ],
            // A hard link whose target climbs out.
            vec![("hl", Link, "../../etc/passwd")],
        ];
        for c in cases {
            let d = dir("hostile");
            let err = apply(&d, &layer(&c)[..]).unwrap_err();
            assert!(matches!(err, UnpackError::Hostile { .. }), "{c:?}: {err}");
            assert!(!outside.join("escape").exists());
            std::fs::remove_dir_all(&d).unwrap();
        }
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn absolute_entries_land_inside_the_layer() {
        use tar::EntryType::*;
        let d = dir("abs");
        // umoci writes `/` first; `/etc/x` is the layer's etc/x.
        let tar = layer(&[
            ("/", Directory, ""),
            ("/etc/", Directory, ""),
            ("/etc/x", Regular, "in"),
        ]);
        apply(&d, &tar[..]).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("etc/x")).unwrap(), "in");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_refused_whiteout_leaves_its_directory_alone() {
        use tar::EntryType::*;
        let d = dir("wh-dot");
        let ok = layer(&[("keep/", Directory, ""), ("keep/file", Regular, "x")]);
        apply(&d, &ok[..]).unwrap();
        let bad = layer(&[("keep/.wh..", Regular, "")]);
        assert!(matches!(
            apply(&d, &bad[..]),
            Err(UnpackError::Hostile { .. })
        ));
        assert_eq!(std::fs::read_to_string(d.join("keep/file")).unwrap(), "x");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
