//! berthd, in layers, each using only those listed before it:
//! - `store`: content, metadata, leases, snapshots, images, pulls, gc;
//! - `network`: network namespaces, CNI, named networks and ports;
//! - `containers`: records, specs, logs, and tasks through shims;
//! - `server`: the gRPC services, which only adapt the layers to berthd's
//!   API (the CRI server will sit beside it).
//!
//! `perm` (who may reach berthd's directories) and `sys` (raw system calls)
//! serve every layer.

pub mod containers;
pub mod network;
pub mod perm;
pub mod server;
pub mod store;
pub(crate) mod sys;
