//! The image store: content-addressed blobs (`content`, `digest`), the
//! metadata database (`meta`) and leases on it, overlay snapshots and the
//! layers unpacked into them or diffed out of them, OCI types, images and
//! their pulls from registries and their mirrors, pushes to registries, and garbage collection. It knows nothing of
//! containers or of gRPC: it reports its own errors and progress.

pub mod build_cache;
pub mod commit;
pub mod content;
pub mod diff;
pub mod digest;
pub mod gc;
pub mod images;
pub mod leases;
pub mod lifecycle;
pub mod login;
pub mod meta;
pub mod mirrors;
pub mod oci;
pub mod pull;
pub mod push;
pub mod search;
pub use berth_rules::reference;
pub mod registry;
pub mod snapshot;
pub mod unpack;
