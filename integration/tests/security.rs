//! Holes a hostile host user or image could use, each closed and kept
//! closed: the whole stack on real containers, seen as the attacker sees it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_integration::stack::{wait_until, Stack};
use berth_integration::{ok, stderr, stdout, Ctx};

/// Runs `args` as the unprivileged user nobody (no groups, no capabilities).
/// setpriv keeps root's capabilities until its own exec, so a shell comes
/// between: the target is reached with none.
fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
            "/bin/sh",
            "-c",
            "exec \"$@\"",
            "sh",
        ])
        .args(args)
        .output()
        .expect("setpriv (util-linux)")
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The setuid copies the container planted, as root sees them.
fn planted(s: &Stack) -> Vec<PathBuf> {
    let snaps = s.dir.join("berthd/root/overlay/snapshots");
    let mut v: Vec<PathBuf> = fs::read_dir(&snaps)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("fs/tmp/peek"))
        .filter(|p| p.exists())
        .collect();
    v.push(
        s.dir
            .join("berthd/state/bundles/default/peek/rootfs/tmp/peek"),
    );
    v
}

/// Nobody can reach a setuid-root file a container wrote (or one an image
/// brought), nor read the config that holds the container's environment.
fn assert_closed(s: &Stack) {
    let files = planted(s);
    assert_eq!(files.len(), 2, "the upper layer and the bundle's rootfs");
    for f in &files {
        // Root sees a setuid-root executable there: the test would be
        // meaningless without it.
        assert_eq!(mode(f) & 0o4000, 0o4000, "{}", f.display());
        let out = as_nobody(&[f.to_str().unwrap(), "id", "-u"]);
        assert!(
            !out.status.success() && stderr(&out).contains("Permission denied"),
            "nobody ran {}: {}{}",
            f.display(),
            stdout(&out),
            stderr(&out)
        );
    }
    let config = s.dir.join("berthd/state/bundles/default/peek/config.json");
    assert!(fs::read_to_string(&config)
        .unwrap()
        .contains("SECRET=hunter2"));
    assert_eq!(mode(&config), 0o600);
    let out = as_nobody(&["cat", config.to_str().unwrap()]);
    assert!(!stdout(&out).contains("hunter2"), "{}", stdout(&out));
    assert_eq!(mode(&s.dir.join("berthd/root")), 0o700);
    assert_eq!(mode(&s.dir.join("berthd/root/overlay/snapshots")), 0o700);
    assert_eq!(mode(&s.dir.join("berthd/state/bundles")), 0o711);
    assert_eq!(
        mode(&s.dir.join("berthd/state/bundles/default/peek")),
        0o700
    );
}

#[test]
fn container_filesystems_and_configs_are_closed_to_host_users() {
    let mut s = Stack::new("perm");
    s.ctl_ok(&[
        "run",
        "-d",
        "--name",
        "peek",
        "--net",
        "none",
        "-e",
        "SECRET=hunter2",
        "berth/busybox",
        "sh",
        "-c",
        "cp /bin/busybox /tmp/peek && chmod 4755 /tmp/peek && touch /tmp/ready && exec sleep 1000",
    ]);
    wait_until("the setuid copy", 10, || {
        s.ctl(&["exec", "peek", "test", "-f", "/tmp/ready"])
            .status
            .success()
    });
    assert_closed(&s);

    // A store an older berthd left open (0755) is closed when berthd starts.
    drop(s.d.take());
    for d in [
        "berthd/root",
        "berthd/root/overlay/snapshots",
        "berthd/state/bundles",
        "berthd/state/bundles/default/peek",
    ] {
        fs::set_permissions(s.dir.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    s.start();
    assert_closed(&s);

    // And berthd's socket: a user it refuses is told so, not that berthd is down.
    let sock = s.d().address.clone();
    let out = as_nobody(&[
        berth_integration::manager::sibling("berthctl")
            .to_str()
            .unwrap(),
        "--address",
        sock.to_str().unwrap(),
        "ps",
    ]);
    assert!(
        !out.status.success()
            && stderr(&out).contains("permission denied")
            && !stderr(&out).contains("is berthd running"),
        "{}",
        stderr(&out)
    );

    s.ctl_ok(&["rm", "-f", "peek"]);
    s.assert_nothing_left();
}

/// CVE-2025-31133: a container whose /dev/null is a symlink (here its /dev
/// is a directory of the bundle's, as a bind of /dev gives) must not get
/// the symlink's target bound over its masked paths: a masked file would
/// become the writable /proc/sys/kernel/core_pattern. berth opens
/// /dev/null without following it and refuses anything but the null device.
#[test]
fn a_dev_null_symlink_is_not_bound_over_masked_paths() {
    let mut c = Ctx::new("cve-31133", &["sh", "-c", "echo ran"]);
    let dev = c.dir.join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", dev.join("null")).unwrap();
    let mounts = c.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| !m["destination"].as_str().unwrap_or("").starts_with("/dev"));
    mounts.push(serde_json::json!({"destination": "/dev", "type": "bind",
        "source": dev, "options": ["rbind"]}));
    // A file every procfs has (not every kernel has /proc/kcore).
    c.config["linux"]["maskedPaths"] = serde_json::json!(["/proc/uptime"]);
    let out = c.run();
    assert!(!out.status.success(), "it ran: {}", stdout(&out));
    assert!(
        stderr(&out).contains("/dev/null is not the null device"),
        "{}",
        stderr(&out)
    );
    // With the real node there, it runs.
    std::fs::remove_file(dev.join("null")).unwrap();
    let made = std::process::Command::new("mknod")
        .arg(dev.join("null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(made.success());
    assert_eq!(ok(&c.run()).trim(), "ran");
}

/// CVE-2026-41579's shape: an image whose `/dev` is a symlink to a host
/// directory. runc joined strings under it, so the links of /dev and the
/// removal of `ptmx` reached the host directory. berth resolves every path
/// in the rootfs by fd, so the link is followed inside the rootfs: the host
/// directory keeps its `ptmx` and gets nothing, with or without a /dev
/// mount in the config.
#[test]
fn an_image_dev_symlink_never_reaches_the_host() {
    for keep_dev_mount in [false, true] {
        let mut c = Ctx::new("cve-41579", &["sh", "-c", "ls /dev >/dev/null; echo ran"]);
        let rootfs = c.own_rootfs();
        let host = c.dir.join("host-dir");
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("ptmx"), "canary").unwrap();
        let _ = fs::remove_dir_all(rootfs.join("dev"));
        std::os::unix::fs::symlink(&host, rootfs.join("dev")).unwrap();
        if !keep_dev_mount {
            c.config["mounts"]
                .as_array_mut()
                .unwrap()
                .retain(|m| !m["destination"].as_str().unwrap_or("").starts_with("/dev"));
        }
        let out = c.run();
        assert_eq!(
            fs::read_to_string(host.join("ptmx")).ok().as_deref(),
            Some("canary"),
            "the host's ptmx was touched (dev mount: {keep_dev_mount}): {}",
            stderr(&out)
        );
        let mut left: Vec<String> = fs::read_dir(&host)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["ptmx"], "dev mount: {keep_dev_mount}");
        // What the link names inside the rootfs got the devices instead.
        assert_eq!(ok(&out).trim(), "ran", "dev mount: {keep_dev_mount}");
        let inside = rootfs.join(host.strip_prefix("/").unwrap());
        if !keep_dev_mount {
            assert!(
                fs::symlink_metadata(inside.join("fd")).is_ok(),
                "the /dev links were not made where /dev points inside the rootfs"
            );
        }
    }
}

/// CVE-2025-52881's class: a procfs write redirected by a mount. A config
/// binds another file over /proc/sys/kernel/domainname and asks for that
/// sysctl: the write must not follow the mount. First a host file (refused
/// as not procfs), then another procfs file, the advisory's redirect (here
/// the container's own hostname, harmless: runc's case was sysrq-trigger),
/// which only refusing to cross a mount stops. Both fail naming the sysctl,
/// and nothing is written.
#[test]
fn a_sysctl_redirected_by_a_mount_is_not_written() {
    let mut c = Ctx::new("cve-52881", &["cat", "/proc/sys/kernel/hostname"]);
    let target = c.dir.join("host-file");
    fs::write(&target, "untouched").unwrap();
    c.config["hostname"] = serde_json::json!("kept");
    c.config["linux"]["sysctl"] = serde_json::json!({"kernel.domainname": "redirected"});
    let base = c.config["mounts"].clone();
    for source in [target.to_str().unwrap(), "/proc/sys/kernel/hostname"] {
        c.config["mounts"] = base.clone();
        c.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
            "destination": "/proc/sys/kernel/domainname", "type": "bind",
            "source": source, "options": ["bind"]}));
        let out = c.run();
        assert!(!out.status.success(), "{source}: it ran: {}", stdout(&out));
        assert!(
            stderr(&out).contains("sysctl kernel.domainname"),
            "{source}: {}",
            stderr(&out)
        );
    }
    assert_eq!(fs::read_to_string(&target).unwrap(), "untouched");
    // Without the redirect the sysctl is written and the hostname kept.
    c.config["mounts"] = base;
    c.config["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "cat /proc/sys/kernel/hostname /proc/sys/kernel/domainname"
    ]);
    assert_eq!(ok(&c.run()), "kept\nredirected\n");
}
