//! Garbage collection: content and committed snapshots that no image (in
//! any namespace), no lease and no live snapshot references are removed.
//! Mark from the image records (manifest or index, the manifests of it that
//! are present, their configs and layers, the layers' chain-id snapshots),
//! from what unexpired leases hold (a leased manifest or index as an image
//! target), from the build cache's steps of images still kept, and from
//! every active snapshot or view and its parents; sweep
//! the rest. Work that adds
//! content (a pull, an import) holds the shared side of [`Images::gc_lock`],
//! so a collection never sees its blobs before their image is recorded.

use std::collections::HashSet;

use crate::store::digest::Digest;
use crate::store::images::{ImageError, Images};
use crate::store::meta::Table;
use crate::store::oci::{self, ImageConfig, Index, Manifest};
use crate::store::snapshot::Kind;

/// What a collection removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Blobs removed.
    pub blobs: usize,
    /// Snapshots removed.
    pub snapshots: usize,
    /// Bytes freed (blobs, plus the snapshots' disk use).
    pub bytes: u64,
}

impl Images {
    /// Everything an image references that is present here.
    fn mark_image(
        &self,
        target: &oci::Descriptor,
        blobs: &mut HashSet<Digest>,
        chains: &mut HashSet<String>,
    ) {
        let mut todo = vec![target.clone()];
        while let Some(d) = todo.pop() {
            if !self.content.exists(&d.digest) || !blobs.insert(d.digest.clone()) {
                continue;
            }
            let Ok(data) = self.content.read_all(&d.digest, 4 << 20) else {
                continue;
            };
            if oci::is_index(&d.media_type) {
                if let Ok(idx) = serde_json::from_slice::<Index>(&data) {
                    todo.extend(idx.manifests);
                }
            } else if oci::is_manifest(&d.media_type) {
                let Ok(m) = serde_json::from_slice::<Manifest>(&data) else {
                    continue;
                };
                blobs.insert(m.config.digest.clone());
                blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
                if let Ok(c) = self.content.read_all(&m.config.digest, 4 << 20) {
                    if let Ok(cfg) = serde_json::from_slice::<ImageConfig>(&c) {
                        chains.extend(
                            oci::chain_ids(&cfg.rootfs.diff_ids)
                                .iter()
                                .map(|c| c.to_string()),
                        );
                    }
                }
            }
        }
    }

    /// A descriptor for a leased blob: its media type read from the blob
    /// when it is a small JSON manifest or index, so what it references is
    /// kept; any other blob is kept alone.
    fn sniff(&self, digest: Digest) -> oci::Descriptor {
        let media_type = self
            .content
            .read_all(&digest, 4 << 20)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| match v.get("mediaType").and_then(|m| m.as_str()) {
                Some(m) => Some(m.to_string()),
                None if v.get("manifests").is_some() => Some(oci::MT_OCI_INDEX.into()),
                None if v.get("layers").is_some() => Some(oci::MT_OCI_MANIFEST.into()),
                None => None,
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        oci::Descriptor {
            media_type,
            digest,
            size: 0,
            platform: None,
            annotations: Default::default(),
        }
    }

    /// Collects garbage in every namespace.
    pub fn gc(&self) -> Result<Collected, ImageError> {
        let _exclusive = self.gc_lock.blocking_write();
        let mut blobs = HashSet::new();
        let mut chains = HashSet::new();
        for (_, img) in self
            .meta
            .list::<crate::store::images::Image>(Table::Images, "")?
        {
            self.mark_image(&img.target, &mut blobs, &mut chains);
        }
        let held = self.leases_held()?;
        for d in held.blobs {
            let target = self.sniff(d);
            self.mark_image(&target, &mut blobs, &mut chains);
        }
        // Build steps live while an image built through them does.
        for t in crate::store::build_cache::live_targets(self, &blobs)? {
            self.mark_image(&t, &mut blobs, &mut chains);
        }
        let mut out = Collected::default();
        // Snapshots, per namespace: keep image layers, live ones, and parents.
        let all = self
            .meta
            .list::<crate::store::snapshot::Info>(Table::Snapshots, "")?;
        let mut keep: HashSet<String> = HashSet::new();
        for (k, info) in &all {
            let (ns, key) = k.split_once('/').unwrap_or(("", k));
            // An extraction left by an interrupted unpack is garbage: none
            // runs while the collector holds the lock.
            let live = (info.kind != Kind::Committed && !key.starts_with("extract-"))
                || held.snapshots.contains(k);
            if live || chains.contains(key) {
                let mut cur = Some(key.to_string());
                while let Some(c) = cur {
                    if !keep.insert(format!("{ns}/{c}")) {
                        break;
                    }
                    cur = self.snapshots.stat(ns, &c).ok().and_then(|i| i.parent);
                }
            }
        }
        // Children before parents: repeat until nothing more can go.
        let mut doomed: Vec<&String> = all
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !keep.contains(*k))
            .collect();
        while !doomed.is_empty() {
            let before = doomed.len();
            doomed.retain(|k| {
                let (ns, key) = k.split_once('/').unwrap_or(("", k));
                let size = self.snapshots.usage(ns, key).map(|u| u.0).unwrap_or(0);
                match self.snapshots.remove(ns, key) {
                    Ok(()) => {
                        out.snapshots += 1;
                        out.bytes += size;
                        false
                    }
                    Err(_) => true,
                }
            });
            if doomed.len() == before {
                break;
            }
        }
        for info in self.content.list()? {
            if !blobs.contains(&info.digest) {
                self.content.delete(&info.digest)?;
                out.blobs += 1;
                out.bytes += info.size;
            }
        }
        Ok(out)
    }
}

/// Space used, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Image records.
    pub images: usize,
    /// Blobs and their bytes.
    pub blobs: (usize, u64),
    /// Snapshots and their bytes.
    pub snapshots: (usize, u64),
}

impl Images {
    /// `image prune` (see [`Images::prune_images`]), then a collection.
    pub fn prune(
        &self,
        ns: &str,
        all: bool,
        in_use: &HashSet<Digest>,
    ) -> Result<(Vec<String>, Collected), ImageError> {
        let removed = self.prune_images(ns, all, in_use)?;
        Ok((removed, self.gc()?))
    }

    /// What the store holds (all namespaces share content and layers).
    pub fn disk_usage(&self, ns: &str) -> Result<DiskUsage, ImageError> {
        let blobs = self.content.list()?;
        let mut snaps = (0, 0);
        for (k, _) in self
            .meta
            .list::<crate::store::snapshot::Info>(Table::Snapshots, "")?
        {
            let (sns, key) = k.split_once('/').unwrap_or(("", &k));
            snaps.0 += 1;
            snaps.1 += self.snapshots.usage(sns, key).map(|u| u.0).unwrap_or(0);
        }
        Ok(DiskUsage {
            images: self.list(ns)?.len(),
            blobs: (blobs.len(), blobs.iter().map(|b| b.size).sum()),
            snapshots: snaps,
        })
    }
}
