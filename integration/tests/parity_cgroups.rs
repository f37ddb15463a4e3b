//! cgroups as runc handles them, each case by its effect under berth and
//! runc: hierarchies joined on a hybrid host, cpuset values inherited
//! through empty levels, sub-cgroups removed on delete, a frozen cgroup
//! refused, `update --memory -1`, and device nodes not allowed by
//! themselves. v1 cases say SKIP on a pure cgroup v2 host.

use std::fs;
use std::path::{Path, PathBuf};

use berth_integration::parity::*;
use berth_integration::*;
use serde_json::json;

/// True on a v1 or hybrid host (a v1 memory hierarchy is mounted).
fn v1(test: &str) -> bool {
    let yes = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();
    if !yes {
        skip(test, "no cgroup v1 hierarchies here (pure cgroup v2)");
    }
    yes
}

/// A cgroup directory the test made in a v1 hierarchy, removed (deepest
/// first) when dropped.
struct OwnCgroup(Vec<PathBuf>);

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        for top in &self.0 {
            let mut all = vec![top.clone()];
            let mut i = 0;
            while i < all.len() {
                if let Ok(rd) = fs::read_dir(&all[i]) {
                    all.extend(
                        rd.flatten()
                            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                            .map(|e| e.path()),
                    );
                }
                i += 1;
            }
            for d in all.iter().rev() {
                let _ = fs::write(d.join("freezer.state"), "THAWED");
                let _ = fs::remove_dir(d);
            }
        }
    }
}

impl OwnCgroup {
    /// `path` in every mounted hierarchy: a runtime that made parents for a
    /// container leaves them (runc removes only the container's own level).
    fn everywhere(path: &str) -> OwnCgroup {
        let mut dirs = Vec::new();
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                dirs.push(h.path().join(path.trim_start_matches('/')));
            }
        }
        dirs.push(PathBuf::from("/sys/fs/cgroup").join(path.trim_start_matches('/')));
        OwnCgroup(dirs)
    }
}

fn cgroup_path(tag: &str) -> String {
    format!("/berth-par-{tag}-{}", std::process::id())
}

#[test]
fn a_hybrid_hosts_hierarchies_are_all_joined_as_runc_joins_them() {
    let test = "a_hybrid_hosts_hierarchies_are_all_joined_as_runc_joins_them";
    if !Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        skip(
            test,
            "not a hybrid host (no cgroup2 at /sys/fs/cgroup/unified)",
        );
        return;
    }
    let path = cgroup_path("join");
    let _own = OwnCgroup::everywhere(&path);
    let make = || {
        let mut c = Ctx::new("par-join", &["cat", "/proc/self/cgroup"]);
        c.config["linux"]["cgroupsPath"] = json!(path);
        c
    };
    run_alike(test, make, |rt, out| {
        assert!(out.contains(&format!("\n0::{path}\n")), "{rt}: {out}");
        assert!(
            out.contains(&format!(":name=systemd:{path}\n")),
            "{rt}: {out}"
        );
    });
    // An exec'd process joins them too.
    for rt in runtimes(test) {
        let mut c = Ctx::new("par-join-exec", &["sleep", "1000"]);
        c.config["linux"]["cgroupsPath"] = json!(path);
        let id = start_detached(&c, &rt);
        let out = ok(&c.with_runtime(&rt, &["exec", &id, "cat", "/proc/self/cgroup"]));
        assert!(out.contains(&format!("\n0::{path}\n")), "{rt}: {out}");
        ok(&c.with_runtime(&rt, &["delete", "--force", &id]));
        assert!(
            !Path::new(&format!("/sys/fs/cgroup/unified{path}")).exists(),
            "{rt} left its cgroup2 directory"
        );
    }
}

#[test]
fn empty_cpuset_levels_made_by_others_are_filled_from_above() {
    let test = "empty_cpuset_levels_made_by_others_are_filled_from_above";
    if !v1(test) || !Path::new("/sys/fs/cgroup/cpuset/cpuset.cpus").exists() {
        return;
    }
    let path = cgroup_path("cpuset");
    let top = PathBuf::from(format!("/sys/fs/cgroup/cpuset{path}"));
    let _own = OwnCgroup::everywhere(&path);
    // Somebody's level, left with empty cpus and mems (as a fresh one is).
    fs::create_dir(&top).unwrap();
    assert_eq!(
        fs::read_to_string(top.join("cpuset.cpus")).unwrap().trim(),
        ""
    );
    let make = || {
        let mut c = Ctx::new("par-cpuset", &["true"]);
        c.config["linux"]["cgroupsPath"] = json!(format!("{path}/mid/leaf"));
        c
    };
    run_alike(test, make, |_, _| {});
    let cpus = fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.cpus").unwrap();
    assert_eq!(fs::read_to_string(top.join("cpuset.cpus")).unwrap(), cpus);
}

#[test]
fn delete_force_removes_the_sub_cgroups_the_container_made() {
    let test = "delete_force_removes_the_sub_cgroups_the_container_made";
    if !v1(test) {
        return;
    }
    for rt in runtimes(test) {
        let path = cgroup_path(&format!("sub-{}", name_of(&rt)));
        let _own = OwnCgroup::everywhere(&path);
        let mut c = Ctx::new("par-sub", &["sh", "-c", "sleep 1000 & sleep 1000"]);
        c.config["linux"]["cgroupsPath"] = json!(path);
        let id = start_detached(&c, &rt);
        // What a container with its own cgroup manager does: a child group,
        // two deep, with one of its processes in it.
        let mem = PathBuf::from(format!("/sys/fs/cgroup/memory{path}"));
        let sub = mem.join("worker/inner");
        fs::create_dir_all(&sub).unwrap();
        let procs = fs::read_to_string(mem.join("cgroup.procs")).unwrap();
        let child = procs.lines().last().unwrap().to_string();
        fs::write(sub.join("cgroup.procs"), &child).unwrap();
        // ps sees it, as runc's does.
        let ps = ok(&c.with_runtime(&rt, &["ps", "--format", "json", &id]));
        assert!(ps.contains(&child), "{rt}: ps {ps} lacks {child}");
        let out = c.with_runtime(&rt, &["delete", "--force", &id]);
        assert!(out.status.success(), "{rt}: {}", stderr(&out));
        assert!(!mem.exists(), "{rt} left {}", mem.display());
    }
}

#[test]
fn a_frozen_cgroup_is_refused() {
    let test = "a_frozen_cgroup_is_refused";
    if !v1(test) || !Path::new("/sys/fs/cgroup/freezer/freezer.state").exists() {
        return;
    }
    for rt in runtimes(test) {
        let path = cgroup_path(&format!("frozen-{}", name_of(&rt)));
        let dir = PathBuf::from(format!("/sys/fs/cgroup/freezer{path}"));
        let _own = OwnCgroup::everywhere(&path);
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("freezer.state"), "FROZEN").unwrap();
        let mut c = Ctx::new("par-frozen", &["true"]);
        c.config["linux"]["cgroupsPath"] = json!(path);
        let id = c.id_for(&rt);
        let b = c.bundle.to_str().unwrap().to_string();
        let out = c.with_runtime(&rt, &["create", "--bundle", &b, &id]);
        assert!(!out.status.success(), "{rt} created into a frozen cgroup");
        assert!(
            stderr(&out).contains("container's cgroup unexpectedly frozen"),
            "{rt}: {}",
            stderr(&out)
        );
        let _ = c.with_runtime(&rt, &["delete", "--force", &id]);
    }
}

#[test]
fn update_memory_minus_one_lifts_the_swap_limit_too() {
    let test = "update_memory_minus_one_lifts_the_swap_limit_too";
    if !v1(test) || !Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        skip(test, "no v1 swap accounting (memory.memsw.*)");
        return;
    }
    for rt in runtimes(test) {
        let path = cgroup_path(&format!("mem-{}", name_of(&rt)));
        let _own = OwnCgroup::everywhere(&path);
        let mut c = Ctx::new("par-mem", &["sleep", "1000"]);
        c.config["linux"]["cgroupsPath"] = json!(path);
        c.config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20, "swap": 64 << 20});
        let id = start_detached(&c, &rt);
        let out = c.with_runtime(&rt, &["update", "--memory", "-1", &id]);
        assert!(out.status.success(), "{rt}: {}", stderr(&out));
        let dir = PathBuf::from(format!("/sys/fs/cgroup/memory{path}"));
        let read = |f: &str| {
            fs::read_to_string(dir.join(f))
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap()
        };
        assert!(read("memory.limit_in_bytes") > 1 << 60, "{rt}");
        assert!(read("memory.memsw.limit_in_bytes") > 1 << 60, "{rt}");
        ok(&c.with_runtime(&rt, &["delete", "--force", &id]));
    }
}

#[test]
fn device_nodes_are_allowed_only_by_the_device_rules() {
    let test = "device_nodes_are_allowed_only_by_the_device_rules";
    if !Path::new("/dev/fuse").exists() {
        skip(test, "no /dev/fuse on this host");
        return;
    }
    let open_fuse = "exec 3</dev/fuse && echo opened";
    // The node exists in the container; the default rules deny everything
    // but runc's standard devices.
    let make = |allow: bool| {
        move || {
            let mut c = Ctx::new("par-dev", &["sh", "-c", open_fuse]);
            c.config["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c",
                "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}]);
            if allow {
                c.config["linux"]["resources"]["devices"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}));
            }
            c
        }
    };
    for rt in runtimes(test) {
        let c = make(false)();
        let out = c.run_with(&rt);
        assert!(
            !out.status.success(),
            "{rt}: /dev/fuse opened without a rule"
        );
        assert!(
            stderr(&out).contains("Operation not permitted"),
            "{rt}: {}",
            stderr(&out)
        );
    }
    run_alike(test, make(true), |rt, out| {
        assert_eq!(out.trim(), "opened", "{rt}")
    });
}

#[test]
fn update_leaves_the_device_rules_as_created() {
    let test = "update_leaves_the_device_rules_as_created";
    for rt in runtimes(test) {
        let path = cgroup_path(&format!("upd-{}", name_of(&rt)));
        let _own = OwnCgroup::everywhere(&path);
        let mut c = Ctx::new("par-upddev", &["sleep", "1000"]);
        c.config["linux"]["cgroupsPath"] = json!(path);
        let id = start_detached(&c, &rt);
        // containerd sends the whole resources to change one limit; the
        // device list (an access string the kernel would refuse, too) is
        // not applied.
        let r = c.dir.join("res.json");
        fs::write(
            &r,
            json!({"devices": [{"allow": false, "access": "rwa"}], "pids": {"limit": 50}})
                .to_string(),
        )
        .unwrap();
        let out = c.with_runtime(&rt, &["update", "-r", r.to_str().unwrap(), &id]);
        assert!(out.status.success(), "{rt}: {}", stderr(&out));
        let out = ok(&c.with_runtime(
            &rt,
            &["exec", &id, "sh", "-c", "echo x > /dev/null && echo usable"],
        ));
        assert_eq!(out.trim(), "usable", "{rt}");
        let name = path.trim_start_matches('/');
        let max = cgroup_dirs_named(name)
            .into_iter()
            .map(|d| d.join("pids.max"))
            .find(|f| f.exists())
            .map(|f| fs::read_to_string(f).unwrap());
        assert_eq!(max.as_deref().map(str::trim), Some("50"), "{rt}");
        ok(&c.with_runtime(&rt, &["delete", "--force", &id]));
    }
}
