//! containerd's stdio for a process: the FIFOs (or files) its client made,
//! named in Create and Exec. Output the process writes reaches them through
//! the same subscription an attached client gets, from before the process
//! starts; the stdin FIFO feeds the process, and its end closes stdin.
//! FIFOs are opened off the shim's thread: an open blocks until the client
//! opens the other end.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use berth_proto::shim::Stream;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::io::AsyncFdIo;
use crate::process::Proc;

/// Why a stdio path is refused.
#[derive(Debug, thiserror::Error)]
#[error("stdio {0:?}: only FIFOs and files (a path, or file://PATH) are supported; logging binaries (binary://) are not")]
pub struct UnsupportedStdio(pub String);

/// The file a stdio URI names, or None for "".
fn path_of(uri: &str) -> Result<Option<String>, UnsupportedStdio> {
    if uri.is_empty() {
        return Ok(None);
    }
    if let Some(p) = uri.strip_prefix("file://") {
        return Ok(Some(p.to_string()));
    }
    if uri.contains("://") || !uri.starts_with('/') {
        return Err(UnsupportedStdio(uri.into()));
    }
    Ok(Some(uri.to_string()))
}

/// Checks the three URIs before anything starts.
pub fn check(stdin: &str, stdout: &str, stderr: &str) -> Result<(), UnsupportedStdio> {
    for u in [stdin, stdout, stderr] {
        path_of(u)?;
    }
    Ok(())
}

/// Opens an output path: a FIFO read-write (an open for writing alone
/// would wait for a reader, and a detached client may never come: the pipe
/// holds what it can), a file for appending.
fn open_output(path: &str) -> Option<AsyncFdIo> {
    use std::os::unix::fs::FileTypeExt;
    let fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
    let flags = if fifo {
        OFlag::O_RDWR
    } else {
        OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT
    };
    let fd = nix::fcntl::open(
        path,
        flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
        Mode::from_bits_truncate(0o600),
    )
    .ok()?;
    AsyncFdIo::new(fd).ok()
}

/// Opens `path` with `flags` on a blocking thread (a FIFO's open waits for
/// its other end).
async fn open(path: String, flags: OFlag) -> Option<AsyncFdIo> {
    let fd: OwnedFd = tokio::task::spawn_blocking(move || {
        nix::fcntl::open(
            path.as_str(),
            flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            Mode::from_bits_truncate(0o600),
        )
    })
    .await
    .ok()?
    .ok()?;
    AsyncFdIo::new(fd).ok()
}

/// Wires `p`'s output to `stdout` and `stderr` and `stdin` to its input.
/// Call before the process starts, so no output is missed.
pub fn wire(
    p: &Arc<Proc>,
    stdin: &str,
    stdout: &str,
    stderr: &str,
) -> Result<(), UnsupportedStdio> {
    let (stdin, stdout, stderr) = (path_of(stdin)?, path_of(stdout)?, path_of(stderr)?);
    if let Some(mut rx) = p.subscribe(stdout.is_some(), stderr.is_some()) {
        // A file (not a FIFO) is appended to, as containerd's file:// does.
        let out = stdout.as_deref().and_then(open_output);
        let err = stderr.as_deref().and_then(open_output);
        tokio::spawn(async move {
            while let Some(Ok(m)) = rx.recv().await {
                let to = if m.stream == Stream::Stderr as i32 {
                    &err
                } else {
                    &out
                };
                if let Some(f) = to {
                    // A client gone: its output is dropped, the process runs on.
                    let _ = f.write_all(&m.data).await;
                }
            }
            // Dropped here: the client reads EOF.
        });
    }
    if let Some(path) = stdin {
        let p = p.clone();
        tokio::spawn(async move {
            let Some(f) = open(path, OFlag::O_RDONLY).await else {
                return;
            };
            let mut buf = vec![0u8; 32 << 10];
            loop {
                match f.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if p.write_stdin(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = p.close_stdin().await;
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdio_uris_as_containerd_gives_them() {
        assert_eq!(path_of("").unwrap(), None);
        assert_eq!(
            path_of("/run/x/stdout").unwrap().as_deref(),
            Some("/run/x/stdout")
        );
        assert_eq!(
            path_of("file:///var/log/x").unwrap().as_deref(),
            Some("/var/log/x")
        );
        assert!(path_of("binary:///usr/bin/logger?a=b").is_err());
        assert!(path_of("relative").is_err());
    }
}
