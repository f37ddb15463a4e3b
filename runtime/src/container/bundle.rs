//! A bundle loaded and validated: config.json parsed, every field checked
//! before anything is made, and what later steps need kept with it.

use crate::namespaces::{self, Plan};
use crate::{hooks, process, rootfs};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};
use std::fs;
use std::path::{Path, PathBuf};

use super::*;

/// An idmapped mount: (index in mounts, uid maps, gid maps).
pub type MountIdmap = (usize, Vec<LinuxIdMapping>, Vec<LinuxIdMapping>);

/// A loaded and validated bundle.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
    pub plan: Plan,
    /// Mounts with `uidMappings`/`gidMappings` (runtime-spec 1.1, which
    /// oci-spec 0.8 does not parse).
    pub idmaps: Vec<MountIdmap>,
    /// Each `mounts[]` entry's options, parsed once here: index by index.
    pub mount_options: Vec<rootfs::MountOptions>,
}

impl Bundle {
    /// Parses the options of mounts added to the spec after loading (the
    /// notify socket's bind), so every mount has its options, index by index.
    pub fn parse_added_mounts(&mut self) -> Result<(), Error> {
        let mounts = self.spec.mounts().as_deref().unwrap_or(&[]);
        for (i, m) in mounts.iter().enumerate().skip(self.mount_options.len()) {
            let o = rootfs::parse_options(m.options().as_deref().unwrap_or(&[]))
                .map_err(|e| Error::Invalid(format!("mounts[{i}].options: {e}")))?;
            self.mount_options.push(o);
        }
        Ok(())
    }
}

/// Reads the per-mount id mappings from the raw config, refusing what
/// cannot be idmapped.
pub(super) fn mount_idmaps(
    raw: &serde_json::Value,
    options: &[rootfs::MountOptions],
) -> Result<Vec<MountIdmap>, Error> {
    let mut out = Vec::new();
    for (i, m) in raw["mounts"].as_array().into_iter().flatten().enumerate() {
        let (u, g) = (&m["uidMappings"], &m["gidMappings"]);
        if u.is_null() && g.is_null() {
            continue;
        }
        let parse = |v: &serde_json::Value, what: &str| -> Result<Vec<LinuxIdMapping>, Error> {
            if v.is_null() {
                return Ok(Vec::new());
            }
            serde_json::from_value(v.clone())
                .map_err(|e| Error::Invalid(format!("mounts[{i}].{what}: {e}")))
        };
        let (u, g) = (parse(u, "uidMappings")?, parse(g, "gidMappings")?);
        if u.is_empty() || g.is_empty() {
            return Err(Error::Invalid(format!(
                "mounts[{i}]: an idmapped mount needs both uidMappings and gidMappings"
            )));
        }
        if !options.get(i).is_some_and(|o| o.is_bind()) {
            return Err(Error::Invalid(format!(
                "mounts[{i}]: only bind mounts can be idmapped here"
            )));
        }
        out.push((i, u, g));
    }
    Ok(out)
}

/// Loads `config.json` from the bundle and validates it: every refusal names
/// the field and happens before anything is created.
pub fn load_bundle(bundle: &Path) -> Result<Bundle, Error> {
    let dir = fs::canonicalize(bundle).map_err(io_err(format!("bundle {}", bundle.display())))?;
    let cfg = dir.join("config.json");
    let data = fs::read(&cfg).map_err(io_err(format!("read {}", cfg.display())))?;
    let spec: Spec = serde_json::from_slice(&data)
        .map_err(|e| Error::Invalid(format!("parse {}: {e}", cfg.display())))?;
    let mount_options = spec
        .mounts()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| {
            rootfs::parse_options(m.options().as_deref().unwrap_or(&[]))
                .map_err(|e| Error::Invalid(format!("mounts[{i}].options: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The raw JSON only for what oci-spec drops: skip the second parse on
    // the common path, where no mapping is named at all.
    let idmaps = if data
        .windows(11)
        .any(|w| w == b"uidMappings" || w == b"gidMappings")
    {
        let raw: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| Error::Invalid(format!("parse {}: {e}", cfg.display())))?;
        mount_idmaps(&raw, &mount_options)?
    } else {
        Vec::new()
    };
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Invalid("root: missing from config.json".into()))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs =
        fs::canonicalize(&rootfs).map_err(io_err(format!("root.path {}", rootfs.display())))?;
    if !rootfs.is_dir() {
        return Err(Error::Invalid(format!(
            "root.path {}: not a directory",
            rootfs.display()
        )));
    }
    let p = spec.process().as_ref().ok_or_else(|| {
        Error::Invalid("process: missing from config.json (needed to create a container)".into())
    })?;
    process::validate(p)?;
    let plan = namespaces::plan(&spec)?;
    // Without a mount namespace of its own the container's masks would be
    // the caller's: refused, in runc's words.
    let restricts = spec.linux().as_ref().is_some_and(|l| {
        l.masked_paths().as_ref().is_some_and(|p| !p.is_empty())
            || l.readonly_paths().as_ref().is_some_and(|p| !p.is_empty())
    });
    if restricts && !plan.has(LinuxNamespaceType::Mount) {
        return Err(Error::Invalid(
            "unable to restrict sys entries without a private MNT namespace".into(),
        ));
    }
    if let Some(linux) = spec.linux() {
        for k in linux.sysctl().iter().flat_map(|s| s.keys()) {
            rootfs::validate_sysctl(
                k,
                plan.has(LinuxNamespaceType::Network),
                plan.has(LinuxNamespaceType::Ipc),
                plan.has(LinuxNamespaceType::Uts),
            )?;
        }
        if let Some(p) = linux
            .rootfs_propagation()
            .as_deref()
            .filter(|p| !p.is_empty())
        {
            rootfs::propagation_flag(p)?;
        }
        if let Some(s) = linux.seccomp() {
            crate::seccomp::validate(s)?;
        }
        if linux.intel_rdt().is_some() {
            return Err(Error::Unsupported("linux.intelRdt: not supported".into()));
        }
        for m in spec.mounts().iter().flatten() {
            if !m.destination().is_absolute() {
                return Err(Error::Invalid(format!(
                    "mounts: destination {} is not absolute",
                    m.destination().display()
                )));
            }
        }
    }
    // A joined UTS namespace gets the name too, as runc sets it there; the
    // host's own (no uts namespace at all) never does.
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !plan.has(LinuxNamespaceType::Uts)
    {
        return Err(Error::Invalid(
            "hostname: setting it needs a uts namespace, new or joined".into(),
        ));
    }
    if let Some(h) = spec.hooks() {
        hooks::validate("prestart", &hooks::from_spec(h.prestart()))?;
        hooks::validate("createRuntime", &hooks::from_spec(h.create_runtime()))?;
        hooks::validate("createContainer", &hooks::from_spec(h.create_container()))?;
        hooks::validate("startContainer", &hooks::from_spec(h.start_container()))?;
        hooks::validate("poststart", &hooks::from_spec(h.poststart()))?;
        hooks::validate("poststop", &hooks::from_spec(h.poststop()))?;
    }
    Ok(Bundle {
        dir,
        spec,
        rootfs,
        plan,
        idmaps,
        mount_options,
    })
}

#[cfg(test)]
mod tests {
    //! Every check `load_bundle` makes, one test each, without root: a
    //! bundle in a temporary directory, `berth spec`'s config changed at
    //! one JSON pointer, and the error naming what is wrong.
    use super::*;
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicU32, Ordering};

    static SEQ: AtomicU32 = AtomicU32::new(0);

    /// A bundle whose config is the default with each `(pointer, value)`
    /// set (Null removes the key), loaded; the directory is removed after.
    fn load_with(changes: &[(&str, Value)]) -> Result<Bundle, Error> {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("berth-bundle-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        let mut cfg = crate::spec::default_spec(false, 0, 0);
        for (ptr, v) in changes {
            set(&mut cfg, ptr, v.clone());
        }
        fs::write(dir.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
        let r = load_bundle(&dir);
        fs::remove_dir_all(&dir).unwrap();
        r
    }

    /// Sets the value at a JSON pointer, making objects on the way; Null
    /// removes the key.
    fn set(v: &mut Value, ptr: &str, new: Value) {
        let (parent, key) = ptr.rsplit_once('/').unwrap();
        let mut cur = v;
        for part in parent.split('/').filter(|p| !p.is_empty()) {
            cur = if let Ok(i) = part.parse::<usize>() {
                &mut cur[i]
            } else {
                cur.as_object_mut()
                    .unwrap()
                    .entry(part)
                    .or_insert_with(|| json!({}))
            };
        }
        match (cur, new) {
            (Value::Object(m), Value::Null) => {
                m.remove(key);
            }
            (Value::Object(m), new) => {
                m.insert(key.to_string(), new);
            }
            (Value::Array(a), new) => a[key.parse::<usize>().unwrap()] = new,
            (other, _) => panic!("{ptr}: not a container: {other}"),
        }
    }

    fn refused(changes: &[(&str, Value)], want: &str) {
        match load_with(changes) {
            Ok(_) => panic!("{changes:?}: accepted, want an error naming {want:?}"),
            Err(e) => assert!(e.to_string().contains(want), "{changes:?}: {e}"),
        }
    }

    /// One test per check: `name: [(pointer, value), ...] => "in the error"`.
    macro_rules! refused {
        ($($name:ident: [$(($ptr:expr, $val:expr)),* $(,)?] => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                refused(&[$(($ptr, $val)),*], $want);
            }
        )*};
    }

    refused! {
        no_root: [("/root", Value::Null)] => "root: missing";
        root_path_missing: [("/root/path", json!("no-such-dir"))] => "root.path";
        root_path_not_a_directory: [("/root/path", json!("config.json"))] => "not a directory";
        no_process: [("/process", Value::Null)] => "process: missing";
        empty_args: [("/process/args", json!([]))] => "process.args";
        relative_cwd: [("/process/cwd", json!("relative"))] => "process.cwd";
        unknown_rlimit: [("/process/rlimits", json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]))] => "RLIMIT_BOGUS";
        rlimit_soft_over_hard: [("/process/rlimits", json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]))] => "soft limit";
        masks_without_a_mount_namespace: [("/linux/namespaces", json!([{"type": "pid"}])), ("/linux/maskedPaths", json!(["/proc/kcore"]))] => "without a private MNT namespace";
        namespace_twice: [("/linux/namespaces", json!([{"type": "pid"}, {"type": "pid"}, {"type": "mount"}]))] => "listed twice";
        hostname_without_uts: [("/linux/namespaces", json!([{"type": "mount"}])), ("/hostname", json!("box"))] => "hostname";
        host_sysctl: [("/linux/sysctl", json!({"kernel.panic": "1"}))] => "kernel.panic";
        net_sysctl_without_netns: [("/linux/namespaces", json!([{"type": "mount"}])), ("/linux/sysctl", json!({"net.ipv4.ip_forward": "1"}))] => "net.ipv4.ip_forward";
        bad_rootfs_propagation: [("/linux/rootfsPropagation", json!("sideways"))] => "sideways";
        intel_rdt: [("/linux/intelRdt", json!({"closID": "x"}))] => "linux.intelRdt";
        relative_mount_destination: [("/mounts", json!([{"destination": "rel", "type": "tmpfs", "source": "t"}]))] => "not absolute";
        idmap_option_on_tmpfs: [("/mounts", json!([{"destination": "/x", "type": "tmpfs", "source": "t", "options": ["idmap"]}]))] => "mounts[0].options";
        idmapped_without_gid_map: [("/mounts", json!([{"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind"], "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}]))] => "both uidMappings and gidMappings";
        idmapped_non_bind: [("/mounts", json!([{"destination": "/x", "type": "tmpfs", "source": "t", "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}], "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}]))] => "only bind mounts";
        seccomp_unknown_action: [("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_SOMETIMES"}))] => "SCMP_ACT_SOMETIMES";
        seccomp_unknown_operator: [("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ROUGHLY"}]}]}))] => "SCMP_CMP_ROUGHLY";
        seccomp_unknown_flag: [("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}))] => "SECCOMP_FILTER_FLAG_BOGUS";
        seccomp_arg_index_past_five: [("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}))] => "arg index";
        relative_hook: [("/hooks", json!({"prestart": [{"path": "relative/hook"}]}))] => "path must be absolute";
        hook_zero_timeout: [("/hooks", json!({"poststart": [{"path": "/bin/true", "timeout": 0}]}))] => "timeout 0: must be greater than zero";
        seccomp_notify_on_write: [("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/l.sock", "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}))] => "cannot be used for write";
        seccomp_notify_without_listener: [("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}))] => "listenerPath";
        not_json: [("/ociVersion", json!(7))] => "parse";
    }

    #[test]
    fn the_default_config_loads_with_its_plan_and_options() {
        let b = load_with(&[(
            "/mounts/0/options",
            json!(["nosuid", "strictatime", "mode=755", "size=65536k"]),
        )])
        .unwrap();
        assert!(b.plan.creates(LinuxNamespaceType::Mount));
        assert!(b.plan.creates(LinuxNamespaceType::Pid));
        assert!(b.rootfs.ends_with("rootfs"));
        assert_eq!(
            b.mount_options.len(),
            b.spec.mounts().as_ref().unwrap().len()
        );
        assert!(b.idmaps.is_empty());
    }

    #[test]
    fn hostname_in_a_joined_uts_namespace_is_accepted() {
        let b = load_with(&[
            (
                "/linux/namespaces",
                json!([{"type": "mount"}, {"type": "uts", "path": "/proc/1/ns/uts"}]),
            ),
            ("/hostname", json!("box")),
        ])
        .unwrap();
        assert!(b.plan.joins(LinuxNamespaceType::Uts));
    }

    #[test]
    fn mount_options_are_parsed_once_index_by_index() {
        let b = load_with(&[(
            "/mounts",
            json!([
                {"destination": "/a", "type": "tmpfs", "source": "t", "options": ["ro", "nosuid", "size=1m"]},
                {"destination": "/b", "type": "bind", "source": "/tmp", "options": ["rbind", "rprivate"]}
            ]),
        )])
        .unwrap();
        use nix::mount::MsFlags;
        let (a, bind) = (&b.mount_options[0], &b.mount_options[1]);
        assert!(a.flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
        assert!(!a.is_bind());
        assert!(bind.is_bind() && bind.flags.contains(MsFlags::MS_REC));
    }

    #[test]
    fn mounts_added_after_loading_get_their_options() {
        let mut b = load_with(&[]).unwrap();
        let n = b.mount_options.len();
        let mut mounts = b.spec.mounts().clone().unwrap();
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination("/run/notify")
                .typ("bind")
                .source("/tmp")
                .options(vec!["bind".to_string(), "ro".to_string()])
                .build()
                .unwrap(),
        );
        b.spec.set_mounts(Some(mounts));
        b.parse_added_mounts().unwrap();
        assert_eq!(b.mount_options.len(), n + 1);
        assert!(b.mount_options[n].is_bind());
        b.parse_added_mounts().unwrap();
        assert_eq!(b.mount_options.len(), n + 1, "parsed once");
    }

    #[test]
    fn idmapped_bind_mounts_are_kept_with_their_maps() {
        let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        let b = load_with(&[(
            "/mounts",
            json!([{"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind"],
                    "uidMappings": map, "gidMappings": map}]),
        )])
        .unwrap();
        assert_eq!(b.idmaps.len(), 1);
        let (i, uid, gid) = &b.idmaps[0];
        assert_eq!(*i, 0);
        assert_eq!((uid[0].host_id(), gid[0].size()), (100000, 65536));
    }
}
