//! cgroup v1 controllers: cpuset inheritance and the devices controller.

use std::fs;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::{Error, Write};

/// A new v1 cpuset group starts with empty cpus and mems, which refuses every
/// process: copy the values down from the nearest ancestor that has them,
/// filling every empty level between (one made by somebody else and left
/// empty too), as runc does.
pub fn inherit_cpuset(dir: &Path) -> Result<(), Error> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        inherit_one(dir, f)?;
    }
    Ok(())
}

fn inherit_one(dir: &Path, f: &str) -> Result<(), Error> {
    let cur = fs::read_to_string(dir.join(f)).unwrap_or_default();
    if !cur.trim().is_empty() {
        return Ok(());
    }
    let Some(parent) = dir.parent().filter(|p| p.join(f).exists()) else {
        return Ok(()); // the hierarchy's root: the kernel fills it
    };
    inherit_one(parent, f)?;
    let v = fs::read_to_string(parent.join(f)).map_err(|err| Error::Io {
        what: "read",
        path: parent.join(f),
        err,
    })?;
    fs::write(dir.join(f), v.trim()).map_err(|err| Error::Io {
        what: "write",
        path: dir.join(f),
        err,
    })
}

/// Device rules every container gets after its own (as runc adds them): mknod
/// of anything, and the standard character devices.
pub fn default_allowed() -> Vec<String> {
    let mut v = vec!["c *:* m".to_string(), "b *:* m".to_string()];
    for (maj, min) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        v.push(format!("c {maj}:{min} rwm"));
    }
    v.push("c 136:* rwm".to_string());
    v
}

/// One rule in the kernel's `devices.allow`/`devices.deny` syntax, and
/// whether it allows.
pub fn device_rule(r: &LinuxDeviceCgroup) -> (bool, String) {
    let ty = match r.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        Some(LinuxDeviceType::B) => "b",
        Some(LinuxDeviceType::P) => "c",
        Some(LinuxDeviceType::A) | None => "a",
    };
    let access = r.access().clone().unwrap_or_else(|| "rwm".into());
    let num = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_else(|| "*".into());
    let rule = if ty == "a" && r.major().is_none() && r.minor().is_none() {
        "a".to_string()
    } else {
        format!("{ty} {}:{} {access}", num(r.major()), num(r.minor()))
    };
    (r.allow(), rule)
}

/// Applies the device rules in order to a v1 devices cgroup: deny all first,
/// then each rule, so the result does not depend on the parent's list. One
/// open of each file: the kernel takes every write(2) as one rule.
pub fn apply_devices(dir: &Path, rules: &[(bool, String)]) -> Result<(), Error> {
    let open = |file: &str| {
        fs::OpenOptions::new()
            .write(true)
            .open(dir.join(file))
            .map_err(|err| Error::Io {
                what: "open",
                path: dir.join(file),
                err,
            })
    };
    let mut deny = open("devices.deny")?;
    let mut allow = open("devices.allow")?;
    let mut write = |allowing: bool, v: &str| -> Result<(), Error> {
        let (f, file) = if allowing {
            (&mut allow, "devices.allow")
        } else {
            (&mut deny, "devices.deny")
        };
        std::io::Write::write_all(f, v.as_bytes()).map_err(|err| Error::Io {
            what: "write",
            path: dir.join(file),
            err,
        })
    };
    write(false, "a")?;
    for (allowing, rule) in rules {
        write(*allowing, rule)?;
    }
    Ok(())
}

/// The v1 file writes of `linux.resources`, in the order they must happen.
/// Devices are applied separately.
pub fn writes(r: &LinuxResources) -> Result<Vec<Write>, Error> {
    let mut w = Vec::new();
    let m = r.memory().unwrap_or_default();
    if let Some(v) = m.reservation() {
        w.push(Write::new(
            "memory",
            "memory.soft_limit_in_bytes",
            v,
            "linux.resources.memory.reservation",
        ));
    }
    // limit_in_bytes may not exceed memsw.limit_in_bytes: apply() retries the
    // pair the other way round when the kernel refuses the first order.
    if let Some(v) = m.limit() {
        w.push(Write::new(
            "memory",
            "memory.limit_in_bytes",
            v,
            "linux.resources.memory.limit",
        ));
    }
    if let Some(v) = m.swap() {
        w.push(Write::new(
            "memory",
            "memory.memsw.limit_in_bytes",
            v,
            "linux.resources.memory.swap",
        ));
    } else if m.limit() == Some(-1) {
        // An unlimited memory limit lifts memory+swap too (the kernel
        // refuses a limit above memsw), where swap accounting exists.
        let mut sw = Write::new(
            "memory",
            "memory.memsw.limit_in_bytes",
            -1,
            "linux.resources.memory.swap",
        );
        sw.optional = true;
        w.push(sw);
    }
    if let Some(v) = m.swappiness() {
        if v > 100 {
            return Err(Error::Unsupported(format!(
                "linux.resources.memory.swappiness {v}: must be 0..100"
            )));
        }
        w.push(Write::new(
            "memory",
            "memory.swappiness",
            v,
            "linux.resources.memory.swappiness",
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        w.push(Write::new(
            "memory",
            "memory.oom_control",
            1,
            "linux.resources.memory.disableOOMKiller",
        ));
    }
    if m.use_hierarchy() == Some(true) {
        w.push(Write::new(
            "memory",
            "memory.use_hierarchy",
            1,
            "linux.resources.memory.useHierarchy",
        ));
    }
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        crate::warn!("linux.resources.memory.kernel/kernelTCP: deprecated by the kernel, ignored");
    }
    let c = r.cpu().clone().unwrap_or_default();
    if let Some(v) = c.shares().filter(|v| *v > 0) {
        w.push(Write::new(
            "cpu",
            "cpu.shares",
            v,
            "linux.resources.cpu.shares",
        ));
    }
    // The period first: a quota is checked against it.
    if let Some(v) = c.period().filter(|v| *v > 0) {
        w.push(Write::new(
            "cpu",
            "cpu.cfs_period_us",
            v,
            "linux.resources.cpu.period",
        ));
    }
    if let Some(v) = c.quota().filter(|v| *v != 0) {
        w.push(Write::new(
            "cpu",
            "cpu.cfs_quota_us",
            v,
            "linux.resources.cpu.quota",
        ));
    }
    if let Some(v) = c.burst() {
        w.push(Write::new(
            "cpu",
            "cpu.cfs_burst_us",
            v,
            "linux.resources.cpu.burst",
        ));
    }
    if let Some(v) = c.realtime_period().filter(|v| *v > 0) {
        w.push(Write::new(
            "cpu",
            "cpu.rt_period_us",
            v,
            "linux.resources.cpu.realtimePeriod",
        ));
    }
    if let Some(v) = c.realtime_runtime().filter(|v| *v != 0) {
        w.push(Write::new(
            "cpu",
            "cpu.rt_runtime_us",
            v,
            "linux.resources.cpu.realtimeRuntime",
        ));
    }
    super::shared_writes(r, &mut w);
    let b = r.block_io().clone().unwrap_or_default();
    if let Some(v) = b.weight().filter(|v| *v > 0) {
        w.push(
            Write::new("blkio", "blkio.weight", v, "linux.resources.blockIO.weight")
                .or("blkio.bfq.weight"),
        );
    }
    if let Some(v) = b.leaf_weight().filter(|v| *v > 0) {
        w.push(Write::new(
            "blkio",
            "blkio.leaf_weight",
            v,
            "linux.resources.blockIO.leafWeight",
        ));
    }
    for d in b.weight_device().iter().flatten() {
        let dev = format!("{}:{}", d.major(), d.minor());
        if let Some(v) = d.weight() {
            w.push(
                Write::new(
                    "blkio",
                    "blkio.weight_device",
                    format!("{dev} {v}"),
                    "linux.resources.blockIO.weightDevice",
                )
                .or("blkio.bfq.weight_device"),
            );
        }
        if let Some(v) = d.leaf_weight() {
            w.push(Write::new(
                "blkio",
                "blkio.leaf_weight_device",
                format!("{dev} {v}"),
                "linux.resources.blockIO.weightDevice",
            ));
        }
    }
    for (list, file) in [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ] {
        for d in list.iter().flatten() {
            w.push(Write::new(
                "blkio",
                file,
                format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                "linux.resources.blockIO",
            ));
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        w.push(Write::new(
            "hugetlb",
            format!("hugetlb.{}.limit_in_bytes", h.page_size()),
            h.limit(),
            "linux.resources.hugepageLimits",
        ));
    }
    let n = r.network().clone().unwrap_or_default();
    if let Some(v) = n.class_id() {
        w.push(Write::new(
            "net_cls",
            "net_cls.classid",
            v,
            "linux.resources.network.classID",
        ));
    }
    for p in n.priorities().iter().flatten() {
        w.push(Write::new(
            "net_prio",
            "net_prio.ifpriomap",
            format!("{} {}", p.name(), p.priority()),
            "linux.resources.network.priorities",
        ));
    }
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(Error::Unsupported(
            "linux.resources.unified: needs cgroup v2, and this host's controllers are v1".into(),
        ));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let deny_all: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow": false, "access": "rwm"}"#).unwrap();
        assert_eq!(device_rule(&deny_all), (false, "a".into()));
        let null: LinuxDeviceCgroup = serde_json::from_str(
            r#"{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}"#,
        )
        .unwrap();
        assert_eq!(device_rule(&null), (true, "c 1:3 rw".into()));
        let any_block: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow": true, "type": "b"}"#).unwrap();
        assert_eq!(device_rule(&any_block), (true, "b *:* rwm".into()));
    }

    fn writes_of(r: serde_json::Value) -> Vec<(String, String)> {
        let r: LinuxResources = serde_json::from_value(r).unwrap();
        writes(&r)
            .unwrap()
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect()
    }

    fn pair(f: &str, v: &str) -> (String, String) {
        (f.to_string(), v.to_string())
    }

    #[test]
    fn memory_limit_comes_before_memsw_and_the_period_before_the_quota() {
        let w = writes_of(serde_json::json!({
            "memory": {"limit": 1048576, "swap": 2097152},
            "cpu": {"quota": 50000, "period": 100000}
        }));
        assert_eq!(
            w,
            vec![
                pair("memory.limit_in_bytes", "1048576"),
                pair("memory.memsw.limit_in_bytes", "2097152"),
                pair("cpu.cfs_period_us", "100000"),
                pair("cpu.cfs_quota_us", "50000"),
            ]
        );
    }

    #[test]
    fn an_unlimited_memory_limit_lifts_memsw_where_it_exists() {
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"memory": {"limit": -1}})).unwrap();
        let w = writes(&r).unwrap();
        assert_eq!(w[1].file, "memory.memsw.limit_in_bytes");
        assert_eq!(w[1].value, "-1");
        assert!(w[1].optional);
    }

    #[test]
    fn v1_has_what_v2_lacks() {
        let w = writes_of(serde_json::json!({
            "memory": {"swappiness": 10, "disableOOMKiller": true},
            "cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 950000},
            "blockIO": {"leafWeight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200, "leafWeight": 100}]},
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]}
        }));
        for (f, v) in [
            ("memory.swappiness", "10"),
            ("memory.oom_control", "1"),
            ("cpu.rt_period_us", "1000000"),
            ("cpu.rt_runtime_us", "950000"),
            ("blkio.leaf_weight", "300"),
            ("blkio.weight_device", "8:0 200"),
            ("blkio.leaf_weight_device", "8:0 100"),
            ("net_cls.classid", "1048577"),
            ("net_prio.ifpriomap", "eth0 5"),
        ] {
            assert!(w.contains(&pair(f, v)), "{f}: {w:?}");
        }
    }

    #[test]
    fn v1_refuses_a_swappiness_over_100_and_unified() {
        for r in [
            serde_json::json!({"memory": {"swappiness": 101}}),
            serde_json::json!({"unified": {"memory.high": "1"}}),
        ] {
            let r: LinuxResources = serde_json::from_value(r).unwrap();
            assert!(writes(&r).is_err());
        }
    }

    #[test]
    fn pids_zero_or_less_is_max_and_rdma_is_one_line_per_device_in_order() {
        let w = writes_of(serde_json::json!({
            "pids": {"limit": 0},
            "rdma": {"mlx5_1": {"hcaHandles": 3}, "mlx5_0": {"hcaObjects": 9}}
        }));
        assert_eq!(
            w,
            vec![
                pair("pids.max", "max"),
                pair("rdma.max", "mlx5_0 hca_handle=max hca_object=9"),
                pair("rdma.max", "mlx5_1 hca_handle=3 hca_object=max"),
            ]
        );
    }

    #[test]
    fn throttles_and_hugepages_name_their_device_and_size() {
        let w = writes_of(serde_json::json!({
            "blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
        }));
        assert_eq!(
            w,
            vec![
                pair("blkio.throttle.write_iops_device", "8:16 300"),
                pair("hugetlb.2MB.limit_in_bytes", "4194304"),
            ]
        );
    }
}
