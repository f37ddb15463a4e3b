//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is
//! a transient scope unit that systemd makes and owns, delegated to us.
//!
//! This module is the plan, readable by tests without systemd: the unit's
//! name and slice from runc's `slice:prefix:name` cgroupsPath, the cgroup
//! path systemd gives it, and the unit properties `linux.resources` maps
//! to. [`dbus`] carries them to systemd.

pub mod dbus;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::{shares_to_weight, Error};

/// Where a container's scope goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// The unit, `<prefix>-<name>.scope`.
    pub name: String,
    /// The slice it is placed in, e.g. `system.slice`.
    pub slice: String,
}

impl Unit {
    /// The unit from runc's `slice:prefix:name` form; no cgroupsPath is
    /// `<default slice>:berth:<id>`, as runc's default is its own. The
    /// default slice is `system.slice` for the system's manager and
    /// `user.slice` for a user's (`user`), as runc's.
    pub fn parse(cgroups_path: Option<&str>, id: &str, user: bool) -> Result<Unit, Error> {
        let default_slice = if user { "user.slice" } else { "system.slice" };
        let path = cgroups_path
            .filter(|p| !p.is_empty())
            .map(String::from)
            .unwrap_or_else(|| format!("{default_slice}:berth:{id}"));
        let parts: Vec<&str> = path.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(Error::Unsupported(format!(
                "linux.cgroupsPath {path:?}: the systemd cgroup driver expects \"slice:prefix:name\" (e.g. \"system.slice:berth:{id}\")"
            )));
        };
        if name.is_empty() || name.contains('/') || prefix.contains('/') {
            return Err(Error::Unsupported(format!(
                "linux.cgroupsPath {path:?}: the unit's name must be a plain name"
            )));
        }
        if name.ends_with(".slice") {
            return Err(Error::Unsupported(format!(
                "linux.cgroupsPath {path:?}: a container in a slice unit of its own is not supported; name a scope"
            )));
        }
        let slice = if slice.is_empty() {
            default_slice
        } else {
            slice
        };
        slice_path(slice)?;
        let name = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        Ok(Unit {
            name,
            slice: slice.to_string(),
        })
    }

    /// The cgroup path systemd gives the scope, from the hierarchy's root.
    pub fn cgroup_path(&self) -> String {
        let s = slice_path(&self.slice).unwrap_or_default();
        format!("{}/{}", s.trim_end_matches('/'), self.name)
    }
}

/// A scope of its own for a process that is not a container (a shim):
/// named `unit` (it must end in `.scope`) in `slice`, holding `pid`, not
/// delegated, collected by systemd once the process is gone.
pub fn process_scope(unit: &str, slice: &str, pid: u32) -> Result<(Unit, Vec<Prop>), Error> {
    if !unit.ends_with(".scope") || unit.contains('/') || unit.len() <= ".scope".len() {
        return Err(Error::Unsupported(format!(
            "systemd-scope: unit {unit:?} must be a plain name ending in .scope"
        )));
    }
    slice_path(slice)?;
    let u = Unit {
        name: unit.to_string(),
        slice: slice.to_string(),
    };
    let props = vec![
        Prop::Str("Description", format!("berth {unit}")),
        Prop::Str("Slice", slice.to_string()),
        Prop::U32s("PIDs", vec![pid]),
        Prop::Bool("DefaultDependencies", false),
        // No failed unit is left behind when the process is killed.
        Prop::Str("CollectMode", "inactive-or-failed".into()),
    ];
    Ok((u, props))
}

/// systemd's path for a slice: `a-b-c.slice` is `/a.slice/a-b.slice/a-b-c.slice`,
/// `-.slice` is the root.
pub fn slice_path(slice: &str) -> Result<String, Error> {
    let bad = || {
        Error::Unsupported(format!(
            "slice {slice:?}: not a valid slice name (a-b.slice, each part non-empty)"
        ))
    };
    if slice == "-.slice" {
        return Ok("/".into());
    }
    let stem = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if stem.is_empty() || stem.contains('/') {
        return Err(bad());
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return Err(bad());
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
    }
    Ok(out)
}

/// A unit property as systemd's D-Bus API types it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prop {
    /// `b`
    Bool(&'static str, bool),
    /// `t`
    U64(&'static str, u64),
    /// `s`
    Str(&'static str, String),
    /// `ay` (a CPU or NUMA node bitmask)
    Bytes(&'static str, Vec<u8>),
    /// `au` (the scope's pids)
    U32s(&'static str, Vec<u32>),
    /// `a(ss)` (DeviceAllow: path, access)
    Pairs(&'static str, Vec<(String, String)>),
    /// `a(st)` (I/O limits: device path, value)
    PathValues(&'static str, Vec<(String, u64)>),
}

impl Prop {
    /// The property's name.
    pub fn name(&self) -> &'static str {
        match self {
            Prop::Bool(n, _)
            | Prop::U64(n, _)
            | Prop::Str(n, _)
            | Prop::Bytes(n, _)
            | Prop::U32s(n, _)
            | Prop::Pairs(n, _)
            | Prop::PathValues(n, _) => n,
        }
    }
}

/// systemd's "infinity".
const INFINITY: u64 = u64::MAX;

fn limit(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(INFINITY)
}

/// A cpuset list (`0-2,5`) as systemd's bitmask: bit N of byte N/8.
pub fn cpuset_mask(list: &str) -> Result<Vec<u8>, Error> {
    let bad = || Error::Unsupported(format!("cpuset {list:?}: not a list such as 0-2,5"));
    let mut mask: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
            None => (part.parse::<usize>(), part.parse::<usize>()),
        };
        let (a, b) = (a.map_err(|_| bad())?, b.map_err(|_| bad())?);
        if a > b || b >= 8192 {
            return Err(bad());
        }
        for n in a..=b {
            if mask.len() <= n / 8 {
                mask.resize(n / 8 + 1, 0);
            }
            mask[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(mask)
}

/// The device rules of `linux.resources.devices` as DevicePolicy and
/// DeviceAllow: a rule that allows everything leaves the policy `auto`;
/// otherwise `strict` with each allowed device (by `/dev/char/M:N`, or
/// `char-*`/`block-*` for a whole type). Deny rules after allows, which
/// systemd cannot say, are left to the runtime's own device program.
fn devices(rules: &[LinuxDeviceCgroup]) -> Vec<Prop> {
    let mut allow_all = false;
    let mut allowed = Vec::new();
    for r in rules {
        let access = r.access().clone().unwrap_or_else(|| "rwm".into());
        let (maj, min) = (r.major(), r.minor());
        let kind = match r.typ() {
            Some(LinuxDeviceType::B) => Some("block"),
            Some(LinuxDeviceType::C | LinuxDeviceType::U | LinuxDeviceType::P) => Some("char"),
            Some(LinuxDeviceType::A) | None => None,
        };
        if !r.allow() {
            if kind.is_none() && maj.is_none() && min.is_none() {
                allow_all = false;
                allowed.clear();
            }
            continue;
        }
        let Some(kind) = kind else {
            allow_all = true;
            continue;
        };
        match (maj, min) {
            (Some(a), Some(b)) => allowed.push((format!("/dev/{kind}/{a}:{b}"), access)),
            // A whole major: systemd names it by its driver (`char-pts`).
            (Some(a), None) => match driver_name(kind, a) {
                Some(name) => allowed.push((format!("{kind}-{name}"), access)),
                None => crate::debug!("systemd: no {kind} driver of major {a}; rule skipped"),
            },
            _ => allowed.push((format!("{kind}-*"), access)),
        }
    }
    if allow_all {
        return vec![Prop::Str("DevicePolicy", "auto".into())];
    }
    vec![
        Prop::Str("DevicePolicy", "strict".into()),
        Prop::Pairs("DeviceAllow", allowed),
    ]
}

/// The driver of a device major, from /proc/devices ("136 pts").
fn driver_name(kind: &str, major: i64) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    let section = if kind == "block" {
        "Block devices:"
    } else {
        "Character devices:"
    };
    text.split("\n\n")
        .find(|s| s.trim_start().starts_with(section))?
        .lines()
        .skip(1)
        .find_map(|l| {
            let (n, name) = l.trim().split_once(' ')?;
            (n.parse::<i64>().ok()? == major).then(|| name.trim().to_string())
        })
}

/// A default rule (`c 1:3 rwm`, `c *:* m`) as an OCI device rule.
fn default_rule(rule: &str) -> Option<LinuxDeviceCgroup> {
    let mut it = rule.split(' ');
    let (ty, nums, access) = (it.next()?, it.next()?, it.next()?);
    let (maj, min) = nums.split_once(':')?;
    let typ = match ty {
        "b" => LinuxDeviceType::B,
        "c" => LinuxDeviceType::C,
        _ => LinuxDeviceType::A,
    };
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(Some(typ));
    r.set_access(Some(access.to_string()));
    r.set_major(maj.parse().ok());
    r.set_minor(min.parse().ok());
    Some(r)
}

/// blkio's 10..1000 weight as io's 1..10000 (runc's conversion).
fn io_weight(w: u64) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (w.saturating_sub(10)) * 9999 / 990
}

/// The unit properties for `linux.resources`, on cgroup v2
/// (`v2`) or v1, with the scope's own settings when `start` (its pids, its
/// slice, delegation).
pub fn properties(
    res: &LinuxResources,
    v2: bool,
    start: Option<(&Unit, u32)>,
) -> Result<Vec<Prop>, Error> {
    let mut p = Vec::new();
    if let Some((unit, pid)) = start {
        p.push(Prop::Str(
            "Description",
            format!("berth container {}", unit.name),
        ));
        p.push(Prop::Str("Slice", unit.slice.clone()));
        p.push(Prop::U32s("PIDs", vec![pid]));
        // The runtime writes what systemd has no property for, and the
        // container may make sub-cgroups: the scope is delegated.
        p.push(Prop::Bool("Delegate", true));
        p.push(Prop::Bool("DefaultDependencies", false));
        for a in [
            "MemoryAccounting",
            "CPUAccounting",
            "TasksAccounting",
            "IOAccounting",
        ] {
            p.push(Prop::Bool(a, true));
        }
    }
    let m = res.memory().unwrap_or_default();
    if let Some(l) = m.limit() {
        p.push(Prop::U64(
            if v2 { "MemoryMax" } else { "MemoryLimit" },
            limit(l),
        ));
    }
    if let (true, Some(r)) = (v2, m.reservation()) {
        p.push(Prop::U64("MemoryLow", limit(r)));
    }
    if let (true, Some(sw)) = (v2, m.swap()) {
        // OCI's swap is memory plus swap; systemd's is swap alone.
        let max = match (sw, m.limit()) {
            (-1, _) => INFINITY,
            (sw, Some(l)) if l > 0 => limit(sw).saturating_sub(limit(l)),
            (sw, _) => limit(sw),
        };
        p.push(Prop::U64("MemorySwapMax", max));
    }
    let c = res.cpu().clone().unwrap_or_default();
    if let Some(s) = c.shares().filter(|s| *s > 0) {
        if v2 {
            p.push(Prop::U64("CPUWeight", shares_to_weight(s)));
        } else {
            p.push(Prop::U64("CPUShares", s));
        }
    }
    let period = c.period().filter(|p| *p > 0);
    if let Some(q) = c.quota().filter(|q| *q != 0) {
        let per_sec = if q < 0 {
            INFINITY
        } else {
            let period = period.unwrap_or(100_000);
            // systemd keeps the quota per second in 10 ms steps: round up,
            // as runc does, so a quota is never below what was asked.
            let us = (limit(q) * 1_000_000).div_ceil(period);
            us.div_ceil(10_000) * 10_000
        };
        p.push(Prop::U64("CPUQuotaPerSecUSec", per_sec));
    }
    if let Some(period) = period {
        p.push(Prop::U64("CPUQuotaPeriodUSec", period));
    }
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        p.push(Prop::Bytes("AllowedCPUs", cpuset_mask(cpus)?));
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        p.push(Prop::Bytes("AllowedMemoryNodes", cpuset_mask(mems)?));
    }
    if let Some(pids) = res.pids() {
        let l = pids.limit();
        p.push(Prop::U64(
            "TasksMax",
            if l <= 0 { INFINITY } else { limit(l) },
        ));
    }
    let b = res.block_io().clone().unwrap_or_default();
    if let Some(w) = b.weight() {
        if v2 {
            p.push(Prop::U64("IOWeight", io_weight(w.into())));
        } else {
            p.push(Prop::U64("BlockIOWeight", w.into()));
        }
    }
    for (devices, v2_name, v1_name) in [
        (
            b.throttle_read_bps_device(),
            "IOReadBandwidthMax",
            "BlockIOReadBandwidth",
        ),
        (
            b.throttle_write_bps_device(),
            "IOWriteBandwidthMax",
            "BlockIOWriteBandwidth",
        ),
        (b.throttle_read_iops_device(), "IOReadIOPSMax", ""),
        (b.throttle_write_iops_device(), "IOWriteIOPSMax", ""),
    ] {
        let list: Vec<(String, u64)> = devices
            .iter()
            .flatten()
            .map(|d| (format!("/dev/block/{}:{}", d.major(), d.minor()), d.rate()))
            .collect();
        let name = if v2 { v2_name } else { v1_name };
        if !list.is_empty() && !name.is_empty() {
            p.push(Prop::PathValues(name, list));
        }
    }
    if let Some(rules) = res.devices() {
        // runc's defaults follow the config's rules, as in the runtime's
        // own device program.
        let mut all = rules.clone();
        all.extend(
            super::v1::default_allowed()
                .iter()
                .filter_map(|r| default_rule(r)),
        );
        p.extend(devices(&all));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn typed(r: serde_json::Value) -> LinuxResources {
        serde_json::from_value(r).unwrap()
    }

    #[test]
    fn units_from_runcs_cgroups_path() {
        let u = Unit::parse(Some("machine.slice:libpod:abc"), "x", false).unwrap();
        assert_eq!(u.name, "libpod-abc.scope");
        assert_eq!(u.slice, "machine.slice");
        assert_eq!(u.cgroup_path(), "/machine.slice/libpod-abc.scope");
        let u = Unit::parse(None, "c1", false).unwrap();
        assert_eq!(u.cgroup_path(), "/system.slice/berth-c1.scope");
        let u = Unit::parse(Some("kubepods-besteffort-pod12.slice:cri:c2"), "c2", false).unwrap();
        assert_eq!(
            u.cgroup_path(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-c2.scope"
        );
        assert_eq!(
            Unit::parse(Some(":berth:c"), "c", false).unwrap().slice,
            "system.slice"
        );
        assert_eq!(Unit::parse(None, "c", true).unwrap().slice, "user.slice");
        assert_eq!(
            Unit::parse(Some("system.slice::c"), "c", false)
                .unwrap()
                .name,
            "c.scope"
        );
        for bad in [
            "/a/b",
            "a:b",
            "x.slice:p:n/m",
            "a--b.slice:p:n",
            "slice:p:n",
        ] {
            assert!(Unit::parse(Some(bad), "c", false).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpusets_as_bitmasks() {
        assert_eq!(cpuset_mask("0").unwrap(), vec![1]);
        assert_eq!(cpuset_mask("0-2,9").unwrap(), vec![0b111, 0b10]);
        assert!(cpuset_mask("2-1").is_err());
        assert!(cpuset_mask("x").is_err());
    }

    #[test]
    fn resources_as_unit_properties() {
        let res = json!({
            "memory": {"limit": 33554432, "swap": 67108864, "reservation": 1024},
            "cpu": {"shares": 1024, "quota": 25000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 20},
            "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
            "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 136, "access": "rwm"}]
        });
        let u = Unit::parse(None, "c", false).unwrap();
        let p = properties(&typed(res), true, Some((&u, 42))).unwrap();
        let get = |n: &str| p.iter().find(|x| x.name() == n).cloned();
        assert_eq!(get("PIDs"), Some(Prop::U32s("PIDs", vec![42])));
        assert_eq!(get("Delegate"), Some(Prop::Bool("Delegate", true)));
        assert_eq!(get("MemoryMax"), Some(Prop::U64("MemoryMax", 33554432)));
        assert_eq!(
            get("MemorySwapMax"),
            Some(Prop::U64("MemorySwapMax", 33554432))
        );
        assert_eq!(get("MemoryLow"), Some(Prop::U64("MemoryLow", 1024)));
        assert_eq!(get("CPUWeight"), Some(Prop::U64("CPUWeight", 39)));
        // 25 ms per 100 ms: 250 ms per second.
        assert_eq!(
            get("CPUQuotaPerSecUSec"),
            Some(Prop::U64("CPUQuotaPerSecUSec", 250_000))
        );
        assert_eq!(
            get("AllowedCPUs"),
            Some(Prop::Bytes("AllowedCPUs", vec![1]))
        );
        assert_eq!(get("TasksMax"), Some(Prop::U64("TasksMax", 20)));
        assert_eq!(get("IOWeight"), Some(Prop::U64("IOWeight", 4950)));
        assert_eq!(
            get("IOReadBandwidthMax"),
            Some(Prop::PathValues(
                "IOReadBandwidthMax",
                vec![("/dev/block/8:0".into(), 1048576)]
            ))
        );
        assert_eq!(
            get("DevicePolicy"),
            Some(Prop::Str("DevicePolicy", "strict".into()))
        );
        let Some(Prop::Pairs(_, allow)) = get("DeviceAllow") else {
            panic!("no DeviceAllow")
        };
        // The config's, then runc's defaults (mknod of anything, the
        // standard character devices).
        assert_eq!(allow[0], ("/dev/char/1:3".into(), "rwm".into()));
        assert!(allow.contains(&("char-*".into(), "m".into())));
        assert!(allow.contains(&("block-*".into(), "m".into())));
        assert!(allow.contains(&("/dev/char/5:2".into(), "rwm".into())));
        // A whole major by its driver's name (the test config's 136:*).
        assert_eq!(allow[1], ("char-pts".into(), "rwm".into()));
        // A quota is rounded up to systemd's 10 ms steps; unlimited ones
        // are infinity.
        let p = properties(&typed(json!({"cpu": {"quota": 1500, "period": 100000}, "memory": {"limit": -1}, "pids": {"limit": -1}})), true, None).unwrap();
        assert!(p.contains(&Prop::U64("CPUQuotaPerSecUSec", 20_000)));
        assert!(p.contains(&Prop::U64("MemoryMax", u64::MAX)));
        assert!(p.contains(&Prop::U64("TasksMax", u64::MAX)));
        // v1 names.
        let p = properties(
            &typed(json!({"memory": {"limit": 1}, "cpu": {"shares": 2}})),
            false,
            None,
        )
        .unwrap();
        assert!(p.contains(&Prop::U64("MemoryLimit", 1)));
        assert!(p.contains(&Prop::U64("CPUShares", 2)));
    }

    #[test]
    fn a_shims_scope_holds_its_pid_in_the_slice_and_is_collected() {
        let (u, p) = process_scope("berth-shim-c1.scope", "kubepods-besteffort.slice", 42).unwrap();
        assert_eq!(u.name, "berth-shim-c1.scope");
        assert_eq!(
            u.cgroup_path(),
            "/kubepods.slice/kubepods-besteffort.slice/berth-shim-c1.scope"
        );
        assert!(p.contains(&Prop::U32s("PIDs", vec![42])));
        assert!(p.contains(&Prop::Str("CollectMode", "inactive-or-failed".into())));
        assert!(!p.iter().any(|p| p.name() == "Delegate"));
        assert!(process_scope("shim", "system.slice", 1).is_err());
        assert!(process_scope("a/b.scope", "system.slice", 1).is_err());
        assert!(process_scope("x.scope", "not-a-slice", 1).is_err());
    }
}
