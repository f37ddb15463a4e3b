//! `containerd-shim-berth-v2`: berth-shim speaking containerd's runtime v2
//! shim protocol over ttrpc.

mod launch;
mod options;
pub mod proto;
mod publish;
mod stdio;
mod task;

pub use launch::main;
