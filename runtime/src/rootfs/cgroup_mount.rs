//! A `cgroup` mount: the container's own cgroups, v1 per controller, v2
//! unified, hybrid as the host is.

use crate::syscall;
use nix::mount::MsFlags;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::*;

/// The `cgroup` mount type: cgroup2 on a v2 host; on v1 and hybrid hosts a
/// tmpfs holding one mount per hierarchy, as runc lays it out. With a new
/// cgroup namespace each hierarchy is mounted fresh (showing the container's
/// cgroup as its root); without, the container's directories are bound in.
pub(super) fn mount_cgroup(
    ctx: &Context,
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), Error> {
    let sys = ctx.sys;
    let flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    let dir = mkdir_all_in_root(sys, root, dest, 0o755)?;
    let desc = format!("mount cgroup on {}", dest.display());
    if ctx.layout.is_pure_v2() {
        if ctx.new_cgroupns {
            sys.mount(
                Some("cgroup2".as_ref()),
                &fd_path(&dir),
                Some("cgroup2"),
                flags,
                None,
            )
            .map_err(sys_err(desc))?;
        } else {
            let src = ctx
                .cgroup_dirs
                .first()
                .cloned()
                .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
            sys.mount(
                Some(src.as_os_str()),
                &fd_path(&dir),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(sys_err(desc.clone()))?;
            let m = open_in_root(sys, root, dest, libc::O_PATH, 0)
                .map_err(sys_err(format!("{desc}: reopen")))?;
            apply_bind_flags(sys, &m, opts).map_err(sys_err(format!("{desc}: set options")))?;
        }
        return Ok(());
    }
    let tmpfs_flags = flags & !MsFlags::MS_RDONLY;
    sys.mount(
        Some("tmpfs".as_ref()),
        &fd_path(&dir),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .map_err(sys_err(desc.clone()))?;
    let base = open_in_root(sys, root, dest, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(sys_err(format!("{desc}: reopen")))?;
    for h in &ctx.layout.hierarchies {
        let Some(name) = h.mount.file_name() else {
            continue;
        };
        if h.mount.parent() != Some(Path::new("/sys/fs/cgroup")) {
            continue;
        }
        sys.mkdirat(base.as_fd(), name, 0o755)
            .map_err(sys_err(format!("{desc}: mkdir")))?;
        let sub = sys
            .openat2(
                base.as_fd(),
                Path::new(name),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0,
            )
            .map_err(sys_err(format!("{desc}: open")))?;
        let subdesc = format!("{desc}/{}", name.to_string_lossy());
        if ctx.new_cgroupns {
            let (fstype, data) = if h.unified {
                ("cgroup2", String::new())
            } else {
                ("cgroup", h.controllers.join(","))
            };
            sys.mount(
                Some("cgroup".as_ref()),
                &fd_path(&sub),
                Some(fstype),
                flags & !MsFlags::MS_RDONLY,
                Some(data.as_str()),
            )
            .map_err(sys_err(subdesc.clone()))?;
        } else {
            let src = ctx
                .cgroup_dirs
                .iter()
                .find(|d| d.starts_with(&h.mount))
                .cloned()
                .unwrap_or_else(|| h.mount.clone());
            sys.mount(
                Some(src.as_os_str()),
                &fd_path(&sub),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(sys_err(subdesc.clone()))?;
        }
        // Co-mounted controllers get links as on the host (cpu -> cpu,cpuacct).
        if !h.unified && h.controllers.len() > 1 {
            for c in &h.controllers {
                let c = c.strip_prefix("name=").unwrap_or(c);
                if c.as_bytes() != name.as_bytes() {
                    let _ = sys.symlinkat(name, base.as_fd(), c.as_ref());
                }
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        // The tmpfs and every hierarchy under it, in one call.
        let top = open_in_root(sys, root, dest, libc::O_PATH, 0)
            .map_err(sys_err(format!("{desc}: reopen")))?;
        sys.mount_setattr(top.as_fd(), true, syscall::MOUNT_ATTR_RDONLY, 0)
            .map_err(sys_err(format!("{desc}: make read-only")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fake::{self, Call, Fake};
    use super::*;
    use crate::cgroups::Layout;

    const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec shared:10 - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec shared:11 - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec shared:12 - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec shared:13 - cgroup cgroup rw,cpu,cpuacct
";
    const PURE_V2: &str =
        "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec shared:9 - cgroup2 cgroup2 rw\n";

    fn opts(v: &[&str]) -> MountOptions {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn run(f: &Fake, layout: &Layout, cgroupns: bool, dirs: &[PathBuf], o: &[&str]) {
        let ctx = Context {
            new_cgroupns: cgroupns,
            cgroup_dirs: dirs,
            ..fake::ctx(f, layout)
        };
        mount_cgroup(
            &ctx,
            f.root().as_fd(),
            Path::new("/sys/fs/cgroup"),
            &opts(o),
        )
        .unwrap();
    }

    fn targets(f: &Fake) -> Vec<(String, Option<String>, Option<String>)> {
        f.mounts()
            .into_iter()
            .filter_map(|c| match c {
                Call::Mount {
                    target,
                    fstype,
                    data,
                    ..
                } => Some((target.display().to_string(), fstype, data)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn on_pure_v2_with_a_cgroup_namespace_cgroup2_is_mounted_fresh() {
        let f = Fake::new();
        let layout = Layout::parse(PURE_V2, "0::/c\n");
        run(&f, &layout, true, &[], &["nosuid", "ro"]);
        assert_eq!(
            f.mounts(),
            vec![fake::mount(
                Some("cgroup2"),
                "/sys/fs/cgroup",
                Some("cgroup2"),
                MsFlags::MS_NOSUID | MsFlags::MS_RDONLY,
                None
            )]
        );
    }

    #[test]
    fn on_pure_v2_without_a_cgroup_namespace_the_containers_cgroup_is_bound() {
        let f = Fake::new();
        let layout = Layout::parse(PURE_V2, "0::/c\n");
        let dirs = [PathBuf::from("/sys/fs/cgroup/berth/c")];
        run(&f, &layout, false, &dirs, &["ro"]);
        assert_eq!(
            f.calls()[3..],
            [
                fake::mount(
                    Some("/sys/fs/cgroup/berth/c"),
                    "/sys/fs/cgroup",
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None
                ),
                Call::SetAttr {
                    path: PathBuf::from("/sys/fs/cgroup"),
                    recursive: false,
                    set: syscall::MOUNT_ATTR_RDONLY,
                    clear: 0
                }
            ]
        );
    }

    #[test]
    fn on_v1_a_writable_tmpfs_holds_one_mount_per_hierarchy() {
        let f = Fake::new();
        let layout = Layout::parse(HYBRID, "");
        run(&f, &layout, true, &[], &["nosuid"]);
        assert_eq!(
            targets(&f),
            vec![
                (
                    "/sys/fs/cgroup".into(),
                    Some("tmpfs".into()),
                    Some("mode=755".into())
                ),
                (
                    "/sys/fs/cgroup/unified".into(),
                    Some("cgroup2".into()),
                    Some(String::new())
                ),
                (
                    "/sys/fs/cgroup/systemd".into(),
                    Some("cgroup".into()),
                    Some("name=systemd".into())
                ),
                (
                    "/sys/fs/cgroup/memory".into(),
                    Some("cgroup".into()),
                    Some("memory".into())
                ),
                (
                    "/sys/fs/cgroup/cpu,cpuacct".into(),
                    Some("cgroup".into()),
                    Some("cpu,cpuacct".into())
                ),
            ]
        );
    }

    #[test]
    fn co_mounted_controllers_get_links_as_on_the_host() {
        let f = Fake::new();
        let layout = Layout::parse(HYBRID, "");
        run(&f, &layout, true, &[], &[]);
        for c in ["cpu", "cpuacct"] {
            assert!(f.calls().contains(&Call::Symlink {
                path: PathBuf::from(format!("/sys/fs/cgroup/{c}")),
                target: PathBuf::from("cpu,cpuacct")
            }));
        }
        // A named hierarchy gets no link of its name.
        assert!(!f
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Symlink { target, .. } if target == Path::new("systemd"))));
    }

    #[test]
    fn on_v1_without_a_cgroup_namespace_each_hierarchy_binds_the_containers_cgroup() {
        let f = Fake::new();
        let layout = Layout::parse(HYBRID, "");
        let dirs = [
            PathBuf::from("/sys/fs/cgroup/memory/berth/c"),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/berth/c"),
        ];
        run(&f, &layout, false, &dirs, &[]);
        let binds: Vec<(Option<String>, PathBuf)> = f
            .mounts()
            .into_iter()
            .filter_map(|c| match c {
                Call::Mount {
                    src, target, flags, ..
                } if flags.contains(MsFlags::MS_BIND) => Some((src, target)),
                _ => None,
            })
            .collect();
        assert!(binds.contains(&(
            Some("/sys/fs/cgroup/memory/berth/c".into()),
            PathBuf::from("/sys/fs/cgroup/memory")
        )));
        // A hierarchy the container has no directory in shows the host's.
        assert!(binds.contains(&(
            Some("/sys/fs/cgroup/systemd".into()),
            PathBuf::from("/sys/fs/cgroup/systemd")
        )));
    }

    #[test]
    fn a_read_only_v1_cgroup_mount_is_made_read_only_in_one_recursive_call() {
        let f = Fake::new();
        let layout = Layout::parse(HYBRID, "");
        run(&f, &layout, true, &[], &["ro", "nosuid"]);
        // Every mount was made writable; the whole tree read-only at the end.
        assert!(f.mounts().iter().all(
            |c| matches!(c, Call::Mount { flags, .. } if !flags.contains(MsFlags::MS_RDONLY))
        ));
        assert_eq!(
            f.calls().last().unwrap(),
            &Call::SetAttr {
                path: PathBuf::from("/sys/fs/cgroup"),
                recursive: true,
                set: syscall::MOUNT_ATTR_RDONLY,
                clear: 0
            }
        );
    }

    #[test]
    fn a_cgroup_entry_in_mounts_goes_here() {
        use oci_spec::runtime::MountBuilder;
        let f = Fake::new();
        let layout = Layout::parse(PURE_V2, "0::/c\n");
        let m = MountBuilder::default()
            .destination("/sys/fs/cgroup")
            .typ("cgroup")
            .source("cgroup")
            .build()
            .unwrap();
        let ctx = fake::ctx(&f, &layout);
        mount_one(&ctx, f.root().as_fd(), &m, &opts(&[]), None).unwrap();
        assert_eq!(
            f.mounts(),
            vec![fake::mount(
                Some("cgroup2"),
                "/sys/fs/cgroup",
                Some("cgroup2"),
                MsFlags::empty(),
                None
            )]
        );
    }
}
