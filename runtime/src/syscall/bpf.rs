//! BPF programs: the seccomp filter and cgroup device programs.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::*;

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`; with
/// SECCOMP_FILTER_FLAG_NEW_LISTENER the returned notification fd.
pub fn seccomp_set_filter(flags: u32, prog: &[libc::sock_filter]) -> io::Result<Option<OwnedFd>> {
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    const FLAG_NEW_LISTENER: u32 = 1 << 3;
    let fprog = libc::sock_fprog {
        len: libc::c_ushort::try_from(prog.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seccomp filter over 65535 instructions",
            )
        })?,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if flags & FLAG_NEW_LISTENER != 0 {
        // With NEW_LISTENER the return value is a new fd.
        cvt_fd(ret).map(Some)
    } else {
        cvt(ret).map(|_| None)
    }
}

/// `bpf(BPF_PROG_LOAD)` of a BPF_PROG_TYPE_CGROUP_DEVICE program given as
/// raw 8-byte instructions; the verifier's log comes back in the error.
pub fn bpf_load_cgroup_device(insns: &[u64]) -> io::Result<OwnedFd> {
    const BPF_PROG_LOAD: libc::c_int = 5;
    const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    #[repr(C)]
    #[derive(Default)]
    struct Attr {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
    }
    let license = c"Apache";
    let mut log = [0u8; 4096];
    let attr = Attr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: size_u32::<[u8; 4096]>(),
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: `attr` points at live buffers (insns, license, log) for the call's duration.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const Attr,
            size_u32::<Attr>(),
        )
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        let msg = String::from_utf8_lossy(&log[..log.iter().position(|b| *b == 0).unwrap_or(0)])
            .trim()
            .to_string();
        return Err(io::Error::new(e.kind(), format!("{e}: {msg}")));
    }
    cvt_fd(ret)
}

/// `bpf(BPF_PROG_ATTACH)` of a device program to a cgroup directory, with
/// BPF_F_ALLOW_MULTI so the parents' programs still apply.
pub fn bpf_attach_cgroup_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    const BPF_PROG_ATTACH: libc::c_int = 8;
    const BPF_CGROUP_DEVICE: u32 = 6;
    const BPF_F_ALLOW_MULTI: u32 = 2;
    #[repr(C)]
    struct Attr {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
    }
    let attr = Attr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: `attr` is a valid, fully initialized bpf_attr prefix.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const Attr,
            size_u32::<Attr>(),
        )
    })
    .map(drop)
}
