//! The container's rootfs mounts (e.g. an overlay snapshot) that Create asks
//! for: made on `<bundle>/rootfs` through an fd opened without following
//! symlinks, so a planted link cannot send them outside the bundle; removed
//! on Delete, and by `berth-shim delete` after a shim died.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;

/// A failed rootfs mount or unmount.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount point could not be opened (missing, or a symlink).
    #[error("open mount point {path}: {errno}")]
    Target {
        /// The mount point.
        path: String,
        /// Why.
        errno: Errno,
    },
    /// mount(2) failed.
    #[error("mount {fstype} {device} on {target}: {errno}")]
    Mount {
        /// The filesystem type.
        fstype: String,
        /// The source.
        device: String,
        /// The mount point.
        target: String,
        /// Why.
        errno: Errno,
    },
    /// The rootfs layers could not be idmapped for a user namespace.
    #[error("idmapped rootfs: {0}")]
    Idmap(String),
    /// umount2(2) failed.
    #[error("unmount {target}: {errno}")]
    Unmount {
        /// The mount point.
        target: String,
        /// Why.
        errno: Errno,
    },
}

/// mount(8)-style options split into flags and the data string.
pub fn parse_options(opts: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in opts {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            _ => data.push(o.as_str()),
        }
    }
    (flags, data.join(","))
}

/// Opens a mount point as an O_PATH fd, refusing a symlink.
fn open_dir(target: &Path) -> Result<OwnedFd, MountError> {
    open(
        target,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| MountError::Target {
        path: target.display().to_string(),
        errno,
    })
}

/// Mounts `source` (of `fstype`; "bind" for a bind mount) on the directory
/// `target`, which must not be a symlink.
pub fn mount_on(
    target: &Path,
    fstype: &str,
    source: &str,
    options: &[String],
) -> Result<(), MountError> {
    let mut options = options.to_vec();
    let maps =
        crate::idmap::take_maps(&mut options).map_err(|e| MountError::Idmap(e.to_string()))?;
    let (mut flags, mut data) = parse_options(&options);
    let err = |errno| MountError::Mount {
        fstype: fstype.into(),
        device: source.into(),
        target: target.display().to_string(),
        errno,
    };
    // Held until the overlay is mounted over them, then detached.
    let mut _lowers = None;
    if let Some((uid, gid)) = &maps {
        let idmap_err = |e: crate::idmap::IdmapError| MountError::Idmap(e.to_string());
        if fstype != "overlay" && fstype != "bind" && !flags.contains(MsFlags::MS_BIND) {
            return Err(MountError::Idmap(format!(
                "uidmap/gidmap on a {fstype} mount of {source}: only overlay layers and binds can be idmapped"
            )));
        }
        let userns = crate::idmap::userns_with(uid, gid).map_err(idmap_err)?;
        if fstype != "overlay" {
            let dir = open_dir(target)?;
            crate::idmap::bind(Path::new(source), &dir, &userns).map_err(idmap_err)?;
            return read_only_if_asked(target, flags | MsFlags::MS_BIND, None, err);
        }
        let dir = target.with_file_name("rootfs-idmapped-layers");
        let (lowers, mapped) =
            crate::idmap::Lowers::prepare(&dir, &data, &userns).map_err(idmap_err)?;
        crate::idmap::chown_upper(&data, uid, gid).map_err(idmap_err)?;
        data = mapped;
        _lowers = Some(lowers);
    }
    let fs = if fstype == "bind" {
        flags |= MsFlags::MS_BIND;
        None
    } else {
        Some(fstype)
    };
    let data = (!data.is_empty()).then_some(data.as_str());
    // Through the magic link the mount lands on the directory opened here,
    // not on whatever the path names by now.
    let dir = open_dir(target)?;
    let via = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let first = flags & !MsFlags::MS_RDONLY;
    let compact = match data {
        Some(d) if fstype == "overlay" && d.len() >= PAGE_LIMIT => compact_overlay(d),
        _ => None,
    };
    match compact {
        // The shim is single-threaded: its working directory is changed
        // for the one call that needs it, then set back.
        Some((base, short)) => {
            let back = std::env::current_dir().unwrap_or_else(|_| "/".into());
            nix::unistd::chdir(&base).map_err(err)?;
            let r = mount(Some(source), via.as_str(), fs, first, Some(short.as_str()));
            let _ = nix::unistd::chdir(&back);
            r.map_err(err)?;
        }
        None => mount(Some(source), via.as_str(), fs, first, data).map_err(err)?,
    }
    read_only_if_asked(target, flags, data, err)
}

/// Read-only takes a remount of the new mount's root (a bind's without its
/// data); the mount point is opened again, as an fd opened before the mount
/// names the directory underneath.
fn read_only_if_asked(
    target: &Path,
    flags: MsFlags,
    data: Option<&str>,
    err: impl Fn(Errno) -> MountError,
) -> Result<(), MountError> {
    if !flags.contains(MsFlags::MS_RDONLY) {
        return Ok(());
    }
    let root = open_dir(target)?;
    let via = format!("/proc/self/fd/{}", root.as_raw_fd());
    let bind = flags.contains(MsFlags::MS_BIND);
    let ro = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | (flags & MsFlags::MS_BIND);
    let data = if bind { None } else { data };
    mount(None::<&str>, via.as_str(), None::<&str>, ro, data).map_err(err)
}

/// mount(2) takes at most a page of option data.
const PAGE_LIMIT: usize = 4096;

/// Shortens overlay options that an image with many layers makes longer
/// than a page: every lowerdir/upperdir/workdir is rewritten relative to
/// their deepest common directory, from which the mount is then made.
/// `None` when they share nothing below `/` or it does not get short enough.
pub fn compact_overlay(data: &str) -> Option<(PathBuf, String)> {
    let dirs = |o: &str| -> Option<Vec<String>> {
        let (k, v) = o.split_once('=')?;
        match k {
            "lowerdir" => Some(v.split(':').map(String::from).collect()),
            "upperdir" | "workdir" => Some(vec![v.to_string()]),
            _ => None,
        }
    };
    let all: Vec<String> = data.split(',').filter_map(dirs).flatten().collect();
    let mut base: Vec<&str> = all.first()?.split('/').collect();
    base.pop();
    for p in &all {
        let comps: Vec<&str> = p.split('/').collect();
        let n = base.iter().zip(&comps).take_while(|(a, b)| a == b).count();
        // Keep a directory: never the last component of a path.
        base.truncate(n.min(comps.len() - 1));
    }
    let base = base.join("/");
    if base.is_empty() || !base.starts_with('/') {
        return None;
    }
    let rel = |p: &str| p[base.len()..].trim_start_matches('/').to_string();
    let short: Vec<String> = data
        .split(',')
        .map(|o| match o.split_once('=') {
            Some(("lowerdir", v)) => format!(
                "lowerdir={}",
                v.split(':').map(rel).collect::<Vec<_>>().join(":")
            ),
            Some((k @ ("upperdir" | "workdir"), v)) => format!("{k}={}", rel(v)),
            _ => o.to_string(),
        })
        .collect();
    let short = short.join(",");
    (short.len() < PAGE_LIMIT).then(|| (PathBuf::from(base), short))
}

/// Unmounts everything stacked on `target` (lazily, not following a symlink
/// there); returns how many mounts it removed.
pub fn unmount_all(target: &Path) -> Result<usize, MountError> {
    let mut n = 0;
    loop {
        match umount2(target, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => n += 1,
            // Not a mount point (any more), or gone.
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(n),
            Err(errno) => {
                return Err(MountError::Unmount {
                    target: target.display().to_string(),
                    errno,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_overlay_options_are_made_relative() {
        let lowers: Vec<String> = (0..300)
            .map(|i| format!("/var/lib/berth/overlay/snapshots/{i}/fs"))
            .collect();
        let data = format!(
            "workdir=/var/lib/berth/overlay/snapshots/300/work,upperdir=/var/lib/berth/overlay/snapshots/300/fs,lowerdir={}",
            lowers.join(":")
        );
        assert!(data.len() > PAGE_LIMIT);
        let (base, short) = compact_overlay(&data).unwrap();
        assert_eq!(base, PathBuf::from("/var/lib/berth/overlay/snapshots"));
        assert!(
            short.starts_with("workdir=300/work,upperdir=300/fs,lowerdir=0/fs:1/fs:"),
            "{short}"
        );
        assert!(short.len() < PAGE_LIMIT);
        // Nothing shared below /: no rewrite.
        assert!(compact_overlay("lowerdir=/a/x:/b/y").is_none());
    }

    #[test]
    fn options_become_flags_and_data() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (f, d) = parse_options(&o(&["ro", "rbind", "lowerdir=/a:/b", "upperdir=/u"]));
        assert!(f.contains(MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC));
        assert_eq!(d, "lowerdir=/a:/b,upperdir=/u");
        assert_eq!(parse_options(&o(&["ro", "rw"])).0, MsFlags::empty());
    }
}
