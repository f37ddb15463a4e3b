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
}

/// Reads the per-mount id mappings from the raw config, refusing what
/// cannot be idmapped.
pub(super) fn mount_idmaps(raw: &serde_json::Value, spec: &Spec) -> Result<Vec<MountIdmap>, Error> {
    let mut out = Vec::new();
    let mounts = spec.mounts().clone().unwrap_or_default();
    for (i, m) in raw["mounts"].as_array().into_iter().flatten().enumerate() {
        let (u, g) = (&m["uidMappings"], &m["gidMappings"]);
        if u.is_null() && g.is_null() {
            continue;
        }
        let parse = |v: &serde_json::Value, what: &str| -> Result<Vec<LinuxIdMapping>, Error> {
            serde_json::from_value(v.clone())
                .map_err(|e| Error::Config(format!("mounts[{i}].{what}: {e}")))
        };
        let (u, g) = (parse(u, "uidMappings")?, parse(g, "gidMappings")?);
        if u.is_empty() || g.is_empty() {
            return Err(Error::Config(format!(
                "mounts[{i}]: an idmapped mount needs both uidMappings and gidMappings"
            )));
        }
        let opts = mounts
            .get(i)
            .map(|m| rootfs::parse_options(m.options().as_deref().unwrap_or(&[])))
            .transpose()?;
        if !opts.is_some_and(|o| o.is_bind()) {
            return Err(Error::Config(format!(
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
        .map_err(|e| Error::Config(format!("parse {}: {e}", cfg.display())))?;
    // The raw JSON only for what oci-spec drops: skip the second parse on
    // the common path, where no mapping is named at all.
    let idmaps = if data
        .windows(11)
        .any(|w| w == b"uidMappings" || w == b"gidMappings")
    {
        let raw: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| Error::Config(format!("parse {}: {e}", cfg.display())))?;
        mount_idmaps(&raw, &spec)?
    } else {
        Vec::new()
    };
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Config("root: missing from config.json".into()))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs =
        fs::canonicalize(&rootfs).map_err(io_err(format!("root.path {}", rootfs.display())))?;
    if !rootfs.is_dir() {
        return Err(Error::Config(format!(
            "root.path {}: not a directory",
            rootfs.display()
        )));
    }
    let p = spec.process().as_ref().ok_or_else(|| {
        Error::Config("process: missing from config.json (needed to create a container)".into())
    })?;
    process::validate(p)?;
    let plan = namespaces::plan(&spec)?;
    if !plan.has(LinuxNamespaceType::Mount) {
        return Err(Error::Config(
            "linux.namespaces: a mount namespace is required".into(),
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
            return Err(Error::Config("linux.intelRdt: not supported".into()));
        }
        for m in spec.mounts().iter().flatten() {
            rootfs::parse_options(m.options().as_deref().unwrap_or(&[]))?;
            if !m.destination().is_absolute() {
                return Err(Error::Config(format!(
                    "mounts: destination {} is not absolute",
                    m.destination().display()
                )));
            }
        }
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !plan.creates(LinuxNamespaceType::Uts)
    {
        return Err(Error::Config(
            "hostname: setting it needs a new uts namespace".into(),
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
    })
}
