//! Images made from snapshots: an overlay upper directory diffed into a
//! gzip layer, a config and manifest written over layers, and `commit`
//! (a container's changes over its image as a new image).

use std::collections::BTreeMap;
use std::path::Path;

use crate::store::digest::Digest;
use crate::store::images::{normalize, Image, ImageError, Images};
use crate::store::oci::{self, Descriptor, Manifest, Platform};

/// Hashes what passes through to the inner writer.
struct HashWrite<W> {
    inner: W,
    hasher: crate::store::digest::Hasher,
}

impl<W: std::io::Write> std::io::Write for HashWrite<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Images {
    /// Makes the active snapshot `key` (a container's filesystem over
    /// `base`'s layers) a new image `name`: its upper directory becomes one
    /// more gzip layer on top of `base`'s, as `docker commit` does.
    /// `skip`: files of the upper layer left out (berthd's bound /etc files).
    pub fn commit(
        &self,
        ns: &str,
        key: &str,
        base: &Image,
        name: &str,
        comment: &str,
        skip: &[&str],
    ) -> Result<Image, ImageError> {
        let _shared = self.gc_lock.blocking_read();
        let info = self.snapshots.stat(ns, key)?;
        if info.kind != crate::store::snapshot::Kind::Active {
            return Err(ImageError::Invalid(format!(
                "snapshot {key} is not active: nothing to commit"
            )));
        }
        let name = normalize(name)?;
        let (_, m) = self.manifest(base, &Platform::host())?;
        let mut config: serde_json::Value = self.read_json(&m.config)?;
        let (layer, diff_id) =
            self.layer_of(&self.snapshots.fs_dir(&info), skip, &info.id.to_string())?;
        config["rootfs"]["diff_ids"]
            .as_array_mut()
            .ok_or_else(|| {
                ImageError::Invalid(format!(
                    "image {}: config has no rootfs.diff_ids",
                    base.name
                ))
            })?
            .push(serde_json::Value::String(diff_id.to_string()));
        let entry = serde_json::json!({"created": berth_rules::time::now_rfc3339(),
            "created_by": "berthctl commit", "comment": comment});
        match config.get_mut("history").and_then(|h| h.as_array_mut()) {
            Some(h) => h.push(entry),
            None => config["history"] = serde_json::json!([entry]),
        }
        let mut layers = m.layers.clone();
        layers.push(layer);
        let target = self.write_image(&config, layers)?;
        let img = Image {
            name,
            target,
            created: berth_rules::time::now_secs(),
            labels: BTreeMap::new(),
        };
        self.put(ns, &img)?;
        Ok(img)
    }

    /// The layer of an overlay upper directory (`upper`), gzip-compressed
    /// into the content store; the non-directory paths in `skip` left out.
    /// Returns its descriptor and its DiffID. `tag` names the spool file.
    pub fn layer_of(
        &self,
        upper: &Path,
        skip: &[&str],
        tag: &str,
    ) -> Result<(Descriptor, Digest), ImageError> {
        let spool = self.tmp.join(format!("layer-{}-{tag}", std::process::id()));
        let diff_id = {
            let f = std::fs::File::create(&spool).map_err(ImageError::Archive)?;
            let gz = flate2::write::GzEncoder::new(
                std::io::BufWriter::new(f),
                flate2::Compression::fast(),
            );
            let mut hw = HashWrite {
                inner: gz,
                hasher: crate::store::digest::Hasher::new(crate::store::digest::Algorithm::Sha256),
            };
            let r = crate::store::diff::write_layer(upper, &mut hw, skip)
                .and_then(|()| hw.inner.finish().map(drop));
            if let Err(e) = r {
                let _ = std::fs::remove_file(&spool);
                return Err(ImageError::Archive(e));
            }
            hw.hasher.finish()
        };
        let layer = std::fs::File::open(&spool)
            .map_err(ImageError::Archive)
            .and_then(|mut f| Ok(self.content.write_unknown(&mut f)?));
        let _ = std::fs::remove_file(&spool);
        let layer = layer?;
        Ok((
            Descriptor {
                media_type: oci::MT_OCI_LAYER_GZIP.into(),
                digest: layer.digest,
                size: layer.size,
                platform: None,
                annotations: BTreeMap::new(),
            },
            diff_id,
        ))
    }

    /// Writes an image config and its OCI manifest over `layers` to the
    /// content store; returns the manifest's descriptor.
    pub fn write_image(
        &self,
        config: &serde_json::Value,
        layers: Vec<Descriptor>,
    ) -> Result<Descriptor, ImageError> {
        let cbytes = serde_json::to_vec(config).map_err(|e| ImageError::Invalid(e.to_string()))?;
        let cdigest = crate::store::digest::sha256_of(&cbytes);
        self.content.write_all(&cdigest, &cbytes)?;
        let desc = |media_type: &str, digest: Digest, size: u64| Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::MT_OCI_MANIFEST.into()),
            config: desc(oci::MT_OCI_CONFIG, cdigest, cbytes.len() as u64),
            layers,
            annotations: BTreeMap::new(),
        };
        let mbytes =
            serde_json::to_vec(&manifest).map_err(|e| ImageError::Invalid(e.to_string()))?;
        let mdigest = crate::store::digest::sha256_of(&mbytes);
        self.content.write_all(&mdigest, &mbytes)?;
        Ok(desc(oci::MT_OCI_MANIFEST, mdigest, mbytes.len() as u64))
    }
}
