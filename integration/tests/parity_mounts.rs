//! Where the container's root is made, as runc makes it: in a mount
//! namespace joined by path, in the caller's when the config lists none,
//! without the host's whole /proc under `--no-pivot`, and from bind sources
//! the user namespace's user could not reach. Each checked by its effect
//! under berth and runc (absent: SKIP, berth alone).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use berth_integration::parity::*;
use berth_integration::*;
use serde_json::json;

/// A context with its own rootfs holding `/marker`, whose process prints
/// its mount namespace and the marker.
fn marked(name: &str) -> Ctx {
    let mut c = Ctx::new(
        name,
        &["sh", "-c", "readlink /proc/self/ns/mnt; cat /marker"],
    );
    let r = c.own_rootfs();
    fs::write(r.join("marker"), "in the rootfs\n").unwrap();
    c
}

#[test]
fn without_a_mount_namespace_the_callers_is_used_and_the_root_is_the_rootfs() {
    let test = "without_a_mount_namespace_the_callers_is_used_and_the_root_is_the_rootfs";
    for rt in runtimes(test) {
        let mut c = marked("par-nomnt");
        c.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
        // Masked and read-only paths need a mount namespace of the
        // container's (both runtimes refuse them without; tested below).
        let linux = c.config["linux"].as_object_mut().unwrap();
        linux.remove("maskedPaths");
        linux.remove("readonlyPaths");
        c.write_config();
        let id = c.id_for(&rt);
        // The caller: a throwaway private mount namespace of the test's, so
        // what the runtime mounts in "its caller's" never reaches the host.
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(r#"readlink /proc/self/ns/mnt; exec "$0" "$@""#)
            .arg(bin_of(&rt))
            .arg("--root")
            .arg(c.dir.join(format!("root-{}", name_of(&rt))))
            .args(["run", "--bundle", c.bundle.to_str().unwrap(), &id])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = ok(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{rt}: {text}");
        assert_eq!(lines[0], lines[1], "{rt}: not the caller's mount namespace");
        assert_eq!(lines[2], "in the rootfs", "{rt}");
        let _ = c.with_runtime(&rt, &["delete", "--force", &id]);
        // With masked paths: refused, in runc's words.
        let mut c = marked("par-nomnt-masked");
        c.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
        let id = c.id_for(&rt);
        let b = c.bundle.to_str().unwrap().to_string();
        let out = c.with_runtime(&rt, &["create", "--bundle", &b, &id]);
        assert!(
            stderr(&out).contains("unable to restrict sys entries without a private MNT namespace"),
            "{rt}: {}",
            stderr(&out)
        );
        let _ = c.with_runtime(&rt, &["delete", "--force", &id]);
    }
}

#[test]
fn a_mount_namespace_joined_by_path_gets_the_rootfs() {
    let test = "a_mount_namespace_joined_by_path_gets_the_rootfs";
    for rt in runtimes(test) {
        let mut holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sleep", "1000"])
            .spawn()
            .unwrap();
        let ns = format!("/proc/{}/ns/mnt", holder.id());
        // unshare execs sleep once the namespace is made.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while fs::read_link(&ns).ok() == fs::read_link("/proc/self/ns/mnt").ok() {
            assert!(std::time::Instant::now() < deadline, "no namespace");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let want = fs::read_link(&ns).unwrap();
        let mut c = marked("par-joinmnt");
        for n in c.config["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "mount" {
                *n = json!({"type": "mount", "path": ns});
            }
        }
        let out = c.run_with(&rt);
        let _ = holder.kill();
        let _ = holder.wait();
        let text = ok(&out);
        assert_eq!(
            text,
            format!("{}\nin the rootfs\n", want.display()),
            "{rt}: not the rootfs, or not the joined namespace"
        );
    }
}

#[test]
fn no_pivot_leaves_no_whole_proc_for_a_nested_namespace_to_mount() {
    let test = "no_pivot_leaves_no_whole_proc_for_a_nested_namespace_to_mount";
    let Some(unshare) = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .map(std::path::Path::new)
        .find(|p| p.exists())
    else {
        skip(test, "no util-linux unshare on this host");
        return;
    };
    // util-linux's unshare maps root after denying setgroups (busybox's does
    // not deny first, and needs CAP_SETGID of the parent namespace then).
    let script = "/bin/ul-unshare -U -r -m -p -f sh -c \
        'mount -t proc proc /proc 2>/dev/null && echo mounted || echo refused'";
    let mut seen = Vec::new();
    for rt in runtimes(test) {
        let mut c = Ctx::new("par-nopivot", &["sh", "-c", script]);
        let r = c.own_rootfs();
        install_binary(&r, unshare, "ul-unshare");
        // Mapping uid 0 needs CAP_SETFCAP at the unshare (Linux 5.12).
        for set in ["bounding", "effective", "permitted"] {
            c.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SETFCAP"));
        }
        let id = c.id_for(&rt);
        let b = c.bundle.to_str().unwrap().to_string();
        let out = c.with_runtime(&rt, &["run", "--no-pivot", "--bundle", &b, &id]);
        let _ = c.with_runtime(&rt, &["delete", "--force", &id]);
        let text = ok(&out);
        assert_eq!(
            text.trim(),
            "refused",
            "{rt}: a fresh procfs could be mounted"
        );
        seen.push(text);
    }
    assert_alike(seen);
}

#[test]
fn bind_sources_the_mapped_user_cannot_reach_are_still_mounted() {
    let test = "bind_sources_the_mapped_user_cannot_reach_are_still_mounted";
    let mut seen = Vec::new();
    for rt in runtimes(test) {
        let mut c = Ctx::new("par-usrbind", &["cat", "/data/f"]);
        // The mount point is the image's (the mapped root may not create
        // one in a root-owned rootfs, under runc either); the shared rootfs
        // has none unless another suite ran first.
        let rootfs = c.own_rootfs();
        fs::create_dir_all(rootfs.join("data")).unwrap();
        // The source is readable, its parent only root's: the mapped root
        // (host uid 100000) cannot walk to it, the runtime can.
        let private = c.dir.join("private");
        fs::create_dir_all(private.join("data")).unwrap();
        fs::write(private.join("data/f"), "reached\n").unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        c.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c.config["linux"]["uidMappings"] = map.clone();
        c.config["linux"]["gidMappings"] = map;
        let mounts = c.config["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["type"] != "mqueue");
        for m in mounts.iter_mut().filter(|m| m["type"] == "sysfs") {
            *m = json!({"destination": "/sys", "type": "bind", "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
        mounts.push(json!({"destination": "/data", "type": "bind",
            "source": private.join("data"), "options": ["rbind", "ro"]}));
        let text = ok(&c.run_with(&rt));
        assert_eq!(text, "reached\n", "{rt}");
        seen.push(text);
    }
    assert_alike(seen);
}

#[test]
fn a_file_bound_onto_a_dangling_symlink_lands_where_it_points() {
    // Images with systemd-resolved have /etc/resolv.conf -> ../run/...,
    // dangling until the container runs; engines bind their resolv.conf
    // onto it. Both runtimes make the file where the link points.
    let test = "a_file_bound_onto_a_dangling_symlink_lands_where_it_points";
    let mut seen = Vec::new();
    for rt in runtimes(test) {
        let mut c = Ctx::new(
            "par-dangle",
            &["sh", "-c", "cat /etc/resolv.conf; ls /run/stub"],
        );
        let rootfs = c.own_rootfs();
        let _ = fs::remove_file(rootfs.join("etc/resolv.conf"));
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::os::unix::fs::symlink("../run/stub/resolv.conf", rootfs.join("etc/resolv.conf"))
            .unwrap();
        let src = c.dir.join("resolv.conf");
        fs::write(&src, "nameserver 192.0.2.53\n").unwrap();
        c.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/etc/resolv.conf", "type": "bind",
                "source": src, "options": ["rbind", "ro"]}));
        let text = ok(&c.run_with(&rt));
        assert_eq!(text, "nameserver 192.0.2.53\nresolv.conf\n", "{rt}");
        seen.push(text);
    }
    assert_alike(seen);
}
