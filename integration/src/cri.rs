//! A CRI stack for a test: its own berthd (in a network namespace of its
//! own) with a CRI socket, a bridge CNI network for pods in its own CNI
//! directory, the busybox image in the `k8s.io` namespace, and a CRI client
//! as kubelet and crictl speak it. Every pod it made is removed on drop,
//! and `assert_nothing_left` checks that nothing of them stays.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use crate::stack::Stack;
use crate::{ok, workspace};

/// The subnet of the test's pod network.
pub const POD_SUBNET: &str = "10.89.0.0/24";

/// A berthd serving the CRI, and clients for it.
pub struct CriStack {
    /// The stack underneath (berthd, its directory and network namespace).
    pub s: Stack,
    /// The runtime the calls block on.
    pub rt: tokio::runtime::Runtime,
    /// RuntimeService.
    pub rs: RuntimeServiceClient<Channel>,
    /// ImageService.
    pub is: ImageServiceClient<Channel>,
}

/// The name the busybox image has in `k8s.io`.
pub const BUSYBOX: &str = "berth/busybox:latest";

impl CriStack {
    /// A stack whose pods use a bridge CNI network (berthd in a network
    /// namespace of the test's).
    pub fn new(name: &str) -> CriStack {
        CriStack::with(Stack::new(&format!("cri-{name}")), true)
    }

    /// berthd on the host's network (to reach a registry on the host's
    /// loopback); its pods must use the node's network.
    pub fn in_host_net(name: &str) -> CriStack {
        CriStack::with(Stack::in_host_net(&format!("cri-{name}")), false)
    }

    /// berthd on the host's network with more flags (`--cgroup-driver
    /// systemd`); its pods must use the node's network.
    pub fn in_host_net_with(name: &str, args: &[&str]) -> CriStack {
        CriStack::with(Stack::in_host_net_with(&format!("cri-{name}"), args), false)
    }

    fn with(s: Stack, network: bool) -> CriStack {
        if network {
            let dir = s.dir.join("berthd/cri-net.d");
            fs::create_dir_all(&dir).unwrap();
            let subnet = berth_manager::network::networks::Cidr::parse(POD_SUBNET).unwrap();
            let list = berth_manager::network::networks::bridge_conflist(
                "pods",
                "berthpods0",
                &subnet,
                None,
                &s.dir.join("berthd/cri-ipam"),
            );
            fs::write(
                dir.join("10-pods.conflist"),
                serde_json::to_vec_pretty(&list).unwrap(),
            )
            .unwrap();
        }
        let image = s.dir.join("busybox.tar");
        ok(&s.ctl(&[
            "-n",
            "k8s.io",
            "import",
            "--base-name",
            "berth/busybox",
            image.to_str().unwrap(),
        ]));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (rs, is) = rt.block_on(async {
            let ch = berth_proto::connect_unix(s.dir.join("berthd/cri.sock"))
                .await
                .expect("connect to the CRI socket");
            (
                RuntimeServiceClient::new(ch.clone()),
                ImageServiceClient::new(ch),
            )
        });
        CriStack { s, rt, rs, is }
    }

    /// Reconnects (after a berthd restart, which serves its own API first).
    pub fn reconnect(&mut self) {
        let p = self.socket();
        let (rs, is) = self.rt.block_on(async {
            let t = std::time::Instant::now();
            let ch = loop {
                match berth_proto::connect_unix(&p).await {
                    Ok(ch) => break ch,
                    Err(e) if t.elapsed() > std::time::Duration::from_secs(20) => {
                        panic!("reconnect to {}: {e}", p.display())
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            };
            (
                RuntimeServiceClient::new(ch.clone()),
                ImageServiceClient::new(ch),
            )
        });
        self.rs = rs;
        self.is = is;
    }

    /// The CRI socket.
    pub fn socket(&self) -> PathBuf {
        self.s.dir.join("berthd/cri.sock")
    }

    /// Runs a CRI call.
    pub fn call<T, F>(&self, f: F) -> Result<T, tonic::Status>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rt.block_on(f).map(|r| r.into_inner())
    }

    /// A pod config named `name` (uid and namespace from it), logging to
    /// the test's directory.
    pub fn pod_config(&self, name: &str) -> cri::PodSandboxConfig {
        let logs = self.s.dir.join("logs").join(name);
        fs::create_dir_all(&logs).unwrap();
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: logs.display().to_string(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("/{}/pod-{name}", self.s.cgroup),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        pid: cri::NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox; the pod's id.
    pub fn run_pod(&self, config: &cri::PodSandboxConfig) -> String {
        let mut rs = self.rs.clone();
        self.call(rs.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        }))
        .expect("RunPodSandbox")
        .pod_sandbox_id
    }

    /// A container config from the busybox image running `args` under sh -c.
    pub fn container_config(&self, name: &str, script: &str) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: BUSYBOX.into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: format!("{name}.log"),
            ..Default::default()
        }
    }

    /// CreateContainer in `pod` (whose config is `pc`); its id.
    pub fn create(
        &self,
        pod: &str,
        pc: &cri::PodSandboxConfig,
        c: cri::ContainerConfig,
    ) -> Result<String, tonic::Status> {
        let mut rs = self.rs.clone();
        self.call(rs.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(c),
            sandbox_config: Some(pc.clone()),
        }))
        .map(|r| r.container_id)
    }

    /// CreateContainer then StartContainer; its id.
    pub fn start(&self, pod: &str, pc: &cri::PodSandboxConfig, c: cri::ContainerConfig) -> String {
        let id = self.create(pod, pc, c).expect("CreateContainer");
        let mut rs = self.rs.clone();
        self.call(rs.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        }))
        .expect("StartContainer");
        id
    }

    /// ContainerStatus.
    pub fn status(&self, id: &str) -> cri::ContainerStatus {
        let mut rs = self.rs.clone();
        self.call(rs.container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        }))
        .expect("ContainerStatus")
        .status
        .unwrap()
    }

    /// Waits until the container has exited; its status.
    pub fn wait_exited(&self, id: &str, secs: u64) -> cri::ContainerStatus {
        let mut st = self.status(id);
        crate::stack::wait_until("the container to exit", secs, || {
            st = self.status(id);
            st.state == cri::ContainerState::ContainerExited as i32
        });
        st
    }

    /// ExecSync with a timeout in seconds.
    pub fn exec(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> Result<cri::ExecSyncResponse, tonic::Status> {
        let mut rs = self.rs.clone();
        self.call(rs.exec_sync(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        }))
    }

    /// ExecSync that must exit 0; its stdout.
    pub fn exec_ok(&self, id: &str, script: &str) -> String {
        let r = self.exec(id, &["sh", "-c", script], 10).expect("ExecSync");
        assert_eq!(
            r.exit_code,
            0,
            "{script}: {}{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        String::from_utf8_lossy(&r.stdout).to_string()
    }

    /// PodSandboxStatus.
    pub fn pod_status(&self, id: &str) -> cri::PodSandboxStatus {
        let mut rs = self.rs.clone();
        self.call(rs.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        }))
        .expect("PodSandboxStatus")
        .status
        .unwrap()
    }

    /// StopPodSandbox and RemovePodSandbox.
    pub fn remove_pod(&self, id: &str) {
        let mut rs = self.rs.clone();
        self.call(rs.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        }))
        .expect("StopPodSandbox");
        self.call(rs.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        }))
        .expect("RemovePodSandbox");
    }

    /// Every pod's id.
    pub fn pods(&self) -> Vec<String> {
        let mut rs = self.rs.clone();
        self.call(rs.list_pod_sandbox(cri::ListPodSandboxRequest { filter: None }))
            .map(|r| r.items.into_iter().map(|p| p.id).collect())
            .unwrap_or_default()
    }

    /// Processes holding a pod's namespaces (their pinned IPC or PID
    /// namespace is one of this test's pods').
    pub fn holders(&self) -> Vec<i32> {
        let mut pins = Vec::new();
        for pod in fs::read_dir(self.s.dir.join("berthd/state/pods"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for kind in ["ipc", "pid", "user"] {
                if let Ok(m) = fs::metadata(pod.path().join("ns").join(kind)) {
                    pins.push((kind, m.dev(), m.ino()));
                }
            }
        }
        let mut out = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
            if !String::from_utf8_lossy(&cmd).contains("hold") {
                continue;
            }
            for (kind, dev, ino) in &pins {
                if let Ok(m) = fs::metadata(e.path().join("ns").join(kind)) {
                    if (m.dev(), m.ino()) == (*dev, *ino) && !out.contains(&pid) {
                        out.push(pid);
                    }
                }
            }
        }
        out
    }

    /// Nothing of the test's pods and containers is left: no pod or
    /// container, holder, shim, mount, cgroup, network attachment or pod
    /// directory.
    pub fn assert_nothing_left(&self) {
        assert_eq!(self.pods(), Vec::<String>::new(), "pods left");
        assert_eq!(self.holders(), Vec::<i32>::new(), "namespace holders left");
        assert_eq!(self.s.our_processes(), Vec::<i32>::new(), "shims left");
        assert_eq!(self.s.our_mounts(), Vec::<String>::new(), "mounts left");
        let left = |p: &str| -> Vec<PathBuf> {
            fs::read_dir(self.s.dir.join(p))
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            left("berthd/state/pods"),
            Vec::<PathBuf>::new(),
            "pod directories left"
        );
        assert_eq!(
            left("berthd/root/cri/net/attachments/k8s.io"),
            Vec::<PathBuf>::new(),
            "pod network attachments left"
        );
        assert_eq!(
            left("berthd/state/bundles/k8s.io"),
            Vec::<PathBuf>::new(),
            "bundles left"
        );
        let cgroups: Vec<PathBuf> = crate::cgroup_dirs_named(&self.s.cgroup)
            .into_iter()
            .flat_map(|p| {
                let mut v = Vec::new();
                walk_dirs(&p, &mut v);
                v
            })
            .filter(|p| p.file_name().is_some_and(|n| n.len() == 64))
            .collect();
        assert_eq!(cgroups, Vec::<PathBuf>::new(), "container cgroups left");
    }

    /// The CRI log lines of a file: (stream, tag, text).
    pub fn log_lines(path: &std::path::Path) -> Vec<(String, String, String)> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let mut it = l.splitn(4, ' ');
                let _time = it.next();
                (
                    it.next().unwrap_or("").to_string(),
                    it.next().unwrap_or("").to_string(),
                    it.next().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Labels as a map.
    pub fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The workspace's mk-busybox-image script (for images of other names).
    pub fn image_script() -> PathBuf {
        workspace().join("tools/mk-busybox-image.sh")
    }
}

fn walk_dirs(p: &std::path::Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(p).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(e.path());
            walk_dirs(&e.path(), out);
        }
    }
}

impl Drop for CriStack {
    fn drop(&mut self) {
        for id in self.pods() {
            let mut rs = self.rs.clone();
            let _ = self
                .rt
                .block_on(rs.stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                }));
            let _ = self.rt.block_on(
                rs.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id }),
            );
        }
        for pid in self.holders() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// `cfg` under a 16 MiB memory limit (`tail /dev/zero` is OOM-killed).
pub fn in_16_mib(mut cfg: cri::ContainerConfig) -> cri::ContainerConfig {
    cfg.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 16 << 20,
            ..Default::default()
        }),
        security_context: None,
    });
    cfg
}
