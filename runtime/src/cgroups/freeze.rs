//! The freezer: `pause` and `resume`, v1 `freezer.state` or v2 `cgroup.freeze`.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

/// Freezes (or thaws) the container's cgroup and waits until the kernel
/// reports it done: v1 freezer.state, v2 cgroup.freeze and cgroup.events.
pub fn freeze(dirs: &[PathBuf], frozen: bool) -> Result<(), Error> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |err| Error::Io { what, path, err }
    };
    for d in dirs {
        let v1 = d.join("freezer.state");
        if v1.exists() {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            for _ in 0..1000 {
                fs::write(&v1, want).map_err(io("write", &v1))?;
                if fs::read_to_string(&v1).map_err(io("read", &v1))?.trim() == want {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Err(Error::Unsupported(format!(
                "{}: still not {want} after 1s",
                v1.display()
            )));
        }
        let v2 = d.join("cgroup.freeze");
        if v2.exists() {
            fs::write(&v2, if frozen { "1" } else { "0" }).map_err(io("write", &v2))?;
            let events = d.join("cgroup.events");
            let want = if frozen { "frozen 1" } else { "frozen 0" };
            for _ in 0..1000 {
                let ev = fs::read_to_string(&events).map_err(io("read", &events))?;
                if ev.lines().any(|l| l.trim() == want) {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Err(Error::Unsupported(format!(
                "{}: not {want} after 1s",
                events.display()
            )));
        }
    }
    Err(Error::Unsupported(
        "pause/resume: no freezer for this container (v1 freezer controller or cgroup v2 needed)"
            .into(),
    ))
}
