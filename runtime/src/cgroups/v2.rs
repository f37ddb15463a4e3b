//! cgroup v2 (unified): the file writes of `linux.resources`, with the
//! conversions runc makes so one config works on v1 and v2.

use super::{shares_to_weight, Error, Write};
use oci_spec::runtime::LinuxResources;

/// blkio weight (10..1000) to io.weight (1..10000), as runc converts it.
pub fn blkio_weight_to_io(w: u64) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (w.saturating_sub(10)) * 9999 / 990
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// The v2 file writes of `linux.resources`. Devices are a BPF program,
/// handled apart.
pub fn writes(r: &LinuxResources) -> Result<Vec<Write>, Error> {
    let mut w = Vec::new();
    let m = r.memory().unwrap_or_default();
    if let Some(v) = m.reservation() {
        w.push(Write::new(
            "memory",
            "memory.low",
            max_or(v),
            "linux.resources.memory.reservation",
        ));
    }
    let limit = m.limit();
    if let Some(v) = limit {
        w.push(Write::new(
            "memory",
            "memory.max",
            max_or(v),
            "linux.resources.memory.limit",
        ));
    }
    // OCI's swap is memory+swap; v2's swap.max is swap alone.
    if let Some(s) = m.swap() {
        let v = match (s, limit) {
            (-1, _) => "max".to_string(),
            (s, Some(l)) if l > 0 && s >= l => (s - l).to_string(),
            (s, Some(l)) if l > 0 => {
                return Err(Error::Unsupported(format!(
                    "linux.resources.memory.swap {s}: must not be below memory.limit {l} (it counts memory and swap)"
                )))
            }
            _ => {
                return Err(Error::Unsupported(
                    "linux.resources.memory.swap: on cgroup v2 it needs memory.limit as well".into(),
                ))
            }
        };
        w.push(Write::new(
            "memory",
            "memory.swap.max",
            v,
            "linux.resources.memory.swap",
        ));
    }
    if m.swappiness().is_some_and(|v| v != 0) {
        return Err(Error::Unsupported(
            "linux.resources.memory.swappiness: cgroup v2 has no per-group swappiness".into(),
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(Error::Unsupported(
            "linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer"
                .into(),
        ));
    }
    let c = r.cpu().clone().unwrap_or_default();
    if let Some(v) = c.shares().filter(|v| *v > 0) {
        w.push(Write::new(
            "cpu",
            "cpu.weight",
            shares_to_weight(v),
            "linux.resources.cpu.shares",
        ));
    }
    let quota = c.quota().filter(|v| *v != 0);
    let period = c.period().filter(|v| *v > 0);
    if quota.is_some() || period.is_some() {
        let q = quota.map(max_or).unwrap_or_else(|| "max".into());
        w.push(Write::new(
            "cpu",
            "cpu.max",
            format!("{q} {}", period.unwrap_or(100_000)),
            "linux.resources.cpu.quota",
        ));
    }
    if let Some(v) = c.burst() {
        w.push(Write::new(
            "cpu",
            "cpu.max.burst",
            v,
            "linux.resources.cpu.burst",
        ));
    }
    if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
        return Err(Error::Unsupported(
            "linux.resources.cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no realtime budget"
                .into(),
        ));
    }
    super::shared_writes(r, &mut w);
    let b = r.block_io().clone().unwrap_or_default();
    if let Some(v) = b.weight().filter(|v| *v > 0) {
        // bfq takes blkio's own range; io.weight the converted one.
        w.push(
            Write::new("io", "io.bfq.weight", v, "linux.resources.blockIO.weight")
                .or_value("io.weight", blkio_weight_to_io(v.into())),
        );
    }
    if b.leaf_weight().is_some_and(|v| v > 0) {
        return Err(Error::Unsupported(
            "linux.resources.blockIO.leafWeight: cgroup v2 has no leaf weight".into(),
        ));
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(v) = d.weight() {
            let dev = format!("{}:{}", d.major(), d.minor());
            w.push(
                Write::new(
                    "io",
                    "io.bfq.weight",
                    format!("{dev} {v}"),
                    "linux.resources.blockIO.weightDevice",
                )
                .or_value(
                    "io.weight",
                    format!("{dev} {}", blkio_weight_to_io(v.into())),
                ),
            );
        }
    }
    for (list, k) in [
        (b.throttle_read_bps_device(), "rbps"),
        (b.throttle_write_bps_device(), "wbps"),
        (b.throttle_read_iops_device(), "riops"),
        (b.throttle_write_iops_device(), "wiops"),
    ] {
        for d in list.iter().flatten() {
            w.push(Write::new(
                "io",
                "io.max",
                format!("{}:{} {k}={}", d.major(), d.minor(), d.rate()),
                "linux.resources.blockIO",
            ));
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        w.push(Write::new(
            "hugetlb",
            format!("hugetlb.{}.max", h.page_size()),
            max_or(h.limit()),
            "linux.resources.hugepageLimits",
        ));
    }
    if r.network().as_ref().is_some_and(|n| {
        n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty())
    }) {
        return Err(Error::Unsupported(
            "linux.resources.network: cgroup v2 has no net_cls/net_prio (use a BPF program outside the runtime)".into(),
        ));
    }
    // Sorted: the config's map has no order, the writes do.
    let unified: std::collections::BTreeMap<_, _> = r.unified().iter().flatten().collect();
    for (k, v) in unified {
        if k.contains('/') || k.starts_with('.') || !k.contains('.') {
            return Err(Error::Unsupported(format!(
                "linux.resources.unified: {k:?} is not a cgroup interface file name"
            )));
        }
        let ctrl = k.split('.').next().unwrap_or_default();
        let controller: &'static str = match ctrl {
            "cpu" => "cpu",
            "memory" => "memory",
            "io" => "io",
            "pids" => "pids",
            "cpuset" => "cpuset",
            "hugetlb" => "hugetlb",
            "rdma" => "rdma",
            "misc" => "misc",
            _ => "cgroup",
        };
        w.push(Write::new(
            controller,
            k.clone(),
            v.as_str(),
            "linux.resources.unified",
        ));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn typed(r: serde_json::Value) -> LinuxResources {
        serde_json::from_value(r).unwrap()
    }

    fn files(r: serde_json::Value) -> Vec<(String, String)> {
        writes(&typed(r))
            .unwrap()
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect()
    }

    #[test]
    fn conversions_as_runc() {
        let f = files(json!({
            "memory": {"limit": 1048576, "swap": 3145728, "reservation": 1000},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 0},
            "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "unified": {"memory.high": "2000000"}
        }));
        let get = |n: &str| f.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("memory.max"), Some("1048576"));
        assert_eq!(get("memory.swap.max"), Some("2097152"));
        assert_eq!(get("memory.low"), Some("1000"));
        assert_eq!(get("cpu.weight"), Some("39"));
        assert_eq!(get("cpu.max"), Some("50000 100000"));
        assert_eq!(get("pids.max"), Some("max"));
        assert_eq!(get("io.max"), Some("8:0 rbps=1000"));
        assert_eq!(get("hugetlb.2MB.max"), Some("4194304"));
        assert_eq!(get("memory.high"), Some("2000000"));
        assert_eq!(blkio_weight_to_io(10), 1);
        assert_eq!(blkio_weight_to_io(1000), 10000);
    }

    #[test]
    fn v2_refuses_what_it_lacks() {
        for r in [
            json!({"memory": {"swappiness": 10}}),
            json!({"cpu": {"realtimeRuntime": 1000}}),
            json!({"network": {"classID": 1}}),
            json!({"unified": {"../x": "1"}}),
            json!({"memory": {"swap": 100, "limit": 200}}),
        ] {
            assert!(writes(&typed(r.clone())).is_err(), "{r}");
        }
        assert_eq!(
            files(json!({"memory": {"limit": -1, "swap": -1}})),
            vec![
                ("memory.max".to_string(), "max".to_string()),
                ("memory.swap.max".to_string(), "max".to_string())
            ]
        );
    }
}
