//! Berth's OCI runtime as a library: the `berth` binary is a thin shell over
//! [`cli::main`]. Modules follow the runtime's concepts: namespaces, rootfs,
//! process attributes, cgroups, hooks, state, and the lifecycle that ties
//! them together; raw system calls live only in [`syscall`].

pub mod alloc;
pub mod cgroups;
pub mod cli;
pub mod container;
pub mod exe;
pub mod exec;
pub mod features;
pub mod foreground;
pub mod hooks;
pub mod init;
pub mod last_steps;
pub mod log;
pub mod namespaces;
pub mod notify;
pub mod process;
pub mod ps;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sync;
pub(crate) mod syscall;
pub mod terminal;
