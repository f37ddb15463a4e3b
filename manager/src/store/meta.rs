//! The manager's metadata in one embedded transactional store (redb): records
//! are JSON values under string keys, one table per kind. Every change is one
//! write transaction, so a crash leaves either all of it or none.
//! Namespaced records use keys `<namespace>/<name>`.
//!
//! An I/O error (a full disk) fails the one call and rolls its transaction
//! back; redb then refuses every later call ("previous I/O error"), so the
//! store is reopened: once space is freed, work goes on without a restart.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A metadata store failure.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The database failed.
    #[error("metadata store: {0}")]
    Db(String),
    /// Its file could not be read or written (a full disk): this call
    /// failed and changed nothing; the store is reopened for the next.
    #[error("metadata store: {0}")]
    Io(String),
    /// A stored record does not parse.
    #[error("metadata record {key}: {err}")]
    Corrupt {
        /// Its key.
        key: String,
        /// The parse error.
        err: serde_json::Error,
    },
}

fn db<E: Into<redb::Error>>(e: E) -> MetaError {
    match e.into() {
        e @ (redb::Error::Io(_) | redb::Error::PreviousIo) => MetaError::Io(e.to_string()),
        e => MetaError::Db(e.to_string()),
    }
}

/// The kinds of records.
#[derive(Clone, Copy, Debug)]
pub enum Table {
    /// Snapshots by key.
    Snapshots,
    /// Images by `<namespace>/<name>`.
    Images,
    /// Counters (snapshot ids).
    Counters,
    /// Containers by `<namespace>/<id>`.
    Containers,
    /// Named volumes by `<namespace>/<name>`.
    Volumes,
    /// Leases by `<namespace>/<id>`.
    Leases,
    /// CRI pod sandboxes by id.
    Pods,
    /// What the CRI knows of its containers (metadata, annotations, log
    /// path), by id; the container itself is in `Containers`.
    CriContainers,
    /// Build steps' results by `<namespace>/<cache key>`.
    BuildCache,
}

impl Table {
    fn def(self) -> TableDefinition<'static, &'static str, &'static str> {
        match self {
            Table::Snapshots => TableDefinition::new("snapshots"),
            Table::Images => TableDefinition::new("images"),
            Table::Counters => TableDefinition::new("counters"),
            Table::Containers => TableDefinition::new("containers"),
            Table::Volumes => TableDefinition::new("volumes"),
            Table::Leases => TableDefinition::new("leases"),
            Table::Pods => TableDefinition::new("cri_pods"),
            Table::CriContainers => TableDefinition::new("cri_containers"),
            Table::BuildCache => TableDefinition::new("build_cache"),
        }
    }
}

/// The store.
pub struct Meta {
    /// None between an I/O failure and a reopen that worked.
    db: RwLock<Option<redb::Database>>,
    path: PathBuf,
}

/// One write transaction.
pub struct Txn {
    tx: redb::WriteTransaction,
    /// An I/O error one of its operations met (the store must be reopened).
    io: std::cell::RefCell<Option<String>>,
}

impl Meta {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Meta, MetaError> {
        Ok(Meta {
            db: RwLock::new(Some(redb::Database::create(path).map_err(db)?)),
            path: path.to_path_buf(),
        })
    }

    /// Runs `f` on the database; after an I/O error, drops it and opens it
    /// again (redb's recovery runs), so that the next call starts afresh.
    fn with<R>(
        &self,
        f: impl FnOnce(&redb::Database) -> Result<R, MetaError>,
    ) -> Result<R, MetaError> {
        let r = {
            let g = self.db.read().unwrap_or_else(|e| e.into_inner());
            match g.as_ref() {
                Some(d) => f(d),
                None => Err(MetaError::Io("not open after an I/O error".into())),
            }
        };
        if let Err(MetaError::Io(why)) = &r {
            let mut g = self.db.write().unwrap_or_else(|e| e.into_inner());
            // Dropped first: the file is locked while it is open.
            *g = None;
            match redb::Database::create(&self.path) {
                Ok(d) => *g = Some(d),
                Err(e) => tracing::warn!(error = %e, after = %why, "reopen the metadata store"),
            }
        }
        r
    }

    /// One record.
    pub fn get<T: DeserializeOwned>(&self, t: Table, key: &str) -> Result<Option<T>, MetaError> {
        self.with(|d| {
            let tx = d.begin_read().map_err(db)?;
            let table = match tx.open_table(t.def()) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(db(e)),
            };
            match table.get(key).map_err(db)? {
                Some(v) => parse(key, v.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub fn list<T: DeserializeOwned>(
        &self,
        t: Table,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, MetaError> {
        self.with(|d| {
            let tx = d.begin_read().map_err(db)?;
            let table = match tx.open_table(t.def()) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(db(e)),
            };
            let mut out = Vec::new();
            for item in table.range(prefix..).map_err(db)? {
                let (k, v) = item.map_err(db)?;
                let k = k.value().to_string();
                if !k.starts_with(prefix) {
                    break;
                }
                let v = parse(&k, v.value())?;
                out.push((k, v));
            }
            Ok(out)
        })
    }

    /// Runs `f` in one write transaction, committed when it returns `Ok`
    /// (dropped, so rolled back, when it or the commit fails).
    pub fn update<R, E: From<MetaError>>(
        &self,
        f: impl FnOnce(&mut Txn) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut failed: Option<E> = None;
        let r = self.with(|d| {
            let mut txn = Txn {
                tx: d.begin_write().map_err(db)?,
                io: Default::default(),
            };
            match f(&mut txn) {
                Ok(v) => {
                    txn.tx.commit().map_err(db)?;
                    Ok(Some(v))
                }
                Err(e) => {
                    failed = Some(e);
                    // An I/O error inside: the store is reopened all the same.
                    match txn.io.take() {
                        Some(why) => Err(MetaError::Io(why)),
                        None => Ok(None),
                    }
                }
            }
        });
        match (r, failed) {
            (_, Some(e)) => Err(e),
            (Ok(Some(v)), None) => Ok(v),
            (Err(e), None) => Err(e.into()),
            (Ok(None), None) => {
                Err(MetaError::Db("a transaction ended without a result".into()).into())
            }
        }
    }
}

fn parse<T: DeserializeOwned>(key: &str, v: &str) -> Result<T, MetaError> {
    serde_json::from_str(v).map_err(|err| MetaError::Corrupt {
        key: key.into(),
        err,
    })
}

impl Txn {
    /// A failure, remembered if it is an I/O error.
    fn fail(&self, e: impl Into<redb::Error>) -> MetaError {
        let m = db(e);
        if let MetaError::Io(why) = &m {
            *self.io.borrow_mut() = Some(why.clone());
        }
        m
    }

    /// One record, as this transaction sees it.
    pub fn get<T: DeserializeOwned>(&self, t: Table, key: &str) -> Result<Option<T>, MetaError> {
        let table = self.tx.open_table(t.def()).map_err(|e| self.fail(e))?;
        let v = table.get(key).map_err(|e| self.fail(e))?;
        match v {
            Some(v) => parse(key, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Keys starting with `prefix`.
    pub fn keys(&self, t: Table, prefix: &str) -> Result<Vec<String>, MetaError> {
        let table = self.tx.open_table(t.def()).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(|e| self.fail(e))? {
            let (k, _) = item.map_err(|e| self.fail(e))?;
            let k = k.value().to_string();
            if !k.starts_with(prefix) {
                break;
            }
            out.push(k);
        }
        Ok(out)
    }

    /// Writes a record.
    pub fn put<T: Serialize>(&mut self, t: Table, key: &str, v: &T) -> Result<(), MetaError> {
        let s = serde_json::to_string(v).map_err(|err| MetaError::Corrupt {
            key: key.into(),
            err,
        })?;
        let mut table = self.tx.open_table(t.def()).map_err(|e| self.fail(e))?;
        table.insert(key, s.as_str()).map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Removes a record; whether it was there.
    pub fn delete(&mut self, t: Table, key: &str) -> Result<bool, MetaError> {
        let mut table = self.tx.open_table(t.def()).map_err(|e| self.fail(e))?;
        let had = table.remove(key).map_err(|e| self.fail(e))?.is_some();
        Ok(had)
    }

    /// The next value of counter `name` (1, 2, …).
    pub fn next(&mut self, name: &str) -> Result<u64, MetaError> {
        let n = self.get::<u64>(Table::Counters, name)?.unwrap_or(0) + 1;
        self.put(Table::Counters, name, &n)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_prefixes_and_rollback() {
        let p = std::env::temp_dir().join(format!("berth-meta-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let m = Meta::open(&p).unwrap();
        m.update(|t| -> Result<(), MetaError> {
            t.put(Table::Images, "default/a", &1u32)?;
            t.put(Table::Images, "default/b", &2u32)?;
            t.put(Table::Images, "other/a", &3u32)
        })
        .unwrap();
        let l: Vec<(String, u32)> = m.list(Table::Images, "default/").unwrap();
        assert_eq!(l, [("default/a".into(), 1), ("default/b".into(), 2)]);
        // A failing transaction changes nothing.
        let r: Result<(), MetaError> = m.update(|t| {
            t.delete(Table::Images, "default/a")?;
            Err(MetaError::Db("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(m.get::<u32>(Table::Images, "default/a").unwrap(), Some(1));
        let ids: Vec<u64> = (0..3)
            .map(|_| m.update(|t| t.next("snap")).unwrap())
            .collect();
        assert_eq!(ids, [1, 2, 3]);
        std::fs::remove_file(&p).unwrap();
    }
}
