//! berthd as a Kubernetes CRI runtime, driven over its CRI socket by a
//! generated CRI client as kubelet and crictl drive it: pods with shared
//! namespaces, networking between pods and to host ports, the container
//! lifecycle with exit codes and reasons, ExecSync, CRI logs, runtime
//! handlers, and a berthd restart (security contexts: `cri_security.rs`;
//! images: `cri_images.rs`). Each test has its own berthd, directory, CNI
//! network and cgroup parent, and checks that nothing is left.

use std::fs;
use std::time::Duration;

use berth_integration::cri::{in_16_mib, text, CriStack, POD_SUBNET};
use berth_integration::stack::wait_until;
use k8s_cri::v1 as cri;

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
