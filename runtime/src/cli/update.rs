//! `update`'s flags (or its `-r` file) as OCI `linux.resources`.

use super::flags::Parsed;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use std::str::FromStr;

/// `update`'s resources: the `-r` file (`-` for stdin, OCI
/// `linux.resources` JSON) or the flags.
pub fn update_resources(p: &Parsed) -> Result<LinuxResources, String> {
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
    from_flags(p)
}

/// A number flag, when given.
fn num<T: FromStr>(p: &Parsed, name: &str) -> Result<Option<T>, String> {
    p.get(name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| format!("invalid --{name} {v:?}"))
        })
        .transpose()
}

/// A size flag (`64m`, `-1` for unlimited), when given.
fn size(p: &Parsed, name: &str) -> Result<Option<i64>, String> {
    p.get(name)
        .map(|v| {
            berth_rules::size::parse_or_unlimited(v).map_err(|_| format!("invalid --{name} {v:?}"))
        })
        .transpose()
}

fn from_flags(p: &Parsed) -> Result<LinuxResources, String> {
    let mut r = LinuxResources::default();

    let mut cpu = LinuxCpu::default();
    cpu.set_period(num(p, "cpu-period")?);
    cpu.set_quota(num(p, "cpu-quota")?);
    cpu.set_burst(num(p, "cpu-burst")?);
    cpu.set_shares(num(p, "cpu-share")?);
    cpu.set_realtime_period(num(p, "cpu-rt-period")?);
    cpu.set_realtime_runtime(num(p, "cpu-rt-runtime")?);
    cpu.set_cpus(p.get("cpuset-cpus").map(String::from));
    cpu.set_mems(p.get("cpuset-mems").map(String::from));
    if cpu != LinuxCpu::default() {
        r.set_cpu(Some(cpu));
    }

    let mut memory = LinuxMemory::default();
    memory.set_limit(size(p, "memory")?);
    memory.set_reservation(size(p, "memory-reservation")?);
    memory.set_swap(size(p, "memory-swap")?);
    if memory != LinuxMemory::default() {
        r.set_memory(Some(memory));
    }

    if let Some(w) = num::<u16>(p, "blkio-weight")? {
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    if let Some(l) = num::<i64>(p, "pids-limit")? {
        let mut pids = LinuxPids::default();
        pids.set_limit(l);
        r.set_pids(Some(pids));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::super::commands::UPDATE;
    use super::super::flags::parse;
    use super::*;

    fn flags(v: &[&str]) -> Result<LinuxResources, String> {
        let mut args: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        args.push("c1".into());
        update_resources(&parse(&args, &[UPDATE], false)?)
    }

    #[test]
    fn no_flags_change_nothing() {
        assert_eq!(flags(&[]).unwrap(), LinuxResources::default());
    }

    #[test]
    fn cpu_flags_fill_the_cpu_section_only() {
        let r = flags(&[
            "--cpu-quota",
            "50000",
            "--cpu-period",
            "100000",
            "--cpuset-cpus",
            "0-1",
        ])
        .unwrap();
        let c = r.cpu().clone().unwrap();
        assert_eq!(c.quota(), Some(50000));
        assert_eq!(c.period(), Some(100000));
        assert_eq!(c.cpus().as_deref(), Some("0-1"));
        assert!(r.memory().is_none() && r.pids().is_none() && r.block_io().is_none());
    }

    #[test]
    fn memory_flags_take_sizes_and_minus_one() {
        let r = flags(&["--memory", "64m", "--memory-swap", "-1"]).unwrap();
        let m = r.memory().unwrap();
        assert_eq!(m.limit(), Some(64 << 20));
        assert_eq!(m.swap(), Some(-1));
        assert_eq!(m.reservation(), None);
    }

    #[test]
    fn pids_and_blkio_weight() {
        let r = flags(&["--pids-limit", "20", "--blkio-weight", "500"]).unwrap();
        assert_eq!(r.pids().unwrap().limit(), 20);
        assert_eq!(r.block_io().clone().unwrap().weight(), Some(500));
    }

    #[test]
    fn a_negative_share_or_a_word_is_refused_by_flag_name() {
        assert_eq!(
            flags(&["--cpu-share", "-1"]).unwrap_err(),
            "invalid --cpu-share \"-1\""
        );
        assert_eq!(
            flags(&["--memory", "lots"]).unwrap_err(),
            "invalid --memory \"lots\""
        );
        assert_eq!(
            flags(&["--blkio-weight", "70000"]).unwrap_err(),
            "invalid --blkio-weight \"70000\""
        );
    }

    #[test]
    fn intel_rdt_is_refused_by_name() {
        let e = flags(&["--l3-cache-schema", "L3:0=f"]).unwrap_err();
        assert!(e.contains("Intel RDT"), "{e}");
    }

    #[test]
    fn a_resources_file_is_read_as_linux_resources() {
        let dir = std::env::temp_dir().join(format!("berth-update-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("r.json");
        std::fs::write(
            &f,
            r#"{"memory": {"limit": 1048576, "checkBeforeUpdate": true}}"#,
        )
        .unwrap();
        let r = flags(&["-r", f.to_str().unwrap()]).unwrap();
        assert_eq!(r.memory().unwrap().check_before_update(), Some(true));
        std::fs::write(&f, r#"{"memory": {"limit": "lots"}}"#).unwrap();
        let e = flags(&["-r", f.to_str().unwrap()]).unwrap_err();
        assert!(e.starts_with("parse resources "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
