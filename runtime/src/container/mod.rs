//! The container lifecycle as the runtime spec and runc define it, one
//! command a module: `bundle` (load and validate), `create`, `start`, `run`,
//! `kill`, `delete`, `update` (with pause and resume), `query` (state, list,
//! events). Here: the errors they share.

mod bundle;
mod create;
mod delete;
mod kill;
mod query;
mod run;
mod start;
mod update;

pub use bundle::*;
pub use create::*;
pub use delete::*;
pub use kill::*;
pub use query::*;
pub use run::*;
pub use start::*;
pub use update::*;

use std::io;

use crate::{cgroups, namespaces, state};
use crate::{foreground, hooks, process, rootfs, sync, terminal};

/// Errors of lifecycle commands, as `berth` prints them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] state::Error),
    #[error(transparent)]
    Namespace(#[from] namespaces::Error),
    #[error(transparent)]
    Cgroup(#[from] cgroups::Error),
    #[error(transparent)]
    Process(#[from] process::Error),
    #[error(transparent)]
    Rootfs(#[from] rootfs::Error),
    #[error(transparent)]
    Hook(#[from] hooks::Error),
    #[error(transparent)]
    Sync(#[from] sync::Error),
    #[error(transparent)]
    Terminal(#[from] terminal::Error),
    #[error(transparent)]
    Foreground(#[from] foreground::Error),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::Error),
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    /// The config or a flag is wrong (the message names the field).
    #[error("{0}")]
    Invalid(String),
    /// Something the config asks for that berth or this host cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The container is not in a state the command can act on.
    #[error("{0}")]
    WrongState(String),
    /// The container process died (or a helper failed) during setup.
    #[error("{0}")]
    Died(String),
    /// The container did not go (or systemd put it elsewhere) in time.
    #[error("{0}")]
    Stuck(String),
    /// `ps` could not be run or its output read.
    #[error("{0}")]
    Ps(String),
    /// The NOTIFY_SOCKET relay could not be set up.
    #[error("{0}")]
    Notify(String),
    #[error("container not running")]
    NotRunning,
    /// The reason says what was seen of the container process.
    #[error("cannot start a container that has stopped: {0}")]
    StartStopped(String),
    #[error("cannot start an already running container")]
    StartRunning,
    #[error("cannot delete container {0} that is not stopped: {1}")]
    DeleteNotStopped(String, &'static str),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |err| Error::Io { what, err }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("hup").unwrap(), 1);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
