//! User namespaces for CRI pods (`userns_options` POD, kubelet's
//! `hostUsers: false`): the pod's root is an unprivileged host id, its
//! containers share the pod's user namespace, the image's files are owned by
//! the pod's root through idmapped layers, and a volume with id mappings is
//! idmapped the same way. Each test has its own berthd and checks that
//! nothing is left.

use std::fs;
use std::os::unix::fs::MetadataExt;

use berth_integration::cri::CriStack;
use k8s_cri::v1 as cri;

/// The mapping critest uses: the pod's 0..100000 are the host's 1000..101000.
fn mapping() -> Vec<cri::IdMapping> {
    vec![cri::IdMapping {
        container_id: 0,
        host_id: 1000,
        length: 100000,
    }]
}

fn namespace_options(pc: &mut cri::PodSandboxConfig) -> &mut cri::NamespaceOption {
    pc.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options
        .as_mut()
        .unwrap()
}

fn with_userns(mut pc: cri::PodSandboxConfig, u: cri::UserNamespace) -> cri::PodSandboxConfig {
    namespace_options(&mut pc).userns_options = Some(u);
    pc
}

fn pod_userns() -> cri::UserNamespace {
    cri::UserNamespace {
        mode: cri::NamespaceMode::Pod as i32,
        uids: mapping(),
        gids: mapping(),
    }
}

/// Whether berthd advertises user namespaces for its default handler (it
/// does where the layers' filesystem takes idmapped mounts).
fn offers_userns(c: &CriStack) -> bool {
    let mut rs = c.rs.clone();
    let st = c
        .call(rs.status(cri::StatusRequest { verbose: false }))
        .expect("Status");
    st.runtime_handlers
        .iter()
        .find(|h| h.name.is_empty())
        .and_then(|h| h.features)
        .is_some_and(|f| f.user_namespaces)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn a_pod_with_a_user_namespace_maps_root_and_owns_its_rootfs_and_volumes() {
    let c = CriStack::new("userns");
    if !offers_userns(&c) {
        eprintln!("SKIP a_pod_with_a_user_namespace_maps_root_and_owns_its_rootfs_and_volumes: berthd does not offer user namespaces here (no idmapped mounts on its root's filesystem)");
        return;
    }
    // A volume whose files root owns on the host.
    let vol = c.s.dir.join("volume");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("from-host"), "x").unwrap();
    let pc = with_userns(c.pod_config("upod"), pod_userns());
    let pod = c.run_pod(&pc);
    assert!(
        !c.pod_status(&pod)
            .network
            .map(|n| n.ip)
            .unwrap_or_default()
            .is_empty(),
        "the pod has no IP: CNI did not set up its network namespace"
    );
    let mut cfg = c.container_config("a", "exec sleep 1000");
    cfg.mounts = vec![cri::Mount {
        container_path: "/data".into(),
        host_path: vol.display().to_string(),
        uid_mappings: mapping(),
        gid_mappings: mapping(),
        ..Default::default()
    }];
    let a = c.start(&pod, &pc, cfg);
    // What critest's spec reads, and the process's ids inside.
    assert_eq!(
        one_line(&c.exec_ok(&a, "cat /proc/self/uid_map")),
        "0 1000 100000"
    );
    assert_eq!(
        one_line(&c.exec_ok(&a, "cat /proc/self/gid_map")),
        "0 1000 100000"
    );
    assert_eq!(c.exec_ok(&a, "id -u; id -g"), "0\n0\n");
    // The image's files are root's inside (idmapped layers), and what the
    // container's root writes is the mapped root's on the host.
    assert_eq!(c.exec_ok(&a, "stat -c %u:%g /bin/busybox /"), "0:0\n0:0\n");
    c.exec_ok(&a, "echo hi > /made-inside && touch /etc/changed");
    let made = find_file(&c.s.dir.join("berthd/root"), "made-inside")
        .expect("the container's new file in its snapshot");
    let m = fs::metadata(&made).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1000), "{}", made.display());
    // The pod's namespaces are its own user namespace's: hostname, mqueue,
    // sysfs of its network, /dev/shm.
    assert_eq!(c.exec_ok(&a, "hostname"), "upod\n");
    c.exec_ok(&a, "grep -q ' /dev/mqueue mqueue ' /proc/mounts");
    c.exec_ok(&a, "test -e /sys/class/net/eth0");
    c.exec_ok(&a, "touch /dev/shm/ok");
    // The volume: root's file on the host is root's inside, and back.
    assert_eq!(c.exec_ok(&a, "stat -c %u:%g /data/from-host"), "0:0\n");
    c.exec_ok(&a, "touch /data/from-pod");
    let m = fs::metadata(vol.join("from-pod")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    // A second container joins the same user and IPC namespaces.
    let b = c.start(&pod, &pc, c.container_config("b", "exec sleep 1000"));
    let ns = |id: &str| {
        c.exec_ok(
            id,
            "readlink /proc/self/ns/user; readlink /proc/self/ns/ipc",
        )
    };
    assert_eq!(ns(&a), ns(&b));
    assert_eq!(
        one_line(&c.exec_ok(&b, "cat /proc/self/uid_map")),
        "0 1000 100000"
    );
    // Root of the pod is not the host's root: the host's files stay closed.
    let r = c
        .exec(
            &b,
            &["sh", "-c", "echo 1 > /proc/sys/kernel/ns_last_pid"],
            5,
        )
        .unwrap();
    assert_ne!(r.exit_code, 0, "the pod's root wrote a host sysctl");
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            if let Some(f) = find_file(&p, name) {
                return Some(f);
            }
        } else if e.file_name() == name {
            return Some(p);
        }
    }
    None
}

#[test]
fn user_namespace_modes_and_mappings_a_pod_cannot_have_are_refused() {
    let c = CriStack::new("userns-bad");
    let m = |cid: u32| cri::IdMapping {
        container_id: cid,
        host_id: 1000,
        length: 100000,
    };
    let cases = [
        (
            cri::UserNamespace {
                mode: cri::NamespaceMode::Container as i32,
                ..Default::default()
            },
            "CONTAINER",
        ),
        (
            cri::UserNamespace {
                mode: cri::NamespaceMode::Target as i32,
                ..Default::default()
            },
            "TARGET",
        ),
        (
            cri::UserNamespace {
                mode: cri::NamespaceMode::Pod as i32,
                uids: vec![m(0), m(0)],
                gids: vec![m(0), m(0)],
            },
            "exactly one",
        ),
        (
            cri::UserNamespace {
                mode: cri::NamespaceMode::Pod as i32,
                uids: vec![m(1)],
                gids: vec![m(1)],
            },
            "must map root",
        ),
    ];
    for (i, (u, why)) in cases.into_iter().enumerate() {
        let pc = with_userns(c.pod_config(&format!("bad{i}")), u);
        let mut rs = c.rs.clone();
        let e = c
            .call(rs.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(pc),
                runtime_handler: String::new(),
            }))
            .expect_err("RunPodSandbox took a user namespace it cannot have");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(why), "{}", e.message());
    }
    // NODE is the host's: a plain pod.
    let pc = with_userns(
        c.pod_config("node"),
        cri::UserNamespace {
            mode: cri::NamespaceMode::Node as i32,
            ..Default::default()
        },
    );
    let pod = c.run_pod(&pc);
    let id = c.start(&pod, &pc, c.container_config("n", "exec sleep 1000"));
    assert_eq!(
        one_line(&c.exec_ok(&id, "cat /proc/self/uid_map")),
        "0 0 4294967295"
    );
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

#[test]
fn a_user_namespace_pod_sharing_its_pid_namespace_runs_a_container_to_its_exit() {
    let c = CriStack::new("userns-pid");
    if !offers_userns(&c) {
        eprintln!("SKIP a_user_namespace_pod_sharing_its_pid_namespace_runs_a_container_to_its_exit: berthd does not offer user namespaces here");
        return;
    }
    // critest's pod: every namespace the pod's (PID included).
    let mut pc = with_userns(c.pod_config("upid"), pod_userns());
    namespace_options(&mut pc).pid = cri::NamespaceMode::Pod as i32;
    let pod = c.run_pod(&pc);
    let mut cfg = c.container_config("cat", "");
    cfg.command = vec!["cat".into(), "/proc/self/uid_map".into()];
    cfg.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            namespace_options: Some(namespace_options(&mut pc.clone()).clone()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = c.start(&pod, &pc, cfg);
    let st = c.wait_exited(&id, 20);
    assert_eq!(st.exit_code, 0, "{st:?}");
    let log = std::path::Path::new(&pc.log_directory).join("cat.log");
    let lines = CriStack::log_lines(&log);
    assert_eq!(one_line(&lines[0].2), "0 1000 100000", "{lines:?}");
    // An exec joins the same user and PID namespaces (the holder is PID 1).
    let s = c.start(&pod, &pc, c.container_config("s", "exec sleep 1000"));
    assert_eq!(
        one_line(&c.exec_ok(&s, "cat /proc/self/uid_map")),
        "0 1000 100000"
    );
    assert_ne!(c.exec_ok(&s, "echo $$").trim(), "1");
    assert!(c
        .exec_ok(&s, "ls /proc")
        .split_whitespace()
        .any(|p| p == "1"));
    c.remove_pod(&pod);
    c.assert_nothing_left();
}
