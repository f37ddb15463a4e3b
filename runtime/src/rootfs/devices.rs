//! `/dev`: the default devices, `linux.devices`, the /dev symlinks, pts,
//! shm and mqueue.

use nix::mount::MsFlags;
use nix::sys::stat::SFlag;
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
    let sys = ctx.sys;
    let dev = mkdir_all_in_root(sys, root, Path::new("/dev"), 0o755)?;
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
        match sys.symlinkat(target.as_ref(), dev.as_fd(), name.as_ref()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(sys_err(format!("symlink /dev/{name}"))(e)),
        }
    }
    // /dev/ptmx points into the container's own devpts instance.
    match sys.unlinkat(dev.as_fd(), "ptmx".as_ref()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(sys_err("remove /dev/ptmx")(e)),
    }
    sys.symlinkat("pts/ptmx".as_ref(), dev.as_fd(), "ptmx".as_ref())
        .map_err(sys_err("symlink /dev/ptmx"))?;
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
        let pfd = mkdir_all_in_root(ctx.sys, root, parent, 0o755)?;
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
    let sys = ctx.sys;
    if ctx.in_userns {
        // mknod is not allowed in a user namespace: bind the host's node.
        let host = host_device_path(kind, major, minor).ok_or_else(|| {
            Error::Invalid(format!(
                "{desc}: no host node for {major}:{minor} to bind in a user namespace"
            ))
        })?;
        match sys.create_file(dir.as_fd(), name.as_ref(), 0o644) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(sys_err(desc)(e)),
        }
        let target = sys
            .openat2(
                dir.as_fd(),
                Path::new(name),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0,
            )
            .map_err(sys_err(desc.clone()))?;
        sys.mount(
            Some(host.as_os_str()),
            &fd_path(&target),
            None,
            MsFlags::MS_BIND,
            None,
        )
        .map_err(sys_err(desc))?;
        return Ok(());
    }
    let dev = nix::sys::stat::makedev(major, minor);
    match sys.mknodat(dir.as_fd(), name.as_ref(), kind, mode, dev) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Ok(()),
        Err(e) => return Err(sys_err(desc)(e)),
    }
    // mknod applies the umask; set the exact mode.
    sys.fchmodat(dir.as_fd(), name.as_ref(), mode)
        .map_err(sys_err(format!("chmod device {name}")))?;
    sys.fchownat(dir.as_fd(), name.as_ref(), uid, gid)
        .map_err(sys_err(format!("chown device {name}")))?;
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

#[cfg(test)]
mod tests {
    use super::super::fake::{self, Call, Fake, Node};
    use super::*;
    use crate::cgroups::Layout;
    use oci_spec::runtime::LinuxDeviceBuilder;
    use std::os::fd::AsFd;

    fn dev(path: &str, typ: LinuxDeviceType, major: i64, minor: i64) -> LinuxDevice {
        LinuxDeviceBuilder::default()
            .path(path)
            .typ(typ)
            .major(major)
            .minor(minor)
            .build()
            .unwrap()
    }

    fn mknods(f: &Fake) -> Vec<(PathBuf, Node, u32)> {
        f.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Mknod { path, node, mode } => Some((path, node, mode)),
                _ => None,
            })
            .collect()
    }

    fn ctx_in_userns<'a>(f: &'a Fake, layout: &'a Layout) -> Context<'a> {
        Context {
            in_userns: true,
            ..fake::ctx(f, layout)
        }
    }

    #[test]
    fn the_default_devices_are_made_with_their_numbers_and_mode_0666() {
        let f = Fake::new();
        let layout = Layout::default();
        setup_dev(&fake::ctx(&f, &layout), f.root().as_fd()).unwrap();
        let made = mknods(&f);
        let want: Vec<(PathBuf, Node, u32)> = DEFAULT_DEVICES
            .iter()
            .map(|(n, a, b)| {
                (
                    PathBuf::from(format!("/dev/{n}")),
                    Node::Char(*a, *b),
                    0o666,
                )
            })
            .collect();
        assert_eq!(made, want);
    }

    #[test]
    fn each_device_gets_its_exact_mode_after_the_umask_and_root_as_owner() {
        let f = Fake::new();
        let layout = Layout::default();
        let ctx = Context {
            root_uid: 100000,
            root_gid: 100001,
            ..fake::ctx(&f, &layout)
        };
        setup_dev(&ctx, f.root().as_fd()).unwrap();
        let calls = f.calls();
        for (n, _, _) in DEFAULT_DEVICES {
            let p = PathBuf::from(format!("/dev/{n}"));
            let at = |c: &Call| calls.iter().position(|x| x == c).unwrap();
            let mk = calls
                .iter()
                .position(|c| matches!(c, Call::Mknod { path, .. } if *path == p))
                .unwrap();
            let chmod = at(&Call::Chmod(p.clone(), 0o666));
            let chown = at(&Call::Chown(p.clone(), 100000, 100001));
            assert!(
                mk < chmod && chmod < chown,
                "{n}: mknod, chmod, chown in order"
            );
        }
    }

    #[test]
    fn dev_is_made_when_missing() {
        let f = Fake::new();
        let layout = Layout::default();
        setup_dev(&fake::ctx(&f, &layout), f.root().as_fd()).unwrap();
        assert_eq!(f.calls()[0], Call::Mkdir(PathBuf::from("/dev"), 0o755));
        assert_eq!(f.node("/dev"), Some(Node::Dir));
    }

    #[test]
    fn the_standard_links_point_into_proc() {
        let f = Fake::new();
        let layout = Layout::default();
        setup_dev(&fake::ctx(&f, &layout), f.root().as_fd()).unwrap();
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            assert_eq!(
                f.node(&format!("/dev/{name}")),
                Some(Node::Link(PathBuf::from(target))),
                "/dev/{name}"
            );
        }
    }

    #[test]
    fn ptmx_points_at_the_containers_own_devpts() {
        let f = Fake::new();
        let layout = Layout::default();
        setup_dev(&fake::ctx(&f, &layout), f.root().as_fd()).unwrap();
        assert_eq!(
            f.node("/dev/ptmx"),
            Some(Node::Link(PathBuf::from("pts/ptmx")))
        );
    }

    #[test]
    fn an_image_ptmx_node_is_replaced_by_the_link() {
        let f = Fake::new().with("/dev/ptmx", Node::Char(5, 2));
        let layout = Layout::default();
        setup_dev(&fake::ctx(&f, &layout), f.root().as_fd()).unwrap();
        let calls = f.calls();
        let unlink = calls
            .iter()
            .position(|c| *c == Call::Unlink(PathBuf::from("/dev/ptmx")))
            .expect("the image's ptmx removed");
        let link = calls
            .iter()
            .position(|c| matches!(c, Call::Symlink { path, .. } if path == Path::new("/dev/ptmx")))
            .unwrap();
        assert!(unlink < link);
        assert_eq!(
            f.node("/dev/ptmx"),
            Some(Node::Link(PathBuf::from("pts/ptmx")))
        );
    }

    #[test]
    fn devices_and_links_the_image_has_are_kept() {
        let f = Fake::new()
            .with("/dev/null", Node::Char(1, 3))
            .with("/dev/fd", Node::Link(PathBuf::from("/proc/self/fd")));
        let layout = Layout::default();
        setup_dev(&fake::ctx(&f, &layout), f.root().as_fd()).unwrap();
        let made: Vec<PathBuf> = mknods(&f).into_iter().map(|(p, _, _)| p).collect();
        assert!(!made.contains(&PathBuf::from("/dev/null")));
        assert!(made.contains(&PathBuf::from("/dev/zero")));
        // No chmod or chown of a node that was already there.
        assert!(!f.calls().iter().any(
            |c| matches!(c, Call::Chmod(p, _) | Call::Chown(p, _, _) if p == Path::new("/dev/null"))
        ));
    }

    #[test]
    fn a_failing_mknod_names_the_device() {
        let f = Fake::new().fail_when(
            |c| matches!(c, Call::Mknod { path, .. } if path == Path::new("/dev/full")),
            libc::EPERM,
        );
        let layout = Layout::default();
        let err = setup_dev(&fake::ctx(&f, &layout), f.root().as_fd())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("create device full:"), "{err}");
    }

    #[test]
    fn in_a_user_namespace_devices_are_the_hosts_bound_not_made() {
        let f = Fake::new();
        let layout = Layout::default();
        setup_dev(&ctx_in_userns(&f, &layout), f.root().as_fd()).unwrap();
        assert!(mknods(&f).is_empty());
        for (n, _, _) in DEFAULT_DEVICES {
            let target = format!("/dev/{n}");
            assert!(f.calls().contains(&Call::Create(PathBuf::from(&target))));
            assert!(f.mounts().contains(&fake::mount(
                Some(&target),
                &target,
                None,
                MsFlags::MS_BIND,
                None
            )));
        }
    }

    #[test]
    fn linux_devices_are_made_with_their_type_numbers_and_mode() {
        let f = Fake::new();
        let layout = Layout::default();
        let mut d = dev("/dev/fuse", LinuxDeviceType::C, 10, 229);
        d.set_file_mode(Some(0o600));
        let devices = [
            d,
            dev("/dev/loop7", LinuxDeviceType::B, 7, 7),
            dev("/dev/pipe", LinuxDeviceType::P, 0, 0),
            dev("/dev/unbuffered", LinuxDeviceType::U, 4, 64),
        ];
        create_devices(&fake::ctx(&f, &layout), f.root().as_fd(), &devices).unwrap();
        assert_eq!(
            mknods(&f),
            vec![
                (PathBuf::from("/dev/fuse"), Node::Char(10, 229), 0o600),
                (PathBuf::from("/dev/loop7"), Node::Block(7, 7), 0o666),
                (PathBuf::from("/dev/pipe"), Node::Fifo, 0o666),
                (PathBuf::from("/dev/unbuffered"), Node::Char(4, 64), 0o666),
            ]
        );
    }

    #[test]
    fn a_linux_device_owner_overrides_the_mapped_root() {
        let f = Fake::new();
        let layout = Layout::default();
        let ctx = Context {
            root_uid: 1000,
            root_gid: 1000,
            ..fake::ctx(&f, &layout)
        };
        let mut d = dev("/dev/kvm", LinuxDeviceType::C, 10, 232);
        d.set_uid(Some(7));
        d.set_gid(Some(8));
        let plain = dev("/dev/net/tun", LinuxDeviceType::C, 10, 200);
        create_devices(&ctx, f.root().as_fd(), &[d, plain]).unwrap();
        assert!(f
            .calls()
            .contains(&Call::Chown(PathBuf::from("/dev/kvm"), 7, 8)));
        assert!(f
            .calls()
            .contains(&Call::Chown(PathBuf::from("/dev/net/tun"), 1000, 1000)));
    }

    #[test]
    fn a_linux_device_in_a_missing_directory_gets_the_directory() {
        let f = Fake::new();
        let layout = Layout::default();
        let d = dev("/dev/net/tun", LinuxDeviceType::C, 10, 200);
        create_devices(&fake::ctx(&f, &layout), f.root().as_fd(), &[d]).unwrap();
        assert_eq!(
            &f.calls()[..2],
            &[
                Call::Mkdir(PathBuf::from("/dev"), 0o755),
                Call::Mkdir(PathBuf::from("/dev/net"), 0o755)
            ]
        );
        assert_eq!(f.node("/dev/net/tun"), Some(Node::Char(10, 200)));
    }

    #[test]
    fn a_relative_device_path_is_refused_before_anything_is_made() {
        let f = Fake::new();
        let layout = Layout::default();
        let d = dev("dev/fuse", LinuxDeviceType::C, 10, 229);
        let err = create_devices(&fake::ctx(&f, &layout), f.root().as_fd(), &[d])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "linux.devices: path dev/fuse is not absolute");
        assert!(f.calls().is_empty());
    }

    #[test]
    fn type_a_is_only_for_cgroup_rules() {
        let f = Fake::new();
        let layout = Layout::default();
        let d = dev("/dev/all", LinuxDeviceType::A, 0, 0);
        let err = create_devices(&fake::ctx(&f, &layout), f.root().as_fd(), &[d])
            .unwrap_err()
            .to_string();
        assert!(err.contains("which is only for cgroup rules"), "{err}");
        assert!(f.calls().is_empty());
    }

    #[test]
    fn a_device_path_through_a_symlink_stays_in_the_root() {
        // /dev/disk -> /../../host: resolved in the root, it lands in /host.
        let f = Fake::new().with("/dev/disk", Node::Link(PathBuf::from("/../../host")));
        let layout = Layout::default();
        let d = dev("/dev/disk/sda", LinuxDeviceType::B, 8, 0);
        create_devices(&fake::ctx(&f, &layout), f.root().as_fd(), &[d]).unwrap();
        assert_eq!(f.node("/host/sda"), Some(Node::Block(8, 0)));
    }

    #[test]
    fn a_linux_device_that_exists_is_left_as_it_is() {
        let f = Fake::new().with("/dev/fuse", Node::Char(10, 229));
        let layout = Layout::default();
        let d = dev("/dev/fuse", LinuxDeviceType::C, 10, 229);
        create_devices(&fake::ctx(&f, &layout), f.root().as_fd(), &[d]).unwrap();
        assert!(f.calls().is_empty());
    }

    #[test]
    fn in_a_user_namespace_a_device_with_no_host_node_is_refused_by_name() {
        let f = Fake::new();
        let layout = Layout::default();
        let d = dev("/dev/nothing", LinuxDeviceType::C, 4095, 1048575);
        let err = create_devices(&ctx_in_userns(&f, &layout), f.root().as_fd(), &[d])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "create device nothing: no host node for 4095:1048575 to bind in a user namespace"
        );
    }

    #[test]
    fn the_host_node_of_a_default_device_is_its_dev_path() {
        assert_eq!(
            host_device_path(SFlag::S_IFCHR, 1, 3),
            Some(PathBuf::from("/dev/null"))
        );
        assert_eq!(
            host_device_path(SFlag::S_IFCHR, 5, 0),
            Some(PathBuf::from("/dev/tty"))
        );
        // A block 1:3 is not /dev/null.
        assert_ne!(
            host_device_path(SFlag::S_IFBLK, 1, 3),
            Some(PathBuf::from("/dev/null"))
        );
    }
}
