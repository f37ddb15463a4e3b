//! Helpers for Berth's end-to-end tests: a busybox rootfs built from Debian's
//! `busybox-static`, per-test bundles and state roots, and a runner for the
//! `berth` binary. Every test owns its ids and directories, and `Drop` removes
//! what it made (containers, state, temp dirs) even when the test fails.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use serde_json::Value;

pub mod cri;
pub mod manager;
pub mod oci;
pub mod parity;
pub mod shim;
pub mod stack;
pub mod store;
pub mod streaming;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The `berth` binary under test: `$BERTH_BIN`, or the workspace's debug build.
pub fn berth_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target.join("debug/berth")
}

/// Builds (once per test process) a busybox rootfs and returns its path.
pub fn busybox_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        // Shared by every test binary and run: built once into a temp name and
        // renamed into place, so concurrent builders never see a partial tree.
        let dir = std::env::temp_dir().join("berth-it-rootfs");
        if !dir.join("bin/busybox").exists() {
            let tmp =
                std::env::temp_dir().join(format!("berth-it-rootfs.tmp-{}", std::process::id()));
            make_rootfs(&tmp);
            if fs::rename(&tmp, &dir).is_err() {
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        dir
    })
}

/// Makes a busybox rootfs at `dir`: /bin/busybox, a link per applet, and the
/// usual empty directories.
pub fn make_rootfs(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    for d in [
        "bin", "proc", "sys", "dev", "etc", "tmp", "root", "var", "mnt",
    ] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    let bb = Path::new("/bin/busybox");
    assert!(
        bb.exists(),
        "/bin/busybox missing: apt-get install busybox-static"
    );
    fs::copy(bb, dir.join("bin/busybox")).unwrap();
    let out = Command::new(bb).arg("--list").output().unwrap();
    for app in String::from_utf8_lossy(&out.stdout).lines() {
        if app != "busybox" && !app.is_empty() {
            let _ = symlink("busybox", dir.join("bin").join(app));
        }
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    fs::write(
        dir.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .unwrap();
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test's world: a state root, a bundle with a config, and an id.
pub struct Ctx {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub id: String,
    pub config: Value,
    ids: Vec<String>,
}

impl Ctx {
    /// A fresh context whose config is `berth spec`'s default with terminal
    /// off, the shared busybox rootfs, and `args` as the process.
    pub fn new(name: &str, args: &[&str]) -> Ctx {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{name}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("berth-it-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        let root = dir.join("state");
        let bundle = dir.join("bundle");
        fs::create_dir_all(&bundle).unwrap();
        let out = Command::new(berth_bin())
            .args(["spec", "--bundle"])
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "berth spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = Value::Bool(false);
        config["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect();
        config["root"]["path"] = Value::from(busybox_rootfs().to_str().unwrap());
        Ctx {
            dir,
            root,
            bundle,
            id: tag.clone(),
            config,
            ids: vec![tag],
        }
    }

    /// Gives this test its own writable copy of the rootfs (for tests that
    /// plant files in it) and returns its path.
    pub fn own_rootfs(&mut self) -> PathBuf {
        let r = self.dir.join("rootfs");
        make_rootfs(&r);
        self.config["root"]["path"] = Value::from(r.to_str().unwrap());
        r
    }

    /// Adds a `linux.namespaces` entry (`{"type": "cgroup"}`, or with a path).
    pub fn add_namespace(&mut self, ns: Value) {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("the default config lists namespaces")
            .push(ns);
    }

    /// Writes the current config into the bundle.
    pub fn write_config(&self) {
        fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// A second id owned (and cleaned up) by this test.
    pub fn another_id(&mut self, suffix: &str) -> String {
        let id = format!("{}-{suffix}", self.id);
        self.ids.push(id.clone());
        id
    }

    /// `berth --root <root> <args>` with the config written first. Output
    /// goes through files, not pipes: a created or detached container keeps
    /// berth's stdio (as with runc), and a pipe would stay open until it exits.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.write_config();
        self.output_through_files(self.berth_cmd(args))
    }

    /// Runs `c` with stdin closed and stdout and stderr through files: a
    /// created or detached container keeps its runtime's stdio (as with
    /// runc), and a pipe would stay open until the container exits.
    fn output_through_files(&self, mut c: Command) -> Output {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let (op, ep) = (
            self.dir.join(format!("out.{n}")),
            self.dir.join(format!("err.{n}")),
        );
        let status = c
            .stdin(Stdio::null())
            .stdout(fs::File::create(&op).unwrap())
            .stderr(fs::File::create(&ep).unwrap())
            .status()
            .unwrap();
        let out = Output {
            status,
            stdout: fs::read(&op).unwrap_or_default(),
            stderr: fs::read(&ep).unwrap_or_default(),
        };
        let _ = fs::remove_file(op);
        let _ = fs::remove_file(ep);
        out
    }

    /// The command, for tests that need to adjust stdio or fds.
    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// `<runtime> --root <dir>/root-<name> <args>` with the config written
    /// first: the same bundle under berth (`"berth"`) or another runtime
    /// (a path), each with a state root of its own.
    pub fn with_runtime(&self, runtime: &str, args: &[&str]) -> Output {
        self.write_config();
        let name = Path::new(runtime).file_name().unwrap().to_string_lossy();
        let bin = if runtime == "berth" {
            berth_bin()
        } else {
            PathBuf::from(runtime)
        };
        let mut c = Command::new(&bin);
        c.arg("--root")
            .arg(self.dir.join(format!("root-{name}")))
            .args(args);
        self.output_through_files(c)
    }

    /// The runtime's id for this context's container: ids differ per
    /// runtime so both can hold it at once.
    pub fn id_for(&self, runtime: &str) -> String {
        let name = Path::new(runtime).file_name().unwrap().to_string_lossy();
        format!("{}-{name}", self.id)
    }

    /// `run` of the bundle in the foreground with `runtime`, deleted after.
    pub fn run_with(&self, runtime: &str) -> Output {
        let id = self.id_for(runtime);
        let b = self.bundle.to_str().unwrap().to_string();
        let out = self.with_runtime(runtime, &["run", "--bundle", &b, &id]);
        let _ = self.with_runtime(runtime, &["delete", "--force", &id]);
        out
    }

    /// `run --bundle <bundle> <id>` in the foreground.
    pub fn run(&self) -> Output {
        let b = self.bundle.to_str().unwrap().to_string();
        self.berth(&["run", "--bundle", &b, &self.id])
    }

    /// `create --bundle <bundle> <id>`, asserting success.
    pub fn create(&self, id: &str) {
        let b = self.bundle.to_str().unwrap().to_string();
        let out = self.berth(&["create", "--bundle", &b, id]);
        assert!(out.status.success(), "create failed: {}", stderr(&out));
    }

    /// Parsed `state <id>`.
    pub fn state(&self, id: &str) -> Value {
        let out = self.berth(&["state", id]);
        assert!(out.status.success(), "state failed: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.berth_cmd(&["delete", "--force", id]).output();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// runc, where Debian's package put it; None (the caller says SKIP) when absent.
pub fn runc_bin() -> Option<PathBuf> {
    ["/usr/sbin/runc", "/usr/bin/runc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Cgroup directories (v1 or v2) named `name` anywhere under /sys/fs/cgroup,
/// searched a few levels deep, for leak checks.
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    fn walk(p: &Path, name: &str, depth: u32, out: &mut Vec<PathBuf>) {
        if depth == 0 {
            return;
        }
        let Ok(rd) = fs::read_dir(p) else { return };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                if e.file_name().to_string_lossy() == name {
                    out.push(e.path());
                }
                walk(&e.path(), name, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, 5, &mut out);
    out
}

/// Copies a host binary into `rootfs` at `/bin/<name>`, with the shared
/// libraries `ldd` names at their own paths, so it runs in the container.
pub fn install_binary(rootfs: &Path, bin: &Path, name: &str) {
    let dst = rootfs.join("bin").join(name);
    fs::copy(bin, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", bin.display()));
    let out = Command::new("ldd").arg(bin).output().expect("run ldd");
    for tok in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if !tok.starts_with('/') {
            continue;
        }
        let lib = Path::new(tok);
        let to = rootfs.join(tok.trim_start_matches('/'));
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        if !to.exists() {
            fs::copy(lib, &to).unwrap_or_else(|e| panic!("copy {tok}: {e}"));
        }
    }
}

/// A console socket as containerd's shim serves one: a listening unix
/// socket that receives the container's pty master.
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: std::os::unix::net::UnixListener,
}

impl ConsoleSocket {
    /// Listens at `<dir>/console.sock`.
    pub fn new(dir: &Path) -> ConsoleSocket {
        let path = dir.join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        ConsoleSocket { path, listener }
    }

    /// Accepts berth's connection and receives the master (SCM_RIGHTS).
    pub fn master(&self) -> std::os::fd::OwnedFd {
        let (conn, _) = self.listener.accept().unwrap();
        recv_with_fd(&conn).1
    }
}

/// Receives one message with a descriptor attached (SCM_RIGHTS) on a
/// connected unix socket: (payload, descriptor).
pub fn recv_with_fd(conn: &impl std::os::fd::AsRawFd) -> (Vec<u8>, std::os::fd::OwnedFd) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = vec![0u8; 65536];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let n = msg.bytes;
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS just gave us this descriptor.
            fd = Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    buf.truncate(n);
    (buf, fd.expect("no descriptor in the message"))
}

/// Reads from `fd` until `needle` was seen or `secs` passed; returns what
/// was read (for the assertion message either way).
pub fn read_until(fd: std::os::fd::BorrowedFd<'_>, needle: &str, secs: u64) -> String {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut got = Vec::new();
    while std::time::Instant::now() < end {
        if String::from_utf8_lossy(&got).contains(needle) {
            break;
        }
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(100u16)).unwrap_or(0) == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Sets a terminal's window size.
pub fn set_winsize(fd: std::os::fd::BorrowedFd<'_>, rows: u16, cols: u16) {
    use std::os::fd::AsRawFd;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one valid winsize.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0, "TIOCSWINSZ");
}

/// Makes `cmd` start with its stdio on a new pseudo-terminal that is its
/// controlling terminal, as in an interactive shell; returns the master.
pub fn on_pty(cmd: &mut Command) -> std::os::fd::OwnedFd {
    use std::os::unix::process::CommandExt;
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = pty.slave;
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: setsid and ioctl are async-signal-safe, run in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    pty.master
}

/// Converts a containers-common seccomp profile (podman's
/// `/usr/share/containers/seccomp.json`, Docker's format) to the OCI
/// `linux.seccomp` that podman would pass for an amd64 container with the
/// capabilities `caps`, as podman's own conversion does: entries apply by
/// their `includes`/`excludes` of caps and arches.
pub fn oci_seccomp_from_containers_common(path: &Path, caps: &[&str]) -> Value {
    let p: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    let arch_ok = |v: &Value| {
        v.as_array()
            .is_none_or(|a| a.is_empty() || a.iter().any(|x| x == "amd64"))
    };
    let caps_all = |v: &Value| {
        v.as_array()
            .is_none_or(|a| a.iter().all(|c| caps.contains(&c.as_str().unwrap_or(""))))
    };
    let caps_none = |v: &Value| {
        v.as_array()
            .is_none_or(|a| !a.iter().any(|c| caps.contains(&c.as_str().unwrap_or(""))))
    };
    let mut syscalls = Vec::new();
    for s in p["syscalls"].as_array().unwrap() {
        let inc = &s["includes"];
        let exc = &s["excludes"];
        let applies = arch_ok(&inc["arches"])
            && caps_all(&inc["caps"])
            && caps_none(&exc["caps"])
            && exc["arches"]
                .as_array()
                .is_none_or(|a| !a.iter().any(|x| x == "amd64"));
        if !applies {
            continue;
        }
        let mut r = serde_json::json!({"names": s["names"], "action": s["action"]});
        if let Some(args) = s["args"].as_array().filter(|a| !a.is_empty()) {
            r["args"] = Value::Array(args.clone());
        }
        if let Some(e) = s["errnoRet"].as_u64() {
            r["errnoRet"] = e.into();
        }
        syscalls.push(r);
    }
    let mut out = serde_json::json!({
        "defaultAction": p["defaultAction"],
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    });
    if let Some(e) = p["defaultErrnoRet"].as_u64() {
        out["defaultErrnoRet"] = e.into();
    }
    out
}

/// Removes a test's directory when dropped, also when the test fails.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Says visibly that (part of) a test did not run on this host, and why:
/// written straight to stderr, past the test harness's capture, so the
/// line shows in `make test`'s output even when the test passes.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIP {test}: {why}");
}

/// A pid from JSON (`state`'s "pid", `inspect`'s "Pid").
pub fn pid_of(v: &Value) -> i32 {
    i32::try_from(v.as_i64().expect("a pid")).expect("a pid fits in i32")
}

/// A process running `script` with busybox's sh.
pub fn sh(script: &str) -> Vec<&str> {
    vec!["sh", "-c", script]
}
