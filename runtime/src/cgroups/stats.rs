//! What `events --stats` and the shim report: CPU, memory, pids, I/O,
//! OOM kills, read from the cgroup files.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

pub(super) fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// A flat keyed file (`memory.stat`, `cpu.stat`), keys sorted as runc's
/// JSON prints a Go map.
pub(super) fn read_kv(p: &Path) -> serde_json::Map<String, serde_json::Value> {
    let sorted: std::collections::BTreeMap<String, u64> = fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse::<u64>().ok()?))
        })
        .collect();
    sorted.into_iter().map(|(k, v)| (k, v.into())).collect()
}

/// runc's `throttling`: each count only when it is not zero (`omitempty`).
fn throttling(periods: u64, throttled: u64, time_ns: u64) -> serde_json::Value {
    let mut t = serde_json::Map::new();
    for (k, v) in [
        ("periods", periods),
        ("throttledPeriods", throttled),
        ("throttledTime", time_ns),
    ] {
        if v != 0 {
            t.insert(k.into(), v.into());
        }
    }
    t.into()
}

/// runc's `pids`: the limit only when there is one (`max` is none).
fn pids(d: &Path) -> serde_json::Value {
    let mut p = serde_json::json!({"current": read_u64(&d.join("pids.current")).unwrap_or(0)});
    if let Some(limit) = read_u64(&d.join("pids.max")).filter(|&l| l > 0) {
        p["limit"] = limit.into();
    }
    p
}

fn read_list(p: &Path) -> Vec<u64> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// Resource usage as runc's `events --stats` reports it (cpu, memory, pids),
/// read from whichever of v1 and v2 the container uses, keys in runc's
/// order.
pub fn stats(layout: &Layout, dirs: &[PathBuf]) -> serde_json::Value {
    use serde_json::json;
    let find = |ctrl: &str| -> Option<&PathBuf> {
        if layout.is_pure_v2() {
            dirs.first()
        } else {
            let h = layout.v1(ctrl)?;
            dirs.iter().find(|d| d.starts_with(&h.mount))
        }
    };
    let mut out = json!({});
    if layout.is_pure_v2() {
        let Some(d) = dirs.first() else { return out };
        let cpu = read_kv(&d.join("cpu.stat"));
        let g = |k: &str| cpu.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        out["cpu"] = json!({
            "usage": {"total": g("usage_usec") * 1000, "kernel": g("system_usec") * 1000, "user": g("user_usec") * 1000},
            "throttling": throttling(g("nr_periods"), g("nr_throttled"), g("throttled_usec") * 1000),
        });
        let raw = read_kv(&d.join("memory.stat"));
        let limit = |f: &str| {
            fs::read_to_string(d.join(f))
                .ok()
                .and_then(|m| m.trim().parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        };
        out["memory"] = json!({
            "usage": {"limit": limit("memory.max"),
                      "usage": read_u64(&d.join("memory.current")).unwrap_or(0),
                      "max": read_u64(&d.join("memory.peak")).unwrap_or(0)},
            "swap": {"limit": limit("memory.swap.max"),
                     "usage": read_u64(&d.join("memory.swap.current")).unwrap_or(0)},
            "raw": raw,
        });
        out["pids"] = pids(d);
        return out;
    }
    if let Some(d) = find("cpuacct") {
        let st = read_kv(&d.join("cpuacct.stat"));
        // USER_HZ ticks to nanoseconds.
        let ticks = |k: &str| st.get(k).and_then(|v| v.as_u64()).unwrap_or(0) * 10_000_000;
        out["cpu"] = json!({"usage": {"total": read_u64(&d.join("cpuacct.usage")).unwrap_or(0),
            "percpu": read_list(&d.join("cpuacct.usage_percpu")),
            "percpu_kernel": read_list(&d.join("cpuacct.usage_percpu_sys")),
            "percpu_user": read_list(&d.join("cpuacct.usage_percpu_user")),
            "kernel": ticks("system"), "user": ticks("user")}});
    }
    if let Some(d) = find("cpu") {
        let st = read_kv(&d.join("cpu.stat"));
        let g = |k: &str| st.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        out["cpu"]["throttling"] =
            throttling(g("nr_periods"), g("nr_throttled"), g("throttled_time"));
    }
    if let Some(d) = find("memory") {
        let m = |f: &str| read_u64(&d.join(f)).unwrap_or(0);
        out["memory"] = json!({
            "usage": {"limit": m("memory.limit_in_bytes"), "usage": m("memory.usage_in_bytes"),
                      "max": m("memory.max_usage_in_bytes"), "failcnt": m("memory.failcnt")},
            "swap": {"limit": m("memory.memsw.limit_in_bytes"), "usage": m("memory.memsw.usage_in_bytes"),
                     "max": m("memory.memsw.max_usage_in_bytes"), "failcnt": m("memory.memsw.failcnt")},
            "raw": read_kv(&d.join("memory.stat")),
        });
    }
    if let Some(d) = find("pids") {
        out["pids"] = pids(d);
    }
    out
}

/// How many times the kernel OOM-killed in the container's cgroup so far.
pub fn oom_kills(layout: &Layout, dirs: &[PathBuf]) -> u64 {
    let dir = if layout.is_pure_v2() {
        dirs.first()
    } else {
        layout
            .v1("memory")
            .and_then(|h| dirs.iter().find(|d| d.starts_with(&h.mount)))
    };
    let Some(d) = dir else { return 0 };
    let file = if layout.is_pure_v2() {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    read_kv(&d.join(file))
        .get("oom_kill")
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

/// Current memory usage, for `update`'s checkBeforeUpdate.
pub fn memory_usage(layout: &Layout, dirs: &[PathBuf]) -> Option<u64> {
    if layout.is_pure_v2() {
        return read_u64(&dirs.first()?.join("memory.current"));
    }
    let h = layout.v1("memory")?;
    read_u64(
        &dirs
            .iter()
            .find(|d| d.starts_with(&h.mount))?
            .join("memory.usage_in_bytes"),
    )
}
