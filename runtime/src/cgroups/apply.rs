//! `linux.resources` written to the cgroup files: the plan of writes
//! (`Write`, which tests read) and its application; v1 and v2 files come from
//! `v1` and `v2`.

use std::fs;
use std::path::PathBuf;

use super::*;

/// Applies `linux.resources` to the container's directories: v1 files or
/// v2 files (with runc's conversions), and the device rules (v1
/// devices.allow/deny, v2 an eBPF program).
pub fn apply(
    layout: &Layout,
    dirs: &[PathBuf],
    res: Option<&oci_spec::runtime::LinuxResources>,
) -> Result<(), Error> {
    if let Some(r) = res {
        apply_limits(layout, dirs, r)?;
    }
    if !nix::unistd::geteuid().is_root() {
        // Device rules need privilege (CAP_SYS_ADMIN for v1 devices.*, BPF
        // for v2) even in a delegated cgroup. Rootless, the user namespace
        // already bounds devices: no mknod, and host nodes keep their modes.
        crate::debug!("rootless: device cgroup rules skipped");
        return Ok(());
    }
    let mut rules: Vec<(bool, String)> = Vec::new();
    if let Some(list) = res.and_then(|r| r.devices().as_ref()) {
        rules.extend(list.iter().map(v1::device_rule));
    }
    // Then runc's defaults. The config's device nodes are not allowed by
    // themselves: only what linux.resources.devices says, as runc does.
    rules.extend(v1::default_allowed().into_iter().map(|r| (true, r)));
    if layout.is_pure_v2() {
        if let Some(dir) = dirs.first() {
            ebpf::attach(dir, &ebpf::compile(&rules)?)?;
        }
        return Ok(());
    }
    if let Some(h) = layout.v1("devices") {
        if let Some(dir) = dirs.iter().find(|d| d.starts_with(&h.mount)) {
            v1::apply_devices(dir, &rules)?;
        }
    }
    Ok(())
}

/// Applies `linux.resources` (the config's, or `update`'s), everything but
/// devices.
pub fn apply_limits(
    layout: &Layout,
    dirs: &[PathBuf],
    res: &oci_spec::runtime::LinuxResources,
) -> Result<(), Error> {
    let writes = if layout.is_pure_v2() {
        v2::writes(res)?
    } else {
        v1::writes(res)?
    };
    let mut i = 0;
    while i < writes.len() {
        let w = &writes[i];
        match write_one(layout, dirs, w) {
            Ok(()) => i += 1,
            // Raising the limit above memsw (or lowering memsw below it)
            // fails in one order: do the pair in the other.
            Err(_)
                if w.file == "memory.limit_in_bytes"
                    && writes
                        .get(i + 1)
                        .is_some_and(|n| n.file == "memory.memsw.limit_in_bytes") =>
            {
                write_one(layout, dirs, &writes[i + 1])?;
                write_one(layout, dirs, w)?;
                i += 2;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(super) fn write_one(layout: &Layout, dirs: &[PathBuf], w: &Write) -> Result<(), Error> {
    let dir = if layout.is_pure_v2() {
        dirs.first()
    } else {
        layout
            .v1(w.controller)
            .and_then(|h| dirs.iter().find(|d| d.starts_with(&h.mount)))
    };
    let dir = dir.ok_or_else(|| {
        Error::Unsupported(format!(
            "{}: no {} hierarchy for this container here (not mounted as v1; a hybrid host's cgroup2-only controllers are not used)",
            w.field, w.controller
        ))
    })?;
    let (path, value) = match &w.alt {
        Some((alt, v)) if !dir.join(&w.file).exists() && dir.join(alt).exists() => {
            (dir.join(alt), v.as_str())
        }
        _ => (dir.join(&w.file), w.value.as_str()),
    };
    if !path.exists() && w.optional {
        return Ok(());
    }
    if !path.exists() {
        return Err(Error::Unsupported(format!(
            "{}: {} does not exist (controller {} not enabled, or not supported by this kernel)",
            w.field,
            path.display(),
            w.controller
        )));
    }
    fs::write(&path, value).map_err(|err| Error::Io {
        what: "write",
        path,
        err,
    })
}

/// Converts v1 cpu shares to a v2 cpu weight.
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// True when `linux.resources` asks for any limit (device rules aside,
/// which only restrict).
pub fn limits_requested(res: Option<&oci_spec::runtime::LinuxResources>) -> bool {
    let Some(r) = res else {
        return false;
    };
    let some_vec = |v: &Option<Vec<_>>| v.as_ref().is_some_and(|v: &Vec<_>| !v.is_empty());
    r.memory().is_some_and(|m| m != Default::default())
        || r.cpu().as_ref().is_some_and(|c| *c != Default::default())
        || r.pids().is_some()
        || r.block_io()
            .as_ref()
            .is_some_and(|b| *b != Default::default())
        || some_vec(r.hugepage_limits())
        || r.network()
            .as_ref()
            .is_some_and(|n| *n != Default::default())
        || r.rdma().as_ref().is_some_and(|m| !m.is_empty())
        || r.unified().as_ref().is_some_and(|m| !m.is_empty())
}

/// One file write a resource setting turns into: `value` to `file` in the
/// container's directory of `controller` (the unified directory on v2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: String,
    /// (file, value) written instead when `file` does not exist: bfq's blkio
    /// files on v1, plain io.weight (converted range) when io.bfq.weight is absent on v2.
    pub alt: Option<(String, String)>,
    pub value: String,
    /// The config field, for errors.
    pub field: &'static str,
    /// Skipped, not an error, when the file does not exist.
    pub optional: bool,
}

impl Write {
    pub(super) fn new(
        controller: &'static str,
        file: impl Into<String>,
        value: impl ToString,
        field: &'static str,
    ) -> Write {
        Write {
            controller,
            file: file.into(),
            alt: None,
            value: value.to_string(),
            field,
            optional: false,
        }
    }

    pub(super) fn or(mut self, alt: impl Into<String>) -> Write {
        self.alt = Some((alt.into(), self.value.clone()));
        self
    }

    pub(super) fn or_value(mut self, alt: impl Into<String>, value: impl ToString) -> Write {
        self.alt = Some((alt.into(), value.to_string()));
        self
    }
}

/// The writes v1 and v2 share file names and values for: cpu idle, cpuset
/// cpus and mems, pids.max (0 or less is "max", as runc), rdma.max.
pub(super) fn shared_writes(r: &oci_spec::runtime::LinuxResources, w: &mut Vec<Write>) {
    let c = r.cpu().clone().unwrap_or_default();
    if let Some(v) = c.idle() {
        w.push(Write::new("cpu", "cpu.idle", v, "linux.resources.cpu.idle"));
    }
    for (value, file) in [(c.cpus(), "cpuset.cpus"), (c.mems(), "cpuset.mems")] {
        if let Some(v) = value.as_deref().filter(|s| !s.is_empty()) {
            w.push(Write::new(
                "cpuset",
                file,
                v,
                "linux.resources.cpu.cpus/mems",
            ));
        }
    }
    if let Some(p) = r.pids() {
        let v = p.limit();
        let v = if v > 0 { v.to_string() } else { "max".into() };
        w.push(Write::new(
            "pids",
            "pids.max",
            v,
            "linux.resources.pids.limit",
        ));
    }
    // Sorted: the config's map has no order, the writes do.
    let rdma: std::collections::BTreeMap<_, _> = r.rdma().iter().flatten().collect();
    for (dev, l) in rdma {
        w.push(Write::new(
            "rdma",
            "rdma.max",
            rdma_line(dev, l),
            "linux.resources.rdma",
        ));
    }
}

/// `rdma.max` line: `<device> hca_handle=N hca_object=M` (max when unset).
pub(super) fn rdma_line(dev: &str, l: &oci_spec::runtime::LinuxRdma) -> String {
    let v = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_else(|| "max".into());
    format!(
        "{dev} hca_handle={} hca_object={}",
        v(l.hca_handles()),
        v(l.hca_objects())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: serde_json::Value) -> oci_spec::runtime::LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn limits_are_requested_by_any_setting_but_device_rules() {
        assert!(!limits_requested(None));
        assert!(!limits_requested(Some(&res(serde_json::json!({})))));
        assert!(!limits_requested(Some(&res(
            serde_json::json!({"devices": [{"allow": false, "access": "rwm"}], "memory": {}, "hugepageLimits": []})
        ))));
        for v in [
            serde_json::json!({"memory": {"limit": 1}}),
            serde_json::json!({"cpu": {"shares": 2}}),
            serde_json::json!({"pids": {"limit": 5}}),
            serde_json::json!({"blockIO": {"weight": 10}}),
            serde_json::json!({"unified": {"memory.high": "1"}}),
        ] {
            assert!(limits_requested(Some(&res(v.clone()))), "{v}");
        }
    }
}
