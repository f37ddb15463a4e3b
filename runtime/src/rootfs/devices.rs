//! `/dev`: the default devices, `linux.devices`, the /dev symlinks, pts,
//! shm and mqueue.

use nix::fcntl::{AtFlags, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fchmodat, mknodat, FchmodatFlags, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::*;

/// The devices every container gets: (name, major, minor).
pub const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Creates default devices, the /dev symlinks and /dev/ptmx.
pub fn setup_dev(ctx: &Context, root: BorrowedFd<'_>) -> Result<(), Error> {
    let dev = mkdir_all_in_root(root, Path::new("/dev"), 0o755)?;
    for (name, maj, min) in DEFAULT_DEVICES {
        create_device(
            ctx,
            &dev,
            name,
            SFlag::S_IFCHR,
            *maj,
            *min,
            0o666,
            ctx.root_uid,
            ctx.root_gid,
        )?;
    }
    let mut links = vec![
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("core", "/proc/kcore"));
    }
    for (name, target) in links {
        match nix::unistd::symlinkat(target, dev.as_fd(), name) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(nsys(format!("symlink /dev/{name}"))(e)),
        }
    }
    // /dev/ptmx points into the container's own devpts instance.
    match nix::unistd::unlinkat(dev.as_fd(), "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(nsys("remove /dev/ptmx")(e)),
    }
    nix::unistd::symlinkat("pts/ptmx", dev.as_fd(), "ptmx").map_err(nsys("symlink /dev/ptmx"))?;
    Ok(())
}

/// Creates the devices of `linux.devices`.
pub fn create_devices(
    ctx: &Context,
    root: BorrowedFd<'_>,
    devices: &[LinuxDevice],
) -> Result<(), Error> {
    for d in devices {
        let path = d.path();
        if !path.is_absolute() {
            return Err(Error::Invalid(format!(
                "linux.devices: path {} is not absolute",
                path.display()
            )));
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::Invalid(format!(
                    "linux.devices: {} has type \"a\", which is only for cgroup rules",
                    path.display()
                )))
            }
        };
        let parent = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().ok_or_else(|| {
            Error::Invalid(format!(
                "linux.devices: {} has no file name",
                path.display()
            ))
        })?;
        let pfd = mkdir_all_in_root(root, parent, 0o755)?;
        let mode = d.file_mode().unwrap_or(0o666);
        let uid = d.uid().unwrap_or(ctx.root_uid);
        let gid = d.gid().unwrap_or(ctx.root_gid);
        create_device(
            ctx,
            &pfd,
            name.to_str().unwrap_or_default(),
            kind,
            d.major() as u64,
            d.minor() as u64,
            mode,
            uid,
            gid,
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn create_device(
    ctx: &Context,
    dir: &OwnedFd,
    name: &str,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<(), Error> {
    let desc = format!("create device {name}");
    if ctx.in_userns {
        // mknod is not allowed in a user namespace: bind the host's node.
        let host = host_device_path(kind, major, minor).ok_or_else(|| {
            Error::Invalid(format!(
                "{desc}: no host node for {major}:{minor} to bind in a user namespace"
            ))
        })?;
        match nix::fcntl::openat(
            dir.as_fd(),
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        ) {
            Ok(_) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(nsys(desc)(e)),
        }
        let target = nix::fcntl::openat(
            dir.as_fd(),
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(nsys(desc.clone()))?;
        mount(
            Some(&host),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(nsys(desc))?;
        return Ok(());
    }
    let dev = nix::sys::stat::makedev(major, minor);
    match mknodat(dir.as_fd(), name, kind, Mode::from_bits_truncate(mode), dev) {
        Ok(()) => {}
        Err(nix::Error::EEXIST) => return Ok(()),
        Err(e) => return Err(nsys(desc)(e)),
    }
    // mknod applies the umask; set the exact mode.
    fchmodat(
        dir.as_fd(),
        name,
        Mode::from_bits_truncate(mode),
        FchmodatFlags::FollowSymlink,
    )
    .map_err(nsys(format!("chmod device {name}")))?;
    nix::unistd::fchownat(
        dir.as_fd(),
        name,
        Some(uid.into()),
        Some(gid.into()),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(nsys(format!("chown device {name}")))?;
    Ok(())
}

pub(super) fn host_device_path(kind: SFlag, major: u64, minor: u64) -> Option<PathBuf> {
    if kind == SFlag::S_IFCHR {
        if let Some((n, _, _)) = DEFAULT_DEVICES
            .iter()
            .find(|(_, a, b)| *a == major && *b == minor)
        {
            return Some(PathBuf::from(format!("/dev/{n}")));
        }
    }
    let sub = if kind == SFlag::S_IFBLK {
        "block"
    } else {
        "char"
    };
    let p = PathBuf::from(format!("/dev/{sub}/{major}:{minor}"));
    fs::canonicalize(p).ok()
}
