//! `update`'s flags (or its `-r` file) as OCI `linux.resources` JSON.

use super::flags::Parsed;

/// `update`'s resources: the `-r` file (`-` for stdin) or the flags, as
/// OCI `linux.resources` JSON.
pub fn update_resources(p: &Parsed) -> Result<serde_json::Value, String> {
    if p.get("l3-cache-schema").is_some() || p.get("mem-bw-schema").is_some() {
        return Err(
            "update: Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported".into(),
        );
    }
    if let Some(path) = p.get("resources") {
        let data = if path == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|x| format!("read resources from stdin: {x}"))?;
            s
        } else {
            std::fs::read_to_string(path).map_err(|x| format!("read {path}: {x}"))?
        };
        return serde_json::from_str(&data).map_err(|x| format!("parse resources {path}: {x}"));
    }
    let mut r = serde_json::json!({});
    let num = |name: &str| -> Result<Option<i64>, String> {
        p.get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("invalid --{name} {v:?}"))
            })
            .transpose()
    };
    let size = |name: &str| -> Result<Option<i64>, String> {
        p.get(name)
            .map(|v| {
                berth_rules::size::parse_or_unlimited(v)
                    .map_err(|_| format!("invalid --{name} {v:?}"))
            })
            .transpose()
    };
    let mut set = |path: &[&str], v: serde_json::Value| {
        let mut cur = &mut r;
        for k in &path[..path.len() - 1] {
            cur = &mut cur[*k];
        }
        cur[path[path.len() - 1]] = v;
    };
    for (flag, path) in [
        ("blkio-weight", &["blockIO", "weight"][..]),
        ("cpu-period", &["cpu", "period"]),
        ("cpu-quota", &["cpu", "quota"]),
        ("cpu-burst", &["cpu", "burst"]),
        ("cpu-share", &["cpu", "shares"]),
        ("cpu-rt-period", &["cpu", "realtimePeriod"]),
        ("cpu-rt-runtime", &["cpu", "realtimeRuntime"]),
        ("pids-limit", &["pids", "limit"]),
    ] {
        if let Some(v) = num(flag)? {
            set(path, v.into());
        }
    }
    for (flag, path) in [
        ("memory", &["memory", "limit"][..]),
        ("memory-reservation", &["memory", "reservation"]),
        ("memory-swap", &["memory", "swap"]),
    ] {
        if let Some(v) = size(flag)? {
            set(path, v.into());
        }
    }
    for (flag, key) in [("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")] {
        if let Some(v) = p.get(flag) {
            set(&["cpu", key], v.into());
        }
    }
    Ok(r)
}
