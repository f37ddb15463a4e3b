//! The shim is its container's child subreaper: the container init and every
//! exec process are reparented to it when the runtime exits. One reaper
//! collects every child on SIGCHLD and hands each exit to whoever watches
//! that pid — a runtime command, the init, an exec process. An exit that
//! arrives before anyone asked for it (a process that dies before its pid file
//! is read) is kept for a while, so it is never lost.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// How one process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, or 128 + the number of the signal that killed it.
    pub status: u32,
    /// When the shim reaped it.
    pub at: SystemTime,
}

/// The exit of one pid: `None` while it runs. Checking it synchronously tells
/// whether the pid may still be signalled (it is not reused before it is reaped).
pub type ExitWatch = watch::Receiver<Option<Exit>>;

/// Exits nobody has claimed yet, oldest first; bounded so orphans reaped from
/// the container's pid namespace cannot grow it.
const UNCLAIMED_MAX: usize = 256;

#[derive(Default)]
struct Inner {
    watched: HashMap<i32, watch::Sender<Option<Exit>>>,
    unclaimed: VecDeque<(i32, Exit)>,
}

/// Hands out the exit of each child pid.
#[derive(Default)]
pub struct Reaper {
    inner: Mutex<Inner>,
}

impl Reaper {
    /// Installs the SIGCHLD handler and starts the reaping task; call before
    /// the first child is spawned, inside the tokio runtime.
    pub fn start() -> std::io::Result<Arc<Reaper>> {
        let reaper = Arc::new(Reaper::default());
        let mut sigchld = signal(SignalKind::child())?;
        let r = reaper.clone();
        tokio::spawn(async move {
            loop {
                r.reap_all();
                if sigchld.recv().await.is_none() {
                    return;
                }
            }
        });
        Ok(reaper)
    }

    /// Watches the exit of `pid`, which may already have been collected.
    /// Subscribe before the next await after learning the pid: on this single
    /// thread the reaper cannot run in between.
    pub fn subscribe(&self, pid: i32) -> ExitWatch {
        let mut inner = self.inner.lock().expect("reaper lock");
        if let Some(i) = inner.unclaimed.iter().position(|(p, _)| *p == pid) {
            let (_, exit) = inner.unclaimed.remove(i).expect("index in range");
            return watch::channel(Some(exit)).1;
        }
        let (tx, rx) = watch::channel(None);
        inner.watched.insert(pid, tx);
        rx
    }

    /// Collects every exited child without blocking.
    pub fn reap_all(&self) {
        loop {
            let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code as u32),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as u32),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            self.exited(pid, status);
        }
    }

    fn exited(&self, pid: Pid, status: u32) {
        let exit = Exit {
            status,
            at: SystemTime::now(),
        };
        let mut inner = self.inner.lock().expect("reaper lock");
        match inner.watched.remove(&pid.as_raw()) {
            Some(tx) => {
                tx.send_replace(Some(exit));
            }
            None => {
                if inner.unclaimed.len() == UNCLAIMED_MAX {
                    inner.unclaimed.pop_front();
                }
                inner.unclaimed.push_back((pid.as_raw(), exit));
            }
        }
    }
}

/// Waits until the watched process has exited.
pub async fn exited(mut w: ExitWatch) -> Option<Exit> {
    w.wait_for(Option::is_some).await.ok().and_then(|e| *e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_before_the_subscription_is_kept() {
        let r = Reaper::default();
        r.exited(Pid::from_raw(42), 3);
        let w = r.subscribe(42);
        assert_eq!(w.borrow().unwrap().status, 3);
        let w = r.subscribe(43);
        assert!(w.borrow().is_none());
        r.exited(Pid::from_raw(43), 137);
        assert_eq!(w.borrow().unwrap().status, 137);
    }

    #[test]
    fn unclaimed_exits_are_bounded() {
        let r = Reaper::default();
        for pid in 0..(i32::try_from(UNCLAIMED_MAX).unwrap() + 10) {
            r.exited(Pid::from_raw(pid + 1000), 0);
        }
        assert_eq!(r.inner.lock().unwrap().unclaimed.len(), UNCLAIMED_MAX);
        assert!(r.subscribe(1000).borrow().is_none());
    }
}
