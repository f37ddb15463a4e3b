//! The container process's attributes from `process`: rlimits, user and
//! groups, capabilities, no_new_privs, scheduler, I/O priority, personality,
//! LSM labels, and the executable lookup.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use caps::{CapSet, Capability};
use oci_spec::runtime::{LinuxCapabilities, Process};

use crate::syscall;

/// Errors of process setup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {err}")]
    Sys { what: String, err: io::Error },
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {msg}")]
    Caps { what: String, msg: String },
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("exec: {0:?}: {1}")]
    NotExecutable(String, &'static str),
}

fn sys(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |err| Error::Sys { what, err }
}

fn nix_sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
    let what = what.into();
    move |e| Error::Sys {
        what,
        err: e.into(),
    }
}

/// Resource number of an `RLIMIT_*` name.
pub fn rlimit_resource(name: &str) -> Option<crate::syscall::RlimitResource> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

/// Checks what can be checked before any process exists.
pub fn validate(p: &Process) -> Result<(), Error> {
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Invalid("process.args: must not be empty".into()));
    }
    if !p.cwd().is_absolute() {
        return Err(Error::Invalid(format!(
            "process.cwd {}: must be an absolute path",
            p.cwd().display()
        )));
    }
    let mut seen = HashSet::new();
    for r in p.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        if rlimit_resource(&name).is_none() {
            return Err(Error::Invalid(format!(
                "process.rlimits: unknown type {name:?}"
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(Error::Invalid(format!(
                "process.rlimits: {name} listed twice"
            )));
        }
        if r.soft() > r.hard() {
            return Err(Error::Invalid(format!(
                "process.rlimits: {name} soft limit {} exceeds hard limit {}",
                r.soft(),
                r.hard()
            )));
        }
    }
    if let Some(profile) = p.apparmor_profile().as_ref().filter(|s| !s.is_empty()) {
        if !apparmor_enabled() {
            return Err(Error::Invalid(format!(
                "process.apparmorProfile {profile:?}: AppArmor is not enabled on this host"
            )));
        }
    }
    if let Some(label) = p.selinux_label().as_ref().filter(|s| !s.is_empty()) {
        if !selinux_enabled() {
            return Err(Error::Invalid(format!(
                "process.selinuxLabel {label:?}: SELinux is not enabled on this host"
            )));
        }
    }
    if let Some(caps) = p.capabilities() {
        to_caps(caps)?;
    }
    Ok(())
}

/// True when AppArmor is enabled in the running kernel.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// True when SELinux is enabled (selinuxfs mounted).
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Sets every rlimit of the config on process `pid`, from the parent: once
/// the child is in a new user namespace it could no longer raise them.
pub fn set_rlimits(pid: libc::pid_t, p: &Process) -> Result<(), Error> {
    for r in p.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let res = rlimit_resource(&name)
            .ok_or_else(|| Error::Invalid(format!("unknown rlimit {name}")))?;
        syscall::prlimit(pid, res, r.soft(), r.hard()).map_err(|err| Error::Sys {
            what: format!("set {name} to soft {} hard {}", r.soft(), r.hard()),
            err,
        })?;
    }
    Ok(())
}

/// Applies scheduler, I/O priority and personality.
pub fn set_sched_io_persona(
    p: &Process,
    linux_personality: Option<&oci_spec::runtime::LinuxPersonality>,
) -> Result<(), Error> {
    if let Some(s) = p.scheduler() {
        let policy = match serde_json::to_value(s.policy())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .as_deref()
        {
            Some("SCHED_OTHER") => 0,
            Some("SCHED_FIFO") => 1,
            Some("SCHED_RR") => 2,
            Some("SCHED_BATCH") => 3,
            Some("SCHED_IDLE") => 5,
            Some("SCHED_DEADLINE") => 6,
            other => {
                return Err(Error::Invalid(format!(
                    "process.scheduler.policy {other:?} unknown"
                )))
            }
        };
        let mut flags = 0u64;
        for f in s.flags().iter().flatten() {
            let name = serde_json::to_value(f)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            flags |= match name.as_str() {
                "SCHED_FLAG_RESET_ON_FORK" => 0x01,
                "SCHED_FLAG_RECLAIM" => 0x02,
                "SCHED_FLAG_DL_OVERRUN" => 0x04,
                "SCHED_FLAG_KEEP_POLICY" => 0x08,
                "SCHED_FLAG_KEEP_PARAMS" => 0x10,
                "SCHED_FLAG_UTIL_CLAMP_MIN" => 0x20,
                "SCHED_FLAG_UTIL_CLAMP_MAX" => 0x40,
                _ => {
                    return Err(Error::Invalid(format!(
                        "process.scheduler.flags: unknown {name:?}"
                    )))
                }
            };
        }
        syscall::sched_setattr(
            policy,
            flags,
            s.nice().unwrap_or(0),
            s.priority().unwrap_or(0) as u32,
            s.runtime().unwrap_or(0),
            s.deadline().unwrap_or(0),
            s.period().unwrap_or(0),
        )
        .map_err(sys("set process.scheduler"))?;
    }
    if let Some(io) = p.io_priority() {
        let class = match serde_json::to_value(io.class())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .as_deref()
        {
            Some("IOPRIO_CLASS_RT") => 1,
            Some("IOPRIO_CLASS_BE") => 2,
            Some("IOPRIO_CLASS_IDLE") => 3,
            other => {
                return Err(Error::Invalid(format!(
                    "process.ioPriority.class {other:?} unknown"
                )))
            }
        };
        let prio = (class << 13) | (i32::try_from(io.priority() & 0x1fff).unwrap_or(0));
        syscall::ioprio_set(prio).map_err(sys("set process.ioPriority"))?;
    }
    if let Some(pers) = linux_personality {
        let domain = match serde_json::to_value(pers.domain())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .as_deref()
        {
            Some("LINUX") => 0x0000,
            Some("LINUX32") => 0x0008,
            other => {
                return Err(Error::Invalid(format!(
                    "linux.personality.domain {other:?} unknown"
                )))
            }
        };
        syscall::personality(domain).map_err(sys("set linux.personality"))?;
    }
    Ok(())
}

/// Writes the LSM labels the next exec will take. Validation already refused
/// labels on hosts without the LSM.
pub fn set_lsm_labels(p: &Process) -> Result<(), Error> {
    if let Some(profile) = p.apparmor_profile().as_ref().filter(|s| !s.is_empty()) {
        let path = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        std::fs::write(path, format!("exec {profile}"))
            .map_err(sys(format!("set apparmor profile {profile}")))?;
    }
    if let Some(label) = p.selinux_label().as_ref().filter(|s| !s.is_empty()) {
        std::fs::write("/proc/self/attr/exec", label)
            .map_err(sys(format!("set selinux label {label}")))?;
    }
    Ok(())
}

fn cap_names(set: &Option<oci_spec::runtime::Capabilities>) -> Result<HashSet<Capability>, Error> {
    let mut out = HashSet::new();
    for c in set.iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let cap = Capability::from_str(&name).map_err(|_| {
            Error::Invalid(format!("process.capabilities: unknown capability {name:?}"))
        })?;
        out.insert(cap);
    }
    Ok(out)
}

/// Parses a capability name as the config spells it (`CAP_NET_ADMIN`; the
/// `CAP_` prefix may be left out).
pub fn parse_cap(name: &str) -> Result<oci_spec::runtime::Capability, Error> {
    let up = name.to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    serde_json::from_value(serde_json::Value::String(full))
        .map_err(|_| Error::Invalid(format!("unknown capability {name:?}")))
}

/// The five capability sets of the config.
pub struct CapSets {
    pub bounding: HashSet<Capability>,
    pub effective: HashSet<Capability>,
    pub permitted: HashSet<Capability>,
    pub inheritable: HashSet<Capability>,
    pub ambient: HashSet<Capability>,
}

/// Converts the config's capabilities, rejecting unknown names.
pub fn to_caps(c: &LinuxCapabilities) -> Result<CapSets, Error> {
    Ok(CapSets {
        bounding: cap_names(c.bounding())?,
        effective: cap_names(c.effective())?,
        permitted: cap_names(c.permitted())?,
        inheritable: cap_names(c.inheritable())?,
        ambient: cap_names(c.ambient())?,
    })
}

/// Drops the bounding set to what the config keeps. Needs CAP_SETPCAP, so it
/// runs before the user changes.
pub fn drop_bounding(c: &CapSets) -> Result<(), Error> {
    for cap in caps::all() {
        if !c.bounding.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false)
        {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| Error::Caps {
                what: format!("drop {cap} from the bounding set"),
                msg: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// Sets effective, permitted, inheritable and ambient sets (after the user change).
pub fn set_caps(c: &CapSets) -> Result<(), Error> {
    let set = |which: CapSet, v: &HashSet<Capability>, name: &str| {
        caps::set(None, which, v).map_err(|e| Error::Caps {
            what: format!("set {name} capabilities"),
            msg: e.to_string(),
        })
    };
    // Each capset must keep effective within permitted and inheritable within
    // the old permitted set: shrink effective first, set inheritable while
    // permitted is still full, then permitted, then raise ambient.
    let mut permitted = c.permitted.clone();
    permitted.extend(c.effective.iter().copied());
    set(CapSet::Effective, &c.effective, "effective")?;
    set(CapSet::Inheritable, &c.inheritable, "inheritable")?;
    set(CapSet::Permitted, &permitted, "permitted")?;
    caps::clear(None, CapSet::Ambient).map_err(|e| Error::Caps {
        what: "clear ambient capabilities".into(),
        msg: e.to_string(),
    })?;
    for cap in &c.ambient {
        // Ambient needs the cap in permitted and inheritable; the kernel refuses
        // otherwise, and runc skips such entries too.
        if permitted.contains(cap) && c.inheritable.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap).map_err(|e| Error::Caps {
                what: format!("raise ambient {cap}"),
                msg: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// Changes groups, gid and uid, keeping capabilities across the uid change.
pub fn set_user(p: &Process, setgroups_allowed: bool) -> Result<(), Error> {
    let u = p.user();
    syscall::prctl(libc::PR_SET_KEEPCAPS, 1).map_err(sys("prctl PR_SET_KEEPCAPS"))?;
    if setgroups_allowed {
        syscall::setgroups(&unique_groups(
            u.additional_gids().as_deref().unwrap_or(&[]),
        ))
        .map_err(sys("setgroups"))?;
    } else if u.additional_gids().as_ref().is_some_and(|g| !g.is_empty()) {
        return Err(Error::Invalid(
            "process.user.additionalGids: cannot be set when setgroups is denied in the user namespace".into(),
        ));
    }
    syscall::setresgid(u.gid()).map_err(sys(format!("setresgid {}", u.gid())))?;
    syscall::setresuid(u.uid()).map_err(sys(format!("setresuid {}", u.uid())))?;
    syscall::prctl(libc::PR_SET_KEEPCAPS, 0).map_err(sys("prctl PR_SET_KEEPCAPS"))?;
    if let Some(mask) = u.umask() {
        syscall::umask(mask);
    }
    Ok(())
}

/// `additionalGids` without repeats, in their first order (runc dedupes them too).
pub fn unique_groups(gids: &[u32]) -> Vec<libc::gid_t> {
    let mut out: Vec<libc::gid_t> = Vec::with_capacity(gids.len());
    for g in gids {
        if !out.contains(g) {
            out.push(*g);
        }
    }
    out
}

/// Sets no_new_privs.
pub fn set_no_new_privs() -> Result<(), Error> {
    syscall::prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
        .map_err(sys("prctl PR_SET_NO_NEW_PRIVS"))
        .map(drop)
}

/// Who a process will be when it execs: what the kernel's execute
/// permission check looks at.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub uid: u32,
    pub gid: u32,
    pub groups: &'a [u32],
    /// CAP_DAC_OVERRIDE in the effective set.
    pub dac_override: bool,
}

impl<'a> Who<'a> {
    /// The process `p` describes, with the effective capabilities `caps`.
    pub fn of(p: &'a Process, caps: Option<&CapSets>) -> Who<'a> {
        let u = p.user();
        Who {
            uid: u.uid(),
            gid: u.gid(),
            groups: u.additional_gids().as_deref().unwrap_or(&[]),
            dac_override: caps.is_some_and(|c| c.effective.contains(&Capability::CAP_DAC_OVERRIDE)),
        }
    }
}

/// Whether `who` may execute a file of `mode` owned by `owner`:`group`, as
/// the kernel decides it (generic_permission for MAY_EXEC, without ACLs):
/// the owner's bits for the owner, else the group's for a member, else the
/// others'; CAP_DAC_OVERRIDE passes when any execute bit is set.
pub fn may_execute(mode: u32, owner: u32, group: u32, who: &Who) -> bool {
    if who.dac_override && mode & 0o111 != 0 {
        return true;
    }
    let bits = if owner == who.uid {
        mode >> 6
    } else if group == who.gid || who.groups.contains(&group) {
        mode >> 3
    } else {
        mode
    };
    bits & 0o1 != 0
}

/// Finds the executable as execvp would, with the container's PATH, after the
/// root change; returns its path. It runs before the user changes (and
/// before the seccomp filter, which must not see berth's own lookups), so
/// the execute check is made for `who`, the user the process will be.
pub fn find_executable(arg0: &str, env: &[String], who: &Who) -> Result<PathBuf, Error> {
    use std::os::unix::fs::MetadataExt;
    let check = |p: &Path| -> Result<(), Error> {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => Err(Error::NotExecutable(arg0.to_string(), "is a directory")),
            Ok(m) if may_execute(m.mode(), m.uid(), m.gid(), who) => Ok(()),
            Ok(_) => Err(Error::NotExecutable(arg0.to_string(), "permission denied")),
            Err(_) => Err(Error::NotFound(arg0.to_string())),
        }
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        check(&p).map_err(|e| match e {
            Error::NotFound(a) => Error::NotExecutable(a, "no such file or directory"),
            e => e,
        })?;
        return Ok(p);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut last = Error::NotFound(arg0.to_string());
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        match check(&cand) {
            Ok(()) => return Ok(cand),
            Err(e @ Error::NotExecutable(..)) => last = e,
            Err(_) => {}
        }
    }
    Err(last)
}

/// Marks the calling process not dumpable, so that processes in the container
/// cannot open its /proc entries (exe, mem, fds) while it runs Berth code.
pub fn set_not_dumpable() -> Result<(), Error> {
    syscall::prctl(libc::PR_SET_DUMPABLE, 0)
        .map_err(sys("prctl PR_SET_DUMPABLE"))
        .map(drop)
}

/// Converts a nix error for callers that build their own context.
pub fn nix_err(what: &str, e: nix::Error) -> Error {
    nix_sys(what.to_string())(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimit_names() {
        assert_eq!(rlimit_resource("RLIMIT_NOFILE"), Some(libc::RLIMIT_NOFILE));
        assert_eq!(rlimit_resource("RLIMIT_BOGUS"), None);
    }

    #[test]
    fn validation_names_the_field() {
        let p: Process =
            serde_json::from_str(r#"{"cwd":"relative","args":["sh"],"user":{"uid":0,"gid":0}}"#)
                .unwrap();
        assert!(validate(&p)
            .unwrap_err()
            .to_string()
            .contains("process.cwd"));
        let p: Process = serde_json::from_str(
            r#"{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},"rlimits":[{"type":"RLIMIT_NOFILE","soft":10,"hard":5}]}"#,
        )
        .unwrap();
        assert!(validate(&p).unwrap_err().to_string().contains("soft limit"));
    }

    #[test]
    fn lookup_in_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        let p = find_executable("sh", &env, &ROOT).unwrap();
        assert!(p.ends_with("sh"));
        assert!(matches!(
            find_executable("no-such-binary-xyz", &env, &ROOT),
            Err(Error::NotFound(_))
        ));
        assert!(find_executable("/no/such", &env, &ROOT)
            .unwrap_err()
            .to_string()
            .contains("no such file"));
    }

    const ROOT: Who<'static> = Who {
        uid: 0,
        gid: 0,
        groups: &[],
        dac_override: true,
    };

    #[test]
    fn additional_gids_are_deduplicated_in_order() {
        assert_eq!(unique_groups(&[5, 3, 5, 1, 3]), vec![5, 3, 1]);
        assert!(unique_groups(&[]).is_empty());
    }

    #[test]
    fn execute_permission_is_decided_for_the_future_user() {
        let user = Who {
            uid: 1000,
            gid: 100,
            groups: &[20],
            dac_override: false,
        };
        // The owner's bits decide for the owner, even when others may.
        assert!(may_execute(0o700, 1000, 0, &user));
        assert!(!may_execute(0o077, 1000, 100, &user));
        // The group's bits for the primary group and a supplementary one.
        assert!(may_execute(0o710, 0, 100, &user));
        assert!(may_execute(0o710, 0, 20, &user));
        assert!(!may_execute(0o701, 0, 20, &user));
        // Others'.
        assert!(may_execute(0o701, 0, 0, &user));
        assert!(!may_execute(0o770, 0, 0, &user));
        // CAP_DAC_OVERRIDE needs some execute bit; root without it is
        // checked like anyone (a root-owned 0600 file is not executable).
        assert!(may_execute(0o100, 5, 5, &ROOT));
        assert!(!may_execute(0o644, 0, 0, &ROOT));
        let bare_root = Who {
            dac_override: false,
            ..ROOT
        };
        assert!(!may_execute(0o001, 0, 0, &bare_root));
        assert!(!may_execute(0o070, 0, 0, &bare_root));
        assert!(may_execute(0o170, 0, 0, &bare_root));
    }

    #[test]
    fn lookup_skips_what_the_future_user_cannot_execute() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("berth-lookup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for sub in ["a", "b"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let me = nix::unistd::getuid().as_raw();
        let them = me.wrapping_add(4242);
        std::fs::write(d.join("a/prog"), b"").unwrap();
        std::fs::set_permissions(d.join("a/prog"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(d.join("b/prog"), b"").unwrap();
        std::fs::set_permissions(d.join("b/prog"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = vec![format!(
            "PATH={}:{}",
            d.join("a").display(),
            d.join("b").display()
        )];
        let owner = Who {
            uid: me,
            gid: 0,
            groups: &[],
            dac_override: false,
        };
        let other = Who { uid: them, ..owner };
        assert_eq!(
            find_executable("prog", &env, &owner).unwrap(),
            d.join("a/prog")
        );
        assert_eq!(
            find_executable("prog", &env, &other).unwrap(),
            d.join("b/prog")
        );
        let only_a = vec![format!("PATH={}", d.join("a").display())];
        assert!(find_executable("prog", &only_a, &other)
            .unwrap_err()
            .to_string()
            .contains("permission denied"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
