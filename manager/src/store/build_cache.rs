//! The build cache: a step's result (an image manifest) under the digest of
//! what made it — the parent image, the instruction as expanded, the
//! content of what COPY and ADD read, the build arguments RUN sees. Each
//! entry records the images built through it; the collector keeps an entry
//! (and what its manifest references) while one of those images is kept,
//! and drops it with them.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::store::digest::{sha256_of, Digest};
use crate::store::images::{ImageError, Images};
use crate::store::meta::Table;
use crate::store::oci::Descriptor;

/// A cached step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The step's resulting image manifest.
    pub target: Descriptor,
    /// Manifests of the images whose build used this step.
    #[serde(default)]
    pub owners: Vec<Digest>,
    /// When it was made (seconds since the epoch).
    pub created: u64,
}

/// The key of a step: its parent and what it does.
pub fn key(parent: &Digest, instruction: &str, inputs: &str) -> Digest {
    sha256_of(format!("{parent}\n{instruction}\n{inputs}").as_bytes())
}

fn row(ns: &str, key: &Digest) -> String {
    format!("{ns}/{key}")
}

/// The cached result of `key`, when its manifest is still here.
pub fn get(store: &Images, ns: &str, key: &Digest) -> Result<Option<Entry>, ImageError> {
    let e: Option<Entry> = store.meta.get(Table::BuildCache, &row(ns, key))?;
    Ok(e.filter(|e| store.content.exists(&e.target.digest)))
}

/// Records a step's result.
pub fn put(store: &Images, ns: &str, key: &Digest, target: &Descriptor) -> Result<(), ImageError> {
    let e = Entry {
        target: target.clone(),
        owners: Vec::new(),
        created: berth_rules::time::now_secs(),
    };
    store
        .meta
        .update(|t| t.put(Table::BuildCache, &row(ns, key), &e))?;
    Ok(())
}

/// The entries of `ns`.
pub fn entries(store: &Images, ns: &str) -> Result<Vec<Entry>, ImageError> {
    Ok(store
        .meta
        .list::<Entry>(Table::BuildCache, &format!("{ns}/"))?
        .into_iter()
        .map(|(_, e)| e)
        .collect())
}

/// Records that the image `owner` was built through the steps `keys`.
pub fn own(store: &Images, ns: &str, keys: &[Digest], owner: &Digest) -> Result<(), ImageError> {
    store.meta.update(|t| {
        for k in keys {
            let r = row(ns, k);
            if let Some(mut e) = t.get::<Entry>(Table::BuildCache, &r)? {
                if !e.owners.contains(owner) {
                    e.owners.push(owner.clone());
                }
                t.put(Table::BuildCache, &r, &e)?;
            }
        }
        Ok::<_, ImageError>(())
    })
}

/// For the collector: the manifests of entries one of whose owners is in
/// `live`; entries with none are deleted.
pub fn live_targets(store: &Images, live: &HashSet<Digest>) -> Result<Vec<Descriptor>, ImageError> {
    let mut keep = Vec::new();
    let mut dead = Vec::new();
    for (k, e) in store.meta.list::<Entry>(Table::BuildCache, "")? {
        if e.owners.iter().any(|o| live.contains(o)) {
            keep.push(e.target);
        } else {
            dead.push(k);
        }
    }
    if !dead.is_empty() {
        store.meta.update(|t| {
            for k in &dead {
                t.delete(Table::BuildCache, k)?;
            }
            Ok::<_, ImageError>(())
        })?;
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_any_input() {
        let p = sha256_of(b"parent");
        let a = key(&p, "RUN echo a", "");
        assert_eq!(a, key(&p, "RUN echo a", ""));
        assert_ne!(a, key(&p, "RUN echo b", ""));
        assert_ne!(a, key(&p, "RUN echo a", "X=1"));
        assert_ne!(a, key(&sha256_of(b"other"), "RUN echo a", ""));
    }
}
