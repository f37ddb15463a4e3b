//! berth-shim under containerd: Debian's containerd 1.6 (a private config,
//! root, state and sockets) starts `containerd-shim-berth-v2` for the
//! runtime type `io.containerd.berth.v2`; `ctr` runs, execs, lists, meters,
//! pauses, kills and deletes through it; containerd killed and restarted
//! finds its tasks again, with an exit that happened meanwhile; containerd's
//! CRI runs a pod of two containers through one berth shim.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_integration::stack::wait_until;
use berth_integration::{ok, stderr, stdout};
use k8s_cri::v1 as cri;

/// A private containerd, with `containerd-shim-berth-v2` on its PATH.
struct Containerd {
    dir: PathBuf,
    child: Option<Child>,
    cri: bool,
}

const IMG: &str = "docker.io/berth/busybox:latest";

/// The test's containerd namespace (containers' cgroups and the runtime's
/// state are named after it).
fn ns() -> String {
    format!("bt-{}", std::process::id())
}

/// The cgroup the CRI test's shim is put in (runc options' ShimCgroup).
fn shim_cgroup() -> String {
    format!("/bv2-shim-{}", std::process::id())
}

/// Its directory: the unified hierarchy's, else the v1 pids controller's.
fn shim_cgroup_dir() -> PathBuf {
    let root = Path::new("/sys/fs/cgroup");
    let base = if root.join("cgroup.controllers").exists() {
        root.to_path_buf()
    } else {
        root.join("pids")
    };
    base.join(shim_cgroup().trim_start_matches('/'))
}

impl Containerd {
    fn new(name: &str, cri: bool) -> Containerd {
        // Short: shim sockets live under it (a unix socket path is short).
        let dir = PathBuf::from(format!("/tmp/bv2-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bin")).unwrap();
        let shim = berth_integration::berth_bin().with_file_name("berth-shim");
        std::os::unix::fs::symlink(&shim, dir.join("bin/containerd-shim-berth-v2")).unwrap();
        let mut cfg = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n[grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/t.sock\"\n",
            d = dir.display()
        );
        if cri {
            cfg.push_str(&format!(
                "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"docker.io/berth/busybox:pause\"\n  restrict_oom_score_adj = true\n  [plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = \"/usr/lib/cni\"\n    conf_dir = \"{d}/net.d\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n    default_runtime_name = \"berth\"\n    [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.berth]\n      runtime_type = \"io.containerd.berth.v2\"\n      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.berth.options]\n        ConfigPath = \"{d}/berth-shim.toml\"\n",
                d = dir.display(),
            ));
            // containerd's CRI gives a runtime type other than runc's a file
            // of options: runc's keys, as TOML.
            fs::write(
                dir.join("berth-shim.toml"),
                format!(
                    "BinaryName = \"{}\"\nShimCgroup = \"{}\"\n",
                    berth_integration::berth_bin().display(),
                    shim_cgroup()
                ),
            )
            .unwrap();
        } else {
            cfg.push_str("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n");
        }
        fs::write(dir.join("config.toml"), cfg).unwrap();
        let mut c = Containerd {
            dir,
            child: None,
            cri,
        };
        c.start();
        // The busybox image, and a tag of it that sleeps: CRI's sandbox.
        let layout = c.dir.join("layout");
        fs::create_dir_all(&layout).unwrap();
        let tar = berth_integration::workspace().join(".cache/busybox-oci.tar");
        let tar = if tar.exists() {
            tar
        } else {
            let t = c.dir.join("busybox.tar");
            ok(
                &Command::new(berth_integration::workspace().join("tools/mk-busybox-image.sh"))
                    .arg(&t)
                    .output()
                    .unwrap(),
            );
            t
        };
        ok(&Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-xf")
            .arg(&tar)
            .output()
            .unwrap());
        ok(&Command::new("umoci")
            .args(["config", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .args([
                "--tag",
                "pause",
                "--config.entrypoint",
                "/bin/sleep",
                "--config.cmd",
                "100000000",
            ])
            .output()
            .unwrap());
        let images = c.dir.join("images.tar");
        ok(&Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&images)
            .arg(".")
            .output()
            .unwrap());
        for ns in [ns().as_str(), "k8s.io"] {
            ok(&c.ctr_ns(
                ns,
                &[
                    "images",
                    "import",
                    "--base-name",
                    "docker.io/berth/busybox",
                    images.to_str().unwrap(),
                ],
            ));
        }
        c
    }

    fn start(&mut self) {
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .unwrap();
        self.child = Some(
            Command::new("containerd")
                .arg("--config")
                .arg(self.dir.join("config.toml"))
                .env("PATH", path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("containerd: apt-get install containerd"),
        );
        let t = Instant::now();
        while !(self.dir.join("c.sock").exists() && self.ctr(&["version"]).status.success()) {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "containerd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.cri;
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::remove_file(self.dir.join("c.sock"));
    }

    fn ctr_ns(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("-a")
            .arg(self.dir.join("c.sock"))
            .args(["-n", ns])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_ns(&ns(), args)
    }

    /// `ctr tasks ls` as (id, pid, status).
    fn tasks(&self) -> Vec<(String, String, String)> {
        ok(&self.ctr(&["tasks", "ls"]))
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].to_string(), f[1].to_string(), f[2].to_string())
            })
            .collect()
    }

    /// The berth shim processes serving this containerd.
    fn shim_processes(&self) -> usize {
        let address = self.dir.join("c.sock").display().to_string();
        fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.starts_with("containerd-shim-berth-v2 ") && c.contains(&address))
            .count()
    }

    /// The berth shims serving this containerd: the sockets under `s/`.
    fn shim_sockets(&self) -> usize {
        fs::read_dir(self.dir.join("s"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for ns in [ns().as_str(), "k8s.io"] {
            let ids = stdout(&self.ctr_ns(ns, &["tasks", "ls", "-q"]));
            for id in ids.lines() {
                let _ = self.ctr_ns(ns, &["tasks", "kill", "-a", "-s", "KILL", id]);
            }
            std::thread::sleep(Duration::from_millis(300));
            for id in ids.lines() {
                let _ = self.ctr_ns(ns, &["tasks", "rm", "-f", id]);
            }
            for id in stdout(&self.ctr_ns(ns, &["containers", "ls", "-q"])).lines() {
                let _ = self.ctr_ns(ns, &["containers", "rm", id]);
            }
        }
        self.kill();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("state"))
            .output();
        let _ = fs::remove_dir_all(&self.dir);
        // What the runtime made for the namespaces: its state directories
        // (when empty: k8s.io may be another containerd's too) and the
        // containers' parent cgroups of the test's namespace. The shims may
        // still be finishing their deletes: a few tries.
        for _ in 0..40 {
            let mut left = 0;
            for n in [ns(), "k8s.io".to_string()] {
                let d = Path::new("/run/containerd/berth").join(n);
                if d.exists() && fs::remove_dir(&d).is_err() {
                    left += 1;
                }
            }
            let mut dirs: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
                .map(|d| d.path().join(ns()))
                .collect();
            dirs.push(Path::new("/sys/fs/cgroup").join(ns()));
            for d in dirs {
                if d.exists() && fs::remove_dir(&d).is_err() {
                    left += 1;
                }
            }
            if left == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn ctr_runs_tasks_through_the_berth_v2_shim() {
    let mut c = Containerd::new("ctr", false);
    let rt = ["--runtime", "io.containerd.berth.v2"];
    // The shim's events reach containerd's subscribers.
    let mut events = Command::new("ctr")
        .arg("-a")
        .arg(c.dir.join("c.sock"))
        .args(["-n", &ns(), "events"])
        .stdout(fs::File::create(c.dir.join("events")).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // To completion: the output, the exit status.
    let mut run = vec!["run", "--rm"];
    run.extend(rt);
    run.extend([
        IMG,
        "c1",
        "sh",
        "-c",
        "echo hello from berth; echo to stderr >&2; exit 3",
    ]);
    let out = c.ctr(&run);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from berth\n");
    assert!(stderr(&out).contains("to stderr"), "{}", stderr(&out));
    assert_eq!(c.shim_sockets(), 0, "the shim stays after --rm");
    wait_until("the --rm shim to exit", 10, || c.shim_processes() == 0);
    wait_until("the exit event", 10, || {
        fs::read_to_string(c.dir.join("events")).is_ok_and(|e| e.contains("/tasks/delete"))
    });
    let _ = events.kill();
    let _ = events.wait();
    let ev = fs::read_to_string(c.dir.join("events")).unwrap();
    for topic in [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
    ] {
        assert!(
            ev.contains(&format!("{} {topic} {{\"container_id\":\"c1\"", ns())),
            "{topic}: {ev}"
        );
    }
    assert!(ev.contains("\"exit_status\":3"), "{ev}");

    // Detached: listed, exec'd into, its processes and metrics, paused.
    let mut run = vec!["run", "-d"];
    run.extend(rt);
    run.extend([IMG, "d1", "sleep", "1000"]);
    ok(&c.ctr(&run));
    let t = c.tasks();
    assert_eq!(
        (t[0].0.as_str(), t[0].2.as_str()),
        ("d1", "RUNNING"),
        "{t:?}"
    );
    let pid = t[0].1.clone();
    let out = c.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        "d1",
        "sh",
        "-c",
        "echo in-exec; exit 4",
    ]);
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("in-exec\n", Some(4))
    );
    let ps = ok(&c.ctr(&["tasks", "ps", "d1"]));
    assert!(ps.lines().any(|l| l.starts_with(&pid)), "{ps}");
    let m = ok(&c.ctr(&["tasks", "metrics", "d1"]));
    assert!(
        m.contains("memory.usage_in_bytes") || m.contains("memory.usage"),
        "{m}"
    );
    ok(&c.ctr(&["tasks", "pause", "d1"]));
    assert_eq!(c.tasks()[0].2, "PAUSED");
    ok(&c.ctr(&["tasks", "resume", "d1"]));
    assert_eq!(c.tasks()[0].2, "RUNNING");

    // A terminal.
    let mut run = vec!["run", "--rm", "-t"];
    run.extend(rt);
    run.extend([IMG, "t1", "sh", "-c", "tty; echo done"]);
    let mut cmd = Command::new("ctr");
    cmd.arg("-a")
        .arg(c.dir.join("c.sock"))
        .args(["-n", &ns()])
        .args(&run);
    let master = berth_integration::on_pty(&mut cmd);
    berth_integration::set_winsize(std::os::fd::AsFd::as_fd(&master), 33, 77);
    let mut child = cmd.spawn().unwrap();
    let seen = berth_integration::read_until(std::os::fd::AsFd::as_fd(&master), "done", 20);
    assert!(
        seen.contains("/dev/pts/") && seen.contains("done"),
        "{seen:?}"
    );
    let _ = child.wait();

    // containerd killed; the container's init killed while it is down;
    // containerd restarted finds d2 running and d1's exit.
    let mut run = vec!["run", "-d"];
    run.extend(rt);
    run.extend([IMG, "d2", "sleep", "1000"]);
    ok(&c.ctr(&run));
    c.kill();
    let d1_pid: i32 = pid.parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d1_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    c.start();
    wait_until("d1's exit", 20, || {
        c.tasks().iter().any(|t| t.0 == "d1" && t.2 == "STOPPED")
    });
    assert!(
        c.tasks().iter().any(|t| t.0 == "d2" && t.2 == "RUNNING"),
        "{:?}",
        c.tasks()
    );
    let out = c.ctr(&["tasks", "rm", "d1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    ok(&c.ctr(&["tasks", "kill", "-s", "KILL", "d2"]));
    wait_until("d2's exit", 20, || {
        c.tasks().iter().any(|t| t.0 == "d2" && t.2 == "STOPPED")
    });
    ok(&c.ctr(&["tasks", "rm", "d2"]));
    for id in ["d1", "d2"] {
        ok(&c.ctr(&["containers", "rm", id]));
    }
    wait_until("the shims to go", 10, || c.shim_sockets() == 0);
    // And their processes: none is left behind.
    wait_until("the shim processes to exit", 10, || c.shim_processes() == 0);
}

/// A CRI client on containerd's socket.
fn cri_client(
    dir: &Path,
) -> (
    tokio::runtime::Runtime,
    cri::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ch = rt
        .block_on(berth_proto::connect_unix(&dir.join("c.sock")))
        .unwrap();
    (
        rt,
        cri::runtime_service_client::RuntimeServiceClient::new(ch),
    )
}

#[test]
fn containerds_cri_runs_a_pod_through_one_berth_shim() {
    // The shim's cgroup, made for the test, gone after it.
    let cg = shim_cgroup_dir();
    fs::create_dir_all(&cg).unwrap();
    struct Rmdir(PathBuf);
    impl Drop for Rmdir {
        fn drop(&mut self) {
            let _ = fs::remove_dir(&self.0);
        }
    }
    let _cg = Rmdir(cg.clone());
    let c = Containerd::new("cri", true);
    let (rt, mut rs) = cri_client(&c.dir);
    let pod_config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "p".into(),
            uid: "uid-p".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: c.dir.join("logs").display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = rt
        .block_on(rs.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod_config.clone()),
            runtime_handler: "berth".into(),
        }))
        .map_err(|e| {
            format!(
                "{e}: {}",
                fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default()
            )
        })
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        let cfg = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: IMG.into(),
                ..Default::default()
            }),
            command: vec!["sleep".into(), "1000".into()],
            log_path: format!("{name}.log"),
            ..Default::default()
        };
        let id = rt
            .block_on(rs.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(cfg),
                sandbox_config: Some(pod_config.clone()),
            }))
            .unwrap()
            .into_inner()
            .container_id;
        rt.block_on(rs.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        }))
        .unwrap();
        ids.push(id);
    }
    for id in &ids {
        let st = rt
            .block_on(rs.container_status(cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            }))
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        assert_eq!(st.state, cri::ContainerState::ContainerRunning as i32);
    }
    // The sandbox and both containers: one shim.
    assert_eq!(c.shim_sockets(), 1);
    let address = c.dir.join("c.sock").display().to_string();
    let shims: Vec<PathBuf> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .is_ok_and(|c| {
                    c.starts_with("containerd-shim-berth-v2 ")
                        && c.contains(&address)
                        && c.ends_with(" serve ")
                })
        })
        .map(|e| e.path())
        .collect();
    assert_eq!(shims.len(), 1, "one shim serves the pod");
    // In the cgroup the runc options name.
    let procs = fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    let pid = shims[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        procs.lines().any(|l| l == pid),
        "shim {pid} not in {}: {procs}",
        cg.display()
    );
    rt.block_on(rs.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    }))
    .unwrap();
    rt.block_on(rs.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod,
    }))
    .unwrap();
    wait_until("the pod's shim to go", 10, || c.shim_sockets() == 0);
    wait_until("the pod's shim process to exit", 10, || {
        c.shim_processes() == 0
    });
}
