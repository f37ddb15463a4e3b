//! Seccomp end to end: filters compiled by berth, installed in real
//! containers, observed from inside (errno, signals) and from a notify
//! listener.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;

use berth_integration::*;
use serde_json::{json, Value};

#[test]
fn errno_kill_and_argument_rules() {
    let mut c = Ctx::new(
        "scmp",
        &sh("mkdir /tmp/x; echo mkdir=$?; linux64 true; echo linux64=$?; linux32 true; echo linux32=$?; \
             sync; echo sync=$?"),
    );
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["not_a_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"}
        ]
    });
    let out = c.run();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("Permission denied") && text.contains("mkdir=1"),
        "{text}"
    );
    // personality(PER_LINUX) passes, personality(PER_LINUX32) gets EINVAL.
    assert!(text.contains("linux64=0"), "{text}");
    assert!(text.contains("linux32=1"), "{text}");
    // SIGSYS: 128 + 31.
    assert!(text.contains("sync=159"), "{text}");
}

/// podman's profile as podman passes it for the context's bounding capabilities.
fn podman_profile(c: &Ctx, profile: &Path) -> Value {
    let caps: Vec<String> = c.config["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    oci_seccomp_from_containers_common(profile, &caps)
}

#[test]
fn podman_default_profile_runs_busybox_and_denies() {
    let profile = Path::new("/usr/share/containers/seccomp.json");
    assert!(
        profile.exists(),
        "apt-get install golang-github-containers-common"
    );
    let mut c = Ctx::new(
        "scmp-podman",
        &sh(
            "ls / >/dev/null && id -u && echo ok; unshare -m true; echo unshare=$?; \
             mount -t tmpfs t /mnt; echo mount=$?",
        ),
    );
    c.config["linux"]["seccomp"] = podman_profile(&c, profile);
    let out = c.run();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("0\nok\n"), "{text}");
    assert!(
        text.contains("unshare=1") && text.contains("Operation not permitted"),
        "{text}"
    );
    assert!(
        text.contains("mount=255") || text.contains("mount=1"),
        "{text}"
    );
}

#[test]
fn compiled_filter_is_cached() {
    let mut c = Ctx::new("scmp-cache", &["true"]);
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    });
    let log = c.dir.join("log.json");
    let l = log.to_str().unwrap().to_string();
    let b = c.bundle.to_str().unwrap().to_string();
    for _ in 0..2 {
        ok(&c.berth(&[
            "--debug",
            "--log",
            &l,
            "--log-format",
            "json",
            "run",
            "--bundle",
            &b,
            &c.id,
        ]));
    }
    let text = fs::read_to_string(&log).unwrap();
    let compiled = text.matches("seccomp: compiled filter").count();
    let cached = text.matches("seccomp: filter loaded from cache").count();
    assert_eq!((compiled, cached), (1, 1), "{text}");
}

// struct seccomp_notif / seccomp_notif_resp and their ioctls (linux/seccomp.h).
#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;

#[test]
fn notify_listener_gets_the_fd_and_answers() {
    let mut c = Ctx::new("scmp-notify", &sh("mkdir /tmp/answered; echo mkdir=$?"));
    let listener_path = c.dir.join("listener.sock");
    let listener = std::os::unix::net::UnixListener::bind(&listener_path).unwrap();
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": listener_path,
        "listenerMetadata": "from-the-test",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (msg, fd) = recv_with_fd(&conn);
        let state: Value = serde_json::from_slice(&msg).unwrap();
        // Answer the container's mkdir with EXDEV.
        let mut req = Notif::default();
        // SAFETY: NOTIF_RECV fills a seccomp_notif, which `req` is.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV, &mut req as *mut Notif) };
        assert_eq!(r, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
        let resp = NotifResp {
            id: req.id,
            val: 0,
            error: -libc::EXDEV,
            flags: 0,
        };
        // SAFETY: NOTIF_SEND reads a seccomp_notif_resp, which `resp` is.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND, &resp as *const NotifResp) };
        assert_eq!(r, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
        (state, req.nr)
    });
    let out = c.run();
    let (state, nr) = agent.join().unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("Invalid cross-device link") && text.contains("mkdir=1"),
        "{text}"
    );
    assert!(
        i64::from(nr) == libc::SYS_mkdir || i64::from(nr) == libc::SYS_mkdirat,
        "nr {nr}"
    );
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "from-the-test");
    assert_eq!(state["state"]["id"], c.id.as_str());
    assert!(state["pid"].as_i64().unwrap() > 0);
}

#[test]
fn notify_without_listener_is_refused() {
    let mut c = Ctx::new("scmp-nolistener", &["true"]);
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let out = c.run();
    assert!(stderr(&out).contains("listenerPath"), "{}", stderr(&out));
    assert!(!c.root.join(&c.id).exists());
}

#[test]
fn exec_gets_the_containers_filter() {
    let mut c = Ctx::new("scmp-exec", &["sleep", "1000"]);
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    let b = c.bundle.to_str().unwrap().to_string();
    ok(&c.berth(&["run", "-d", "--bundle", &b, &c.id]));
    let pid = pid_of(&c.state(&c.id)["pid"]);
    let out = c.berth(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "mkdir /tmp/y; grep Seccomp: /proc/self/status",
    ]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let _ = c.berth(&["kill", &c.id, "KILL"]);
    let mut status = 0;
    // SAFETY: waitpid on our own child (the container's init).
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(text.contains("Permission denied"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
}

#[test]
fn filter_flags_install() {
    let mut c = Ctx::new("scmp-flags", &sh("mkdir /tmp/z; echo mkdir=$?"));
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let out = c.run();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("mkdir=1") && text.contains("Operation not permitted"),
        "{text}"
    );
    // A flag this runtime does not know is refused by name.
    c.config["linux"]["seccomp"]["flags"] = json!(["SECCOMP_FILTER_FLAG_BOGUS"]);
    let out = c.run();
    assert_eq!(out.status.code(), Some(1));
}

/// An allow-list written before close_range existed (default ERRNO): what
/// `echo` needs, plus what a runtime itself does once the filter is on
/// without no_new_privs (the user and capability change, execve).
fn strict_allow_list() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{
            "names": [
                "arch_prctl", "brk", "execve", "exit", "exit_group", "getrandom", "getuid",
                "mprotect", "prctl", "prlimit64", "readlink", "rseq", "set_robust_list",
                "set_tid_address", "write", "capget", "capset", "setgroups", "setresgid",
                "setresuid", "umask"
            ],
            "action": "SCMP_ACT_ALLOW"
        }]
    })
}

#[test]
fn a_strict_allow_list_breaks_nothing_but_what_it_denies() {
    // runc fails this one ("error closing exec fds: open /proc/self/fd"):
    // it marks fds, opens the exec fifo and writes it under the filter.
    for (nnp, user) in [(false, 0), (true, 0), (false, 1000), (true, 1000)] {
        let mut c = Ctx::new("scmp-strict", &["echo", "ok"]);
        c.config["process"]["noNewPrivileges"] = json!(nnp);
        c.config["process"]["user"] =
            json!({"uid": user, "gid": user, "additionalGids": [user, user]});
        c.config["linux"]["seccomp"] = strict_allow_list();
        let out = c.run_with("berth");
        assert_eq!(
            (out.status.code(), stdout(&out).as_str()),
            (Some(0), "ok\n"),
            "noNewPrivileges {nnp}, uid {user}: {}",
            stderr(&out)
        );
        // And create + start, where the release waits on the exec fifo.
        let b = c.bundle.to_str().unwrap().to_string();
        let id = c.another_id("cs");
        let out = c.berth(&["create", "--bundle", &b, &id]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = c.berth(&["start", &id]);
        assert!(out.status.success(), "{}", stderr(&out));
        wait_stopped(&c, &id);
        // What the list leaves out is still denied (openat: EPERM).
        c.config["process"]["args"] = json!(["cat", "/etc/passwd"]);
        let out = c.run_with("berth");
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert!(
            stderr(&out).contains("Operation not permitted") && !stdout(&out).contains("root"),
            "{}",
            stderr(&out)
        );
    }
}

fn wait_stopped(c: &Ctx, id: &str) {
    let t = std::time::Instant::now();
    while c.state(id)["status"] != "stopped" {
        assert!(t.elapsed().as_secs() < 10, "{id} still runs");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_profile_without_close_range_runs_as_under_runc() {
    let profile = Path::new("/usr/share/containers/seccomp.json");
    assert!(
        profile.exists(),
        "apt-get install golang-github-containers-common"
    );
    let runc = runc_bin();
    let runc = runc.as_ref().and_then(|p| p.to_str());
    if runc.is_none() {
        skip(
            "a_profile_without_close_range_runs_as_under_runc",
            "runc is not installed (apt-get install runc): berth alone is checked",
        );
    }
    for nnp in [false, true] {
        let mut c = Ctx::new("scmp-2023", &sh("ls / >/dev/null && echo ok"));
        let mut p = podman_profile(&c, profile);
        // As profiles written before Linux 5.9 are: no close_range.
        for rule in p["syscalls"].as_array_mut().unwrap() {
            if let Some(names) = rule["names"].as_array_mut() {
                names.retain(|n| n != "close_range");
            }
        }
        assert!(!p.to_string().contains("close_range"));
        c.config["linux"]["seccomp"] = p;
        c.config["process"]["noNewPrivileges"] = json!(nnp);
        for rt in std::iter::once("berth").chain(runc) {
            let out = c.run_with(rt);
            assert_eq!(
                (out.status.code(), stdout(&out).as_str()),
                (Some(0), "ok\n"),
                "{rt}, noNewPrivileges {nnp}: {}",
                stderr(&out)
            );
        }
    }
}
