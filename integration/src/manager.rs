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
        let root = dir.join("root");
        let address = dir.join("berthd.sock");
        fs::create_dir_all(dir).unwrap();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("berthd.log"))
            .unwrap();
        let mut c = Command::new(sibling("berthd"));
        c.arg("--root")
            .arg(&root)
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--address")
            .arg(&address)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
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

/// Debian's docker-registry (distribution 2.8) on 127.0.0.1.
pub struct Registry {
    /// host:port.
    pub host: String,
    /// Its storage directory.
    pub storage: PathBuf,
    child: Child,
}

impl Registry {
    /// Starts a registry in `dir`; with `htpasswd`, Basic/token auth is on.
    pub fn start(dir: &Path, htpasswd: Option<&Path>) -> Registry {
        fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let storage = dir.join("storage");
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            storage.display()
        );
        if let Some(p) = htpasswd {
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                p.display()
            ));
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
        let t = Instant::now();
        while TcpStream::connect(&host).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "registry did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry {
            host,
            storage,
            child,
        }
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
