//! berthd and a local OCI registry for tests: each started on its own
//! directory and socket or port, stopped by the pid this harness started.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::berth_bin;

/// A running berthd.
pub struct Berthd {
    /// Its data root.
    pub root: PathBuf,
    /// Its socket.
    pub address: PathBuf,
    child: Child,
}

/// The binary beside `berth` named `name`.
pub fn sibling(name: &str) -> PathBuf {
    berth_bin().with_file_name(name)
}

impl Berthd {
    /// Starts berthd on `dir` (root, state and socket inside), with `env` added.
    pub fn start(dir: &Path, env: &[(&str, &Path)]) -> Berthd {
        Berthd::start_with(dir, env, &[])
    }

    /// Starts berthd on `dir` with `env` and extra flags.
    pub fn start_with(dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> Berthd {
        Berthd::start_in(dir, None, env, args)
    }

    /// Starts berthd on `dir`, inside the network namespace pinned at
    /// `netns` when one is given (nsenter execs berthd: the pid is its own).
    pub fn start_in(
        dir: &Path,
        netns: Option<&Path>,
        env: &[(&str, &Path)],
        args: &[&str],
    ) -> Berthd {
        let c = match netns {
            Some(n) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", n.display()))
                    .arg(sibling("berthd"));
                c
            }
            None => Command::new(sibling("berthd")),
        };
        Berthd::spawn(c, dir, env, args)
    }

    /// Starts berthd on `dir` with `args`, in a private mount namespace where
    /// each `(file, over)` of `binds` is bind-mounted over the host file
    /// `over` (a test's /etc/hosts, its CA bundle); the host's stay as they are.
    pub fn start_binding(dir: &Path, binds: &[(&Path, &Path)], args: &[&str]) -> Berthd {
        let mut script = String::new();
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-ec"]);
        for (i, _) in binds.iter().enumerate() {
            script.push_str(&format!(
                "mount --bind \"${}\" \"${}\"; ",
                2 * i + 1,
                2 * i + 2
            ));
        }
        script.push_str(&format!("shift {}; exec \"$@\"", 2 * binds.len()));
        c.arg(script).arg("sh");
        for (file, over) in binds {
            c.arg(file).arg(over);
        }
        c.arg(sibling("berthd"));
        Berthd::spawn(c, dir, &[], args)
    }

    /// Runs `c` (berthd, or a command that execs it) with berthd's flags for `dir`.
    fn spawn(mut c: Command, dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> Berthd {
        let root = dir.join("root");
        let address = dir.join("berthd.sock");
        fs::create_dir_all(dir).unwrap();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("berthd.log"))
            .unwrap();
        c.arg("--root")
            .arg(&root)
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--address")
            .arg(&address)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if !args.contains(&"--cni-conf-dir") {
            // Never the machine's /etc/berth/net.d.
            c.arg("--cni-conf-dir").arg(dir.join("net.d"));
        }
        if !args.contains(&"--cri-address") {
            // Never the machine's /run/berth/cri.sock or /etc/cni/net.d.
            c.arg("--cri-address").arg(dir.join("cri.sock"));
        }
        if !args.contains(&"--cri-cni-conf-dir") {
            c.arg("--cri-cni-conf-dir").arg(dir.join("cri-net.d"));
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().expect("berthd");
        let t = Instant::now();
        while std::os::unix::net::UnixStream::connect(&address).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "berthd did not start: {}",
                fs::read_to_string(dir.join("berthd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Berthd {
            root,
            address,
            child,
        }
    }

    /// `berthctl --address <socket> <args>`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(sibling("berthctl"))
            .arg("--address")
            .arg(&self.address)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `berthctl` with `args`, as a command to adjust (stdin, a pty).
    pub fn ctl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(sibling("berthctl"));
        c.arg("--address").arg(&self.address).args(args);
        c
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it with SIGKILL (a crash) and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a test registry authenticates.
pub enum Auth<'a> {
    /// Anonymous access.
    None,
    /// Basic auth against an htpasswd file.
    Htpasswd(&'a Path),
    /// Bearer tokens from a token server that accepts these Basic credentials.
    Token {
        /// The user.
        user: &'a str,
        /// Its password.
        password: &'a str,
    },
}

/// Debian's docker-registry (distribution 2.8) on 127.0.0.1.
pub struct Registry {
    /// host:port.
    pub host: String,
    /// Its storage directory.
    pub storage: PathBuf,
    child: Child,
    token_server: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Makes a test CA and a server certificate for `host` (and 127.0.0.1) in
/// `dir`: ca.crt, server.crt, server.key.
pub fn make_certs(dir: &Path, host: &str) {
    fs::create_dir_all(dir).unwrap();
    let script = crate::workspace().join("integration/tools/tls-certs.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(dir)
        .arg(host)
        .output()
        .expect("python3 with python3-cryptography");
    assert!(
        out.status.success(),
        "tls-certs.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `integration/tools/<script>` with `args`, its stderr in
/// `<dir>/<script>.log`; returns it and the first line it prints (its
/// readiness), with the log appended when that line is not there.
fn start_tool(script: &str, dir: &Path, args: &[&str]) -> (Child, String) {
    let log = dir.join(format!("{script}.log"));
    let mut child = Command::new("python3")
        .arg(crate::workspace().join("integration/tools").join(script))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .expect("python3 (and python3-cryptography)");
    let mut line = String::new();
    let out = child.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
    if !line.starts_with("ready") {
        line.push_str(&fs::read_to_string(&log).unwrap_or_default());
    }
    (child, line)
}

/// Starts `integration/tools/token-server.py` in `dir`; returns it and its realm URL.
fn start_token_server(dir: &Path, user: &str, password: &str) -> (Child, String) {
    let port = free_port();
    let (child, line) = start_tool(
        "token-server.py",
        dir,
        &[&dir.to_string_lossy(), &port.to_string(), user, password],
    );
    assert_eq!(line.trim(), "ready", "token server: {line:?}");
    (child, format!("http://127.0.0.1:{port}/token"))
}

impl Registry {
    /// Starts a registry in `dir`; with `htpasswd`, Basic auth is on.
    pub fn start(dir: &Path, htpasswd: Option<&Path>) -> Registry {
        Registry::start_with(dir, htpasswd.map_or(Auth::None, Auth::Htpasswd))
    }

    /// Starts a registry in `dir` with `auth`.
    pub fn start_with(dir: &Path, auth: Auth<'_>) -> Registry {
        Registry::start_full(dir, auth, None)
    }

    /// Starts a registry in `dir` serving HTTPS only, with the certificate
    /// and key of `integration/tools/tls-certs.py` in `certs`.
    pub fn start_tls(dir: &Path, certs: &Path) -> Registry {
        Registry::start_full(dir, Auth::None, Some(certs))
    }

    fn start_full(dir: &Path, auth: Auth<'_>, tls: Option<&Path>) -> Registry {
        fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let storage = dir.join("storage");
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            storage.display()
        );
        if let Some(c) = tls {
            cfg.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                c.join("server.crt").display(),
                c.join("server.key").display()
            ));
        }
        let mut token_server = None;
        match auth {
            Auth::None => {}
            Auth::Htpasswd(p) => cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                p.display()
            )),
            Auth::Token { user, password } => {
                let (child, realm) = start_token_server(dir, user, password);
                token_server = Some(child);
                cfg.push_str(&format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: berth-test-registry\n    issuer: berth-test\n    rootcertbundle: {}\n",
                    dir.join("token.crt").display()
                ));
            }
        }
        fs::write(dir.join("config.yml"), cfg).unwrap();
        let log = fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry: apt-get install docker-registry");
        let reg = Registry {
            host,
            storage,
            child,
            token_server,
        };
        let t = Instant::now();
        while TcpStream::connect(&reg.host).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "registry did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        reg
    }

    /// The path of a blob in the registry's storage.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for c in std::iter::once(&mut self.child).chain(self.token_server.as_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `integration/tools/redirector.py` in front of a registry: blob downloads
/// are redirected to a server on another host name, which logs whether each
/// request carried credentials (`<dir>/blob-requests.log`).
pub struct Redirector {
    /// host:port of the front.
    pub host: String,
    child: Child,
}

impl Redirector {
    /// Starts it in `dir` in front of `reg`.
    pub fn start(dir: &Path, reg: &Registry) -> Redirector {
        fs::create_dir_all(dir).unwrap();
        let (child, line) = start_tool(
            "redirector.py",
            dir,
            &[
                &dir.to_string_lossy(),
                &reg.host,
                &reg.storage.to_string_lossy(),
            ],
        );
        let port = line
            .strip_prefix("ready ")
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("redirector: {line:?}"));
        Redirector {
            host: format!("127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `integration/tools/cutting-proxy.py` in front of a registry: the first
/// blob-upload chunk of 64 KiB or more reaches the registry only in half,
/// and its connection is closed unanswered (`<dir>/cuts.log` says where).
pub struct CuttingProxy {
    /// host:port of the front.
    pub host: String,
    /// The directory holding `cuts.log`.
    pub dir: PathBuf,
    child: Child,
}

impl CuttingProxy {
    /// Starts it in `dir` in front of `reg`.
    pub fn start(dir: &Path, reg: &Registry) -> CuttingProxy {
        fs::create_dir_all(dir).unwrap();
        let (child, line) = start_tool(
            "cutting-proxy.py",
            dir,
            &[&dir.to_string_lossy(), &reg.host],
        );
        let port = line
            .strip_prefix("ready ")
            .map(str::trim)
            .unwrap_or_else(|| panic!("cutting proxy: {line:?}"));
        CuttingProxy {
            host: format!("127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            child,
        }
    }

    /// What it cut, a line per cut.
    pub fn cuts(&self) -> String {
        fs::read_to_string(self.dir.join("cuts.log")).unwrap_or_default()
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
