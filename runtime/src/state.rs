//! Container state under `--root/<id>`: the saved state file, the per-container
//! lock that serializes commands on one id, and the status a user sees.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors of state handling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {0:?}: ids are 1 to 1024 characters of [A-Za-z0-9_+.-], not starting with '.'")]
    InvalidId(String),
    #[error("container with given ID already exists")]
    Exists,
    #[error("container does not exist")]
    NotExist,
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error("read state of container {id}: {err}")]
    Corrupt { id: String, err: serde_json::Error },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |err| Error::Io { what, err }
}

/// The status of a container, as the OCI state reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    /// The lowercase name used in state JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// A hook as saved for later lifecycle steps.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedHook {
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// What `berth` remembers about a container between invocations.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct Saved {
    pub id: String,
    /// Host pid of the container's init process.
    pub pid: i32,
    /// Start time of that process (clock ticks since boot, /proc/pid/stat
    /// field 22), to tell it from a later process that reuses the pid.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub poststart: Vec<SavedHook>,
    #[serde(default)]
    pub poststop: Vec<SavedHook>,
    /// The container's cgroup directories.
    #[serde(default)]
    pub cgroup_paths: Vec<PathBuf>,
    /// Those of them (and their parents) that `create` made, which `delete` removes.
    #[serde(default)]
    pub cgroup_owned: Vec<PathBuf>,
    /// The container shares the host's (or another) pid namespace, so
    /// `kill --all` and `delete` must signal more than init.
    #[serde(default)]
    pub shared_pidns: bool,
    /// The user's process was released by `start`. Saved only when `start`
    /// could not remove the exec fifo: its absence says the same.
    #[serde(default)]
    pub started: bool,
    /// The transient scope systemd holds the cgroup in (`--systemd-cgroup`),
    /// stopped on delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// That scope is the user's manager's, not the system's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub systemd_user: bool,
}

/// Checks an id the way runc does (`berth_rules::id`), so that it is
/// always one safe path component.
pub fn validate_id(id: &str) -> Result<(), Error> {
    if berth_rules::id::is_runtime_id(id) {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

/// A container's directory under the state root, locked for this process.
pub struct Dir {
    pub path: PathBuf,
    // Holds the flock; released when dropped or when the process exits.
    _lock: nix::fcntl::Flock<File>,
}

fn lock_dir(path: &Path) -> Result<nix::fcntl::Flock<File>, Error> {
    let f = File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::NotExist
        } else {
            Error::Io {
                what: format!("open {}", path.display()),
                err: e,
            }
        }
    })?;
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive) {
        Ok(l) => Ok(l),
        Err((_, e)) => Err(Error::Io {
            what: format!("lock {}", path.display()),
            err: e.into(),
        }),
    }
}

impl Dir {
    /// Creates the directory for a new container; fails if the id exists.
    pub fn create(root: &Path, id: &str) -> Result<Dir, Error> {
        validate_id(id)?;
        ensure_root(root)?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(Error::Exists),
            Err(e) => return Err(io_err(format!("create state directory {}", path.display()))(e)),
        }
        let lock = lock_dir(&path)?;
        Ok(Dir { path, _lock: lock })
    }

    /// Opens and locks the directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<Dir, Error> {
        validate_id(id)?;
        let path = root.join(id);
        let lock = lock_dir(&path)?;
        // A concurrent delete may have removed it while we waited for the lock.
        if !path.join(STATE_FILE).exists() && !path.join(CREATING_FILE).exists() {
            return Err(Error::NotExist);
        }
        Ok(Dir { path, _lock: lock })
    }

    /// Reads the saved state.
    pub fn load(&self) -> Result<Saved, Error> {
        let p = self.path.join(STATE_FILE);
        let data = fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotExist
            } else {
                Error::Io {
                    what: format!("read {}", p.display()),
                    err: e,
                }
            }
        })?;
        serde_json::from_slice(&data).map_err(|err| Error::Corrupt { id: self.id(), err })
    }

    /// Writes the saved state atomically (temp file, rename).
    pub fn save(&self, s: &Saved) -> Result<(), Error> {
        let tmp = self.path.join(".state.json.tmp");
        let data = serde_json::to_vec(s).expect("state serializes");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(format!("write {}", tmp.display())))?;
        f.write_all(&data)
            .map_err(io_err(format!("write {}", tmp.display())))?;
        fs::rename(&tmp, self.path.join(STATE_FILE))
            .map_err(io_err(format!("rename {}", tmp.display())))?;
        let _ = fs::remove_file(self.path.join(CREATING_FILE));
        Ok(())
    }

    /// The container id (the directory's name).
    pub fn id(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Path of the exec fifo that holds a created container before `start`.
    pub fn fifo(&self) -> PathBuf {
        self.path.join(FIFO_FILE)
    }

    /// Removes the directory and everything in it.
    pub fn remove(self) -> Result<(), Error> {
        fs::remove_dir_all(&self.path).map_err(io_err(format!("remove {}", self.path.display())))
    }
}

/// Name of the saved state file.
pub const STATE_FILE: &str = "state.json";
/// Marker present while `create` is still building the container.
pub const CREATING_FILE: &str = "creating";
/// Name of the exec fifo.
pub const FIFO_FILE: &str = "exec.fifo";

/// Creates the state root (0700) if it does not exist.
pub fn ensure_root(root: &Path) -> Result<(), Error> {
    match fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(root)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(io_err(format!("create state root {}", root.display()))(e)),
    }
}

/// Ids of all containers under the root, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>, Error> {
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("read {}", root.display()))(e)),
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| validate_id(id).is_ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// Process state letter and start time from /proc/<pid>/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let data = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&data)
}

/// Parses the state letter (field 3) and start time (field 22) of a stat line.
pub fn parse_stat(data: &str) -> Option<(char, u64)> {
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = &data[data.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// True when the saved init process still runs (not a zombie, not a reused pid).
pub fn init_alive(s: &Saved) -> bool {
    why_gone(s).is_none()
}

/// Why the saved init process does not count as alive, for error messages;
/// None while it runs.
pub fn why_gone(s: &Saved) -> Option<String> {
    if s.pid <= 0 {
        return Some("no container process was recorded".into());
    }
    match proc_stat(s.pid) {
        None => Some(format!("container process {} has exited", s.pid)),
        Some(('Z' | 'X', _)) => Some(format!("container process {} has exited (zombie)", s.pid)),
        Some((_, start)) if start != s.start_time => Some(format!(
            "container process {} has exited; its pid now belongs to another process",
            s.pid
        )),
        Some(_) => None,
    }
}

/// The status of a saved container as seen now.
pub fn status_of(dir: &Dir, s: &Saved) -> Status {
    if !init_alive(s) {
        return Status::Stopped;
    }
    if crate::cgroups::is_frozen(&s.cgroup_paths) {
        return Status::Paused;
    }
    if !s.started && dir.fifo().exists() {
        Status::Created
    } else {
        Status::Running
    }
}

/// The OCI state of a container (runtime-spec "State"), as `berth state` prints it.
pub fn oci_state(s: &Saved, status: Status) -> serde_json::Value {
    let mut v = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "id": s.id,
        "pid": if status == Status::Stopped { 0 } else { s.pid },
        "status": status.as_str(),
        "bundle": s.bundle,
        "rootfs": s.rootfs,
        "created": s.created,
        "owner": s.owner,
    });
    if !s.annotations.is_empty() {
        v["annotations"] = serde_json::to_value(&s.annotations).unwrap_or_default();
    }
    v
}

/// The state passed to hooks on stdin (runtime-spec "State").
pub fn hook_state(s: &Saved, status: Status) -> String {
    let mut v = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "id": s.id,
        "status": status.as_str(),
        "pid": s.pid,
        "bundle": s.bundle,
    });
    if !s.annotations.is_empty() {
        v["annotations"] = serde_json::to_value(&s.annotations).unwrap_or_default();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-1_2.3+x", "A"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "a b", ".hidden", "x\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stat_with_odd_comm() {
        let line =
            "123 (a) b (c)) S 1 123 123 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 98765)));
    }

    #[test]
    fn why_the_init_is_gone() {
        let me = std::process::id() as i32;
        let (_, start) = proc_stat(me).unwrap();
        let s = |pid, start_time| Saved {
            pid,
            start_time,
            ..Default::default()
        };
        let why = |pid, start_time| why_gone(&s(pid, start_time)).unwrap_or_default();
        assert!(why(0, 0).contains("no container process"));
        assert!(why(me, start + 1).contains("now belongs to another process"));
        assert!(why_gone(&s(me, start)).is_none(), "it runs");
        // Above pid_max (at most 2^22): no such process.
        assert!(why(1 << 23, 0).ends_with("has exited"));
    }

    #[test]
    fn state_json_shape() {
        let s = Saved {
            id: "x".into(),
            pid: 42,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            ..Default::default()
        };
        let v = oci_state(&s, Status::Created);
        assert_eq!(v["status"], "created");
        assert_eq!(v["pid"], 42);
        assert!(v.get("annotations").is_none());
        assert_eq!(oci_state(&s, Status::Stopped)["pid"], 0);
    }
}
