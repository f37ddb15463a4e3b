//! The rules of Berth's APIs that every program shares, written once: the
//! runtime, the shim, berthd and berthctl each check ids, parse signals and
//! sizes, print timestamps and read digests the same way. It lives beside
//! the `.proto` APIs because it is part of the same contract, and it is
//! small on purpose: berthctl depends on it and on nothing of the store.

pub mod digest;
pub mod dockerignore;
pub mod fdpass;
pub mod id;
pub mod idmap;
pub mod paths;
pub mod port;
pub mod reference;
pub mod signal;
pub mod size;
pub mod time;
