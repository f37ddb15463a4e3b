//! The `berth-shim` command: argument parsing only; see the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_shim::daemon::{self, Options};

const USAGE: &str = "\
usage:
  berth-shim start  --id ID --bundle DIR --address SOCK [--runtime PATH] [--runtime-root DIR] [--systemd-cgroup]
  berth-shim delete --id ID --bundle DIR
  berth-shim hold   [--ipc] [--pid] [--hostname NAME] [--uidmap C:H:L --gidmap C:H:L [--net]]
  berth-shim idmap-check PATH
  berth-shim --version

start   launch the container's shim in the background; print its socket address
        (--systemd-cgroup: the runtime makes the container a systemd scope)
delete  clean up a container whose shim is gone (kill, runtime delete, unmount)
idmap-check  exit 0 if the filesystem at PATH takes idmapped mounts (what a
        pod with a user namespace needs of the layers' filesystem)
hold    hold a pod's new namespaces (IPC; PID, as its init; UTS with the
        hostname; with --uidmap/--gidmap, a user namespace owning them and
        the network's): print the holder's pid, which lives on
";

/// Flags as `--name value` pairs.
fn flags(args: &[String]) -> Result<Vec<(&str, &str)>, String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let name = a
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {a:?}"))?;
        if name == "systemd-cgroup" {
            out.push((name, "true"));
            continue;
        }
        if !matches!(
            name,
            "id" | "bundle" | "address" | "runtime" | "runtime-root"
        ) {
            return Err(format!("unknown flag --{name}"));
        }
        let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
        out.push((name, v.as_str()));
    }
    Ok(out)
}

fn run(args: &[String]) -> Result<(), String> {
    let Some(cmd) = args.first() else {
        return Err(USAGE.into());
    };
    if cmd == "--version" || cmd == "version" {
        println!("berth-shim {}", berth_proto::VERSION);
        return Ok(());
    }
    if cmd == "--help" || cmd == "-h" || cmd == "help" {
        print!("{USAGE}");
        return Ok(());
    }
    if cmd == "hold" {
        return hold(&args[1..]);
    }
    if cmd == "idmap-check" {
        let [path] = &args[1..] else {
            return Err("idmap-check takes one path".into());
        };
        return berth_shim::idmap::check(Path::new(path)).map_err(|e| e.to_string());
    }
    let f = flags(&args[1..])?;
    let get = |k: &str| f.iter().rev().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let id = get("id").ok_or("--id is required")?.to_string();
    let bundle = PathBuf::from(get("bundle").ok_or("--bundle is required")?);
    let path = |k: &str| get(k).map(PathBuf::from);
    let e = |e: daemon::DaemonError| e.to_string();
    match cmd.as_str() {
        "start" | "serve" => {
            let mut o = Options::new(
                id,
                &bundle,
                path("address"),
                path("runtime"),
                path("runtime-root"),
            )
            .map_err(e)?;
            o.systemd_cgroup = get("systemd-cgroup").is_some();
            if cmd == "start" {
                println!("{}", daemon::start(&o).map_err(e)?);
                Ok(())
            } else {
                daemon::serve(o).map_err(e)
            }
        }
        "delete" => {
            let o = Options::from_bundle(id, &bundle).map_err(e)?;
            let status = daemon::delete(&o).map_err(e)?;
            println!("{{\"exit_status\":{status}}}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

/// `hold`: its own flags (two are bare switches).
fn hold(args: &[String]) -> Result<(), String> {
    let mut o = berth_shim::hold::HoldOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ipc" => o.ipc = true,
            "--pid" => o.pid = true,
            "--net" => o.net = true,
            "--uidmap" | "--gidmap" => {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                let maps = berth_rules::idmap::parse(v).map_err(|e| format!("hold: {a}: {e}"))?;
                let (u, g) = o.userns.get_or_insert_with(Default::default);
                if a == "--uidmap" {
                    *u = maps;
                } else {
                    *g = maps;
                }
            }
            "--hostname" => {
                let h = it.next().ok_or("--hostname needs a value")?;
                o.hostname = Some(h.clone());
            }
            other => return Err(format!("hold: unexpected argument {other:?}")),
        }
    }
    if let Some((u, g)) = &o.userns {
        if u.is_empty() || g.is_empty() {
            return Err("hold: --uidmap and --gidmap come together".into());
        }
    }
    if o.net && o.userns.is_none() {
        return Err(
            "hold: --net only with a user namespace (berthd makes other pods' networks)".into(),
        );
    }
    berth_shim::hold::start(&o).map_err(|e| format!("hold: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Under containerd's name, containerd's runtime v2 shim protocol.
    let argv0 = std::env::args().next().unwrap_or_default();
    if Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == "containerd-shim-berth-v2")
    {
        return match berth_shim::v2::main(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(m) => {
                eprintln!("containerd-shim-berth-v2: {m}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(m) => {
            eprintln!("berth-shim: {m}");
            ExitCode::FAILURE
        }
    }
}
