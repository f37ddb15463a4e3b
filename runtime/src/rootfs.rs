//! The container's root filesystem: its mounts, devices and /dev links, the
//! root change (pivot_root, or MS_MOVE + chroot), masked and read-only paths,
//! sysctls, and the final read-only root.
//!
//! Every path inside the rootfs is hostile: it is resolved by the kernel with
//! `openat2(RESOLVE_IN_ROOT)` from a directory fd of the rootfs, and mounts
//! target `/proc/self/fd/N` of the resolved fd, never a joined string.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fchmodat, mknodat, FchmodatFlags, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};

use crate::cgroups::Layout;
use crate::syscall::{self, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};

/// Errors of rootfs setup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {err}")]
    Sys { what: String, err: io::Error },
    #[error("{0}")]
    Invalid(String),
}

fn sys(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |err| Error::Sys { what, err }
}

fn nsys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
    let what = what.into();
    move |e| Error::Sys {
        what,
        err: e.into(),
    }
}

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// The procfs path naming an fd, for syscalls that take only paths.
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Parsed `options` of one mount.
#[derive(Debug, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2).
    pub flags: MsFlags,
    /// Flags explicitly cleared (`rw`, `suid`, …), for bind remounts.
    pub clear: MsFlags,
    /// Propagation changes applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// mount_setattr bits set and cleared recursively (`rro`, `rnosuid`, …).
    pub rec_set: u64,
    pub rec_clear: u64,
    /// Filesystem-specific data (`mode=755,size=65536k`).
    pub data: String,
    /// `tmpcopyup`: a tmpfs starts with the content of the directory it covers.
    pub tmpcopyup: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clear: 0,
            data: String::new(),
            tmpcopyup: false,
        }
    }
}

impl MountOptions {
    /// True for bind and rbind mounts.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// Parses mount options as runc does; unknown words are filesystem data.
pub fn parse_options(opts: &[String]) -> Result<MountOptions, Error> {
    use syscall::*;
    let mut o = MountOptions::default();
    for opt in opts {
        let set = |o: &mut MountOptions, f: MsFlags| {
            o.flags |= f;
            o.clear.remove(f);
        };
        let clr = |o: &mut MountOptions, f: MsFlags| {
            o.flags.remove(f);
            o.clear |= f;
        };
        match opt.as_str() {
            "defaults" => {}
            "ro" => set(&mut o, MsFlags::MS_RDONLY),
            "rw" => clr(&mut o, MsFlags::MS_RDONLY),
            "nosuid" => set(&mut o, MsFlags::MS_NOSUID),
            "suid" => clr(&mut o, MsFlags::MS_NOSUID),
            "nodev" => set(&mut o, MsFlags::MS_NODEV),
            "dev" => clr(&mut o, MsFlags::MS_NODEV),
            "noexec" => set(&mut o, MsFlags::MS_NOEXEC),
            "exec" => clr(&mut o, MsFlags::MS_NOEXEC),
            "sync" => set(&mut o, MsFlags::MS_SYNCHRONOUS),
            "async" => clr(&mut o, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => set(&mut o, MsFlags::MS_DIRSYNC),
            "remount" => set(&mut o, MsFlags::MS_REMOUNT),
            "mand" => set(&mut o, MsFlags::MS_MANDLOCK),
            "nomand" => clr(&mut o, MsFlags::MS_MANDLOCK),
            "atime" => clr(&mut o, MsFlags::MS_NOATIME),
            "noatime" => set(&mut o, MsFlags::MS_NOATIME),
            "diratime" => clr(&mut o, MsFlags::MS_NODIRATIME),
            "nodiratime" => set(&mut o, MsFlags::MS_NODIRATIME),
            "relatime" => set(&mut o, MsFlags::MS_RELATIME),
            "norelatime" => clr(&mut o, MsFlags::MS_RELATIME),
            "strictatime" => set(&mut o, MsFlags::MS_STRICTATIME),
            "nostrictatime" => clr(&mut o, MsFlags::MS_STRICTATIME),
            "lazytime" => set(&mut o, MsFlags::MS_LAZYTIME),
            "nolazytime" => clr(&mut o, MsFlags::MS_LAZYTIME),
            "iversion" => set(&mut o, MsFlags::MS_I_VERSION),
            "noiversion" => clr(&mut o, MsFlags::MS_I_VERSION),
            "silent" => set(&mut o, MsFlags::MS_SILENT),
            "loud" => clr(&mut o, MsFlags::MS_SILENT),
            "nosymfollow" => set(&mut o, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
            "symfollow" => clr(&mut o, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
            "bind" => o.flags |= MsFlags::MS_BIND,
            "rbind" => o.flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "private" => o.propagation.push(MsFlags::MS_PRIVATE),
            "rprivate" => o.propagation.push(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
            "shared" => o.propagation.push(MsFlags::MS_SHARED),
            "rshared" => o.propagation.push(MsFlags::MS_SHARED | MsFlags::MS_REC),
            "slave" => o.propagation.push(MsFlags::MS_SLAVE),
            "rslave" => o.propagation.push(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            "unbindable" => o.propagation.push(MsFlags::MS_UNBINDABLE),
            "runbindable" => o.propagation.push(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
            "rro" => o.rec_set |= MOUNT_ATTR_RDONLY,
            "rrw" => o.rec_clear |= MOUNT_ATTR_RDONLY,
            "rnosuid" => o.rec_set |= MOUNT_ATTR_NOSUID,
            "rsuid" => o.rec_clear |= MOUNT_ATTR_NOSUID,
            "rnodev" => o.rec_set |= MOUNT_ATTR_NODEV,
            "rdev" => o.rec_clear |= MOUNT_ATTR_NODEV,
            "rnoexec" => o.rec_set |= MOUNT_ATTR_NOEXEC,
            "rexec" => o.rec_clear |= MOUNT_ATTR_NOEXEC,
            "rnodiratime" => o.rec_set |= MOUNT_ATTR_NODIRATIME,
            "rdiratime" => o.rec_clear |= MOUNT_ATTR_NODIRATIME,
            "rnosymfollow" => o.rec_set |= MOUNT_ATTR_NOSYMFOLLOW,
            "rsymfollow" => o.rec_clear |= MOUNT_ATTR_NOSYMFOLLOW,
            "rrelatime" => {
                o.rec_clear |= MOUNT_ATTR__ATIME;
                o.rec_set |= MOUNT_ATTR_RELATIME;
            }
            "rnoatime" => {
                o.rec_clear |= MOUNT_ATTR__ATIME;
                o.rec_set |= MOUNT_ATTR_NOATIME;
            }
            "rstrictatime" => {
                o.rec_clear |= MOUNT_ATTR__ATIME;
                o.rec_set |= MOUNT_ATTR_STRICTATIME;
            }
            "ratime" | "rnorelatime" | "rnostrictatime" => o.rec_clear |= MOUNT_ATTR__ATIME,
            "tmpcopyup" => o.tmpcopyup = true,
            "idmap" | "ridmap" => {
                return Err(Error::Invalid(format!(
                    "mount option {opt:?}: idmapped mounts are not implemented yet"
                )))
            }
            data => {
                if !o.data.is_empty() {
                    o.data.push(',');
                }
                o.data.push_str(data);
            }
        }
    }
    Ok(o)
}

/// Opens `path` inside the root `root` (a directory fd), never leaving it.
pub fn open_in_root(
    root: RawFd,
    path: &Path,
    flags: i32,
    extra_resolve: u64,
) -> io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    syscall::openat2(
        root,
        rel,
        flags,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | extra_resolve,
    )
}

/// Creates every missing directory of `path` inside the root, and returns an
/// O_PATH fd of the last one. A symlink met on the way is followed inside the
/// root (a dangling one is created where it points, within the root), as a
/// container's own path resolution would see it.
pub fn mkdir_all_in_root(root: RawFd, path: &Path, mode: u32) -> Result<OwnedFd, Error> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = components(path);
    let mut prefix = PathBuf::from("/");
    let mut cur = open_in_root(root, &prefix, flags, 0)
        .map_err(sys(format!("open rootfs for {}", path.display())))?;
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        let next = prefix.join(&name);
        match open_in_root(root, &next, flags, 0) {
            Ok(fd) => {
                cur = fd;
                prefix = next;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(sys(format!("open {} in rootfs", next.display()))(e)),
        }
        match nix::sys::stat::mkdirat(
            cur.as_fd(),
            name.as_os_str(),
            Mode::from_bits_truncate(mode),
        ) {
            Ok(()) => {}
            Err(nix::Error::EEXIST) => {
                // A dangling symlink: continue from where it points, inside the root.
                let target = nix::fcntl::readlinkat(cur.as_fd(), name.as_os_str())
                    .map_err(nsys(format!("mkdir {} in rootfs", next.display())))?;
                links += 1;
                if links > 40 {
                    return Err(Error::Sys {
                        what: format!("mkdir {} in rootfs", path.display()),
                        err: io::Error::from_raw_os_error(libc::ELOOP),
                    });
                }
                let target = PathBuf::from(target);
                let mut rest = components(&target);
                rest.extend(todo.drain(..));
                todo = rest;
                if target.is_absolute() {
                    prefix = PathBuf::from("/");
                    cur = open_in_root(root, &prefix, flags, 0).map_err(sys("open rootfs"))?;
                }
                continue;
            }
            Err(e) => return Err(nsys(format!("mkdir {} in rootfs", next.display()))(e)),
        }
        cur = open_in_root(root, &next, flags, 0)
            .map_err(sys(format!("open {} in rootfs", next.display())))?;
        prefix = next;
    }
    Ok(cur)
}

fn components(p: &Path) -> std::collections::VecDeque<std::ffi::OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsStr::new("..").to_owned()),
            _ => None,
        })
        .collect()
}

/// Creates an empty file at `path` inside the root if nothing is there (the
/// target of a file bind mount or a device bind).
fn touch_in_root(root: RawFd, path: &Path) -> Result<(), Error> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: no file name", path.display())))?;
    let pfd = mkdir_all_in_root(root, parent, 0o755)?;
    match nix::fcntl::openat(
        pfd.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(fd) => {
            drop(fd);
            Ok(())
        }
        Err(nix::Error::EEXIST) => Ok(()),
        Err(e) => Err(nsys(format!("create {} in rootfs", path.display()))(e)),
    }
}

/// Everything the rootfs setup needs to know besides the mount list.
pub struct Context<'a> {
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub layout: &'a Layout,
    pub cgroup_dirs: &'a [PathBuf],
    pub new_cgroupns: bool,
    pub in_userns: bool,
    /// Mapped uid/gid of container root, for device ownership.
    pub root_uid: u32,
    pub root_gid: u32,
}

/// Prepares propagation, binds the rootfs onto itself and returns an fd of it.
pub fn prepare_root(ctx: &Context, propagation: Option<&str>) -> Result<OwnedFd, Error> {
    let flag = match propagation {
        None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => propagation_flag(p)?,
    };
    mount(None::<&str>, "/", None::<&str>, flag, None::<&str>)
        .map_err(nsys("set propagation of /"))?;
    // After a recursive slave, private or unbindable no mount is shared any
    // more: no need to look for the rootfs's parent in mountinfo.
    if !flag.contains(MsFlags::MS_REC) || flag.contains(MsFlags::MS_SHARED) {
        make_parent_private(ctx.rootfs)?;
    }
    mount(
        Some(ctx.rootfs),
        ctx.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(nsys(format!("bind mount rootfs {}", ctx.rootfs.display())))?;
    let fd = nix::fcntl::open(
        ctx.rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nsys(format!("open rootfs {}", ctx.rootfs.display())))?;
    Ok(fd)
}

/// The mount flag of a `rootfsPropagation` value.
pub fn propagation_flag(p: &str) -> Result<MsFlags, Error> {
    Ok(match p {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        other => {
            return Err(Error::Invalid(format!(
                "linux.rootfsPropagation {other:?}: unknown propagation"
            )))
        }
    })
}

/// pivot_root refuses a new root whose parent mount is shared: make the mount
/// holding the rootfs private in our namespace.
fn make_parent_private(rootfs: &Path) -> Result<(), Error> {
    let mi =
        fs::read_to_string("/proc/self/mountinfo").map_err(sys("read /proc/self/mountinfo"))?;
    let mut best: Option<(PathBuf, bool)> = None;
    for line in mi.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 7 {
            continue;
        }
        let mp = PathBuf::from(f[4].replace("\\040", " "));
        if rootfs.starts_with(&mp)
            && best
                .as_ref()
                .is_none_or(|(b, _)| mp.as_os_str().len() >= b.as_os_str().len())
        {
            let shared = f[6..]
                .iter()
                .take_while(|x| **x != "-")
                .any(|x| x.starts_with("shared:"));
            best = Some((mp, shared));
        }
    }
    if let Some((mp, true)) = best {
        mount(
            None::<&str>,
            &mp,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(nsys(format!("make {} private", mp.display())))?;
    }
    Ok(())
}

/// Mounts one entry of `mounts` inside the rootfs.
pub fn mount_one(
    ctx: &Context,
    root: RawFd,
    m: &Mount,
    idmapped: Option<&OwnedFd>,
) -> Result<(), Error> {
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(Error::Invalid(format!(
            "mount destination {}: must be an absolute path",
            dest.display()
        )));
    }
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]))?;
    let typ = m.typ().as_deref().unwrap_or("");
    if typ == "cgroup" {
        return mount_cgroup(ctx, root, dest, &opts);
    }
    let desc = format!(
        "mount {} on {}",
        m.source()
            .as_deref()
            .map(|s| s.display().to_string())
            .unwrap_or_default(),
        dest.display()
    );
    let special = matches!(typ, "proc" | "sysfs");
    if opts.is_bind() {
        let src = m.source().as_ref().ok_or_else(|| {
            Error::Invalid(format!("mount {}: bind needs a source", dest.display()))
        })?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            ctx.bundle.join(src)
        };
        let md =
            fs::metadata(&src).map_err(sys(format!("{desc}: stat source {}", src.display())))?;
        if md.is_dir() {
            mkdir_all_in_root(root, dest, 0o755)?;
        } else {
            touch_in_root(root, dest)?;
        }
        let target = open_in_root(root, dest, libc::O_PATH, 0)
            .map_err(sys(format!("{desc}: open destination")))?;
        match idmapped {
            // Prepared by the parent (see `idmap_tree`): attach it.
            Some(tree) => syscall::move_mount_fd(tree.as_fd(), target.as_fd())
                .map_err(sys(format!("{desc}: attach idmapped mount")))?,
            None => mount(
                Some(&src),
                &fd_path(&target),
                None::<&str>,
                opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
                None::<&str>,
            )
            .map_err(nsys(desc.clone()))?,
        }
        let mounted =
            open_in_root(root, dest, libc::O_PATH, 0).map_err(sys(format!("{desc}: reopen")))?;
        apply_bind_flags(&mounted, &opts).map_err(sys(format!("{desc}: set options")))?;
        finish_mount(&mounted, &opts, &desc)?;
        return Ok(());
    }
    let dir = mkdir_all_in_root(root, dest, 0o755)?;
    let target = if special {
        // /proc and /sys must be real directories inside the rootfs.
        let fd = open_in_root(
            root,
            dest,
            libc::O_PATH | libc::O_DIRECTORY,
            RESOLVE_NO_SYMLINKS,
        )
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Invalid(format!(
                    "{desc}: destination is a symlink, refused for {typ}"
                ))
            } else {
                Error::Sys {
                    what: format!("{desc}: open destination"),
                    err: e,
                }
            }
        })?;
        drop(dir);
        fd
    } else {
        dir
    };
    let src = m
        .source()
        .as_ref()
        .map(|s| s.as_os_str().to_owned())
        .unwrap_or_else(|| typ.into());
    let data = if opts.data.is_empty() {
        None
    } else {
        Some(opts.data.as_str())
    };
    let old_content = if opts.tmpcopyup {
        Some(
            open_in_root(root, dest, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(sys(format!("{desc}: open for tmpcopyup")))?,
        )
    } else {
        None
    };
    let flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    let res = mount(
        Some(src.as_os_str()),
        &fd_path(&target),
        Some(typ),
        flags,
        data,
    );
    if let Err(e) = res {
        // Inside a user namespace sysfs cannot be mounted without a new network
        // namespace; bind the host's, as runc does.
        if typ == "sysfs" && e == nix::Error::EPERM && ctx.in_userns {
            mount(
                Some("/sys"),
                &fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(nsys(desc.clone()))?;
        } else {
            return Err(nsys(desc)(e));
        }
    }
    let mounted =
        open_in_root(root, dest, libc::O_PATH, 0).map_err(sys(format!("{desc}: reopen")))?;
    if let Some(old) = old_content {
        let new = open_in_root(root, dest, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(sys(format!("{desc}: reopen")))?;
        copy_tree(&old, &new).map_err(sys(format!("{desc}: tmpcopyup")))?;
    }
    finish_mount(&mounted, &opts, &desc)
}

/// An idmapped copy of the bind source `src`: a detached mount (recursive
/// with `recursive`) whose file ownership is mapped through a user namespace
/// holding `uid`/`gid` (the mount's containerID → hostID, as runc reads them).
/// Made by the parent before the clone, with the host's privileges; the
/// container process attaches it with move_mount.
pub fn idmap_tree(
    src: &Path,
    recursive: bool,
    uid: &[oci_spec::runtime::LinuxIdMapping],
    gid: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<OwnedFd, Error> {
    let desc = format!("idmapped mount of {}", src.display());
    let userns = idmap_userns(uid, gid).map_err(|e| Error::Invalid(format!("{desc}: {e}")))?;
    let tree =
        syscall::open_tree_clone(src, recursive).map_err(sys(format!("{desc}: open_tree")))?;
    syscall::mount_setattr_idmap(tree.as_fd(), recursive, userns.as_fd()).map_err(|err| {
        let why = if err.raw_os_error() == Some(libc::EINVAL) {
            " (its filesystem does not support idmapped mounts on this kernel)"
        } else {
            ""
        };
        Error::Sys {
            what: format!("{desc}: set MOUNT_ATTR_IDMAP{why}"),
            err,
        }
    })?;
    Ok(tree)
}

/// A user namespace with the given maps, held by nothing but the returned
/// fd: a child enters it, the maps are written, the child exits.
fn idmap_userns(
    uid: &[oci_spec::runtime::LinuxIdMapping],
    gid: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<OwnedFd, String> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let pid = syscall::clone_fork(libc::CLONE_NEWUSER).map_err(|e| format!("clone: {e}"))?;
    if pid == 0 {
        drop(w);
        // Wait until the parent has what it needs, then go.
        let mut b = [0u8; 1];
        let _ = nix::unistd::read(&r, &mut b);
        syscall::exit_now(0);
    }
    drop(r);
    let res = crate::namespaces::write_id_maps(pid, uid, gid, false)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            nix::fcntl::open(
                format!("/proc/{pid}/ns/user").as_str(),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| format!("open user namespace: {e}"))
        });
    drop(w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    res
}

fn apply_bind_flags(fd: &OwnedFd, o: &MountOptions) -> io::Result<()> {
    use syscall::*;
    let map = [
        (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
        (
            MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
            MOUNT_ATTR_NOSYMFOLLOW,
        ),
    ];
    let (mut set, mut clear) = (0u64, 0u64);
    for (f, a) in map {
        if o.flags.contains(f) {
            set |= a;
        }
        if o.clear.contains(f) {
            clear |= a;
        }
    }
    for (f, a) in [
        (MsFlags::MS_NOATIME, MOUNT_ATTR_NOATIME),
        (MsFlags::MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
    ] {
        if o.flags.contains(f) {
            clear |= MOUNT_ATTR__ATIME;
            set |= a;
        }
    }
    if o.flags.contains(MsFlags::MS_RELATIME) {
        clear |= MOUNT_ATTR__ATIME;
    }
    if set == 0 && clear == 0 {
        return Ok(());
    }
    // Like runc, bind options apply to the top mount; `r*` options recurse.
    syscall::mount_setattr(fd.as_fd(), false, set, clear)
}

fn finish_mount(mounted: &OwnedFd, opts: &MountOptions, desc: &str) -> Result<(), Error> {
    for p in &opts.propagation {
        mount(
            None::<&str>,
            &fd_path(mounted),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .map_err(nsys(format!("{desc}: set propagation")))?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        syscall::mount_setattr(mounted.as_fd(), true, opts.rec_set, opts.rec_clear)
            .map_err(sys(format!("{desc}: set recursive attributes")))?;
    }
    Ok(())
}

/// Copies a directory tree between two directory fds (for tmpcopyup).
fn copy_tree(from: &OwnedFd, to: &OwnedFd) -> io::Result<()> {
    let mut dir = nix::dir::Dir::from_fd(nix::unistd::dup(from)?)?;
    for ent in dir.iter() {
        let ent = ent?;
        let name = ent.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let st = nix::sys::stat::fstatat(from.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        if kind == SFlag::S_IFDIR {
            nix::sys::stat::mkdirat(to.as_fd(), name, mode)?;
            let sub_from = nix::fcntl::openat(
                from.as_fd(),
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let sub_to = nix::fcntl::openat(
                to.as_fd(),
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            copy_tree(&sub_from, &sub_to)?;
        } else if kind == SFlag::S_IFLNK {
            let target = nix::fcntl::readlinkat(from.as_fd(), name)?;
            nix::unistd::symlinkat(target.as_os_str(), to.as_fd(), name)?;
        } else if kind == SFlag::S_IFREG {
            let src = nix::fcntl::openat(
                from.as_fd(),
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let dst = nix::fcntl::openat(
                to.as_fd(),
                name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
                mode,
            )?;
            let mut s = fs::File::from(src);
            let mut d = fs::File::from(dst);
            io::copy(&mut s, &mut d)?;
        } else {
            nix::sys::stat::mknodat(to.as_fd(), name, kind, mode, st.st_rdev)?;
        }
        nix::unistd::fchownat(
            to.as_fd(),
            name,
            Some(st.st_uid.into()),
            Some(st.st_gid.into()),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(())
}

/// The `cgroup` mount type: cgroup2 on a v2 host; on v1 and hybrid hosts a
/// tmpfs holding one mount per hierarchy, as runc lays it out. With a new
/// cgroup namespace each hierarchy is mounted fresh (showing the container's
/// cgroup as its root); without, the container's directories are bound in.
fn mount_cgroup(ctx: &Context, root: RawFd, dest: &Path, opts: &MountOptions) -> Result<(), Error> {
    let flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    let dir = mkdir_all_in_root(root, dest, 0o755)?;
    let desc = format!("mount cgroup on {}", dest.display());
    if ctx.layout.is_pure_v2() {
        if ctx.new_cgroupns {
            mount(
                Some("cgroup2"),
                &fd_path(&dir),
                Some("cgroup2"),
                flags,
                None::<&str>,
            )
            .map_err(nsys(desc))?;
        } else {
            let src = ctx
                .cgroup_dirs
                .first()
                .cloned()
                .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
            mount(
                Some(&src),
                &fd_path(&dir),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(nsys(desc.clone()))?;
            let m = open_in_root(root, dest, libc::O_PATH, 0)
                .map_err(sys(format!("{desc}: reopen")))?;
            apply_bind_flags(&m, opts).map_err(sys(format!("{desc}: set options")))?;
        }
        return Ok(());
    }
    let tmpfs_flags = flags & !MsFlags::MS_RDONLY;
    mount(
        Some("tmpfs"),
        &fd_path(&dir),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .map_err(nsys(desc.clone()))?;
    let base = open_in_root(root, dest, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(sys(format!("{desc}: reopen")))?;
    for h in &ctx.layout.hierarchies {
        let Some(name) = h.mount.file_name() else {
            continue;
        };
        if h.mount.parent() != Some(Path::new("/sys/fs/cgroup")) {
            continue;
        }
        nix::sys::stat::mkdirat(base.as_fd(), name, Mode::from_bits_truncate(0o755))
            .map_err(nsys(format!("{desc}: mkdir")))?;
        let sub = nix::fcntl::openat(
            base.as_fd(),
            name,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(nsys(format!("{desc}: open")))?;
        let subdesc = format!("{desc}/{}", name.to_string_lossy());
        if ctx.new_cgroupns {
            let (fstype, data) = if h.unified {
                ("cgroup2", String::new())
            } else {
                ("cgroup", h.controllers.join(","))
            };
            mount(
                Some("cgroup"),
                &fd_path(&sub),
                Some(fstype),
                flags & !MsFlags::MS_RDONLY,
                Some(data.as_str()),
            )
            .map_err(nsys(subdesc.clone()))?;
        } else {
            let src = ctx
                .cgroup_dirs
                .iter()
                .find(|d| d.starts_with(&h.mount))
                .cloned()
                .unwrap_or_else(|| h.mount.clone());
            mount(
                Some(&src),
                &fd_path(&sub),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(nsys(subdesc.clone()))?;
        }
        // Co-mounted controllers get links as on the host (cpu -> cpu,cpuacct).
        if !h.unified && h.controllers.len() > 1 {
            for c in &h.controllers {
                let c = c.strip_prefix("name=").unwrap_or(c);
                if c.as_bytes() != name.as_bytes() {
                    let _ = nix::unistd::symlinkat(name, base.as_fd(), c);
                }
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        // The tmpfs and every hierarchy under it, in one call.
        let top =
            open_in_root(root, dest, libc::O_PATH, 0).map_err(sys(format!("{desc}: reopen")))?;
        syscall::mount_setattr(top.as_fd(), true, syscall::MOUNT_ATTR_RDONLY, 0)
            .map_err(sys(format!("{desc}: make read-only")))?;
    }
    Ok(())
}

/// True when the config bind-mounts something onto /dev itself, in which case
/// the runtime does not populate /dev.
pub fn binds_dev(mounts: &[Mount]) -> bool {
    mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind")
    })
}

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
pub fn setup_dev(ctx: &Context, root: RawFd) -> Result<(), Error> {
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
pub fn create_devices(ctx: &Context, root: RawFd, devices: &[LinuxDevice]) -> Result<(), Error> {
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
fn create_device(
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

fn host_device_path(kind: SFlag, major: u64, minor: u64) -> Option<PathBuf> {
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

/// Changes the root: pivot_root, then detaches the old root; or with
/// `no_pivot`, moves the rootfs over / and chroots.
pub fn change_root(rootfs: &Path, no_pivot: bool) -> Result<(), Error> {
    nix::unistd::chdir(rootfs).map_err(nsys(format!("chdir {}", rootfs.display())))?;
    if no_pivot {
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(nsys("move rootfs to /"))?;
        nix::unistd::chroot(".").map_err(nsys("chroot"))?;
    } else {
        syscall::pivot_root(Path::new("."), Path::new("."))
            .map_err(sys(format!("pivot_root {}", rootfs.display())))?;
        // The old root is now stacked under the new one: keep unmount events
        // from reaching the host, then detach it.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(nsys("make old root slave"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(nsys("detach old root"))?;
    }
    nix::unistd::chdir("/").map_err(nsys("chdir /"))?;
    Ok(())
}

/// Calls `f` with an O_PATH fd of each path that exists in the new root
/// (after the root change); missing paths are skipped, as runc skips them.
fn for_each_existing(
    paths: &[String],
    verb: &str,
    mut f: impl FnMut(&str, RawFd, OwnedFd) -> Result<(), Error>,
) -> Result<(), Error> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nsys("open /"))?;
    for p in paths {
        match open_in_root(root.as_raw_fd(), Path::new(p), libc::O_PATH, 0) {
            Ok(fd) => f(p, root.as_raw_fd(), fd)?,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(sys(format!("{verb} {p}"))(e)),
        }
    }
    Ok(())
}

/// Masks paths: directories get an empty read-only tmpfs, files /dev/null.
pub fn mask_paths(paths: &[String]) -> Result<(), Error> {
    for_each_existing(paths, "mask", |p, _, fd| {
        let st = nix::sys::stat::fstat(&fd).map_err(nsys(format!("mask {p}")))?;
        let r = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            mount(
                Some("tmpfs"),
                &fd_path(&fd),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )
        } else {
            mount(
                Some("/dev/null"),
                &fd_path(&fd),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        r.map_err(nsys(format!("mask {p}")))
    })
}

/// Makes paths read-only by binding each onto itself, then setting the new
/// mount (and those below it) read-only.
pub fn readonly_paths(paths: &[String]) -> Result<(), Error> {
    for_each_existing(paths, "make read-only", |p, root, fd| {
        let what = format!("make {p} read-only");
        mount(
            Some(&fd_path(&fd)),
            &fd_path(&fd),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(nsys(what.clone()))?;
        let m = open_in_root(root, Path::new(p), libc::O_PATH, 0).map_err(sys(what.clone()))?;
        syscall::mount_setattr(m.as_fd(), true, syscall::MOUNT_ATTR_RDONLY, 0).map_err(sys(what))
    })
}

/// Checks that `fd` is on procfs, before anything is written through it.
pub fn ensure_procfs(fd: &OwnedFd, what: &str) -> Result<(), Error> {
    let st = nix::sys::statfs::fstatfs(fd).map_err(nsys(format!("statfs {what}")))?;
    if st.filesystem_type().0 as i64 != PROC_SUPER_MAGIC {
        return Err(Error::Invalid(format!(
            "{what} is not on procfs, refusing to write to it"
        )));
    }
    Ok(())
}

/// Writes `linux.sysctl` through the container's /proc/sys (after the root
/// change), refusing anything that is not procfs or leaves /proc/sys.
pub fn write_sysctls(sysctl: &std::collections::HashMap<String, String>) -> Result<(), Error> {
    if sysctl.is_empty() {
        return Ok(());
    }
    let procsys = nix::fcntl::open(
        "/proc/sys",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nsys("open /proc/sys"))?;
    ensure_procfs(&procsys, "/proc/sys")?;
    let mut keys: Vec<_> = sysctl.keys().collect();
    keys.sort();
    for k in keys {
        let rel = k.replace('.', "/");
        let fd = syscall::openat2(
            procsys.as_raw_fd(),
            Path::new(&rel),
            libc::O_WRONLY,
            0,
            syscall::RESOLVE_NO_SYMLINKS | 0x08,
        )
        .map_err(sys(format!("open sysctl {k}")))?;
        ensure_procfs(&fd, &format!("sysctl {k}"))?;
        let mut f = fs::File::from(fd);
        io::Write::write_all(&mut f, sysctl[k].as_bytes())
            .map_err(sys(format!("write sysctl {k}={}", sysctl[k])))?;
    }
    Ok(())
}

/// Remounts the root read-only (root.readonly).
pub fn readonly_root() -> Result<(), Error> {
    let fd = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nsys("open /"))?;
    syscall::mount_setattr(fd.as_fd(), false, syscall::MOUNT_ATTR_RDONLY, 0)
        .map_err(sys("make / read-only"))
}

/// Applies `rootfsPropagation` to the new root.
pub fn set_root_propagation(p: &str) -> Result<(), Error> {
    let flag = propagation_flag(p)?;
    mount(None::<&str>, "/", None::<&str>, flag, None::<&str>)
        .map_err(nsys(format!("set rootfsPropagation {p}")))
}

/// Validates sysctl keys against the namespaces the container has, as runc
/// does: a sysctl that would change the host is refused.
pub fn validate_sysctl(
    key: &str,
    has_net: bool,
    has_ipc: bool,
    has_uts: bool,
) -> Result<(), Error> {
    let ipc_keys = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let ok = if key.starts_with("net.") {
        has_net
    } else if ipc_keys.contains(&key) || key.starts_with("fs.mqueue.") {
        has_ipc
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        has_uts
    } else {
        return Err(Error::Invalid(format!(
            "linux.sysctl {key}: not namespaced, refused (it would change the host)"
        )));
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "linux.sysctl {key}: the container has no own namespace for it"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> MountOptions {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn options_split_into_flags_data_propagation() {
        let o = opts(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rprivate",
        ]);
        assert!(o
            .flags
            .contains(MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME));
        assert_eq!(o.data, "mode=755,size=65536k");
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        let b = opts(&["rbind", "ro", "rw"]);
        assert!(b.is_bind() && b.flags.contains(MsFlags::MS_REC));
        assert!(!b.flags.contains(MsFlags::MS_RDONLY) && b.clear.contains(MsFlags::MS_RDONLY));
        let r = opts(&["rro", "rnosuid"]);
        assert_eq!(
            r.rec_set,
            syscall::MOUNT_ATTR_RDONLY | syscall::MOUNT_ATTR_NOSUID
        );
        assert!(parse_options(&["idmap".to_string()]).is_err());
    }

    #[test]
    fn sysctl_rules() {
        assert!(validate_sysctl("net.ipv4.ip_forward", true, false, false).is_ok());
        assert!(validate_sysctl("net.ipv4.ip_forward", false, true, true).is_err());
        assert!(validate_sysctl("kernel.shmmax", false, true, false).is_ok());
        assert!(validate_sysctl("vm.swappiness", true, true, true).is_err());
    }

    #[test]
    fn propagation_names() {
        assert_eq!(
            propagation_flag("rslave").unwrap(),
            MsFlags::MS_SLAVE | MsFlags::MS_REC
        );
        assert!(propagation_flag("bogus").is_err());
    }

    #[test]
    fn in_root_resolution_stays_inside() {
        let dir = std::env::temp_dir().join(format!("berth-rootfs-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a")).unwrap();
        std::os::unix::fs::symlink("/../../../../etc", dir.join("a/escape")).unwrap();
        let root =
            nix::fcntl::open(&dir, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        // A symlink aiming at the host's /etc lands in <root>/etc instead.
        let fd = mkdir_all_in_root(root.as_raw_fd(), Path::new("/a/escape/sub"), 0o755).unwrap();
        drop(fd);
        assert!(dir.join("etc/sub").is_dir());
        assert!(!Path::new("/etc/sub").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
