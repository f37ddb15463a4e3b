//! containerd's runtime v2 shim protocol, generated from `shim/proto/`.
#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    unused_qualifications,
    unsafe_code,
    unreachable_pub,
    unused_mut,
    dead_code,
    nonstandard_style
)]

include!(concat!(env!("OUT_DIR"), "/all.rs"));
