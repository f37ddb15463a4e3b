//! The container's root filesystem: its mounts, devices and /dev links, the
//! root change (pivot_root, or MS_MOVE + chroot), masked and read-only paths,
//! sysctls, and the final read-only root.
//!
//! Every path inside the rootfs is hostile: it is resolved by the kernel with
//! `openat2(RESOLVE_IN_ROOT)` from a directory fd of the rootfs, and mounts
//! target `/proc/self/fd/N` of the resolved fd, never a joined string.
//!
//! Where each part lives: `options` (mount options, parsed once), `paths`
//! (resolution in the root), `mounts` and `idmap` (`mounts[]`),
//! `cgroup_mount` (a `cgroup` mount), `devices` (`/dev`, `linux.devices`),
//! `root` (the root change, `maskedPaths`, `readonlyPaths`, `root.readonly`),
//! `sysctl` (`linux.sysctl`), `populate` (the order of it all before the
//! root change), `sys` (the system calls, behind a trait whose recording
//! double, `fake`, lets all of this be tested without root). Here: the
//! errors, and the rootfs prepared as a mount of its own before anything is
//! mounted in it.

mod cgroup_mount;
mod devices;
#[cfg(test)]
mod fake;
mod idmap;
mod mounts;
mod options;
mod paths;
mod populate;
mod root;
mod sys;
mod sysctl;

use cgroup_mount::*;
pub use devices::*;
pub use idmap::*;
pub use mounts::*;
pub use options::*;
pub use paths::*;
pub use populate::*;
pub use root::*;
pub use sys::*;
pub use sysctl::*;

use crate::cgroups::Layout;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Errors of rootfs setup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {err}")]
    Sys { what: String, err: io::Error },
    #[error("{0}")]
    Invalid(String),
}

fn sys_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
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

/// Everything the rootfs setup needs to know besides the mount list.
pub struct Context<'a> {
    /// The system calls (the kernel's, or a test's recording double).
    pub sys: &'a dyn Sys,
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

/// pivot_root refuses a new root whose parent mount is shared: make the mount
/// holding the rootfs private in our namespace.
fn make_parent_private(rootfs: &Path) -> Result<(), Error> {
    let mi =
        fs::read_to_string("/proc/self/mountinfo").map_err(sys_err("read /proc/self/mountinfo"))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall;

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
        let fd = mkdir_all_in_root(
            &Kernel,
            std::os::fd::AsFd::as_fd(&root),
            Path::new("/a/escape/sub"),
            0o755,
        )
        .unwrap();
        drop(fd);
        assert!(dir.join("etc/sub").is_dir());
        assert!(!Path::new("/etc/sub").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
