//! Compiled filters cached on disk by a hash of the profile: a container
//! with the same profile as the last one skips the compiler.

use bpf::Insn;
use oci_spec::runtime::LinuxSeccomp;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::*;

pub(super) const CACHE_MAGIC: &[u8; 4] = b"BSC1";

pub(super) fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The profile as the cache keys it: its JSON, plus what changes compilation.
pub(super) fn cache_key(s: &LinuxSeccomp) -> Vec<u8> {
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

pub(super) fn cache_path(root: &Path, key: &[u8]) -> PathBuf {
    root.join(".seccomp-cache")
        .join(format!("{:016x}.bpf", fnv1a(key)))
}

pub(super) fn encode(key: &[u8], f: &Filter) -> Vec<u8> {
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
pub(super) fn decode(data: &[u8], key: &[u8]) -> Option<Filter> {
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

pub(super) fn store(path: &Path, data: &[u8]) -> io::Result<()> {
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
