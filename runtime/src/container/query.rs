//! What `state`, `list` and `events` report of containers.

use crate::cgroups::{self, Layout};
use crate::state::{self, Dir, Status};
use std::io::Write;
use std::path::Path;

use super::*;

/// `events`: resource statistics of a container as runc prints them, once
/// (`stats`) or every `interval` until it stops, with OOM events.
pub fn events(
    root: &Path,
    id: &str,
    once: bool,
    interval: std::time::Duration,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let layout = Layout::detect()?;
    let mut ooms = None;
    loop {
        let (saved, stopped) = {
            let dir = Dir::open(root, id)?;
            let saved = dir.load()?;
            let stopped = state::status_of(&dir, &saved) == Status::Stopped;
            (saved, stopped)
        };
        if stopped && once {
            return Err(Error::NotRunning);
        }
        // Checked once more after a stop: an OOM kill of init is reported too.
        let n = cgroups::oom_kills(&layout, &saved.cgroup_paths);
        if ooms.is_some_and(|o| n > o) {
            let ev = serde_json::json!({"type": "oom", "id": id});
            let _ = writeln!(out, "{ev}");
        }
        if stopped {
            let _ = out.flush();
            return Ok(());
        }
        ooms = Some(n);
        let ev = serde_json::json!({"type": "stats", "id": id,
            "data": cgroups::stats(&layout, &saved.cgroup_paths)});
        let _ = writeln!(out, "{ev}");
        let _ = out.flush();
        if once {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

/// `state`: the OCI state JSON of one container.
pub fn state_json(root: &Path, id: &str) -> Result<serde_json::Value, Error> {
    let dir = Dir::open(root, id)?;
    let saved = dir.load()?;
    let st = state::status_of(&dir, &saved);
    Ok(state::oci_state(&saved, st))
}

/// `list`: the state of every container under the root.
pub fn list(root: &Path) -> Result<Vec<serde_json::Value>, Error> {
    let mut out = Vec::new();
    for id in state::list_ids(root)? {
        let Ok(dir) = Dir::open(root, &id) else {
            continue;
        };
        let Ok(saved) = dir.load() else { continue };
        let st = state::status_of(&dir, &saved);
        out.push(state::oci_state(&saved, st));
    }
    Ok(out)
}
