//! Tests of `cri::spec`: the OCI spec of CRI containers, read as a plan.

use super::*;

const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www:/var/www:/bin/false\n";
const GROUP: &[u8] = b"root:x:0:\nwww-data:x:33:\n";

fn pod() -> PodContext {
    PodContext {
        id: "p1".into(),
        netns: Some("/run/berth/pods/p1/net".into()),
        ipc: Some("/run/berth/pods/p1/ns/ipc".into()),
        uts: Some("/run/berth/pods/p1/ns/uts".into()),
        pid: PidMode::Container,
        dir: "/run/berth/pods/p1".into(),
        shm: Some("/run/berth/pods/p1/shm".into()),
        cgroup_parent: "/kubepods/besteffort/podu1".into(),
        cgroup_driver: Default::default(),
        sysctls: [(
            "net.ipv4.ip_unprivileged_port_start".to_string(),
            "0".to_string(),
        )]
        .into(),
        resources: None,
        userns: None,
    }
}

fn image_cfg() -> Value {
    json!({"Entrypoint": ["/entry"], "Cmd": ["default"], "Env": ["PATH=/bin", "A=1"], "User": "www-data"})
}

fn make(cfg: &cri::ContainerConfig, pod: &PodContext) -> Result<Value, SpecError> {
    let c = image_cfg();
    let img = ImageContext {
        config: &c,
        passwd: Some(PASSWD),
        group: Some(GROUP),
    };
    container_spec("c1", cfg, pod, &img, &[], None, &all_caps(0))
}

fn all_caps(min_oom_score_adj: i64) -> HostLimits {
    HostLimits {
        caps: spec::cap_names(u64::MAX),
        min_oom_score_adj,
    }
}

fn ns_of(s: &Value) -> Vec<(String, String)> {
    s["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["type"].as_str().unwrap().to_string(),
                n["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn command_and_args_over_the_images_entrypoint_and_cmd() {
    let mut cfg = cri::ContainerConfig::default();
    assert_eq!(
        make(&cfg, &pod()).unwrap()["process"]["args"],
        json!(["/entry", "default"])
    );
    cfg.args = vec!["x".into()];
    assert_eq!(
        make(&cfg, &pod()).unwrap()["process"]["args"],
        json!(["/entry", "x"])
    );
    // A command drops the image's Cmd unless args are given, as kubelet means it.
    cfg.command = vec!["/bin/sh".into()];
    cfg.args = vec![];
    assert_eq!(
        make(&cfg, &pod()).unwrap()["process"]["args"],
        json!(["/bin/sh"])
    );
    cfg.args = vec!["-c".into(), "true".into()];
    assert_eq!(
        make(&cfg, &pod()).unwrap()["process"]["args"],
        json!(["/bin/sh", "-c", "true"])
    );
}

#[test]
fn the_pods_namespaces_are_joined_by_path() {
    let s = make(&cri::ContainerConfig::default(), &pod()).unwrap();
    assert_eq!(
        ns_of(&s),
        [
            ("mount".into(), "".into()),
            ("network".into(), "/run/berth/pods/p1/net".into()),
            ("ipc".into(), "/run/berth/pods/p1/ns/ipc".into()),
            ("uts".into(), "/run/berth/pods/p1/ns/uts".into()),
            ("pid".into(), "".into()),
        ]
    );
    assert!(s.get("hostname").is_none());
    assert_eq!(s["linux"]["cgroupsPath"], "/kubepods/besteffort/podu1/c1");
    assert_eq!(
        s["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"],
        "0"
    );
    // A shared PID namespace, and a pod on the node's network and IPC.
    let mut p = pod();
    p.pid = PidMode::Join("/run/berth/pods/p1/ns/pid".into());
    p.netns = None;
    p.uts = None;
    p.ipc = None;
    p.shm = None;
    let s = make(&cri::ContainerConfig::default(), &p).unwrap();
    assert_eq!(
        ns_of(&s),
        [
            ("mount".into(), "".into()),
            ("pid".into(), "/run/berth/pods/p1/ns/pid".into()),
        ]
    );
    let shm = s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/dev/shm")
        .unwrap();
    assert_eq!(shm["source"], "/dev/shm");
}

#[test]
fn the_pods_files_and_kubelets_mounts_replace_the_defaults() {
    let mut cfg = cri::ContainerConfig {
        mounts: vec![
            cri::Mount {
                container_path: "/data".into(),
                host_path: "/var/lib/kubelet/pods/u1/volumes/x".into(),
                readonly: true,
                propagation: cri::MountPropagation::PropagationHostToContainer as i32,
                ..Default::default()
            },
            cri::Mount {
                container_path: "/etc/hosts".into(),
                host_path: "/var/lib/kubelet/pods/u1/etc-hosts".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let s = make(&cfg, &pod()).unwrap();
    let m = s["mounts"].as_array().unwrap();
    let at = |d: &str| {
        m.iter()
            .filter(|m| m["destination"] == d)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(at("/etc/hosts").len(), 1);
    assert_eq!(
        at("/etc/hosts")[0]["source"],
        "/var/lib/kubelet/pods/u1/etc-hosts"
    );
    assert_eq!(
        at("/etc/resolv.conf")[0]["source"],
        "/run/berth/pods/p1/resolv.conf"
    );
    assert_eq!(at("/data")[0]["options"], json!(["rbind", "rslave", "ro"]));
    assert_eq!(s["linux"]["rootfsPropagation"], "rslave");
    assert_eq!(at("/dev/shm").len(), 1);
    assert_eq!(at("/dev/shm")[0]["source"], "/run/berth/pods/p1/shm");
    assert_eq!(at("/proc").len(), 1);
    // Recursive read-only needs readonly and private propagation.
    cfg.mounts[0].recursive_read_only = true;
    assert!(make(&cfg, &pod()).is_err());
    cfg.mounts[0].propagation = cri::MountPropagation::PropagationPrivate as i32;
    let s = make(&cfg, &pod()).unwrap();
    let data = s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/data")
        .cloned()
        .unwrap();
    assert_eq!(data["options"], json!(["rbind", "rprivate", "rro"]));
    cfg.mounts[0].host_path = "relative".into();
    assert!(make(&cfg, &pod()).is_err());
}

#[test]
fn the_security_context_reaches_the_process() {
    let mut cfg = cri::ContainerConfig::default();
    // The image's user by name.
    let s = make(&cfg, &pod()).unwrap();
    assert_eq!(s["process"]["user"]["uid"], 33);
    let sc = cri::LinuxContainerSecurityContext {
        run_as_user: Some(cri::Int64Value { value: 1000 }),
        run_as_group: Some(cri::Int64Value { value: 3000 }),
        supplemental_groups: vec![4000, 3000],
        readonly_rootfs: true,
        no_new_privs: true,
        capabilities: Some(cri::Capability {
            drop_capabilities: vec!["NET_RAW".into()],
            add_capabilities: vec!["SYS_TIME".into()],
            ..Default::default()
        }),
        seccomp: Some(cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        }),
        masked_paths: vec!["/proc/kcore".into()],
        ..Default::default()
    };
    cfg.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(sc.clone()),
        resources: Some(cri::LinuxContainerResources {
            oom_score_adj: -998,
            memory_limit_in_bytes: 64 << 20,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            cpu_shares: 512,
            ..Default::default()
        }),
    });
    let s = container_spec(
        "c1",
        &cfg,
        &pod(),
        &ImageContext {
            config: &image_cfg(),
            passwd: Some(PASSWD),
            group: Some(GROUP),
        },
        &[],
        None,
        &all_caps(-500),
    )
    .unwrap();
    let p = &s["process"];
    assert_eq!(
        (p["user"]["uid"].as_i64(), p["user"]["gid"].as_i64()),
        (Some(1000), Some(3000))
    );
    assert_eq!(p["user"]["additionalGids"], json!([3000, 4000]));
    assert_eq!(p["noNewPrivileges"], true);
    assert_eq!(s["root"]["readonly"], true);
    let caps = strings(&p["capabilities"]["bounding"]);
    assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
    assert!(caps.contains(&"CAP_SYS_TIME".to_string()));
    // RuntimeDefault: Berth's default filter, which refuses unshare.
    assert!(s["linux"]["seccomp"].to_string().contains("unshare"));
    assert_eq!(s["linux"]["maskedPaths"], json!(["/proc/kcore"]));
    // Clamped to berthd's own score.
    assert_eq!(p["oomScoreAdj"], -500);
    let r = &s["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 64 << 20);
    assert_eq!(
        (r["cpu"]["quota"].as_i64(), r["cpu"]["period"].as_i64()),
        (Some(50_000), Some(100_000))
    );
    assert_eq!(r["cpu"]["shares"], 512);
    // Nothing asked: unconfined, as kubelet's default is.
    let s = make(&cri::ContainerConfig::default(), &pod()).unwrap();
    assert!(s["linux"].get("seccomp").is_none());
}

#[test]
#[allow(deprecated)]
fn seccomp_choices_and_users() {
    let mut sc = cri::LinuxContainerSecurityContext::default();
    assert_eq!(seccomp_choice(&sc).unwrap(), Seccomp::Unconfined);
    sc.seccomp_profile_path = "runtime/default".into();
    assert_eq!(seccomp_choice(&sc).unwrap(), Seccomp::Default);
    sc.seccomp_profile_path = "localhost//etc/p.json".into();
    assert_eq!(
        seccomp_choice(&sc).unwrap(),
        Seccomp::Localhost("/etc/p.json".into())
    );
    sc.seccomp_profile_path = "nonsense".into();
    assert!(seccomp_choice(&sc).is_err());
    sc.seccomp = Some(cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::Localhost as i32,
        localhost_ref: "rel.json".into(),
    });
    assert!(seccomp_choice(&sc).is_err());
    let mut sc = cri::LinuxContainerSecurityContext::default();
    assert_eq!(user_spec(&sc, "www-data"), "");
    sc.run_as_username = "nobody".into();
    assert_eq!(user_spec(&sc, "www-data"), "nobody");
    sc.run_as_username.clear();
    sc.run_as_group = Some(cri::Int64Value { value: 7 });
    assert_eq!(user_spec(&sc, "www-data:33"), "www-data:7");
    // A group alone is refused, as kubelet's runtimes refuse it.
    let cfg = cri::ContainerConfig {
        linux: Some(cri::LinuxContainerConfig {
            security_context: Some(sc),
            resources: None,
        }),
        ..Default::default()
    };
    let e = make(&cfg, &pod()).unwrap_err();
    assert!(e.to_string().contains("run_as_group"), "{e}");
}

#[test]
fn devices_are_created_and_allowed() {
    let c = image_cfg();
    let img = ImageContext {
        config: &c,
        passwd: None,
        group: None,
    };
    let dev = DeviceNode {
        path: "/dev/fuse".into(),
        kind: 'c',
        major: 10,
        minor: 229,
        mode: 0o20666,
        access: "rw".into(),
    };
    let s = container_spec(
        "c1",
        &cri::ContainerConfig::default(),
        &pod(),
        &img,
        &[dev],
        None,
        &all_caps(0),
    );
    // The image's user is a name this image has no passwd for.
    assert!(s.is_err());
    let c = json!({"Cmd": ["sh"]});
    let img = ImageContext {
        config: &c,
        passwd: None,
        group: None,
    };
    let dev = DeviceNode {
        path: "/dev/fuse".into(),
        kind: 'c',
        major: 10,
        minor: 229,
        mode: 0o20666,
        access: "rw".into(),
    };
    let s = container_spec(
        "c1",
        &cri::ContainerConfig::default(),
        &pod(),
        &img,
        &[dev],
        None,
        &all_caps(0),
    )
    .unwrap();
    assert_eq!(s["linux"]["devices"][0]["path"], "/dev/fuse");
    assert_eq!(s["linux"]["devices"][0]["fileMode"], 0o666);
    let rules = s["linux"]["resources"]["devices"].as_array().unwrap();
    assert_eq!(rules.last().unwrap()["access"], "rw");
    assert_eq!(rules[0]["allow"], false);
}

#[test]
fn supplemental_groups_merge_the_images_unless_strict() {
    let user = serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [50000]});
    let mut sc = cri::LinuxContainerSecurityContext {
        supplemental_groups: vec![1234, 1000],
        ..Default::default()
    };
    assert_eq!(groups(&user, &sc), vec![1000, 50000, 1234]);
    sc.supplemental_groups_policy = cri::SupplementalGroupsPolicy::Strict as i32;
    assert_eq!(groups(&user, &sc), vec![1000, 1234]);
    // No groups anywhere: the process's own gid alone.
    let root = serde_json::json!({"uid": 0, "gid": 0});
    assert_eq!(
        groups(&root, &cri::LinuxContainerSecurityContext::default()),
        vec![0]
    );
}

#[test]
fn a_pod_user_namespace_is_joined_first_with_its_maps_and_idmapped_volumes() {
    let maps = berth_rules::idmap::parse("0:1000:100000").unwrap();
    let mut p = pod();
    p.userns = Some(("/run/berth/pods/p1/ns/user".into(), maps.clone(), maps));
    let vol = |uid: Vec<cri::IdMapping>, gid: Vec<cri::IdMapping>| cri::ContainerConfig {
        mounts: vec![cri::Mount {
            container_path: "/data".into(),
            host_path: "/srv/data".into(),
            uid_mappings: uid,
            gid_mappings: gid,
            ..Default::default()
        }],
        ..Default::default()
    };
    let m = vec![cri::IdMapping {
        container_id: 0,
        host_id: 1000,
        length: 100000,
    }];
    let s = make(&vol(m.clone(), m.clone()), &p).unwrap();
    let ns = ns_of(&s);
    assert_eq!(ns[0].0, "mount");
    assert_eq!(
        ns[1],
        ("user".to_string(), "/run/berth/pods/p1/ns/user".to_string())
    );
    let want = json!([{"containerID": 0, "hostID": 1000, "size": 100000}]);
    assert_eq!(s["linux"]["uidMappings"], want);
    assert_eq!(s["linux"]["gidMappings"], want);
    let data = s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/data")
        .cloned()
        .unwrap();
    assert_eq!(data["uidMappings"], want);
    assert_eq!(data["gidMappings"], want);
    // Half a mapping, or a mapping in a pod without a user namespace: refused.
    let half = make(&vol(m.clone(), vec![]), &p).unwrap_err().to_string();
    assert!(half.contains("both uid and gid"), "{half}");
    let none = make(&vol(m.clone(), m), &pod()).unwrap_err().to_string();
    assert!(none.contains("has none"), "{none}");
    // Without one: no user namespace, no maps.
    let plain = make(&cri::ContainerConfig::default(), &pod()).unwrap();
    assert!(ns_of(&plain).iter().all(|(k, _)| k != "user"));
    assert!(plain["linux"]["uidMappings"].is_null());
}

#[test]
fn the_pods_resources_reach_its_containers_as_containerds_sandbox_annotations() {
    let plain = make(&cri::ContainerConfig::default(), &pod()).unwrap();
    assert!(plain["annotations"]["io.kubernetes.cri.sandbox-memory"].is_null());
    let mut p = pod();
    p.resources = Some(cri::LinuxContainerResources {
        cpu_period: 100000,
        cpu_quota: 50000,
        cpu_shares: 512,
        memory_limit_in_bytes: 64 << 20,
        ..Default::default()
    });
    let s = make(&cri::ContainerConfig::default(), &p).unwrap();
    let a = &s["annotations"];
    assert_eq!(a["io.kubernetes.cri.sandbox-cpu-period"], "100000");
    assert_eq!(a["io.kubernetes.cri.sandbox-cpu-quota"], "50000");
    assert_eq!(a["io.kubernetes.cri.sandbox-cpu-shares"], "512");
    assert_eq!(a["io.kubernetes.cri.sandbox-memory"], "67108864");
    assert_eq!(a["io.kubernetes.cri.sandbox-id"], "p1");
}
