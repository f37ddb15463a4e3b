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
mod cache;
mod compile;
mod install;
pub mod tables;

pub use cache::*;
pub use compile::*;
pub use install::*;

use bpf::Insn;
use std::io;

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

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSeccomp;

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
