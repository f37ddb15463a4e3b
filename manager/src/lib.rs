//! The manager: `berthd`'s image store (content, snapshots, import) and
//! container lifecycle, and the `berthctl` client.

pub mod cni;
pub mod containers;
pub mod content;
pub mod diff;
pub mod digest;
pub mod gc;
pub mod images;
pub mod leases;
pub mod logs;
pub mod meta;
pub mod netns;
pub mod network;
pub mod oci;
pub mod perm;
pub mod pull;
pub use berth_rules::reference;
pub mod server;
pub mod snapshot;
pub mod spec;
pub(crate) mod sys;
pub mod tasks;
pub mod unpack;
