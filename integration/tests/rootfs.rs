//! The container's filesystem and namespaces end to end: mounts and their
//! options, devices, masked and read-only paths, sysctls, the root change,
//! hostile symlinks, namespaces new and joined, user and time namespaces,
//! idmapped mounts.

use berth_integration::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;

#[test]
fn namespaces_are_new_and_hostname_set() {
    let mut c = Ctx::new("ns", &sh("echo $$; hostname; for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done"));
    c.config["hostname"] = json!("box1");
    c.config["domainname"] = json!("example.org");
    c.add_namespace(json!({"type": "cgroup"}));
    let out = ok(&c.run());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "init is pid 1 in its pid namespace");
    assert_eq!(lines[1], "box1");
    for (i, n) in ["pid", "net", "ipc", "uts", "mnt", "cgroup"]
        .iter()
        .enumerate()
    {
        let host = fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
        assert_ne!(
            lines[2 + i],
            host.to_str().unwrap(),
            "{n} namespace shared with host"
        );
    }
}

#[test]
fn join_namespace_by_path() {
    let mut c = Ctx::new("join", &["sleep", "1000"]);
    c.create(&c.id);
    let pid = c.state(&c.id)["pid"].as_i64().unwrap();
    let want = fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let second = c.another_id("b");
    let nss = c.config["linux"]["namespaces"].as_array_mut().unwrap();
    for ns in nss.iter_mut() {
        if ns["type"] == "network" {
            ns["path"] = json!(format!("/proc/{pid}/ns/net"));
        }
    }
    c.config["process"]["args"] = json!(["readlink", "/proc/self/ns/net"]);
    c.id = second;
    let out = ok(&c.run());
    assert_eq!(out.trim(), want.to_str().unwrap());
}

#[test]
fn devices_and_dev_links() {
    let mut c = Ctx::new("dev", &sh("ls -l /dev; readlink /dev/fd; readlink /dev/ptmx; echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | od -An -tx1"));
    c.config["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 9, "fileMode": 432, "uid": 0, "gid": 0}]);
    let out = ok(&c.run());
    for dev in ["null", "zero", "full", "random", "urandom", "tty", "mydev"] {
        assert!(
            out.contains(&format!(" {dev}\n")),
            "missing /dev/{dev}: {out}"
        );
    }
    assert!(
        out.contains("crw-rw-rw-    1 root     root        1,   3"),
        "{out}"
    );
    assert!(
        out.contains("crw-rw----    1 root     root        1,   9"),
        "{out}"
    );
    assert!(out.contains("/proc/self/fd\npts/ptmx\n"), "{out}");
    assert!(out.contains("null-ok"));
    assert!(out.contains("00 00 00 00"));
    for d in ["pts", "shm", "mqueue"] {
        assert!(out.contains(&format!(" {d}\n")), "{out}");
    }
}

#[test]
fn mounts_options_readonly_masked() {
    let mut c = Ctx::new(
        "mounts",
        &sh("grep -E ' /(data|ro|tmpfs2) ' /proc/self/mountinfo; touch /rootfile 2>&1; touch /ro/x 2>&1; echo 1 > /proc/sys/kernel/domainname 2>&1; \
             stat -c '%F %t:%T' /proc/timer_list; ls /sys/firmware | wc -l; cat /data/hostfile; stat -c '%a' /tmpfs2"),
    );
    let host = c.dir.join("hostdata");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("hostfile"), "from-host\n").unwrap();
    let mounts = c.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": host, "options": ["rbind", "nosuid", "nodev"]}));
    mounts.push(
        json!({"destination": "/ro", "type": "bind", "source": host, "options": ["bind", "ro"]}),
    );
    mounts.push(json!({"destination": "/tmpfs2", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777", "size=1m", "noexec"]}));
    let out = ok(&c.run());
    let line = |dest: &str| {
        out.lines()
            .find(|l| l.split(' ').nth(4) == Some(dest))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("/data").contains("nosuid") && line("/data").contains("nodev"),
        "{out}"
    );
    assert!(line("/ro").contains(" ro,"), "{out}");
    assert!(
        line("/tmpfs2").contains("noexec") && line("/tmpfs2").contains("size=1024k"),
        "{out}"
    );
    assert!(
        out.contains("touch: /rootfile: Read-only file system"),
        "{out}"
    );
    assert!(out.contains("touch: /ro/x: Read-only file system"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(
        out.contains("character special file 1:3"),
        "/proc/timer_list masked by /dev/null: {out}"
    );
    assert!(out.contains("\n0\n"), "/sys/firmware empty: {out}");
    assert!(out.contains("from-host"), "{out}");
    assert!(out.trim_end().ends_with("1777"), "{out}");
}

#[test]
fn tmpcopyup_and_propagation_options() {
    let mut c = Ctx::new(
        "copyup",
        &sh("cat /etc/passwd | head -1; grep ' /etc ' /proc/self/mountinfo"),
    );
    c.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "rprivate"]}));
    let out = ok(&c.run());
    assert!(out.starts_with("root:x:0:0"), "{out}");
    assert!(out.contains("tmpfs"), "{out}");
}

#[test]
fn sysctl_and_refused_sysctl() {
    let mut c = Ctx::new(
        "sysctl",
        &[
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
            "/proc/sys/kernel/shmmni",
        ],
    );
    c.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    assert_eq!(ok(&c.run()), "1\n1234\n");
    c.config["linux"]["sysctl"] = json!({"vm.swappiness": "1"});
    let out = c.run();
    assert!(
        stderr(&out).contains("linux.sysctl vm.swappiness"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn hostile_symlinks_stay_inside_rootfs() {
    let mut c = Ctx::new(
        "symlink",
        &sh(
            "ls /mnt/target; cat /mnt/target/marker 2>&1; ls -l /mnt/devlink/mynull 2>&1 | cut -c1",
        ),
    );
    let rootfs = c.own_rootfs();
    let outside = c.dir.join("outside");
    fs::create_dir_all(&outside).unwrap();
    // Absolute and relative links that point outside the rootfs if followed on the host.
    symlink(&outside, rootfs.join("mnt/target")).unwrap();
    symlink("../../../../../../../..", rootfs.join("mnt/devlink")).unwrap();
    c.config["root"]["readonly"] = json!(false);
    c.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/mnt/target", "type": "tmpfs", "source": "tmpfs"}));
    c.config["linux"]["devices"] =
        json!([{"path": "/mnt/devlink/mynull", "type": "c", "major": 1, "minor": 3}]);
    let out = c.run();
    ok(&out);
    // The tmpfs and device landed inside the rootfs, never in the host paths.
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "mounted over a host directory"
    );
    assert!(!Path::new("/mynull").exists(), "device created on the host");
    assert!(
        rootfs.join(outside.strip_prefix("/").unwrap()).exists(),
        "link target created inside the rootfs"
    );
    assert!(rootfs.join("mynull").exists());
}

#[test]
fn proc_destination_symlink_refused() {
    let mut c = Ctx::new("procsym", &["true"]);
    let rootfs = c.own_rootfs();
    fs::remove_dir(rootfs.join("proc")).unwrap();
    symlink("/tmp", rootfs.join("proc")).unwrap();
    let out = c.run();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("destination is a symlink"),
        "{}",
        stderr(&out)
    );
    assert!(!c.root.join(&c.id).exists());
}

#[test]
fn no_pivot_runs() {
    let c = Ctx::new("nopivot", &sh("cat /proc/self/mountinfo | wc -l; echo ok"));
    let b = c.bundle.to_str().unwrap().to_string();
    let out = c.berth(&["run", "--no-pivot", "--bundle", &b, &c.id]);
    assert!(ok(&out).ends_with("ok\n"));
}

#[test]
fn user_namespace_maps_ids() {
    let mut c = Ctx::new("userns", &sh("id -u; cat /proc/self/uid_map; sleep 100"));
    c.add_namespace(json!({"type": "user"}));
    c.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // Device cgroup rules and sysfs need nothing special; /sys is bound from the host.
    c.create(&c.id);
    ok(&c.berth(&["start", &c.id]));
    let pid = c.state(&c.id)["pid"].as_i64().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.contains("100000"), "{uid_line}");
}

#[test]
fn time_namespace_offsets() {
    let mut c = Ctx::new("timens", &["cat", "/proc/uptime"]);
    c.add_namespace(json!({"type": "time"}));
    c.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400000, "nanosecs": 0}});
    let out = ok(&c.run());
    let up: f64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(up > 86_400_000.0, "uptime {up}");
}

/// The default config mounts /sys/fs/cgroup read-only: the tmpfs (on v1) and
/// every hierarchy under it, with or without a cgroup namespace.
#[test]
fn cgroup_mounts_are_read_only() {
    for cgroupns in [false, true] {
        let mut c = Ctx::new(
            if cgroupns { "cgro-ns" } else { "cgro" },
            &sh("awk '$5 ~ \"^/sys/fs/cgroup\" {print $5, $6}' /proc/self/mountinfo"),
        );
        if cgroupns {
            c.add_namespace(json!({"type": "cgroup"}));
        }
        let out = ok(&c.run());
        let lines: Vec<&str> = out.lines().collect();
        assert!(!lines.is_empty(), "no cgroup mounts: {out}");
        for l in lines {
            let opts = l.split(' ').nth(1).unwrap_or_default();
            assert!(opts.split(',').any(|o| o == "ro"), "writable: {l}");
        }
    }
}

#[test]
fn rootfs_propagation_shared() {
    let mut c = Ctx::new("propagation", &sh("awk '$5 == \"/\"' /proc/self/mountinfo"));
    c.config["linux"]["rootfsPropagation"] = json!("shared");
    let out = ok(&c.run());
    assert!(out.contains("shared:"), "{out}");
    c.config["linux"]["rootfsPropagation"] = json!("private");
    let out = ok(&c.run());
    assert!(
        !out.contains("shared:") && !out.contains("master:"),
        "{out}"
    );
}

#[test]
fn join_user_namespace_by_path_with_new_namespaces() {
    let mut a = Ctx::new("userns-owner", &["sleep", "1000"]);
    a.add_namespace(json!({"type": "user"}));
    a.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    a.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let b = a.bundle.to_str().unwrap().to_string();
    ok(&a.berth(&["run", "-d", "--bundle", &b, &a.id]));
    let pid = pid_of(&a.state(&a.id)["pid"]);
    let owner_ns = fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();

    // The joiner creates its mount, uts, pid... namespaces inside that user
    // namespace (so it may set its hostname and mount) and runs as its root.
    let mut j = Ctx::new(
        "userns-join",
        &sh("cat /proc/self/uid_map; id -u; hostname; readlink /proc/self/ns/user"),
    );
    j.add_namespace(json!({"type": "user", "path": format!("/proc/{pid}/ns/user")}));
    let out = j.run();
    let _ = a.berth(&["kill", &a.id, "KILL"]);
    let mut status = 0;
    // SAFETY: waitpid on our own child (the owner container's init).
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let text = ok(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "{text}"
    );
    assert_eq!(lines[1], "0", "{text}");
    assert_eq!(lines[2], "berth", "{text}");
    assert_eq!(lines[3], owner_ns.to_str().unwrap(), "{text}");
}

#[test]
fn idmapped_bind_mounts_show_mapped_ownership() {
    // A volume whose files belong to root on disk, for a container whose
    // root is host uid 100000: idmapped, its root sees them as its own.
    let mut c = Ctx::new(
        "idmap",
        &sh("stat -c '%u:%g' /tmp/f /root/f; touch /tmp/new && echo wrote"),
    );
    let vol = c.dir.join("vol");
    fs::create_dir(&vol).unwrap();
    fs::write(vol.join("f"), "x").unwrap();
    c.add_namespace(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.config["linux"]["uidMappings"] = map.clone();
    c.config["linux"]["gidMappings"] = map.clone();
    let mounts = c.config["mounts"].as_array_mut().unwrap();
    // Existing mount points: the shared rootfs is not the container root's.
    mounts.push(
        json!({"destination": "/tmp", "type": "bind", "source": vol, "options": ["bind"],
        "uidMappings": map, "gidMappings": map}),
    );
    mounts
        .push(json!({"destination": "/root", "type": "bind", "source": vol, "options": ["bind"]}));
    let out = c.run();
    if stderr(&out).contains("does not support idmapped mounts") {
        // tmpfs before Linux 6.3 (the cgroup v2 test guest): said clearly.
        skip(
            "idmapped_bind_mounts_show_mapped_ownership",
            stderr(&out).trim(),
        );
        return;
    }
    let out = ok(&out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["0:0", "65534:65534", "wrote"], "{out}");
    // Written through the idmapped mount as the container's root: root's on disk.
    let md = fs::metadata(vol.join("new")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));

    // Only bind mounts, and both maps, are accepted.
    let mounts = c.config["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
        "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
    );
    let out = c.run();
    assert!(
        stderr(&out).contains("only bind mounts can be idmapped"),
        "{}",
        stderr(&out)
    );
}
