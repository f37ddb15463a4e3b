//! Seccomp from `linux.seccomp`, without libseccomp.
//!
//! seccompiler 0.5 compiles one match action per filter and one architecture
//! per filter and has no user-notify action, so Berth generates the classic
//! BPF program itself ([`bpf`]): a section per architecture (native and the
//! compat ones the profile lists), in each the profile's rules in order, a
//! different action per rule, argument comparisons on 64-bit values, then
//! ENOSYS for syscalls newer than any the profile names (so a newer libc
//! falls back) and finally the default action.
//!
//! Compiled programs are cached under the state root, keyed by a hash of the
//! profile and checked against the full profile text on a hit.

pub mod bpf;
pub mod tables;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bpf::{Asm, Cmp, Insn, To};
use oci_spec::runtime::{LinuxSeccomp, LinuxSyscall};

/// Errors of seccomp handling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("linux.seccomp: {0}")]
    Invalid(String),
    #[error("linux.seccomp: {0}")]
    Asm(#[from] bpf::Error),
    #[error(
        "linux.seccomp: the filter needs {0} instructions, more than the kernel's limit of 4096"
    )]
    TooLong(usize),
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
}

// SECCOMP_RET_* (linux/seccomp.h).
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

// SECCOMP_FILTER_FLAG_*.
pub const FLAG_LOG: u32 = 1 << 1;
pub const FLAG_SPEC_ALLOW: u32 = 1 << 2;
pub const FLAG_NEW_LISTENER: u32 = 1 << 3;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

// AUDIT_ARCH_* values seen in seccomp_data.arch.
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
/// x32 syscalls arrive as x86_64 with this bit set in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;
const BPF_MAXINSNS: usize = 4096;

/// A compiled filter and how to install it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub program: Vec<Insn>,
    /// SECCOMP_FILTER_FLAG_* bits, NEW_LISTENER included when a rule notifies.
    pub flags: u32,
}

impl Filter {
    /// True when installing it yields a user-notification fd.
    pub fn notifies(&self) -> bool {
        self.flags & FLAG_NEW_LISTENER != 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arch {
    X86_64,
    X86,
    X32,
    Aarch64,
    Arm,
}

impl Arch {
    fn from_name(n: &str) -> Option<Arch> {
        Some(match n {
            "SCMP_ARCH_X86_64" => Arch::X86_64,
            "SCMP_ARCH_X86" => Arch::X86,
            "SCMP_ARCH_X32" => Arch::X32,
            "SCMP_ARCH_AARCH64" => Arch::Aarch64,
            "SCMP_ARCH_ARM" => Arch::Arm,
            _ => return None,
        })
    }

    fn native() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// Architectures whose syscalls a process on a `native` host can make.
    fn runs_on(self, native: Arch) -> bool {
        match native {
            Arch::X86_64 => matches!(self, Arch::X86_64 | Arch::X86 | Arch::X32),
            _ => matches!(self, Arch::Aarch64 | Arch::Arm),
        }
    }

    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Arch::X86_64 => tables::X86_64,
            Arch::X86 => tables::X86,
            Arch::X32 => tables::X32,
            Arch::Aarch64 => tables::AARCH64,
            Arch::Arm => tables::ARM,
        }
    }
}

fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The SECCOMP_RET_* value of an action.
fn action_value(action: &str, errno: Option<u32>, default_errno: u32) -> Result<u32, Error> {
    Ok(match action {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => RET_TRAP,
        "SCMP_ACT_ERRNO" => RET_ERRNO | (errno.unwrap_or(default_errno) & 0xffff),
        "SCMP_ACT_TRACE" => RET_TRACE | (errno.unwrap_or(0) & 0xffff),
        "SCMP_ACT_ALLOW" => RET_ALLOW,
        "SCMP_ACT_LOG" => RET_LOG,
        "SCMP_ACT_NOTIFY" => RET_USER_NOTIF,
        other => return Err(Error::Invalid(format!("unknown action {other:?}"))),
    })
}

/// One argument condition: op on args[index] against value (and valueTwo).
#[derive(Clone, Debug)]
struct Cond {
    index: u32,
    op: String,
    value: u64,
    value_two: u64,
}

/// A rule for one syscall number.
#[derive(Clone, Debug)]
struct Rule {
    nr: u32,
    ret: u32,
    conds: Vec<Cond>,
}

/// Expands the profile's entries into rules for one architecture's table,
/// in profile order. Args naming the same index twice are alternatives (one
/// rule each), as runc treats them; otherwise all args of an entry must hold.
fn rules_for(
    table: &[(&str, u32)],
    syscalls: &[LinuxSyscall],
    bit: u32,
) -> Result<Vec<Rule>, Error> {
    let mut out = Vec::new();
    for s in syscalls {
        let ret = action_value(&name_of(&s.action()), s.errno_ret(), libc::EPERM as u32)?;
        let conds: Vec<Cond> = s
            .args()
            .iter()
            .flatten()
            .map(|a| {
                if a.index() > 5 {
                    return Err(Error::Invalid(format!(
                        "syscalls: arg index {} out of range 0..5",
                        a.index()
                    )));
                }
                Ok(Cond {
                    // Checked just above: 0 to 5.
                    index: u32::try_from(a.index()).unwrap_or(5),
                    op: name_of(&a.op()),
                    value: a.value(),
                    value_two: a.value_two().unwrap_or(0),
                })
            })
            .collect::<Result<_, _>>()?;
        let mut seen = std::collections::HashSet::new();
        let repeats = conds.iter().any(|c| !seen.insert(c.index));
        let groups: Vec<Vec<Cond>> = if repeats {
            conds.into_iter().map(|c| vec![c]).collect()
        } else {
            vec![conds]
        };
        for name in s.names() {
            let Ok(i) = table.binary_search_by(|(n, _)| n.cmp(&name.as_str())) else {
                crate::debug!("seccomp: syscall {name:?} is unknown here, skipped");
                continue;
            };
            for g in &groups {
                out.push(Rule {
                    nr: table[i].1 | bit,
                    ret,
                    conds: g.clone(),
                });
            }
        }
    }
    Ok(out)
}

fn arg_offsets(index: u32) -> (u32, u32) {
    let lo = OFF_ARGS + 8 * index;
    if cfg!(target_endian = "little") {
        (lo, lo + 4)
    } else {
        (lo + 4, lo)
    }
}

/// A 64-bit argument as the two 32-bit words classic BPF compares: (high, low).
#[allow(clippy::cast_possible_truncation)] // the truncation is the point
fn halves(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// Emits the test of one condition: falls through when it holds, jumps to
/// `fail` when it does not.
fn emit_cond(a: &mut Asm, c: &Cond, fail: bpf::Label) -> Result<(), Error> {
    let (lo_off, hi_off) = arg_offsets(c.index);
    let (vhi, vlo) = halves(c.value);
    let pass = a.label();
    let f = To::L(fail);
    let p = To::L(pass);
    match c.op.as_str() {
        "SCMP_CMP_EQ" => {
            a.load(hi_off);
            a.jump_if(Cmp::Eq, vhi, To::Next, f);
            a.load(lo_off);
            a.jump_if(Cmp::Eq, vlo, To::Next, f);
        }
        "SCMP_CMP_NE" => {
            a.load(hi_off);
            a.jump_if(Cmp::Eq, vhi, To::Next, p);
            a.load(lo_off);
            a.jump_if(Cmp::Eq, vlo, f, To::Next);
        }
        "SCMP_CMP_MASKED_EQ" => {
            // (arg & value) == valueTwo
            let (dhi, dlo) = halves(c.value_two);
            a.load(hi_off);
            a.and(vhi);
            a.jump_if(Cmp::Eq, dhi, To::Next, f);
            a.load(lo_off);
            a.and(vlo);
            a.jump_if(Cmp::Eq, dlo, To::Next, f);
        }
        "SCMP_CMP_GT" | "SCMP_CMP_GE" => {
            a.load(hi_off);
            a.jump_if(Cmp::Gt, vhi, p, To::Next);
            a.jump_if(Cmp::Eq, vhi, To::Next, f);
            a.load(lo_off);
            let cmp = if c.op == "SCMP_CMP_GT" {
                Cmp::Gt
            } else {
                Cmp::Ge
            };
            a.jump_if(cmp, vlo, To::Next, f);
        }
        "SCMP_CMP_LT" | "SCMP_CMP_LE" => {
            a.load(hi_off);
            a.jump_if(Cmp::Gt, vhi, f, To::Next);
            a.jump_if(Cmp::Eq, vhi, To::Next, p);
            a.load(lo_off);
            // LT: fail when lo >= v; LE: fail when lo > v.
            let cmp = if c.op == "SCMP_CMP_LT" {
                Cmp::Ge
            } else {
                Cmp::Gt
            };
            a.jump_if(cmp, vlo, f, To::Next);
        }
        other => return Err(Error::Invalid(format!("unknown operator {other:?}"))),
    }
    a.bind(pass);
    Ok(())
}

/// Emits the rules of one architecture section; A holds the syscall number
/// on entry. Ends in ENOSYS-for-newer and the default action.
fn emit_rules(
    a: &mut Asm,
    rules: &[Rule],
    default: u32,
    enosys_above: Option<u32>,
) -> Result<(), Error> {
    for r in rules {
        let next = a.label();
        a.jump_if(Cmp::Eq, r.nr, To::Next, To::L(next));
        for c in &r.conds {
            emit_cond(a, c, next)?;
        }
        a.ret(r.ret);
        a.bind(next);
        if !r.conds.is_empty() {
            // The conditions replaced the syscall number in A.
            a.load(OFF_NR);
        }
    }
    if let Some(max) = enosys_above {
        let keep = a.label();
        a.jump_if(Cmp::Gt, max, To::Next, To::L(keep));
        a.ret(RET_ERRNO | libc::ENOSYS as u32);
        a.bind(keep);
    }
    a.ret(default);
    Ok(())
}

/// Compiles a profile for this host.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter, Error> {
    compile_for(Arch::native(), s)
}

/// Compiles a profile for a host of architecture `native`.
fn compile_for(native: Arch, s: &LinuxSeccomp) -> Result<Filter, Error> {
    let default_name = name_of(&s.default_action());
    let default = action_value(&default_name, s.default_errno_ret(), libc::EPERM as u32)?;
    let syscalls = s.syscalls().clone().unwrap_or_default();
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match name_of(f).as_str() {
            "SECCOMP_FILTER_FLAG_LOG" => FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => FLAG_SPEC_ALLOW,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => FLAG_WAIT_KILLABLE_RECV,
            // Single-threaded: thread sync is implied.
            "SECCOMP_FILTER_FLAG_TSYNC" => 0,
            other => return Err(Error::Invalid(format!("flags: unknown flag {other:?}"))),
        };
    }
    let notifies = default_name == "SCMP_ACT_NOTIFY"
        || syscalls
            .iter()
            .any(|c| name_of(&c.action()) == "SCMP_ACT_NOTIFY");
    if notifies {
        flags |= FLAG_NEW_LISTENER;
    }
    if default_name == "SCMP_ACT_NOTIFY" {
        return Err(Error::Invalid(
            "defaultAction SCMP_ACT_NOTIFY would stop the runtime itself; notify chosen syscalls instead"
                .into(),
        ));
    }
    if flags & FLAG_WAIT_KILLABLE_RECV != 0 && !notifies {
        return Err(Error::Invalid(
            "flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a SCMP_ACT_NOTIFY rule".into(),
        ));
    }

    let mut arches = vec![native];
    for n in s.architectures().iter().flatten() {
        let name = name_of(n);
        match Arch::from_name(&name) {
            Some(a) if a.runs_on(native) && !arches.contains(&a) => arches.push(a),
            Some(_) => {}
            None => crate::debug!("seccomp: architecture {name} does not run here, skipped"),
        }
    }
    // New syscalls fall back to ENOSYS unless the profile allows by default.
    let enosys = !matches!(default_name.as_str(), "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG");

    let mut a = Asm::default();
    let sections: Vec<(Arch, bpf::Label)> = arches
        .iter()
        .filter(|x| **x != Arch::X32)
        .map(|x| (*x, a.label()))
        .collect();
    a.load(OFF_ARCH);
    for (arch, l) in &sections {
        let audit = match arch {
            Arch::X86_64 => AUDIT_ARCH_X86_64,
            Arch::X86 => AUDIT_ARCH_I386,
            Arch::Aarch64 => AUDIT_ARCH_AARCH64,
            Arch::Arm => AUDIT_ARCH_ARM,
            Arch::X32 => unreachable!(),
        };
        let skip = a.label();
        a.jump_if(Cmp::Eq, audit, To::Next, To::L(skip));
        a.ja(*l);
        a.bind(skip);
    }
    // An architecture the profile does not cover, as libseccomp's default.
    a.ret(RET_KILL_THREAD);
    for (arch, l) in &sections {
        a.bind(*l);
        a.load(OFF_NR);
        let table = arch.table();
        let x32 = (*arch == Arch::X86_64).then(|| a.label());
        if let Some(x32) = x32 {
            // x32 calls share x86_64's arch value and set a bit in the number.
            let native = a.label();
            a.jump_if(Cmp::Ge, X32_SYSCALL_BIT, To::Next, To::L(native));
            a.ja(x32);
            a.bind(native);
        }
        let rules = rules_for(table, &syscalls, 0)?;
        let max = rules.iter().map(|r| r.nr).max();
        emit_rules(&mut a, &rules, default, max.filter(|_| enosys))?;
        if let Some(x32) = x32 {
            a.bind(x32);
            if arches.contains(&Arch::X32) {
                let rules = rules_for(tables::X32, &syscalls, X32_SYSCALL_BIT)?;
                let max = rules.iter().map(|r| r.nr).max();
                emit_rules(&mut a, &rules, default, max.filter(|_| enosys))?;
            } else {
                // Not covered: the bad-architecture action.
                a.ret(RET_KILL_THREAD);
            }
        }
    }
    let program = a.finish()?;
    if program.len() > BPF_MAXINSNS {
        return Err(Error::TooLong(program.len()));
    }
    Ok(Filter { program, flags })
}

const CACHE_MAGIC: &[u8; 4] = b"BSC1";

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The profile as the cache keys it: its JSON, plus what changes compilation.
fn cache_key(s: &LinuxSeccomp) -> Vec<u8> {
    let mut k = format!(
        "{} {} {:?}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("BERTH_COMMIT").unwrap_or(""),
        Arch::native()
    )
    .into_bytes();
    k.extend(serde_json::to_vec(s).unwrap_or_default());
    k
}

fn cache_path(root: &Path, key: &[u8]) -> PathBuf {
    root.join(".seccomp-cache")
        .join(format!("{:016x}.bpf", fnv1a(key)))
}

fn encode(key: &[u8], f: &Filter) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + key.len() + 8 * f.program.len());
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&f.flags.to_le_bytes());
    // Keys and programs are far below 4 GiB (a program has at most 65535
    // instructions); a longer one would only fail the cache's read back.
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len32(key.len()));
    out.extend_from_slice(key);
    out.extend_from_slice(&len32(f.program.len()));
    for i in &f.program {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    out
}

/// Decodes a cache file; None unless it is intact and for exactly `key`.
fn decode(data: &[u8], key: &[u8]) -> Option<Filter> {
    let u32_at = |o: usize| -> Option<u32> {
        Some(u32::from_le_bytes(data.get(o..o + 4)?.try_into().ok()?))
    };
    if data.get(..4)? != CACHE_MAGIC {
        return None;
    }
    let flags = u32_at(4)?;
    let klen = u32_at(8)? as usize;
    if data.get(12..12 + klen)? != key {
        return None;
    }
    let mut o = 12 + klen;
    let n = u32_at(o)? as usize;
    o += 4;
    if data.len() != o + 8 * n {
        return None;
    }
    let program = data[o..]
        .chunks_exact(8)
        .map(|c| Insn {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Some(Filter { program, flags })
}

/// The compiled filter for `s`, from the cache under `root` when it is
/// there, compiled (and cached) otherwise.
pub fn load_or_compile(root: &Path, s: &LinuxSeccomp) -> Result<Filter, Error> {
    let key = cache_key(s);
    let path = cache_path(root, &key);
    if let Some(f) = fs::read(&path).ok().and_then(|d| decode(&d, &key)) {
        crate::debug!("seccomp: filter loaded from cache {}", path.display());
        return Ok(f);
    }
    let f = compile(s)?;
    crate::debug!(
        "seccomp: compiled filter of {} instructions, cached at {}",
        f.program.len(),
        path.display()
    );
    // A cache that cannot be written only costs the next run a compile.
    let _ = store(&path, &encode(&key, &f));
    Ok(f)
}

fn store(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)?;
    let tmp = dir.join(format!(".tmp.{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    io::Write::write_all(&mut f, data)?;
    fs::rename(&tmp, path)
}

/// Installs the filter on the calling thread; returns the user-notification
/// fd when the filter has notify rules.
pub fn install(f: &Filter) -> Result<Option<std::os::fd::OwnedFd>, Error> {
    let prog: Vec<libc::sock_filter> = f
        .program
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    crate::syscall::seccomp_set_filter(f.flags, &prog).map_err(|err| Error::Io {
        what: format!("install seccomp filter ({} instructions)", prog.len()),
        err,
    })
}

/// Hands a notification fd to the profile's listener, as the runtime spec
/// describes: the container process state as JSON, the fd attached
/// (SCM_RIGHTS), named "seccompFd" in `fds`.
pub fn send_to_listener(
    s: &LinuxSeccomp,
    pid: i32,
    state: serde_json::Value,
    fd: &std::os::fd::OwnedFd,
) -> Result<(), Error> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    use std::os::fd::AsRawFd;
    let path = s
        .listener_path()
        .as_ref()
        .ok_or_else(|| Error::Invalid("SCMP_ACT_NOTIFY needs listenerPath".into()))?;
    let io_err = |what: &str| {
        let what = format!("{what} seccomp listener {}", path.display());
        move |err: io::Error| Error::Io { what, err }
    };
    let sock = std::os::unix::net::UnixStream::connect(path).map_err(io_err("connect"))?;
    let msg = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": s.listener_metadata().clone().unwrap_or_default(),
        "state": state,
    })
    .to_string();
    let fds = [fd.as_raw_fd()];
    let iov = [io::IoSlice::new(msg.as_bytes())];
    sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| io_err("send to")(e.into()))?;
    Ok(())
}

/// Checks what must hold before anything is created.
pub fn validate(s: &LinuxSeccomp) -> Result<(), Error> {
    let notifies = s
        .syscalls()
        .iter()
        .flatten()
        .any(|c| name_of(&c.action()) == "SCMP_ACT_NOTIFY");
    if notifies && s.listener_path().is_none() {
        return Err(Error::Invalid(
            "SCMP_ACT_NOTIFY rules need listenerPath to receive the notification fd".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    fn nr(table: &[(&str, u32)], name: &str) -> u32 {
        table.iter().find(|(n, _)| *n == name).unwrap().1
    }

    /// seccomp_data as words: nr, arch, ip (2 words), args (2 words each).
    fn data(arch: u32, nr: u32, args: [u64; 6]) -> [u32; 16] {
        let mut d = [0u32; 16];
        d[0] = nr;
        d[1] = arch;
        for (i, a) in args.iter().enumerate() {
            (d[5 + 2 * i], d[4 + 2 * i]) = halves(*a);
        }
        d
    }

    fn eval(f: &Filter, arch: u32, name: &str, args: [u64; 6]) -> u32 {
        let table = match arch {
            AUDIT_ARCH_I386 => tables::X86,
            _ => tables::X86_64,
        };
        bpf::run(&f.program, &data(arch, nr(table, name), args))
    }

    #[test]
    fn actions_args_and_default() {
        let f = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["dup3"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_LT"}, {"index": 2, "value": 0, "op": "SCMP_CMP_NE"}]},
                {"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["no_such_syscall"], "action": "SCMP_ACT_ALLOW"}
            ]
        })))
        .unwrap();
        let x = AUDIT_ARCH_X86_64;
        assert!(f.notifies());
        assert_eq!(eval(&f, x, "read", [0; 6]), RET_ALLOW);
        assert_eq!(eval(&f, AUDIT_ARCH_I386, "write", [0; 6]), RET_ALLOW);
        assert_eq!(eval(&f, x, "personality", [8, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            eval(&f, x, "personality", [9, 0, 0, 0, 0, 0]),
            RET_ERRNO | 1
        );
        assert_eq!(
            eval(&f, x, "personality", [8 | 1 << 32, 0, 0, 0, 0, 0]),
            RET_ERRNO | 1
        );
        assert_eq!(eval(&f, x, "mount", [0; 6]), RET_ERRNO | 13);
        assert_eq!(eval(&f, x, "kill", [0; 6]), RET_KILL_PROCESS);
        assert_eq!(eval(&f, x, "clone", [0x11, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            eval(&f, x, "clone", [0x1000_0000, 0, 0, 0, 0, 0]),
            RET_ERRNO | 1
        );
        assert_eq!(eval(&f, x, "dup3", [0, 9, 1, 0, 0, 0]), RET_ALLOW);
        assert_eq!(eval(&f, x, "dup3", [0, 10, 1, 0, 0, 0]), RET_ERRNO | 1);
        assert_eq!(eval(&f, x, "dup3", [0, 9, 0, 0, 0, 0]), RET_ERRNO | 1);
        assert_eq!(eval(&f, x, "getpid", [0; 6]), RET_USER_NOTIF);
        // Unnamed but older than the newest named: the default.
        assert_eq!(eval(&f, x, "open", [0; 6]), RET_ERRNO | 1);
        // Newer than every named syscall: ENOSYS.
        assert_eq!(
            bpf::run(&f.program, &data(x, 1000, [0; 6])),
            RET_ERRNO | libc::ENOSYS as u32
        );
        // x32 not listed: bad architecture; an unknown arch too.
        assert_eq!(
            bpf::run(&f.program, &data(x, X32_SYSCALL_BIT | 1, [0; 6])),
            RET_KILL_THREAD
        );
        assert_eq!(
            bpf::run(&f.program, &data(AUDIT_ARCH_ARM, 1, [0; 6])),
            RET_KILL_THREAD
        );
    }

    #[test]
    fn arm_section_on_an_aarch64_host() {
        let f = compile_for(
            Arch::Aarch64,
            &profile(serde_json::json!({
                "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X86"],
                "syscalls": [{"names": ["open", "openat", "cacheflush"], "action": "SCMP_ACT_ALLOW"}]
            })),
        )
        .unwrap();
        let run = |arch, table, name| bpf::run(&f.program, &data(arch, nr(table, name), [0; 6]));
        // arm EABI numbers, the ARM-private cacheflush included.
        assert_eq!(nr(tables::ARM, "open"), 5);
        assert_eq!(nr(tables::ARM, "cacheflush"), 0x0f_0002);
        assert_eq!(run(AUDIT_ARCH_ARM, tables::ARM, "open"), RET_ALLOW);
        assert_eq!(run(AUDIT_ARCH_ARM, tables::ARM, "cacheflush"), RET_ALLOW);
        assert_eq!(run(AUDIT_ARCH_ARM, tables::ARM, "read"), RET_ERRNO | 1);
        assert_eq!(
            run(AUDIT_ARCH_AARCH64, tables::AARCH64, "openat"),
            RET_ALLOW
        );
        // Lower than the newest named call: the default; higher: ENOSYS (newer than the profile).
        assert_eq!(
            run(AUDIT_ARCH_AARCH64, tables::AARCH64, "io_setup"),
            RET_ERRNO | 1
        );
        assert_eq!(
            run(AUDIT_ARCH_AARCH64, tables::AARCH64, "read"),
            RET_ERRNO | libc::ENOSYS as u32
        );
        // x86 cannot run on arm64: not a section, so the bad-architecture action.
        assert_eq!(run(AUDIT_ARCH_I386, tables::X86, "open"), RET_KILL_THREAD);
    }

    #[test]
    fn comparisons_on_64_bit_values() {
        for (op, v, yes, no) in [
            ("SCMP_CMP_GT", 1u64 << 32, (1u64 << 32) + 1, 1u64 << 32),
            ("SCMP_CMP_GE", 1 << 32, 1 << 32, (1 << 32) - 1),
            ("SCMP_CMP_LT", 1 << 32, (1 << 32) - 1, 1 << 32),
            ("SCMP_CMP_LE", 1 << 32, 1 << 32, (1 << 32) + 1),
            ("SCMP_CMP_NE", 5, 6, 5),
            ("SCMP_CMP_EQ", 5 << 32, 5 << 32, 5),
        ] {
            let f = compile(&profile(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                              "args": [{"index": 3, "value": v, "op": op}]}]
            })))
            .unwrap();
            assert_eq!(
                eval(&f, AUDIT_ARCH_X86_64, "read", [0, 0, 0, yes, 0, 0]),
                RET_ERRNO | 1,
                "{op} {yes}"
            );
            assert_eq!(
                eval(&f, AUDIT_ARCH_X86_64, "read", [0, 0, 0, no, 0, 0]),
                RET_ALLOW,
                "{op} {no}"
            );
        }
    }

    #[test]
    fn same_index_args_are_alternatives() {
        let f = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                         {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]
        })))
        .unwrap();
        let x = AUDIT_ARCH_X86_64;
        assert_eq!(eval(&f, x, "personality", [0; 6]), RET_ALLOW);
        assert_eq!(eval(&f, x, "personality", [8, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            eval(&f, x, "personality", [4, 0, 0, 0, 0, 0]),
            RET_ERRNO | 1
        );
    }

    #[test]
    fn cache_round_trip_checks_the_key() {
        let f = Filter {
            program: vec![Insn {
                code: 6,
                jt: 0,
                jf: 0,
                k: RET_ALLOW,
            }],
            flags: FLAG_LOG,
        };
        let data = encode(b"key", &f);
        assert_eq!(decode(&data, b"key"), Some(f));
        assert_eq!(decode(&data, b"other"), None);
        assert_eq!(decode(&data[..data.len() - 1], b"key"), None);
    }

    #[test]
    fn bad_profiles_are_refused() {
        assert!(compile(&profile(
            serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"})
        ))
        .is_err());
        assert!(compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        })))
        .is_err());
    }
}
