//! End-to-end tests of what runs beside or in front of a container's init:
//! `exec`, terminals (console sockets and berth's own proxy), fd passing,
//! NOTIFY_SOCKET, `ps`, and the foreground's signal forwarding and reaping.

use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_integration::*;
use serde_json::{json, Value};

const HELPER: &str = env!("CARGO_BIN_EXE_berth-test-helper");

fn bundle(c: &Ctx) -> String {
    c.bundle.to_str().unwrap().to_string()
}

/// `run -d` of a long sleep; returns init's host pid (our child: reap it).
fn start_sleeper(c: &Ctx) -> i32 {
    ok(&c.berth(&["run", "-d", "--bundle", &bundle(c), &c.id]));
    pid_of(&c.state(&c.id)["pid"])
}

fn kill_and_reap(c: &Ctx, pid: i32) {
    let _ = c.berth(&["kill", &c.id, "KILL"]);
    reap(pid);
}

fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid status pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

fn with_userns(c: &mut Ctx) {
    let ns = c.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "user"}));
    ns.push(json!({"type": "time"}));
    c.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

#[test]
fn exec_joins_every_namespace_and_passes_exit_status() {
    let mut c = Ctx::new("exec-ns", &["sleep", "1000"]);
    with_userns(&mut c);
    c.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
    let pid = start_sleeper(&c);
    let script = "for n in user mnt pid net ipc uts cgroup time; do \
                    [ \"$(readlink /proc/1/ns/$n)\" = \"$(readlink /proc/self/ns/$n)\" ] || echo differs: $n; \
                  done; \
                  echo pid=$$ nofile=$(ulimit -n) uid=$(id -u); \
                  grep CapEff /proc/1/status; grep CapEff /proc/self/status; exit 3";
    let out = c.berth(&["exec", &c.id, "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("differs"), "{text}");
    // In the container's pid namespace (init is 1), with the config's limits.
    assert!(text.contains("nofile=256 uid=0"), "{text}");
    let pid_in = text
        .split("pid=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(pid_in.parse::<i32>().unwrap() < 100, "{text}");
    let caps: Vec<&str> = text.lines().filter(|l| l.starts_with("CapEff")).collect();
    assert_eq!(caps[0], caps[1], "exec gets init's capabilities");
    // And none of those namespaces is the host's.
    let host_user = fs::read_link("/proc/self/ns/user").unwrap();
    let out = ok(&c.berth(&["exec", &c.id, "readlink", "/proc/self/ns/user"]));
    assert_ne!(out.trim(), host_user.to_str().unwrap());
    kill_and_reap(&c, pid);
}

#[test]
fn exec_overrides_user_env_cwd_caps_nnp() {
    let c = Ctx::new("exec-flags", &["sleep", "1000"]);
    let pid = start_sleeper(&c);
    let out = c.berth(&[
        "exec",
        "--user",
        "1000:1001",
        "--additional-gids",
        "10",
        "--env",
        "FOO=bar",
        "-e",
        "PATH=/bin",
        "--cwd",
        "/tmp",
        "--cap",
        "CAP_NET_ADMIN",
        "--no-new-privs",
        &c.id,
        "sh",
        "-c",
        "id; echo FOO=$FOO PATH=$PATH; pwd; grep -E 'Cap(Inh|Eff|Bnd)|NoNewPrivs' /proc/self/status",
    ]);
    let text = ok(&out);
    assert!(text.contains("uid=1000 gid=1001 groups=10"), "{text}");
    assert!(text.contains("FOO=bar PATH=/bin"), "{text}");
    assert!(text.contains("\n/tmp\n"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    let cap = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    const NET_ADMIN: u64 = 1 << 12;
    assert_ne!(cap("CapBnd") & NET_ADMIN, 0, "{text}");
    // Never inheritable (CVE-2022-29162): a non-root user's programs lose it.
    assert_eq!(cap("CapInh"), 0, "{text}");
    assert_eq!(cap("CapEff"), 0, "{text}");
    // Root keeps an added capability across its exec.
    let root = ok(&c.berth(&[
        "exec",
        "--cap",
        "CAP_NET_ADMIN",
        &c.id,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]));
    let eff = u64::from_str_radix(root.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_ne!(eff & NET_ADMIN, 0, "{root}");
    let plain = ok(&c.berth(&["exec", &c.id, "grep", "CapEff", "/proc/self/status"]));
    let eff = u64::from_str_radix(plain.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(eff & NET_ADMIN, 0, "{plain}");
    // A --process file replaces the process entirely.
    let pj = c.dir.join("process.json");
    fs::write(
        &pj,
        json!({"args": ["sh", "-c", "echo from-json $X; exit 4"], "cwd": "/", "env": ["X=1"],
               "user": {"uid": 0, "gid": 0}})
        .to_string(),
    )
    .unwrap();
    let out = c.berth(&["exec", "--process", pj.to_str().unwrap(), &c.id]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(stdout(&out), "from-json 1\n");
    kill_and_reap(&c, pid);
}

#[test]
fn exec_detached_with_pid_file_and_errors() {
    let c = Ctx::new("exec-d", &["sleep", "1000"]);
    let pid = start_sleeper(&c);
    let pf = c.dir.join("exec.pid");
    ok(&c.berth(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &c.id,
        "sleep",
        "999",
    ]));
    let epid: i32 = fs::read_to_string(&pf).unwrap().parse().unwrap();
    // It is our child (as a shim, the subreaper, expects) and in the container.
    let stat = fs::read_to_string(format!("/proc/{epid}/stat")).unwrap();
    let ppid: u32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ppid, std::process::id());
    let ps: Value =
        serde_json::from_str(&ok(&c.berth(&["ps", "--format", "json", &c.id]))).unwrap();
    assert!(ps.as_array().unwrap().contains(&json!(epid)), "{ps}");
    let table = ok(&c.berth(&["ps", &c.id, "--", "-o", "pid,args"]));
    assert!(table.lines().next().unwrap().contains("PID"), "{table}");
    assert!(
        table.contains("sleep 999") && table.contains("sleep 1000"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 3, "{table}");

    // -t -d without a console socket is refused, as in runc.
    let out = c.berth(&["exec", "-t", "-d", &c.id, "true"]);
    assert!(stderr(&out).contains("console socket"), "{}", stderr(&out));
    // Unknown command in the container: a clear error, and runc's 255 for
    // an exec that failed.
    let out = c.berth(&["exec", &c.id, "no-such-program"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains("no-such-program"), "{}", stderr(&out));

    // The exec'd process is our child but in the container's pid namespace:
    // init's exit waits until it is reaped, so reap it first.
    let _ = c.berth(&["kill", &c.id, "KILL"]);
    reap(epid);
    reap(pid);
    let out = c.berth(&["exec", &c.id, "true"]);
    assert!(
        stderr(&out).contains("cannot exec in a stopped container"),
        "{}",
        stderr(&out)
    );
}

fn freezer_state(id: &str) -> Option<std::path::PathBuf> {
    cgroup_dirs_named(id)
        .into_iter()
        .map(|d| d.join("freezer.state"))
        .find(|f| f.exists())
}

#[test]
fn exec_into_paused_container_needs_ignore_paused() {
    let c = Ctx::new("exec-paused", &["sleep", "1000"]);
    let pid = start_sleeper(&c);
    let Some(freezer) = freezer_state(&c.id) else {
        // A host without the v1 freezer: the v2 check is the same code path.
        skip(
            "exec_into_paused_container_needs_ignore_paused",
            "no v1 freezer cgroup for the container on this host",
        );
        kill_and_reap(&c, pid);
        return;
    };
    fs::write(&freezer, "FROZEN").unwrap();
    assert_eq!(c.state(&c.id)["status"], "paused");
    let out = c.berth(&["exec", &c.id, "true"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains("paused"), "{}", stderr(&out));
    // With --ignore-paused it goes ahead; the process runs once thawed.
    let f2 = freezer.clone();
    let thaw = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        fs::write(&f2, "THAWED").unwrap();
    });
    let out = c.berth(&["exec", "--ignore-paused", &c.id, "echo", "ran"]);
    thaw.join().unwrap();
    assert_eq!(ok(&out), "ran\n");
    kill_and_reap(&c, pid);
}

#[test]
fn exec_into_sub_cgroup() {
    let c = Ctx::new("exec-cg", &["sleep", "1000"]);
    let pid = start_sleeper(&c);
    let dirs = cgroup_dirs_named(&c.id);
    assert!(!dirs.is_empty());
    for d in &dirs {
        fs::create_dir(d.join("sub")).unwrap();
        // A v1 cpuset group is usable once it has cpus and mems (v2 inherits).
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let dst = d.join("sub").join(f);
            if let (Ok(v), true) = (fs::read_to_string(d.join(f)), dst.exists()) {
                if fs::read_to_string(&dst)
                    .unwrap_or_default()
                    .trim()
                    .is_empty()
                {
                    fs::write(&dst, v.trim()).unwrap();
                }
            }
        }
    }
    let out = c.berth(&["exec", "--cgroup", "sub", &c.id, "cat", "/proc/self/cgroup"]);
    let all = ok(&out);
    let mem = c.berth(&[
        "exec",
        "--cgroup",
        "memory:sub",
        &c.id,
        "cat",
        "/proc/self/cgroup",
    ]);
    let mem = ok(&mem);
    let bad = c.berth(&["exec", "--cgroup", "nope", &c.id, "true"]);
    for d in &dirs {
        let _ = fs::remove_dir(d.join("sub"));
    }
    kill_and_reap(&c, pid);
    assert!(
        all.lines()
            .filter(|l| l.contains(":memory:") || l.contains(":pids:"))
            .all(|l| l.ends_with("/sub")),
        "{all}"
    );
    for l in mem.lines() {
        if l.contains(":memory:") {
            assert!(l.ends_with("/sub"), "{mem}");
        } else if l.contains(":pids:") {
            assert!(!l.ends_with("/sub"), "{mem}");
        }
    }
    assert!(stderr(&bad).contains("no such cgroup"), "{}", stderr(&bad));
}

fn tty_config(c: &mut Ctx) {
    c.config["process"]["terminal"] = Value::Bool(true);
    c.config["process"]["args"] = json!(["sh"]);
}

/// Drives a shell through a pty master: a command's output comes back, and a
/// resize shows in `stty size`.
fn drive_shell(master: &std::os::fd::OwnedFd) {
    let mut m = fs::File::from(master.try_clone().unwrap());
    m.write_all(b"echo $((6*7))z\n").unwrap();
    let got = read_until(master.as_fd(), "42z", 10);
    assert!(got.contains("42z"), "{got:?}");
    set_winsize(master.as_fd(), 33, 77);
    m.write_all(b"stty size; tty\n").unwrap();
    let got = read_until(master.as_fd(), "/dev/pts/", 10);
    assert!(got.contains("33 77"), "{got:?}");
    assert!(
        got.contains("/dev/pts/0"),
        "the pty is the container's own devpts: {got:?}"
    );
}

#[test]
fn console_socket_gets_working_pty_for_create_and_exec() {
    let mut c = Ctx::new("console", &[]);
    tty_config(&mut c);
    let cs = ConsoleSocket::new(&c.dir);
    let b = bundle(&c);
    let p = cs.path.to_str().unwrap().to_string();
    let create = std::thread::scope(|s| {
        let h = s.spawn(|| c.berth(&["create", "--console-socket", &p, "--bundle", &b, &c.id]));
        let master = cs.master();
        (h.join().unwrap(), master)
    });
    ok(&create.0);
    let master = create.1;
    ok(&c.berth(&["start", &c.id]));
    drive_shell(&master);
    let pid = pid_of(&c.state(&c.id)["pid"]);

    // exec -t -d with a console socket: the same for a second process.
    let epf = c.dir.join("exec.pid").to_str().unwrap().to_string();
    let (out, emaster) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            c.berth(&[
                "exec",
                "-t",
                "-d",
                "--console-socket",
                &p,
                "--pid-file",
                &epf,
                &c.id,
                "sh",
            ])
        });
        let m = cs.master();
        (h.join().unwrap(), m)
    });
    ok(&out);
    let mut m = fs::File::from(emaster.try_clone().unwrap());
    m.write_all(b"echo exec-$$-z\n").unwrap();
    let got = read_until(emaster.as_fd(), "-z", 10);
    assert!(got.contains("exec-"), "{got:?}");
    m.write_all(b"tty\n").unwrap();
    let got = read_until(emaster.as_fd(), "/dev/pts/1", 10);
    assert!(got.contains("/dev/pts/1"), "{got:?}");
    // Our child in the container's pid namespace: reaped before init can go.
    let epid: i32 = fs::read_to_string(&epf).unwrap().parse().unwrap();
    let _ = c.berth(&["kill", &c.id, "KILL"]);
    reap(epid);
    reap(pid);
}

#[test]
fn foreground_run_and_exec_proxy_a_real_terminal() {
    let mut c = Ctx::new("fg-tty", &[]);
    tty_config(&mut c);
    c.write_config();
    let b = bundle(&c);
    let mut cmd = c.berth_cmd(&["run", "--bundle", &b, &c.id]);
    let master = on_pty(&mut cmd);
    set_winsize(master.as_fd(), 20, 60);
    let before = nix::sys::termios::tcgetattr(&master).unwrap();
    let mut child = cmd.spawn().unwrap();
    let mut m = fs::File::from(master.try_clone().unwrap());
    // The size at start is berth's terminal's.
    m.write_all(b"stty size\n").unwrap();
    let got = read_until(master.as_fd(), "20 60", 10);
    assert!(got.contains("20 60"), "{got:?}");
    // A resize reaches the container (SIGWINCH to berth, which copies it).
    set_winsize(master.as_fd(), 25, 90);
    std::thread::sleep(Duration::from_millis(200));
    m.write_all(b"stty size\n").unwrap();
    let got = read_until(master.as_fd(), "25 90", 10);
    assert!(got.contains("25 90"), "{got:?}");

    // exec -t from a second terminal into the same container.
    let mut ecmd = c.berth_cmd(&["exec", "-t", &c.id, "sh"]);
    let emaster = on_pty(&mut ecmd);
    let mut echild = ecmd.spawn().unwrap();
    let mut em = fs::File::from(emaster.try_clone().unwrap());
    em.write_all(b"echo in-exec-z; exit 6\n").unwrap();
    let got = read_until(emaster.as_fd(), "in-exec-z", 10);
    assert!(got.contains("in-exec-z"), "{got:?}");
    assert_eq!(echild.wait().unwrap().code(), Some(6));

    m.write_all(b"exit 5\n").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(5));
    // berth put its terminal back as it found it.
    let after = nix::sys::termios::tcgetattr(&master).unwrap();
    assert_eq!(before.local_flags, after.local_flags);
    assert_eq!(before.input_flags, after.input_flags);
}

#[test]
fn foreground_tty_with_piped_input_sees_eof() {
    let mut c = Ctx::new("fg-pipe", &[]);
    tty_config(&mut c);
    c.config["process"]["args"] = json!(["sh", "-c", "cat; echo after-eof-z"]);
    c.write_config();
    let b = bundle(&c);
    let mut child = c
        .berth_cmd(&["run", "--bundle", &b, &c.id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"line one\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("line one") && text.contains("after-eof-z"),
        "{text:?}"
    );
}

#[test]
fn preserve_fds_and_socket_activation_pass_exactly_those_fds() {
    let c = Ctx::new(
        "listen",
        &sh("echo $LISTEN_FDS $LISTEN_PID; ls /proc/self/fd | sort -n | tr '\\n' ' '"),
    );
    c.write_config();
    // `berth run` from a shell: `env` before it, `fds` redirections after.
    let run_in_sh = |env: &str, fds: &str| {
        let script = format!(
            "{env} {} --root {} run --bundle {} {} {fds}",
            berth_bin().display(),
            c.root.display(),
            bundle(&c),
            c.id
        );
        ok(&Command::new("sh").args(["-c", &script]).output().unwrap())
    };
    // LISTEN_PID names berth itself: `exec` in the shell keeps the pid.
    let text = run_in_sh(
        "LISTEN_PID=$$ LISTEN_FDS=2 exec",
        "3</etc/hostname 4</etc/hostname 5</etc/hostname",
    );
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("2 1"));
    // 3 and 4 passed, 5 not; the last is ls's own directory fd.
    assert_eq!(lines.next().unwrap().trim(), "0 1 2 3 4 5", "{text}");

    // For another process, LISTEN_PID does not match: nothing is passed.
    let text = run_in_sh(
        "LISTEN_PID=1 LISTEN_FDS=2",
        "3</etc/hostname 4</etc/hostname",
    );
    assert_eq!(text.lines().nth(1).unwrap().trim(), "0 1 2 3", "{text}");
}

#[test]
fn exec_preserve_fds() {
    let c = Ctx::new("exec-fds", &["sleep", "1000"]);
    let pid = start_sleeper(&c);
    let script = format!(
        "exec {} --root {} exec --preserve-fds 1 {} sh -c 'ls /proc/self/fd | sort -n | tr \"\\n\" \" \"' 3</etc/hostname 4</etc/hostname",
        berth_bin().display(),
        c.root.display(),
        c.id
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert_eq!(ok(&out).trim(), "0 1 2 3 4", "fd 3 passed, 4 is ls's own");
    kill_and_reap(&c, pid);
}

fn recv_all(sock: &std::os::unix::net::UnixDatagram, until: &str) -> String {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut all = String::new();
    let mut buf = [0u8; 4096];
    while !all.contains(until) {
        match sock.recv(&mut buf) {
            Ok(n) => all.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) => panic!("notify socket: {e}; got {all:?}"),
        }
        all.push('|');
    }
    all
}

#[test]
fn notify_socket_relays_ready_for_run_and_start() {
    let mut c = Ctx::new("notify", &[]);
    let rootfs = c.own_rootfs();
    install_binary(&rootfs, Path::new(HELPER), "berth-test-helper");
    c.config["process"]["args"] = json!(["sh", "-c",
        "echo $NOTIFY_SOCKET > /dev/stderr; berth-test-helper notify STATUS=starting; berth-test-helper notify READY=1; sleep 1000"]);
    c.write_config();
    let host_sock = c.dir.join("host-notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&host_sock).unwrap();

    // run -d returns after READY, having sent READY, MAINPID and a barrier
    // (which the receiver answers by reading it: the passed fd is closed).
    let err = c.dir.join("run.err");
    let mut run = c
        .berth_cmd(&["run", "-d", "--bundle", &bundle(&c), &c.id])
        .env("NOTIFY_SOCKET", &host_sock)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let got = recv_all(&sock, "BARRIER=1");
    assert!(
        run.wait().unwrap().success(),
        "{}",
        fs::read_to_string(&err).unwrap()
    );
    assert!(
        fs::read_to_string(&err)
            .unwrap()
            .contains("/run/notify/notify.sock"),
        "the container's NOTIFY_SOCKET"
    );
    let pid = pid_of(&c.state(&c.id)["pid"]);
    assert!(
        got.starts_with(&format!("READY=1\n|MAINPID={pid}\n|BARRIER=1")),
        "{got:?}"
    );
    kill_and_reap(&c, pid);
    ok(&c.berth(&["delete", &c.id]));

    // create (with NOTIFY_SOCKET) then start (with it): the same relay.
    let out = c
        .berth_cmd(&["create", "--bundle", &bundle(&c), &c.id])
        .env("NOTIFY_SOCKET", &host_sock)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    assert!(out.success());
    let mut start = c
        .berth_cmd(&["start", &c.id])
        .env("NOTIFY_SOCKET", &host_sock)
        .spawn()
        .unwrap();
    let got = recv_all(&sock, "BARRIER=1");
    assert!(start.wait().unwrap().success());
    let pid = pid_of(&c.state(&c.id)["pid"]);
    assert!(
        got.starts_with(&format!("READY=1\n|MAINPID={pid}\n")),
        "{got:?}"
    );
    kill_and_reap(&c, pid);
}

#[test]
fn foreground_run_forwards_signals_reaps_and_stays_unlocked() {
    // Without a pid namespace orphans come to berth, its subreaper.
    let mut c = Ctx::new(
        "fg-sig",
        &sh("trap 'echo got-usr1; exit 9' USR1; (sleep 1000 &); echo ready; while :; do sleep 0.1; done"),
    );
    c.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    c.write_config();
    let mut child = c
        .berth_cmd(&["run", "--bundle", &bundle(&c), &c.id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let got = read_until(out.as_fd(), "ready", 10);
    assert!(got.contains("ready"), "{got:?}");
    // Other berth commands work while run holds the container.
    assert_eq!(c.state(&c.id)["status"], "running");
    let berth_pid = child.id() as i32;
    let orphan_parent = || {
        let pids = ok(&c.berth(&["ps", "--format", "json", &c.id]));
        let pids: Vec<i32> = serde_json::from_str(&pids).unwrap();
        pids.iter()
            .filter_map(|p| fs::read_to_string(format!("/proc/{p}/stat")).ok())
            .filter(|s| s.contains("(sleep)"))
            .filter_map(|s| {
                s.rsplit(')')
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .parse::<i32>()
                    .ok()
            })
            .collect::<Vec<_>>()
    };
    assert!(
        orphan_parent().contains(&berth_pid),
        "berth is the orphan's subreaper"
    );
    // SAFETY: signalling the berth process this test started.
    unsafe { libc::kill(berth_pid, libc::SIGUSR1) };
    let status = child.wait().unwrap();
    let rest = read_until(out.as_fd(), "got-usr1", 5);
    assert!(rest.contains("got-usr1"), "{rest:?}");
    assert_eq!(status.code(), Some(9));
    // The orphan was killed with the container and reaped by berth: no zombie.
    assert!(!c.root.join(&c.id).exists());

    // --no-subreaper: berth does not adopt orphans.
    let mut child = c
        .berth_cmd(&["run", "--no-subreaper", "--bundle", &bundle(&c), &c.id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let got = read_until(out.as_fd(), "ready", 10);
    assert!(got.contains("ready"), "{got:?}");
    assert!(!orphan_parent().contains(&(child.id() as i32)));
    // SAFETY: signalling the berth process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    assert_eq!(child.wait().unwrap().code(), Some(9));
}

#[test]
fn foreground_exec_forwards_signals() {
    let c = Ctx::new("exec-sig", &["sleep", "1000"]);
    let pid = start_sleeper(&c);
    let mut child = c
        .berth_cmd(&[
            "exec",
            &c.id,
            "sh",
            "-c",
            "trap 'exit 12' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    assert!(read_until(out.as_fd(), "ready", 10).contains("ready"));
    // SAFETY: signalling the berth process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(12));
    let _ = out.as_raw_fd();
    kill_and_reap(&c, pid);
}

/// CVE-2025-52565's shape: runc binds the terminal over /dev/console, and a
/// /dev/console swapped for a symlink (to a procfs file) redirected that
/// bind. berth binds nothing there: the pty is handed over by fd and the
/// process's stdio is the pty itself. With a /dev from the bundle whose
/// `console` is such a symlink, no mount is made on /dev/console or where
/// it points, and the symlink is left as it was.
#[test]
fn a_terminal_makes_no_mount_on_a_swapped_dev_console() {
    let mut c = Ctx::new("cve-52565", &[]);
    tty_config(&mut c);
    let dev = c.dir.join("dev");
    fs::create_dir_all(&dev).unwrap();
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", dev.join("console")).unwrap();
    // What a terminal needs of a /dev the runtime does not populate.
    fs::create_dir_all(dev.join("pts")).unwrap();
    std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx")).unwrap();
    let made = Command::new("mknod")
        .arg(dev.join("null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(made.success());
    let mounts = c.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| m["destination"] != "/dev");
    mounts.push(json!({"destination": "/dev", "type": "bind",
        "source": dev, "options": ["rbind"]}));
    mounts.sort_by_key(|m| m["destination"] != "/dev");
    let cs = ConsoleSocket::new(&c.dir);
    let b = bundle(&c);
    let p = cs.path.to_str().unwrap().to_string();
    let master = std::thread::scope(|s| {
        let m = s.spawn(|| cs.master());
        let out = c.berth(&["create", "--console-socket", &p, "--bundle", &b, &c.id]);
        assert!(out.status.success(), "create: {}", stderr(&out));
        m.join().unwrap()
    });
    ok(&c.berth(&["start", &c.id]));
    drive_shell(&master);
    let pid = pid_of(&c.state(&c.id)["pid"]);
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    for target in ["/dev/console", "/proc/sys/kernel/core_pattern"] {
        assert!(
            !mountinfo
                .lines()
                .any(|l| l.split(' ').nth(4) == Some(target)),
            "something is mounted on {target}:\n{mountinfo}"
        );
    }
    assert_eq!(
        fs::read_link(dev.join("console")).unwrap(),
        std::path::Path::new("/proc/sys/kernel/core_pattern")
    );
    let _ = c.berth(&["kill", &c.id, "KILL"]);
    reap(pid);
}
