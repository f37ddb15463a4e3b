//! A pod's resources and overhead (`LinuxPodSandboxConfig.resources` and
//! `.overhead`): kubelet puts a pod in a cgroup it sizes itself; a pod
//! without a cgroup parent gets one of berthd's, limited to its resources
//! plus its overhead, its containers below it, removed with the pod.

use std::fs;
use std::path::PathBuf;

use berth_integration::cri::CriStack;
use k8s_cri::v1 as cri;

/// Where a cgroup file of `controller` for cgroup `path` is (v1 or v2).
fn cgroup_file(controller: &str, path: &str, v1_file: &str, v2_file: &str) -> PathBuf {
    let v1 = PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}/{v1_file}"));
    if v1.exists() {
        return v1;
    }
    PathBuf::from(format!("/sys/fs/cgroup{path}/{v2_file}"))
}

#[test]
fn a_pod_without_a_cgroup_parent_is_limited_to_its_resources_plus_overhead() {
    let c = CriStack::new("podres");
    let mut pc = c.pod_config("res");
    let linux = pc.linux.as_mut().unwrap();
    linux.cgroup_parent = String::new();
    linux.resources = Some(cri::LinuxContainerResources {
        memory_limit_in_bytes: 48 << 20,
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 512,
        ..Default::default()
    });
    linux.overhead = Some(cri::LinuxContainerResources {
        memory_limit_in_bytes: 16 << 20,
        cpu_period: 100_000,
        cpu_quota: 10_000,
        cpu_shares: 128,
        ..Default::default()
    });
    let pod = c.run_pod(&pc);
    let a = c.start(&pod, &pc, c.container_config("a", "exec sleep 1000"));
    let path = format!("/berth/k8s.io/pod{pod}");
    let read = |ctl: &str, v1: &str, v2: &str| {
        let f = cgroup_file(ctl, &path, v1, v2);
        fs::read_to_string(&f)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
            .trim()
            .to_string()
    };
    // 48 MiB + 16 MiB; 50 ms + 10 ms per 100 ms; 512 + 128 shares.
    let mem = read("memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(mem, (64u64 << 20).to_string());
    let v1_cpu = cgroup_file("cpu", &path, "cpu.cfs_quota_us", "cpu.max");
    if v1_cpu.ends_with("cpu.cfs_quota_us") {
        assert_eq!(read("cpu", "cpu.cfs_quota_us", "cpu.max"), "60000");
        assert_eq!(read("cpu", "cpu.shares", "cpu.weight"), "640");
    } else {
        assert_eq!(read("cpu", "cpu.cfs_quota_us", "cpu.max"), "60000 100000");
    }
    // The container is below the pod's cgroup.
    let cg = c.exec_ok(&a, "cat /proc/self/cgroup");
    assert!(cg.contains(&format!("pod{pod}")), "{cg}");
    // A container without a limit of its own is held by the pod's.
    let hog = c.start(&pod, &pc, c.container_config("hog", "exec tail /dev/zero"));
    let st = c.wait_exited(&hog, 60);
    assert_eq!(st.exit_code, 137, "{st:?}");
    c.remove_pod(&pod);
    assert!(
        !cgroup_file("memory", &path, "memory.limit_in_bytes", "memory.max")
            .parent()
            .unwrap()
            .exists(),
        "the pod's cgroup is left"
    );
    c.assert_nothing_left();
}
