//! The systemd cgroup driver (`berth --systemd-cgroup`), on a host whose
//! PID 1 is systemd: `make test-systemd` runs this suite in such a guest
//! (tools/systemd-vm). Elsewhere every test says SKIP.
//!
//! Effects are seen from inside the container (an OOM kill, a pids limit,
//! a CPU quota throttling, a denied device), the unit's properties are read
//! back with `systemctl show`, and no unit is left after delete.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_integration::*;
use serde_json::json;

/// True when systemd runs this host (as sd_booted checks).
fn systemd(test: &str) -> bool {
    let yes = Path::new("/run/systemd/system").is_dir();
    if !yes {
        skip(
            test,
            "systemd is not PID 1 here (make test-systemd runs this in a systemd guest)",
        );
    }
    yes
}

/// `systemctl show UNIT -p P...` as a map.
fn show(unit: &str, props: &[&str]) -> std::collections::HashMap<String, String> {
    let mut c = Command::new("systemctl");
    c.args(["show", unit]);
    for p in props {
        c.arg("-p").arg(p);
    }
    let out = c.output().expect("run systemctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A container under `system.slice:berth-test:<id>`, its resources set.
fn scoped(name: &str, args: &[&str]) -> (Ctx, String, PathBuf) {
    let mut c = Ctx::new(name, args);
    let id = c.id.clone();
    c.config["linux"]["cgroupsPath"] = json!(format!("system.slice:berth-test:{id}"));
    c.config["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 32 << 20});
    c.config["linux"]["resources"]["pids"] = json!({"limit": 20});
    c.config["linux"]["resources"]["cpu"] = json!({"quota": 20000, "period": 100000});
    c.config["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c",
        "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}]);
    let unit = format!("berth-test-{id}.scope");
    let dir = PathBuf::from(format!("/sys/fs/cgroup/system.slice/{unit}"));
    (c, unit, dir)
}

fn exec(c: &Ctx, script: &str) -> std::process::Output {
    c.berth(&["--systemd-cgroup", "exec", &c.id, "sh", "-c", script])
}

#[test]
fn a_scope_holds_the_container_with_its_limits_and_goes_with_it() {
    let test = "a_scope_holds_the_container_with_its_limits_and_goes_with_it";
    if !systemd(test) {
        return;
    }
    let (c, unit, dir) = scoped("sd-scope", &["sleep", "1000"]);
    let b = c.bundle.to_str().unwrap().to_string();
    ok(&c.berth(&["--systemd-cgroup", "create", "--bundle", &b, &c.id]));
    ok(&c.berth(&["start", &c.id]));
    let pid = pid_of(&c.state(&c.id)["pid"]);
    // systemd's unit, with what linux.resources asked.
    let p = show(
        &unit,
        &[
            "ActiveState",
            "Delegate",
            "MemoryMax",
            "TasksMax",
            "CPUQuotaPerSecUSec",
            "Slice",
            "DevicePolicy",
        ],
    );
    assert_eq!(p["ActiveState"], "active", "{p:?}");
    assert_eq!(p["Delegate"], "yes", "{p:?}");
    assert_eq!(p["Slice"], "system.slice", "{p:?}");
    assert_eq!(p["MemoryMax"], (32u64 << 20).to_string(), "{p:?}");
    assert_eq!(p["TasksMax"], "20", "{p:?}");
    assert_eq!(p["CPUQuotaPerSecUSec"], "200ms", "{p:?}");
    assert_eq!(p["DevicePolicy"], "strict", "{p:?}");
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(cg.trim(), format!("0::/system.slice/{unit}"));
    // An exec'd process is in it too.
    let out = ok(&exec(&c, "cat /proc/self/cgroup"));
    assert_eq!(out.trim(), format!("0::/system.slice/{unit}"));
    // Effects, from inside: the memory limit (an allocation past it is
    // OOM-killed),
    let out = exec(
        &c,
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}",
    );
    let events = fs::read_to_string(dir.join("memory.events")).unwrap();
    assert!(
        !out.status.success()
            && events
                .lines()
                .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"),
        "64 MiB under a 32 MiB limit: {:?} {} {}; {events}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    // a denied device (the node exists, no rule allows it),
    let out = exec(&c, "exec 3</dev/fuse && echo opened");
    assert!(!out.status.success(), "/dev/fuse opened");
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    // the CPU quota,
    let _ = exec(&c, "timeout 1 sh -c 'while :; do :; done'");
    let stat = fs::read_to_string(dir.join("cpu.stat")).unwrap();
    let throttled: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        throttled > 0,
        "a busy loop at 20% was never throttled: {stat}"
    );
    // and the pids limit (last: the sleeps stay until delete).
    let out = exec(
        &c,
        "for i in $(seq 30); do sleep 100 & done 2>&1; echo forked",
    );
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("fork") || said.contains("Resource temporarily unavailable"),
        "30 processes under a limit of 20: {said}"
    );
    // update goes through systemd.
    ok(&c.berth(&["--systemd-cgroup", "update", "--pids-limit", "30", &c.id]));
    assert_eq!(show(&unit, &["TasksMax"])["TasksMax"], "30");
    assert_eq!(
        fs::read_to_string(dir.join("pids.max")).unwrap().trim(),
        "30"
    );
    // delete stops the unit: nothing is left.
    ok(&c.berth(&["delete", "--force", &c.id]));
    let p = show(&unit, &["LoadState", "ActiveState"]);
    assert_eq!(p["LoadState"], "not-found", "{p:?}");
    assert!(!dir.exists(), "{} is left", dir.display());
}

#[test]
fn a_scope_systemd_refuses_says_why_and_leaves_nothing() {
    let test = "a_scope_systemd_refuses_says_why_and_leaves_nothing";
    if !systemd(test) {
        return;
    }
    let (mut c, unit, _) = scoped("sd-twice", &["sleep", "1000"]);
    let b = c.bundle.to_str().unwrap().to_string();
    ok(&c.berth(&["--systemd-cgroup", "create", "--bundle", &b, &c.id]));
    // A second container naming the same unit: systemd's own reason.
    let other = c.another_id("2");
    let out = c.berth(&["--systemd-cgroup", "create", "--bundle", &b, &other]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("UnitExists"), "{}", stderr(&out));
    assert!(c.berth(&["state", &other]).status.code() != Some(0));
    ok(&c.berth(&["delete", "--force", &c.id]));
    assert_eq!(show(&unit, &["LoadState"])["LoadState"], "not-found");
    // A cgroupsPath that is not slice:prefix:name is refused, naming the form.
    let mut c = Ctx::new("sd-badpath", &["true"]);
    c.config["linux"]["cgroupsPath"] = json!("/not/a/unit");
    let out = c.berth(&[
        "--systemd-cgroup",
        "run",
        "--bundle",
        c.bundle.to_str().unwrap(),
        &c.id,
    ]);
    assert!(
        stderr(&out).contains("slice:prefix:name"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_in_the_foreground_leaves_no_unit() {
    let test = "run_in_the_foreground_leaves_no_unit";
    if !systemd(test) {
        return;
    }
    let (c, unit, _) = scoped("sd-run", &["cat", "/proc/self/cgroup"]);
    let out = ok(&c.berth(&[
        "--systemd-cgroup",
        "run",
        "--bundle",
        c.bundle.to_str().unwrap(),
        &c.id,
    ]));
    assert_eq!(out.trim(), format!("0::/system.slice/{unit}"));
    assert_eq!(show(&unit, &["LoadState"])["LoadState"], "not-found");
}

#[test]
fn cri_containers_are_scopes_in_kubelets_slice() {
    use berth_integration::cri::CriStack;
    use k8s_cri::v1 as cri;
    let test = "cri_containers_are_scopes_in_kubelets_slice";
    if !systemd(test) {
        return;
    }
    let c = CriStack::in_host_net_with("sd", &["--cgroup-driver", "systemd"]);
    let mut rs = c.rs.clone();
    let rc = c
        .call(rs.runtime_config(cri::RuntimeConfigRequest {}))
        .expect("RuntimeConfig");
    assert_eq!(
        rc.linux.unwrap().cgroup_driver,
        cri::CgroupDriver::Systemd as i32,
        "kubelet must be told the systemd driver"
    );
    // kubelet's systemd driver names the pod's slice.
    let slice = "kubepods-besteffort-podsd1.slice";
    let mut pc = c.pod_config("sd");
    let linux = pc.linux.as_mut().unwrap();
    linux.cgroup_parent = format!("/kubepods.slice/kubepods-besteffort.slice/{slice}");
    linux.security_context.as_mut().unwrap().namespace_options = Some(cri::NamespaceOption {
        network: cri::NamespaceMode::Node as i32,
        ..Default::default()
    });
    let pod = c.run_pod(&pc);
    let mut cfg = c.container_config("app", "exec sleep 1000");
    cfg.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = c.start(&pod, &pc, cfg);
    let unit = format!("berth-{id}.scope");
    let cg = c.exec_ok(&id, "cat /proc/self/cgroup");
    assert_eq!(
        cg.trim(),
        format!("0::/kubepods.slice/kubepods-besteffort.slice/{slice}/{unit}")
    );
    let p = show(&unit, &["ActiveState", "Slice", "MemoryMax"]);
    assert_eq!(p["ActiveState"], "active", "{p:?}");
    assert_eq!(p["Slice"], slice, "{p:?}");
    assert_eq!(p["MemoryMax"], (64u64 << 20).to_string(), "{p:?}");
    // The container's shim has a scope of its own in the same slice, so
    // it is not left in berthd's unit.
    let shim_unit = format!("berth-shim-{id}.scope");
    let p = show(&shim_unit, &["ActiveState", "Slice"]);
    assert_eq!(p["ActiveState"], "active", "{p:?}");
    assert_eq!(p["Slice"], slice, "{p:?}");
    let shim_pid = fs::read_to_string(
        c.s.dir
            .join(format!("berthd/state/bundles/k8s.io/{id}/shim.pid")),
    )
    .unwrap();
    let shim_cg = fs::read_to_string(format!("/proc/{}/cgroup", shim_pid.trim())).unwrap();
    assert_eq!(
        shim_cg.trim(),
        format!("0::/kubepods.slice/kubepods-besteffort.slice/{slice}/{shim_unit}")
    );
    // UpdateContainerResources goes through systemd too.
    c.call(
        rs.update_container_resources(cri::UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(cri::LinuxContainerResources {
                memory_limit_in_bytes: 96 << 20,
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
    .expect("UpdateContainerResources");
    assert_eq!(
        show(&unit, &["MemoryMax"])["MemoryMax"],
        (96u64 << 20).to_string()
    );
    c.remove_pod(&pod);
    assert_eq!(show(&unit, &["LoadState"])["LoadState"], "not-found");
    // The shim's scope goes with the shim.
    stack::wait_until("the shim's scope to go", 10, || {
        show(&shim_unit, &["LoadState"])["LoadState"] == "not-found"
    });
    c.assert_nothing_left();
}

#[test]
fn an_unprivileged_user_gets_a_scope_from_its_own_manager() {
    use std::os::unix::fs::PermissionsExt;
    let test = "an_unprivileged_user_gets_a_scope_from_its_own_manager";
    if !systemd(test) {
        return;
    }
    // The guest's lingering user (uid 1000): its manager starts at boot.
    let run = Path::new("/run/user/1000");
    let t = std::time::Instant::now();
    while !run.join("systemd/private").exists() || !run.join("bus").exists() {
        if t.elapsed() > std::time::Duration::from_secs(60) {
            skip(
                test,
                "no user manager with a session bus for uid 1000 (a lingering user)",
            );
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let dir = std::env::temp_dir().join(format!("berth-it-sd-user-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let bundle = dir.join("bundle");
    fs::create_dir_all(&bundle).unwrap();
    for d in [&dir, &bundle] {
        std::os::unix::fs::chown(d, Some(1000), Some(1000)).unwrap();
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Output through files: a created container keeps berth's stdio, and a
    // pipe would stay open until it exits.
    let as_user = |args: &[&str]| {
        let (o, e) = (dir.join("out"), dir.join("err"));
        let status = Command::new("setpriv")
            .args(["--reuid", "1000", "--regid", "1000", "--clear-groups"])
            .arg(berth_bin())
            .args(args)
            .env("XDG_RUNTIME_DIR", run)
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus")
            .stdin(std::process::Stdio::null())
            .stdout(fs::File::create(&o).unwrap())
            .stderr(fs::File::create(&e).unwrap())
            .status()
            .expect("setpriv");
        std::process::Output {
            status,
            stdout: fs::read(&o).unwrap_or_default(),
            stderr: fs::read(&e).unwrap_or_default(),
        }
    };
    let b = bundle.to_str().unwrap();
    ok(&as_user(&["spec", "--rootless", "--bundle", b]));
    let cfg = bundle.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&cfg).unwrap()).unwrap();
    v["root"] = json!({"path": busybox_rootfs(), "readonly": true});
    v["process"]["terminal"] = json!(false);
    v["process"]["args"] = json!(["sleep", "1000"]);
    v["linux"]["resources"] = json!({"pids": {"limit": 25}});
    fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    let created = as_user(&["--systemd-cgroup", "create", "--bundle", b, "sdu"]);
    let started = created.status.success().then(|| as_user(&["start", "sdu"]));
    let state = as_user(&["state", "sdu"]);
    let scope = Path::new(
        "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/user.slice/berth-sdu.scope",
    );
    let pids_max = fs::read_to_string(scope.join("pids.max")).unwrap_or_default();
    let deleted = as_user(&["delete", "--force", "sdu"]);
    let _ = fs::remove_dir_all(&dir);
    ok(&created);
    ok(&started.unwrap());
    let st: serde_json::Value = serde_json::from_str(&ok(&state)).unwrap();
    assert_eq!(st["status"], "running");
    // The user's manager made the scope, in its user.slice, with the limit.
    assert_eq!(pids_max.trim(), "25", "no scope at {}", scope.display());
    ok(&deleted);
    assert!(!scope.exists(), "the scope is left after delete");
}
