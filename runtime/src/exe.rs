//! Protection of the host's `berth` binary (the CVE-2019-5736 class).
//!
//! A process in the container can make the kernel execute the binary of a
//! process entering the container (via `/proc/self/exe` as an interpreter) and
//! then write to it through `/proc/<pid>/exe`. Before `berth` forks anything
//! that enters a container, it re-executes itself from a copy that cannot be
//! written:
//!
//! - first choice: the same file seen through a private, detached, read-only
//!   overlayfs mount of its directory (no upper layer, so the superblock is
//!   read-only and the real inode is unreachable from it). No copy: the page
//!   cache is shared, which is what keeps `run` fast;
//! - where overlayfs cannot be mounted (no privilege, unsupported lower
//!   filesystem): a sealed memfd copy of the binary.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::os::unix::ffi::OsStringExt;

use crate::syscall;

const F_SEAL_SEAL: i32 = 0x1;
const F_SEAL_SHRINK: i32 = 0x2;
const F_SEAL_GROW: i32 = 0x4;
const F_SEAL_WRITE: i32 = 0x8;
const SEALS: i32 = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
const MFD_CLOEXEC: u32 = 1;
const MFD_ALLOW_SEALING: u32 = 2;
const MFD_EXEC: u32 = 0x10;

/// Errors of the self-protection step.
#[derive(Debug, thiserror::Error)]
#[error("protect the berth binary: {what}: {err}")]
pub struct Error {
    what: &'static str,
    err: io::Error,
}

fn e(what: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |err| Error { what, err }
}

/// True when this process already runs from a protected copy: a sealed
/// memfd, or a file on a read-only overlayfs.
pub fn is_protected() -> bool {
    let Ok(f) = File::open("/proc/self/exe") else {
        return false;
    };
    let s = crate::syscall::get_seals(std::os::fd::AsFd::as_fd(&f));
    if s.is_ok_and(|s| s & F_SEAL_WRITE != 0) {
        return true;
    }
    nix::sys::statfs::fstatfs(&f).is_ok_and(|st| {
        st.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC
            && nix::sys::statvfs::fstatvfs(&f)
                .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
    })
}

/// Re-executes the current command from a protected copy of the binary,
/// unless it already runs from one. Returns only on failure. `spare_dir` is
/// an existing directory (the state root) that overlayfs can use as its
/// second, lower layer: it needs two without an upper one.
pub fn reexec_protected(spare_dir: &std::path::Path) -> Result<(), Error> {
    if is_protected() {
        return Ok(());
    }
    let (argv, envp) = args_env();
    if let Ok(fd) = overlay_view(spare_dir) {
        let err = syscall::fexecve(fd.as_fd(), &argv, &envp);
        crate::debug!("exec berth through overlayfs: {err}; copying it instead");
    }
    let sealed = sealed_copy()?;
    Err(e("execveat memfd")(syscall::fexecve(
        sealed.as_fd(),
        &argv,
        &envp,
    )))
}

fn args_env() -> (Vec<CString>, Vec<CString>) {
    let argv: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.into_vec()).ok())
        .collect();
    let envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).ok()
        })
        .collect();
    (argv, envp)
}

/// An O_PATH fd of our own binary seen through a new detached overlayfs
/// mount whose top (lower) layer is the binary's directory, so nothing in
/// `spare_dir` can mask the binary.
fn overlay_view(spare_dir: &std::path::Path) -> Result<OwnedFd, Error> {
    let exe = std::fs::read_link("/proc/self/exe").map_err(e("readlink /proc/self/exe"))?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(e("locate binary")(io::Error::from(io::ErrorKind::NotFound)));
    };
    let dirfd = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|x| e("open binary directory")(x.into()))?;
    let spare = nix::fcntl::open(
        spare_dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|x| e("open spare directory")(x.into()))?;
    let fs = syscall::fsopen(c"overlay").map_err(e("fsopen overlay"))?;
    // Layers by fd path: no escaping of ':' or ',' in the real paths.
    let lower = CString::new(format!(
        "/proc/self/fd/{}:/proc/self/fd/{}",
        dirfd.as_raw_fd(),
        spare.as_raw_fd()
    ))
    .map_err(|_| e("lowerdir")(io::Error::from(io::ErrorKind::InvalidInput)))?;
    syscall::fsconfig_set_string(fs.as_fd(), c"lowerdir", &lower).map_err(e("overlay lowerdir"))?;
    // Inode number mapping is of no use here and only logs to dmesg.
    let _ = syscall::fsconfig_set_string(fs.as_fd(), c"xino", c"off");
    syscall::fsconfig_create(fs.as_fd()).map_err(e("create overlay"))?;
    let mnt = syscall::fsmount(
        fs.as_fd(),
        syscall::MOUNT_ATTR_RDONLY | syscall::MOUNT_ATTR_NODEV | syscall::MOUNT_ATTR_NOSUID,
    )
    .map_err(e("fsmount overlay"))?;
    nix::fcntl::openat(&mnt, name, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|x| e("open binary on overlay")(x.into()))
}

/// A sealed (unwritable, unresizable) memfd copy of our binary.
fn sealed_copy() -> Result<OwnedFd, Error> {
    let mut src = File::open("/proc/self/exe").map_err(e("open /proc/self/exe"))?;
    let memfd = match syscall::memfd_create(c"berth", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC) {
        Ok(fd) => fd,
        // Kernels before 6.3 do not know MFD_EXEC; their memfds are executable.
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
            syscall::memfd_create(c"berth", MFD_CLOEXEC | MFD_ALLOW_SEALING)
                .map_err(e("memfd_create"))?
        }
        Err(err) => return Err(e("memfd_create")(err)),
    };
    let mut dst = File::from(memfd);
    io::copy(&mut src, &mut dst).map_err(e("copy binary to memfd"))?;
    crate::syscall::add_seals(std::os::fd::AsFd::as_fd(&dst), SEALS).map_err(e("seal memfd"))?;
    Ok(OwnedFd::from(dst))
}
