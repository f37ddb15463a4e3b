//! SPDY/3.1, the multiplexing protocol kubelet's streaming clients still
//! speak. No maintained crate implements it (the ones on crates.io are
//! either unmaintained or one-person experiments), so the framing is here;
//! header compression is zlib with the protocol's dictionary, by flate2.

pub mod frame;
pub mod session;
pub mod zlib;
