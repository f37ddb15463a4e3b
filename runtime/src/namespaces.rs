//! Linux namespaces from `linux.namespaces`: which to create with the clone,
//! which to join by path, and the id maps of a new user namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

/// Errors of namespace handling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("linux.namespaces: {0} namespace listed twice")]
    Duplicate(&'static str),
    #[error("linux.namespaces: {0}")]
    Invalid(String),
    #[error("{what} {path}: {err}")]
    Io {
        what: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    /// A setuid map helper (newuidmap/newgidmap) failed or is missing.
    #[error("linux.{field}: {message}")]
    MapHelper {
        field: &'static str,
        message: String,
    },
}

/// The proc name of a namespace type (`/proc/<pid>/ns/<name>`).
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
}

/// The clone/unshare flag of a namespace type.
pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// Every namespace type, user first (the order joins must follow).
pub const ALL: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
];

/// The namespaces of process `pid` that differ from ours, as clone flags:
/// what a process entering its container must join. A type this kernel
/// lacks is skipped.
pub fn differing(pid: i32) -> Result<CloneFlags, Error> {
    use std::os::unix::fs::MetadataExt;
    let mut out = CloneFlags::empty();
    for t in ALL {
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{}", proc_name(t)));
        let ours = std::fs::metadata(format!("/proc/self/ns/{}", proc_name(t)));
        let theirs_md = match std::fs::metadata(&theirs) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound && ours.is_err() => continue,
            Err(err) => {
                return Err(Error::Io {
                    what: "inspect namespace",
                    path: theirs,
                    err,
                })
            }
        };
        let same = ours.is_ok_and(|m| m.dev() == theirs_md.dev() && m.ino() == theirs_md.ino());
        if !same {
            out |= flag(t);
        }
    }
    Ok(out)
}

/// What to do about namespaces, decided once from the config.
#[derive(Debug)]
pub struct Plan {
    /// Namespaces created by the clone itself (user, mount, uts, ipc, net, pid).
    pub clone: CloneFlags,
    /// Created by `unshare` in the child after it joined its cgroup, so that
    /// the namespace's root is the container's cgroup.
    pub new_cgroup: bool,
    /// Created by `unshare` in the parent before the clone (only children enter
    /// a new time namespace), with offsets written first.
    pub new_time: bool,
    /// Namespaces joined by path in the child, user namespace first.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// Joined in the parent before the clone (pid and time apply to children).
    pub join_before_clone: Vec<(LinuxNamespaceType, PathBuf)>,
    /// With a new user namespace: joined by the parent just before the clone
    /// and left right after, so the child inherits them. The child, already
    /// in its new user namespace, may not enter namespaces the host's user
    /// namespace owns (runc joins them before it unshares the user one).
    pub join_around_clone: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            clone: CloneFlags::empty(),
            new_cgroup: false,
            new_time: false,
            join: Vec::new(),
            join_before_clone: Vec::new(),
            join_around_clone: Vec::new(),
        }
    }
}

impl Plan {
    /// True when the container gets or joins a namespace of this type.
    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.clone.contains(flag(t))
            || (t == LinuxNamespaceType::Cgroup && self.new_cgroup)
            || (t == LinuxNamespaceType::Time && self.new_time)
            || self.joins(t)
    }

    /// True when the container gets a new namespace of this type.
    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.clone.contains(flag(t))
            || (t == LinuxNamespaceType::Cgroup && self.new_cgroup)
            || (t == LinuxNamespaceType::Time && self.new_time)
    }

    /// True when the container joins an existing namespace of this type.
    pub fn joins(&self, t: LinuxNamespaceType) -> bool {
        self.join
            .iter()
            .chain(&self.join_before_clone)
            .chain(&self.join_around_clone)
            .any(|(j, _)| *j == t)
    }
}

/// Builds the plan from the config, rejecting duplicates and contradictions.
pub fn plan(spec: &Spec) -> Result<Plan, Error> {
    let mut p = Plan::default();
    let Some(linux) = spec.linux() else {
        return Ok(p);
    };
    let mut seen = Vec::new();
    for ns in linux.namespaces().iter().flatten() {
        let t = ns.typ();
        if seen.contains(&t) {
            return Err(Error::Duplicate(proc_name(t)));
        }
        seen.push(t);
        match ns.path() {
            Some(path) if !path.as_os_str().is_empty() => {
                if !path.is_absolute() {
                    return Err(Error::Invalid(format!(
                        "{} namespace path {} is not absolute",
                        proc_name(t),
                        path.display()
                    )));
                }
                if matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
                    p.join_before_clone.push((t, path.clone()));
                } else if t == LinuxNamespaceType::User {
                    p.join.insert(0, (t, path.clone()));
                } else {
                    p.join.push((t, path.clone()));
                }
            }
            _ => match t {
                LinuxNamespaceType::Cgroup => p.new_cgroup = true,
                LinuxNamespaceType::Time => p.new_time = true,
                _ => p.clone |= flag(t),
            },
        }
    }
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    // With a user namespace joined by path the maps say what it must map
    // (containerd sends both for a pod's); they are checked once joined.
    if has_maps && !p.creates(LinuxNamespaceType::User) && !p.joins(LinuxNamespaceType::User) {
        return Err(Error::Invalid(
            "uidMappings/gidMappings need a user namespace, new or joined by path".into(),
        ));
    }
    if p.creates(LinuxNamespaceType::User) && !has_maps {
        return Err(Error::Invalid(
            "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
        ));
    }
    if p.creates(LinuxNamespaceType::User) {
        // ipc, uts, net and cgroup namespaces are entered from outside the
        // new user namespace; a mount namespace by path stays the child's.
        let (around, rest): (Vec<_>, Vec<_>) = p.join.drain(..).partition(|(t, _)| {
            matches!(
                t,
                LinuxNamespaceType::Ipc
                    | LinuxNamespaceType::Uts
                    | LinuxNamespaceType::Network
                    | LinuxNamespaceType::Cgroup
            )
        });
        p.join = rest;
        p.join_around_clone = around;
    }
    if linux.time_offsets().as_ref().is_some_and(|o| !o.is_empty()) && !p.new_time {
        return Err(Error::Invalid(
            "linux.timeOffsets need a new time namespace".into(),
        ));
    }
    Ok(p)
}

/// setns(2) into the namespace at `path`; the kernel checks it is one of type `t`.
pub fn join(t: LinuxNamespaceType, path: &PathBuf) -> Result<(), Error> {
    let f = File::open(path).map_err(|err| Error::Io {
        what: "open namespace",
        path: path.clone(),
        err,
    })?;
    nix::sched::setns(f.as_fd(), flag(t)).map_err(|e| Error::Io {
        what: "join namespace",
        path: path.clone(),
        err: e.into(),
    })
}

/// Whether `proc_map` (a /proc/PID/uid_map or gid_map as read) holds
/// exactly the ranges of `maps`, whatever the spacing.
pub fn map_matches(proc_map: &str, maps: &[LinuxIdMapping]) -> bool {
    let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    words(proc_map) == words(&format_map(maps))
}

/// Formats id mappings as written to uid_map/gid_map.
pub fn format_map(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Whether an unprivileged caller may write `maps` itself: the kernel allows
/// exactly one id, the caller's own, mapped once.
pub fn self_map_only(maps: &[LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.size() == 1 && m.host_id() == own)
}

/// Writes the id maps of a child's new user namespace. A privileged parent
/// writes them directly. An unprivileged one writes a map of its own id
/// itself (gid_map after denying setgroups, as the kernel requires) and has
/// anything wider written by the setuid helpers newuidmap/newgidmap, which
/// check the ranges against /etc/subuid and /etc/subgid.
pub fn write_id_maps(
    pid: i32,
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
    rootless: bool,
) -> Result<(), Error> {
    let w = |name: &str, data: &str| {
        let path = PathBuf::from(format!("/proc/{pid}/{name}"));
        std::fs::write(&path, data).map_err(|err| Error::Io {
            what: "write",
            path,
            err,
        })
    };
    let (euid, egid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    if !uid.is_empty() {
        if rootless && !self_map_only(uid, euid) {
            map_helper("newuidmap", "uidMappings", pid, uid)?;
        } else {
            w("uid_map", &format_map(uid))?;
        }
    }
    if !gid.is_empty() {
        if rootless && !self_map_only(gid, egid) {
            // newgidmap leaves setgroups allowed: it is privileged.
            map_helper("newgidmap", "gidMappings", pid, gid)?;
        } else {
            if rootless {
                w("setgroups", "deny")?;
            }
            w("gid_map", &format_map(gid))?;
        }
    } else if rootless {
        w("setgroups", "deny")?;
    }
    Ok(())
}

/// The argument list of newuidmap/newgidmap: `PID inside outside count ...`.
pub fn helper_args(pid: i32, maps: &[LinuxIdMapping]) -> Vec<String> {
    std::iter::once(pid.to_string())
        .chain(
            maps.iter()
                .flat_map(|m| [m.container_id(), m.host_id(), m.size()].map(|n| n.to_string())),
        )
        .collect()
}

/// Runs newuidmap or newgidmap for `pid` (fork+exec: berth is single-threaded).
fn map_helper(
    helper: &str,
    field: &'static str,
    pid: i32,
    maps: &[LinuxIdMapping],
) -> Result<(), Error> {
    let out = std::process::Command::new(helper)
        .args(helper_args(pid, maps))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::MapHelper {
            field,
            message: if e.kind() == io::ErrorKind::NotFound {
                format!(
                    "mapping more than your own id needs {helper} (Debian: apt-get install uidmap) \
                     and ranges in /etc/sub{}id",
                    &field[..1]
                )
            } else {
                format!("run {helper}: {e}")
            },
        })?;
    if !out.status.success() {
        return Err(Error::MapHelper {
            field,
            message: format!(
                "{helper} {}: {}",
                helper_args(pid, maps).join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Writes time namespace offsets for the calling process's new time
/// namespace (before any process has entered it).
pub fn write_time_offsets(spec: &Spec) -> Result<(), Error> {
    let Some(offsets) = spec.linux().as_ref().and_then(|l| l.time_offsets().clone()) else {
        return Ok(());
    };
    let mut data = String::new();
    for (clock, off) in &offsets {
        let name = match clock.as_str() {
            "monotonic" => "monotonic",
            "boottime" => "boottime",
            other => {
                return Err(Error::Invalid(format!(
                    "timeOffsets: unknown clock {other:?} (monotonic or boottime)"
                )))
            }
        };
        data.push_str(&format!(
            "{name} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    let path = PathBuf::from("/proc/self/timens_offsets");
    std::fs::write(&path, data).map_err(|err| Error::Io {
        what: "write",
        path,
        err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec with these `linux` fields.
    fn spec_with(linux: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2", "linux": linux})).unwrap()
    }

    fn plan_of(linux: serde_json::Value) -> Result<Plan, Error> {
        plan(&spec_with(linux))
    }

    macro_rules! creates {
        ($($name:ident: $t:literal => $ty:expr, $flag:expr;)*) => {$(
            #[test]
            fn $name() {
                let p = plan_of(serde_json::json!({"namespaces": [{"type": $t}]})).unwrap();
                assert!(p.creates($ty) && p.has($ty) && !p.joins($ty));
                assert_eq!(p.clone, $flag);
            }
        )*};
    }

    creates! {
        new_pid_is_a_clone_flag: "pid" => LinuxNamespaceType::Pid, CloneFlags::CLONE_NEWPID;
        new_network_is_a_clone_flag: "network" => LinuxNamespaceType::Network, CloneFlags::CLONE_NEWNET;
        new_mount_is_a_clone_flag: "mount" => LinuxNamespaceType::Mount, CloneFlags::CLONE_NEWNS;
        new_ipc_is_a_clone_flag: "ipc" => LinuxNamespaceType::Ipc, CloneFlags::CLONE_NEWIPC;
        new_uts_is_a_clone_flag: "uts" => LinuxNamespaceType::Uts, CloneFlags::CLONE_NEWUTS;
        new_cgroup_is_unshared_after_the_join: "cgroup" => LinuxNamespaceType::Cgroup, CloneFlags::empty();
        new_time_is_unshared_before_the_clone: "time" => LinuxNamespaceType::Time, CloneFlags::empty();
    }

    #[test]
    fn no_linux_section_means_no_namespaces() {
        let p = plan(&serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2"})).unwrap())
            .unwrap();
        assert!(p.clone.is_empty() && p.join.is_empty() && !p.new_cgroup && !p.new_time);
    }

    #[test]
    fn a_joined_user_namespace_comes_first() {
        let p = plan_of(serde_json::json!({"namespaces": [
            {"type": "network", "path": "/proc/1/ns/net"},
            {"type": "user", "path": "/proc/1/ns/user"},
            {"type": "mount"}
        ]}))
        .unwrap();
        assert_eq!(p.join[0].0, LinuxNamespaceType::User);
        assert_eq!(p.join[1].0, LinuxNamespaceType::Network);
        assert!(p.joins(LinuxNamespaceType::User) && !p.creates(LinuxNamespaceType::User));
    }

    #[test]
    fn with_a_new_user_namespace_others_are_joined_around_the_clone() {
        let p = plan_of(serde_json::json!({
            "namespaces": [{"type": "user"}, {"type": "mount"},
                {"type": "ipc", "path": "/p/ipc"}, {"type": "network", "path": "/p/net"},
                {"type": "uts", "path": "/p/uts"}],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}]
        }))
        .unwrap();
        let around: Vec<_> = p
            .join_around_clone
            .iter()
            .map(|(t, _)| proc_name(*t))
            .collect();
        assert_eq!(around, ["ipc", "net", "uts"]);
        assert!(p.join.is_empty());
        assert!(p.joins(LinuxNamespaceType::Ipc) && p.creates(LinuxNamespaceType::User));
        // Without a new user namespace the child joins them, as before.
        let q = plan_of(serde_json::json!({"namespaces": [{"type": "ipc", "path": "/p/ipc"}]}))
            .unwrap();
        assert!(q.join_around_clone.is_empty() && q.join.len() == 1);
    }

    #[test]
    fn pid_and_time_are_joined_before_the_clone() {
        let p = plan_of(serde_json::json!({"namespaces": [
            {"type": "pid", "path": "/proc/1/ns/pid"},
            {"type": "time", "path": "/proc/1/ns/time"},
            {"type": "mount"}
        ]}))
        .unwrap();
        let before: Vec<_> = p.join_before_clone.iter().map(|(t, _)| *t).collect();
        assert_eq!(before, [LinuxNamespaceType::Pid, LinuxNamespaceType::Time]);
        assert!(p.join.is_empty());
    }

    #[test]
    fn an_empty_path_means_a_new_namespace() {
        let p =
            plan_of(serde_json::json!({"namespaces": [{"type": "network", "path": ""}]})).unwrap();
        assert!(p.creates(LinuxNamespaceType::Network));
    }

    #[test]
    fn a_relative_namespace_path_is_refused() {
        let e = plan_of(serde_json::json!({"namespaces": [{"type": "network", "path": "ns/net"}]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not absolute") && e.contains("net"), "{e}");
    }

    #[test]
    fn id_maps_need_a_new_user_namespace_and_the_reverse() {
        let map = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        let e = plan_of(serde_json::json!({"namespaces": [{"type": "mount"}], "uidMappings": map, "gidMappings": map}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("need a user namespace"), "{e}");
        // Joined by path, the maps say what the namespace must map.
        let p = plan_of(serde_json::json!({"namespaces": [{"type": "user", "path": "/p/ns/user"}], "uidMappings": map, "gidMappings": map}))
            .unwrap();
        assert!(p.joins(LinuxNamespaceType::User) && !p.creates(LinuxNamespaceType::User));
        let e = plan_of(serde_json::json!({"namespaces": [{"type": "user"}]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.uidMappings"), "{e}");
        assert!(plan_of(serde_json::json!({"namespaces": [{"type": "user"}], "uidMappings": map, "gidMappings": map})).is_ok());
    }

    #[test]
    fn time_offsets_need_a_new_time_namespace() {
        let e = plan_of(serde_json::json!({"namespaces": [{"type": "mount"}],
            "timeOffsets": {"monotonic": {"secs": 1, "nanosecs": 0}}}))
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux.timeOffsets"), "{e}");
    }

    fn maps(v: &[(u32, u32, u32)]) -> Vec<LinuxIdMapping> {
        v.iter()
            .map(|&(c, h, n)| {
                serde_json::from_value(
                    serde_json::json!({"containerID": c, "hostID": h, "size": n}),
                )
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn only_a_single_own_id_is_written_without_helpers() {
        assert!(self_map_only(&maps(&[(0, 1000, 1)]), 1000));
        assert!(!self_map_only(&maps(&[(0, 1000, 2)]), 1000));
        assert!(!self_map_only(&maps(&[(0, 1001, 1)]), 1000));
        assert!(!self_map_only(
            &maps(&[(0, 1000, 1), (1, 100000, 65536)]),
            1000
        ));
        assert_eq!(
            helper_args(42, &maps(&[(0, 1000, 1), (1, 100000, 65536)])),
            ["42", "0", "1000", "1", "1", "100000", "65536"]
        );
    }

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plan_splits_new_and_joined() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/proc/1/ns/net"},
            {"type":"cgroup"},{"type":"mount"},{"type":"user","path":"/proc/1/ns/user"}]}}"#,
        );
        let p = plan(&s).unwrap();
        assert!(p
            .clone
            .contains(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS));
        assert!(!p.clone.contains(CloneFlags::CLONE_NEWNET));
        assert!(p.new_cgroup);
        assert_eq!(p.join[0].0, LinuxNamespaceType::User);
        assert!(p.has(LinuxNamespaceType::Network) && !p.creates(LinuxNamespaceType::Network));
    }

    #[test]
    fn duplicates_and_maps_rejected() {
        let dup = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}"#,
        );
        assert!(plan(&dup)
            .unwrap_err()
            .to_string()
            .contains("pid namespace listed twice"));
        let maps = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"}],"uidMappings":[{"containerID":0,"hostID":1000,"size":1}]}}"#,
        );
        assert!(plan(&maps).is_err());
    }

    #[test]
    fn map_format() {
        let m: Vec<LinuxIdMapping> =
            serde_json::from_str(r#"[{"containerID":0,"hostID":100000,"size":65536}]"#).unwrap();
        assert_eq!(format_map(&m), "0 100000 65536\n");
    }
}
