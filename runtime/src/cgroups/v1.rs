//! cgroup v1 controllers: cpuset inheritance and the devices controller.

use std::fs;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

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

fn dev(d: &serde_json::Value) -> String {
    format!("{}:{}", d["major"], d["minor"])
}

/// The v1 file writes of `linux.resources` (as JSON), in the order they must
/// happen. Devices are applied separately.
pub fn writes(r: &serde_json::Value) -> Result<Vec<Write>, Error> {
    let mut w = Vec::new();
    let m = &r["memory"];
    if let Some(v) = m["reservation"].as_i64() {
        w.push(Write::new(
            "memory",
            "memory.soft_limit_in_bytes",
            v,
            "linux.resources.memory.reservation",
        ));
    }
    // limit_in_bytes may not exceed memsw.limit_in_bytes: apply() retries the
    // pair the other way round when the kernel refuses the first order.
    if let Some(v) = m["limit"].as_i64() {
        w.push(Write::new(
            "memory",
            "memory.limit_in_bytes",
            v,
            "linux.resources.memory.limit",
        ));
    }
    if let Some(v) = m["swap"].as_i64() {
        w.push(Write::new(
            "memory",
            "memory.memsw.limit_in_bytes",
            v,
            "linux.resources.memory.swap",
        ));
    } else if m["limit"].as_i64() == Some(-1) {
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
    if let Some(v) = m["swappiness"].as_u64() {
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
    if m["disableOOMKiller"].as_bool() == Some(true) {
        w.push(Write::new(
            "memory",
            "memory.oom_control",
            1,
            "linux.resources.memory.disableOOMKiller",
        ));
    }
    if m["useHierarchy"].as_bool() == Some(true) {
        w.push(Write::new(
            "memory",
            "memory.use_hierarchy",
            1,
            "linux.resources.memory.useHierarchy",
        ));
    }
    if m["kernel"].as_i64().is_some() || m["kernelTCP"].as_i64().is_some() {
        crate::warn!("linux.resources.memory.kernel/kernelTCP: deprecated by the kernel, ignored");
    }
    let c = &r["cpu"];
    if let Some(v) = c["shares"].as_u64().filter(|v| *v > 0) {
        w.push(Write::new(
            "cpu",
            "cpu.shares",
            v,
            "linux.resources.cpu.shares",
        ));
    }
    // The period first: a quota is checked against it.
    if let Some(v) = c["period"].as_u64().filter(|v| *v > 0) {
        w.push(Write::new(
            "cpu",
            "cpu.cfs_period_us",
            v,
            "linux.resources.cpu.period",
        ));
    }
    if let Some(v) = c["quota"].as_i64().filter(|v| *v != 0) {
        w.push(Write::new(
            "cpu",
            "cpu.cfs_quota_us",
            v,
            "linux.resources.cpu.quota",
        ));
    }
    if let Some(v) = c["burst"].as_u64() {
        w.push(Write::new(
            "cpu",
            "cpu.cfs_burst_us",
            v,
            "linux.resources.cpu.burst",
        ));
    }
    if let Some(v) = c["realtimePeriod"].as_u64().filter(|v| *v > 0) {
        w.push(Write::new(
            "cpu",
            "cpu.rt_period_us",
            v,
            "linux.resources.cpu.realtimePeriod",
        ));
    }
    if let Some(v) = c["realtimeRuntime"].as_i64().filter(|v| *v != 0) {
        w.push(Write::new(
            "cpu",
            "cpu.rt_runtime_us",
            v,
            "linux.resources.cpu.realtimeRuntime",
        ));
    }
    super::shared_writes(r, &mut w);
    let b = &r["blockIO"];
    if let Some(v) = b["weight"].as_u64().filter(|v| *v > 0) {
        w.push(
            Write::new("blkio", "blkio.weight", v, "linux.resources.blockIO.weight")
                .or("blkio.bfq.weight"),
        );
    }
    if let Some(v) = b["leafWeight"].as_u64().filter(|v| *v > 0) {
        w.push(Write::new(
            "blkio",
            "blkio.leaf_weight",
            v,
            "linux.resources.blockIO.leafWeight",
        ));
    }
    for d in b["weightDevice"].as_array().into_iter().flatten() {
        if let Some(v) = d["weight"].as_u64() {
            w.push(
                Write::new(
                    "blkio",
                    "blkio.weight_device",
                    format!("{} {v}", dev(d)),
                    "linux.resources.blockIO.weightDevice",
                )
                .or("blkio.bfq.weight_device"),
            );
        }
        if let Some(v) = d["leafWeight"].as_u64() {
            w.push(Write::new(
                "blkio",
                "blkio.leaf_weight_device",
                format!("{} {v}", dev(d)),
                "linux.resources.blockIO.weightDevice",
            ));
        }
    }
    for (key, file) in [
        ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
        ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
        ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
        (
            "throttleWriteIOPSDevice",
            "blkio.throttle.write_iops_device",
        ),
    ] {
        for d in b[key].as_array().into_iter().flatten() {
            w.push(Write::new(
                "blkio",
                file,
                format!("{} {}", dev(d), d["rate"]),
                "linux.resources.blockIO",
            ));
        }
    }
    for h in r["hugepageLimits"].as_array().into_iter().flatten() {
        let size = h["pageSize"].as_str().unwrap_or_default();
        w.push(Write::new(
            "hugetlb",
            format!("hugetlb.{size}.limit_in_bytes"),
            h["limit"].as_i64().unwrap_or(0),
            "linux.resources.hugepageLimits",
        ));
    }
    let n = &r["network"];
    if let Some(v) = n["classID"].as_u64() {
        w.push(Write::new(
            "net_cls",
            "net_cls.classid",
            v,
            "linux.resources.network.classID",
        ));
    }
    for p in n["priorities"].as_array().into_iter().flatten() {
        w.push(Write::new(
            "net_prio",
            "net_prio.ifpriomap",
            format!(
                "{} {}",
                p["name"].as_str().unwrap_or_default(),
                p["priority"]
            ),
            "linux.resources.network.priorities",
        ));
    }
    if r["unified"].as_object().is_some_and(|u| !u.is_empty()) {
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
}
