//! The whole stack: berthctl → berthd → berth-shim → berth, on real
//! containers from a busybox image imported into a private berthd. Each test
//! has its own berthd, directory and cgroup parent, and checks that nothing
//! (mounts, cgroups, processes, snapshots) is left after `rm`.

use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_integration::stack::{code, wait_until, Stack};
use berth_integration::{ok, on_pty, read_until, set_winsize, stderr, stdout};

#[test]
fn run_logs_exec_stop_commit_rm_leave_nothing() {
    let s = Stack::new("life");
    // Events from here on, as JSON lines.
    let events = s
        .d()
        .ctl_cmd(&["events", "--format", "json", "--filter", "container=web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Foreground run: output, exit status, --rm.
    let out = s.ctl(&[
        "run",
        "--rm",
        "berth/busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; hostname; exit 3",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().next(), Some("out"));
    assert!(stderr(&out).contains("err"));
    // Missing command: 127; unknown image name: 125 with the pull error.
    let out = s.ctl(&["run", "--rm", "berth/busybox", "no-such-command"]);
    assert_eq!(code(&out), 127, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("executable file not found"),
        "{}",
        stderr(&out)
    );
    // A detached container with env, workdir, user and a TERM trap.
    let id = s.ctl_ok(&[
        "run", "-d", "--name", "web", "-e", "GREETING=hello", "-w", "/tmp", "--hostname", "webhost",
        "berth/busybox", "sh", "-c",
        "trap 'echo bye; exit 7' TERM; echo $GREETING from $(pwd) on $(hostname); echo warn >&2; while true; do sleep 0.2; done",
    ]);
    assert_eq!(id.trim(), "web");
    wait_until("the first log line", 10, || {
        s.ctl_ok(&["logs", "web"]).contains("hello")
    });
    assert_eq!(s.ctl_ok(&["logs", "web"]), "hello from /tmp on webhost\n");
    let out = s.ctl(&["logs", "--tail", "1", "-t", "web"]);
    assert!(
        stdout(&out).is_empty() && stderr(&out).ends_with(" warn\n"),
        "{}",
        stderr(&out)
    );
    let ps = s.ctl_ok(&["ps"]);
    assert!(ps.contains("web") && ps.contains("Up"), "{ps}");
    let i = s.inspect("web");
    assert_eq!(i["State"]["Running"], true);
    assert!(i["State"]["Pid"].as_u64().unwrap() > 0);
    // exec: its own env, user and status.
    let out = s.ctl(&[
        "exec",
        "-e",
        "X=1",
        "-u",
        "1000:1000",
        "web",
        "sh",
        "-c",
        "echo $X $GREETING $(id -u):$(id -g); exit 5",
    ]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_eq!(stdout(&out), "1 hello 1000:1000\n");
    let out = s.ctl(&["exec", "-i", "web", "cat"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut c = s
        .d()
        .ctl_cmd(&["exec", "-i", "web", "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"piped in\n").unwrap();
    let out = c.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "PIPED IN\n");
    let stats = s.ctl_ok(&["stats", "--no-stream", "web"]);
    assert!(
        stats.starts_with("CONTAINER") && stats.contains("web") && stats.contains('%'),
        "{stats}"
    );
    // pause, unpause, a second removal refused while running.
    s.ctl_ok(&["pause", "web"]);
    assert!(s.ctl_ok(&["ps"]).contains("(Paused)"));
    s.ctl_ok(&["unpause", "web"]);
    let out = s.ctl(&["rm", "web"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("stop it first"), "{}", stderr(&out));
    // commit while running: a new image with the container's changes.
    s.ctl_ok(&["exec", "web", "sh", "-c", "echo committed > /marker"]);
    s.ctl_ok(&["commit", "web", "berth/committed:v1"]);
    let out = s.ctl(&["run", "--rm", "berth/committed:v1", "cat", "/marker"]);
    assert_eq!(stdout(&out), "committed\n", "{}", stderr(&out));
    // stop: the TERM trap runs; its status is recorded; logs stay.
    s.ctl_ok(&["stop", "-t", "10", "web"]);
    let i = s.inspect("web");
    assert_eq!(i["State"]["Status"], "exited");
    assert_eq!(i["State"]["ExitCode"], 7);
    assert!(s.ctl_ok(&["ps", "-a"]).contains("Exited (7)"));
    assert!(s.ctl_ok(&["logs", "web"]).ends_with("bye\n"));
    // Start again: same filesystem (the marker), new task.
    s.ctl_ok(&["start", "web"]);
    wait_until("the restarted container", 10, || {
        s.inspect("web")["State"]["Running"] == true
    });
    s.ctl_ok(&["rm", "-f", "web"]);
    let out = s.ctl(&["logs", "web"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("no such container"));
    s.ctl_ok(&["rmi", "berth/committed:v1"]);
    // Events: the life of "web" in order.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(events.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let out = events.wait_with_output().unwrap();
    let topics: Vec<String> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["exec_id"] == "")
        .map(|e| e["topic"].as_str().unwrap().to_string())
        .collect();
    // pause/resume twice: ours, then commit's.
    let want = [
        "/containers/create",
        "/tasks/create",
        "/tasks/start",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
        "/containers/delete",
    ];
    assert_eq!(topics, want, "{}", stdout(&out));
    s.assert_nothing_left();
}

#[test]
fn interactive_tty_resize_and_detach() {
    let s = Stack::new("tty");
    let mut cmd = s.d().ctl_cmd(&[
        "run",
        "-it",
        "--rm",
        "--name",
        "term",
        "berth/busybox",
        "sh",
    ]);
    let master = on_pty(&mut cmd);
    set_winsize(master.as_fd(), 30, 100);
    let mut child = cmd.spawn().unwrap();
    let mut m = fs::File::from(master.try_clone().unwrap());
    let got = read_until(master.as_fd(), "# ", 20);
    assert!(got.contains("# "), "no prompt: {got:?}");
    m.write_all(b"stty size; echo sum-$((40+2))\r").unwrap();
    let got = read_until(master.as_fd(), "sum-42", 10);
    assert!(got.contains("30 100") && got.contains("sum-42"), "{got:?}");
    // A resize of our terminal reaches the container's.
    set_winsize(master.as_fd(), 40, 120);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGWINCH,
    );
    std::thread::sleep(Duration::from_millis(300));
    m.write_all(b"stty size\r").unwrap();
    let got = read_until(master.as_fd(), "40 120", 10);
    assert!(got.contains("40 120"), "{got:?}");
    // Ctrl-C goes to the container's shell (it survives it), exit ends the run.
    m.write_all(b"sleep 30\r").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    m.write_all(b"\x03").unwrap();
    m.write_all(b"echo after-$((1+1))\r").unwrap();
    let got = read_until(master.as_fd(), "after-2", 10);
    assert!(got.contains("after-2"), "{got:?}");
    m.write_all(b"exit 4\r").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(4));
    // Detach keys leave the container running.
    let mut cmd = s
        .d()
        .ctl_cmd(&["run", "-it", "--name", "det", "berth/busybox", "sh"]);
    let master = on_pty(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let mut m = fs::File::from(master.try_clone().unwrap());
    let got = read_until(master.as_fd(), "# ", 20);
    assert!(got.contains("# "), "no prompt: {got:?}");
    m.write_all(b"\x10\x11").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(s.inspect("det")["State"]["Running"], true);
    s.ctl_ok(&["rm", "-f", "det"]);
    s.assert_nothing_left();
}

#[test]
fn volumes_and_binds_outlive_containers() {
    let s = Stack::new("vol");
    let host = s.dir.join("host");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("in"), "from host\n").unwrap();
    let bind = format!("{}:/h", host.display());
    let out = s.ctl(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "-v",
        &bind,
        "berth/busybox",
        "sh",
        "-c",
        "cat /h/in; echo kept > /data/f; echo out > /h/out",
    ]);
    assert_eq!(stdout(&out), "from host\n", "{}", stderr(&out));
    assert_eq!(fs::read_to_string(host.join("out")).unwrap(), "out\n");
    assert!(s
        .ctl_ok(&["volume", "ls", "-q"])
        .lines()
        .any(|l| l == "data"));
    let out = s.ctl(&[
        "run",
        "--rm",
        "-v",
        "data:/data:ro",
        "berth/busybox",
        "sh",
        "-c",
        "cat /data/f; echo x > /data/g || echo refused",
    ]);
    assert_eq!(stdout(&out), "kept\nrefused\n", "{}", stderr(&out));
    // In use: not removable; after the container is gone, it is.
    s.ctl_ok(&[
        "create",
        "--name",
        "holder",
        "-v",
        "data:/data",
        "berth/busybox",
        "true",
    ]);
    let out = s.ctl(&["volume", "rm", "data"]);
    assert!(
        stderr(&out).contains("in use by container holder"),
        "{}",
        stderr(&out)
    );
    s.ctl_ok(&["rm", "holder"]);
    s.ctl_ok(&["volume", "rm", "data"]);
    assert_eq!(s.ctl_ok(&["volume", "ls", "-q"]).trim(), "");
    // --read-only root, limits and caps reach the container.
    let out = s.ctl(&[
        "run", "--rm", "--read-only", "--memory", "64m", "--pids-limit", "50", "--cap-drop", "ALL",
        "berth/busybox", "sh", "-c",
        "touch /x 2>/dev/null || echo ro; grep CapEff /proc/self/status; cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("ro\n") && text.contains("CapEff:\t0000000000000000") && text.contains("50"),
        "{text}{}",
        stderr(&out)
    );
    s.assert_nothing_left();
}

#[test]
fn berthd_killed_then_restarted_finds_every_container() {
    let mut s = Stack::new("restart");
    for i in 0..10 {
        let name = format!("c{i}");
        let script =
            format!("trap 'exit 4{i}' TERM; echo ready-{i}; while true; do sleep 0.2; done");
        s.ctl_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "berth/busybox",
            "sh",
            "-c",
            &script,
        ]);
    }
    for i in 0..10 {
        let name = format!("c{i}");
        wait_until("container output", 10, || {
            s.ctl_ok(&["logs", &name]).contains("ready")
        });
    }
    let pid0 = berth_integration::pid_of(&s.inspect("c0")["State"]["Pid"]);
    let shim9: i32 = fs::read_to_string(s.dir.join("berthd/state/bundles/default/c9/shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    s.d.take().unwrap().kill();
    // While berthd is down: c0 exits (its TERM trap), c9's shim dies.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid0),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim9),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    s.start();
    let ps = s.ctl_ok(&["ps", "-a"]);
    for i in 1..9 {
        assert_eq!(
            s.inspect(&format!("c{i}"))["State"]["Status"],
            "running",
            "{ps}"
        );
    }
    let c0 = s.inspect("c0");
    assert_eq!(
        (
            c0["State"]["Status"].as_str(),
            c0["State"]["ExitCode"].as_u64()
        ),
        (Some("exited"), Some(40)),
        "{ps}"
    );
    assert_eq!(s.ctl_ok(&["logs", "c0"]), "ready-0\n");
    assert_eq!(s.inspect("c9")["State"]["Status"], "exited", "{ps}");
    // The reconnected ones still work: exec, stop with their status.
    assert_eq!(s.ctl_ok(&["exec", "c5", "echo", "alive"]), "alive\n");
    s.ctl_ok(&["stop", "c5"]);
    assert_eq!(s.inspect("c5")["State"]["ExitCode"], 45);
    let log = fs::read_to_string(s.dir.join("berthd/berthd.log")).unwrap();
    let ms = log
        .lines()
        .filter_map(|l| l.split("recovered_in_ms=").nth(1))
        .next_back()
        .unwrap_or("?");
    eprintln!("berthd recovered 10 containers in {ms} ms");
    for i in 0..10 {
        s.ctl_ok(&["rm", "-f", &format!("c{i}")]);
    }
    s.assert_nothing_left();
}

#[test]
fn exit_codes_as_docker() {
    let s = Stack::new("codes");
    let out = Command::new(berth_integration::manager::sibling("berthctl"))
        .args(["--address", "/nonexistent/berthd.sock", "ps"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("is berthd running"),
        "{}",
        stderr(&out)
    );
    assert_eq!(code(&s.ctl(&["run", "--bogus-flag", "berth/busybox"])), 125);
    let out = s.ctl(&["run", "--rm", "berth/busybox", "/etc/passwd"]);
    assert_eq!(code(&out), 126, "{}", stderr(&out));
    let out = s.ctl(&["run", "--rm", "-u", "nobody", "berth/busybox", "true"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("unable to find user nobody"),
        "{}",
        stderr(&out)
    );
    // Killed from outside: 128 + 9, as docker reports it.
    s.ctl_ok(&["run", "-d", "--name", "k", "berth/busybox", "sleep", "100"]);
    s.ctl_ok(&["kill", "k"]);
    wait_until("the kill", 10, || {
        s.inspect("k")["State"]["Status"] == "exited"
    });
    assert_eq!(s.inspect("k")["State"]["ExitCode"], 137);
    s.ctl_ok(&["rm", "k"]);
    s.assert_nothing_left();
}

#[test]
fn run_pulls_a_missing_image_and_logs_follow() {
    // The registry is on the host's loopback: this berthd stays in the
    // host's network namespace, and its container uses none.
    let s = Stack::in_host_net("pull");
    // The imported image, pushed to a local registry under another name.
    let layout = s.dir.join("layout");
    fs::create_dir_all(&layout).unwrap();
    ok(&Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-xf")
        .arg(s.dir.join("busybox.tar"))
        .output()
        .unwrap());
    let reg = berth_integration::manager::Registry::start(&s.dir.join("reg"), None);
    ok(&Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{}/bb:v1", reg.host))
        .output()
        .unwrap());
    let image = format!("{}/bb:v1", reg.host);
    let out = s.ctl(&[
        "run",
        "-d",
        "--net",
        "none",
        "--name",
        "f",
        &image,
        "sh",
        "-c",
        "for i in 1 2 3; do echo line-$i; sleep 0.3; done",
    ]);
    assert_eq!(stdout(&out).trim(), "f", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Unable to find image"),
        "{}",
        stderr(&out)
    );
    // Follows until the container exits, with every line.
    let out = s.ctl(&["logs", "-f", "f"]);
    assert_eq!(stdout(&out), "line-1\nline-2\nline-3\n", "{}", stderr(&out));
    assert_eq!(s.inspect("f")["State"]["ExitCode"], 0);
    s.ctl_ok(&["rm", "f"]);
    s.ctl_ok(&["rmi", &image]);
    s.assert_nothing_left();
}

#[test]
fn net_container_joins_another_containers_network() {
    let s = Stack::new("netc");
    // Without a running target: a clear error.
    s.ctl_ok(&[
        "create",
        "--name",
        "srv",
        "berth/busybox",
        "sh",
        "-c",
        "echo from-srv | nc -l -p 7000",
    ]);
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "container:srv",
        "berth/busybox",
        "true",
    ]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("it is not running"),
        "{}",
        stderr(&out)
    );
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "container:nope",
        "berth/busybox",
        "true",
    ]);
    assert!(
        stderr(&out).contains("container nope not found"),
        "{}",
        stderr(&out)
    );
    // A listener on srv's loopback is reachable from a container on its network.
    s.ctl_ok(&["start", "srv"]);
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "container:srv",
        "berth/busybox",
        "sh",
        "-c",
        "for i in $(seq 50); do nc 127.0.0.1 7000 2>/dev/null && exit 0; sleep 0.1; done; exit 1",
    ]);
    assert_eq!(stdout(&out), "from-srv\n", "{}", stderr(&out));
    // --net none has only lo, and it is up (operstate "unknown" for lo, else "down").
    let out = s.ctl_ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "berth/busybox",
        "sh",
        "-c",
        "ls /sys/class/net; cat /sys/class/net/lo/operstate",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["lo", "unknown"]
    );
    s.ctl_ok(&["rm", "-f", "srv"]);
    s.assert_nothing_left();
}

/// `--privileged` gives every capability berthd has, as docker's gives the
/// daemon's: on a host where berthd lacks one (CAP_SYS_RESOURCE here) the
/// container still starts, instead of failing in capset.
#[test]
fn privileged_gets_every_capability_berthd_has() {
    let s = Stack::new("priv");
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--privileged",
        "berth/busybox",
        "sh",
        "-c",
        "grep CapEff /proc/self/status",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let want = fs::read_to_string(format!("/proc/{}/status", s.d().pid()))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .unwrap()
        .to_string();
    assert_eq!(stdout(&out).trim(), want);
    s.assert_nothing_left();
}

/// Logs stream: `--tail 1` of a log of millions of lines is read from its
/// end, and berthd does not hold the log; a last line without its newline,
/// exactly two of the shim's 8 KiB buffers long, is shown whole.
#[test]
fn logs_stream_and_tail_reads_from_the_end() {
    let s = Stack::new("logs");
    ok(&s.ctl(&[
        "run",
        "--name",
        "big",
        "--net",
        "none",
        // The whole log is kept (the default rotation would keep 100 MB of
        // its 154 MB of records).
        "--log-opt",
        "max-size=-1",
        "berth/busybox",
        "sh",
        "-c",
        "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -n 2000000; echo last line",
    ]));
    let out = ok(&s.ctl(&["logs", "--tail", "1", "big"]));
    assert_eq!(out, "last line\n");
    let out = ok(&s.ctl(&["logs", "--tail", "3", "big"]));
    assert_eq!(
        out,
        "0123456789abcdefghijklmnopqrstuvwxyz\n0123456789abcdefghijklmnopqrstuvwxyz\nlast line\n"
    );
    // All of it streams through berthd without it holding the log.
    let out = s.ctl(&["logs", "big"]);
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 2_000_000 * 37 + 10);
    let status = fs::read_to_string(format!("/proc/{}/status", s.d().pid())).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    assert!(
        hwm_kb < 100 * 1024,
        "berthd peaked at {hwm_kb} kB for a 74 MB log"
    );
    // A last line of exactly 16384 bytes and no newline.
    ok(&s.ctl(&[
        "run",
        "--name",
        "partial",
        "--net",
        "none",
        "berth/busybox",
        "sh",
        "-c",
        "head -c 16384 /dev/zero | tr '\\0' x",
    ]));
    let out = ok(&s.ctl(&["logs", "partial"]));
    // Its end is recorded: shown as a whole line, as every other one.
    assert_eq!(out, format!("{}\n", "x".repeat(16384)));
}

/// `--log-opt max-size=… max-file=…` rotate a container's log as docker's
/// do: a chatty container keeps only its newest output.
#[test]
fn log_options_rotate_the_log() {
    let s = Stack::new("logrot");
    ok(&s.ctl(&[
        "run",
        "--name",
        "chatty",
        "--net",
        "none",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "berth/busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done",
    ]));
    let out = ok(&s.ctl(&["logs", "chatty"]));
    assert!(out.ends_with("line 199\n"), "{out}");
    assert!(
        !out.contains("line 0\n"),
        "the oldest output was kept: {out}"
    );
    assert!(out.len() < 4000, "{} bytes kept", out.len());
    let out = s.ctl(&[
        "run",
        "--rm",
        "--log-opt",
        "compress=true",
        "berth/busybox",
        "true",
    ]);
    assert!(
        !out.status.success() && stderr(&out).contains("log option compress is not supported"),
        "{}",
        stderr(&out)
    );
}

/// `run -w` with a directory the image lacks: made, as docker makes it.
#[test]
fn a_missing_working_directory_is_made() {
    let s = Stack::new("workdir");
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "none",
        "-w",
        "/made/for/it",
        "berth/busybox",
        "sh",
        "-c",
        "pwd; stat -c '%a %u' .",
    ]);
    assert_eq!(ok(&out), "/made/for/it\n755 0\n", "{}", stderr(&out));
    // Also under a read-only root: made before the root is remounted.
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--read-only",
        "-w",
        "/ro/made",
        "berth/busybox",
        "pwd",
    ]);
    assert_eq!(ok(&out), "/ro/made\n", "{}", stderr(&out));
}
