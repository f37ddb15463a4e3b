//! A small classic-BPF assembler: instructions with symbolic jump targets,
//! resolved once the program is complete.

/// One BPF instruction, as `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Opcodes (linux/bpf_common.h).
const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_ALU: u16 = 0x04;
const BPF_AND: u16 = 0x50;
const BPF_JMP: u16 = 0x05;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;

/// A jump target: the next instruction or a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum To {
    Next,
    L(Label),
}

/// A position in the program, bound later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

/// Comparison of a conditional jump.
#[derive(Clone, Copy, Debug)]
pub enum Cmp {
    Eq,
    Gt,
    Ge,
}

enum Item {
    Plain(Insn),
    Cond { cmp: Cmp, k: u32, jt: To, jf: To },
    Ja(Label),
}

/// The program being assembled.
#[derive(Default)]
pub struct Asm {
    items: Vec<Item>,
    labels: Vec<Option<usize>>,
}

/// Errors of assembly.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("conditional jump of {0} instructions does not fit BPF's 8-bit offset")]
    TooFar(usize),
    #[error("jump to a label that was never placed")]
    Unbound,
}

impl Asm {
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Places `l` at the next instruction.
    pub fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.items.len());
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A = 32-bit word at `off` in `struct seccomp_data`.
    pub fn load(&mut self, off: u32) {
        self.items.push(Item::Plain(Insn {
            code: BPF_LD | BPF_W | BPF_ABS,
            jt: 0,
            jf: 0,
            k: off,
        }));
    }

    /// A &= k.
    pub fn and(&mut self, k: u32) {
        self.items.push(Item::Plain(Insn {
            code: BPF_ALU | BPF_AND | BPF_K,
            jt: 0,
            jf: 0,
            k,
        }));
    }

    /// Returns `k` (a SECCOMP_RET_* value).
    pub fn ret(&mut self, k: u32) {
        self.items.push(Item::Plain(Insn {
            code: BPF_RET | BPF_K,
            jt: 0,
            jf: 0,
            k,
        }));
    }

    /// if (A cmp k) goto jt else goto jf, both short.
    pub fn jump_if(&mut self, cmp: Cmp, k: u32, jt: To, jf: To) {
        self.items.push(Item::Cond { cmp, k, jt, jf });
    }

    /// goto l, any distance.
    pub fn ja(&mut self, l: Label) {
        self.items.push(Item::Ja(l));
    }

    /// Resolves the labels.
    pub fn finish(self) -> Result<Vec<Insn>, Error> {
        let at = |l: Label| self.labels[l.0].ok_or(Error::Unbound);
        let mut out = Vec::with_capacity(self.items.len());
        for (i, item) in self.items.iter().enumerate() {
            let off = |t: To| -> Result<u8, Error> {
                match t {
                    To::Next => Ok(0),
                    To::L(l) => {
                        let d = at(l)?.checked_sub(i + 1).ok_or(Error::TooFar(0))?;
                        u8::try_from(d).map_err(|_| Error::TooFar(d))
                    }
                }
            };
            out.push(match *item {
                Item::Plain(insn) => insn,
                Item::Cond { cmp, k, jt, jf } => Insn {
                    code: BPF_JMP
                        | BPF_K
                        | match cmp {
                            Cmp::Eq => BPF_JEQ,
                            Cmp::Gt => BPF_JGT,
                            Cmp::Ge => BPF_JGE,
                        },
                    jt: off(jt)?,
                    jf: off(jf)?,
                    k,
                },
                Item::Ja(l) => Insn {
                    code: BPF_JMP | BPF_JA,
                    jt: 0,
                    jf: 0,
                    k: u32::try_from(at(l)?.checked_sub(i + 1).ok_or(Error::TooFar(0))?)
                        .map_err(|_| Error::TooFar(0))?,
                },
            });
        }
        Ok(out)
    }
}

/// Runs a program on a `struct seccomp_data` given as words, for tests: what
/// the kernel would return.
#[cfg(test)]
pub fn run(prog: &[Insn], data: &[u32; 16]) -> u32 {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => a = data[(i.k / 4) as usize],
            c if c == BPF_ALU | BPF_AND | BPF_K => a &= i.k,
            c if c == BPF_RET | BPF_K => return i.k,
            c if c == BPF_JMP | BPF_JA => pc += i.k as usize,
            c => {
                let taken = match c & 0xf0 {
                    BPF_JEQ => a == i.k,
                    BPF_JGT => a > i.k,
                    BPF_JGE => a >= i.k,
                    _ => panic!("opcode {c:#x}"),
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_resolve_forward() {
        let mut a = Asm::default();
        let yes = a.label();
        a.load(0);
        a.jump_if(Cmp::Eq, 7, To::L(yes), To::Next);
        a.ret(1);
        a.bind(yes);
        a.ret(2);
        let p = a.finish().unwrap();
        let mut d = [0u32; 16];
        d[0] = 7;
        assert_eq!(run(&p, &d), 2);
        d[0] = 8;
        assert_eq!(run(&p, &d), 1);
    }

    #[test]
    fn long_conditional_jump_is_an_error() {
        let mut a = Asm::default();
        let far = a.label();
        a.load(0);
        a.jump_if(Cmp::Eq, 1, To::L(far), To::Next);
        for _ in 0..300 {
            a.ret(0);
        }
        a.bind(far);
        a.ret(1);
        assert!(matches!(a.finish(), Err(Error::TooFar(_))));
    }
}
