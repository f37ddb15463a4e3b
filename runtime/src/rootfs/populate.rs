//! The order of the rootfs setup, as runc keeps it: before the root change
//! the `mounts` in config order, then `/dev` (unless bound from elsewhere)
//! and `linux.devices`, a read-only `/dev` made so last, the working
//! directory made; after it `readonlyPaths`, `maskedPaths`, a read-only
//! root and `rootfsPropagation`.

use oci_spec::runtime::{LinuxDevice, Mount};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use super::*;

/// What is made inside the rootfs before the root change.
pub struct Populate<'a> {
    /// The config's `mounts`, in order.
    pub mounts: &'a [Mount],
    /// Each mount's options, parsed once when the bundle was loaded.
    pub options: &'a [MountOptions],
    /// Trees the parent prepared (idmapped, or opened before a user
    /// namespace), by index in `mounts`.
    pub idmapped: &'a [(usize, OwnedFd)],
    /// `linux.devices`.
    pub devices: &'a [LinuxDevice],
    /// `process.cwd`, made when missing.
    pub cwd: Option<&'a Path>,
}

/// Mounts, devices and the working directory, in the rootfs `root`.
pub fn populate(ctx: &Context, root: BorrowedFd<'_>, p: &Populate) -> Result<(), Error> {
    let sys = ctx.sys;
    for (i, m) in p.mounts.iter().enumerate() {
        let idmapped = p.idmapped.iter().find(|(j, _)| *j == i).map(|(_, fd)| fd);
        let opts = p
            .options
            .get(i)
            .ok_or_else(|| Error::Invalid(format!("mounts[{i}]: options were not parsed")))?;
        mount_one(ctx, root, m, opts, idmapped)?;
    }
    if !binds_dev(p.mounts) {
        setup_dev(ctx, root)?;
    }
    create_devices(ctx, root, p.devices)?;
    let dev_ro = p
        .mounts
        .iter()
        .zip(p.options)
        .any(|(m, o)| dev_read_only_later(m.destination(), o));
    if dev_ro {
        make_dev_read_only(sys, root)?;
    }
    // A missing working directory is made (0755, root's), as runc and
    // docker make it, before a read-only root is remounted.
    if let Some(cwd) = p.cwd {
        if open_in_root(sys, root, cwd, libc::O_PATH | libc::O_DIRECTORY, 0)
            .is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT))
        {
            mkdir_all_in_root(sys, root, cwd, 0o755)?;
        }
    }
    Ok(())
}

/// What is done to the new root after the root change (and sysctls).
pub struct Restrict<'a> {
    /// `linux.readonlyPaths`.
    pub readonly_paths: &'a [String],
    /// `linux.maskedPaths`.
    pub masked_paths: &'a [String],
    /// `root.readonly`.
    pub readonly_root: bool,
    /// `linux.rootfsPropagation`, when set.
    pub propagation: Option<&'a str>,
}

/// Read-only and masked paths, then the read-only root and its propagation.
pub fn restrict(sys: &dyn Sys, r: &Restrict) -> Result<(), Error> {
    readonly_paths(sys, r.readonly_paths)?;
    mask_paths(sys, r.masked_paths)?;
    if r.readonly_root {
        readonly_root(sys)?;
    }
    if let Some(p) = r.propagation.filter(|p| !p.is_empty()) {
        set_root_propagation(sys, p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fake::{self, Call, Fake, Node};
    use super::*;
    use crate::cgroups::Layout;
    use oci_spec::runtime::{LinuxDeviceBuilder, LinuxDeviceType, MountBuilder};
    use std::os::fd::AsFd;
    use std::path::PathBuf;

    fn entry(dest: &str, typ: &str, src: &str, o: &[&str]) -> Mount {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(src)
            .options(o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
            .unwrap()
    }

    fn parsed(ms: &[Mount]) -> Vec<MountOptions> {
        ms.iter()
            .map(|m| parse_options(m.options().as_deref().unwrap_or(&[])).unwrap())
            .collect()
    }

    /// The runc spec's default mounts.
    fn defaults() -> Vec<Mount> {
        vec![
            entry("/proc", "proc", "proc", &[]),
            entry(
                "/dev",
                "tmpfs",
                "tmpfs",
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            ),
            entry(
                "/dev/pts",
                "devpts",
                "devpts",
                &[
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                ],
            ),
            entry(
                "/dev/shm",
                "tmpfs",
                "shm",
                &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            ),
            entry(
                "/dev/mqueue",
                "mqueue",
                "mqueue",
                &["nosuid", "noexec", "nodev"],
            ),
            entry(
                "/sys",
                "sysfs",
                "sysfs",
                &["nosuid", "noexec", "nodev", "ro"],
            ),
        ]
    }

    fn go(
        f: &Fake,
        ms: &[Mount],
        devices: &[oci_spec::runtime::LinuxDevice],
        cwd: Option<&str>,
    ) -> Result<(), Error> {
        let layout = Layout::default();
        let opts = parsed(ms);
        populate(
            &fake::ctx(f, &layout),
            f.root().as_fd(),
            &Populate {
                mounts: ms,
                options: &opts,
                idmapped: &[],
                devices,
                cwd: cwd.map(Path::new),
            },
        )
    }

    fn index(calls: &[Call], pred: impl Fn(&Call) -> bool) -> usize {
        calls.iter().position(pred).expect("the call was made")
    }

    fn mounted_on(c: &Call, at: &str) -> bool {
        matches!(c, Call::Mount { target, fstype: Some(_), .. } if target == Path::new(at))
    }

    #[test]
    fn mounts_are_made_in_config_order() {
        let f = Fake::new();
        go(&f, &defaults(), &[], None).unwrap();
        let targets: Vec<PathBuf> = f
            .mounts()
            .into_iter()
            .filter_map(|c| match c {
                Call::Mount { target, .. } => Some(target),
                _ => None,
            })
            .collect();
        let want: Vec<PathBuf> = defaults().iter().map(|m| m.destination().clone()).collect();
        assert_eq!(targets, want);
    }

    #[test]
    fn devices_come_after_the_dev_tmpfs_so_they_land_in_it() {
        let f = Fake::new();
        go(&f, &defaults(), &[], None).unwrap();
        let calls = f.calls();
        let dev = index(&calls, |c| mounted_on(c, "/dev"));
        let null = index(
            &calls,
            |c| matches!(c, Call::Mknod { path, .. } if path == Path::new("/dev/null")),
        );
        assert!(dev < null);
    }

    #[test]
    fn the_ptmx_link_is_made_after_devpts_is_mounted() {
        let f = Fake::new();
        go(&f, &defaults(), &[], None).unwrap();
        let calls = f.calls();
        let pts = index(&calls, |c| mounted_on(c, "/dev/pts"));
        let ptmx = index(
            &calls,
            |c| matches!(c, Call::Symlink { path, .. } if path == Path::new("/dev/ptmx")),
        );
        assert!(pts < ptmx);
    }

    #[test]
    fn config_devices_come_after_the_default_ones() {
        let f = Fake::new();
        let fuse = LinuxDeviceBuilder::default()
            .path("/dev/fuse")
            .typ(LinuxDeviceType::C)
            .major(10)
            .minor(229)
            .build()
            .unwrap();
        go(&f, &defaults(), &[fuse], None).unwrap();
        let calls = f.calls();
        let tty = index(
            &calls,
            |c| matches!(c, Call::Mknod { path, .. } if path == Path::new("/dev/tty")),
        );
        let fuse = index(
            &calls,
            |c| matches!(c, Call::Mknod { path, .. } if path == Path::new("/dev/fuse")),
        );
        assert!(tty < fuse);
    }

    #[test]
    fn a_dev_bound_from_the_host_is_not_populated() {
        let f = Fake::new().with_host("/dev", Node::Dir);
        let ms = vec![entry("/dev", "bind", "/dev", &["rbind"])];
        go(&f, &ms, &[], None).unwrap();
        assert!(!f
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Mknod { .. } | Call::Symlink { .. })));
    }

    #[test]
    fn a_read_only_dev_is_made_so_after_its_devices() {
        let f = Fake::new();
        let mut ms = defaults();
        ms[1] = entry("/dev", "tmpfs", "tmpfs", &["nosuid", "ro", "mode=755"]);
        go(&f, &ms, &[], None).unwrap();
        let calls = f.calls();
        let last_dev = calls
            .iter()
            .rposition(|c| matches!(c, Call::Mknod { .. } | Call::Symlink { .. }))
            .unwrap();
        let ro = index(
            &calls,
            |c| matches!(c, Call::SetAttr { path, recursive: false, .. } if path == Path::new("/dev")),
        );
        assert!(last_dev < ro);
        // And the tmpfs itself was mounted writable.
        assert!(calls.iter().any(
            |c| matches!(c, Call::Mount { target, flags, fstype: Some(_), .. }
            if target == Path::new("/dev") && !flags.contains(nix::mount::MsFlags::MS_RDONLY))
        ));
    }

    #[test]
    fn a_writable_dev_is_left_writable() {
        let f = Fake::new();
        go(&f, &defaults(), &[], None).unwrap();
        assert!(!f
            .calls()
            .iter()
            .any(|c| matches!(c, Call::SetAttr { path, .. } if path == Path::new("/dev"))));
    }

    #[test]
    fn a_missing_working_directory_is_made_last() {
        let f = Fake::new();
        go(&f, &defaults(), &[], Some("/work/app")).unwrap();
        let calls = f.calls();
        assert_eq!(
            &calls[calls.len() - 2..],
            &[
                Call::Mkdir(PathBuf::from("/work"), 0o755),
                Call::Mkdir(PathBuf::from("/work/app"), 0o755)
            ]
        );
    }

    #[test]
    fn an_existing_working_directory_is_left_alone() {
        let f = Fake::new().with("/work", Node::Dir);
        go(&f, &[], &[], Some("/work")).unwrap();
        assert!(!f
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Mkdir(p, _) if p == Path::new("/work"))));
    }

    #[test]
    fn options_missing_for_a_mount_are_an_error_not_a_guess() {
        let f = Fake::new();
        let layout = Layout::default();
        let ms = defaults();
        let err = populate(
            &fake::ctx(&f, &layout),
            f.root().as_fd(),
            &Populate {
                mounts: &ms,
                options: &[],
                idmapped: &[],
                devices: &[],
                cwd: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "mounts[0]: options were not parsed");
        assert!(f.calls().is_empty());
    }

    #[test]
    fn a_failing_mount_stops_the_setup_there() {
        let f = Fake::new().fail_when(|c| mounted_on(c, "/dev/shm"), libc::ENOSPC);
        let err = go(&f, &defaults(), &[], None).unwrap_err().to_string();
        assert!(err.starts_with("mount shm on /dev/shm: "), "{err}");
        assert!(!f.calls().iter().any(|c| mounted_on(c, "/dev/mqueue")));
        assert!(!f.calls().iter().any(|c| matches!(c, Call::Mknod { .. })));
    }

    #[test]
    fn restrict_makes_paths_read_only_before_masking_them() {
        let f = Fake::new()
            .with("/dev/null", Node::Char(1, 3))
            .with("/proc/sys", Node::Dir)
            .with("/proc/kcore", Node::File);
        restrict(
            &f,
            &Restrict {
                readonly_paths: &["/proc/sys".to_string()],
                masked_paths: &["/proc/kcore".to_string()],
                readonly_root: true,
                propagation: Some("rslave"),
            },
        )
        .unwrap();
        let calls = f.calls();
        let ro = index(
            &calls,
            |c| matches!(c, Call::Mount { target, .. } if target == Path::new("/proc/sys")),
        );
        let mask = index(
            &calls,
            |c| matches!(c, Call::Mount { target, .. } if target == Path::new("/proc/kcore")),
        );
        let root = index(
            &calls,
            |c| matches!(c, Call::SetAttr { path, .. } if path == Path::new("/")),
        );
        let prop = index(
            &calls,
            |c| matches!(c, Call::Mount { target, src: None, .. } if target == Path::new("/")),
        );
        assert!(ro < mask && mask < root && root < prop);
    }

    #[test]
    fn restrict_with_nothing_to_do_makes_no_call() {
        let f = Fake::new();
        restrict(
            &f,
            &Restrict {
                readonly_paths: &[],
                masked_paths: &[],
                readonly_root: false,
                propagation: Some(""),
            },
        )
        .unwrap();
        assert!(f.calls().is_empty());
    }
}
