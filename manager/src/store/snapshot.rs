//! The overlayfs snapshotter, with containerd's model: a committed snapshot
//! is a read-only layer directory; an active one adds a writable upper over
//! its parent chain; a view is a read-only look at a parent. Each snapshot
//! has a short numeric id and lives in `<root>/snapshots/<id>/{fs,work}`, so
//! overlay's option string stays short; records are in the metadata store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::store::meta::{Meta, MetaError, Table};

/// A snapshotter failure.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// No snapshot has that key.
    #[error("snapshot {0} not found")]
    NotFound(String),
    /// The key is taken.
    #[error("snapshot {0} already exists")]
    Exists(String),
    /// The operation does not fit the snapshot's kind or its children.
    #[error("snapshot {key}: {why}")]
    Invalid {
        /// The snapshot.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What a snapshot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Read-only, a parent for others.
    Committed,
    /// Writable.
    Active,
    /// A read-only view of its parent.
    View,
}

/// A snapshot's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Its numeric id (its directory).
    pub id: u64,
    /// Its kind.
    pub kind: Kind,
    /// Its parent's key.
    pub parent: Option<String>,
    /// Creation time, seconds since the epoch.
    pub created: u64,
}

/// A mount making a snapshot visible: `mount -t <kind> -o <options> <source>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Filesystem type: "overlay" or "bind".
    pub kind: String,
    /// The source.
    pub source: String,
    /// Its options.
    pub options: Vec<String>,
}

/// The snapshotter.
pub struct Snapshotter {
    root: PathBuf,
    meta: Arc<Meta>,
}

fn key_of(ns: &str, key: &str) -> String {
    format!("{ns}/{key}")
}

impl Snapshotter {
    /// A snapshotter keeping layers under `root` and records in `meta`.
    pub fn new(root: &Path, meta: Arc<Meta>) -> Result<Snapshotter, SnapshotError> {
        let d = root.join("snapshots");
        crate::perm::dir(&d, crate::perm::FILESYSTEMS).map_err(|source| SnapshotError::Io {
            what: "create",
            path: d,
            source,
        })?;
        Ok(Snapshotter {
            root: root.to_path_buf(),
            meta,
        })
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    /// The directory holding a snapshot's files (where a layer is unpacked).
    pub fn fs_dir(&self, info: &Info) -> PathBuf {
        self.dir(info.id).join("fs")
    }

    /// A snapshot's record.
    pub fn stat(&self, ns: &str, key: &str) -> Result<Info, SnapshotError> {
        self.meta
            .get(Table::Snapshots, &key_of(ns, key))?
            .ok_or_else(|| SnapshotError::NotFound(key.into()))
    }

    /// Whether a snapshot exists.
    pub fn exists(&self, ns: &str, key: &str) -> Result<bool, SnapshotError> {
        Ok(self
            .meta
            .get::<Info>(Table::Snapshots, &key_of(ns, key))?
            .is_some())
    }

    fn create(
        &self,
        ns: &str,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
    ) -> Result<Info, SnapshotError> {
        let info = self.meta.update(|t| -> Result<Info, SnapshotError> {
            if t.get::<Info>(Table::Snapshots, &key_of(ns, key))?.is_some() {
                return Err(SnapshotError::Exists(key.into()));
            }
            if let Some(p) = parent {
                let pi: Info = t
                    .get(Table::Snapshots, &key_of(ns, p))?
                    .ok_or_else(|| SnapshotError::NotFound(p.into()))?;
                if pi.kind != Kind::Committed {
                    return Err(SnapshotError::Invalid {
                        key: p.into(),
                        why: "a parent must be committed".into(),
                    });
                }
            }
            let info = Info {
                id: t.next("snapshot")?,
                kind,
                parent: parent.map(String::from),
                created: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            };
            t.put(Table::Snapshots, &key_of(ns, key), &info)?;
            Ok(info)
        })?;
        for d in ["fs", "work"] {
            let p = self.dir(info.id).join(d);
            std::fs::create_dir_all(&p).map_err(|source| SnapshotError::Io {
                what: "create",
                path: p,
                source,
            })?;
        }
        Ok(info)
    }

    /// A writable snapshot over `parent`; returns how to mount it.
    pub fn prepare(
        &self,
        ns: &str,
        key: &str,
        parent: Option<&str>,
    ) -> Result<Vec<Mount>, SnapshotError> {
        self.create(ns, key, parent, Kind::Active)?;
        self.mounts(ns, key)
    }

    /// A read-only view of `parent`.
    pub fn view(
        &self,
        ns: &str,
        key: &str,
        parent: Option<&str>,
    ) -> Result<Vec<Mount>, SnapshotError> {
        self.create(ns, key, parent, Kind::View)?;
        self.mounts(ns, key)
    }

    /// The layer directories below a snapshot, nearest parent first.
    fn lowers(&self, ns: &str, info: &Info) -> Result<Vec<PathBuf>, SnapshotError> {
        let mut out = Vec::new();
        let mut next = info.parent.clone();
        while let Some(p) = next {
            let pi = self.stat(ns, &p)?;
            out.push(self.fs_dir(&pi));
            next = pi.parent;
        }
        Ok(out)
    }

    /// A snapshot's own directory and those of its layers, topmost first:
    /// where a file of the mounted snapshot comes from.
    pub fn layer_dirs(&self, ns: &str, key: &str) -> Result<Vec<PathBuf>, SnapshotError> {
        let info = self.stat(ns, key)?;
        let mut out = vec![self.fs_dir(&info)];
        out.extend(self.lowers(ns, &info)?);
        Ok(out)
    }

    /// How to mount a snapshot.
    pub fn mounts(&self, ns: &str, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let info = self.stat(ns, key)?;
        let lowers = self.lowers(ns, &info)?;
        let s = |p: &Path| p.display().to_string();
        let fs = self.fs_dir(&info);
        Ok(vec![match (info.kind, lowers.as_slice()) {
            (Kind::Active, []) => Mount {
                kind: "bind".into(),
                source: s(&fs),
                options: vec!["rbind".into(), "rw".into()],
            },
            (Kind::Active, l) => Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    format!("workdir={}", s(&self.dir(info.id).join("work"))),
                    format!("upperdir={}", s(&fs)),
                    format!(
                        "lowerdir={}",
                        l.iter().map(|p| s(p)).collect::<Vec<_>>().join(":")
                    ),
                ],
            },
            (_, [one]) => Mount {
                kind: "bind".into(),
                source: s(one),
                options: vec!["rbind".into(), "ro".into()],
            },
            (Kind::View, []) => Mount {
                kind: "bind".into(),
                source: s(&fs),
                options: vec!["rbind".into(), "ro".into()],
            },
            (_, l) => Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![format!(
                    "lowerdir={}",
                    l.iter().map(|p| s(p)).collect::<Vec<_>>().join(":")
                )],
            },
        }])
    }

    /// Makes the active snapshot `key` a committed one named `name`.
    pub fn commit(&self, ns: &str, name: &str, key: &str) -> Result<(), SnapshotError> {
        self.meta.update(|t| -> Result<(), SnapshotError> {
            let mut info: Info = t
                .get(Table::Snapshots, &key_of(ns, key))?
                .ok_or_else(|| SnapshotError::NotFound(key.into()))?;
            if info.kind != Kind::Active {
                return Err(SnapshotError::Invalid {
                    key: key.into(),
                    why: "only an active snapshot can be committed".into(),
                });
            }
            if t.get::<Info>(Table::Snapshots, &key_of(ns, name))?
                .is_some()
            {
                return Err(SnapshotError::Exists(name.into()));
            }
            info.kind = Kind::Committed;
            t.delete(Table::Snapshots, &key_of(ns, key))?;
            t.put(Table::Snapshots, &key_of(ns, name), &info)?;
            Ok(())
        })?;
        Ok(())
    }

    /// Removes a snapshot that has no children.
    pub fn remove(&self, ns: &str, key: &str) -> Result<(), SnapshotError> {
        let info = self.meta.update(|t| -> Result<Info, SnapshotError> {
            let info: Info = t
                .get(Table::Snapshots, &key_of(ns, key))?
                .ok_or_else(|| SnapshotError::NotFound(key.into()))?;
            for k in t.keys(Table::Snapshots, &format!("{ns}/"))? {
                let child: Info = t.get(Table::Snapshots, &k)?.expect("listed");
                if child.parent.as_deref() == Some(key) {
                    return Err(SnapshotError::Invalid {
                        key: key.into(),
                        why: format!("snapshot {} is its child", &k[ns.len() + 1..]),
                    });
                }
            }
            t.delete(Table::Snapshots, &key_of(ns, key))?;
            Ok(info)
        })?;
        let d = self.dir(info.id);
        std::fs::remove_dir_all(&d).map_err(|source| SnapshotError::Io {
            what: "remove",
            path: d,
            source,
        })
    }

    /// Bytes and inodes a snapshot's own directory uses.
    pub fn usage(&self, ns: &str, key: &str) -> Result<(u64, u64), SnapshotError> {
        use std::os::unix::fs::MetadataExt;
        let info = self.stat(ns, key)?;
        let (mut bytes, mut inodes) = (0u64, 0u64);
        let mut stack = vec![self.fs_dir(&info)];
        let mut seen = std::collections::HashSet::new();
        while let Some(d) = stack.pop() {
            let rd = std::fs::read_dir(&d).map_err(|source| SnapshotError::Io {
                what: "read",
                path: d.clone(),
                source,
            })?;
            for e in rd.flatten() {
                let Ok(m) = e.metadata() else { continue };
                // Hard links count once.
                if seen.insert(m.ino()) {
                    bytes += m.blocks() * 512;
                    inodes += 1;
                }
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
        Ok((bytes, inodes))
    }

    /// Every snapshot of every namespace: (namespace, key, info).
    pub fn list_all(&self) -> Result<Vec<(String, String, Info)>, SnapshotError> {
        Ok(self
            .meta
            .list::<Info>(Table::Snapshots, "")?
            .into_iter()
            .filter_map(|(k, v)| {
                let (ns, key) = k.split_once('/')?;
                Some((ns.to_string(), key.to_string(), v))
            })
            .collect())
    }

    /// Every snapshot of a namespace, by key.
    pub fn list(&self, ns: &str) -> Result<Vec<(String, Info)>, SnapshotError> {
        let p = format!("{ns}/");
        Ok(self
            .meta
            .list::<Info>(Table::Snapshots, &p)?
            .into_iter()
            .map(|(k, v)| (k[p.len()..].to_string(), v))
            .collect())
    }
}
