//! A container's OCI runtime spec, generated as docker does: the image config
//! (Entrypoint, Cmd, Env, WorkingDir, User) under the user's overrides, over
//! the defaults every container gets (namespaces, /proc, /dev, /sys, masked
//! paths, docker's capability set, a seccomp deny-list). Pure: the image's
//! /etc/passwd and /etc/group come in as bytes, so it is testable anywhere.

pub use super::capabilities::*;
use serde_json::{json, Value};

/// A spec that cannot be made from the request.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A request field is unusable.
    #[error("{0}")]
    Invalid(String),
    /// A user or group name the image does not have.
    #[error("unable to find {kind} {name}: no matching entries in the image's /etc/{file}")]
    NoSuchUser {
        /// "user" or "group".
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// passwd or group.
        file: &'static str,
    },
}

/// A mount into the container, resolved to a host path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// The host directory or file.
    pub source: String,
    /// Where it appears in the container.
    pub destination: String,
    /// Read-only.
    pub read_only: bool,
}

/// How the container is networked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Network {
    /// Its own network namespace with only `lo`.
    None,
    /// The host's network (and UTS) namespace.
    Host,
    /// Another container's network namespace (joined by path when the task
    /// is created, as docker's `--net container:NAME`).
    Container(String),
    /// Its own namespace attached to a CNI network (`bridge`, the default
    /// network, or one made by `network create`).
    Cni(String),
    /// A namespace someone else made and networks, joined by path (a CRI
    /// pod's): `netns:/run/berth/pods/ID/net`.
    Path(String),
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Network::None => f.write_str("none"),
            Network::Host => f.write_str("host"),
            Network::Container(c) => write!(f, "container:{c}"),
            Network::Cni(n) => f.write_str(n),
            Network::Path(p) => write!(f, "netns:{p}"),
        }
    }
}

impl Network {
    /// Parses `--net`.
    pub fn parse(s: &str) -> Result<Network, SpecError> {
        match s {
            "" | "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            c if c.starts_with("container:") => {
                let id = &c["container:".len()..];
                if id.is_empty() {
                    return Err(SpecError::Invalid(
                        "network \"container:\" names no container".into(),
                    ));
                }
                Ok(Network::Container(id.into()))
            }
            p if p.starts_with("netns:/") => Ok(Network::Path(p["netns:".len()..].into())),
            n if berth_rules::id::is_name(n) => Ok(Network::Cni(n.into())),
            o => Err(SpecError::Invalid(format!(
                "network {o:?}: not none, host, container:NAME or a network name"
            ))),
        }
    }
}

/// What the user asked for, over the image's config.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Replaces the image's Cmd.
    pub args: Vec<String>,
    /// Replaces the image's Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// KEY=VALUE over the image's.
    pub env: Vec<String>,
    /// Replaces the image's WorkingDir.
    pub workdir: String,
    /// Replaces the image's User.
    pub user: String,
    /// A terminal for the init.
    pub tty: bool,
    /// Mounts.
    pub binds: Vec<Bind>,
    /// Network mode.
    pub network: Option<Network>,
    /// A directory whose `hosts`, `hostname` and `resolv.conf` are bound over
    /// the container's (written when its task is created).
    pub etc_files: Option<std::path::PathBuf>,
    /// The hostname (default: the id's first 12 characters).
    pub hostname: String,
    /// Memory limit in bytes.
    pub memory: i64,
    /// CPU limit in thousandths of a CPU.
    pub milli_cpus: i64,
    /// Pids limit.
    pub pids_limit: i64,
    /// Read-only root filesystem.
    pub read_only: bool,
    /// Capabilities added to the default set (`CAP_` optional, `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities dropped from it.
    pub cap_drop: Vec<String>,
    /// A `linux.seccomp` object as JSON, "unconfined", or empty (default).
    pub seccomp: String,
    /// Every capability, every device, no seccomp, writable /sys.
    pub privileged: bool,
    /// The capabilities berthd itself has (see [`own_capabilities`]): a
    /// container gets none beyond them, so `--privileged` and `ALL` mean
    /// all of these, as docker's mean the daemon's. None: no limit.
    pub available_caps: Option<Vec<String>>,
}

/// A `passwd` or `group` entry, split on ':'.
fn entries(file: Option<&[u8]>) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(file.unwrap_or_default());
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

/// A resolved `user[:group]`.
#[derive(Debug, PartialEq, Eq)]
pub struct User {
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
    /// The groups the user is a member of in /etc/group.
    pub additional_gids: Vec<u32>,
    /// Their home directory, where the image says.
    pub home: Option<String>,
}

/// Resolves `user[:group]` (names or numbers) as docker does: a name must be
/// in the image's files; a number need not be (its gid is then 0 or its
/// passwd entry's).
pub fn resolve_user(
    spec: &str,
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> Result<User, SpecError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let pw = entries(passwd);
    let gr = entries(group);
    let entry = pw
        .iter()
        .find(|e| e.len() >= 4 && (e[0] == u || (u.parse::<u32>().is_ok() && e[2] == u)));
    let (uid, mut gid, name, home) = match (u.parse::<u32>(), entry) {
        (_, Some(e)) => (
            e[2].parse()
                .map_err(|_| SpecError::Invalid(format!("/etc/passwd: bad uid for {}", e[0])))?,
            e[3].parse()
                .map_err(|_| SpecError::Invalid(format!("/etc/passwd: bad gid for {}", e[0])))?,
            Some(e[0].clone()),
            e.get(5).filter(|h| !h.is_empty()).cloned(),
        ),
        (Ok(n), None) => (n, 0, None, None),
        (Err(_), None) => {
            return Err(SpecError::NoSuchUser {
                kind: "user",
                name: u.into(),
                file: "passwd",
            })
        }
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => gr
                .iter()
                .find(|e| e.len() >= 3 && e[0] == g)
                .and_then(|e| e[2].parse().ok())
                .ok_or_else(|| SpecError::NoSuchUser {
                    kind: "group",
                    name: g.into(),
                    file: "group",
                })?,
        };
    }
    let mut additional_gids = Vec::new();
    if let Some(name) = &name {
        for e in &gr {
            if e.len() >= 4 && e[3].split(',').any(|m| m == name) {
                if let Ok(n) = e[2].parse::<u32>() {
                    if n != gid && !additional_gids.contains(&n) {
                        additional_gids.push(n);
                    }
                }
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// Merges KEY=VALUE lists: later keys replace earlier ones in place.
pub fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for e in over {
        let key = e.split('=').next().unwrap_or(e);
        match out
            .iter_mut()
            .find(|x| x.split('=').next().unwrap_or(x) == key)
        {
            Some(x) => *x = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The `process` part for the image config `cfg` (its `config` object) and
/// `o`; the image's /etc/passwd and /etc/group resolve the user.
pub fn process(
    cfg: &Value,
    o: &Options,
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> Result<Value, SpecError> {
    let entrypoint = match &o.entrypoint {
        Some(e) => e.clone(),
        None => strings(&cfg["Entrypoint"]),
    };
    // A new entrypoint drops the image's Cmd, as in docker.
    let cmd = if !o.args.is_empty() {
        o.args.clone()
    } else if o.entrypoint.is_some() {
        Vec::new()
    } else {
        strings(&cfg["Cmd"])
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(SpecError::Invalid(
            "no command specified: the image has no Entrypoint or Cmd; give one".into(),
        ));
    }
    let user_spec = if o.user.is_empty() {
        cfg["User"].as_str().unwrap_or_default().to_string()
    } else {
        o.user.clone()
    };
    let user = resolve_user(&user_spec, passwd, group)?;
    let mut env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    if o.tty {
        env.push("TERM=xterm".into());
    }
    env = merge_env(&env, &strings(&cfg["Env"]));
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home.as_deref().unwrap_or("/")));
    }
    env = merge_env(&env, &o.env);
    let cwd = if !o.workdir.is_empty() {
        o.workdir.clone()
    } else {
        cfg["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string()
    };
    if !cwd.starts_with('/') {
        return Err(SpecError::Invalid(format!(
            "working directory {cwd:?} is not absolute"
        )));
    }
    let mut caps: Vec<String> = if o.privileged {
        ALL_CAPS.iter().map(|c| c.to_string()).collect()
    } else {
        capabilities(&o.cap_add, &o.cap_drop)?
    };
    if let Some(have) = &o.available_caps {
        caps.retain(|c| have.contains(c));
    }
    let mut user_v = json!({"uid": user.uid, "gid": user.gid});
    if !user.additional_gids.is_empty() {
        user_v["additionalGids"] = json!(user.additional_gids);
    }
    Ok(json!({
        "terminal": o.tty,
        "user": user_v,
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps,
        },
        "noNewPrivileges": false,
    }))
}

/// The whole spec for container `id`: `cfg` is the image config's `config`
/// object; `cgroups_path` is where its cgroup goes (see [`super::cgroups`]).
pub fn generate(
    id: &str,
    cgroups_path: &str,
    cfg: &Value,
    o: &Options,
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> Result<Value, SpecError> {
    let process = process(cfg, o, passwd, group)?;
    let network = o.network.clone().unwrap_or(Network::None);
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "mount"}),
    ];
    match network {
        Network::None => {
            namespaces.push(json!({"type": "network"}));
            namespaces.push(json!({"type": "uts"}));
        }
        Network::Container(_) | Network::Cni(_) | Network::Path(_) => {
            // The path is filled in at task creation.
            namespaces.push(json!({"type": "network", "path": ""}));
            namespaces.push(json!({"type": "uts"}));
        }
        Network::Host => {}
    }
    let sys_opts = if o.privileged {
        json!(["nosuid", "noexec", "nodev", "rw"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    if let Some(dir) = &o.etc_files {
        // Bound, not written into the rootfs: edits inside go to these files
        // and a commit never takes them.
        for f in ["hosts", "hostname", "resolv.conf"] {
            mounts.push(json!({"destination": format!("/etc/{f}"), "type": "bind", "source": dir.join(f).display().to_string(), "options": ["rbind", "rprivate"]}));
        }
    } else if network == Network::Host {
        // The host's name resolution, as docker gives --net host containers.
        for f in ["/etc/resolv.conf", "/etc/hosts"] {
            if std::path::Path::new(f).is_file() {
                mounts.push(json!({"destination": f, "type": "bind", "source": f, "options": ["rbind", "rprivate", "ro"]}));
            }
        }
    }
    for b in &o.binds {
        if !b.destination.starts_with('/') {
            return Err(SpecError::Invalid(format!(
                "mount destination {:?} is not absolute",
                b.destination
            )));
        }
        let mut opts = vec!["rbind", "rprivate"];
        if b.read_only {
            opts.push("ro");
        }
        mounts.push(json!({"destination": b.destination, "type": "bind", "source": b.source, "options": opts}));
    }
    let caps: Vec<String> = strings(&process["capabilities"]["bounding"]);
    let mut resources = json!({"devices": [{"allow": o.privileged, "access": "rwm"}]});
    if o.memory < 0 || o.milli_cpus < 0 || o.pids_limit < 0 {
        return Err(SpecError::Invalid(
            "memory, cpus and pids limits must not be negative".into(),
        ));
    }
    if o.memory > 0 {
        resources["memory"] = json!({"limit": o.memory});
    }
    if o.milli_cpus > 0 {
        resources["cpu"] = json!({"quota": o.milli_cpus * 100, "period": 100_000});
    }
    if o.pids_limit > 0 {
        resources["pids"] = json!({"limit": o.pids_limit});
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": cgroups_path,
        "resources": resources,
    });
    if !o.privileged {
        // runc's defaults, and what docker masks besides.
        let masked: Vec<&str> = berth_rules::paths::MASKED
            .iter()
            .chain(berth_rules::paths::MASKED_DOCKER_EXTRA)
            .copied()
            .collect();
        linux["maskedPaths"] = json!(masked);
        linux["readonlyPaths"] = json!(berth_rules::paths::READONLY);
    }
    match o.seccomp.as_str() {
        "unconfined" => {}
        "" if o.privileged => {}
        "" => linux["seccomp"] = default_seccomp(&caps),
        profile => {
            let v: Value = serde_json::from_str(profile)
                .map_err(|e| SpecError::Invalid(format!("seccomp profile: {e}")))?;
            if !v.is_object() {
                return Err(SpecError::Invalid(
                    "seccomp profile: not a JSON object".into(),
                ));
            }
            linux["seccomp"] = v;
        }
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": o.read_only},
        "mounts": mounts,
        "linux": linux,
    });
    if network != Network::Host {
        let host = if o.hostname.is_empty() {
            id.chars().take(12).collect()
        } else {
            o.hostname.clone()
        };
        spec["hostname"] = json!(host);
    } else if !o.hostname.is_empty() {
        return Err(SpecError::Invalid(
            "--hostname cannot be used with --net host".into(),
        ));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:web:/var/www:/bin/false\n";
    const GROUP: &[u8] = b"root:x:0:\nwww:x:33:\naudio:x:29:www\nvideo:x:44:www,root\n";

    #[test]
    fn privileged_means_every_capability_berthd_has() {
        let mut o = Options {
            args: vec!["true".into()],
            privileged: true,
            available_caps: Some(vec!["CAP_CHOWN".into(), "CAP_SYS_ADMIN".into()]),
            ..Default::default()
        };
        let p = process(&serde_json::json!({}), &o, None, None).unwrap();
        assert_eq!(
            p["capabilities"]["bounding"],
            serde_json::json!(["CAP_CHOWN", "CAP_SYS_ADMIN"])
        );
        o.available_caps = None;
        let p = process(&serde_json::json!({}), &o, None, None).unwrap();
        assert_eq!(
            p["capabilities"]["bounding"].as_array().unwrap().len(),
            ALL_CAPS.len()
        );
        assert!(own_capabilities()
            .iter()
            .all(|c| ALL_CAPS.contains(&c.as_str())));
    }

    #[test]
    fn users_by_name_and_number() {
        let u = resolve_user("www", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((u.uid, u.gid), (33, 33));
        assert_eq!(u.additional_gids, [29, 44]);
        assert_eq!(u.home.as_deref(), Some("/var/www"));
        let u = resolve_user("1000:audio", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 29));
        assert_eq!(resolve_user("", None, None).unwrap().uid, 0);
        assert!(matches!(
            resolve_user("nobody", Some(PASSWD), None),
            Err(SpecError::NoSuchUser { .. })
        ));
        assert!(resolve_user("www:nogroup", Some(PASSWD), Some(GROUP)).is_err());
    }

    #[test]
    fn image_config_under_overrides() {
        let cfg = json!({"Entrypoint": ["/bin/ep"], "Cmd": ["a", "b"], "Env": ["A=1", "PATH=/x"], "WorkingDir": "/srv", "User": "www"});
        let p = process(&cfg, &Options::default(), Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(p["args"], json!(["/bin/ep", "a", "b"]));
        assert_eq!(p["cwd"], "/srv");
        assert_eq!(p["user"]["uid"], 33);
        assert_eq!(p["env"], json!(["PATH=/x", "A=1", "HOME=/var/www"]));
        let o = Options {
            args: vec!["c".into()],
            env: vec!["A=2".into()],
            user: "0".into(),
            ..Default::default()
        };
        let p = process(&cfg, &o, Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(p["args"], json!(["/bin/ep", "c"]));
        assert_eq!(p["env"][1], "A=2");
        let o = Options {
            entrypoint: Some(vec!["/bin/sh".into()]),
            ..Default::default()
        };
        let p = process(&cfg, &o, None, None).unwrap_err();
        assert!(p.to_string().contains("www"), "{p}");
        assert!(process(&json!({}), &Options::default(), None, None).is_err());
    }

    #[test]
    fn spec_namespaces_limits_and_mounts() {
        let o = Options {
            args: vec!["true".into()],
            network: Some(Network::Host),
            memory: berth_rules::size::parse("64m").unwrap(),
            milli_cpus: 1500,
            pids_limit: 20,
            read_only: true,
            binds: vec![Bind {
                source: "/data".into(),
                destination: "/d".into(),
                read_only: true,
            }],
            ..Default::default()
        };
        let s = generate("abc", "/berth/default/abc", &json!({}), &o, None, None).unwrap();
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(!ns.contains(&"network") && !ns.contains(&"uts"));
        assert!(s.get("hostname").is_none());
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 150_000);
        assert_eq!(s["linux"]["cgroupsPath"], "/berth/default/abc");
        assert_eq!(s["root"]["readonly"], true);
        let m = s["mounts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(m["options"], json!(["rbind", "rprivate", "ro"]));
        assert_eq!(
            Network::parse("bridge").unwrap(),
            Network::Cni("bridge".into())
        );
        assert!(Network::parse("../x").is_err());
        assert_eq!(Network::Container("a".into()).to_string(), "container:a");
        assert_eq!(
            Network::parse("container:web").unwrap(),
            Network::Container("web".into())
        );
        assert!(Network::parse("container:").is_err());
        assert_eq!(berth_rules::size::parse("1.5g").unwrap(), 3 << 29);
        assert!(berth_rules::size::parse("x").is_err());
    }
}
