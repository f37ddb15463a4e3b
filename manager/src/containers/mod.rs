//! Containers: their records (`records`: containers, volumes, exits), the
//! OCI spec made from a create request (`spec`, with `capabilities` and the
//! default seccomp filter), logs, and tasks run
//! through one shim each (`tasks`: lifecycle, exec, network attachment,
//! recovery after a restart).

pub mod capabilities;
pub mod cgroups;
pub mod logs;
pub mod records;
pub mod spec;
pub mod tasks;
