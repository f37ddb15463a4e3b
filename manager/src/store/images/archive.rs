//! Image archives: importing an OCI image layout or a `docker save` tar
//! into the store, and exporting images as one archive both read.

use super::*;

impl Images {
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
}
