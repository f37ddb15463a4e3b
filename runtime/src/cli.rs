//! The `berth` command line, compatible with runc's: the same commands,
//! flags (`--flag`, `-flag`, `-f`, `--flag=value`), flags before or after the
//! container id, exit codes, and error output.
//!
//! Hand-rolled rather than clap: runc's parser accepts single-dash long flags,
//! which clap does not, and `berth` starts once per container, so its
//! start-up cost matters.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use crate::container::{self, CreateOpts, RunOpts};
use crate::{exe, exec, log, ps, spec};

/// A flag a command accepts: its names (the first is canonical) and whether
/// it takes a value.
struct Flag {
    names: &'static [&'static str],
    value: bool,
}

const fn f(names: &'static [&'static str], value: bool) -> Flag {
    Flag { names, value }
}

const GLOBAL: &[Flag] = &[
    f(&["root"], true),
    f(&["log"], true),
    f(&["log-format"], true),
    f(&["debug"], false),
    f(&["systemd-cgroup"], false),
    f(&["criu"], true),
    f(&["rootless"], true),
    f(&["version", "v"], false),
    f(&["help", "h"], false),
];

const CREATE: &[Flag] = &[
    f(&["bundle", "b"], true),
    f(&["console-socket"], true),
    f(&["pid-file"], true),
    f(&["no-pivot"], false),
    f(&["no-new-keyring"], false),
    f(&["preserve-fds"], true),
];

const EXEC: &[Flag] = &[
    f(&["console-socket"], true),
    f(&["cwd"], true),
    f(&["env", "e"], true),
    f(&["tty", "t"], false),
    f(&["user", "u"], true),
    f(&["additional-gids", "g"], true),
    f(&["process", "p"], true),
    f(&["detach", "d"], false),
    f(&["pid-file"], true),
    f(&["process-label"], true),
    f(&["apparmor"], true),
    f(&["no-new-privs"], false),
    f(&["cap", "c"], true),
    f(&["preserve-fds"], true),
    f(&["cgroup"], true),
    f(&["ignore-paused"], false),
];

const UPDATE: &[Flag] = &[
    f(&["resources", "r"], true),
    f(&["blkio-weight"], true),
    f(&["cpu-period"], true),
    f(&["cpu-quota"], true),
    f(&["cpu-burst"], true),
    f(&["cpu-share"], true),
    f(&["cpu-rt-period"], true),
    f(&["cpu-rt-runtime"], true),
    f(&["cpuset-cpus"], true),
    f(&["cpuset-mems"], true),
    f(&["memory"], true),
    f(&["memory-reservation"], true),
    f(&["memory-swap"], true),
    f(&["pids-limit"], true),
    f(&["l3-cache-schema"], true),
    f(&["mem-bw-schema"], true),
];

/// `update`'s resources: the `-r` file (`-` for stdin) or the flags, as
/// OCI `linux.resources` JSON.
fn update_resources(p: &Parsed) -> Result<serde_json::Value, String> {
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

/// `run` takes create's flags and these.
const RUN_EXTRA: &[Flag] = &[
    f(&["detach", "d"], false),
    f(&["keep"], false),
    f(&["no-subreaper"], false),
];

/// Parsed flags and positional arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    flags: HashMap<&'static str, Vec<String>>,
    pub pos: Vec<String>,
}

impl Parsed {
    fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.flags.get(name).cloned().unwrap_or_default()
    }

    fn u32(&self, name: &str) -> Result<u32, String> {
        self.get(name)
            .map(|v| v.parse().map_err(|_| format!("invalid --{name} {v:?}")))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    fn bool(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v != "false")
    }
}

/// Parses `args` against `flags`. With `stop_at_pos`, the first positional
/// ends flag parsing (the rest belong to a command line); otherwise flags
/// may follow positionals, as runc allows. `--` always ends flags.
fn parse(args: &[String], sets: &[&[Flag]], stop_at_pos: bool) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            p.pos.extend(args[i..].iter().cloned());
            break;
        }
        if !a.starts_with('-') || a == "-" {
            p.pos.push(a.clone());
            if stop_at_pos {
                p.pos.extend(args[i..].iter().cloned());
                break;
            }
            continue;
        }
        let body = a.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let flag = sets
            .iter()
            .flat_map(|s| s.iter())
            .find(|fl| fl.names.contains(&name))
            .ok_or_else(|| format!("flag provided but not defined: -{name}"))?;
        let value = if flag.value {
            match inline {
                Some(v) => v,
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| format!("flag needs an argument: -{name}"))?;
                    i += 1;
                    v.clone()
                }
            }
        } else {
            inline.unwrap_or_else(|| "true".to_string())
        };
        p.flags.entry(flag.names[0]).or_default().push(value);
    }
    Ok(p)
}

/// The state root when `--root` is not given: /run/berth for root, and for
/// an ordinary user $XDG_RUNTIME_DIR/berth (as runc's rootless default).
fn default_root() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(x) if !nix::unistd::geteuid().is_root() && !x.is_empty() => {
            PathBuf::from(x).join("berth")
        }
        _ => PathBuf::from("/run/berth"),
    }
}

/// The number of socket-activation fds passed to us (LISTEN_FDS, when
/// LISTEN_PID names this process), as systemd's sd_listen_fds counts them.
fn listen_fds() -> u32 {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    if !for_us {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn exact_args(cmd: &str, p: &Parsed, n: usize) -> Result<(), String> {
    if p.pos.len() != n {
        return Err(format!("berth: {cmd:?} requires exactly {n} argument(s)"));
    }
    Ok(())
}

const USAGE: &str = "berth: an OCI runtime, compatible with runc

usage: berth [global options] command [command options] [arguments...]

commands:
  create    create a container from a bundle, blocked before its process runs
  start     run the process of a created container
  run       create and start a container
  exec      run a new process in a running container
  ps        list the processes of a container (--format table|json, ps options after --)
  pause     freeze every process of a container
  resume    thaw a paused container
  update    change a container's resource limits (flags as runc's, or -r resources.json)
  events    resource statistics (--stats once, or every --interval) and OOM events
  state     print the state of a container (OCI state JSON)
  kill      send a signal to the container's init process (--all: every process)
  delete    delete a container and everything it holds (--force: kill it first)
  list      list containers (--format table|json, -q)
  spec      write a default config.json into a bundle (--rootless)
  features  print the runtime's features (runtime-spec features JSON)

global options:
  --root DIR            state directory (default /run/berth)
  --log FILE            log file (default stderr)
  --log-format FORMAT   text or json
  --debug               log debug messages
  --systemd-cgroup      use systemd for cgroups (not supported yet)
  --version, -v         print the version
";

fn version() -> String {
    format!(
        "berth version {}\ncommit: {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("BERTH_COMMIT").unwrap_or("unknown"),
        spec::OCI_VERSION
    )
}

/// Runs the command line; returns the process exit status.
pub fn main(args: Vec<String>) -> i32 {
    let rest = args.get(1..).unwrap_or_default();
    let g = match parse(rest, &[GLOBAL], true) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}\n\n{USAGE}");
            return 1;
        }
    };
    let format = match g.get("log-format").unwrap_or("text") {
        "text" => log::Format::Text,
        "json" => log::Format::Json,
        other => {
            eprintln!("unknown log-format {other:?} (text or json)");
            return 1;
        }
    };
    if let Err(e) = log::init(
        g.get("log").map(std::path::Path::new),
        format,
        g.bool("debug"),
    ) {
        eprintln!("open log file {}: {e}", g.get("log").unwrap_or_default());
        return 1;
    }
    if g.bool("version") {
        print!("{}", version());
        return 0;
    }
    let Some((cmd, cargs)) = g.pos.split_first() else {
        print!("{USAGE}");
        return if g.bool("help") { 0 } else { 1 };
    };
    let root = g
        .get("root")
        .map(PathBuf::from)
        .unwrap_or_else(default_root);
    let result = if g.bool("systemd-cgroup") && matches!(cmd.as_str(), "create" | "run") {
        Err(if std::path::Path::new("/run/systemd/system").is_dir() {
            "--systemd-cgroup: the systemd cgroup driver is not supported yet; use the default cgroupfs driver".to_string()
        } else {
            "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use the default cgroupfs driver".to_string()
        })
    } else {
        dispatch(cmd, cargs, root)
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            log::log("error", &msg);
            if !log::to_stderr() {
                eprintln!("{msg}");
            }
            1
        }
    }
}

fn dispatch(cmd: &str, args: &[String], root: PathBuf) -> Result<i32, String> {
    let e = |e: container::Error| e.to_string();
    match cmd {
        "create" | "run" => {
            let p = parse(
                args,
                if cmd == "run" {
                    &[CREATE, RUN_EXTRA]
                } else {
                    &[CREATE]
                },
                false,
            )?;
            exact_args(cmd, &p, 1)?;
            // Before anything forks into a container: run from a protected copy.
            crate::state::ensure_root(&root).map_err(|x| x.to_string())?;
            exe::reexec_protected(&root).map_err(|x| x.to_string())?;
            let o = CreateOpts {
                root,
                id: p.pos[0].clone(),
                bundle: PathBuf::from(p.get("bundle").unwrap_or(".")),
                pid_file: p.get("pid-file").map(PathBuf::from),
                console_socket: p.get("console-socket").map(PathBuf::from),
                no_pivot: p.bool("no-pivot"),
                no_new_keyring: p.bool("no-new-keyring"),
                preserve_fds: p.u32("preserve-fds")?,
                listen_fds: listen_fds(),
                notify_socket: std::env::var("NOTIFY_SOCKET")
                    .ok()
                    .filter(|s| !s.is_empty()),
                detach: cmd == "create" || p.bool("detach"),
            };
            if cmd == "create" {
                container::create(&o).map_err(e)?;
                Ok(0)
            } else {
                let r = RunOpts {
                    keep: p.bool("keep"),
                    no_subreaper: p.bool("no-subreaper"),
                };
                container::run(&o, &r).map_err(e)
            }
        }
        "exec" => {
            let p = parse(args, &[EXEC], true)?;
            let Some((id, cmdline)) = p.pos.split_first() else {
                return Err("berth: \"exec\" requires at least 1 argument (container id)".into());
            };
            // exec is how a container's process reaches the host binary.
            exe::reexec_protected(&root).map_err(|x| x.to_string())?;
            let spec = exec::container_spec(&root, id).map_err(e)?;
            let process = match p.get("process") {
                Some(path) => exec::process_from_file(std::path::Path::new(path)).map_err(e)?,
                None => {
                    let base = spec.process().clone().unwrap_or_default();
                    let o = exec::Overrides {
                        args: cmdline.to_vec(),
                        env: p.all("env"),
                        cwd: p.get("cwd").map(String::from),
                        user: p.get("user").map(String::from),
                        additional_gids: p.all("additional-gids"),
                        caps: p.all("cap"),
                        no_new_privs: p.get("no-new-privs").map(|_| p.bool("no-new-privs")),
                        apparmor: p.get("apparmor").map(String::from),
                        process_label: p.get("process-label").map(String::from),
                        tty: p.bool("tty"),
                    };
                    exec::process_from_overrides(&base, &o).map_err(e)?
                }
            };
            let o = exec::ExecOpts {
                root,
                id: id.clone(),
                console_socket: p.get("console-socket").map(PathBuf::from),
                detach: p.bool("detach"),
                pid_file: p.get("pid-file").map(PathBuf::from),
                preserve_fds: p.u32("preserve-fds")?,
                cgroup: p.get("cgroup").map(String::from),
                ignore_paused: p.bool("ignore-paused"),
            };
            exec::exec(&o, &process, &spec).map_err(e)
        }
        "ps" => {
            let p = parse(args, &[&[f(&["format", "f"], true)]], true)?;
            let Some((id, rest)) = p.pos.split_first() else {
                return Err("berth: \"ps\" requires at least 1 argument (container id)".into());
            };
            let ps_args = rest.strip_prefix(&["--".to_string()]).unwrap_or(rest);
            let pids = ps::pids(&root, id).map_err(e)?;
            match p.get("format").unwrap_or("table") {
                "json" => println!("{}", serde_json::Value::from(pids)),
                "table" => print!("{}", ps::table(&pids, ps_args).map_err(e)?),
                other => return Err(format!("invalid format option {other:?} (table or json)")),
            }
            Ok(0)
        }
        "pause" | "resume" => {
            let p = parse(args, &[], false)?;
            exact_args(cmd, &p, 1)?;
            if cmd == "pause" {
                container::pause(&root, &p.pos[0]).map_err(e)?;
            } else {
                container::resume(&root, &p.pos[0]).map_err(e)?;
            }
            Ok(0)
        }
        "update" => {
            let p = parse(args, &[UPDATE], false)?;
            exact_args(cmd, &p, 1)?;
            let res = update_resources(&p)?;
            container::update(&root, &p.pos[0], &res).map_err(e)?;
            Ok(0)
        }
        "events" => {
            let p = parse(
                args,
                &[&[f(&["stats"], false), f(&["interval"], true)]],
                false,
            )?;
            exact_args(cmd, &p, 1)?;
            let secs = p
                .get("interval")
                .map(|v| {
                    v.trim_end_matches('s')
                        .parse::<f64>()
                        .map_err(|_| format!("invalid --interval {v:?} (seconds, e.g. 5s)"))
                })
                .transpose()?
                .unwrap_or(5.0);
            let mut out = std::io::stdout().lock();
            container::events(
                &root,
                &p.pos[0],
                p.bool("stats"),
                std::time::Duration::from_secs_f64(secs),
                &mut out,
            )
            .map_err(e)?;
            Ok(0)
        }
        "start" => {
            let p = parse(args, &[], false)?;
            exact_args(cmd, &p, 1)?;
            let notify = std::env::var("NOTIFY_SOCKET")
                .ok()
                .filter(|s| !s.is_empty());
            container::start(&root, &p.pos[0], notify.as_deref()).map_err(e)?;
            Ok(0)
        }
        "state" => {
            let p = parse(args, &[], false)?;
            exact_args(cmd, &p, 1)?;
            let v = container::state_json(&root, &p.pos[0]).map_err(e)?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(0)
        }
        "kill" => {
            let p = parse(args, &[&[f(&["all", "a"], false)]], false)?;
            if p.pos.is_empty() || p.pos.len() > 2 {
                return Err(
                    "berth: \"kill\" requires 1 or 2 arguments (container id and optional signal)"
                        .into(),
                );
            }
            // Signal 0 only asks whether the container lives, as with runc.
            let sig = match p.pos.get(1).map(String::as_str).unwrap_or("SIGTERM") {
                "0" => 0,
                s => container::parse_signal(s).map_err(e)?,
            };
            container::kill(&root, &p.pos[0], sig, p.bool("all")).map_err(e)?;
            Ok(0)
        }
        "delete" => {
            let p = parse(args, &[&[f(&["force", "f"], false)]], false)?;
            exact_args(cmd, &p, 1)?;
            container::delete(&root, &p.pos[0], p.bool("force")).map_err(e)?;
            Ok(0)
        }
        "list" => {
            let p = parse(
                args,
                &[&[f(&["format", "f"], true), f(&["quiet", "q"], false)]],
                false,
            )?;
            exact_args(cmd, &p, 0)?;
            let list = container::list(&root).map_err(e)?;
            let mut out = std::io::stdout().lock();
            if p.bool("quiet") {
                for c in &list {
                    let _ = writeln!(out, "{}", c["id"].as_str().unwrap_or_default());
                }
            } else {
                match p.get("format").unwrap_or("table") {
                    "json" => {
                        let _ = writeln!(out, "{}", serde_json::Value::Array(list));
                    }
                    "table" => {
                        let _ = out.write_all(list_table(&list).as_bytes());
                    }
                    other => {
                        return Err(format!("invalid format option {other:?} (table or json)"))
                    }
                }
            }
            Ok(0)
        }
        "spec" => {
            let p = parse(
                args,
                &[&[f(&["bundle", "b"], true), f(&["rootless"], false)]],
                false,
            )?;
            exact_args(cmd, &p, 0)?;
            let bundle = PathBuf::from(p.get("bundle").unwrap_or("."));
            let path = bundle.join("config.json");
            if path.exists() {
                return Err("File config.json exists. Remove it first".into());
            }
            let v = spec::default_spec(
                p.bool("rootless"),
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            );
            let data = serde_json::to_string_pretty(&v).unwrap_or_default();
            std::fs::write(&path, data + "\n")
                .map_err(|x| format!("write {}: {x}", path.display()))?;
            Ok(0)
        }
        "features" => {
            let p = parse(args, &[], false)?;
            exact_args(cmd, &p, 0)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::features::features()).unwrap_or_default()
            );
            Ok(0)
        }
        "help" => {
            print!("{USAGE}");
            Ok(0)
        }
        other => Err(format!("berth: no such command {other:?}\n\n{USAGE}")),
    }
}

/// Formats `list` as runc's table (tabwriter: min width 12, padding 3).
pub fn list_table(list: &[serde_json::Value]) -> String {
    let mut rows = vec![vec![
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for c in list {
        let s = |k: &str| {
            c[k].as_str()
                .map(String::from)
                .unwrap_or_else(|| c[k].to_string())
        };
        rows.push(vec![
            s("id"),
            s("pid"),
            s("status"),
            s("bundle"),
            s("created"),
            s("owner"),
        ]);
    }
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len() + 3)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == cols {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_before_and_after_id() {
        let p = parse(
            &s(&["--bundle", "/b", "id1", "--pid-file=/p", "-no-pivot"]),
            &[CREATE],
            false,
        )
        .unwrap();
        assert_eq!(p.pos, vec!["id1"]);
        assert_eq!(p.get("bundle"), Some("/b"));
        assert_eq!(p.get("pid-file"), Some("/p"));
        assert!(p.bool("no-pivot"));
        let p = parse(&s(&["-b", "x", "id"]), &[CREATE], false).unwrap();
        assert_eq!(p.get("bundle"), Some("x"));
    }

    #[test]
    fn global_stops_at_command() {
        let p = parse(
            &s(&[
                "--root",
                "/r",
                "--log-format=json",
                "kill",
                "--all",
                "c",
                "KILL",
            ]),
            &[GLOBAL],
            true,
        )
        .unwrap();
        assert_eq!(p.get("root"), Some("/r"));
        assert_eq!(p.pos, s(&["kill", "--all", "c", "KILL"]));
    }

    #[test]
    fn unknown_flag_is_an_error() {
        assert!(parse(&s(&["--bogus"]), &[CREATE], false)
            .unwrap_err()
            .contains("flag provided but not defined"));
        assert!(parse(&s(&["--bundle"]), &[CREATE], false).is_err());
    }

    #[test]
    fn table_aligns_columns() {
        let t = list_table(&[
            serde_json::json!({"id":"a","pid":1,"status":"running","bundle":"/b","created":"T","owner":"root"}),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID          PID         STATUS"));
        assert!(lines[1].starts_with("a           1           running"));
    }
}
