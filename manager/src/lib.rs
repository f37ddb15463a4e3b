//! berthd, in layers, each using only those listed before it:
//! - `store`: content, metadata, leases, snapshots, images, pulls, gc;
//! - `network`: network namespaces, CNI, named networks and ports;
//! - `containers`: records, specs, logs, and tasks through shims;
//! - `build`: images from Dockerfiles, RUN steps as containers;
//! - `cri`: the Kubernetes CRI v1 server (pods, their containers, images);
//! - `server`: the gRPC services, which only adapt the layers to berthd's
//!   API, and start the CRI's beside them.
//!
//! `codes` gives every server the gRPC code of a layer's error.
//! `perm` (who may reach berthd's directories) and `sys` (raw system calls)
//! serve every layer.

pub mod build;
pub mod codes;
pub mod conns;
pub mod containers;
pub mod cri;
pub mod network;
pub mod perm;
pub mod server;
pub mod store;
pub(crate) mod sys;

/// Process-wide tuning berthd does first, before any thread starts (see
/// `sys::limit_malloc_arenas`).
pub fn tune_process() {
    sys::limit_malloc_arenas(2);
}
