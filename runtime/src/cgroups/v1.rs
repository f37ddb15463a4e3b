//! cgroup v1 controllers: cpuset inheritance and the devices controller.

use std::fs;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::Error;

/// A new v1 cpuset group starts with empty cpus and mems, which refuses every
/// process: copy the parent's values down.
pub fn inherit_cpuset(dir: &Path) -> Result<(), Error> {
    let parent = dir.parent().unwrap_or(dir);
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let cur = fs::read_to_string(dir.join(f)).unwrap_or_default();
        if cur.trim().is_empty() {
            let v = fs::read_to_string(parent.join(f)).map_err(|err| Error::Io {
                what: "read",
                path: parent.join(f),
                err,
            })?;
            fs::write(dir.join(f), v.trim()).map_err(|err| Error::Io {
                what: "write",
                path: dir.join(f),
                err,
            })?;
        }
    }
    Ok(())
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
/// then each rule, so the result does not depend on the parent's list.
pub fn apply_devices(dir: &Path, rules: &[(bool, String)]) -> Result<(), Error> {
    let write = |file: &str, v: &str| {
        fs::write(dir.join(file), v).map_err(|err| Error::Io {
            what: "write",
            path: dir.join(file),
            err,
        })
    };
    write("devices.deny", "a")?;
    for (allow, rule) in rules {
        write(
            if *allow {
                "devices.allow"
            } else {
                "devices.deny"
            },
            rule,
        )?;
    }
    Ok(())
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
