//! The container commands' flags and their values, as docker's CLI takes them.

use berth_proto::containers::{self as pb};
use clap::{Args, Subcommand};

/// The process options `run`, `create` and `exec` share.
#[derive(Args, Clone)]
pub struct ProcessArgs {
    /// Set an environment variable (KEY=VALUE, or KEY to take it from here).
    #[arg(short, long = "env")]
    pub(crate) env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub(crate) workdir: Option<String>,
    /// user[:group], by name or number.
    #[arg(short, long)]
    pub(crate) user: Option<String>,
}

impl ProcessArgs {
    /// KEY=VALUE pairs; a bare KEY takes this process's value, or is dropped.
    pub(crate) fn env(&self) -> Vec<String> {
        self.env
            .iter()
            .filter_map(|e| {
                if e.contains('=') {
                    Some(e.clone())
                } else {
                    std::env::var(e).ok().map(|v| format!("{e}={v}"))
                }
            })
            .collect()
    }
}

/// Options shared by `run` and `create`.
#[derive(Args, Clone)]
pub struct CreateArgs {
    /// The container's name (and id).
    #[arg(long)]
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) process: ProcessArgs,
    /// Bind mount or named volume: /host:/ctr[:ro] or NAME:/ctr[:ro].
    #[arg(short, long = "volume")]
    pub(crate) volume: Vec<String>,
    /// Network: bridge (the default network), a network's name, none,
    /// host, or container:NAME (another container's).
    #[arg(long = "net", alias = "network", default_value = "bridge")]
    pub(crate) net: String,
    /// Publish a port: [hostip:][hostport:]containerport[/tcp|udp].
    #[arg(short = 'p', long = "publish")]
    pub(crate) publish: Vec<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short, long)]
    pub(crate) memory: Option<String>,
    /// CPUs (e.g. 1.5).
    #[arg(long)]
    pub(crate) cpus: Option<f64>,
    /// Maximum number of processes.
    #[arg(long)]
    pub(crate) pids_limit: Option<i64>,
    /// A log option, as docker's: max-size=SIZE, max-file=N (repeatable).
    #[arg(long = "log-opt")]
    pub(crate) log_opts: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub(crate) read_only: bool,
    /// Add a capability (or ALL).
    #[arg(long)]
    pub(crate) cap_add: Vec<String>,
    /// Drop a capability (or ALL).
    #[arg(long)]
    pub(crate) cap_drop: Vec<String>,
    /// seccomp=FILE or seccomp=unconfined.
    #[arg(long)]
    pub(crate) security_opt: Vec<String>,
    /// Runtime binary for this container.
    #[arg(long)]
    pub(crate) runtime: Option<String>,
    /// Keep stdin open.
    #[arg(short, long)]
    pub(crate) interactive: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    pub(crate) tty: bool,
    /// Replace the image's entrypoint.
    #[arg(long)]
    pub(crate) entrypoint: Option<String>,
    /// The container's hostname.
    #[arg(long)]
    pub(crate) hostname: Option<String>,
    /// A label (KEY=VALUE).
    #[arg(short, long = "label")]
    pub(crate) label: Vec<String>,
    /// Every capability and device, no seccomp filter.
    #[arg(long)]
    pub(crate) privileged: bool,
    /// The image.
    pub(crate) image: String,
    /// The command and its arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}

/// Container commands.
#[derive(Subcommand)]
pub enum ContainerCmd {
    /// Create and start a container.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Run in the background; print the id.
        #[arg(short, long)]
        detach: bool,
        /// Remove the container when it exits.
        #[arg(long)]
        rm: bool,
        /// Keys that detach from the container's terminal.
        #[arg(long, default_value = "ctrl-p,ctrl-q")]
        detach_keys: String,
    },
    /// Create a container without starting it.
    Create {
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Start containers.
    Start {
        /// Attach to its output and wait for it.
        #[arg(short, long)]
        attach: bool,
        /// Attach stdin.
        #[arg(short, long)]
        interactive: bool,
        /// Keys that detach from the container's terminal.
        #[arg(long, default_value = "ctrl-p,ctrl-q")]
        detach_keys: String,
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers.
    Ps {
        /// All containers, not only running ones.
        #[arg(short, long)]
        all: bool,
        /// Ids only.
        #[arg(short, long)]
        quiet: bool,
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// A container's output.
    Logs {
        /// Keep following it.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines ("all": every line).
        #[arg(long, default_value = "all")]
        tail: String,
        /// Only lines since a time (RFC 3339, seconds since the epoch, or a duration like 10m).
        #[arg(long)]
        since: Option<String>,
        /// Prefix each line with its time.
        #[arg(short, long)]
        timestamps: bool,
        /// The container.
        container: String,
    },
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Stop containers: SIGTERM, then SIGKILL after the timeout.
    Stop {
        /// Seconds to wait before killing.
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to containers.
    Kill {
        /// The signal (name or number).
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Kill running ones first.
        #[arg(short, long)]
        force: bool,
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Freeze containers.
    Pause {
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Thaw containers.
    Unpause {
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Containers' details as JSON.
    Inspect {
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Resource usage of running containers.
    Stats {
        /// One sample, then exit.
        #[arg(long)]
        no_stream: bool,
        /// The containers (default: all running).
        containers: Vec<String>,
    },
    /// Stream events.
    Events {
        /// container=ID, topic=PREFIX (e.g. topic=/tasks/exit), event=NAME.
        #[arg(short, long)]
        filter: Vec<String>,
        /// text or json.
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Named volumes.
    Volume {
        #[command(subcommand)]
        cmd: VolumeCmd,
    },
    /// CNI networks.
    Network {
        #[command(subcommand)]
        cmd: NetworkCmd,
    },
}

/// `network` subcommands.
#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a bridge network.
    Create {
        /// Its name.
        name: String,
        /// a.b.c.d/len (default: the first free 10.211-254.0.0/16).
        #[arg(long)]
        subnet: Option<String>,
        /// The gateway (default: the subnet's first address).
        #[arg(long)]
        gateway: Option<String>,
        /// Only bridge.
        #[arg(short, long, default_value = "bridge")]
        driver: String,
    },
    /// List networks.
    Ls {
        /// Names only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove networks.
    Rm {
        /// The networks.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show networks as JSON.
    Inspect {
        /// The networks.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `volume` subcommands.
#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Create a volume.
    Create {
        /// Its name.
        name: String,
    },
    /// List volumes.
    Ls {
        /// Names only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove volumes.
    Rm {
        /// The volumes.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Parses `--since`: RFC 3339, seconds since the epoch, or a duration ago
/// (`90s`, `10m`, `2h`).
pub fn parse_since(s: &str, now_secs: i64) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Some(ns) = berth_rules::time::parse_rfc3339(s) {
        return Ok(ns / 1_000_000_000);
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let mul = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("invalid time {s:?}")),
    };
    let n: i64 = num.parse().map_err(|_| format!("invalid time {s:?}"))?;
    Ok(now_secs - n * mul)
}

/// Parses `-v`: `/host:/ctr[:ro|rw]` or `NAME:/ctr[:ro|rw]`.
pub fn parse_volume(s: &str) -> Result<pb::MountSpec, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, ro) = match parts.as_slice() {
        [d] => return Err(format!("volume {d:?}: give SOURCE:DESTINATION")),
        [s, d] => (*s, *d, false),
        [s, d, "ro"] => (*s, *d, true),
        [s, d, "rw"] => (*s, *d, false),
        _ => return Err(format!("invalid volume {s:?}: SOURCE:DESTINATION[:ro]")),
    };
    if !dst.starts_with('/') {
        return Err(format!("volume {s:?}: the destination must be absolute"));
    }
    Ok(pb::MountSpec {
        kind: if src.starts_with('/') {
            "bind"
        } else {
            "volume"
        }
        .into(),
        source: src.into(),
        destination: dst.into(),
        read_only: ro,
    })
}

/// The signal number for the API, from a name or number.
pub fn parse_signal(s: &str) -> Result<u32, String> {
    berth_rules::signal::parse(s)
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("invalid signal {s:?}"))
}

/// `exec`'s flags.
#[derive(Args)]
pub struct ExecArgs {
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Every capability.
    #[arg(long)]
    pub privileged: bool,
    /// Keys that detach from the terminal.
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// The container.
    pub container: String,
    /// The command.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_as_docker() {
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("sigkill").unwrap(), 9);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("FOO").is_err());
        assert_eq!(parse_since("10m", 1000).unwrap(), 400);
        assert_eq!(parse_since("1970-01-01T00:01:00Z", 0).unwrap(), 60);
        let v = parse_volume("/data:/d:ro").unwrap();
        assert_eq!((v.kind.as_str(), v.read_only), ("bind", true));
        assert_eq!(parse_volume("cache:/c").unwrap().kind, "volume");
        assert!(parse_volume("cache:rel").is_err());
    }
}
