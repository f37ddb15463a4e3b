//! Where berth must behave as runc does: each case checked by its effect
//! with berth and with runc on the same bundle (runc absent: SKIP, and
//! berth alone is checked against what the runtime spec says).

use std::fs;
use std::path::Path;

use berth_integration::parity::*;
use berth_integration::*;
use serde_json::json;

#[test]
fn kill_with_signal_0_probes_liveness() {
    for rt in runtimes("kill_with_signal_0_probes_liveness") {
        let c = Ctx::new("par-kill0", &["sleep", "1000"]);
        let id = start_detached(&c, &rt);
        let out = c.with_runtime(&rt, &["kill", &id, "0"]);
        assert!(out.status.success(), "{rt}: {}", stderr(&out));
        // With --all too.
        let out = c.with_runtime(&rt, &["kill", "-a", &id, "0"]);
        assert!(out.status.success(), "{rt} -a: {}", stderr(&out));
        // The probe did not hurt it.
        let st: serde_json::Value =
            serde_json::from_slice(&c.with_runtime(&rt, &["state", &id]).stdout).unwrap();
        assert_eq!(st["status"], "running", "{rt}");
        ok(&c.with_runtime(&rt, &["delete", "--force", &id]));
    }
}

#[test]
fn duplicate_additional_gids_are_set_once() {
    run_alike(
        "duplicate_additional_gids_are_set_once",
        || {
            let mut c = Ctx::new("par-gids", &sh("grep ^Groups: /proc/self/status"));
            c.config["process"]["user"] =
                json!({"uid": 0, "gid": 0, "additionalGids": [5, 1, 5, 1]});
            c
        },
        |rt, groups| {
            assert_eq!(
                groups.split_whitespace().collect::<Vec<_>>(),
                ["Groups:", "1", "5"],
                "{rt}"
            )
        },
    );
}

#[test]
fn exec_of_a_process_file_without_user_runs_as_root() {
    for rt in runtimes("exec_of_a_process_file_without_user_runs_as_root") {
        let c = Ctx::new("par-execp", &["sleep", "1000"]);
        let id = start_detached(&c, &rt);
        let pfile = c.dir.join("process.json");
        fs::write(
            &pfile,
            serde_json::to_vec(&json!({"args": ["id", "-u"], "cwd": "/", "env": ["PATH=/bin"]}))
                .unwrap(),
        )
        .unwrap();
        let out = c.with_runtime(&rt, &["exec", "-p", pfile.to_str().unwrap(), &id]);
        assert_eq!(ok(&out).trim(), "0", "{rt}");
        ok(&c.with_runtime(&rt, &["delete", "--force", &id]));
    }
}

/// A hook script that appends its name to `log`, failing when asked.
fn hook(dir: &Path, name: &str, log: &Path, fail: bool) -> serde_json::Value {
    let p = dir.join(name);
    fs::write(
        &p,
        format!(
            "#!/bin/sh\necho {name} >> {}\n{}\n",
            log.display(),
            if fail { "exit 3" } else { "exit 0" }
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    json!({"path": p})
}

#[test]
fn failing_poststart_and_poststop_hooks_do_not_skip_the_rest() {
    // The runtime spec: a failing poststart or poststop hook is logged and
    // the remaining hooks still run. Checked on berth (runc 1.1 stops early).
    let c = {
        let mut c = Ctx::new("par-hooks", &["true"]);
        let log = c.dir.join("hooks.log");
        fs::create_dir_all(&c.dir).unwrap();
        let (a, b) = (
            hook(&c.dir, "poststart-a", &log, true),
            hook(&c.dir, "poststart-b", &log, false),
        );
        let (d, e) = (
            hook(&c.dir, "poststop-a", &log, true),
            hook(&c.dir, "poststop-b", &log, false),
        );
        c.config["hooks"] = json!({"poststart": [a, b], "poststop": [d, e]});
        c
    };
    let out = c.run_with("berth");
    assert!(out.status.success(), "{}", stderr(&out));
    let log = fs::read_to_string(c.dir.join("hooks.log")).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["poststart-a", "poststart-b", "poststop-a", "poststop-b"]
    );
    assert!(stderr(&out).contains("poststart-a"), "{}", stderr(&out));
}

#[test]
fn delete_force_of_a_paused_container_kills_it() {
    for rt in runtimes("delete_force_of_a_paused_container_kills_it") {
        let c = Ctx::new("par-pausedel", &["sleep", "1000"]);
        let id = start_detached(&c, &rt);
        let st: serde_json::Value =
            serde_json::from_slice(&c.with_runtime(&rt, &["state", &id]).stdout).unwrap();
        let pid = pid_of(&st["pid"]);
        let out = c.with_runtime(&rt, &["pause", &id]);
        if !out.status.success() {
            skip(
                "delete_force_of_a_paused_container_kills_it",
                &format!("{rt} pause: {}", stderr(&out)),
            );
            ok(&c.with_runtime(&rt, &["delete", "--force", &id]));
            continue;
        }
        let t = std::time::Instant::now();
        let out = c.with_runtime(&rt, &["delete", "--force", &id]);
        assert!(out.status.success(), "{rt}: {}", stderr(&out));
        assert!(
            t.elapsed().as_secs() < 10,
            "{rt}: delete waited {:?}",
            t.elapsed()
        );
        // Gone, not frozen: the pid is no process, or a zombie reaped soon.
        let alive = fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        assert!(!alive, "{rt}: init {pid} still lives");
    }
}

#[test]
fn create_container_hooks_start_in_the_container_root() {
    let mut seen = Vec::new();
    for rt in runtimes("create_container_hooks_start_in_the_container_root") {
        let mut c = Ctx::new("par-hookcwd", &["true"]);
        fs::create_dir_all(&c.dir).unwrap();
        let log = c.dir.join(format!("cwd-{}.log", seen.len()));
        let script = c.dir.join(format!("hook-{}", seen.len()));
        fs::write(&script, format!("#!/bin/sh\npwd > {}\n", log.display())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        c.config["hooks"] = json!({"createContainer": [{"path": script}]});
        let out = c.run_with(&rt);
        assert!(out.status.success(), "{rt}: {}", stderr(&out));
        let cwd = fs::read_to_string(&log).unwrap();
        assert_eq!(
            Path::new(cwd.trim()),
            fs::canonicalize(busybox_rootfs()).unwrap(),
            "{rt}"
        );
        seen.push(cwd);
    }
}

#[test]
fn unified_resources_are_refused_without_cgroup_v2_controllers() {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        skip(
            "unified_resources_are_refused_without_cgroup_v2_controllers",
            "this host is pure cgroup v2, where linux.resources.unified applies",
        );
        return;
    }
    for rt in runtimes("unified_resources_are_refused_without_cgroup_v2_controllers") {
        let mut c = Ctx::new("par-unified", &["true"]);
        c.config["linux"]["resources"] = json!({"unified": {"pids.max": "10"}});
        let out = c.run_with(&rt);
        assert!(!out.status.success(), "{rt} accepted unified on a v1 host");
        assert!(stderr(&out).contains("unified"), "{rt}: {}", stderr(&out));
    }
}

#[test]
fn the_pty_belongs_to_the_processs_user() {
    let mut seen = Vec::new();
    for rt in runtimes("the_pty_belongs_to_the_processs_user") {
        let mut c = Ctx::new("par-pty", &sh("stat -c owner=%u:%g $(tty); sleep 5"));
        c.config["process"]["terminal"] = json!(true);
        c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        let cs = ConsoleSocket::new(&c.dir);
        let p = cs.path.to_str().unwrap().to_string();
        let b = c.bundle.to_str().unwrap().to_string();
        let id = c.id_for(&rt);
        let (out, master) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                c.with_runtime(
                    &rt,
                    &["create", "--console-socket", &p, "--bundle", &b, &id],
                )
            });
            let m = cs.master();
            (h.join().unwrap(), m)
        });
        ok(&out);
        ok(&c.with_runtime(&rt, &["start", &id]));
        use std::os::fd::AsFd;
        let got = read_until(master.as_fd(), "owner=1000:", 10);
        let line = got
            .lines()
            .find(|l| l.contains("owner="))
            .unwrap_or_default()
            .trim()
            .to_string();
        assert_eq!(line, "owner=1000:5", "{rt}: {got:?}");
        seen.push(line);
        ok(&c.with_runtime(&rt, &["delete", "--force", &id]));
    }
    assert_alike(seen);
}

#[test]
fn a_read_only_dev_still_gets_its_pts_and_devices() {
    run_alike(
        "a_read_only_dev_still_gets_its_pts_and_devices",
        || {
            let mut c = Ctx::new(
                "par-rodev",
                &sh("touch /dev/x 2>/dev/null; echo touch=$?; test -d /dev/pts && echo pts; test -c /dev/null && echo null"),
            );
            let mounts = c.config["mounts"].as_array_mut().unwrap();
            let dev = mounts
                .iter_mut()
                .find(|m| m["destination"] == "/dev")
                .expect("the default config mounts /dev");
            dev["options"].as_array_mut().unwrap().push(json!("ro"));
            c
        },
        |rt, text| {
            assert_eq!(
                text.lines().collect::<Vec<_>>(),
                ["touch=1", "pts", "null"],
                "{rt}"
            )
        },
    );
}

#[test]
fn hostname_is_set_in_a_joined_uts_namespace() {
    let mut seen = Vec::new();
    for rt in runtimes("hostname_is_set_in_a_joined_uts_namespace") {
        let mut c = Ctx::new("par-utsjoin", &["hostname"]);
        fs::create_dir_all(&c.dir).unwrap();
        let pin = c.dir.join("uts");
        fs::File::create(&pin).unwrap();
        ok(&std::process::Command::new("unshare")
            .arg(format!("--uts={}", pin.display()))
            .arg("true")
            .output()
            .unwrap());
        for ns in c.config["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "uts" {
                ns["path"] = json!(pin);
            }
        }
        c.config["hostname"] = json!("joined-uts");
        let out = c.run_with(&rt);
        let _ = nix::mount::umount2(&pin, nix::mount::MntFlags::MNT_DETACH);
        assert_eq!(ok(&out).trim(), "joined-uts", "{rt}");
        seen.push(ok(&out));
    }
    assert_alike(seen);
}

/// A bidirectional bind mount (`rshared`, with the root `rshared`, as a
/// kubelet Bidirectional volume is given): a mount made in the container
/// reaches the host through it, as under runc. Before, berth made the new
/// root's whole tree a slave after pivot_root (meant for the old root
/// only), so nothing went back.
#[test]
fn a_shared_bind_mount_propagates_mounts_back_to_the_host() {
    let mut seen = Vec::new();
    for rt in runtimes("a_shared_bind_mount_propagates_mounts_back_to_the_host") {
        let mut c = Ctx::new(
            "par-rshared",
            &sh("mkdir -p /mnt/x/inner && mount --bind /etc /mnt/x/inner && echo mounted"),
        );
        let src = c.dir.join("shared-src");
        fs::create_dir_all(&src).unwrap();
        let src_s = src.to_str().unwrap().to_string();
        // A shared mount on the host, as kubelet makes a bidirectional volume's.
        ok(&std::process::Command::new("mount")
            .args(["--bind", &src_s, &src_s])
            .output()
            .unwrap());
        ok(&std::process::Command::new("mount")
            .args(["--make-rshared", &src_s])
            .output()
            .unwrap());
        c.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt/x", "type": "bind", "source": src_s, "options": ["rbind", "rshared"]
        }));
        c.config["linux"]["rootfsPropagation"] = json!("rshared");
        for set in ["bounding", "effective", "permitted"] {
            c.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_ADMIN"));
        }
        let out = c.run_with(&rt);
        let reached = fs::read_dir(src.join("inner"))
            .map(|d| d.count())
            .unwrap_or(0)
            > 0;
        // Unmounted before any assertion, so a failure leaves nothing.
        for p in [src.join("inner"), src.clone()] {
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        }
        assert_eq!(ok(&out).trim(), "mounted", "{rt}");
        assert!(
            reached,
            "{rt}: the container's mount did not reach the host"
        );
        seen.push(format!("{} {reached}", ok(&out).trim()));
    }
    assert_alike(seen);
}

#[test]
fn a_new_user_namespace_still_joins_other_namespaces_by_path() {
    let mut seen = Vec::new();
    for rt in runtimes("a_new_user_namespace_still_joins_other_namespaces_by_path") {
        let mut c = Ctx::new(
            "par-userns-join",
            &sh("cat /proc/self/uid_map; stat -L -c %i /proc/self/ns/net /proc/self/ns/ipc"),
        );
        // Namespaces the host's user namespace owns, pinned, as a pod's are.
        let pins: Vec<_> = ["net", "ipc", "uts"]
            .iter()
            .map(|n| c.dir.join(format!("{n}.pin")))
            .collect();
        for p in &pins {
            fs::write(p, "").unwrap();
        }
        ok(&std::process::Command::new("unshare")
            .arg(format!("--net={}", pins[0].display()))
            .arg(format!("--ipc={}", pins[1].display()))
            .arg(format!("--uts={}", pins[2].display()))
            .arg("true")
            .output()
            .unwrap());
        let inode = |p: &Path| {
            use std::os::unix::fs::MetadataExt;
            fs::metadata(p).unwrap().ino()
        };
        let want = format!("{}\n{}", inode(&pins[0]), inode(&pins[1]));
        let ns = c.config["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| !matches!(n["type"].as_str(), Some("network" | "ipc" | "uts")));
        ns.push(json!({"type": "user"}));
        for (t, p) in ["network", "ipc", "uts"].iter().zip(&pins) {
            ns.push(json!({"type": t, "path": p}));
        }
        let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c.config["linux"]["uidMappings"] = map.clone();
        c.config["linux"]["gidMappings"] = map;
        // A joined UTS namespace keeps its name; a joined IPC namespace of
        // another user namespace cannot get a new mqueue mount, nor a joined
        // network namespace a sysfs (runc does not fall back): /sys is bound.
        c.config.as_object_mut().unwrap().remove("hostname");
        let mounts = c.config["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["type"] != "mqueue");
        for m in mounts.iter_mut().filter(|m| m["type"] == "sysfs") {
            *m = json!({"destination": "/sys", "type": "bind", "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
        let out = c.run_with(&rt);
        for p in &pins {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
        let text = ok(&out);
        let mut lines = text.lines();
        let map_line: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        assert_eq!(map_line, ["0", "100000", "65536"], "{rt}: {text}");
        assert_eq!(
            lines.collect::<Vec<_>>().join("\n"),
            want,
            "{rt}: not in the pinned namespaces"
        );
        seen.push("joined".to_string());
    }
    assert_alike(seen);
}
