//! berthd as a Kubernetes CRI runtime, driven over its CRI socket by a
//! generated CRI client as kubelet and crictl drive it: pods with shared
//! namespaces, networking between pods and to host ports, the container
//! lifecycle with exit codes and reasons, ExecSync, CRI logs, security
//! contexts seen from inside, images, and a berthd restart. Each test has its
//! own berthd, directory, CNI network and cgroup parent, and checks that
//! nothing is left.

use std::fs;
use std::time::Duration;

use berth_integration::cri::{CriStack, BUSYBOX, POD_SUBNET};
use berth_integration::stack::wait_until;
use k8s_cri::v1 as cri;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// `cfg` under a 16 MiB memory limit (`tail /dev/zero` is OOM-killed).
fn in_16_mib(mut cfg: cri::ContainerConfig) -> cri::ContainerConfig {
    cfg.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 16 << 20,
            ..Default::default()
        }),
        security_context: None,
    });
    cfg
}

#[test]
fn runtime_answers_version_status_config_and_unknown_ids() {
    let c = CriStack::new("runtime");
    let mut rs = c.rs.clone();
    let v = c.call(rs.version(cri::VersionRequest::default())).unwrap();
    assert_eq!(
        (v.runtime_name.as_str(), v.runtime_api_version.as_str()),
        ("berth", "v1")
    );
    let st = c
        .call(rs.status(cri::StatusRequest { verbose: true }))
        .unwrap();
    let conds = st.status.unwrap().conditions;
    let cond = |t: &str| conds.iter().find(|c| c.r#type == t).map(|c| c.status);
    assert_eq!(cond("RuntimeReady"), Some(true));
    assert_eq!(cond("NetworkReady"), Some(true));
    // The default handler and its name; what is advertised works (the
    // effects are tested below and in the security-context test).
    let names: Vec<&str> = st
        .runtime_handlers
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(names, ["", "berth"]);
    let f = st.runtime_handlers[0].features.unwrap();
    assert!(f.recursive_read_only_mounts);
    // User namespaces where the layers' filesystem takes idmapped mounts
    // (their effects: tests/cri_userns.rs).
    let idmap = std::process::Command::new(berth_integration::manager::sibling("berth-shim"))
        .arg("idmap-check")
        .arg(c.s.dir.join("berthd/root"))
        .status()
        .unwrap()
        .success();
    assert_eq!(f.user_namespaces, idmap);
    assert_eq!(
        st.runtime_handlers[1].features.unwrap().user_namespaces,
        idmap
    );
    let info: serde_json::Value = serde_json::from_str(&st.info["config"]).unwrap();
    assert_eq!(info["cgroupDriver"], "cgroupfs");
    assert!(st.features.unwrap().supplemental_groups_policy);
    let rc = c
        .call(rs.runtime_config(cri::RuntimeConfigRequest {}))
        .unwrap();
    assert_eq!(
        rc.linux.unwrap().cgroup_driver,
        cri::CgroupDriver::Cgroupfs as i32
    );
    // What kubelet leans on: stopping and removing what is not there works.
    let unknown = "0".repeat(64);
    c.call(rs.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: unknown.clone(),
    }))
    .unwrap();
    c.call(rs.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: unknown.clone(),
    }))
    .unwrap();
    c.call(rs.stop_container(cri::StopContainerRequest {
        container_id: unknown.clone(),
        timeout: 1,
    }))
    .unwrap();
    c.call(rs.remove_container(cri::RemoveContainerRequest {
        container_id: unknown.clone(),
    }))
    .unwrap();
    let e = c
        .call(rs.container_status(cri::ContainerStatusRequest {
            container_id: unknown.clone(),
            verbose: false,
        }))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    let e = c
        .call(rs.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: unknown,
            verbose: false,
        }))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    // Exec in an unknown container: no URL.
    let e = c
        .call(rs.exec(cri::ExecRequest {
            container_id: "x".into(),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    // Checkpointing does not exist, and says so.
    let e = c
        .call(rs.checkpoint_container(cri::CheckpointContainerRequest {
            container_id: "x".into(),
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unimplemented);
    assert!(e.message().contains("checkpoint"), "{e}");
    c.assert_nothing_left();
}

#[test]
fn images_by_id_tag_and_digest_with_one_id_for_two_tags() {
    let c = CriStack::new("images");
    let mut is = c.is.clone();
    let list = c
        .call(is.list_images(cri::ListImagesRequest { filter: None }))
        .unwrap()
        .images;
    assert_eq!(list.len(), 1, "{list:?}");
    let img = &list[0];
    assert!(img.id.starts_with("sha256:"), "{}", img.id);
    assert_eq!(img.repo_tags, ["docker.io/berth/busybox:latest"]);
    assert_eq!(img.repo_digests.len(), 1);
    assert!(img.repo_digests[0].starts_with("docker.io/berth/busybox@sha256:"));
    assert_eq!(img.uid, Some(cri::Int64Value { value: 0 }));
    let status = |name: &str| {
        let mut is = c.is.clone();
        c.call(is.image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: name.into(),
                ..Default::default()
            }),
            verbose: false,
        }))
        .unwrap()
        .image
    };
    for name in [
        BUSYBOX,
        "berth/busybox",
        img.id.as_str(),
        &img.id[7..19],
        img.repo_digests[0].as_str(),
    ] {
        assert_eq!(status(name).map(|i| i.id), Some(img.id.clone()), "{name}");
    }
    assert_eq!(status("no/such:image"), None);
    // A second tag: one image, two RepoTags.
    berth_integration::ok(&c.s.ctl(&["-n", "k8s.io", "tag", BUSYBOX, "example.com/other:v2"]));
    let list = c
        .call(is.list_images(cri::ListImagesRequest { filter: None }))
        .unwrap()
        .images;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].repo_tags.len(), 2);
    // Removing by id takes every tag; removing again is fine.
    c.call(is.remove_image(cri::RemoveImageRequest {
        image: Some(cri::ImageSpec {
            image: img.id.clone(),
            ..Default::default()
        }),
    }))
    .unwrap();
    assert_eq!(status(BUSYBOX), None);
    assert_eq!(status("example.com/other:v2"), None);
    c.call(is.remove_image(cri::RemoveImageRequest {
        image: Some(cri::ImageSpec {
            image: img.id.clone(),
            ..Default::default()
        }),
    }))
    .unwrap();
    let fs = c
        .call(is.image_fs_info(cri::ImageFsInfoRequest {}))
        .unwrap();
    assert_eq!(fs.image_filesystems.len(), 1);
}

#[test]
fn a_pods_containers_share_its_ipc_pid_uts_and_network() {
    let c = CriStack::new("shared");
    let mut pc = c.pod_config("web-0");
    pc.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options = Some(cri::NamespaceOption {
        pid: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    });
    pc.dns_config = Some(cri::DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["default.svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    pc.labels = CriStack::labels(&[("app", "web")]);
    let pod = c.run_pod(&pc);
    let st = c.pod_status(&pod);
    assert_eq!(st.state, cri::PodSandboxState::SandboxReady as i32);
    let ip = st.network.unwrap().ip;
    assert!(
        ip.starts_with("10.89.0."),
        "pod ip {ip:?} not in {POD_SUBNET}"
    );
    let a = c.start(
        &pod,
        &pc,
        c.container_config("a", "echo shared > /dev/shm/x; exec sleep 1000"),
    );
    let b = c.start(&pod, &pc, c.container_config("b", "exec sleep 1001"));
    wait_until("a's file in /dev/shm", 10, || {
        c.exec(&b, &["cat", "/dev/shm/x"], 5)
            .is_ok_and(|r| text(&r.stdout) == "shared\n")
    });
    let ns = |id: &str, kind: &str| c.exec_ok(id, &format!("readlink /proc/self/ns/{kind}"));
    for kind in ["ipc", "pid", "uts", "net"] {
        assert_eq!(ns(&a, kind), ns(&b, kind), "{kind} namespace");
    }
    assert_ne!(ns(&a, "mnt"), ns(&b, "mnt"));
    // One PID namespace: b sees a's sleep; the holder is its init.
    let ps = c.exec_ok(&b, "ps -o pid,args");
    assert!(
        ps.contains("sleep 1000") && ps.contains("sleep 1001"),
        "{ps}"
    );
    assert!(ps.lines().any(|l| l.trim_start().starts_with("1 ")), "{ps}");
    assert_eq!(c.exec_ok(&a, "hostname"), "web-0\n");
    let hosts = c.exec_ok(&a, "cat /etc/hosts");
    assert!(hosts.contains(&format!("{ip}\tweb-0")), "{hosts}");
    assert_eq!(
        c.exec_ok(&a, "cat /etc/resolv.conf"),
        "search default.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    );
    let addr = c.exec_ok(&b, "ip -o -4 addr show eth0");
    assert!(addr.contains(&ip), "{addr}");
    // Lists and their filters.
    let mut rs = c.rs.clone();
    let pods = c
        .call(rs.list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                label_selector: CriStack::labels(&[("app", "web")]),
                ..Default::default()
            }),
        }))
        .unwrap()
        .items;
    assert_eq!(pods.len(), 1);
    let none = c
        .call(rs.list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                label_selector: CriStack::labels(&[("app", "db")]),
                ..Default::default()
            }),
        }))
        .unwrap()
        .items;
    assert!(none.is_empty());
    let running = c
        .call(rs.list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: pod.clone(),
                state: Some(cri::ContainerStateValue {
                    state: cri::ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            }),
        }))
        .unwrap()
        .containers;
    assert_eq!(running.len(), 2);
    // The same name twice in a pod is refused.
    let e = c
        .create(&pod, &pc, c.container_config("a", "true"))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e}");
    // Stopping the pod stops its containers; stopping it again is fine.
    c.call(rs.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    }))
    .unwrap();
    assert_eq!(
        c.status(&a).state,
        cri::ContainerState::ContainerExited as i32
    );
    assert_eq!(
        c.pod_status(&pod).state,
        cri::PodSandboxState::SandboxNotready as i32
    );
    assert_eq!(c.holders(), Vec::<i32>::new());
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

#[test]
fn pods_reach_each_other_and_a_host_port_answers_on_the_node() {
    let c = CriStack::new("net");
    let mut pc = c.pod_config("server");
    pc.port_mappings = vec![cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port: 80,
        host_port: 18090,
        host_ip: String::new(),
    }];
    let server = c.run_pod(&pc);
    let ip = c.pod_status(&server).network.unwrap().ip;
    c.start(
        &server,
        &pc,
        c.container_config(
            "web",
            "while true; do echo hello-from-pod | nc -l -p 80; done",
        ),
    );
    let cc = c.pod_config("client");
    let client = c.run_pod(&cc);
    let cl = c.start(&client, &cc, c.container_config("c", "exec sleep 1000"));
    wait_until("the server pod to answer the client pod", 10, || {
        c.exec(&cl, &["nc", "-w", "2", &ip, "80"], 5)
            .is_ok_and(|r| text(&r.stdout) == "hello-from-pod\n")
    });
    // The host port, from the node (the test's network namespace).
    let node = c.s.net.as_ref().unwrap();
    let gw = ip.rsplit_once('.').map(|(n, _)| format!("{n}.1")).unwrap();
    wait_until("the host port to answer on the node", 10, || {
        let o = node.run(&["timeout", "3", "busybox", "nc", &gw, "18090"]);
        String::from_utf8_lossy(&o.stdout) == "hello-from-pod\n"
    });
    c.remove_pod(&server);
    c.remove_pod(&client);
    assert!(
        !node.iptables().iter().any(|l| l.contains("18090")),
        "portmap rules left"
    );
    c.assert_nothing_left();
}

#[test]
fn container_lifecycle_exit_codes_reasons_and_logs() {
    let c = CriStack::new("life");
    let pc = c.pod_config("life");
    let pod = c.run_pod(&pc);
    let log_dir = std::path::PathBuf::from(&pc.log_directory);
    // Completed, with its output in the CRI log at kubelet's path.
    let ok = c.start(
        &pod,
        &pc,
        c.container_config("ok", "echo out; echo err >&2"),
    );
    let st = c.wait_exited(&ok, 10);
    assert_eq!((st.exit_code, st.reason.as_str()), (0, "Completed"));
    assert!(st.started_at > 0 && st.finished_at >= st.started_at && st.created_at > 0);
    assert_eq!(st.log_path, log_dir.join("ok.log").display().to_string());
    let lines = CriStack::log_lines(&log_dir.join("ok.log"));
    assert!(
        lines.contains(&("stdout".into(), "F".into(), "out".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("stderr".into(), "F".into(), "err".into())),
        "{lines:?}"
    );
    // Error, with its exit code.
    let bad = c.start(&pod, &pc, c.container_config("bad", "exit 3"));
    let st = c.wait_exited(&bad, 10);
    assert_eq!((st.exit_code, st.reason.as_str()), (3, "Error"));
    // OOMKilled under a memory limit.
    let oom = c.start(
        &pod,
        &pc,
        in_16_mib(c.container_config("oom", "tail /dev/zero")),
    );
    let st = c.wait_exited(&oom, 30);
    assert_eq!((st.exit_code, st.reason.as_str()), (137, "OOMKilled"));
    // StopContainer: the TERM trap runs within the timeout.
    let trap = c.start(
        &pod,
        &pc,
        c.container_config(
            "trap",
            "trap 'echo bye; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
        ),
    );
    wait_until("the trap container's first line", 10, || {
        fs::read_to_string(log_dir.join("trap.log")).is_ok_and(|l| l.contains("ready"))
    });
    // ReopenContainerLog: the old file moved away, a new one at the path.
    fs::rename(log_dir.join("trap.log"), log_dir.join("trap.log.1")).unwrap();
    let mut rs = c.rs.clone();
    c.call(rs.reopen_container_log(cri::ReopenContainerLogRequest {
        container_id: trap.clone(),
    }))
    .unwrap();
    c.call(rs.stop_container(cri::StopContainerRequest {
        container_id: trap.clone(),
        timeout: 10,
    }))
    .unwrap();
    let st = c.status(&trap);
    assert_eq!(
        (st.state, st.exit_code),
        (cri::ContainerState::ContainerExited as i32, 7)
    );
    let lines = CriStack::log_lines(&log_dir.join("trap.log"));
    assert_eq!(
        lines,
        [("stdout".to_string(), "F".to_string(), "bye".to_string())]
    );
    // A container that ignores TERM is killed after the timeout.
    let stubborn = c.start(
        &pod,
        &pc,
        c.container_config("stubborn", "trap '' TERM; while true; do sleep 0.1; done"),
    );
    std::thread::sleep(Duration::from_millis(300));
    c.call(rs.stop_container(cri::StopContainerRequest {
        container_id: stubborn.clone(),
        timeout: 1,
    }))
    .unwrap();
    assert_eq!(c.status(&stubborn).exit_code, 137);
    // A created container is in the created state; removing works in any state.
    let created = c
        .create(&pod, &pc, c.container_config("created", "true"))
        .unwrap();
    assert_eq!(
        c.status(&created).state,
        cri::ContainerState::ContainerCreated as i32
    );
    for id in [&ok, &bad, &oom, &trap, &stubborn, &created] {
        c.call(rs.remove_container(cri::RemoveContainerRequest {
            container_id: id.to_string(),
        }))
        .unwrap();
    }
    let e = c
        .call(rs.container_status(cri::ContainerStatusRequest {
            container_id: ok.clone(),
            verbose: false,
        }))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

#[test]
fn exec_sync_output_exit_code_and_timeout() {
    let c = CriStack::new("exec");
    let pc = c.pod_config("exec");
    let pod = c.run_pod(&pc);
    let id = c.start(&pod, &pc, c.container_config("sleeper", "exec sleep 1000"));
    let r = c
        .exec(&id, &["sh", "-c", "echo out; echo err >&2; exit 4"], 10)
        .unwrap();
    assert_eq!(
        (text(&r.stdout), text(&r.stderr), r.exit_code),
        ("out\n".into(), "err\n".into(), 4)
    );
    // Past its timeout the command is killed and the call says so.
    let t = std::time::Instant::now();
    let e = c.exec(&id, &["sleep", "30"], 1).unwrap_err();
    assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
    let ps = c.exec_ok(&id, "ps -o args");
    assert!(
        !ps.contains("sleep 30"),
        "the timed-out command still runs: {ps}"
    );
    // A missing command.
    let r = c.exec(&id, &["no-such-command"], 5);
    assert!(r.is_err() || r.unwrap().exit_code != 0);
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

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

#[test]
fn a_runtime_handler_from_the_config_runs_its_pods_containers() {
    let Some(runc) = ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("SKIP a_runtime_handler_from_the_config_runs_its_pods_containers: no runc");
        return;
    };
    let mut c = CriStack::new("handler");
    c.s.extra_args = vec!["--runtime-handler".into(), format!("runc={runc}")];
    c.s.d.take().unwrap().kill();
    c.s.start();
    c.reconnect();
    let mut rs = c.rs.clone();
    let st = c
        .call(rs.status(cri::StatusRequest { verbose: false }))
        .unwrap();
    let h = st
        .runtime_handlers
        .iter()
        .find(|h| h.name == "runc")
        .expect("runc listed");
    // runc's own `features` say whether it has rro; Berth passes that on.
    let rro = String::from_utf8_lossy(
        &std::process::Command::new(runc)
            .arg("features")
            .output()
            .unwrap()
            .stdout,
    )
    .contains("\"rro\"");
    assert_eq!(h.features.unwrap().recursive_read_only_mounts, rro);
    let pc = c.pod_config("handler");
    let pod = c
        .call(rs.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pc.clone()),
            runtime_handler: "runc".into(),
        }))
        .expect("RunPodSandbox with the runc handler")
        .pod_sandbox_id;
    let id = c.start(&pod, &pc, c.container_config("by-runc", "exec sleep 1000"));
    assert_eq!(c.exec_ok(&id, "echo through runc"), "through runc\n");
    let info = c
        .call(rs.container_status(cri::ContainerStatusRequest {
            container_id: id.clone(),
            verbose: true,
        }))
        .unwrap()
        .info;
    let info: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
    assert_eq!(info["runtime"], runc);
    // runc keeps its own state for the container under the runtime root.
    let listed = std::process::Command::new(runc)
        .arg("--root")
        .arg(c.s.dir.join("berthd/state/runtime/k8s.io"))
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert!(
        text(&listed.stdout).contains(&id),
        "{}",
        text(&listed.stderr)
    );
    // An unknown handler is refused.
    let e = c
        .call(rs.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(c.pod_config("kata")),
            runtime_handler: "kata".into(),
        }))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

#[test]
fn berthd_killed_and_restarted_finds_pods_and_containers() {
    let mut c = CriStack::new("restart");
    let pc = c.pod_config("keep");
    let pod = c.run_pod(&pc);
    let id = c.start(&pod, &pc, c.container_config("app", "exec sleep 1000"));
    let gone = c.start(&pod, &pc, c.container_config("gone", "sleep 1; exit 5"));
    // OOM-killed while berthd is away: the reason survives the restart.
    let oom = c.start(
        &pod,
        &pc,
        in_16_mib(c.container_config("oom", "sleep 0.5; tail /dev/zero")),
    );
    c.s.d.take().unwrap().kill();
    std::thread::sleep(Duration::from_millis(1500));
    c.s.start();
    c.reconnect();
    assert_eq!(
        c.pod_status(&pod).state,
        cri::PodSandboxState::SandboxReady as i32
    );
    assert_eq!(
        c.status(&id).state,
        cri::ContainerState::ContainerRunning as i32
    );
    let st = c.wait_exited(&gone, 10);
    assert_eq!((st.exit_code, st.reason.as_str()), (5, "Error"));
    let st = c.wait_exited(&oom, 30);
    assert_eq!((st.exit_code, st.reason.as_str()), (137, "OOMKilled"));
    assert_eq!(c.exec_ok(&id, "hostname"), "keep\n");
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

#[test]
fn pulls_go_through_registry_mirrors_and_a_host_network_pod_runs_the_image() {
    let mut c = CriStack::in_host_net("mirror");
    let layout = c.s.dir.join("layout");
    fs::create_dir_all(&layout).unwrap();
    berth_integration::ok(
        &std::process::Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-xf")
            .arg(c.s.dir.join("busybox.tar"))
            .output()
            .unwrap(),
    );
    let reg = berth_integration::manager::Registry::start(&c.s.dir.join("reg"), None);
    for dest in ["e2e-test-images/busybox:1.29-2", "library/busybox:mirrored"] {
        berth_integration::ok(
            &std::process::Command::new("skopeo")
                .args(["copy", "--quiet", "--dest-tls-verify=false"])
                .arg(format!("oci:{}:latest", layout.display()))
                .arg(format!("docker://{}/{dest}", reg.host))
                .output()
                .unwrap(),
        );
    }
    // registry.k8s.io and docker.io served by the loopback registry.
    let config = c.s.dir.join("berthd.toml");
    fs::write(
        &config,
        format!(
            "registry_mirrors = [\"http://{h}\"]\n[registries.\"registry.k8s.io\"]\nmirrors = [\"http://{h}\"]\n",
            h = reg.host
        ),
    )
    .unwrap();
    c.s.extra_args = vec!["--config".into(), config.display().to_string()];
    drop(c.s.d.take());
    c.s.start();
    c.reconnect();
    let pull = |name: &str| {
        let mut is = c.is.clone();
        c.call(is.pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: name.into(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        }))
    };
    let k8s = "registry.k8s.io/e2e-test-images/busybox:1.29-2";
    let id = pull(k8s)
        .expect("pull through the registry.k8s.io mirror")
        .image_ref;
    assert!(id.starts_with("sha256:"), "{id}");
    let id2 = pull("busybox:mirrored")
        .expect("pull through the docker.io mirror")
        .image_ref;
    assert_eq!(id, id2, "the same content is the same image");
    let mut is = c.is.clone();
    let img = c
        .call(is.image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: id.clone(),
                ..Default::default()
            }),
            verbose: false,
        }))
        .unwrap()
        .image
        .unwrap();
    // The canonical names, not the mirror's.
    for name in [k8s, "docker.io/library/busybox:mirrored"] {
        assert!(
            img.repo_tags.iter().any(|t| t == name),
            "{:?}",
            img.repo_tags
        );
    }
    assert!(
        !img.repo_tags.iter().any(|t| t.contains("127.0.0.1")),
        "{:?}",
        img.repo_tags
    );
    // A pod on the node's network runs it.
    let mut pc = c.pod_config("hostnet");
    pc.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options = Some(cri::NamespaceOption {
        network: cri::NamespaceMode::Node as i32,
        ..Default::default()
    });
    let pod = c.run_pod(&pc);
    assert_eq!(
        c.pod_status(&pod).state,
        cri::PodSandboxState::SandboxReady as i32
    );
    let mut cfg = c.container_config("app", "exec sleep 1000");
    cfg.image = Some(cri::ImageSpec {
        image: k8s.into(),
        ..Default::default()
    });
    let app = c.start(&pod, &pc, cfg);
    let host_net = fs::read_link("/proc/self/ns/net")
        .unwrap()
        .display()
        .to_string();
    assert_eq!(
        c.exec_ok(&app, "readlink /proc/self/ns/net").trim(),
        host_net
    );
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(c.exec_ok(&app, "hostname"), host_name);
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

/// A gRPC client as Go's before 1.31 and Python's grpcio are: the socket's
/// path as the HTTP/2 `:authority` (percent-encoded, as grpcio sends it).
/// h2 alone resets such a stream; berthd's CRI socket answers it.
#[test]
fn an_old_client_sending_the_socket_path_as_authority_is_answered() {
    use std::io::{Read, Write};
    let c = CriStack::new("authority");
    let sock = c.socket();
    for authority in [
        sock.display().to_string(),
        sock.display()
            .to_string()
            .trim_start_matches('/')
            .replace('/', "%2F"),
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let frame = |kind: u8, flags: u8, stream: u32, payload: &[u8]| {
            let mut f = u32::try_from(payload.len()).unwrap().to_be_bytes()[1..].to_vec();
            f.extend_from_slice(&[kind, flags]);
            f.extend_from_slice(&stream.to_be_bytes());
            f.extend_from_slice(payload);
            f
        };
        let block = loona_hpack::Encoder::new().encode([
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", b"/runtime.v1.RuntimeService/Version"),
            (b":authority", authority.as_bytes()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ]);
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame(0x4, 0, 0, &[]));
        out.extend(frame(0x1, 0x4, 1, &block));
        // An empty VersionRequest: uncompressed, length 0.
        out.extend(frame(0x0, 0x1, 1, &[0, 0, 0, 0, 0]));
        s.write_all(&out).unwrap();
        // Read frames until the stream ends or is reset.
        let mut dec = loona_hpack::Decoder::new();
        let (mut headers, mut data, mut reset) = (Vec::new(), Vec::new(), false);
        loop {
            let mut h = [0u8; 9];
            if s.read_exact(&mut h).is_err() {
                break;
            }
            let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
            let mut p = vec![0u8; len];
            s.read_exact(&mut p).unwrap();
            match h[3] {
                0x1 => headers.extend(dec.decode(&p).unwrap()),
                0x0 if h[8] == 1 => data.extend_from_slice(&p),
                0x3 => {
                    reset = true;
                    break;
                }
                _ => {}
            }
            if h[3] == 0x1 && h[4] & 0x1 != 0 {
                break;
            }
        }
        assert!(!reset, "{authority}: the stream was reset");
        let has = |n: &str, v: &str| {
            headers
                .iter()
                .any(|(a, b)| a == n.as_bytes() && b == v.as_bytes())
        };
        assert!(
            has(":status", "200") && has("grpc-status", "0"),
            "{authority}: {headers:?}"
        );
        assert!(
            String::from_utf8_lossy(&data).contains("berth"),
            "{authority}: {data:?}"
        );
    }
}
