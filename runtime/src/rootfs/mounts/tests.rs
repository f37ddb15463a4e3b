//! `mount_one` and the bind attributes, on the recording fake.
use super::super::fake::{self, Call, Fake, Node};
use super::*;
use crate::cgroups::Layout;
use oci_spec::runtime::MountBuilder;
use std::path::PathBuf;

fn opts(v: &[&str]) -> MountOptions {
    parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn entry(dest: &str, typ: Option<&str>, src: Option<&str>, o: &[&str]) -> Mount {
    let mut b = MountBuilder::default()
        .destination(dest)
        .options(o.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(s) = src {
        b = b.source(s);
    }
    b.build().unwrap()
}

/// Mounts one entry on a fake root and returns the fake.
fn run(f: Fake, m: &Mount) -> Result<Fake, Box<(Fake, String)>> {
    let layout = Layout::default();
    let o = opts(
        &m.options()
            .iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let r = mount_one(&fake::ctx(&f, &layout), f.root().as_fd(), m, &o, None);
    match r {
        Ok(()) => Ok(f),
        Err(e) => Err(Box::new((f, e.to_string()))),
    }
}

fn bind(src: &str, target: &str, flags: MsFlags) -> Call {
    fake::mount(Some(src), target, None, flags, None)
}

#[test]
fn only_a_read_only_dev_of_its_own_waits() {
    assert!(dev_read_only_later(
        Path::new("/dev"),
        &opts(&["ro", "nosuid"])
    ));
    assert!(!dev_read_only_later(Path::new("/dev"), &opts(&["nosuid"])));
    assert!(!dev_read_only_later(
        Path::new("/dev"),
        &opts(&["rbind", "ro"])
    ));
    assert!(!dev_read_only_later(Path::new("/dev/shm"), &opts(&["ro"])));
}

#[test]
fn a_bind_of_a_directory_makes_the_directory_then_binds() {
    let f = Fake::new().with_host("/srv/data", Node::Dir);
    let f = run(f, &entry("/data", None, Some("/srv/data"), &["bind"])).unwrap();
    assert_eq!(
        f.calls(),
        vec![
            Call::Mkdir(PathBuf::from("/data"), 0o755),
            bind("/srv/data", "/data", MsFlags::MS_BIND),
        ]
    );
}

#[test]
fn rbind_binds_recursively() {
    let f = Fake::new().with_host("/srv/data", Node::Dir);
    let f = run(f, &entry("/data", None, Some("/srv/data"), &["rbind"])).unwrap();
    assert_eq!(
        f.mounts(),
        vec![bind(
            "/srv/data",
            "/data",
            MsFlags::MS_BIND | MsFlags::MS_REC
        )]
    );
}

#[test]
fn a_bind_of_a_file_makes_an_empty_file_to_mount_on() {
    let f = Fake::new().with_host("/etc/resolv.conf", Node::File);
    let f = run(
        f,
        &entry(
            "/etc/resolv.conf",
            None,
            Some("/etc/resolv.conf"),
            &["rbind"],
        ),
    )
    .unwrap();
    assert_eq!(
        &f.calls()[..2],
        &[
            Call::Mkdir(PathBuf::from("/etc"), 0o755),
            Call::Create(PathBuf::from("/etc/resolv.conf"))
        ]
    );
    assert_eq!(f.node("/etc/resolv.conf"), Some(Node::File));
}

#[test]
fn a_bind_onto_a_symlink_lands_where_it_points_inside_the_root() {
    // The image's /etc/resolv.conf -> ../run/resolv.conf (missing).
    let f = Fake::new()
        .with("/run", Node::Dir)
        .with(
            "/etc/resolv.conf",
            Node::Link(PathBuf::from("../run/resolv.conf")),
        )
        .with_host("/var/lib/c/resolv.conf", Node::File);
    let f = run(
        f,
        &entry(
            "/etc/resolv.conf",
            None,
            Some("/var/lib/c/resolv.conf"),
            &["rbind"],
        ),
    )
    .unwrap();
    assert_eq!(
        f.mounts(),
        vec![bind(
            "/var/lib/c/resolv.conf",
            "/run/resolv.conf",
            MsFlags::MS_BIND | MsFlags::MS_REC
        )]
    );
}

#[test]
fn a_symlink_aiming_out_of_the_root_stays_in_it() {
    let f = Fake::new()
        .with("/mnt", Node::Link(PathBuf::from("../../../../../etc")))
        .with_host("/srv/x", Node::Dir);
    let f = run(f, &entry("/mnt/x", None, Some("/srv/x"), &["bind"])).unwrap();
    assert_eq!(f.mounts(), vec![bind("/srv/x", "/etc/x", MsFlags::MS_BIND)]);
}

#[test]
fn a_relative_bind_source_is_the_bundles() {
    let f = Fake::new().with_host("/run/c/data", Node::Dir);
    let f = run(f, &entry("/data", None, Some("data"), &["bind"])).unwrap();
    assert_eq!(
        f.mounts(),
        vec![bind("/run/c/data", "/data", MsFlags::MS_BIND)]
    );
}

#[test]
fn read_only_bind_options_are_set_on_the_new_mount_after_it() {
    let f = Fake::new().with_host("/srv/data", Node::Dir);
    let f = run(
        f,
        &entry(
            "/data",
            None,
            Some("/srv/data"),
            &["rbind", "ro", "nosuid", "nodev", "noexec"],
        ),
    )
    .unwrap();
    use crate::syscall::*;
    assert_eq!(
        f.calls().last().unwrap(),
        &Call::SetAttr {
            path: PathBuf::from("/data"),
            recursive: false,
            set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            clear: 0
        }
    );
}

#[test]
fn rw_clears_read_only_on_a_bind() {
    let f = Fake::new().with_host("/srv/data", Node::Dir);
    let f = run(f, &entry("/data", None, Some("/srv/data"), &["bind", "rw"])).unwrap();
    assert_eq!(
        f.calls().last().unwrap(),
        &Call::SetAttr {
            path: PathBuf::from("/data"),
            recursive: false,
            set: 0,
            clear: crate::syscall::MOUNT_ATTR_RDONLY
        }
    );
}

#[test]
fn an_atime_option_replaces_the_atime_bits() {
    use crate::syscall::*;
    assert_eq!(
        bind_attrs(&["noatime"]),
        Some((MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME))
    );
    assert_eq!(
        bind_attrs(&["relatime"]),
        Some((MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME))
    );
}

#[test]
fn a_plain_bind_sets_no_attributes() {
    let f = Fake::new().with_host("/srv/data", Node::Dir);
    let f = run(f, &entry("/data", None, Some("/srv/data"), &["rbind"])).unwrap();
    assert!(!f.calls().iter().any(|c| matches!(c, Call::SetAttr { .. })));
}

#[test]
fn recursive_attributes_apply_to_the_whole_tree() {
    use crate::syscall::*;
    let f = Fake::new().with_host("/srv/data", Node::Dir);
    let f = run(
        f,
        &entry(
            "/data",
            None,
            Some("/srv/data"),
            &["rbind", "rro", "rnosuid"],
        ),
    )
    .unwrap();
    assert_eq!(
        f.calls().last().unwrap(),
        &Call::SetAttr {
            path: PathBuf::from("/data"),
            recursive: true,
            set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
            clear: 0
        }
    );
}

#[test]
fn propagation_is_set_on_the_new_mount_in_order() {
    let f = Fake::new().with_host("/srv/data", Node::Dir);
    let f = run(
        f,
        &entry(
            "/data",
            None,
            Some("/srv/data"),
            &["rbind", "rshared", "rslave"],
        ),
    )
    .unwrap();
    assert_eq!(
        &f.mounts()[1..],
        &[
            fake::mount(
                None,
                "/data",
                None,
                MsFlags::MS_SHARED | MsFlags::MS_REC,
                None
            ),
            fake::mount(
                None,
                "/data",
                None,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                None
            ),
        ]
    );
}

#[test]
fn a_bind_needs_a_source() {
    let (f, err) = *run(Fake::new(), &entry("/data", None, None, &["bind"])).unwrap_err();
    assert_eq!(err, "mount /data: bind needs a source");
    assert!(f.calls().is_empty());
}

#[test]
fn a_missing_bind_source_is_named() {
    let (f, err) = *run(
        Fake::new(),
        &entry("/data", None, Some("/srv/gone"), &["bind"]),
    )
    .unwrap_err();
    assert!(
        err.starts_with("mount /srv/gone on /data: stat source /srv/gone:"),
        "{err}"
    );
    assert!(f.calls().is_empty());
}

#[test]
fn a_relative_destination_is_refused() {
    let (f, err) = *run(
        Fake::new(),
        &entry("data", Some("tmpfs"), Some("tmpfs"), &[]),
    )
    .unwrap_err();
    assert_eq!(err, "mount destination data: must be an absolute path");
    assert!(f.calls().is_empty());
}

#[test]
fn a_tmpfs_gets_its_flags_and_data() {
    let f = run(
        Fake::new(),
        &entry(
            "/dev",
            Some("tmpfs"),
            Some("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
    )
    .unwrap();
    assert_eq!(
        f.calls(),
        vec![
            Call::Mkdir(PathBuf::from("/dev"), 0o755),
            fake::mount(
                Some("tmpfs"),
                "/dev",
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
                Some("mode=755,size=65536k")
            ),
        ]
    );
}

#[test]
fn a_mount_without_source_uses_its_type_as_source() {
    let f = run(
        Fake::new(),
        &entry("/dev/mqueue", Some("mqueue"), None, &[]),
    )
    .unwrap();
    assert_eq!(
        f.mounts(),
        vec![fake::mount(
            Some("mqueue"),
            "/dev/mqueue",
            Some("mqueue"),
            MsFlags::empty(),
            None
        )]
    );
}

#[test]
fn proc_is_mounted_on_a_real_directory() {
    let f = run(
        Fake::new(),
        &entry(
            "/proc",
            Some("proc"),
            Some("proc"),
            &["nosuid", "noexec", "nodev"],
        ),
    )
    .unwrap();
    assert_eq!(
        f.mounts(),
        vec![fake::mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
            None
        )]
    );
}

#[test]
fn proc_on_a_symlink_is_refused() {
    // An image whose /proc points elsewhere (CVE-2019-19921's shape).
    let f = Fake::new()
        .with("/elsewhere", Node::Dir)
        .with("/proc", Node::Link(PathBuf::from("/elsewhere")));
    let (f, err) = *run(f, &entry("/proc", Some("proc"), Some("proc"), &[])).unwrap_err();
    assert_eq!(
        err,
        "mount proc on /proc: destination is a symlink, refused for proc"
    );
    assert!(f.mounts().is_empty());
}

#[test]
fn sysfs_on_a_symlink_is_refused_too() {
    let f = Fake::new()
        .with("/x", Node::Dir)
        .with("/sys", Node::Link(PathBuf::from("x")));
    let (_, err) = *run(f, &entry("/sys", Some("sysfs"), Some("sysfs"), &[])).unwrap_err();
    assert!(err.ends_with("refused for sysfs"), "{err}");
}

#[test]
fn a_tmpfs_may_be_mounted_through_a_symlink_in_the_root() {
    let f = Fake::new()
        .with("/var/run", Node::Dir)
        .with("/run", Node::Link(PathBuf::from("/var/run")));
    let f = run(f, &entry("/run", Some("tmpfs"), Some("tmpfs"), &[])).unwrap();
    assert_eq!(
        f.mounts(),
        vec![fake::mount(
            Some("tmpfs"),
            "/var/run",
            Some("tmpfs"),
            MsFlags::empty(),
            None
        )]
    );
}

#[test]
fn sysfs_refused_in_a_user_namespace_is_the_hosts_bound() {
    let f = Fake::new().fail_when(
        |c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "sysfs"),
        libc::EPERM,
    );
    let layout = Layout::default();
    let ctx = Context {
        in_userns: true,
        ..fake::ctx(&f, &layout)
    };
    let m = entry("/sys", Some("sysfs"), Some("sysfs"), &["nosuid"]);
    mount_one(&ctx, f.root().as_fd(), &m, &opts(&["nosuid"]), None).unwrap();
    assert_eq!(
        f.mounts(),
        vec![bind("/sys", "/sys", MsFlags::MS_BIND | MsFlags::MS_REC)]
    );
}

#[test]
fn sysfs_refused_outside_a_user_namespace_fails_with_the_mount_named() {
    let f = Fake::new().fail_when(
        |c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "sysfs"),
        libc::EPERM,
    );
    let (f, err) = *run(f, &entry("/sys", Some("sysfs"), Some("sysfs"), &[])).unwrap_err();
    assert!(err.starts_with("mount sysfs on /sys: "), "{err}");
    assert!(f.mounts().is_empty());
}

#[test]
fn a_read_only_dev_is_mounted_writable_first() {
    let f = run(
        Fake::new(),
        &entry("/dev", Some("tmpfs"), Some("tmpfs"), &["ro", "nosuid"]),
    )
    .unwrap();
    assert_eq!(
        f.mounts(),
        vec![fake::mount(
            Some("tmpfs"),
            "/dev",
            Some("tmpfs"),
            MsFlags::MS_NOSUID,
            None
        )]
    );
}

#[test]
fn making_dev_read_only_touches_only_its_top_mount() {
    let f = Fake::new().with("/dev", Node::Dir);
    make_dev_read_only(&f, f.root().as_fd()).unwrap();
    assert_eq!(
        f.calls(),
        vec![Call::SetAttr {
            path: PathBuf::from("/dev"),
            recursive: false,
            set: crate::syscall::MOUNT_ATTR_RDONLY,
            clear: 0
        }]
    );
}

#[test]
fn tmpcopyup_copies_what_the_directory_held_into_the_new_tmpfs() {
    let f = Fake::new().with("/var/cache/x", Node::File);
    let f = run(
        f,
        &entry("/var/cache", Some("tmpfs"), Some("tmpfs"), &["tmpcopyup"]),
    )
    .unwrap();
    let calls = f.calls();
    let mounted = calls
        .iter()
        .position(|c| matches!(c, Call::Mount { .. }))
        .unwrap();
    assert_eq!(
        calls[mounted + 1],
        Call::CopyTree {
            from: PathBuf::from("/var/cache"),
            to: PathBuf::from("/var/cache")
        }
    );
}

#[test]
fn a_prepared_tree_is_attached_not_mounted_by_path() {
    let f = Fake::new().with("/.tree", Node::Dir);
    let tree = f.fd_for(Path::new("/.tree"));
    let layout = Layout::default();
    let m = entry("/data", None, Some("/unreachable/data"), &["rbind", "ro"]);
    mount_one(
        &fake::ctx(&f, &layout),
        f.root().as_fd(),
        &m,
        &opts(&["rbind", "ro"]),
        Some(&tree),
    )
    .unwrap();
    let calls = f.calls();
    assert_eq!(calls[0], Call::Mkdir(PathBuf::from("/data"), 0o755));
    assert_eq!(calls[1], Call::MoveMount(PathBuf::from("/data")));
    assert!(f.mounts().is_empty());
    assert!(matches!(
        calls[2],
        Call::SetAttr {
            recursive: false,
            ..
        }
    ));
}

#[test]
fn a_prepared_file_tree_gets_a_file_to_attach_to() {
    let f = Fake::new().with("/.tree", Node::File);
    let tree = f.fd_for(Path::new("/.tree"));
    let layout = Layout::default();
    let m = entry("/etc/app.conf", None, Some("/x"), &["bind"]);
    mount_one(
        &fake::ctx(&f, &layout),
        f.root().as_fd(),
        &m,
        &opts(&["bind"]),
        Some(&tree),
    )
    .unwrap();
    assert!(f
        .calls()
        .contains(&Call::Create(PathBuf::from("/etc/app.conf"))));
}

#[test]
fn only_a_bind_onto_dev_itself_means_dev_comes_from_elsewhere() {
    assert!(binds_dev(&[entry("/dev", None, Some("/dev"), &["rbind"])]));
    assert!(binds_dev(&[entry("/dev", None, Some("/dev"), &["bind"])]));
    assert!(!binds_dev(&[entry(
        "/dev",
        Some("tmpfs"),
        Some("tmpfs"),
        &["nosuid"]
    )]));
    assert!(!binds_dev(&[entry(
        "/dev/shm",
        None,
        Some("/dev/shm"),
        &["rbind"]
    )]));
}

fn bind_attrs(o: &[&str]) -> Option<(u64, u64)> {
    let f = Fake::new().with_host("/srv/d", Node::Dir);
    let mut all = vec!["bind"];
    all.extend_from_slice(o);
    let f = run(f, &entry("/d", None, Some("/srv/d"), &all)).unwrap();
    f.calls().into_iter().find_map(|c| match c {
        Call::SetAttr {
            recursive: false,
            set,
            clear,
            ..
        } => Some((set, clear)),
        _ => None,
    })
}

#[test]
fn suid_dev_and_exec_clear_their_attributes_on_a_bind() {
    use crate::syscall::*;
    assert_eq!(
        bind_attrs(&["suid", "dev", "exec"]),
        Some((0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC))
    );
}

#[test]
fn nodiratime_and_nosymfollow_are_bind_attributes_too() {
    use crate::syscall::*;
    assert_eq!(
        bind_attrs(&["nodiratime"]),
        Some((MOUNT_ATTR_NODIRATIME, 0))
    );
    assert_eq!(
        bind_attrs(&["nosymfollow"]),
        Some((MOUNT_ATTR_NOSYMFOLLOW, 0))
    );
}

#[test]
fn strictatime_on_a_bind_replaces_the_atime_bits() {
    use crate::syscall::*;
    assert_eq!(
        bind_attrs(&["strictatime"]),
        Some((MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME))
    );
}

#[test]
fn the_last_of_ro_and_rw_wins() {
    use crate::syscall::*;
    assert_eq!(bind_attrs(&["ro", "rw"]), Some((0, MOUNT_ATTR_RDONLY)));
    assert_eq!(bind_attrs(&["rw", "ro"]), Some((MOUNT_ATTR_RDONLY, 0)));
}

#[test]
fn a_failing_attribute_change_names_the_mount() {
    let f = Fake::new()
        .with_host("/srv/d", Node::Dir)
        .fail_when(|c| matches!(c, Call::SetAttr { .. }), libc::EPERM);
    let (_, err) = *run(f, &entry("/d", None, Some("/srv/d"), &["bind", "ro"])).unwrap_err();
    assert!(
        err.starts_with("mount /srv/d on /d: set options: "),
        "{err}"
    );
}

#[test]
fn a_failing_propagation_change_names_the_mount() {
    let f = Fake::new()
        .with_host("/srv/d", Node::Dir)
        .fail_when(|c| matches!(c, Call::Mount { src: None, .. }), libc::EINVAL);
    let (_, err) = *run(f, &entry("/d", None, Some("/srv/d"), &["bind", "rprivate"])).unwrap_err();
    assert!(
        err.starts_with("mount /srv/d on /d: set propagation: "),
        "{err}"
    );
}

#[test]
fn a_devpts_mount_passes_its_data_through() {
    let f = run(
        Fake::new(),
        &entry(
            "/dev/pts",
            Some("devpts"),
            Some("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
    )
    .unwrap();
    assert_eq!(
        f.mounts(),
        vec![fake::mount(
            Some("devpts"),
            "/dev/pts",
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5")
        )]
    );
}

#[test]
fn a_mount_onto_an_existing_directory_makes_no_directory() {
    let f = Fake::new().with("/tmp", Node::Dir);
    let f = run(f, &entry("/tmp", Some("tmpfs"), Some("tmpfs"), &[])).unwrap();
    assert!(!f.calls().iter().any(|c| matches!(c, Call::Mkdir(..))));
}
