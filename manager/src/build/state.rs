//! A stage's image while it is built: its manifest, config and layers;
//! how a stage starts (FROM scratch or an image, pulled when missing), how
//! a step's image is written (and held by the build's lease), and how a
//! step's snapshot becomes a layer and that layer's chain snapshot.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::dockerfile::Instruction;
use super::fs::Mounted;
use super::stage::{step_err, worker, Builder, Run};
use super::BuildError;
use crate::store::digest::Digest;
use crate::store::images::{Image, ImageError};
use crate::store::leases::Resource;
use crate::store::oci::{self, Descriptor, Manifest, Platform};

/// A stage's current image.
#[derive(Clone, Debug)]
pub(super) struct State {
    pub(super) manifest: Descriptor,
    pub(super) config_digest: Digest,
    pub(super) layers: Vec<Descriptor>,
    pub(super) config: Value,
}

impl State {
    /// The config's DiffIDs, in order.
    pub(super) fn diff_ids(&self) -> Vec<Digest> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str()?.parse().ok())
            .collect()
    }

    /// The chain id of its top layer: its snapshot.
    pub(super) fn chain(&self) -> Option<String> {
        oci::chain_ids(&self.diff_ids())
            .last()
            .map(|c| c.to_string())
    }

    /// As an image record without a name (a RUN container's image).
    pub(super) fn image(&self) -> Image {
        Image {
            name: "berth-build".into(),
            target: self.manifest.clone(),
            created: 0,
            labels: BTreeMap::new(),
        }
    }

    /// Its image id, docker's: the config's digest.
    pub(super) fn id(&self) -> String {
        self.config_digest.to_string()
    }
}

impl Builder {
    /// The empty image FROM scratch starts with.
    pub(super) async fn scratch(
        &self,
        run: &Run<'_>,
        platform: &Platform,
    ) -> Result<State, BuildError> {
        let mut config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        });
        if let Some(v) = &platform.variant {
            config["variant"] = json!(v);
        }
        self.write_state(run, config, Vec::new()).await
    }

    /// A FROM image: pulled when missing (or always, with --pull).
    pub(super) async fn image_state(
        &self,
        run: &Run<'_>,
        from: &Instruction,
        base: &str,
        platform: &Platform,
    ) -> Result<State, BuildError> {
        let name = crate::store::images::normalize(base).map_err(|e| step_err(from, e))?;
        let have = self.store.get(run.ns, &name).is_ok();
        if run.req.pull || !have {
            self.say(run, format!("Pulling {name}")).await;
            let mut rx = crate::store::pull::start(
                self.store.clone(),
                run.ns.to_string(),
                crate::store::pull::PullRequest {
                    reference: name.clone(),
                    platform: platform.clone(),
                    unpack: true,
                    auth: None,
                },
                self.registries.clone(),
            )
            .map_err(|e| step_err(from, e))?;
            loop {
                match rx.recv().await {
                    Some(Ok(crate::store::pull::PullEvent::Done(_))) => break,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(step_err(from, format!("pull {name}: {e}"))),
                    None => {
                        return Err(step_err(
                            from,
                            format!("pull {name}: ended without a result"),
                        ))
                    }
                }
            }
        }
        let store = self.store.clone();
        let (ns, p) = (run.ns.to_string(), platform.clone());
        let img = store.get(&ns, &name)?;
        let (desc, m) = store.manifest(&img, &p)?;
        let s = self.load(desc, m).await?;
        // Layers are unpacked once, here: every step starts from them.
        let img2 = s.image();
        let store = self.store.clone();
        if !s.layers.is_empty() {
            tokio::task::spawn_blocking(move || store.unpack(&ns, &img2, &p))
                .await
                .map_err(worker)??;
        }
        self.hold(run, &s.manifest.digest)?;
        Ok(s)
    }

    /// The state of a manifest read from the store.
    pub(super) async fn load(&self, desc: Descriptor, m: Manifest) -> Result<State, BuildError> {
        let config: Value = self.store.read_json(&m.config)?;
        Ok(State {
            manifest: desc,
            config_digest: m.config.digest.clone(),
            layers: m.layers,
            config,
        })
    }

    /// The state of the manifest `desc` names.
    pub(super) async fn load_desc(&self, desc: Descriptor) -> Result<State, BuildError> {
        let m: Manifest = self.store.read_json(&desc)?;
        self.load(desc, m).await
    }

    /// Keeps a step's manifest (and what it names) from collection until
    /// the build ends.
    pub(super) fn hold(&self, run: &Run<'_>, d: &Digest) -> Result<(), ImageError> {
        self.store
            .lease_resource(run.ns, &run.lease, Resource::Content(d.clone()), true)
    }

    /// Writes a config and manifest; the new state, held by the lease.
    pub(super) async fn write_state(
        &self,
        run: &Run<'_>,
        config: Value,
        layers: Vec<Descriptor>,
    ) -> Result<State, BuildError> {
        let store = self.store.clone();
        let (c2, l2) = (config.clone(), layers.clone());
        let manifest = tokio::task::spawn_blocking(move || store.write_image(&c2, l2))
            .await
            .map_err(worker)??;
        self.hold(run, &manifest.digest)?;
        self.load_desc(manifest).await
    }

    /// A fresh active snapshot over the state's top layer, mounted.
    pub(super) fn mount_step(
        &self,
        run: &mut Run<'_>,
        state: &State,
    ) -> Result<(String, Mounted), BuildError> {
        run.mounts += 1;
        let key = format!("build-{}-{}", run.id, run.mounts);
        self.store
            .snapshots
            .prepare(run.ns, &key, state.chain().as_deref())
            .map_err(ImageError::from)?;
        let at = self.work.join(&run.id).join(format!("m{}", run.mounts));
        match Mounted::mount(&self.store, run.ns, &key, &at) {
            Ok(m) => Ok((key, m)),
            Err(e) => {
                let _ = self.store.snapshots.remove(run.ns, &key);
                Err(e)
            }
        }
    }

    /// Diffs the step's snapshot into a layer over `state`; the snapshot
    /// becomes that layer's chain snapshot. `skip` leaves bound mount
    /// points out; `created_by` adds a history entry (None: the last one
    /// already stands for this layer).
    pub(super) async fn layer_step(
        &self,
        run: &Run<'_>,
        state: State,
        key: String,
        skip: &'static [&'static str],
        created_by: Option<String>,
    ) -> Result<State, BuildError> {
        let store = self.store.clone();
        let ns = run.ns.to_string();
        let diff_ids = state.diff_ids();
        let tag = key.clone();
        let made = tokio::task::spawn_blocking(move || {
            let info = store.snapshots.stat(&ns, &key)?;
            let upper = store.snapshots.fs_dir(&info);
            for p in skip {
                let f = upper.join(p);
                if std::fs::symlink_metadata(&f).is_ok_and(|m| m.is_file()) {
                    let _ = std::fs::remove_file(&f);
                }
            }
            let r = store.layer_of(&upper, &[], &tag);
            let (layer, diff_id) = match r {
                Ok(x) => x,
                Err(e) => {
                    let _ = store.snapshots.remove(&ns, &key);
                    return Err(e);
                }
            };
            // The new layer's chain id, as unpacking names its snapshot.
            let mut ids = diff_ids;
            ids.push(diff_id.clone());
            let chain = oci::chain_ids(&ids)
                .pop()
                .expect("one layer at least")
                .to_string();
            if store.snapshots.exists(&ns, &chain)? {
                store.snapshots.remove(&ns, &key)?;
            } else {
                store.snapshots.commit(&ns, &chain, &key)?;
            }
            Ok::<_, ImageError>((layer, diff_id))
        })
        .await
        .map_err(worker)??;
        let (layer, diff_id) = made;
        let mut c = state.config;
        if !c["rootfs"]["diff_ids"].is_array() {
            c["rootfs"] = json!({"type": "layers", "diff_ids": []});
        }
        c["rootfs"]["diff_ids"]
            .as_array_mut()
            .expect("made an array")
            .push(json!(diff_id.to_string()));
        if let Some(by) = created_by {
            push_history(&mut c, &by, false);
        } else {
            c["created"] = json!(berth_rules::time::now_rfc3339());
        }
        let mut layers = state.layers;
        layers.push(layer);
        self.write_state(run, c, layers).await
    }
}

/// The history entry of a step; `empty` for config-only steps.
pub(super) fn push_history(c: &mut Value, created_by: &str, empty: bool) {
    let now = berth_rules::time::now_rfc3339();
    let mut e = json!({"created": now, "created_by": created_by});
    if empty {
        e["empty_layer"] = json!(true);
    }
    match c.get_mut("history").and_then(|h| h.as_array_mut()) {
        Some(h) => h.push(e),
        None => c["history"] = json!([e]),
    }
    c["created"] = json!(now);
}
