//! Capabilities and the default seccomp filter of a container, as docker
//! gives them: docker's default set, `--cap-add`/`--cap-drop` by name, the
//! capabilities berthd itself has (a container gets none beyond them), and
//! the syscalls denied to a container without the matching capability.

use super::spec::SpecError;
use serde_json::{json, Value};

/// The capabilities this process has (its CapEff), by name; every one when
/// /proc cannot say. Read once: berthd's own do not change.
pub fn own_capabilities() -> &'static [String] {
    static OWN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    OWN.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .unwrap_or(u64::MAX);
        cap_names(eff)
    })
}

/// Docker's default capabilities.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Linux 6.x has.
pub(crate) const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Syscalls the default filter refuses (EPERM), each with the capability
/// that lets it through again, as docker's default profile gates them.
const DENIED: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "mount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "perf_event_open",
            "fanotify_init",
            "name_to_handle_at",
            "bpf",
            "sethostname",
            "setdomainname",
        ],
    ),
    (
        "CAP_SYS_MODULE",
        &[
            "init_module",
            "finit_module",
            "delete_module",
            "create_module",
            "query_module",
            "get_kernel_syms",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot", "kexec_load", "kexec_file_load"]),
    (
        "CAP_SYS_TIME",
        &[
            "settimeofday",
            "stime",
            "clock_settime",
            "clock_settime64",
            "adjtimex",
            "clock_adjtime",
            "clock_adjtime64",
        ],
    ),
    (
        "CAP_SYS_PTRACE",
        &["ptrace", "process_vm_readv", "process_vm_writev", "kcmp"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "",
        &[
            "add_key",
            "keyctl",
            "request_key",
            "swapon",
            "swapoff",
            "userfaultfd",
            "uselib",
            "vm86",
            "vm86old",
            "_sysctl",
            "sysfs",
            "ustat",
            "nfsservctl",
            "vhangup",
        ],
    ),
];

/// The names of the capabilities whose bits are set in `mask` (as
/// /proc/PID/status shows them), in bit order.
pub fn cap_names(mask: u64) -> Vec<String> {
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << bit) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The capability name for a user's spelling (`net_admin`, `CAP_NET_ADMIN`).
pub fn cap_name(s: &str) -> Result<String, SpecError> {
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if name == "CAP_ALL" || ALL_CAPS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(SpecError::Invalid(format!("unknown capability {s:?}")))
    }
}

/// The default capability set with `add` and `drop` applied (`ALL` works in
/// both, as in docker: drop ALL then add some).
pub fn capabilities(add: &[String], drop: &[String]) -> Result<Vec<String>, SpecError> {
    let add: Vec<String> = add.iter().map(|c| cap_name(c)).collect::<Result<_, _>>()?;
    let drop: Vec<String> = drop.iter().map(|c| cap_name(c)).collect::<Result<_, _>>()?;
    let mut caps: Vec<String> = if add.iter().any(|c| c == "CAP_ALL") {
        ALL_CAPS.iter().map(|c| c.to_string()).collect()
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    if drop.iter().any(|c| c == "CAP_ALL") {
        caps.clear();
    } else {
        caps.retain(|c| !drop.contains(c));
    }
    for c in add {
        if c != "CAP_ALL" && !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

/// berthd's default seccomp filter: allow all but the syscalls docker's
/// default profile keeps from a container without the matching capability.
pub fn default_seccomp(caps: &[String]) -> Value {
    let names: Vec<&str> = DENIED
        .iter()
        .filter(|(cap, _)| cap.is_empty() || !caps.iter().any(|c| c == cap))
        .flat_map(|(_, n)| n.iter().copied())
        .collect();
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_bits_are_named_in_order() {
        assert_eq!(cap_names(0b1), ["CAP_CHOWN"]);
        assert_eq!(
            cap_names(1 << 21 | 1 << 24),
            ["CAP_SYS_ADMIN", "CAP_SYS_RESOURCE"]
        );
        assert_eq!(cap_names(u64::MAX).len(), ALL_CAPS.len());
    }

    #[test]
    fn capabilities_and_filter() {
        let c = capabilities(&["net_admin".into()], &["CAP_MKNOD".into()]).unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()) && !c.contains(&"CAP_MKNOD".to_string()));
        let c = capabilities(&["chown".into()], &["all".into()]).unwrap();
        assert_eq!(c, ["CAP_CHOWN"]);
        assert!(capabilities(&["bogus".into()], &[]).is_err());
        let f = default_seccomp(&["CAP_SYS_PTRACE".into()]);
        let names = f["syscalls"][0]["names"].as_array().unwrap();
        assert!(names.contains(&json!("mount")) && !names.contains(&json!("ptrace")));
    }
}
