//! A CRI container config in its pod to an OCI runtime spec: the image's
//! config under kubelet's command, args, env, working dir and security
//! context (as `containers::spec` does for berthctl), then the pod's
//! namespaces joined by path, its /etc files and /dev/shm, kubelet's mounts
//! and devices, resources and sysctls. Pure: what it needs from the host
//! (device numbers, a Localhost seccomp profile, berthd's own oom score)
//! comes in, so it is tested without root.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_rules::idmap::IdMap;
use k8s_cri::v1 as cri;
use serde_json::{json, Value};

use crate::containers::spec::{self, Network, Options, SpecError};
use crate::containers::tasks::ImageContext;

/// How a container's PID namespace is had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PidMode {
    /// Its own.
    Container,
    /// Joined by path (the pod's, or a target container's).
    Join(PathBuf),
    /// The node's.
    Node,
}

/// What a container takes from its pod.
#[derive(Clone, Debug)]
pub struct PodContext {
    /// The pod's id.
    pub id: String,
    /// Its network namespace (None: the node's).
    pub netns: Option<PathBuf>,
    /// Its IPC namespace (None: the node's).
    pub ipc: Option<PathBuf>,
    /// Its UTS namespace (None: the node's).
    pub uts: Option<PathBuf>,
    /// The container's PID namespace.
    pub pid: PidMode,
    /// Where the pod's hostname, hosts and resolv.conf are.
    pub dir: PathBuf,
    /// The pod's /dev/shm (None: the node's, with the node's IPC).
    pub shm: Option<PathBuf>,
    /// kubelet's cgroup parent for the pod ("": berthd's default).
    pub cgroup_parent: String,
    /// berthd's cgroup driver, which says what the parent names.
    pub cgroup_driver: crate::containers::cgroups::CgroupDriver,
    /// The pod's sysctls.
    pub sysctls: BTreeMap<String, String>,
    /// The pod's resources (kubelet's sum of its containers'), if given.
    pub resources: Option<cri::LinuxContainerResources>,
    /// The pod's user namespace (pinned path, uid and gid maps), if it has one.
    pub userns: Option<(PathBuf, Vec<IdMap>, Vec<IdMap>)>,
}

/// A device node kubelet asked for, as found on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceNode {
    /// Where it appears in the container.
    pub path: String,
    /// 'c' or 'b'.
    pub kind: char,
    /// Its numbers.
    pub major: i64,
    /// Its numbers.
    pub minor: i64,
    /// Its mode bits (with the file type).
    pub mode: u32,
    /// The cgroup access kubelet gave ("rwm" when empty).
    pub access: String,
}

/// The seccomp profile a security context asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seccomp {
    /// Berth's default profile (RuntimeDefault).
    Default,
    /// None (Unconfined, or nothing asked: kubelet's own default).
    Unconfined,
    /// A profile file on the node (Localhost), by path.
    Localhost(String),
}

/// The seccomp choice of `sc`: the typed field, else the older path string
/// (deprecated, and still sent by kubelets before 1.26 or so).
#[allow(deprecated)]
pub fn seccomp_choice(sc: &cri::LinuxContainerSecurityContext) -> Result<Seccomp, SpecError> {
    use cri::security_profile::ProfileType;
    if let Some(p) = &sc.seccomp {
        return match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => Ok(Seccomp::Default),
            Ok(ProfileType::Unconfined) => Ok(Seccomp::Unconfined),
            Ok(ProfileType::Localhost) if p.localhost_ref.starts_with('/') => {
                Ok(Seccomp::Localhost(p.localhost_ref.clone()))
            }
            Ok(ProfileType::Localhost) => Err(SpecError::Invalid(format!(
                "seccomp Localhost profile {:?}: not an absolute path",
                p.localhost_ref
            ))),
            Err(_) => Err(SpecError::Invalid(format!(
                "seccomp profile type {}: unknown",
                p.profile_type
            ))),
        };
    }
    match sc.seccomp_profile_path.as_str() {
        "" | "unconfined" => Ok(Seccomp::Unconfined),
        "runtime/default" | "docker/default" => Ok(Seccomp::Default),
        p => match p.strip_prefix("localhost/") {
            Some(path) if path.starts_with('/') => Ok(Seccomp::Localhost(path.into())),
            _ => Err(SpecError::Invalid(format!(
                "seccomp profile {p:?}: not runtime/default, unconfined or localhost/<absolute path>"
            ))),
        },
    }
}

/// The `user[:group]` for the runtime: kubelet's uid or name over the
/// image's, with its group (empty: the image's user as it is).
pub fn user_spec(sc: &cri::LinuxContainerSecurityContext, image_user: &str) -> String {
    let user = match &sc.run_as_user {
        Some(u) => u.value.to_string(),
        None if !sc.run_as_username.is_empty() => sc.run_as_username.clone(),
        None => String::new(),
    };
    match &sc.run_as_group {
        Some(g) => {
            let u = if user.is_empty() {
                image_user.split(':').next().unwrap_or("").to_string()
            } else {
                user
            };
            format!("{u}:{}", g.value)
        }
        None => user,
    }
}

fn propagation(p: i32) -> &'static str {
    match cri::MountPropagation::try_from(p) {
        Ok(cri::MountPropagation::PropagationHostToContainer) => "rslave",
        Ok(cri::MountPropagation::PropagationBidirectional) => "rshared",
        _ => "rprivate",
    }
}

/// OCI id mappings (`uidMappings` of linux or of a mount).
fn oci_maps(maps: &[IdMap]) -> Value {
    json!(maps
        .iter()
        .map(|m| json!({"containerID": m.container, "hostID": m.host, "size": m.len}))
        .collect::<Vec<_>>())
}

/// kubelet's mount as an OCI mount; its id mappings (an idmapped volume)
/// only in a pod with a user namespace.
fn mount_of(m: &cri::Mount, in_userns: bool) -> Result<Value, SpecError> {
    if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
        return Err(SpecError::Invalid(format!(
            "mount {}: image volumes are not supported",
            m.container_path
        )));
    }
    let idmapped = !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty();
    if idmapped && !in_userns {
        return Err(SpecError::Invalid(format!(
            "mount {}: id mappings are for a pod with a user namespace, and this pod has none",
            m.container_path
        )));
    }
    if idmapped && (m.uid_mappings.is_empty() || m.gid_mappings.is_empty()) {
        return Err(SpecError::Invalid(format!(
            "mount {}: an idmapped mount needs both uid and gid mappings",
            m.container_path
        )));
    }
    if !m.container_path.starts_with('/') || !m.host_path.starts_with('/') {
        return Err(SpecError::Invalid(format!(
            "mount {} from {}: both paths must be absolute",
            m.container_path, m.host_path
        )));
    }
    let mut opts = vec!["rbind", propagation(m.propagation)];
    if m.recursive_read_only {
        if !m.readonly || propagation(m.propagation) != "rprivate" {
            return Err(SpecError::Invalid(format!(
                "mount {}: recursive read-only needs readonly and private propagation",
                m.container_path
            )));
        }
        opts.push("rro");
    } else if m.readonly {
        opts.push("ro");
    }
    let mut v = json!({"destination": m.container_path, "type": "bind", "source": m.host_path, "options": opts});
    if idmapped {
        let maps = |l: &[cri::IdMapping]| -> Result<Vec<IdMap>, SpecError> {
            l.iter()
                .map(|x| {
                    IdMap::new(x.container_id, x.host_id, x.length)
                        .map_err(|e| SpecError::Invalid(format!("mount {}: {e}", m.container_path)))
                })
                .collect()
        };
        v["uidMappings"] = oci_maps(&maps(&m.uid_mappings)?);
        v["gidMappings"] = oci_maps(&maps(&m.gid_mappings)?);
    }
    Ok(v)
}

/// The process's supplementary groups, as kubelet's runtimes set them: its
/// own gid, then (policy Merge, the default) the groups the image's
/// /etc/group gives its user, then the pod's and container's supplemental
/// groups; with policy Strict the image's are left out.
pub fn groups(user: &Value, sc: &cri::LinuxContainerSecurityContext) -> Vec<i64> {
    let mut gids = vec![user["gid"].as_i64().unwrap_or(0)];
    let strict = sc.supplemental_groups_policy == cri::SupplementalGroupsPolicy::Strict as i32;
    let image: Vec<i64> = if strict {
        Vec::new()
    } else {
        user["additionalGids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect()
    };
    for g in image.iter().chain(&sc.supplemental_groups) {
        if !gids.contains(g) {
            gids.push(*g);
        }
    }
    gids
}

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

/// What berthd itself has and can give a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLimits {
    /// Its capabilities: a container gets none beyond them (privileged
    /// and `ALL` mean all of these, as containerd's do).
    pub caps: Vec<String>,
    /// Its oom_score_adj: a lower one cannot be set without
    /// CAP_SYS_RESOURCE, so it is clamped, as containerd does.
    pub min_oom_score_adj: i64,
}

/// The OCI spec of container `id` from `cfg` in `pod`, over `image`.
/// `seccomp_profile` is the Localhost profile's text when one is asked for.
pub fn container_spec(
    id: &str,
    cfg: &cri::ContainerConfig,
    pod: &PodContext,
    image: &ImageContext<'_>,
    devices: &[DeviceNode],
    seccomp_profile: Option<&str>,
    host: &HostLimits,
) -> Result<Value, SpecError> {
    let linux = cfg.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let caps = sc.capabilities.clone().unwrap_or_default();
    let image_user = image.config["User"].as_str().unwrap_or("");
    if sc.run_as_group.is_some() && sc.run_as_user.is_none() && sc.run_as_username.is_empty() {
        return Err(SpecError::Invalid(
            "run_as_group is set without run_as_user or run_as_username".into(),
        ));
    }
    let seccomp = match seccomp_choice(&sc)? {
        // A privileged container is never filtered, as containerd's is not.
        _ if sc.privileged => "unconfined".into(),
        Seccomp::Default => String::new(),
        Seccomp::Unconfined => "unconfined".into(),
        Seccomp::Localhost(path) => seccomp_profile
            .ok_or_else(|| SpecError::Invalid(format!("seccomp profile {path}: not read")))?
            .to_string(),
    };
    let o = Options {
        args: cfg.args.clone(),
        entrypoint: (!cfg.command.is_empty()).then(|| cfg.command.clone()),
        env: cfg
            .envs
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect(),
        workdir: cfg.working_dir.clone(),
        user: user_spec(&sc, image_user),
        tty: cfg.tty,
        network: Some(match &pod.netns {
            Some(p) => Network::Path(p.display().to_string()),
            None => Network::Host,
        }),
        read_only: sc.readonly_rootfs,
        cap_add: caps.add_capabilities.clone(),
        cap_drop: caps.drop_capabilities.clone(),
        seccomp,
        privileged: sc.privileged,
        ..Default::default()
    };
    // kubelet's parent, or berthd's default place for the CRI's namespace.
    use crate::containers::cgroups::{container_path, cri_path};
    let cgroups_path =
        match cri_path(pod.cgroup_driver, &pod.cgroup_parent, id).map_err(SpecError::Invalid)? {
            Some(p) => p,
            None => container_path(pod.cgroup_driver, "/berth", super::NAMESPACE, id),
        };
    let mut s = spec::generate(
        id,
        &cgroups_path,
        image.config,
        &o,
        image.passwd,
        image.group,
    )?;
    // The pod's UTS namespace has the pod's hostname already.
    if let Some(m) = s.as_object_mut() {
        m.remove("hostname");
    }
    let mut namespaces = vec![json!({"type": "mount"})];
    // The pod's user namespace first: the runtime joins it before the rest,
    // and makes the container's own namespaces inside it.
    if let Some((path, uid, gid)) = &pod.userns {
        namespaces.push(json!({"type": "user", "path": path}));
        s["linux"]["uidMappings"] = oci_maps(uid);
        s["linux"]["gidMappings"] = oci_maps(gid);
    }
    for (kind, path) in [
        ("network", &pod.netns),
        ("ipc", &pod.ipc),
        ("uts", &pod.uts),
    ] {
        if let Some(p) = path {
            namespaces.push(json!({"type": kind, "path": p}));
        }
    }
    match &pod.pid {
        PidMode::Container => namespaces.push(json!({"type": "pid"})),
        PidMode::Join(p) => namespaces.push(json!({"type": "pid", "path": p})),
        PidMode::Node => {}
    }
    s["linux"]["namespaces"] = json!(namespaces);
    // Process: groups, no_new_privs, ambient capabilities, oom score.
    let p = &mut s["process"];
    p["user"]["additionalGids"] = json!(groups(&p["user"], &sc));
    p["noNewPrivileges"] = json!(sc.no_new_privs);
    if !caps.add_ambient_capabilities.is_empty() {
        let ambient: Vec<String> = caps
            .add_ambient_capabilities
            .iter()
            .map(|c| spec::cap_name(c))
            .collect::<Result<_, _>>()?;
        let permitted = strings(&p["capabilities"]["permitted"]);
        for c in &ambient {
            if !permitted.contains(c) {
                return Err(SpecError::Invalid(format!(
                    "ambient capability {c}: not among the container's capabilities"
                )));
            }
        }
        p["capabilities"]["inheritable"] = json!(ambient);
        p["capabilities"]["ambient"] = json!(ambient);
    }
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        if let Some(list) = p["capabilities"][set].as_array_mut() {
            list.retain(|c| c.as_str().is_some_and(|c| host.caps.iter().any(|h| h == c)));
        }
    }
    let resources = linux.resources.clone().unwrap_or_default();
    if resources.oom_score_adj != 0 || host.min_oom_score_adj > 0 {
        p["oomScoreAdj"] = json!(resources.oom_score_adj.max(host.min_oom_score_adj));
    }
    // Masked and read-only paths: kubelet's lists when it sends them.
    if !sc.privileged {
        if !sc.masked_paths.is_empty() {
            s["linux"]["maskedPaths"] = json!(sc.masked_paths);
        }
        if !sc.readonly_paths.is_empty() {
            s["linux"]["readonlyPaths"] = json!(sc.readonly_paths);
        }
    }
    // Mounts: the pod's files and /dev/shm, then kubelet's, each replacing
    // a default at the same destination.
    let mut mounts: Vec<Value> = Vec::new();
    for f in ["hostname", "hosts", "resolv.conf"] {
        mounts.push(json!({"destination": format!("/etc/{f}"), "type": "bind",
            "source": pod.dir.join(f), "options": ["rbind", "rprivate", if sc.readonly_rootfs { "ro" } else { "rw" }]}));
    }
    let shm = pod.shm.clone().unwrap_or_else(|| PathBuf::from("/dev/shm"));
    mounts.push(
        json!({"destination": "/dev/shm", "type": "bind", "source": shm,
        "options": ["rbind", "rprivate", "nosuid", "nodev", "noexec"]}),
    );
    for m in &cfg.mounts {
        mounts.push(mount_of(m, pod.userns.is_some())?);
    }
    // A mount that propagates needs a root that lets it, as containerd
    // sets: shared for a bidirectional one, else slave for host-to-container.
    let has = |p: cri::MountPropagation| cfg.mounts.iter().any(|m| m.propagation == p as i32);
    if has(cri::MountPropagation::PropagationBidirectional) {
        s["linux"]["rootfsPropagation"] = json!("rshared");
    } else if has(cri::MountPropagation::PropagationHostToContainer) {
        s["linux"]["rootfsPropagation"] = json!("rslave");
    }
    let dest = |m: &Value| {
        m["destination"]
            .as_str()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string()
    };
    // A later mount at the same place wins.
    let mut ours: Vec<Value> = Vec::new();
    for m in mounts {
        let d = dest(&m);
        ours.retain(|o| dest(o) != d);
        ours.push(m);
    }
    let taken: Vec<String> = ours.iter().map(dest).collect();
    let mut all: Vec<Value> = s["mounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| !taken.contains(&dest(m)))
        .collect();
    all.extend(ours);
    s["mounts"] = json!(all);
    // Devices, each allowed in the device cgroup with kubelet's access.
    let mut nodes = Vec::new();
    for d in devices {
        nodes.push(
            json!({"path": d.path, "type": d.kind.to_string(), "major": d.major,
            "minor": d.minor, "fileMode": d.mode & 0o7777, "uid": 0, "gid": 0}),
        );
        let access = if d.access.is_empty() {
            "rwm"
        } else {
            &d.access
        };
        if let Some(rules) = s["linux"]["resources"]["devices"].as_array_mut() {
            rules.push(
                json!({"allow": true, "type": d.kind.to_string(), "major": d.major,
                "minor": d.minor, "access": access}),
            );
        }
    }
    if !nodes.is_empty() {
        s["linux"]["devices"] = json!(nodes);
    }
    let r = resources_json(&resources);
    if let (Some(have), Some(add)) = (s["linux"]["resources"].as_object_mut(), r.as_object()) {
        for (k, v) in add {
            have.insert(k.clone(), v.clone());
        }
    }
    if !pod.sysctls.is_empty() {
        s["linux"]["sysctl"] = json!(pod.sysctls);
    }
    let mut ann: BTreeMap<String, String> = cfg.annotations.clone().into_iter().collect();
    ann.insert(
        "io.kubernetes.cri.container-type".into(),
        "container".into(),
    );
    ann.insert("io.kubernetes.cri.sandbox-id".into(), pod.id.clone());
    if let Some(m) = &cfg.metadata {
        ann.insert("io.kubernetes.cri.container-name".into(), m.name.clone());
    }
    // The pod's resources under containerd's names, for runtimes that size
    // a sandbox themselves (a VM handler); kubelet's pod cgroup, the
    // parent, already holds the pod's limits and overhead.
    if let Some(r) = &pod.resources {
        for (k, v) in [
            ("cpu-period", r.cpu_period),
            ("cpu-quota", r.cpu_quota),
            ("cpu-shares", r.cpu_shares),
            ("memory", r.memory_limit_in_bytes),
        ] {
            ann.insert(format!("io.kubernetes.cri.sandbox-{k}"), v.to_string());
        }
    }
    s["annotations"] = json!(ann);
    Ok(s)
}

/// kubelet's resources as OCI `linux.resources` (only what it sets).
pub fn resources_json(r: &cri::LinuxContainerResources) -> Value {
    let mut out = json!({});
    let mut cpu = json!({});
    if r.cpu_shares > 0 {
        cpu["shares"] = json!(r.cpu_shares);
    }
    if r.cpu_quota > 0 {
        cpu["quota"] = json!(r.cpu_quota);
    }
    if r.cpu_period > 0 {
        cpu["period"] = json!(r.cpu_period);
    }
    if !r.cpuset_cpus.is_empty() {
        cpu["cpus"] = json!(r.cpuset_cpus);
    }
    if !r.cpuset_mems.is_empty() {
        cpu["mems"] = json!(r.cpuset_mems);
    }
    if cpu.as_object().is_some_and(|o| !o.is_empty()) {
        out["cpu"] = cpu;
    }
    let mut mem = json!({});
    if r.memory_limit_in_bytes > 0 {
        mem["limit"] = json!(r.memory_limit_in_bytes);
    }
    if r.memory_swap_limit_in_bytes > 0 {
        mem["swap"] = json!(r.memory_swap_limit_in_bytes);
    }
    if mem.as_object().is_some_and(|o| !o.is_empty()) {
        out["memory"] = mem;
    }
    if !r.hugepage_limits.is_empty() {
        out["hugepageLimits"] = json!(r
            .hugepage_limits
            .iter()
            .map(|h| json!({"pageSize": h.page_size, "limit": h.limit}))
            .collect::<Vec<_>>());
    }
    if !r.unified.is_empty() {
        out["unified"] = json!(r.unified.iter().collect::<BTreeMap<_, _>>());
    }
    out
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
