//! The `berth` command line, compatible with runc's: the same commands,
//! flags (`--flag`, `-flag`, `-f`, `--flag=value`), flags before or after the
//! container id, exit codes, and error output.
//!
//! Hand-rolled rather than clap: runc's parser accepts single-dash long flags,
//! which clap does not, and `berth` starts once per container, so its
//! start-up cost matters.

mod commands;
mod flags;
mod help;
mod list;
mod update;

use std::io::Write;
use std::path::PathBuf;

use crate::container::{self, CreateOpts, RunOpts};
use crate::{exe, exec, log, ps, spec};
use flags::{parse, Parsed};
pub use list::list_table;

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

/// How a command failed, deciding what is printed and the exit code, as
/// runc decides them.
#[derive(Debug)]
pub enum Failure {
    /// Wrong flags or arguments: "Incorrect Usage" and the command's help on
    /// stdout, the error logged, exit 1.
    Usage {
        /// The command whose help is shown.
        cmd: &'static str,
        /// Said after "Incorrect Usage:" (flag errors) or only logged.
        msg: String,
        /// Flag errors are also said in the header line.
        in_header: bool,
    },
    /// `-h` among the command's flags: its help, exit 0.
    Help(&'static str),
    /// Logged, then the exit code.
    Fail {
        /// The error.
        msg: String,
        /// 1, or 255 for an exec that failed, as runc's.
        code: i32,
    },
}

impl From<String> for Failure {
    fn from(msg: String) -> Self {
        Failure::Fail { msg, code: 1 }
    }
}

impl From<&str> for Failure {
    fn from(msg: &str) -> Self {
        msg.to_string().into()
    }
}

impl From<container::Error> for Failure {
    fn from(e: container::Error) -> Self {
        e.to_string().into()
    }
}

/// A command's flags parsed against its sets (and `-h`, which every
/// command takes), a flag error being a usage error.
fn flags_of(cmd: &'static str, args: &[String], stop_at_pos: bool) -> Result<Parsed, Failure> {
    let mut sets: Vec<&[flags::Flag]> = commands::find(cmd)
        .map(|c| c.flags.to_vec())
        .unwrap_or_default();
    sets.push(commands::HELP);
    let p = parse(args, &sets, stop_at_pos).map_err(|msg| Failure::Usage {
        cmd,
        msg,
        in_header: true,
    })?;
    if p.bool("help") {
        return Err(Failure::Help(cmd));
    }
    Ok(p)
}

/// runc's argument count checks, worded as runc's.
fn args_usage(cmd: &'static str, msg: String) -> Failure {
    Failure::Usage {
        cmd,
        msg,
        in_header: false,
    }
}

fn exact_args(cmd: &'static str, p: &Parsed, n: usize) -> Result<(), Failure> {
    if p.pos.len() != n {
        return Err(args_usage(
            cmd,
            format!("berth: {cmd:?} requires exactly {n} argument(s)"),
        ));
    }
    Ok(())
}

fn min_args(cmd: &'static str, p: &Parsed, n: usize) -> Result<(), Failure> {
    if p.pos.len() < n {
        return Err(args_usage(
            cmd,
            format!("berth: {cmd:?} requires a minimum of {n} argument(s)"),
        ));
    }
    Ok(())
}

/// The version lines after "berth version" (and under VERSION in help).
fn version_lines() -> String {
    format!(
        "{}\ncommit: {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("BERTH_COMMIT").unwrap_or("unknown"),
        spec::OCI_VERSION
    )
}

/// Whether a systemd manager can make our scopes: the system's (PID 1) for
/// root, the user's (its private socket in $XDG_RUNTIME_DIR) otherwise.
fn systemd_runs() -> bool {
    if nix::unistd::geteuid().is_root() {
        return std::path::Path::new("/run/systemd/system").is_dir();
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .is_some_and(|d| std::path::Path::new(&d).join("systemd/private").exists())
}

/// Logs an error line and, when the log is a file, says it on stderr too.
fn report(msg: &str) {
    log::log("error", msg);
    if !log::to_stderr() {
        eprintln!("{msg}");
    }
}

/// Runs the command line; returns the process exit status.
pub fn main(args: Vec<String>) -> i32 {
    let rest = args.get(1..).unwrap_or_default();
    let g = match parse(rest, &[commands::GLOBAL], true) {
        Ok(g) => g,
        Err(e) => {
            print!("Incorrect Usage. {e}\n\n{}", help::app(&version_lines()));
            report(&e);
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
        print!("berth version {}", version_lines());
        return 0;
    }
    let Some((cmd, cargs)) = g.pos.split_first() else {
        print!("{}", help::app(&version_lines()));
        return 0;
    };
    let root = g
        .get("root")
        .map(PathBuf::from)
        .unwrap_or_else(default_root);
    // `help [COMMAND]`, and `-h` before an unknown command's name.
    let help_of = match cmd.as_str() {
        "help" | "h" => Some(cargs.first()),
        _ if g.bool("help") => Some(Some(cmd)),
        _ => None,
    };
    if let Some(topic) = help_of {
        return match topic {
            None => {
                print!("{}", help::app(&version_lines()));
                0
            }
            Some(t) => match commands::find(t) {
                Some(c) => {
                    print!("{}", help::command(c));
                    0
                }
                None => {
                    report(&format!("No help topic for '{t}'"));
                    3
                }
            },
        };
    }
    let Some(command) = commands::find(cmd) else {
        // urfave/cli's answer to an unknown command, and runc's exit code.
        report(&format!("No help topic for '{cmd}'"));
        return 3;
    };
    crate::debug!("{} {}", command.name, cargs.join(" "));
    let result = dispatch(command.name, cargs, root, g.bool("systemd-cgroup"));
    match result {
        Ok(code) => code,
        Err(Failure::Usage {
            cmd,
            msg,
            in_header,
        }) => {
            let help = commands::find(cmd).map(help::command).unwrap_or_default();
            if in_header {
                print!("Incorrect Usage: {msg}\n\n{help}");
            } else {
                print!("Incorrect Usage.\n\n{help}");
            }
            report(&msg);
            1
        }
        Err(Failure::Help(cmd)) => {
            print!(
                "{}",
                commands::find(cmd).map(help::command).unwrap_or_default()
            );
            0
        }
        Err(Failure::Fail { msg, code }) => {
            report(&msg);
            code
        }
    }
}

fn dispatch(
    cmd: &'static str,
    args: &[String],
    root: PathBuf,
    systemd_cgroup: bool,
) -> Result<i32, Failure> {
    match cmd {
        "create" | "run" => {
            let p = flags_of(cmd, args, false)?;
            exact_args(cmd, &p, 1)?;
            // As sd_booted(3) tells: systemd is PID 1 (or the user's manager
            // runs, for an unprivileged caller).
            if systemd_cgroup && !systemd_runs() {
                return Err("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system, or no user manager); use the default cgroupfs driver".into());
            }
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
                systemd_cgroup,
            };
            // runc's "runc create failed: ..." wording, which callers match.
            let failed = |e: container::Error| Failure::from(format!("berth {cmd} failed: {e}"));
            if cmd == "create" {
                container::create(&o).map_err(failed)?;
                Ok(0)
            } else {
                let r = RunOpts {
                    keep: p.bool("keep"),
                    no_subreaper: p.bool("no-subreaper"),
                };
                container::run(&o, &r).map_err(failed)
            }
        }
        "exec" => {
            let p = flags_of(cmd, args, true)?;
            min_args(cmd, &p, 1)?;
            let (id, cmdline) = (&p.pos[0], &p.pos[1..]);
            if cmdline.is_empty() && p.get("process").is_none() {
                return Err(args_usage(
                    cmd,
                    "exec: the command is missing (give one, or -p process.json)".into(),
                ));
            }
            // From here every failure is runc's "exec failed" with 255.
            let failed = |e: String| Failure::Fail {
                msg: format!("exec failed: {e}"),
                code: 255,
            };
            // exec is how a container's process reaches the host binary.
            exe::reexec_protected(&root).map_err(|x| failed(x.to_string()))?;
            let spec = exec::container_spec(&root, id).map_err(|x| failed(x.to_string()))?;
            let process = match p.get("process") {
                Some(path) => exec::process_from_file(std::path::Path::new(path))
                    .map_err(|x| failed(x.to_string()))?,
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
                    exec::process_from_overrides(&base, &o).map_err(|x| failed(x.to_string()))?
                }
            };
            let o = exec::ExecOpts {
                root,
                id: id.clone(),
                console_socket: p.get("console-socket").map(PathBuf::from),
                detach: p.bool("detach"),
                pid_file: p.get("pid-file").map(PathBuf::from),
                preserve_fds: p.u32("preserve-fds").map_err(|msg| Failure::Usage {
                    cmd,
                    msg,
                    in_header: true,
                })?,
                cgroup: p.get("cgroup").map(String::from),
                ignore_paused: p.bool("ignore-paused"),
            };
            exec::exec(&o, &process, &spec).map_err(|x| failed(x.to_string()))
        }
        "ps" => {
            let p = flags_of(cmd, args, true)?;
            min_args(cmd, &p, 1)?;
            let (id, rest) = (&p.pos[0], &p.pos[1..]);
            let ps_args = rest.strip_prefix(&["--".to_string()]).unwrap_or(rest);
            let pids = ps::pids(&root, id)?;
            match p.get("format").unwrap_or("table") {
                "json" => println!("{}", serde_json::Value::from(pids)),
                "table" => print!("{}", ps::table(&pids, ps_args)?),
                other => {
                    return Err(format!("invalid format option {other:?} (table or json)").into())
                }
            }
            Ok(0)
        }
        "pause" | "resume" => {
            let p = flags_of(cmd, args, false)?;
            exact_args(cmd, &p, 1)?;
            if cmd == "pause" {
                container::pause(&root, &p.pos[0])?;
            } else {
                container::resume(&root, &p.pos[0])?;
            }
            Ok(0)
        }
        "update" => {
            let p = flags_of(cmd, args, false)?;
            exact_args(cmd, &p, 1)?;
            let res = update::update_resources(&p)?;
            container::update(&root, &p.pos[0], &res)?;
            Ok(0)
        }
        "events" => {
            let p = flags_of(cmd, args, false)?;
            exact_args(cmd, &p, 1)?;
            // A Go duration, as runc's flag package reads it (5s, 100ms, 1m).
            let interval = match p.get("interval") {
                None => std::time::Duration::from_secs(5),
                Some(v) => berth_rules::time::go_duration_ns(v)
                    .and_then(|ns| u64::try_from(ns).ok())
                    .filter(|&ns| ns > 0)
                    .map(std::time::Duration::from_nanos)
                    .ok_or_else(|| Failure::Usage {
                        cmd,
                        msg: format!("invalid value {v:?} for flag -interval: parse error"),
                        in_header: true,
                    })?,
            };
            let mut out = std::io::stdout().lock();
            container::events(&root, &p.pos[0], p.bool("stats"), interval, &mut out)?;
            Ok(0)
        }
        "start" => {
            let p = flags_of(cmd, args, false)?;
            exact_args(cmd, &p, 1)?;
            let notify = std::env::var("NOTIFY_SOCKET")
                .ok()
                .filter(|s| !s.is_empty());
            container::start(&root, &p.pos[0], notify.as_deref())?;
            Ok(0)
        }
        "state" => {
            let p = flags_of(cmd, args, false)?;
            exact_args(cmd, &p, 1)?;
            let v = container::state_json(&root, &p.pos[0])?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(0)
        }
        "kill" => {
            let p = flags_of(cmd, args, false)?;
            if p.pos.is_empty() || p.pos.len() > 2 {
                return Err(
                    "berth: \"kill\" requires 1 or 2 arguments (container id and optional signal)"
                        .into(),
                );
            }
            // Signal 0 only asks whether the container lives, as with runc.
            let sig = match p.pos.get(1).map(String::as_str).unwrap_or("SIGTERM") {
                "0" => 0,
                s => container::parse_signal(s)?,
            };
            container::kill(&root, &p.pos[0], sig, p.bool("all"))?;
            Ok(0)
        }
        "delete" => {
            let p = flags_of(cmd, args, false)?;
            exact_args(cmd, &p, 1)?;
            container::delete(&root, &p.pos[0], p.bool("force"))?;
            Ok(0)
        }
        "list" => {
            let p = flags_of(cmd, args, false)?;
            exact_args(cmd, &p, 0)?;
            let list = container::list(&root)?;
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
                        return Err(
                            format!("invalid format option {other:?} (table or json)").into()
                        )
                    }
                }
            }
            Ok(0)
        }
        "spec" => {
            let p = flags_of(cmd, args, false)?;
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
        "systemd-scope" => {
            let p = flags_of(cmd, args, false)?;
            exact_args(cmd, &p, 3)?;
            if !systemd_runs() {
                return Err("systemd-scope: systemd is not running on this host".into());
            }
            let pid: u32 = p.pos[2]
                .parse()
                .map_err(|_| format!("systemd-scope: pid {:?} is not a number", p.pos[2]))?;
            let (unit, props) = crate::cgroups::systemd::process_scope(&p.pos[0], &p.pos[1], pid)
                .map_err(|x| x.to_string())?;
            let user = !nix::unistd::geteuid().is_root();
            crate::cgroups::systemd::dbus::start(&unit, &props, user).map_err(|x| x.to_string())?;
            Ok(0)
        }
        "features" => {
            let p = flags_of(cmd, args, false)?;
            exact_args(cmd, &p, 0)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::features::features()).unwrap_or_default()
            );
            Ok(0)
        }
        "checkpoint" | "restore" => {
            Err(format!("{cmd}: berth has no checkpointing (CRIU is not supported)").into())
        }
        other => Err(format!("No help topic for '{other}'").into()),
    }
}
