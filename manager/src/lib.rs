//! The manager: `berthd`'s image store (content, snapshots, import) and
//! container lifecycle, and the `berthctl` client.

pub mod content;
pub mod ctl;
pub mod diff;
pub mod digest;
pub mod gc;
pub mod images;
pub mod meta;
pub mod oci;
pub mod pull;
pub mod reference;
pub mod server;
pub mod snapshot;
mod sys;
pub mod unpack;
