//! The options containerd gives a shim, in either of its two forms: runc's
//! (`containerd.runc.v1.Options`, from `ctr` and containerd's own clients)
//! or, from containerd's CRI for a runtime type that is not runc's,
//! `runtimeoptions.v1.Options` naming a file (`ConfigPath`) that holds the
//! same keys as TOML: `BinaryName`, `Root`, `SystemdCgroup`, `NoPivotRoot`,
//! `NoNewKeyring`, `ShimCgroup`.

use protobuf::well_known_types::any::Any;
use protobuf::Message;

use super::proto::{runc, runtimeoptions};

/// Reads the runc options an Any carries (none: the defaults).
pub fn from_any(a: Option<&Any>) -> Result<runc::Options, String> {
    let Some(a) = a.filter(|a| !a.type_url.is_empty()) else {
        return Ok(runc::Options::default());
    };
    if a.type_url.ends_with("containerd.runc.v1.Options") {
        return runc::Options::parse_from_bytes(&a.value).map_err(|e| format!("runc options: {e}"));
    }
    if a.type_url.ends_with("runtimeoptions.v1.Options") {
        let o = runtimeoptions::Options::parse_from_bytes(&a.value)
            .map_err(|e| format!("runtime options: {e}"))?;
        if o.config_path.is_empty() {
            return Ok(runc::Options::default());
        }
        let text = std::fs::read_to_string(&o.config_path)
            .map_err(|e| format!("runtime options file {}: {e}", o.config_path))?;
        return from_toml(&text)
            .map_err(|e| format!("runtime options file {}: {e}", o.config_path));
    }
    Err(format!(
        "options of type {} are not understood (containerd.runc.v1.Options and runtimeoptions.v1.Options are)",
        a.type_url
    ))
}

/// The runc option keys from a TOML file of `Key = value` lines.
pub fn from_toml(text: &str) -> Result<runc::Options, String> {
    let mut o = runc::Options::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not KEY = VALUE", n + 1))?;
        let v = v.trim();
        let s = || v.trim_matches('"').to_string();
        let b = || match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("line {}: {} takes true or false", n + 1, k.trim())),
        };
        match k.trim() {
            "BinaryName" => o.binary_name = s(),
            "Root" => o.root = s(),
            "ShimCgroup" => o.shim_cgroup = s(),
            "SystemdCgroup" => o.systemd_cgroup = b()?,
            "NoPivotRoot" => o.no_pivot_root = b()?,
            "NoNewKeyring" => o.no_new_keyring = b()?,
            other => return Err(format!("line {}: unknown option {other}", n + 1)),
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_in_both_forms() {
        let o = from_toml("# berth\nBinaryName = \"/usr/bin/berth\"\nSystemdCgroup = false\nShimCgroup = \"/shims\"\n").unwrap();
        assert_eq!(
            (o.binary_name.as_str(), o.shim_cgroup.as_str()),
            ("/usr/bin/berth", "/shims")
        );
        assert!(from_toml("Nope = 1").is_err());
        let runc = runc::Options {
            binary_name: "runc".into(),
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: runc.write_to_bytes().unwrap(),
            ..Default::default()
        };
        assert_eq!(from_any(Some(&any)).unwrap().binary_name, "runc");
        assert_eq!(from_any(None).unwrap(), runc::Options::default());
        let odd = Any {
            type_url: "x.Other".into(),
            ..Default::default()
        };
        assert!(from_any(Some(&odd)).is_err());
    }
}
