//! Cgroup limits observed by their effect on real containers: OOM kills,
//! fork failures, throttling, frozen processes, denied devices; and the
//! commands that change or read them (pause, resume, update, events).

use std::fs;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_integration::*;
use serde_json::{json, Value};

fn with_cgroupns(c: &mut Ctx) {
    c.add_namespace(json!({"type": "cgroup"}));
}

fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid status pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

fn start_detached(c: &Ctx) -> i32 {
    let b = c.bundle.to_str().unwrap().to_string();
    ok(&c.berth(&["run", "-d", "--bundle", &b, &c.id]));
    pid_of(&c.state(&c.id)["pid"])
}

fn stop(c: &Ctx, pid: i32) {
    let _ = c.berth(&["kill", &c.id, "KILL"]);
    reap(pid);
}

/// The container's file `name` in the hierarchy that has it.
fn cg_file(id: &str, name: &str) -> String {
    for d in cgroup_dirs_named(id) {
        if let Ok(s) = fs::read_to_string(d.join(name)) {
            return s.trim().to_string();
        }
    }
    panic!("no {name} for {id}");
}

/// True on a pure cgroup v2 host (the `make test-cgroupv2` guest).
fn v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// On v1 a new process moves itself into each hierarchy (by writing "0" to
/// `tasks`); on v2 it is born in its cgroup. Either way init and an exec'd
/// process are in every one of the container's cgroups.
#[test]
fn init_and_exec_processes_are_in_every_container_cgroup() {
    let c = Ctx::new("member", &["sleep", "100"]);
    let init = start_detached(&c);
    let pid_file = c.dir.join("exec.pid");
    ok(&c.berth(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
        "sleep",
        "100",
    ]));
    let exec: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dirs = cgroup_dirs_named(&c.id);
    assert!(
        if v2() {
            dirs.len() == 1
        } else {
            dirs.len() > 3
        },
        "{dirs:?}"
    );
    for d in &dirs {
        let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap();
        let pids: Vec<i32> = procs.lines().filter_map(|l| l.parse().ok()).collect();
        assert!(
            pids.contains(&init) && pids.contains(&exec),
            "{}: {pids:?}, want {init} and {exec}",
            d.display()
        );
    }
    // Both are our children (run -d and exec -d); the exec'd one first, as
    // init's exit waits for the rest of its pid namespace to be reaped.
    let _ = c.berth(&["kill", "--all", &c.id, "KILL"]);
    reap(exec);
    reap(init);
}

/// A cgroup namespace is rooted at the container's cgroups: the process
/// joins them before it makes the namespace.
#[test]
fn cgroup_namespace_is_rooted_at_the_container_cgroups() {
    let mut c = Ctx::new("cgns", &["cat", "/proc/self/cgroup"]);
    with_cgroupns(&mut c);
    let out = ok(&c.run());
    assert!(!out.trim().is_empty());
    for line in out.lines() {
        assert!(line.ends_with(":/"), "not at the namespace root: {out}");
    }
}

const HOG: &str = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived";

#[test]
fn memory_limit_oom_kills() {
    let mut c = Ctx::new("mem", &sh(HOG));
    c.config["linux"]["resources"]["memory"] = json!({"limit": 33554432, "swap": 33554432});
    let out = c.run();
    assert!(!stdout(&out).contains("survived"), "{}", stdout(&out));
    // The shell (init) was OOM-killed: 128 + SIGKILL.
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    // The shell gives up at the first fork the limit refuses.
    let mut c = Ctx::new(
        "pidsmax",
        &sh("for i in $(seq 30); do sleep 10 & done; echo all-forked"),
    );
    c.config["linux"]["resources"]["pids"] = json!({"limit": 8});
    let out = c.run();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!text.contains("all-forked"), "{text}");
    assert!(
        text.contains("can't fork: Resource temporarily unavailable"),
        "{text}"
    );
}

#[test]
fn cpu_quota_throttles() {
    let mut c = Ctx::new(
        "quota",
        &sh("timeout 1 sh -c 'while :; do :; done'; grep nr_throttled /sys/fs/cgroup/cpu/cpu.stat 2>/dev/null || grep nr_throttled /sys/fs/cgroup/cpu.stat"),
    );
    c.config["linux"]["resources"]["cpu"] = json!({"quota": 10000, "period": 100000});
    with_cgroupns(&mut c);
    let out = ok(&c.run());
    let n: u64 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(n > 0, "{out}");
}

#[test]
fn denied_device_cannot_be_opened() {
    // mknod is allowed (as runc's defaults, given CAP_MKNOD), opening a
    // block device is not.
    let mut c = Ctx::new(
        "devdeny",
        &sh("mknod /dev/blk b 7 0 && echo made; head -c 1 /dev/blk >/dev/null; echo open=$?"),
    );
    for set in ["bounding", "effective", "permitted"] {
        c.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    let out = c.run();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("made") && text.contains("open=1"), "{text}");
    assert!(text.contains("Operation not permitted"), "{text}");
}

fn utime(pid: i32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    s.rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(11)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn pause_stops_a_busy_loop_and_resume_restarts_it() {
    let c = Ctx::new("pause", &sh("while :; do :; done"));
    let pid = start_detached(&c);
    std::thread::sleep(Duration::from_millis(200));
    ok(&c.berth(&["pause", &c.id]));
    assert_eq!(c.state(&c.id)["status"], "paused");
    let a = utime(pid);
    std::thread::sleep(Duration::from_millis(400));
    let b = utime(pid);
    assert_eq!(a, b, "a frozen loop used CPU");
    let again = c.berth(&["pause", &c.id]);
    assert!(!again.status.success());
    ok(&c.berth(&["resume", &c.id]));
    assert_eq!(c.state(&c.id)["status"], "running");
    std::thread::sleep(Duration::from_millis(400));
    assert!(utime(pid) > b, "the loop did not resume");
    let out = c.berth(&["resume", &c.id]);
    assert!(stderr(&out).contains("not paused"), "{}", stderr(&out));
    stop(&c, pid);
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let mut c = Ctx::new("update", &["sleep", "1000"]);
    c.config["linux"]["resources"]["memory"] = json!({"limit": 134217728});
    let pid = start_detached(&c);
    ok(&c.berth(&[
        "update",
        "--memory",
        "64m",
        "--pids-limit",
        "7",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        "--cpu-share",
        "512",
        &c.id,
    ]));
    if v2() {
        assert_eq!(cg_file(&c.id, "memory.max"), "67108864");
        assert_eq!(cg_file(&c.id, "cpu.max"), "20000 100000");
        // runc's conversion of 512 shares.
        assert_eq!(cg_file(&c.id, "cpu.weight"), "20");
    } else {
        assert_eq!(cg_file(&c.id, "memory.limit_in_bytes"), "67108864");
        assert_eq!(cg_file(&c.id, "cpu.cfs_quota_us"), "20000");
        assert_eq!(cg_file(&c.id, "cpu.shares"), "512");
    }
    assert_eq!(cg_file(&c.id, "pids.max"), "7");
    // -r with a resources file.
    let r = c.dir.join("res.json");
    fs::write(&r, json!({"pids": {"limit": 9}}).to_string()).unwrap();
    ok(&c.berth(&["update", "-r", r.to_str().unwrap(), &c.id]));
    assert_eq!(cg_file(&c.id, "pids.max"), "9");
    // checkBeforeUpdate refuses a limit below current usage.
    fs::write(
        &r,
        json!({"memory": {"limit": 4096, "checkBeforeUpdate": true}}).to_string(),
    )
    .unwrap();
    let out = c.berth(&["update", "-r", r.to_str().unwrap(), &c.id]);
    assert!(
        stderr(&out).contains("checkBeforeUpdate"),
        "{}",
        stderr(&out)
    );
    stop(&c, pid);
    // runc's words for it.
    let out = c.berth(&["update", "--pids-limit", "3", &c.id]);
    assert!(
        stderr(&out).contains("container not running"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn events_report_stats_and_oom() {
    let mut c = Ctx::new("events", &sh(&format!("sleep 1; ({HOG}); sleep 1000")));
    c.config["linux"]["resources"]["memory"] = json!({"limit": 33554432, "swap": 33554432});
    c.config["linux"]["resources"]["pids"] = json!({"limit": 50});
    let pid = start_detached(&c);
    let stats: Value = serde_json::from_str(&ok(&c.berth(&["events", "--stats", &c.id]))).unwrap();
    assert_eq!(stats["type"], "stats");
    assert!(
        stats["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert_eq!(stats["data"]["memory"]["usage"]["limit"], 33554432);
    assert_eq!(stats["data"]["pids"]["limit"], 50);
    assert!(
        stats["data"]["cpu"]["usage"]["total"].as_u64().is_some(),
        "{stats}"
    );
    // Streaming: an OOM event once the subshell is killed.
    let mut ev = c
        .berth_cmd(&["events", "--interval", "0.2s", &c.id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = ev.stdout.take().unwrap();
    let got = std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 65536];
        while !all.contains("\"oom\"") {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        all
    });
    let t = std::time::Instant::now();
    while !got.is_finished() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = ev.kill();
    let _ = ev.wait();
    let all = got.join().unwrap();
    assert!(
        all.contains(r#"{"type":"oom""#) || all.contains(r#""type":"oom""#),
        "{all}"
    );
    stop(&c, pid);
}

/// An ordinary user with a delegated cgroup (v2: a subtree chowned to it, as
/// systemd delegates one) gets its limits applied there. On a v1 host
/// delegation would take every hierarchy; it is tested in the v2 guest.
#[test]
fn rootless_uses_a_delegated_cgroup() {
    if !v2() {
        skip(
            "rootless_uses_a_delegated_cgroup",
            "cgroup delegation needs pure cgroup v2 (it runs in make test-cgroupv2)",
        );
        return;
    }
    let name = format!("berth-it-deleg-{}", std::process::id());
    let base = std::path::Path::new("/sys/fs/cgroup").join(&name);
    fs::create_dir(&base).unwrap();
    let _cleanup = CgroupGuard(base.clone());
    fs::write(base.join("cgroup.subtree_control"), "+pids").unwrap();
    fs::create_dir(base.join("leaf")).unwrap();
    let own = |p: &std::path::Path| std::os::unix::fs::chown(p, Some(1000), Some(1000)).unwrap();
    for f in [
        "",
        "cgroup.procs",
        "cgroup.threads",
        "cgroup.subtree_control",
        "leaf",
        "leaf/cgroup.procs",
    ] {
        own(&base.join(f));
    }
    let mut c = Ctx::new(
        "deleg",
        // The limit shows by effect: of 20 background sleeps some cannot fork.
        &sh("cat /proc/self/cgroup; (for i in $(seq 20); do sleep 1 & done; wait) 2>&1 | grep -c fork"),
    );
    for d in [&c.dir, &c.bundle] {
        own(d);
    }
    let xdg = c.dir.join("xdg");
    fs::create_dir(&xdg).unwrap();
    own(&xdg);
    fs::remove_file(c.bundle.join("config.json")).unwrap();
    let out = Command::new(berth_bin())
        .args(["spec", "--rootless", "--bundle"])
        .arg(&c.bundle)
        .output()
        .unwrap();
    ok(&out);
    let mut v: Value =
        serde_json::from_slice(&fs::read(c.bundle.join("config.json")).unwrap()).unwrap();
    v["root"] = json!({"path": busybox_rootfs(), "readonly": true});
    v["process"] = c.config["process"].clone();
    v["process"]["user"] = json!({"uid": 0, "gid": 0});
    // `spec --rootless` ran as root here: map the user that will run it.
    v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    v["linux"]["cgroupsPath"] = json!(format!("/{name}/c"));
    v["linux"]["resources"] = json!({"pids": {"limit": 10}});
    c.config = v;
    c.write_config();
    // The caller sits in the delegated subtree's leaf, then becomes uid 1000.
    let script = format!(
        "echo $$ > {leaf}/cgroup.procs && exec setpriv --reuid 1000 --regid 1000 --clear-groups \
         env XDG_RUNTIME_DIR={xdg} {berth} run --bundle {b} deleg",
        leaf = base.join("leaf").display(),
        xdg = xdg.display(),
        berth = berth_bin().display(),
        b = c.bundle.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("0::/{name}/c"), "{text}");
    assert!(
        lines[1].parse::<u32>().unwrap() > 0,
        "no fork failed under pids.max 10: {text}"
    );
    assert!(
        !base.join("c").exists(),
        "the container's cgroup is removed on delete"
    );
}

/// Removes a test's cgroup tree (leaves first) when dropped.
struct CgroupGuard(std::path::PathBuf);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for sub in ["c", "leaf", ""] {
            let _ = fs::remove_dir(self.0.join(sub));
        }
    }
}
