//! Drives a CRI runtime as kubelet starts a pod, for `bench/cri.sh`: the same
//! client against berthd's CRI and containerd's, so only the runtimes differ.
//!
//! usage: berth-bench-cri SOCKET IMAGE cycles N    (N pod start/stop cycles:
//!        RunPodSandbox, CreateContainer, StartContainer until running, then
//!        StopPodSandbox, RemovePodSandbox; one JSON line of phase timings
//!        in ms per cycle)
//!        berth-bench-cri SOCKET IMAGE hold N     (N pods, each with a
//!        running container; prints their ids, one per line)
//!        berth-bench-cri SOCKET IMAGE clean      (every pod removed)

use std::time::Instant;

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

type Rs = RuntimeServiceClient<Channel>;

fn pod_config(name: &str, logs: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: name.into(),
            namespace: "bench".into(),
            attempt: 0,
        }),
        log_directory: logs.into(),
        // The pods' cgroups under one parent the bench script removes.
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: std::env::var("BENCH_CGROUP_PARENT").unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(image: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "sleeper".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "3600".into()],
        log_path: "sleeper.log".into(),
        linux: Some(Default::default()),
        ..Default::default()
    }
}

/// Starts a pod with one running container; (pod id, ms per phase).
async fn start_pod(rs: &mut Rs, name: &str, image: &str) -> (String, [f64; 3]) {
    let logs = format!(
        "{}/{name}",
        std::env::var("BENCH_LOGS").unwrap_or_else(|_| "/tmp/berth-bench-cri-logs".into())
    );
    std::fs::create_dir_all(&logs).unwrap();
    let pc = pod_config(name, &logs);
    let t = Instant::now();
    let pod = rs
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pc.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let run = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let id = rs
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container_config(image)),
            sandbox_config: Some(pc),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    let create = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    rs.start_container(cri::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .expect("StartContainer");
    // Until it runs, as kubelet sees it.
    loop {
        let st = rs
            .container_status(cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            })
            .await
            .expect("ContainerStatus")
            .into_inner()
            .status
            .unwrap();
        if st.state == cri::ContainerState::ContainerRunning as i32 {
            break;
        }
    }
    let start = t.elapsed().as_secs_f64() * 1e3;
    (pod, [run, create, start])
}

async fn remove_pod(rs: &mut Rs, pod: &str) -> [f64; 2] {
    let t = Instant::now();
    rs.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.into(),
    })
    .await
    .expect("StopPodSandbox");
    let stop = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    rs.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.into(),
    })
    .await
    .expect("RemovePodSandbox");
    [stop, t.elapsed().as_secs_f64() * 1e3]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: berth-bench-cri SOCKET IMAGE cycles N | hold N | clean");
        std::process::exit(2);
    }
    let (socket, image, mode) = (&args[1], &args[2], args[3].as_str());
    let n: usize = args.get(4).and_then(|n| n.parse().ok()).unwrap_or(1);
    let ch = berth_proto::connect_unix(socket)
        .await
        .expect("connect to the CRI socket");
    let mut rs = RuntimeServiceClient::new(ch);
    match mode {
        "cycles" => {
            for i in 0..n {
                let t = Instant::now();
                let (pod, [run, create, start]) =
                    start_pod(&mut rs, &format!("bench-{}-{i}", std::process::id()), image).await;
                let up = t.elapsed().as_secs_f64() * 1e3;
                let [stop, remove] = remove_pod(&mut rs, &pod).await;
                let total = t.elapsed().as_secs_f64() * 1e3;
                println!(
                    "{}",
                    serde_json::json!({"run_pod": run, "create": create, "start": start,
                        "up": up, "stop_pod": stop, "remove_pod": remove, "cycle": total})
                );
            }
        }
        "hold" => {
            for i in 0..n {
                let (pod, _) =
                    start_pod(&mut rs, &format!("hold-{}-{i}", std::process::id()), image).await;
                println!("{pod}");
            }
        }
        "clean" => {
            let pods = rs
                .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
                .await
                .expect("ListPodSandbox")
                .into_inner()
                .items;
            for p in pods {
                remove_pod(&mut rs, &p.id).await;
            }
        }
        other => {
            eprintln!("berth-bench-cri: unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}
