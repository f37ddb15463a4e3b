//! NOTIFY_SOCKET, relayed as runc relays it: when `berth` runs with
//! NOTIFY_SOCKET set, the container gets a socket of its own at
//! `/run/notify/notify.sock` (a read-only bind of `<state>/notify`), and its
//! `READY=1` reaches the caller's socket followed by `MAINPID=<host pid of
//! init>` and an sd_notify barrier.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};
use oci_spec::runtime::{MountBuilder, Spec};

/// The directory in a container's state dir that holds its notify socket.
pub const DIR: &str = "notify";
const SOCK: &str = "notify.sock";
/// Where the container sees it.
pub const IN_CONTAINER_DIR: &str = "/run/notify";

/// Errors of the notify relay.
#[derive(Debug, thiserror::Error)]
#[error("notify socket {path}: {what}: {err}")]
pub struct Error {
    what: &'static str,
    path: String,
    err: io::Error,
}

fn e(what: &'static str, path: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_string();
    move |err| Error { what, path, err }
}

/// Prepares the container's side: makes `<state>/notify`, bind-mounts it
/// read-only at /run/notify and points the process's NOTIFY_SOCKET there.
pub fn add_to_spec(spec: &mut Spec, state_dir: &Path) -> Result<(), Error> {
    let dir = state_dir.join(DIR);
    std::fs::create_dir(&dir).map_err(e("create directory", dir.display()))?;
    let mount = MountBuilder::default()
        .destination(IN_CONTAINER_DIR)
        .typ("bind")
        .source(&dir)
        .options(
            ["bind", "nosuid", "noexec", "nodev", "ro"]
                .map(String::from)
                .to_vec(),
        )
        .build()
        .map_err(|x| e("build mount", dir.display())(io::Error::other(x)))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.retain(|v| !v.starts_with("NOTIFY_SOCKET="));
        env.push(format!("NOTIFY_SOCKET={IN_CONTAINER_DIR}/{SOCK}"));
        p.set_env(Some(env));
    }
    Ok(())
}

/// The host end: our socket in the state dir and the caller's socket.
pub struct Relay {
    sock: UnixDatagram,
    host: String,
    pid: i32,
    done: bool,
}

impl Relay {
    /// Binds `<state>/notify/notify.sock`, writable by anyone in the
    /// container; `host` is the caller's NOTIFY_SOCKET (a path or `@name`).
    pub fn bind(state_dir: &Path, host: &str, pid: i32) -> Result<Relay, Error> {
        let path: PathBuf = state_dir.join(DIR).join(SOCK);
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).map_err(e("bind", path.display()))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .map_err(e("chmod", path.display()))?;
        sock.set_nonblocking(true)
            .map_err(e("set non-blocking", path.display()))?;
        Ok(Relay {
            sock,
            host: host.to_string(),
            pid,
            done: false,
        })
    }

    /// The socket to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// True once readiness was relayed.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Reads what the container sent; relays the first READY= line.
    pub fn on_readable(&mut self) {
        let mut buf = [0u8; 4096];
        while !self.done {
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(x) if x.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let msg = String::from_utf8_lossy(&buf[..n]);
            if let Some(line) = msg.lines().find(|l| l.starts_with("READY=")) {
                self.done = true;
                if let Err(x) = self.notify_host(line) {
                    crate::warn!("{x}");
                }
            }
        }
    }

    /// Waits until the container reports ready or its init (`pidfd`) exits.
    pub fn wait_ready(&mut self, pidfd: BorrowedFd<'_>) {
        while !self.done {
            let mut fds = [
                PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(pidfd, PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(_) => return,
            }
            let exited = fds[1].revents().is_some_and(|r| !r.is_empty());
            self.on_readable();
            if exited {
                return;
            }
        }
    }

    /// Sends the READY line, MAINPID, and waits on an sd_notify barrier so
    /// the caller has processed both before we go on.
    fn notify_host(&self, ready: &str) -> Result<(), Error> {
        let addr = match self.host.strip_prefix('@') {
            Some(name) => UnixAddr::new_abstract(name.as_bytes()),
            None => UnixAddr::new(self.host.as_str()),
        }
        .map_err(|x| e("address", &self.host)(x.into()))?;
        let s = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|x| e("socket", &self.host)(x.into()))?;
        let send = |data: &[u8], fd: Option<&OwnedFd>| -> Result<(), Error> {
            let iov = [io::IoSlice::new(data)];
            let raw = fd.map(|f| [f.as_raw_fd()]);
            let cmsg: Vec<ControlMessage> = raw
                .as_ref()
                .map(|r| vec![ControlMessage::ScmRights(r)])
                .unwrap_or_default();
            sendmsg(s.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&addr))
                .map_err(|x| e("send", &self.host)(x.into()))
                .map(drop)
        };
        send(format!("{ready}\n").as_bytes(), None)?;
        send(format!("MAINPID={}\n", self.pid).as_bytes(), None)?;
        // Barrier: the receiver closes the pipe's write end once it has read
        // everything before it; EOF on our end means it did.
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|x| e("pipe", &self.host)(x.into()))?;
        send(b"BARRIER=1", Some(&w))?;
        drop(w);
        let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
        if let Ok(0) = poll(&mut fds, PollTimeout::from(30_000u16)) {
            crate::warn!(
                "notify socket {}: no answer to the barrier after 30s, going on",
                self.host
            );
        }
        Ok(())
    }
}
