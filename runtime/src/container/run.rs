//! `run`: create and start in one, the foreground proxied until exit.

use crate::state::Dir;
use crate::{foreground, syscall, terminal};
use std::os::fd::AsFd;

use super::*;

/// Options of a foreground `run` beyond create's.
pub struct RunOpts {
    pub keep: bool,
    pub no_subreaper: bool,
}

/// `run`: create and start; in the foreground, forward signals, proxy the
/// terminal, reap, and return the container's exit status (128+N for a
/// signal), deleting the container unless `keep`.
pub fn run(o: &CreateOpts, r: &RunOpts) -> Result<i32, Error> {
    if o.detach {
        let mut c = create_inner(o, false, true)?;
        let released = c.released.take();
        let started = bind_relay(&c.dir, &c.saved, o.notify_socket.as_deref())
            .and_then(|relay| start_loaded(&c.dir, &mut c.saved, true, released).map(|()| relay));
        let mut relay = match started {
            Ok(relay) => relay,
            Err(e) => {
                abort(c, false);
                return Err(e);
            }
        };
        drop(c.dir);
        if let Some(relay) = &mut relay {
            wait_ready(relay, &c.saved);
        }
        return Ok(0);
    }
    if !r.no_subreaper {
        syscall::prctl(libc::PR_SET_CHILD_SUBREAPER, 1).map_err(io_err("become subreaper"))?;
    }
    // Signals are blocked before the clone so none is lost; the container
    // process unblocks them before it execs.
    foreground::block_signals()?;
    let mut c = create_inner(o, true, true)?;
    let released = c.released.take();
    let prepared = (|| {
        let master = c
            .console
            .take()
            .map(|s| terminal::recv_master(s.as_fd()))
            .transpose()?;
        let relay = bind_relay(&c.dir, &c.saved, o.notify_socket.as_deref())?;
        start_loaded(&c.dir, &mut c.saved, true, released)?;
        Ok::<_, Error>((master, relay))
    })();
    let (master, mut relay) = match prepared {
        Ok(x) => x,
        Err(e) => {
            abort(c, true);
            return Err(e);
        }
    };
    // Unlocked while it runs, so that other berth commands can act on it.
    drop(c.dir);
    let status = foreground::wait(foreground::Foreground {
        pid: c.saved.pid,
        master,
        notify: relay.as_mut(),
    })?;
    if !r.keep {
        if let Ok(dir) = Dir::open(&o.root, &o.id) {
            let saved = dir.load().unwrap_or(c.saved);
            destroy(dir, &saved)?;
        }
    }
    Ok(status)
}

/// Undoes a created container whose start failed.
pub(super) fn abort(c: Created, our_child: bool) {
    let _ = kill_and_wait(&c.saved);
    if our_child {
        let _ = syscall::wait_pidfd(c.pidfd.as_fd(), false);
    }
    let _ = destroy(c.dir, &c.saved);
}
