//! A build step's filesystem: an active snapshot mounted in a scratch
//! directory of berthd's (unmounted on drop), paths in it resolved by fd
//! inside its root (symlinks followed as the container would see them,
//! never out of it), destination directories made, copies written through
//! the unpacker, and account names looked up in its /etc/passwd and
//! /etc/group as docker's `--chown` does.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{mkdirat, Mode};

use super::{io, BuildError};
use crate::store::images::Images;

/// A snapshot mounted at `dir`.
pub struct Mounted {
    dir: PathBuf,
    /// The mount's root directory.
    pub root: OwnedFd,
}

impl Mounted {
    /// Mounts the active snapshot `key` of `ns` at `at` (made if missing).
    pub fn mount(store: &Images, ns: &str, key: &str, at: &Path) -> Result<Mounted, BuildError> {
        std::fs::create_dir_all(at).map_err(io("create", at))?;
        let m = store
            .snapshots
            .mounts(ns, key)
            .map_err(|e| BuildError::Image(e.into()))?
            .remove(0);
        let r = if m.kind == "bind" {
            mount(
                Some(m.source.as_str()),
                at,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
        } else {
            mount(
                Some(m.source.as_str()),
                at,
                Some(m.kind.as_str()),
                MsFlags::empty(),
                Some(m.options.join(",").as_str()),
            )
        };
        r.map_err(|e| io("mount snapshot on", at)(e.into()))?;
        let mounted = Mounted {
            dir: at.to_path_buf(),
            root: std::fs::File::open(at).map_err(io("open", at))?.into(),
        };
        Ok(mounted)
    }

    /// Resolves `path` (absolute, in the container's view) to a directory,
    /// making missing components 0755, owned by `owner` (COPY --chown's
    /// ids, as buildah and BuildKit give the directories a copy makes) or
    /// root.
    pub fn ensure_dir(&self, path: &str, owner: Option<(u32, u32)>) -> Result<OwnedFd, BuildError> {
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let shown = |k: usize| format!("/{}", parts[..k].join("/"));
        let mut cur = self
            .open_dir("")
            .map_err(|e| io("open", &self.dir)(e.into()))?;
        for k in 1..=parts.len() {
            cur = match self.open_dir(&parts[..k].join("/")) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    match mkdirat(&cur, parts[k - 1], Mode::from_bits_truncate(0o755)) {
                        Ok(()) => {
                            if let Some((uid, gid)) = owner {
                                nix::unistd::fchownat(
                                    &cur,
                                    parts[k - 1],
                                    Some(uid.into()),
                                    Some(gid.into()),
                                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                                )
                                .map_err(|e| io("chown", shown(k))(e.into()))?;
                            }
                        }
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(io("make directory", shown(k))(e.into())),
                    }
                    self.open_dir(&parts[..k].join("/"))
                        .map_err(|e| io("open", shown(k))(e.into()))?
                }
                Err(e) => return Err(io("open", shown(k))(e.into())),
            };
        }
        Ok(cur)
    }

    fn open_dir(&self, rel: &str) -> Result<OwnedFd, Errno> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(&self.root, if rel.is_empty() { "." } else { rel }, how)
    }

    /// Whether `path` is a directory in the container's view.
    pub fn is_dir(&self, path: &str) -> bool {
        self.open_dir(path.trim_start_matches('/')).is_ok()
    }

    /// A file of the container's view (at most 1 MiB), if it is one.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = openat2(&self.root, path.trim_start_matches('/'), how).ok()?;
        let f = std::fs::File::from(fd);
        if !f.metadata().ok()?.is_file() {
            return None;
        }
        let mut out = Vec::new();
        f.take(1 << 20).read_to_end(&mut out).ok()?;
        Some(out)
    }

    /// `--chown`'s `user[:group]` as ids: numbers as they are, names from
    /// the container's /etc/passwd and /etc/group; without a group, the
    /// user's own (a number alone: the same number, as docker).
    pub fn ids(&self, spec: &str) -> Result<(u32, u32), String> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let passwd = self.read("/etc/passwd").unwrap_or_default();
        let find = |file: &[u8], name: &str, field: usize| -> Option<(u32, Option<u32>)> {
            String::from_utf8_lossy(file).lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 3 && f[0] == name).then(|| {
                    (
                        f[field].parse().unwrap_or(0),
                        f.get(3).and_then(|g| g.parse().ok()),
                    )
                })
            })
        };
        let (uid, primary) = match user.parse::<u32>() {
            Ok(n) => (n, Some(n)),
            Err(_) => find(&passwd, user, 2).ok_or_else(|| {
                format!("unable to find user {user}: no matching entries in passwd file")
            })?,
        };
        let gid = match group {
            None => primary.unwrap_or(uid),
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    let groups = self.read("/etc/group").unwrap_or_default();
                    find(&groups, g, 2).map(|(gid, _)| gid).ok_or_else(|| {
                        format!("unable to find group {g}: no matching entries in group file")
                    })?
                }
            },
        };
        Ok((uid, gid))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = umount2(&self.dir, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Writes `entries` below the directory `dest` (in a mounted root), as a
/// tar through the unpacker: its refusals keep every entry below `dest`.
pub fn copy_into(
    dest: OwnedFd,
    entries: Vec<super::sources::Entry>,
    owner: super::sources::Owner,
) -> Result<(), BuildError> {
    let (reader, writer) = std::io::pipe().map_err(io("make a pipe for", "the copy"))?;
    let feeder = std::thread::spawn(move || super::sources::write_tar(&entries, owner, writer));
    let applied = crate::store::unpack::apply_at(dest, reader, false);
    let fed = feeder
        .join()
        .map_err(|_| BuildError::Invalid("copy: the reader panicked".into()))?;
    applied.map_err(|e| BuildError::Invalid(format!("copy: {e}")))?;
    fed.map_err(io("read", "copy sources"))?;
    Ok(())
}

/// Unpacks the archive `r` (tar, plain or compressed) below `dest`, as ADD
/// does with a local archive.
pub fn extract_into(dest: OwnedFd, r: impl Read) -> Result<(), BuildError> {
    crate::store::unpack::apply_at(dest, r, false)
        .map(drop)
        .map_err(|e| BuildError::Invalid(format!("extract: {e}")))
}
