//! Container and volume records in the metadata store. A container is its
//! id, the image it came from, its generated OCI spec, the active snapshot
//! holding its filesystem, and the last exit of its task; the task itself is
//! the shim's (see `tasks`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::meta::{Meta, MetaError, Table};

/// A record operation failure.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No such container or volume.
    #[error("{kind} {name} not found")]
    NotFound {
        /// "container" or "volume".
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The name is taken.
    #[error("{kind} {name} already exists")]
    Exists {
        /// "container" or "volume".
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The name is not usable.
    #[error(
        "invalid {kind} name {name:?}: use [A-Za-z0-9][A-Za-z0-9_.-]*, at most 128 characters"
    )]
    InvalidName {
        /// "container" or "volume".
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A volume in use.
    #[error("volume {name} is in use by container {container}")]
    InUse {
        /// The volume.
        name: String,
        /// A container using it.
        container: String,
    },
    /// The store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A volume directory step failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A mount the user asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// "bind" or "volume".
    pub kind: String,
    /// Host path or volume name.
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Read-only.
    pub read_only: bool,
}

/// How a task's init ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// Exit code, or 128 + signal.
    pub status: u32,
    /// When, in milliseconds since the epoch.
    pub at_ms: u64,
    /// The kernel OOM-killed a process of the container before it ended.
    #[serde(default)]
    pub oom_killed: bool,
}

/// A container record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// Its id (also its name).
    pub id: String,
    /// The image's normalized name.
    pub image: String,
    /// The image's manifest (or index) when the container was made; a
    /// lease named after the container holds it (and what it names) while
    /// the container exists, whatever becomes of the name.
    #[serde(default)]
    pub image_target: Option<crate::store::oci::Descriptor>,
    /// The OCI runtime spec (config.json).
    pub spec: serde_json::Value,
    /// Its active snapshot's key.
    pub snapshot: String,
    /// Its runtime binary ("" for berthd's).
    pub runtime: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// A terminal for the init.
    pub tty: bool,
    /// Stdin kept open for the init.
    pub stdin: bool,
    /// Removed when its task exits.
    pub auto_remove: bool,
    /// The user's mounts.
    pub mounts: Vec<MountRecord>,
    /// "none", "host", "container:NAME" or a CNI network's name.
    pub network: String,
    /// Ports published on the host.
    #[serde(default)]
    pub ports: Vec<crate::network::networks::PortMapping>,
    /// The last start of its task, ms since the epoch.
    pub started_ms: Option<u64>,
    /// The last exit of its task.
    pub exit: Option<Exit>,
    /// Rotate its log past this many bytes (0: never).
    #[serde(default)]
    pub log_max_size: u64,
    /// Log files kept, the log included.
    #[serde(default)]
    pub log_max_files: u32,
    /// Where its output is logged, when the creator chose (the CRI's
    /// path under the pod's log directory); empty: its data directory's.
    #[serde(default)]
    pub log_path: String,
}

fn key(ns: &str, id: &str) -> String {
    format!("{ns}/{id}")
}

/// Container records.
pub struct Containers<'a>(pub &'a Meta);

impl Containers<'_> {
    /// One container.
    pub fn get(&self, ns: &str, id: &str) -> Result<Container, RecordError> {
        self.0
            .get(Table::Containers, &key(ns, id))?
            .ok_or_else(|| RecordError::NotFound {
                kind: "container",
                name: id.into(),
            })
    }

    /// A namespace's containers, by id.
    pub fn list(&self, ns: &str) -> Result<Vec<Container>, RecordError> {
        Ok(self
            .0
            .list::<Container>(Table::Containers, &format!("{ns}/"))?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    }

    /// Every namespace's containers, with their namespace.
    pub fn all(&self) -> Result<Vec<(String, Container)>, RecordError> {
        Ok(self
            .0
            .list::<Container>(Table::Containers, "")?
            .into_iter()
            .map(|(k, c)| (k.split('/').next().unwrap_or_default().to_string(), c))
            .collect())
    }

    /// Records a new container; refused when the id is taken.
    pub fn insert(&self, ns: &str, c: &Container) -> Result<(), RecordError> {
        self.0.update(|t| {
            if t.get::<Container>(Table::Containers, &key(ns, &c.id))?
                .is_some()
            {
                return Err(RecordError::Exists {
                    kind: "container",
                    name: c.id.clone(),
                });
            }
            t.put(Table::Containers, &key(ns, &c.id), c)?;
            Ok(())
        })
    }

    /// Changes a container with `f`, in one transaction; returns the new record.
    pub fn modify(
        &self,
        ns: &str,
        id: &str,
        f: impl FnOnce(&mut Container),
    ) -> Result<Container, RecordError> {
        self.0.update(|t| {
            let mut c: Container =
                t.get(Table::Containers, &key(ns, id))?
                    .ok_or_else(|| RecordError::NotFound {
                        kind: "container",
                        name: id.into(),
                    })?;
            f(&mut c);
            t.put(Table::Containers, &key(ns, id), &c)?;
            Ok(c)
        })
    }

    /// Removes a record.
    pub fn remove(&self, ns: &str, id: &str) -> Result<(), RecordError> {
        self.0
            .update(|t| t.delete(Table::Containers, &key(ns, id)).map(drop))
            .map_err(RecordError::from)
    }
}

/// A named volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
}

/// Named volumes: directories under `<root>/volumes/<ns>/<name>/_data` that
/// outlive the containers using them.
pub struct Volumes<'a> {
    /// The store.
    pub meta: &'a Meta,
    /// `<root>/volumes`.
    pub dir: &'a Path,
}

impl Volumes<'_> {
    /// The directory a volume's data lives in.
    pub fn data_dir(&self, ns: &str, name: &str) -> PathBuf {
        self.dir.join(ns).join(name).join("_data")
    }

    /// Creates a volume, or returns the existing one.
    pub fn create(&self, ns: &str, name: &str) -> Result<Volume, RecordError> {
        if !berth_rules::id::is_name(name) {
            return Err(RecordError::InvalidName {
                kind: "volume",
                name: name.into(),
            });
        }
        let dir = self.data_dir(ns, name);
        std::fs::create_dir_all(&dir).map_err(|source| RecordError::Io {
            what: "create volume directory",
            path: dir.clone(),
            source,
        })?;
        self.meta.update(|t| {
            if let Some(v) = t.get::<Volume>(Table::Volumes, &key(ns, name))? {
                return Ok(v);
            }
            let v = Volume {
                name: name.into(),
                created_ms: berth_rules::time::now_ms(),
            };
            t.put(Table::Volumes, &key(ns, name), &v)?;
            Ok(v)
        })
    }

    /// A namespace's volumes.
    pub fn list(&self, ns: &str) -> Result<Vec<Volume>, RecordError> {
        Ok(self
            .meta
            .list::<Volume>(Table::Volumes, &format!("{ns}/"))?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Removes a volume and its data; refused while a container mounts it.
    pub fn remove(&self, ns: &str, name: &str) -> Result<(), RecordError> {
        if let Some(c) = Containers(self.meta).list(ns)?.into_iter().find(|c| {
            c.mounts
                .iter()
                .any(|m| m.kind == "volume" && m.source == name)
        }) {
            return Err(RecordError::InUse {
                name: name.into(),
                container: c.id,
            });
        }
        let had = self
            .meta
            .update(|t| t.delete(Table::Volumes, &key(ns, name)))?;
        if !had {
            return Err(RecordError::NotFound {
                kind: "volume",
                name: name.into(),
            });
        }
        let dir = self.dir.join(ns).join(name);
        std::fs::remove_dir_all(&dir).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(RecordError::Io {
                    what: "remove volume",
                    path: dir,
                    source: e,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_records_and_volumes_in_use() {
        assert!(berth_rules::id::is_name("web-1") && berth_rules::id::is_name("a.b_c"));
        assert!(
            !berth_rules::id::is_name("")
                && !berth_rules::id::is_name("-x")
                && !berth_rules::id::is_name("a/b")
                && !berth_rules::id::is_name("..")
        );
        let d = std::env::temp_dir().join(format!("berth-records-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let meta = Meta::open(&d.join("m.redb")).unwrap();
        let c = Container {
            log_max_size: 0,
            log_max_files: 0,
            image_target: None,
            id: "web".into(),
            image: "docker.io/library/busybox:latest".into(),
            spec: serde_json::json!({}),
            snapshot: "container-web".into(),
            runtime: String::new(),
            labels: BTreeMap::new(),
            created_ms: 1,
            tty: false,
            stdin: false,
            auto_remove: false,
            mounts: vec![MountRecord {
                kind: "volume".into(),
                source: "data".into(),
                destination: "/data".into(),
                read_only: false,
            }],
            network: "none".into(),
            ports: Vec::new(),
            started_ms: None,
            exit: None,
            log_path: String::new(),
        };
        let cs = Containers(&meta);
        cs.insert("default", &c).unwrap();
        assert!(matches!(
            cs.insert("default", &c),
            Err(RecordError::Exists { .. })
        ));
        cs.insert("other", &c).unwrap();
        let c2 = cs
            .modify("default", "web", |c| {
                c.exit = Some(Exit {
                    oom_killed: false,
                    status: 3,
                    at_ms: 2,
                })
            })
            .unwrap();
        assert_eq!(cs.get("default", "web").unwrap(), c2);
        assert_eq!(cs.all().unwrap().len(), 2);
        let vols = Volumes {
            meta: &meta,
            dir: &d.join("volumes"),
        };
        vols.create("default", "data").unwrap();
        std::fs::write(vols.data_dir("default", "data").join("f"), b"x").unwrap();
        assert!(matches!(
            vols.remove("default", "data"),
            Err(RecordError::InUse { .. })
        ));
        cs.remove("default", "web").unwrap();
        vols.remove("default", "data").unwrap();
        assert!(!d.join("volumes/default/data").exists());
        assert!(matches!(
            vols.remove("default", "data"),
            Err(RecordError::NotFound { .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
