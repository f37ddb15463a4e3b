//! Images: named records pointing at a manifest or index in the content
//! store; importing them from archives and exporting them (`archive`);
//! unpacking them into committed snapshots, one per layer, keyed by chain id.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::store::content::{ContentError, ContentStore};
use crate::store::digest::Digest;
use crate::store::meta::{Meta, MetaError, Table};
use crate::store::oci::{self, Compression, Descriptor, ImageConfig, Index, Manifest, Platform};
use crate::store::reference::Reference;
use crate::store::snapshot::{SnapshotError, Snapshotter};
use crate::store::unpack::{self, UnpackError};

mod archive;

/// Manifests, indexes and configs are small; a larger one is refused.
const MAX_JSON: u64 = 4 << 20;

/// An image operation failure.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image has that name.
    #[error("image {0} not found")]
    NotFound(String),
    /// The input is not a usable image or archive.
    #[error("{0}")]
    Invalid(String),
    /// No manifest in the index is for the wanted platform.
    #[error("image {image}: no manifest for platform {platform}")]
    NoPlatform {
        /// The image.
        image: String,
        /// The platform asked for.
        platform: String,
    },
    /// A layer's uncompressed digest is not the one its config names.
    #[error("layer {layer}: uncompressed digest {actual}, but the image config says {expected}")]
    DiffId {
        /// The layer blob.
        layer: Digest,
        /// From the config.
        expected: Digest,
        /// Computed.
        actual: Digest,
    },
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The snapshotter failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A layer could not be applied.
    #[error("layer {layer}: {source}")]
    Unpack {
        /// The layer blob.
        layer: Digest,
        /// Why.
        source: UnpackError,
    },
    /// Reading an archive failed.
    #[error("read archive: {0}")]
    Archive(std::io::Error),
    /// No lease has that id.
    #[error("lease {0} not found")]
    LeaseNotFound(String),
    /// A lease with that id exists.
    #[error("lease {0} already exists")]
    LeaseExists(String),
    /// A registry failed a request: what was asked, why, and how.
    #[error("{what}: {why}")]
    Registry {
        /// `fetch manifest docker.io/library/busybox:latest`.
        what: String,
        /// The registry's or the transport's words, with their causes.
        why: String,
        /// What kind of failure it was.
        kind: RegistryFailure,
    },
}

/// How a registry request failed, so a client gets the right gRPC code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryFailure {
    /// Not reachable: connection, TLS, timeout, or a 5xx answer.
    Unreachable,
    /// The registry has no such manifest, blob or repository.
    NotFound,
    /// Credentials missing, wrong or refused.
    Unauthorized,
    /// Anything else the registry answered (a spec violation, a bad request).
    Other,
}

/// An image record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Its normalized name (`docker.io/library/busybox:latest`).
    pub name: String,
    /// Its manifest or index.
    pub target: Descriptor,
    /// When it was recorded (seconds since the epoch).
    pub created: u64,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn json<T: serde::de::DeserializeOwned>(what: &str, data: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(data).map_err(|e| ImageError::Invalid(format!("{what}: {e}")))
}

/// The image store: content, metadata and snapshots together.
pub struct Images {
    /// Blobs.
    pub content: ContentStore,
    /// Records.
    pub meta: Arc<Meta>,
    /// Layers and container filesystems.
    pub snapshots: Snapshotter,
    /// Shared by work that adds content or snapshots (import, pull,
    /// unpack); exclusive for garbage collection.
    pub gc_lock: tokio::sync::RwLock<()>,
    /// Scratch space on the store's filesystem.
    pub(crate) tmp: std::path::PathBuf,
    /// One unpack per layer at a time: concurrent first runs of an image
    /// wait for the one unpacking a layer, then find it committed (they
    /// used to share its scratch snapshot and remove it under each other).
    unpacking: std::sync::Mutex<std::collections::HashMap<String, Arc<std::sync::Mutex<()>>>>,
}

impl Images {
    /// Opens (creating) a store under `root`.
    pub fn open(root: &Path) -> Result<Images, ImageError> {
        crate::perm::dir(root, crate::perm::ROOT).map_err(ImageError::Archive)?;
        let content = ContentStore::open(&root.join("content"))?;
        let meta = Arc::new(Meta::open(&root.join("meta.redb"))?);
        let snapshots = Snapshotter::new(&root.join("overlay"), meta.clone())?;
        // The metadata store is ours now (a second berthd fails above):
        // what an earlier one left half-written goes.
        content.clean_stale(std::time::Duration::from_secs(24 * 3600));
        let tmp = root.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        Ok(Images {
            content,
            meta,
            snapshots,
            gc_lock: tokio::sync::RwLock::new(()),
            unpacking: Default::default(),
            tmp: {
                std::fs::create_dir_all(&tmp).map_err(ImageError::Archive)?;
                tmp
            },
        })
    }

    /// The images of a namespace, by name.
    pub fn list(&self, ns: &str) -> Result<Vec<Image>, ImageError> {
        Ok(self
            .meta
            .list::<Image>(Table::Images, &format!("{ns}/"))?
            .into_iter()
            .map(|(_, i)| i)
            .collect())
    }

    /// One image, by (normalized) name.
    pub fn get(&self, ns: &str, name: &str) -> Result<Image, ImageError> {
        let name = normalize(name)?;
        self.meta
            .get(Table::Images, &format!("{ns}/{name}"))?
            .ok_or(ImageError::NotFound(name))
    }

    /// Records (or replaces) an image; an image the name held before
    /// becomes dangling when no other name holds it (see `lifecycle`).
    pub fn put(&self, ns: &str, image: &Image) -> Result<(), ImageError> {
        self.meta
            .update(|t| crate::store::lifecycle::put_in(t, ns, image))
    }

    /// Removes an image record (its content stays until garbage collection).
    pub fn remove(&self, ns: &str, name: &str) -> Result<(), ImageError> {
        let name = normalize(name)?;
        let key = format!("{ns}/{name}");
        if !self.meta.update(|t| t.delete(Table::Images, &key))? {
            return Err(ImageError::NotFound(name));
        }
        Ok(())
    }

    /// Gives an image a second name.
    pub fn tag(&self, ns: &str, source: &str, target: &str) -> Result<Image, ImageError> {
        let mut img = self.get(ns, source)?;
        img.name = normalize(target)?;
        img.created = berth_rules::time::now_secs();
        self.put(ns, &img)?;
        Ok(img)
    }

    /// The image config (`config.Entrypoint`, `Cmd`, `Env`, …) of `image`
    /// for `platform`, as JSON.
    pub fn config(
        &self,
        image: &Image,
        platform: &Platform,
    ) -> Result<serde_json::Value, ImageError> {
        let (_, m) = self.manifest(image, platform)?;
        self.read_json(&m.config)
    }

    /// The history of `image` for `platform`, oldest first: each config
    /// history entry with the size of the layer it made (layers go to the
    /// entries without `empty_layer`, in order), and the config's digest.
    pub fn history(
        &self,
        image: &Image,
        platform: &Platform,
    ) -> Result<(String, Vec<HistoryStep>), ImageError> {
        let (_, m) = self.manifest(image, platform)?;
        let config: serde_json::Value = self.read_json(&m.config)?;
        Ok((
            m.config.digest.to_string(),
            history_steps(&config, &m.layers),
        ))
    }

    pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        d: &Descriptor,
    ) -> Result<T, ImageError> {
        let data = self.content.read_all(&d.digest, MAX_JSON)?;
        json(&format!("{} {}", d.media_type, d.digest), &data)
    }

    /// The manifest of `image` for `platform` (choosing from an index).
    pub fn manifest(
        &self,
        image: &Image,
        platform: &Platform,
    ) -> Result<(Descriptor, Manifest), ImageError> {
        let mut d = image.target.clone();
        for _ in 0..4 {
            if oci::is_manifest(&d.media_type) {
                let m: Manifest = self.read_json(&d)?;
                return Ok((d, m));
            }
            if !oci::is_index(&d.media_type) {
                return Err(ImageError::Invalid(format!(
                    "image {}: unsupported media type {}",
                    image.name, d.media_type
                )));
            }
            let idx: Index = self.read_json(&d)?;
            d = idx
                .manifests
                .into_iter()
                .find(|m| {
                    m.platform.as_ref().is_some_and(|p| platform.matches(p))
                        // An entry without a platform (a single-image layout).
                        || (m.platform.is_none() && oci::is_manifest(&m.media_type))
                })
                .ok_or_else(|| ImageError::NoPlatform {
                    image: image.name.clone(),
                    platform: platform.to_string(),
                })?;
        }
        Err(ImageError::Invalid(format!(
            "image {}: indexes nested too deep",
            image.name
        )))
    }

    /// Unpacks `image` into committed snapshots (one per layer, named by
    /// chain id; layers already there are reused). Returns the top chain id,
    /// the parent for a container's active snapshot.
    pub fn unpack(
        &self,
        ns: &str,
        image: &Image,
        platform: &Platform,
    ) -> Result<Digest, ImageError> {
        let (_, m) = self.manifest(image, platform)?;
        let config: ImageConfig = self.read_json(&m.config)?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != m.layers.len() {
            return Err(ImageError::Invalid(format!(
                "image {}: {} layers but {} diff ids in its config",
                image.name,
                m.layers.len(),
                diff_ids.len()
            )));
        }
        let chain = oci::chain_ids(diff_ids);
        let mut parent: Option<String> = None;
        for ((layer, diff_id), chain_id) in m.layers.iter().zip(diff_ids).zip(&chain) {
            let name = chain_id.to_string();
            if !self.snapshots.exists(ns, &name)? {
                let key = format!("{ns}/{name}");
                let lock = self
                    .unpacking
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(key.clone())
                    .or_default()
                    .clone();
                let done = {
                    let _one = lock.lock().unwrap_or_else(|e| e.into_inner());
                    if self.snapshots.exists(ns, &name)? {
                        Ok(())
                    } else {
                        self.apply_layer(ns, layer, diff_id, &name, parent.as_deref())
                    }
                };
                // The last one out forgets the lock.
                let mut map = self.unpacking.lock().unwrap_or_else(|e| e.into_inner());
                if Arc::strong_count(&lock) == 2 {
                    map.remove(&key);
                }
                drop(map);
                done?;
            }
            parent = Some(name);
        }
        chain
            .last()
            .cloned()
            .ok_or_else(|| ImageError::Invalid(format!("image {} has no layers", image.name)))
    }

    fn apply_layer(
        &self,
        ns: &str,
        layer: &Descriptor,
        diff_id: &Digest,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), ImageError> {
        let compression = oci::layer_compression(&layer.media_type).ok_or_else(|| {
            ImageError::Invalid(format!(
                "layer {}: unsupported media type {}",
                layer.digest, layer.media_type
            ))
        })?;
        let key = format!("extract-{}-{name}", std::process::id());
        // A leftover from an interrupted unpack is discarded first.
        if self.snapshots.exists(ns, &key)? {
            self.snapshots.remove(ns, &key)?;
        }
        self.snapshots.prepare(ns, &key, parent)?;
        let result = (|| {
            let info = self.snapshots.stat(ns, &key)?;
            let blob = self.content.open_blob(&layer.digest)?;
            let r: Box<dyn Read> = match compression {
                Compression::None => Box::new(blob),
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
                Compression::Zstd => {
                    Box::new(zstd::stream::read::Decoder::new(blob).map_err(ImageError::Archive)?)
                }
            };
            // The layers below, for hard links to their files.
            let lowers = self.snapshots.layer_dirs(ns, &key)?.split_off(1);
            let actual = unpack::apply_over(&self.snapshots.fs_dir(&info), &lowers, r).map_err(
                |source| ImageError::Unpack {
                    layer: layer.digest.clone(),
                    source,
                },
            )?;
            if &actual != diff_id {
                return Err(ImageError::DiffId {
                    layer: layer.digest.clone(),
                    expected: diff_id.clone(),
                    actual,
                });
            }
            self.snapshots.commit(ns, name, &key)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = self.snapshots.remove(ns, &key);
        }
        result
    }

    /// The bytes of an image's blobs for `platform` (manifest, config, layers).
    pub fn size(&self, image: &Image, platform: &Platform) -> Result<u64, ImageError> {
        let (d, m) = self.manifest(image, platform)?;
        Ok(blob_bytes(&d, &m))
    }
}

/// One step of an image's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryStep {
    /// Seconds since the epoch (0: unknown).
    pub created: i64,
    /// The instruction.
    pub created_by: String,
    /// Its comment.
    pub comment: String,
    /// The layer it made (0: none).
    pub size: u64,
    /// A config-only step.
    pub empty_layer: bool,
}

/// The config's history with layer sizes matched in order. Layers the
/// history does not account for (a config without history, as umoci
/// writes, or a commit over such a base) come first, one unnamed step each.
pub fn history_steps(config: &serde_json::Value, layers: &[Descriptor]) -> Vec<HistoryStep> {
    let listed = config["history"].as_array().cloned().unwrap_or_default();
    let with_layer = listed
        .iter()
        .filter(|e| !e["empty_layer"].as_bool().unwrap_or(false))
        .count();
    let unlisted = layers.len().saturating_sub(with_layer);
    let mut sizes = layers.iter().map(|l| l.size);
    let mut out: Vec<HistoryStep> = (0..unlisted)
        .map(|_| HistoryStep {
            created: 0,
            created_by: String::new(),
            comment: String::new(),
            size: sizes.next().unwrap_or(0),
            empty_layer: false,
        })
        .collect();
    out.extend(listed.iter().map(|e| {
        let empty = e["empty_layer"].as_bool().unwrap_or(false);
        HistoryStep {
            created: e["created"]
                .as_str()
                .and_then(berth_rules::time::parse_rfc3339)
                .unwrap_or(0),
            created_by: e["created_by"].as_str().unwrap_or("").to_string(),
            comment: e["comment"].as_str().unwrap_or("").to_string(),
            size: if empty { 0 } else { sizes.next().unwrap_or(0) },
            empty_layer: empty,
        }
    }));
    out
}

/// The bytes of a manifest `d` and the blobs it names (config, layers).
pub fn blob_bytes(d: &Descriptor, m: &oci::Manifest) -> u64 {
    d.size + m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>()
}

/// Normalizes an image name, as docker does.
pub fn normalize(name: &str) -> Result<String, ImageError> {
    // A dangling image's record name is its own.
    if crate::store::lifecycle::is_dangling(name) {
        return Ok(name.to_string());
    }
    Reference::parse(name)
        .map(|r| r.to_string())
        .map_err(|e| ImageError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(size: u64) -> Descriptor {
        Descriptor {
            media_type: oci::MT_OCI_LAYER_GZIP.into(),
            digest: crate::store::digest::sha256_of(&size.to_be_bytes()),
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn history_steps_get_their_layers_sizes() {
        let config = serde_json::json!({"history": [
            {"created": "2024-01-02T03:04:05Z", "created_by": "ADD rootfs"},
            {"created_by": "CMD sh", "empty_layer": true},
            {"created_by": "RUN x", "comment": "c"}
        ]});
        let h = history_steps(&config, &[layer(10), layer(20)]);
        let sizes: Vec<u64> = h.iter().map(|s| s.size).collect();
        assert_eq!(sizes, [10, 0, 20]);
        assert_eq!(h[0].created, 1_704_164_645_000_000_000);
        assert!(h[1].empty_layer && h[2].comment == "c");
        // A commit over a base without history: the base's layers first.
        let commit = serde_json::json!({"history": [{"created_by": "berthctl commit"}]});
        let h = history_steps(&commit, &[layer(10), layer(20), layer(30)]);
        let got: Vec<(&str, u64)> = h.iter().map(|s| (s.created_by.as_str(), s.size)).collect();
        assert_eq!(got, [("", 10), ("", 20), ("berthctl commit", 30)]);
    }
}
