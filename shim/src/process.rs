//! One supervised process — the container's init or an exec process: its
//! stdio (pipes, or a pty master received over the console socket), the pumps
//! that copy its output to the CRI log and to attached clients, its stdin, and
//! its exit as the shim records it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_proto::shim::{self as pb, AttachResponse};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::io::{pipe, AsyncFdIo, ChildStdio};
use crate::log::{LineSplitter, LogWriter, Stream, LINE_BUF};
use crate::reaper::{Exit, ExitWatch};

/// How long an attached client may leave output unread before it is cut
/// off; until then the container's output waits for it (nothing is dropped,
/// and the log has everything either way).
const SLOW_CLIENT: Duration = Duration::from_secs(10);

/// Where a process stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Created (init) or added (exec), not started.
    Created,
    /// Started and not yet exited.
    Running,
    /// Exited; the exit is recorded.
    Stopped,
}

/// An attached client's output channel.
struct Subscriber {
    tx: mpsc::Sender<Result<AttachResponse, tonic::Status>>,
    stdout: bool,
    stderr: bool,
}

/// The attached clients of one process and how many of its output streams
/// are still open; at 0 every client's stream ends.
#[derive(Default)]
struct Outputs {
    subs: Vec<Subscriber>,
    open: usize,
    /// A terminal process's pty has not come yet: clients attached before
    /// its start (to miss none of its output) wait for it.
    awaiting_pty: bool,
}

/// Where stdin writes go.
enum StdinSink {
    Pipe(AsyncFdIo),
    Tty(Arc<AsyncFdIo>),
}

/// Mutable facts about a process.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    /// Its host pid, 0 before it runs.
    pub pid: u32,
    /// Its status.
    pub status: Status,
    /// Its recorded exit.
    pub exit: Option<Exit>,
}

/// One process the shim supervises.
pub struct Proc {
    /// "" for the container's init.
    pub exec_id: String,
    /// Whether it has a pty.
    pub terminal: bool,
    /// Whether it was given a stdin.
    pub stdin: bool,
    /// Its CRI log.
    pub log_path: PathBuf,
    facts: Mutex<Facts>,
    /// The exit as published (after its output is drained): what Wait sees.
    published: watch::Sender<Option<Exit>>,
    /// Held while the runtime starts it, so its exit cannot be published
    /// before its start.
    pub start_lock: tokio::sync::Mutex<()>,
    /// The reaper's view: set the moment it is reaped (its pid is then free).
    reaped: Mutex<Option<ExitWatch>>,
    stdin_sink: tokio::sync::Mutex<Option<StdinSink>>,
    master: Mutex<Option<Arc<AsyncFdIo>>>,
    outputs: Arc<Mutex<Outputs>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
    log: Arc<Mutex<LogWriter>>,
    /// The runtime's ends of the stdio pipes, until it runs the process.
    pending: Mutex<Option<ChildStdio>>,
}

impl Proc {
    /// A new process logging to `log`: with a terminal, its stdio arrives
    /// later through [`Proc::attach_master`]; without, pipes are made now.
    pub fn new(
        exec_id: &str,
        terminal: bool,
        stdin: bool,
        log_path: PathBuf,
        log: LogWriter,
    ) -> std::io::Result<Arc<Proc>> {
        let p = Arc::new(Proc {
            exec_id: exec_id.into(),
            terminal,
            stdin,
            log_path,
            facts: Mutex::new(Facts {
                pid: 0,
                status: Status::Created,
                exit: None,
            }),
            published: watch::channel(None).0,
            start_lock: tokio::sync::Mutex::new(()),
            reaped: Mutex::new(None),
            stdin_sink: tokio::sync::Mutex::new(None),
            master: Mutex::new(None),
            outputs: Arc::default(),
            pumps: Mutex::new(Vec::new()),
            log: Arc::new(Mutex::new(log)),
            pending: Mutex::new(None),
        });
        p.outputs.lock().expect("outputs").awaiting_pty = terminal;
        if !terminal {
            let mut child = ChildStdio::default();
            if stdin {
                let (r, w) = pipe()?;
                child.stdin = Some(r);
                *p.stdin_sink.try_lock().expect("new") = Some(StdinSink::Pipe(AsyncFdIo::new(w)?));
            }
            let (r, w) = pipe()?;
            child.stdout = Some(w);
            p.pump(Arc::new(AsyncFdIo::new(r)?), Stream::Stdout);
            let (r, w) = pipe()?;
            child.stderr = Some(w);
            p.pump(Arc::new(AsyncFdIo::new(r)?), Stream::Stderr);
            *p.pending.lock().expect("pending") = Some(child);
        }
        Ok(p)
    }

    /// The stdio to give the runtime command that starts this process (the
    /// terminal case has none: the pty comes over the console socket).
    pub fn take_child_stdio(&self) -> ChildStdio {
        self.pending
            .lock()
            .expect("pending")
            .take()
            .unwrap_or_default()
    }

    /// Takes over the pty master the runtime sent.
    pub fn attach_master(self: &Arc<Self>, master: OwnedFd) -> std::io::Result<()> {
        let m = Arc::new(AsyncFdIo::new(master)?);
        *self.master.lock().expect("master") = Some(m.clone());
        self.pump(m.clone(), Stream::Stdout);
        self.outputs.lock().expect("outputs").awaiting_pty = false;
        if self.stdin {
            *self
                .stdin_sink
                .try_lock()
                .expect("set once, before any client") = Some(StdinSink::Tty(m));
        }
        Ok(())
    }

    /// Opens the log anew at its path; later output goes there.
    pub fn reopen_log(&self) -> std::io::Result<()> {
        self.log.lock().expect("log").reopen()
    }

    /// Starts copying one output stream to the log and attached clients.
    fn pump(self: &Arc<Self>, src: Arc<AsyncFdIo>, stream: Stream) {
        self.outputs.lock().expect("outputs").open += 1;
        let outputs = self.outputs.clone();
        let log = self.log.clone();
        let h = tokio::spawn(async move {
            let mut lines = LineSplitter::new(LINE_BUF);
            let mut write = |line: &[u8], partial: bool| {
                let mut log = log.lock().expect("log");
                if let Err(e) = log.record(stream, partial, line, SystemTime::now()) {
                    eprintln!("berth-shim: write log: {e}");
                }
            };
            loop {
                let n = match src.read(lines.spare()).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let chunk = lines.filled(n).to_vec();
                lines.commit(n, &mut write);
                fan_out(&outputs, stream, chunk).await;
            }
            lines.finish(&mut write);
            let mut o = outputs.lock().expect("outputs");
            o.open -= 1;
            if o.open == 0 {
                o.subs.clear();
            }
        });
        self.pumps.lock().expect("pumps").push(h);
    }

    /// Registers an attached client; `None` when the output has already ended.
    pub fn subscribe(
        &self,
        stdout: bool,
        stderr: bool,
    ) -> Option<mpsc::Receiver<Result<AttachResponse, tonic::Status>>> {
        let mut o = self.outputs.lock().expect("outputs");
        if o.open == 0 && !o.awaiting_pty {
            return None;
        }
        let (tx, rx) = mpsc::channel(8);
        o.subs.push(Subscriber { tx, stdout, stderr });
        Some(rx)
    }

    /// Writes to the process's stdin.
    pub async fn write_stdin(&self, data: &[u8]) -> std::io::Result<()> {
        match &*self.stdin_sink.lock().await {
            Some(StdinSink::Pipe(p)) => p.write_all(data).await,
            Some(StdinSink::Tty(m)) => m.write_all(data).await,
            None => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        }
    }

    /// Closes stdin: EOF on a pipe; on a tty, the EOF character (^D).
    pub async fn close_stdin(&self) -> std::io::Result<()> {
        let mut sink = self.stdin_sink.lock().await;
        if let Some(StdinSink::Tty(m)) = &*sink {
            m.write_all(&[4]).await?;
        }
        *sink = None;
        Ok(())
    }

    /// Sets the pty's window size.
    pub fn resize(&self, rows: u16, cols: u16) -> std::io::Result<()> {
        match &*self.master.lock().expect("master") {
            Some(m) => crate::sys::set_winsize(m.as_fd(), rows, cols),
            None => Err(std::io::Error::from_raw_os_error(libc::ENOTTY)),
        }
    }

    /// A snapshot of pid, status and exit.
    pub fn facts(&self) -> Facts {
        *self.facts.lock().expect("facts")
    }

    /// Marks it running as `pid`, watched by `reaped`.
    pub fn set_running(&self, pid: u32, reaped: ExitWatch) {
        self.set_pid(pid, reaped);
        let mut f = self.facts.lock().expect("facts");
        if f.status == Status::Created {
            f.status = Status::Running;
        }
    }

    /// Records the pid of a created (not yet started) init.
    pub fn set_pid(&self, pid: u32, reaped: ExitWatch) {
        self.facts.lock().expect("facts").pid = pid;
        *self.reaped.lock().expect("reaped") = Some(reaped);
    }

    /// Marks a created init as started.
    pub fn set_started(&self) {
        let mut f = self.facts.lock().expect("facts");
        if f.status == Status::Created {
            f.status = Status::Running;
        }
    }

    /// Whether the pid has been reaped (so it must not be signalled).
    pub fn is_reaped(&self) -> bool {
        match &*self.reaped.lock().expect("reaped") {
            Some(w) => w.borrow().is_some(),
            None => self.facts().exit.is_some(),
        }
    }

    /// Records the exit and wakes waiters. Called once, by the exit watcher
    /// (or for a process that never started).
    pub fn set_exited(&self, exit: Exit) {
        {
            let mut f = self.facts.lock().expect("facts");
            f.status = Status::Stopped;
            f.exit = Some(exit);
        }
        self.published.send_replace(Some(exit));
    }

    /// Waits for the recorded exit.
    pub async fn wait(&self) -> Option<Exit> {
        let mut rx = self.published.subscribe();
        rx.wait_for(Option::is_some).await.ok().and_then(|e| *e)
    }

    /// Waits up to `limit` for the output pumps to reach EOF, so the log is
    /// complete when the exit is published (a daemon left holding the pipe
    /// must not hold up the exit for ever).
    pub async fn drain_output(&self, limit: Duration) {
        let pumps: Vec<_> = std::mem::take(&mut *self.pumps.lock().expect("pumps"));
        let deadline = tokio::time::Instant::now() + limit;
        for h in pumps {
            let _ = tokio::time::timeout_at(deadline, h).await;
        }
    }

    /// The status as the API reports it.
    pub fn api_status(&self, paused: bool) -> pb::Status {
        match self.facts().status {
            Status::Created => pb::Status::Created,
            Status::Running if paused => pb::Status::Paused,
            Status::Running => pb::Status::Running,
            Status::Stopped => pb::Status::Stopped,
        }
    }
}

/// Sends `chunk` to each client attached to `stream`, waiting for slow
/// ones up to [`SLOW_CLIENT`] and dropping those gone or stuck.
async fn fan_out(outputs: &Mutex<Outputs>, stream: Stream, chunk: Vec<u8>) {
    let targets: Vec<_> = {
        let o = outputs.lock().expect("outputs");
        o.subs
            .iter()
            .filter(|s| match stream {
                Stream::Stdout => s.stdout,
                Stream::Stderr => s.stderr,
            })
            .map(|s| s.tx.clone())
            .collect()
    };
    if targets.is_empty() {
        return;
    }
    let msg = AttachResponse {
        stream: match stream {
            Stream::Stdout => pb::Stream::Stdout,
            Stream::Stderr => pb::Stream::Stderr,
        } as i32,
        data: chunk,
    };
    let mut dropped = Vec::new();
    for tx in targets {
        if tokio::time::timeout(SLOW_CLIENT, tx.send(Ok(msg.clone())))
            .await
            .map_or(true, |r| r.is_err())
        {
            dropped.push(tx);
        }
    }
    if !dropped.is_empty() {
        let mut o = outputs.lock().expect("outputs");
        o.subs
            .retain(|s| !dropped.iter().any(|d| d.same_channel(&s.tx)));
    }
}
