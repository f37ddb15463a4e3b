//! `linux.seccomp` compiled to classic BPF: architectures, rules with their
//! argument conditions, actions, and the checks a profile must pass.

use bpf::{Asm, Cmp, To};
use oci_spec::runtime::{LinuxSeccomp, LinuxSyscall};

use super::*;

pub(super) fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The SECCOMP_RET_* value of an action.
pub(super) fn action_value(
    action: &str,
    errno: Option<u32>,
    default_errno: u32,
) -> Result<u32, Error> {
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
pub(super) struct Cond {
    index: u32,
    op: String,
    value: u64,
    value_two: u64,
}

/// A rule for one syscall number.
#[derive(Clone, Debug)]
pub(super) struct Rule {
    nr: u32,
    ret: u32,
    conds: Vec<Cond>,
}

/// Expands the profile's entries into rules for one architecture's table,
/// in profile order. Args naming the same index twice are alternatives (one
/// rule each), as runc treats them; otherwise all args of an entry must hold.
pub(super) fn rules_for(
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

pub(super) fn arg_offsets(index: u32) -> (u32, u32) {
    let lo = OFF_ARGS + 8 * index;
    if cfg!(target_endian = "little") {
        (lo, lo + 4)
    } else {
        (lo + 4, lo)
    }
}

/// A 64-bit argument as the two 32-bit words classic BPF compares: (high, low).
#[allow(clippy::cast_possible_truncation)] // the truncation is the point
pub(super) fn halves(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// Emits the test of one condition: falls through when it holds, jumps to
/// `fail` when it does not.
pub(super) fn emit_cond(a: &mut Asm, c: &Cond, fail: bpf::Label) -> Result<(), Error> {
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
pub(super) fn emit_rules(
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
pub(super) fn compile_for(native: Arch, s: &LinuxSeccomp) -> Result<Filter, Error> {
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
    for c in s.syscalls().iter().flatten() {
        // The runtime's own writes (its sync messages, its logs) would wait
        // on a listener that waits on the runtime: refused, as runc does.
        if name_of(&c.action()) == "SCMP_ACT_NOTIFY" && c.names().iter().any(|n| n == "write") {
            return Err(Error::Invalid(
                "syscalls: SCMP_ACT_NOTIFY cannot be used for write".into(),
            ));
        }
        if let Some(a) = c.args().iter().flatten().find(|a| a.index() > 5) {
            return Err(Error::Invalid(format!(
                "syscalls: arg index {} out of range 0..5",
                a.index()
            )));
        }
    }
    Ok(())
}
