//! Security contexts through the CRI, seen from inside the container: users
//! and groups, capabilities, no_new_privs, seccomp, read-only roots,
//! recursive read-only mounts and the supplemental-groups policy.

use berth_integration::cri::{text, CriStack, BUSYBOX};
use k8s_cri::v1 as cri;
use std::fs;

#[test]
fn security_context_effects_are_seen_inside() {
    let c = CriStack::new("secctx");
    let pc = c.pod_config("sec");
    let pod = c.run_pod(&pc);
    let mut cfg = c.container_config("locked", "exec sleep 1000");
    cfg.linux = Some(cri::LinuxContainerConfig {
        resources: None,
        security_context: Some(cri::LinuxContainerSecurityContext {
            run_as_user: Some(cri::Int64Value { value: 1000 }),
            run_as_group: Some(cri::Int64Value { value: 2000 }),
            supplemental_groups: vec![3000],
            readonly_rootfs: true,
            no_new_privs: true,
            capabilities: Some(cri::Capability {
                drop_capabilities: vec!["ALL".into()],
                ..Default::default()
            }),
            seccomp: Some(cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        }),
    });
    let id = c.start(&pod, &pc, cfg);
    assert_eq!(
        c.exec_ok(&id, "id -u; id -g; id -G"),
        "1000\n2000\n2000 3000\n"
    );
    let r = c.exec(&id, &["touch", "/x"], 5).unwrap();
    assert_ne!(r.exit_code, 0);
    assert!(
        text(&r.stderr).contains("Read-only file system"),
        "{}",
        text(&r.stderr)
    );
    let caps = c.exec_ok(&id, "grep CapBnd /proc/self/status");
    assert_eq!(caps.trim(), "CapBnd:\t0000000000000000");
    assert_eq!(
        c.exec_ok(&id, "grep NoNewPrivs /proc/self/status").trim(),
        "NoNewPrivs:\t1"
    );
    // RuntimeDefault refuses unshare (a user namespace needs no capability).
    let r = c.exec(&id, &["unshare", "-U", "true"], 5).unwrap();
    assert_ne!(r.exit_code, 0, "unshare ran under RuntimeDefault");
    assert!(
        text(&r.stderr).contains("not permitted"),
        "{}",
        text(&r.stderr)
    );
    // Unconfined (kubelet's default): the same unshare works.
    let free = c.start(&pod, &pc, c.container_config("free", "exec sleep 1000"));
    assert_eq!(
        c.exec(&free, &["unshare", "-U", "true"], 5)
            .unwrap()
            .exit_code,
        0
    );
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

#[test]
fn recursive_read_only_mounts_and_the_groups_policy_take_effect() {
    let c = CriStack::new("rro");
    let pc = c.pod_config("rro");
    let pod = c.run_pod(&pc);
    // A host directory with a tmpfs under it: read-only reaches the
    // submount only when recursive.
    let host = c.s.dir.join("vol");
    let sub = Tmpfs::at(host.join("sub"));
    let mount = |path: &str, rro: bool| cri::Mount {
        container_path: path.into(),
        host_path: host.display().to_string(),
        readonly: true,
        recursive_read_only: rro,
        ..Default::default()
    };
    let mut cfg = c.container_config("mounts", "exec sleep 1000");
    cfg.mounts = vec![mount("/ro", false), mount("/rro", true)];
    let id = c.start(&pod, &pc, cfg);
    c.exec_ok(&id, "touch /ro/sub/written");
    for path in ["/ro/top", "/rro/top", "/rro/sub/refused"] {
        let r = c.exec(&id, &["touch", path], 5).unwrap();
        assert!(
            text(&r.stderr).contains("Read-only file system"),
            "{path}: {}",
            text(&r.stderr)
        );
    }
    assert!(sub.0.join("written").exists());
    // Recursive read-only with a propagation or without readonly: refused.
    let mut bad = c.container_config("bad", "true");
    bad.mounts = vec![cri::Mount {
        propagation: cri::MountPropagation::PropagationHostToContainer as i32,
        ..mount("/x", true)
    }];
    assert_eq!(
        c.create(&pod, &pc, bad).unwrap_err().code(),
        tonic::Code::InvalidArgument
    );

    // An image whose /etc/group puts root in group 50000.
    c.s.ctl_ok(&[
        "-n",
        "k8s.io",
        "run",
        "--name",
        "grp",
        "--net",
        "none",
        BUSYBOX,
        "sh",
        "-c",
        "echo wheel:x:50000:root >> /etc/group",
    ]);
    c.s.ctl_ok(&["-n", "k8s.io", "commit", "grp", "berth/groups:latest"]);
    c.s.ctl_ok(&["-n", "k8s.io", "rm", "grp"]);
    let groups = |name: &str, policy: cri::SupplementalGroupsPolicy| {
        let mut cfg = c.container_config(name, "exec sleep 1000");
        cfg.image = Some(cri::ImageSpec {
            image: "berth/groups:latest".into(),
            ..Default::default()
        });
        cfg.linux = Some(cri::LinuxContainerConfig {
            resources: None,
            security_context: Some(cri::LinuxContainerSecurityContext {
                supplemental_groups: vec![1234],
                supplemental_groups_policy: policy as i32,
                ..Default::default()
            }),
        });
        let id = c.start(&pod, &pc, cfg);
        let mut reported = c
            .status(&id)
            .user
            .unwrap()
            .linux
            .unwrap()
            .supplemental_groups;
        reported.sort();
        (c.exec_ok(&id, "id -G"), reported)
    };
    assert_eq!(
        groups("merge", cri::SupplementalGroupsPolicy::Merge),
        ("0 1234 50000\n".to_string(), vec![0, 1234, 50000])
    );
    assert_eq!(
        groups("strict", cri::SupplementalGroupsPolicy::Strict),
        ("0 1234\n".to_string(), vec![0, 1234])
    );
    c.remove_pod(&pod);
    drop(sub);
    c.assert_nothing_left();
}

/// A tmpfs mounted at `path` for a test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn at(path: std::path::PathBuf) -> Tmpfs {
        fs::create_dir_all(&path).unwrap();
        berth_integration::ok(
            &std::process::Command::new("mount")
                .args(["-t", "tmpfs", "tmpfs"])
                .arg(&path)
                .output()
                .unwrap(),
        );
        Tmpfs(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
