//! The default masked and read-only paths of a container, as runc's `spec`
//! writes them: proc and sys entries that reveal or change the host.

/// Paths hidden from the container (`linux.maskedPaths`).
pub const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// What docker masks besides runc's (power capping counters reveal the
/// host's activity: a side channel).
pub const MASKED_DOCKER_EXTRA: &[&str] = &["/sys/devices/virtual/powercap"];

/// Paths made read-only (`linux.readonlyPaths`).
pub const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
