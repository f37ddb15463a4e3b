//! `berth-shim`: one long-lived supervisor per container, between the manager
//! and the runtime, as containerd-shim-runc-v2 and conmon are. It holds the
//! container's stdio, is the child subreaper of its processes, records their
//! exits, and serves the `berth.shim.v1` gRPC API on a unix socket, so the
//! manager can restart without losing a container, its output or its exit.
//!
//! Single-threaded by design: one tokio thread, no thread per container or
//! stream, fixed-size buffers. The runtime is run with fork+exec.

pub mod daemon;
pub mod events;
pub mod hold;
pub mod idmap;
pub mod io;
pub mod log;
pub mod mount;
pub mod oom;
pub mod process;
pub mod reaper;
pub mod runtime;
pub mod service;
mod sys;
pub mod v2;
