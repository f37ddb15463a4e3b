//! Admission of connections on berthd's sockets (its API and the CRI's):
//! at most `max` at once, a new one past that closing the connection that
//! has been quiet longest; a connection that sends nothing for `idle` is
//! closed (live clients answer the server's HTTP/2 pings well within it);
//! and accept failures for want of file descriptors (EMFILE, ENFILE) back
//! off instead of spinning, which tonic's accept loop would do.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};

/// The limits of one socket.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections held at once.
    pub max: usize,
    /// How long a connection may send nothing.
    pub idle: Duration,
}

impl Default for Limits {
    /// 1024 connections, or half the descriptors this process may open
    /// (berthd needs the rest: the store, shims' sockets, logs), so that
    /// the cap is met before the descriptor limit is.
    fn default() -> Limits {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        Limits {
            max: usize::try_from(soft / 2).unwrap_or(1024).clamp(16, 1024),
            idle: IDLE,
        }
    }
}

/// The server pings every connection this often (HTTP/2 PING): a live
/// client's answer is traffic, so only dead or silent peers go idle.
pub const PING_EVERY: Duration = Duration::from_secs(60);

/// Three pings unanswered.
const IDLE: Duration = Duration::from_secs(180);

/// One connection's bookkeeping, shared with the registry.
#[derive(Default)]
struct Slot {
    /// When the peer last sent something, ms since the registry began.
    last: AtomicU64,
    closed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Slot {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
    }
}

/// The connections of one socket.
struct Registry {
    began: Instant,
    slots: Mutex<Vec<Weak<Slot>>>,
    limits: Limits,
}

impl Registry {
    fn now(&self) -> u64 {
        u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Registers a new connection, closing the quietest one past the cap.
    fn admit(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot::default());
        slot.last.store(self.now(), Ordering::Relaxed);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|w| {
            w.upgrade()
                .is_some_and(|s| !s.closed.load(Ordering::Relaxed))
        });
        if slots.len() >= self.limits.max {
            let quietest = slots
                .iter()
                .filter_map(Weak::upgrade)
                .min_by_key(|s| s.last.load(Ordering::Relaxed));
            if let Some(s) = quietest {
                s.close();
            }
        }
        slots.push(Arc::downgrade(&slot));
        slot
    }

    /// Closes every connection quiet for longer than the limit.
    fn sweep(&self) {
        let cutoff = self
            .now()
            .saturating_sub(u64::try_from(self.limits.idle.as_millis()).unwrap_or(u64::MAX));
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for s in slots.iter().filter_map(Weak::upgrade) {
            if s.last.load(Ordering::Relaxed) < cutoff {
                s.close();
            }
        }
    }
}

/// An admitted connection: reads show end of file and writes fail once it
/// is closed, so the server drops it.
pub struct Conn {
    io: UnixStream,
    slot: Arc<Slot>,
    reg: Arc<Registry>,
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.slot.closed.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        *self.slot.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let now = self.reg.now();
            self.slot.last.store(now, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.slot.closed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// Whether an accept failed for want of descriptors or memory: worth a
/// pause, not a retry at once.
fn exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// The admitted connections of `listener`, as a stream for tonic. A task
/// sweeps idle connections while the stream lives.
pub fn incoming(
    listener: UnixListener,
    limits: Limits,
) -> impl futures_util::Stream<Item = io::Result<Conn>> {
    let reg = Arc::new(Registry {
        began: Instant::now(),
        slots: Mutex::new(Vec::new()),
        limits,
    });
    let sweeper = Arc::downgrade(&reg);
    tokio::spawn(async move {
        let every = (limits.idle / 4).max(Duration::from_millis(50));
        loop {
            tokio::time::sleep(every).await;
            match sweeper.upgrade() {
                Some(r) => r.sweep(),
                None => break,
            }
        }
    });
    futures_util::stream::unfold(
        (listener, reg, Duration::ZERO),
        |(listener, reg, mut pause)| async move {
            loop {
                match listener.accept().await {
                    Ok((io, _)) => {
                        let slot = reg.admit();
                        let conn = Conn {
                            io,
                            slot,
                            reg: reg.clone(),
                        };
                        return Some((Ok(conn), (listener, reg, Duration::ZERO)));
                    }
                    Err(e) if exhausted(&e) => {
                        if pause.is_zero() {
                            tracing::warn!(error = %e, "accept: out of file descriptors; pausing");
                        }
                        pause =
                            (pause * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                        tokio::time::sleep(pause).await;
                    }
                    Err(e) => return Some((Err(e), (listener, reg, pause))),
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max: usize) -> Registry {
        Registry {
            began: Instant::now(),
            slots: Mutex::new(Vec::new()),
            limits: Limits {
                max,
                idle: Duration::from_millis(100),
            },
        }
    }

    #[test]
    fn past_the_cap_the_quietest_connection_goes() {
        let r = registry(2);
        let a = r.admit();
        let b = r.admit();
        a.last.store(50, Ordering::Relaxed);
        b.last.store(10, Ordering::Relaxed);
        let c = r.admit();
        assert!(b.closed.load(Ordering::Relaxed), "the quietest is closed");
        assert!(!a.closed.load(Ordering::Relaxed) && !c.closed.load(Ordering::Relaxed));
        // Closed and dropped ones no longer count.
        drop(b);
        let d = r.admit();
        assert!(a.closed.load(Ordering::Relaxed) ^ c.closed.load(Ordering::Relaxed));
        drop(d);
    }

    #[test]
    fn quiet_connections_are_swept() {
        let r = registry(10);
        let a = r.admit();
        let b = r.admit();
        std::thread::sleep(Duration::from_millis(150));
        b.last.store(r.now(), Ordering::Relaxed);
        r.sweep();
        assert!(a.closed.load(Ordering::Relaxed));
        assert!(!b.closed.load(Ordering::Relaxed));
    }
}
