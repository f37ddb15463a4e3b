//! The commands and flags `berth` accepts, runc's names, with their help.

use super::flags::{f, Flag};

/// The global flags, before the command.
pub const GLOBAL: &[Flag] = &[
    f(&["debug"], false, "log debug messages"),
    f(
        &["log"],
        true,
        "the file berth's log lines go to (default is '/dev/stderr')",
    ),
    f(
        &["log-format"],
        true,
        "the log's format: 'text' (default) or 'json' (default: \"text\")",
    ),
    f(
        &["root"],
        true,
        "the directory containers' state is kept in, best on a tmpfs (default: \"/run/berth\")",
    ),
    f(
        &["criu"],
        true,
        "accepted for runc's callers; berth has no checkpointing (default: \"criu\")",
    ),
    f(
        &["systemd-cgroup"],
        false,
        "the container's cgroup is a transient systemd scope; cgroupsPath is \"slice:prefix:name\" (e.g. \"system.slice:berth:<id>\")",
    ),
    f(
        &["rootless"],
        true,
        "whether to ignore cgroup permission errors: 'true', 'false' or 'auto' (default: \"auto\")",
    ),
    f(&["help", "h"], false, "show help"),
    f(&["version", "v"], false, "print the version"),
];

/// `-h`, which every command takes and none lists.
pub const HELP: &[Flag] = &[f(&["help", "h"], false, "show help")];

/// `create`'s flags, which `run` shares.
pub const CREATE: &[Flag] = &[
    f(
        &["bundle", "b"],
        true,
        "the bundle's directory (config.json and the root filesystem), the current one by default",
    ),
    f(
        &["console-socket"],
        true,
        "a unix socket that receives the master side of the container's pseudo-terminal",
    ),
    f(&["pid-file"], true, "a file to write the process id to"),
    f(
        &["no-pivot"],
        false,
        "move the root with MS_MOVE and chroot instead of pivot_root, as a ramdisk root needs",
    ),
    f(
        &["no-new-keyring"],
        false,
        "keep the caller's session keyring instead of a new one for the container",
    ),
    f(
        &["preserve-fds"],
        true,
        "hand N more file descriptors to the container (stdio + $LISTEN_FDS + N in all) (default: 0)",
    ),
];

/// `run` takes create's flags and these.
pub const RUN_EXTRA: &[Flag] = &[
    f(&["detach", "d"], false, "return once the container runs"),
    f(
        &["keep"],
        false,
        "keep the container's state after it exits",
    ),
    f(
        &["no-subreaper"],
        false,
        "do not become the subreaper of the container's orphaned processes",
    ),
];

/// `exec`'s flags.
pub const EXEC: &[Flag] = &[
    f(
        &["console-socket"],
        true,
        "a unix socket that receives the master side of the process's pseudo-terminal",
    ),
    f(&["cwd"], true, "the working directory in the container"),
    f(&["env", "e"], true, "an environment variable, KEY=VALUE"),
    f(&["tty", "t"], false, "give the process a pseudo-terminal"),
    f(&["user", "u"], true, "the user, UID[:GID]"),
    f(&["additional-gids", "g"], true, "a supplementary group id"),
    f(
        &["process", "p"],
        true,
        "a process.json to run instead of the command line",
    ),
    f(&["detach", "d"], false, "return once the process runs"),
    f(&["pid-file"], true, "a file to write the process id to"),
    f(&["process-label"], true, "the process's SELinux label"),
    f(&["apparmor"], true, "the process's AppArmor profile"),
    f(&["no-new-privs"], false, "set no_new_privs for the process"),
    f(
        &["cap", "c"],
        true,
        "a capability to add to the process's sets",
    ),
    f(
        &["preserve-fds"],
        true,
        "hand N more file descriptors to the process (stdio + $LISTEN_FDS + N in all) (default: 0)",
    ),
    f(
        &["cgroup"],
        true,
        "run in an existing sub-cgroup of the container: [<controller>:]<cgroup>",
    ),
    f(
        &["ignore-paused"],
        false,
        "exec even if the container is paused",
    ),
];

/// `update`'s flags.
pub const UPDATE: &[Flag] = &[
    f(
        &["resources", "r"],
        true,
        "a file of linux.resources JSON to apply, '-' for standard input; the other flags are then ignored",
    ),
    f(&["blkio-weight"], true, "the block I/O weight, 10 to 1000 (default: 0)"),
    f(&["cpu-period"], true, "the CFS period in microseconds"),
    f(&["cpu-quota"], true, "the CFS quota in microseconds per period"),
    f(&["cpu-burst"], true, "the CFS burst in microseconds"),
    f(&["cpu-share"], true, "the CPU shares, a weight relative to others"),
    f(&["cpu-rt-period"], true, "the realtime period in microseconds"),
    f(&["cpu-rt-runtime"], true, "the realtime runtime in microseconds per period"),
    f(&["cpuset-cpus"], true, "the CPUs to run on"),
    f(&["cpuset-mems"], true, "the memory nodes to use"),
    f(&["memory"], true, "the memory limit in bytes (-1: none)"),
    f(&["memory-reservation"], true, "the memory soft limit in bytes"),
    f(
        &["memory-swap"],
        true,
        "memory plus swap in bytes; -1 for unlimited swap",
    ),
    f(&["pids-limit"], true, "the most processes the container may have (default: 0)"),
    f(&["l3-cache-schema"], true, "Intel RDT L3 schema (not supported)"),
    f(&["mem-bw-schema"], true, "Intel RDT memory bandwidth schema (not supported)"),
];

/// `events`' flags.
pub const EVENTS: &[Flag] = &[
    f(
        &["interval"],
        true,
        "how often to report the stats (default: 5s)",
    ),
    f(&["stats"], false, "report the stats once, then exit"),
];

/// `ps`' flags.
pub const PS: &[Flag] = &[f(
    &["format", "f"],
    true,
    "table or json (default: \"table\")",
)];

/// `kill`'s flags.
pub const KILL: &[Flag] = &[f(
    &["all", "a"],
    false,
    "signal every process in the container",
)];

/// `delete`'s flags.
pub const DELETE: &[Flag] = &[f(
    &["force", "f"],
    false,
    "kill the container first (SIGKILL) if it still runs",
)];

/// `list`'s flags.
pub const LIST: &[Flag] = &[
    f(&["format", "f"], true, "table or json (default: \"table\")"),
    f(&["quiet", "q"], false, "print only the containers' ids"),
];

/// `spec`'s flags.
pub const SPEC: &[Flag] = &[
    f(
        &["bundle", "b"],
        true,
        "the bundle directory to write config.json into",
    ),
    f(
        &["rootless"],
        false,
        "a configuration for a rootless container",
    ),
];

/// A command: its name, one-line summary, what follows its name in the
/// usage line, a longer description, and its flags.
pub struct Command {
    /// The name typed.
    pub name: &'static str,
    /// The summary in the command list and the help's NAME.
    pub summary: &'static str,
    /// The arguments in the usage line, and any paragraph explaining them.
    pub args: &'static str,
    /// The help's DESCRIPTION, or "".
    pub description: &'static str,
    /// The flag sets it takes.
    pub flags: &'static [&'static [Flag]],
}

const ID: &str = "<container-id>\n\nWhere \"<container-id>\" is the container's name, unique under the state root.";

/// Every command, in the help's order.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "checkpoint",
        summary: "not supported: berth has no checkpointing",
        args: ID,
        description: "",
        flags: &[],
    },
    Command {
        name: "create",
        summary: "create a container",
        args: ID,
        description: "Create sets the container up from the bundle and stops before its process\nruns: \"berth start\" runs it. The bundle holds config.json and the root filesystem.",
        flags: &[CREATE],
    },
    Command {
        name: "delete",
        summary: "delete a stopped container and everything it holds",
        args: ID,
        description: "Delete removes the container's state, cgroups and namespaces it owns.\nA running container is refused unless --force is given.",
        flags: &[DELETE],
    },
    Command {
        name: "events",
        summary: "report a container's resource statistics and OOM events",
        args: ID,
        description: "Events prints the container's statistics as JSON lines, every 5 seconds\nunless --interval says otherwise, and its OOM kills as they happen.",
        flags: &[EVENTS],
    },
    Command {
        name: "exec",
        summary: "run a new process in a running container",
        args: "<container-id> <command> [command options]  || -p process.json <container-id>\n\nWhere \"<container-id>\" is the container's name and \"<command>\" the program to run\nin it, which only \"-p\" may leave out.",
        description: "",
        flags: &[EXEC],
    },
    Command {
        name: "kill",
        summary: "send a signal (SIGTERM by default) to the container's init process",
        args: "<container-id> [signal]\n\nWhere \"<container-id>\" is the container's name and \"[signal]\" a signal's name\nor number (SIGKILL, KILL, 9); 0 only asks whether the container lives.",
        description: "",
        flags: &[KILL],
    },
    Command {
        name: "list",
        summary: "list the containers under the state root",
        args: "",
        description: "",
        flags: &[LIST],
    },
    Command {
        name: "pause",
        summary: "freeze every process of a container",
        args: ID,
        description: "",
        flags: &[],
    },
    Command {
        name: "ps",
        summary: "list the processes of a container",
        args: "<container-id> [ps options]",
        description: "",
        flags: &[PS],
    },
    Command {
        name: "restore",
        summary: "not supported: berth has no checkpointing",
        args: ID,
        description: "",
        flags: &[],
    },
    Command {
        name: "resume",
        summary: "thaw a paused container",
        args: ID,
        description: "",
        flags: &[],
    },
    Command {
        name: "run",
        summary: "create a container and run it",
        args: ID,
        description: "Run creates the container from the bundle and starts its process, staying\nin the foreground until it exits unless --detach is given.",
        flags: &[CREATE, RUN_EXTRA],
    },
    Command {
        name: "spec",
        summary: "write a default config.json",
        args: "",
        description: "Spec writes a starting config.json into the bundle; --rootless makes one\nfor an unprivileged user.",
        flags: &[SPEC],
    },
    Command {
        name: "start",
        summary: "run the process of a created container",
        args: ID,
        description: "",
        flags: &[],
    },
    Command {
        name: "state",
        summary: "print a container's state (OCI state JSON)",
        args: ID,
        description: "",
        flags: &[],
    },
    Command {
        name: "update",
        summary: "change a container's resource limits",
        args: ID,
        description: "",
        flags: &[UPDATE],
    },
    Command {
        name: "systemd-scope",
        summary: "place a running process (a shim) in a systemd scope of its own",
        args: "<unit> <slice> <pid>",
        description: "Asks systemd (the system's manager, or the caller's user manager) for a transient\nscope <unit> in <slice> holding process <pid>; systemd removes it when the process\nis gone. berth-shim uses it for itself under --systemd-cgroup.",
        flags: &[],
    },
    Command {
        name: "features",
        summary: "print the features berth supports (runtime-spec features JSON)",
        args: "",
        description: "",
        flags: &[],
    },
];

/// The command of that name.
pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}
