//! Leases, as containerd's: a named record in a namespace that keeps content
//! and snapshots from garbage collection while a client works with them
//! (between fetching blobs and recording an image, say), until it is
//! deleted or its expiry passes. A leased manifest or index keeps what it
//! references too, as an image would.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::store::digest::Digest;
use crate::store::images::{ImageError, Images};
use crate::store::meta::Table;
use berth_rules::time::now_secs as now;

/// What a lease holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Resource {
    /// A blob, by digest.
    Content(Digest),
    /// A snapshot of the lease's namespace, by key (with its parents).
    Snapshot(String),
}

impl Resource {
    /// From the API's `type` ("content" or "snapshots") and `id`.
    pub fn parse(kind: &str, id: &str) -> Result<Resource, ImageError> {
        match kind {
            "content" => id
                .parse()
                .map(Resource::Content)
                .map_err(|e: crate::store::digest::DigestError| ImageError::Invalid(e.to_string())),
            "snapshots" | "snapshot" if !id.is_empty() && !id.contains('/') => {
                Ok(Resource::Snapshot(id.into()))
            }
            "snapshots" | "snapshot" => Err(ImageError::Invalid(format!(
                "lease resource: snapshot key {id:?} is not a key"
            ))),
            other => Err(ImageError::Invalid(format!(
                "lease resource type {other:?}: must be content or snapshots"
            ))),
        }
    }

    /// The API's (`type`, `id`).
    pub fn to_pair(&self) -> (&'static str, String) {
        match self {
            Resource::Content(d) => ("content", d.to_string()),
            Resource::Snapshot(k) => ("snapshots", k.clone()),
        }
    }
}

/// A lease record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Its id, unique in its namespace.
    pub id: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// When it was made (seconds since the epoch).
    pub created: u64,
    /// When it stops holding anything (seconds since the epoch).
    pub expires: Option<u64>,
    /// What it holds.
    pub resources: BTreeSet<Resource>,
}

impl Lease {
    /// True once its expiry has passed at `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

fn key(ns: &str, id: &str) -> String {
    format!("{ns}/{id}")
}

/// What the live leases of every namespace hold: blobs, and snapshots as
/// `<namespace>/<key>`.
#[derive(Debug, Default)]
pub struct Held {
    /// Leased blobs.
    pub blobs: Vec<Digest>,
    /// Leased snapshots.
    pub snapshots: HashSet<String>,
}

impl Images {
    /// Makes a lease; an empty `id` gets a generated one. `expire_seconds`
    /// of 0 means it holds until deleted.
    pub fn lease_create(
        &self,
        ns: &str,
        id: &str,
        labels: BTreeMap<String, String>,
        expire_seconds: u64,
    ) -> Result<Lease, ImageError> {
        let created = now();
        let id = if id.is_empty() {
            let n = self.meta.update(|t| t.next("leases"))?;
            format!("lease-{created}-{n}")
        } else {
            id.to_string()
        };
        if !berth_rules::id::is_lease_id(&id) {
            return Err(ImageError::Invalid(format!(
                "lease id {id:?}: 1 to 76 of [A-Za-z0-9._-]"
            )));
        }
        let lease = Lease {
            id: id.clone(),
            labels,
            created,
            expires: (expire_seconds > 0).then(|| created.saturating_add(expire_seconds)),
            resources: BTreeSet::new(),
        };
        self.meta.update(|t| {
            if t.get::<Lease>(Table::Leases, &key(ns, &id))?.is_some() {
                return Err(ImageError::LeaseExists(id.clone()));
            }
            t.put(Table::Leases, &key(ns, &id), &lease)?;
            Ok(())
        })?;
        Ok(lease)
    }

    /// Deletes a lease; what it held is collected by the next collection.
    pub fn lease_delete(&self, ns: &str, id: &str) -> Result<(), ImageError> {
        self.meta.update(|t| {
            if !t.delete(Table::Leases, &key(ns, id))? {
                return Err(ImageError::LeaseNotFound(id.into()));
            }
            Ok(())
        })
    }

    /// The leases of `ns`, expired ones included until a collection drops them.
    pub fn lease_list(&self, ns: &str) -> Result<Vec<Lease>, ImageError> {
        Ok(self
            .meta
            .list::<Lease>(Table::Leases, &format!("{ns}/"))?
            .into_iter()
            .map(|(_, l)| l)
            .collect())
    }

    /// One lease.
    pub fn lease_get(&self, ns: &str, id: &str) -> Result<Lease, ImageError> {
        self.meta
            .get::<Lease>(Table::Leases, &key(ns, id))?
            .ok_or_else(|| ImageError::LeaseNotFound(id.into()))
    }

    /// Adds (`add`) or removes a resource of a lease. The resource need not
    /// exist yet: a lease taken before a download protects what arrives.
    pub fn lease_resource(
        &self,
        ns: &str,
        id: &str,
        r: Resource,
        add: bool,
    ) -> Result<(), ImageError> {
        self.meta.update(|t| {
            let k = key(ns, id);
            let mut l: Lease = t
                .get(Table::Leases, &k)?
                .ok_or_else(|| ImageError::LeaseNotFound(id.into()))?;
            if add {
                l.resources.insert(r.clone());
            } else {
                l.resources.remove(&r);
            }
            t.put(Table::Leases, &k, &l)?;
            Ok(())
        })
    }

    /// What live leases hold; expired leases are deleted on the way. Called
    /// by the collector while it holds the GC lock.
    pub(crate) fn leases_held(&self) -> Result<Held, ImageError> {
        let now = now();
        let mut held = Held::default();
        let mut expired = Vec::new();
        for (k, l) in self.meta.list::<Lease>(Table::Leases, "")? {
            if l.expired(now) {
                expired.push(k);
                continue;
            }
            let ns = k.split_once('/').map_or("", |(ns, _)| ns);
            for r in l.resources {
                match r {
                    Resource::Content(d) => held.blobs.push(d),
                    Resource::Snapshot(s) => {
                        held.snapshots.insert(key(ns, &s));
                    }
                }
            }
        }
        if !expired.is_empty() {
            self.meta.update(|t| {
                for k in &expired {
                    t.delete(Table::Leases, k)?;
                }
                Ok::<(), ImageError>(())
            })?;
        }
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resources_and_expiry() {
        assert!(
            berth_rules::id::is_lease_id("pull-1.tmp_x")
                && !berth_rules::id::is_lease_id("")
                && !berth_rules::id::is_lease_id("a/b")
        );
        assert!(!berth_rules::id::is_lease_id(&"x".repeat(77)));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Resource::parse("content", &d).unwrap();
        assert_eq!(r.to_pair(), ("content", d.clone()));
        assert_eq!(
            Resource::parse("snapshots", "k1").unwrap(),
            Resource::Snapshot("k1".into())
        );
        assert!(Resource::parse("content", "sha256:xyz").is_err());
        assert!(Resource::parse("snapshots", "ns/k").is_err());
        assert!(Resource::parse("images", "x").is_err());
        let l = Lease {
            id: "l".into(),
            labels: BTreeMap::new(),
            created: 100,
            expires: Some(160),
            resources: BTreeSet::new(),
        };
        assert!(!l.expired(159) && l.expired(160));
    }

    #[test]
    fn leases_are_per_namespace_and_hold_until_deleted_or_expired() {
        let dir = std::env::temp_dir().join(format!("berth-leases-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Images::open(&dir).unwrap();
        let l = s.lease_create("a", "", BTreeMap::new(), 0).unwrap();
        assert!(l.id.starts_with("lease-") && l.expires.is_none());
        assert!(matches!(
            s.lease_create("a", &l.id, BTreeMap::new(), 0),
            Err(ImageError::LeaseExists(_))
        ));
        s.lease_create("b", &l.id, BTreeMap::new(), 0).unwrap();
        let d: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        s.lease_resource("a", &l.id, Resource::Content(d.clone()), true)
            .unwrap();
        s.lease_resource("a", &l.id, Resource::Snapshot("k".into()), true)
            .unwrap();
        let held = s.leases_held().unwrap();
        assert_eq!(held.blobs, vec![d.clone()]);
        assert!(held.snapshots.contains("a/k"));
        s.lease_resource("a", &l.id, Resource::Snapshot("k".into()), false)
            .unwrap();
        assert!(s.leases_held().unwrap().snapshots.is_empty());
        s.lease_delete("a", &l.id).unwrap();
        assert!(matches!(
            s.lease_delete("a", &l.id),
            Err(ImageError::LeaseNotFound(_))
        ));
        assert_eq!(s.lease_list("b").unwrap().len(), 1);
        // An expired lease holds nothing and is dropped.
        let e = s.lease_create("b", "short", BTreeMap::new(), 1).unwrap();
        s.meta
            .update(|t| {
                let mut old = e.clone();
                old.expires = Some(1);
                t.put(Table::Leases, "b/short", &old)?;
                Ok::<(), ImageError>(())
            })
            .unwrap();
        s.lease_resource("b", "short", Resource::Content(d), true)
            .unwrap();
        assert!(s.leases_held().unwrap().blobs.is_empty());
        assert!(s.lease_get("b", "short").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
