//! The shim binary's life under containerd: `start` (launch a shim for the
//! container in the current directory, its bundle, and print the ttrpc
//! address containerd dials), `serve` (the daemon itself) and `delete`
//! (clean up after a shim that died, printing the exit as containerd's
//! DeleteResponse). Flags are Go's, as containerd passes them:
//! `-namespace NS -address SOCK -publish-binary PATH -id ID [-bundle DIR]
//! [-debug] ACTION`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use protobuf::Message;

use super::proto::task;
use super::publish::Publisher;
use super::task::Task;
use crate::reaper::Reaper;

/// The flags containerd gives a shim.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flags {
    /// The containerd namespace.
    pub namespace: String,
    /// The container (task) id.
    pub id: String,
    /// containerd's gRPC socket.
    pub address: String,
    /// containerd's binary (its `publish` command).
    pub publish_binary: String,
    /// The bundle, when not the working directory.
    pub bundle: String,
    /// The socket to serve (`serve`, from `start`).
    pub socket: String,
    /// start, delete, serve.
    pub action: String,
}

/// Parses Go-style flags (`-name value`, `--name=value`, `-debug`).
pub fn parse(args: &[String]) -> Result<Flags, String> {
    let mut f = Flags::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(name) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            if f.action.is_empty() {
                f.action = a.clone();
                continue;
            }
            return Err(format!("unexpected argument {a:?}"));
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        if matches!(name, "debug" | "v") {
            continue;
        }
        let v = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("-{name} needs a value"))?,
        };
        match name {
            "namespace" => f.namespace = v,
            "id" => f.id = v,
            "address" => f.address = v,
            "publish-binary" => f.publish_binary = v,
            "bundle" => f.bundle = v,
            "socket" => f.socket = v,
            other => return Err(format!("unknown flag -{other}")),
        }
    }
    if f.namespace.is_empty() && f.action != "serve" {
        return Err("shim namespace cannot be empty".into());
    }
    Ok(f)
}

/// The socket a container's shim serves: beside containerd's own socket,
/// in `s/`, named by a digest of containerd's address, the namespace and
/// the id, as containerd's shims name theirs.
pub fn socket_path(address: &str, ns: &str, id: &str) -> PathBuf {
    use std::fmt::Write as _;
    let dir = Path::new(address)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("/run/containerd"))
        .join("s");
    let digest = sha256(format!("{address}/{ns}/{id}").as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    dir.join(hex)
}

/// SHA-256, for socket names.
fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

/// The labels that put containers in one shim, as runc-v2 reads them: a
/// pod's containers share its sandbox's shim.
const GROUP_LABELS: [&str; 2] = [
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

/// The shim group of the container in `bundle`: its group label's value,
/// else its own id.
pub fn group(bundle: &Path, id: &str) -> String {
    let spec: serde_json::Value = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    GROUP_LABELS
        .iter()
        .find_map(|l| spec["annotations"][l].as_str())
        .filter(|g| !g.is_empty())
        .unwrap_or(id)
        .to_string()
}

fn bundle_of(f: &Flags) -> Result<PathBuf, String> {
    if f.bundle.is_empty() {
        std::env::current_dir().map_err(|e| format!("working directory: {e}"))
    } else {
        Ok(PathBuf::from(&f.bundle))
    }
}

/// `start`: a shim for the container, launched in the background; its
/// address printed. A shim already serving the socket is reused.
pub fn start(f: &Flags) -> Result<(), String> {
    // containerd writes the runc options here; Create brings them again.
    let mut opts = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut opts);
    let bundle = bundle_of(f)?;
    let socket = socket_path(&f.address, &f.namespace, &group(&bundle, &f.id));
    let address = format!("unix://{}", socket.display());
    let write_address = || {
        std::fs::write(bundle.join("address"), &address).map_err(|e| format!("write address: {e}"))
    };
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        write_address()?;
        print!("{address}");
        return Ok(());
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(bundle.join("shim.log"))
        .map_err(|e| format!("open shim.log: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("find own binary: {e}"))?;
    let mut child = Command::new(exe)
        // The binary is berth-shim: the v2 mode is chosen by this name.
        .arg0("containerd-shim-berth-v2")
        .args([
            "-namespace",
            &f.namespace,
            "-id",
            &f.id,
            "-address",
            &f.address,
        ])
        .arg("-socket")
        .arg(&socket)
        .arg("serve")
        .current_dir(&bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("spawn the shim: {e}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .map_err(|e| format!("read the shim's readiness: {e}"))?;
    if line.trim() != "ok" {
        return Err(format!(
            "the shim did not start: {}",
            if line.trim().is_empty() {
                format!("see {}/shim.log", bundle.display())
            } else {
                line.trim().to_string()
            }
        ));
    }
    if let Some(cg) = shim_cgroup(&opts) {
        join_cgroup(child.id(), &cg)?;
    }
    write_address()?;
    print!("{address}");
    Ok(())
}

/// The options' ShimCgroup, from the Any containerd writes to `start`'s
/// stdin.
fn shim_cgroup(opts: &[u8]) -> Option<String> {
    let any = protobuf::well_known_types::any::Any::parse_from_bytes(opts).ok()?;
    let o = super::options::from_any(Some(&any)).ok()?;
    (!o.shim_cgroup.is_empty()).then_some(o.shim_cgroup)
}

/// Moves `pid` into the cgroup `path` (relative to each hierarchy's root):
/// the unified one, or every v1 controller that has it.
fn join_cgroup(pid: u32, path: &str) -> Result<(), String> {
    let rel = path.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    let targets: Vec<PathBuf> = if root.join("cgroup.controllers").exists() {
        vec![root.join(rel)]
    } else {
        std::fs::read_dir(root)
            .map_err(|e| format!("read {}: {e}", root.display()))?
            .flatten()
            .map(|e| e.path().join(rel))
            .filter(|p| p.join("cgroup.procs").exists())
            .collect()
    };
    if targets.is_empty() {
        return Err(format!("shim cgroup {path}: no hierarchy has it"));
    }
    for t in targets {
        std::fs::write(t.join("cgroup.procs"), pid.to_string())
            .map_err(|e| format!("join shim cgroup {}: {e}", t.display()))?;
    }
    Ok(())
}

/// `serve`: the shim daemon, until Shutdown.
pub fn serve(f: &Flags) -> Result<(), String> {
    let _ = nix::unistd::setsid();
    crate::sys::single_malloc_arena();
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| format!("set child subreaper: {e}"))?;
    let socket = PathBuf::from(&f.socket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // FIFO opens wait on blocking threads; an idle one goes soon, with
        // its stack (a shim per container: its memory is multiplied).
        .thread_keep_alive(std::time::Duration::from_millis(200))
        // A shim's few fds: a small event buffer (its memory is per shim).
        .max_io_events_per_tick(64)
        .build()
        .map_err(|e| format!("start tokio: {e}"))?;
    let console_dir = Path::new(crate::daemon::RUN_DIR).join(format!("v2-{}", std::process::id()));
    let r = rt.block_on(async {
        let ready = async {
            let reaper = Reaper::start().map_err(|e| format!("install SIGCHLD handler: {e}"))?;
            std::fs::create_dir_all(crate::daemon::RUN_DIR)
                .map_err(|e| format!("create the run dir: {e}"))?;
            let _ = std::fs::set_permissions(
                crate::daemon::RUN_DIR,
                std::fs::Permissions::from_mode(0o700),
            );
            std::fs::create_dir_all(&console_dir)
                .map_err(|e| format!("create {}: {e}", console_dir.display()))?;
            if let Some(d) = socket.parent() {
                std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
                let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711));
            }
            let _ = std::fs::remove_file(&socket);
            let publisher = Publisher::new(
                std::env::var("TTRPC_ADDRESS").unwrap_or_default(),
                f.namespace.clone(),
            );
            let task = Arc::new(Task::new(
                f.namespace.clone(),
                socket.clone(),
                reaper,
                console_dir.clone(),
                publisher,
            ));
            let mut server = ttrpc::r#async::Server::new()
                .bind(&format!("unix://{}", socket.display()))
                .map_err(|e| format!("listen on {}: {e}", socket.display()))?
                .register_service(super::proto::task_ttrpc::create_task(task.clone()));
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("chmod {}: {e}", socket.display()))?;
            server.start().await.map_err(|e| format!("serve: {e}"))?;
            Ok::<_, String>((server, task))
        }
        .await;
        let (mut server, task) = crate::daemon::tell_readiness(ready)?;
        let mut rx = task.shutdown.subscribe();
        let _ = rx.wait_for(|s| *s).await;
        // The socket goes first, so a `delete` containerd runs once we hang
        // up finds no shim serving. The server's shutdown lets the Shutdown
        // call's answer out, but it would wait for containerd to hang up,
        // and containerd waits for the shim to go: a moment, then the shim
        // goes anyway (it stayed forever before).
        let _ = std::fs::remove_file(&socket);
        tokio::task::yield_now().await;
        let _ =
            tokio::time::timeout(std::time::Duration::from_millis(100), server.shutdown()).await;
        Ok(())
    });
    // A FIFO open may still wait on a blocking thread (a stdin whose client
    // never wrote): the shim goes without waiting for it.
    rt.shutdown_background();
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_dir_all(&console_dir);
    r
}

/// `delete`: cleans up a container whose shim is gone (what `shim.json` in
/// its bundle names) and prints containerd's DeleteResponse.
pub fn delete(f: &Flags) -> Result<(), String> {
    let bundle = bundle_of(f)?;
    let status = match crate::daemon::Options::from_bundle(f.id.clone(), &bundle) {
        Ok(o) => {
            // containerd runs this once its connection to the shim closed: a
            // shim still on its way out gets a moment to go.
            if let Some(a) = &o.address {
                for _ in 0..100 {
                    if std::os::unix::net::UnixStream::connect(a).is_err() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            crate::daemon::delete(&o).map_err(|e| e.to_string())?
        }
        // Never created: nothing ran, nothing to clean.
        Err(_) => 128 + libc::SIGKILL as u32,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let resp = task::DeleteResponse {
        pid: 0,
        exit_status: status,
        exited_at: protobuf::MessageField::some(protobuf::well_known_types::timestamp::Timestamp {
            seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(now.subsec_nanos()).unwrap_or(0),
            ..Default::default()
        }),
        ..Default::default()
    };
    let bytes = resp.write_to_bytes().map_err(|e| format!("encode: {e}"))?;
    std::io::stdout()
        .write_all(&bytes)
        .map_err(|e| format!("write: {e}"))?;
    Ok(())
}

/// The v2 binary's entry: `containerd-shim-berth-v2 [flags] ACTION`.
pub fn main(args: &[String]) -> Result<(), String> {
    let f = parse(args)?;
    match f.action.as_str() {
        "start" => start(&f),
        "serve" => serve(&f),
        "delete" => delete(&f),
        "" => Err("no action: start, delete".into()),
        other => Err(format!("unknown action {other:?}: start, delete")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_as_containerd_passes_them() {
        let a: Vec<String> = [
            "-namespace",
            "k8s.io",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "abc",
            "-debug",
            "start",
        ]
        .map(String::from)
        .into();
        let f = parse(&a).unwrap();
        assert_eq!(
            (f.namespace.as_str(), f.id.as_str(), f.action.as_str()),
            ("k8s.io", "abc", "start")
        );
        let f = parse(&["--namespace=x".into(), "-id=y".into(), "delete".into()]).unwrap();
        assert_eq!((f.namespace.as_str(), f.id.as_str()), ("x", "y"));
        assert!(parse(&["start".into()]).is_err(), "a namespace is required");
        let s = socket_path("/run/containerd/containerd.sock", "default", "c1");
        assert!(s.starts_with("/run/containerd/s/") && s.file_name().unwrap().len() == 64);
        assert_ne!(
            s,
            socket_path("/run/containerd/containerd.sock", "default", "c2")
        );
    }
}
