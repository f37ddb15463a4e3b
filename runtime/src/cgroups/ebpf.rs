//! The cgroup v2 device filter: the device rules compiled by Berth into an
//! eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE and attached to the
//! container's cgroup (no C toolchain or libbpf at run time).
//!
//! Rules are the v1 `devices.allow`/`deny` lines in config order; the last
//! rule that matches decides, as the kernel's v1 controller does, so the
//! program tests them from last to first and denies what none matches.

use super::Error;

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (linux/bpf.h, linux/bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_K: u8 = 0xb4;
const ALU32_MOV_X: u8 = 0xbc;
const JMP32_JNE_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const JMP32_JNE_X: u8 = 0x5e;
const EXIT: u8 = 0x95;
const TYPE_BLOCK: i32 = 1;
const TYPE_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// A parsed rule: allow, type (None: any), major, minor (None: any), access bits.
#[derive(Debug, PartialEq, Eq)]
struct Rule {
    allow: bool,
    ty: Option<i32>,
    major: Option<i32>,
    minor: Option<i32>,
    access: i32,
}

fn parse(allow: bool, line: &str) -> Result<Rule, Error> {
    let bad = || Error::Unsupported(format!("device rule {line:?}: not understood"));
    let mut f = line.split_whitespace();
    let ty = match f.next().ok_or_else(bad)? {
        "a" => {
            return Ok(Rule {
                allow,
                ty: None,
                major: None,
                minor: None,
                access: ACC_MKNOD | ACC_READ | ACC_WRITE,
            })
        }
        "c" => TYPE_CHAR,
        "b" => TYPE_BLOCK,
        _ => return Err(bad()),
    };
    let (maj, min) = f.next().ok_or_else(bad)?.split_once(':').ok_or_else(bad)?;
    let num = |s: &str| -> Result<Option<i32>, Error> {
        if s == "*" {
            Ok(None)
        } else {
            s.parse().map(Some).map_err(|_| bad())
        }
    };
    let mut access = 0;
    for ch in f.next().unwrap_or("rwm").chars() {
        access |= match ch {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return Err(bad()),
        };
    }
    Ok(Rule {
        allow,
        ty: Some(ty),
        major: num(maj)?,
        minor: num(min)?,
        access,
    })
}

/// Compiles (allow, v1 rule line) pairs, in config order, to the program.
pub fn compile(rules: &[(bool, String)]) -> Result<Vec<Insn>, Error> {
    let parsed = rules
        .iter()
        .map(|(a, l)| parse(*a, l))
        .collect::<Result<Vec<_>, _>>()?;
    // R1 = ctx; r2 = type, r3 = access, r4 = major, r5 = minor.
    let mut p = vec![
        ins(LDX_MEM_W, 2, 1, 0, 0),
        ins(ALU32_AND_K, 2, 0, 0, 0xffff),
        ins(LDX_MEM_W, 3, 1, 0, 0),
        ins(ALU32_RSH_K, 3, 0, 0, 16),
        ins(LDX_MEM_W, 4, 1, 4, 0),
        ins(LDX_MEM_W, 5, 1, 8, 0),
    ];
    let mut decided = false;
    for r in parsed.iter().rev() {
        let mut block = Vec::new();
        // Each test jumps to the next rule on mismatch; offsets are fixed up
        // once the block's length is known.
        if let Some(t) = r.ty {
            block.push(ins(JMP32_JNE_K, 2, 0, 0, t));
        }
        if r.access != ACC_MKNOD | ACC_READ | ACC_WRITE {
            // Every requested bit must be in the rule's access.
            block.push(ins(ALU32_MOV_X, 1, 3, 0, 0));
            block.push(ins(ALU32_AND_K, 1, 0, 0, r.access));
            block.push(ins(JMP32_JNE_X, 1, 3, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(ins(JMP32_JNE_K, 4, 0, 0, m));
        }
        if let Some(m) = r.minor {
            block.push(ins(JMP32_JNE_K, 5, 0, 0, m));
        }
        block.push(ins(ALU32_MOV_K, 0, 0, 0, i32::from(r.allow)));
        block.push(ins(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if insn.code == JMP32_JNE_K || insn.code == JMP32_JNE_X {
                // A rule's block is a dozen instructions: the offset fits.
                insn.off = i16::try_from(len - i - 1).unwrap_or(i16::MAX);
            }
        }
        p.extend(block);
        // A rule that matches everything decides alone: what follows would
        // be dead code, which the verifier refuses.
        if len == 2 {
            decided = true;
            break;
        }
    }
    if !decided {
        p.push(ins(ALU32_MOV_K, 0, 0, 0, 0));
        p.push(ins(EXIT, 0, 0, 0, 0));
    }
    Ok(p)
}

/// Loads the program and attaches it to the cgroup directory `dir`.
pub fn attach(dir: &std::path::Path, prog: &[Insn]) -> Result<(), Error> {
    let raw: Vec<u64> = prog
        .iter()
        .map(|i| {
            u64::from(i.code)
                | u64::from(i.regs) << 8
                | u64::from(i.off as u16) << 16
                | u64::from(i.imm as u32) << 32
        })
        .collect();
    let fd = crate::syscall::bpf_load_cgroup_device(&raw).map_err(|err| Error::Io {
        what: "load device filter for",
        path: dir.to_path_buf(),
        err,
    })?;
    let cg = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::Io {
        what: "open",
        path: dir.to_path_buf(),
        err: e.into(),
    })?;
    use std::os::fd::AsFd;
    crate::syscall::bpf_attach_cgroup_device(cg.as_fd(), fd.as_fd()).map_err(|err| Error::Io {
        what: "attach device filter to",
        path: dir.to_path_buf(),
        err,
    })
}

/// Runs a program on (type, access, major, minor), for tests: 1 allows.
/// The casts are BPF's own: 32-bit ALU and JMP32 operations truncate.
#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
fn run(p: &[Insn], ty: i32, access: i32, major: i32, minor: i32) -> i32 {
    let mut r = [0i64; 11];
    let ctx = [(access << 16) | ty, major, minor];
    let mut pc = 0;
    loop {
        let i = p[pc];
        let (d, s) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        pc += 1;
        match i.code {
            LDX_MEM_W => r[d] = ctx[(i.off / 4) as usize] as i64,
            ALU32_AND_K => r[d] &= i.imm as i64,
            ALU32_RSH_K => r[d] = ((r[d] as u32) >> i.imm) as i64,
            ALU32_MOV_K => r[d] = i.imm as i64,
            ALU32_MOV_X => r[d] = r[s],
            JMP32_JNE_K if r[d] as i32 != i.imm => pc += i.off as usize,
            JMP32_JNE_X if r[d] as i32 != r[s] as i32 => pc += i.off as usize,
            JMP32_JNE_K | JMP32_JNE_X => {}
            EXIT => return r[0] as i32,
            c => panic!("opcode {c:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(v: &[(bool, &str)]) -> Vec<(bool, String)> {
        v.iter().map(|(a, s)| (*a, s.to_string())).collect()
    }

    #[test]
    fn last_matching_rule_decides() {
        let p = compile(&rules(&[
            (false, "a"),
            (true, "c *:* m"),
            (true, "c 1:3 rwm"),
            (true, "c 136:* rw"),
            (false, "c 1:3 w"),
        ]))
        .unwrap();
        assert_eq!(run(&p, TYPE_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(run(&p, TYPE_CHAR, ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, TYPE_CHAR, ACC_MKNOD, 8, 0), 1);
        assert_eq!(run(&p, TYPE_CHAR, ACC_READ, 8, 0), 0);
        assert_eq!(run(&p, TYPE_CHAR, ACC_WRITE, 136, 4), 1);
        assert_eq!(run(&p, TYPE_CHAR, ACC_MKNOD, 136, 4), 1);
        assert_eq!(run(&p, TYPE_BLOCK, ACC_READ, 7, 0), 0);
        assert_eq!(run(&p, TYPE_BLOCK, ACC_MKNOD, 7, 0), 0);
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(compile(&rules(&[(true, "x 1:3 r")])).is_err());
        assert!(compile(&rules(&[(true, "c 1 r")])).is_err());
        assert!(compile(&rules(&[(true, "c 1:3 q")])).is_err());
    }
}
