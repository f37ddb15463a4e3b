//! Images: named records pointing at a manifest or index in the content
//! store; importing them from archives (OCI image layout, `docker save`);
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

    /// Imports every image of an archive: an OCI image layout (`oci-layout`,
    /// `index.json`, `blobs/`) or a `docker save` tar (`manifest.json`).
    /// Names come from the archive (containerd's `io.containerd.image.name`,
    /// a full `org.opencontainers.image.ref.name`, docker's RepoTags); a bare
    /// tag gets `base_name`. Returns the images recorded.
    pub fn import(
        &self,
        ns: &str,
        r: impl Read,
        base_name: Option<&str>,
    ) -> Result<Vec<Image>, ImageError> {
        let mut ar = tar::Archive::new(r);
        // Every file is stored as content; small JSON files are also kept to
        // read the layout afterwards (their order in the tar is arbitrary).
        let mut files: HashMap<String, Digest> = HashMap::new();
        let mut small: HashMap<String, Vec<u8>> = HashMap::new();
        for e in ar.entries().map_err(ImageError::Archive)? {
            let mut e = e.map_err(ImageError::Archive)?;
            if !e.header().entry_type().is_file() {
                continue;
            }
            let path = String::from_utf8_lossy(&e.path_bytes())
                .trim_start_matches("./")
                .to_string();
            if path.ends_with(".json") || path == "oci-layout" {
                let mut v = Vec::new();
                (&mut e)
                    .take(MAX_JSON + 1)
                    .read_to_end(&mut v)
                    .map_err(ImageError::Archive)?;
                if v.len() as u64 > MAX_JSON {
                    return Err(ImageError::Invalid(format!(
                        "archive file {path} is too large"
                    )));
                }
                let info = self.content.write_unknown(&mut v.as_slice())?;
                files.insert(path.clone(), info.digest);
                small.insert(path, v);
            } else {
                let info = self.content.write_unknown(&mut e)?;
                files.insert(path, info.digest);
            }
        }
        // Blobs under blobs/<alg>/<hex> must hash to their names.
        for (path, d) in &files {
            if let Some(rest) = path.strip_prefix("blobs/") {
                let named = rest.replacen('/', ":", 1);
                if named.parse::<Digest>().ok().as_ref() != Some(d) {
                    return Err(ImageError::Invalid(format!(
                        "archive blob {path} has digest {d}"
                    )));
                }
            }
        }
        let images = if let Some(idx) = small.get("index.json") {
            self.import_oci(idx, base_name)?
        } else if let Some(m) = small.get("manifest.json") {
            self.import_docker(m, &files, &small)?
        } else {
            return Err(ImageError::Invalid(
                "archive has neither index.json (OCI layout) nor manifest.json (docker save)"
                    .into(),
            ));
        };
        // Nothing is recorded unless every image is whole: a missing blob or
        // a wrong size is found now, not when the image runs.
        for img in &images {
            self.check_complete(&img.name, &img.target)?;
        }
        for img in &images {
            self.put(ns, img)?;
        }
        Ok(images)
    }

    /// Checks that `d` and what it names are here, each of the size its
    /// descriptor says: a manifest's config and layers; of an index, the
    /// manifests it holds (one at least: an archive may carry one platform).
    fn check_complete(&self, name: &str, d: &Descriptor) -> Result<(), ImageError> {
        let blob = |what: &str, b: &Descriptor| -> Result<(), ImageError> {
            let info = self.content.info(&b.digest).map_err(|_| {
                ImageError::Invalid(format!(
                    "image {name}: {what} {} is not in the archive",
                    b.digest
                ))
            })?;
            if info.size != b.size && b.size != 0 {
                return Err(ImageError::Invalid(format!(
                    "image {name}: {what} {}: its descriptor says {} bytes, the blob has {}",
                    b.digest, b.size, info.size
                )));
            }
            Ok(())
        };
        if oci::is_index(&d.media_type) {
            blob("index", d)?;
            let idx: Index = self.read_json(d)?;
            let mut whole = 0;
            let mut first_err = None;
            for m in idx
                .manifests
                .iter()
                .filter(|m| oci::is_manifest(&m.media_type))
            {
                match self.check_complete(name, m) {
                    Ok(()) => whole += 1,
                    Err(e) => first_err = first_err.or(Some(e)),
                }
            }
            return match (whole, first_err) {
                (0, Some(e)) => Err(e),
                (0, None) => Err(ImageError::Invalid(format!(
                    "image {name}: its index lists no manifest"
                ))),
                _ => Ok(()),
            };
        }
        blob("manifest", d)?;
        let m: Manifest = self.read_json(d)?;
        blob("config", &m.config)?;
        for (i, l) in m.layers.iter().enumerate() {
            blob(&format!("layer {}", i + 1), l)?;
        }
        Ok(())
    }

    fn import_oci(&self, idx: &[u8], base_name: Option<&str>) -> Result<Vec<Image>, ImageError> {
        let idx: Index = json("index.json", idx)?;
        let mut out = Vec::new();
        for m in idx.manifests {
            if !self.content.exists(&m.digest) {
                return Err(ImageError::Invalid(format!(
                    "index.json names {}, not in the archive",
                    m.digest
                )));
            }
            let name = if let Some(n) = m.annotations.get("io.containerd.image.name") {
                normalize(n)?
            } else if let Some(r) = m.annotations.get("org.opencontainers.image.ref.name") {
                if r.contains('/') || r.contains(':') {
                    normalize(r)?
                } else {
                    let base = base_name.ok_or_else(|| {
                        ImageError::Invalid(format!(
                            "the archive names its image only by the tag {r:?}: give a base name"
                        ))
                    })?;
                    normalize(&format!("{base}:{r}"))?
                }
            } else if let Some(base) = base_name {
                normalize(base)?
            } else {
                return Err(ImageError::Invalid(
                    "the archive's index has an unnamed image: give a name".into(),
                ));
            };
            let mut target = m;
            target.annotations.clear();
            target.platform = None;
            out.push(Image {
                name,
                target,
                created: berth_rules::time::now_secs(),
                labels: BTreeMap::new(),
            });
        }
        Ok(out)
    }

    fn import_docker(
        &self,
        manifest: &[u8],
        files: &HashMap<String, Digest>,
        small: &HashMap<String, Vec<u8>>,
    ) -> Result<Vec<Image>, ImageError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Vec<String>,
            layers: Vec<String>,
        }
        let entries: Vec<Entry> = json("manifest.json", manifest)?;
        let mut out = Vec::new();
        for e in entries {
            let file = |p: &str| {
                files.get(p).cloned().ok_or_else(|| {
                    ImageError::Invalid(format!("manifest.json names {p}, not in the archive"))
                })
            };
            let config = file(&e.config)?;
            let config_size = small.get(&e.config).map_or(0, |v| v.len() as u64);
            let mut layers = Vec::new();
            for l in &e.layers {
                let d = file(l)?;
                let size = self.content.info(&d)?.size;
                layers.push(Descriptor {
                    media_type: oci::MT_DOCKER_LAYER.into(),
                    digest: d,
                    size,
                    platform: None,
                    annotations: BTreeMap::new(),
                });
            }
            // docker save has no manifest blob: write the schema2 one it stands for.
            let m = Manifest {
                schema_version: 2,
                media_type: Some(oci::MT_DOCKER_MANIFEST.into()),
                config: Descriptor {
                    media_type: oci::MT_DOCKER_CONFIG.into(),
                    digest: config,
                    size: config_size,
                    platform: None,
                    annotations: BTreeMap::new(),
                },
                layers,
                annotations: BTreeMap::new(),
            };
            let data = serde_json::to_vec(&m).map_err(|e| ImageError::Invalid(e.to_string()))?;
            let d = crate::store::digest::sha256_of(&data);
            self.content.write_all(&d, &data)?;
            let target = Descriptor {
                media_type: oci::MT_DOCKER_MANIFEST.into(),
                digest: d,
                size: data.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            };
            if e.repo_tags.is_empty() {
                return Err(ImageError::Invalid(
                    "a docker archive image has no RepoTags: tag it first".into(),
                ));
            }
            for t in e.repo_tags {
                out.push(Image {
                    name: normalize(&t)?,
                    target: target.clone(),
                    created: berth_rules::time::now_secs(),
                    labels: BTreeMap::new(),
                });
            }
        }
        Ok(out)
    }
}

impl Images {
    /// Writes an OCI image layout archive of `names` to `w`: per image its
    /// manifest for `platform`, config and layers, named in `index.json`
    /// (containerd's `io.containerd.image.name` and the tag as
    /// `org.opencontainers.image.ref.name`). The same archive is a `docker
    /// save` one too, as Docker's since 25: `manifest.json` names each
    /// image's config, tags and layers among the same blobs, so `docker
    /// load` and skopeo's `docker-archive:` read it as well.
    pub fn export(
        &self,
        ns: &str,
        names: &[String],
        platform: &Platform,
        w: impl std::io::Write,
    ) -> Result<(), ImageError> {
        let mut b = tar::Builder::new(w);
        let mut written = std::collections::HashSet::new();
        let mut entries = Vec::new();
        let mut docker = Vec::new();
        let add = |b: &mut tar::Builder<_>,
                   path: &str,
                   data: &mut dyn Read,
                   size: u64|
         -> Result<(), ImageError> {
            let mut h = tar::Header::new_ustar();
            h.set_size(size);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mtime(0);
            b.append_data(&mut h, path, data)
                .map_err(ImageError::Archive)
        };
        for n in names {
            let img = self.get(ns, n)?;
            let (desc, m) = self.manifest(&img, platform)?;
            for d in std::iter::once(&desc)
                .chain(std::iter::once(&m.config))
                .chain(&m.layers)
            {
                if written.insert(d.digest.clone()) {
                    let size = self.content.info(&d.digest)?.size;
                    let mut f = self.content.open_blob(&d.digest)?;
                    let path = format!("blobs/{}/{}", d.digest.algorithm().name(), d.digest.hex());
                    add(&mut b, &path, &mut f, size)?;
                }
            }
            let blob = |d: &Descriptor| {
                format!("blobs/{}/{}", d.digest.algorithm().name(), d.digest.hex())
            };
            docker.push(serde_json::json!({
                "Config": blob(&m.config),
                "RepoTags": [img.name.clone()],
                "Layers": m.layers.iter().map(blob).collect::<Vec<_>>(),
            }));
            let mut e = desc.clone();
            e.annotations
                .insert("io.containerd.image.name".into(), img.name.clone());
            if let Some(tag) = Reference::parse(&img.name).ok().and_then(|r| r.tag) {
                e.annotations
                    .insert("org.opencontainers.image.ref.name".into(), tag);
            }
            entries.push(e);
        }
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        add(&mut b, "oci-layout", &mut &layout[..], layout.len() as u64)?;
        let index = Index {
            schema_version: 2,
            media_type: Some(oci::MT_OCI_INDEX.into()),
            manifests: entries,
            annotations: BTreeMap::new(),
        };
        let data = serde_json::to_vec(&index).map_err(|e| ImageError::Invalid(e.to_string()))?;
        add(
            &mut b,
            "index.json",
            &mut data.as_slice(),
            data.len() as u64,
        )?;
        let data = serde_json::to_vec(&docker).map_err(|e| ImageError::Invalid(e.to_string()))?;
        add(
            &mut b,
            "manifest.json",
            &mut data.as_slice(),
            data.len() as u64,
        )?;
        b.into_inner()
            .map_err(ImageError::Archive)?
            .flush()
            .map_err(ImageError::Archive)
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
