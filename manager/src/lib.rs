//! The manager: `berthd`'s image store (content, snapshots, import) and
//! container lifecycle, and the `berthctl` client.

pub mod content;
pub mod digest;
pub mod oci;
mod sys;
pub mod unpack;
