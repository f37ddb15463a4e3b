//! A `berth-shim` under test: started with `berth-shim start` for a test's
//! bundle over a chosen runtime (berth or runc), reached over its socket, and
//! cleaned up on drop — the shim killed (by the pid it wrote) and
//! `berth-shim delete` run — even when the test fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_proto::shim::shim_client::ShimClient;
use berth_proto::shim::{self as pb};
use tonic::transport::Channel;

use crate::{berth_bin, Ctx};

/// The runtime a shim drives in a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// This workspace's `berth`.
    Berth,
    /// Debian's runc, the reference.
    Runc,
}

impl Runtime {
    /// Its binary.
    pub fn binary(self) -> PathBuf {
        match self {
            Runtime::Berth => berth_bin(),
            Runtime::Runc => PathBuf::from("/usr/sbin/runc"),
        }
    }
}

/// The `berth-shim` binary: beside `berth`.
pub fn shim_bin() -> PathBuf {
    berth_bin().with_file_name("berth-shim")
}

/// One test's shim.
pub struct ShimCtx {
    /// The test's bundle, ids and directories.
    pub ctx: Ctx,
    /// The runtime it drives.
    pub runtime: Runtime,
    /// The runtime's state root.
    pub runtime_root: PathBuf,
    /// The shim's socket.
    pub address: PathBuf,
}

impl ShimCtx {
    /// A bundle for `args` (see [`Ctx::new`]); the shim is not started yet.
    pub fn new(name: &str, runtime: Runtime, args: &[&str]) -> ShimCtx {
        let ctx = Ctx::new(name, args);
        let runtime_root = ctx.dir.join("runtime-state");
        let address = ctx.dir.join("shim.sock");
        ShimCtx {
            ctx,
            runtime,
            runtime_root,
            address,
        }
    }

    /// `berth-shim start …` with the config written; returns the printed address.
    pub fn start_shim(&self) -> String {
        self.ctx.write_config();
        let out = self.start_command().output().unwrap();
        crate::ok(&out).trim().to_string()
    }

    /// The `berth-shim start` command line.
    pub fn start_command(&self) -> Command {
        let mut c = Command::new(shim_bin());
        c.arg("start")
            .arg("--id")
            .arg(&self.ctx.id)
            .arg("--bundle")
            .arg(&self.ctx.bundle)
            .arg("--address")
            .arg(&self.address)
            .arg("--runtime")
            .arg(self.runtime.binary())
            .arg("--runtime-root")
            .arg(&self.runtime_root);
        c
    }

    /// A client on the shim's socket.
    pub async fn client(&self) -> ShimClient<Channel> {
        connect(&self.address).await
    }

    /// The shim's pid, from the file it wrote into the bundle.
    pub fn shim_pid(&self) -> Option<i32> {
        fs::read_to_string(self.ctx.bundle.join("shim.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The runtime's own view: `state ID`.
    pub fn runtime_state(&self) -> std::process::Output {
        Command::new(self.runtime.binary())
            .arg("--root")
            .arg(&self.runtime_root)
            .arg("state")
            .arg(&self.ctx.id)
            .output()
            .unwrap()
    }

    /// `berth-shim delete` for this bundle.
    pub fn shim_delete(&self) -> std::process::Output {
        Command::new(shim_bin())
            .arg("delete")
            .arg("--id")
            .arg(&self.ctx.id)
            .arg("--bundle")
            .arg(&self.ctx.bundle)
            .output()
            .unwrap()
    }

    /// Reads the container's CRI log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.ctx.bundle.join("container.log")).unwrap_or_default()
    }
}

/// Connects to a shim socket, retrying briefly.
pub async fn connect(address: &Path) -> ShimClient<Channel> {
    let mut last = None;
    for _ in 0..50 {
        match berth_proto::connect_unix(address).await {
            Ok(ch) => return ShimClient::new(ch),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("connect {}: {:?}", address.display(), last)
}

impl Drop for ShimCtx {
    fn drop(&mut self) {
        // Only the shim this test started: its pid is in its own bundle.
        if let Some(pid) = self.shim_pid() {
            let alive = fs::read_link(format!("/proc/{pid}/exe"))
                .map(|e| e.to_string_lossy().contains("berth-shim"))
                .unwrap_or(false);
            if alive {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if self.ctx.bundle.join("shim.json").exists() {
            let _ = self.shim_delete();
        }
    }
}

/// A CreateRequest for the context's container and bundle.
pub fn create_req(s: &ShimCtx) -> pb::CreateRequest {
    pb::CreateRequest {
        id: s.ctx.id.clone(),
        bundle: s.ctx.bundle.to_string_lossy().into(),
        ..Default::default()
    }
}

/// Waits (at most 30 s) for a process's exit status.
pub async fn wait(c: &mut ShimClient<Channel>, id: &str, exec_id: &str) -> u32 {
    let w = c.wait(pb::WaitRequest {
        id: id.into(),
        exec_id: exec_id.into(),
    });
    tokio::time::timeout(Duration::from_secs(30), w)
        .await
        .expect("wait timed out")
        .expect("wait")
        .into_inner()
        .exit_status
}

/// The state of a process.
pub async fn state(c: &mut ShimClient<Channel>, id: &str, exec_id: &str) -> pb::StateResponse {
    c.state(pb::StateRequest {
        id: id.into(),
        exec_id: exec_id.into(),
    })
    .await
    .expect("state")
    .into_inner()
}
