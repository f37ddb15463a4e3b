//! Creating a container: its record and the OCI spec from the image's
//! config and the request.

use crate::containers::records::{Container, RecordError};
use crate::containers::spec;
use crate::store::images::ImageError;
use crate::store::oci::Platform;
use serde_json::Value;
use std::path::PathBuf;

use super::*;

/// Reads `path` (relative to an image root) from the topmost layer that has
/// it, resolving symlinks inside that layer only; at most 1 MiB.
pub(super) fn layer_file(layers: &[PathBuf], path: &str) -> Option<Vec<u8>> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::io::Read;
    for dir in layers {
        let Ok(d) = std::fs::File::open(dir) else {
            continue;
        };
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        if let Ok(fd) = openat2(&d, path, how) {
            let mut out = Vec::new();
            let f = std::fs::File::from(fd);
            if f.metadata().map(|m| m.is_file()).unwrap_or(false)
                && f.take(1 << 20).read_to_end(&mut out).is_ok()
            {
                return Some(out);
            }
        }
    }
    None
}

/// The lease that holds a container's image (a digest of the id: lease ids
/// are shorter than container names may be).
pub(super) fn image_lease(id: &str) -> String {
    let d = crate::store::digest::sha256_of(id.as_bytes());
    format!("container-{}", &d.hex()[..32])
}

impl Manager {
    /// Holds the container's image (its manifest and all it names) from
    /// collection while the container exists, even when its name goes.
    fn hold_image(
        &self,
        ns: &str,
        id: &str,
        target: &crate::store::oci::Descriptor,
    ) -> Result<(), TaskError> {
        let lease = image_lease(id);
        // A leftover of a container that was never recorded.
        let _ = self.images.lease_delete(ns, &lease);
        self.images
            .lease_create(ns, &lease, Default::default(), 0)?;
        self.images.lease_resource(
            ns,
            &lease,
            crate::store::leases::Resource::Content(target.digest.clone()),
            true,
        )?;
        Ok(())
    }

    /// Records a container: unpacks its image if needed, prepares its
    /// snapshot, generates its spec.
    pub async fn create(&self, ns: &str, o: CreateOptions) -> Result<Container, TaskError> {
        let id = if o.id.is_empty() {
            berth_rules::id::random()
        } else {
            o.id.clone()
        };
        if !berth_rules::id::is_name(&id) {
            return Err(RecordError::InvalidName {
                kind: "container",
                name: id,
            }
            .into());
        }
        if self.records().get(ns, &id).is_ok() {
            return Err(RecordError::Exists {
                kind: "container",
                name: id,
            }
            .into());
        }
        let _g = self.lock(ns, &id).await;
        let network = spec::Network::parse(&o.network)?;
        let images = self.images.clone();
        let (ns2, image_name, record) = (ns.to_string(), o.image.clone(), o.image_record.clone());
        let snapshot = format!("container-{id}");
        let snap2 = snapshot.clone();
        let _shared = self.images.gc_lock.read().await;
        let (image, config, layers) = tokio::task::spawn_blocking(move || {
            let img = match record {
                Some(i) => i,
                None => images.get(&ns2, &image_name)?,
            };
            let platform = Platform::host();
            let chain = images.unpack(&ns2, &img, &platform)?;
            let cfg = images.config(&img, &platform)?;
            if images.snapshots.exists(&ns2, &snap2)? {
                // A leftover of a container record that was never written.
                images.snapshots.remove(&ns2, &snap2)?;
            }
            images
                .snapshots
                .prepare(&ns2, &snap2, Some(&chain.to_string()))?;
            let layers = images.snapshots.layer_dirs(&ns2, &snap2)?;
            Ok::<_, ImageError>((img, cfg, layers))
        })
        .await
        .map_err(|e| TaskError::Invalid(format!("worker: {e}")))??;
        let made = (|| {
            let mut so = o.spec.clone();
            match &network {
                spec::Network::Container(other) => {
                    self.records().get(ns, other)?;
                }
                spec::Network::Cni(name) => {
                    self.networks.get(name)?;
                }
                _ => {}
            }
            if !o.ports.is_empty() && !matches!(network, spec::Network::Cni(_)) {
                return Err(TaskError::Invalid(format!(
                    "ports cannot be published with --net {}: only on a CNI network (bridge or one from network create)",
                    o.network
                )));
            }
            so.network = Some(network.clone());
            so.available_caps = Some(spec::own_capabilities().to_vec());
            if network != spec::Network::Host {
                so.etc_files = Some(self.data_dir(ns, &id));
            }
            so.binds = Vec::new();
            for m in &o.mounts {
                let source = match m.kind.as_str() {
                    "volume" => {
                        self.volumes().create(ns, &m.source)?;
                        self.volumes().data_dir(ns, &m.source)
                    }
                    "bind" => {
                        let p = PathBuf::from(&m.source);
                        if !p.is_absolute() {
                            return Err(TaskError::Invalid(format!(
                                "bind mount source {:?} is not an absolute path",
                                m.source
                            )));
                        }
                        if !p.exists() {
                            // docker creates a missing bind source as a directory.
                            std::fs::create_dir_all(&p).map_err(io("create bind source", &p))?;
                        }
                        p
                    }
                    k => return Err(TaskError::Invalid(format!("unknown mount kind {k:?}"))),
                };
                so.binds.push(spec::Bind {
                    source: source.display().to_string(),
                    destination: m.destination.clone(),
                    read_only: m.read_only,
                });
            }
            let spec = match &o.raw_spec {
                Some(raw) => {
                    let mut v: Value = serde_json::from_str(raw)
                        .map_err(|e| TaskError::Invalid(format!("spec: {e}")))?;
                    if !v.is_object() {
                        return Err(TaskError::Invalid("spec: not a JSON object".into()));
                    }
                    v["root"]["path"] = Value::String("rootfs".into());
                    v
                }
                None => match &o.spec_fn {
                    Some(f) => (f.0)(&ImageContext {
                        config: &config["config"],
                        passwd: layer_file(&layers, "etc/passwd").as_deref(),
                        group: layer_file(&layers, "etc/group").as_deref(),
                    })?,
                    None => spec::generate(
                        &id,
                        &crate::containers::cgroups::container_path(
                            self.paths.cgroup_driver,
                            &self.paths.cgroup_parent,
                            ns,
                            &id,
                        ),
                        &config["config"],
                        &so,
                        layer_file(&layers, "etc/passwd").as_deref(),
                        layer_file(&layers, "etc/group").as_deref(),
                    )?,
                },
            };
            let tty = spec["process"]["terminal"].as_bool().unwrap_or(false);
            let c = Container {
                id: id.clone(),
                image: image.name.clone(),
                image_target: Some(image.target.clone()),
                log_max_size: o.log_rotation.0,
                log_max_files: o.log_rotation.1,
                spec,
                snapshot: snapshot.clone(),
                runtime: o.runtime.clone(),
                labels: o.labels.clone(),
                created_ms: berth_rules::time::now_ms(),
                tty,
                stdin: o.stdin,
                auto_remove: o.auto_remove,
                mounts: o.mounts.clone(),
                network: network.to_string(),
                ports: o.ports.clone(),
                started_ms: None,
                exit: None,
                log_path: o
                    .log_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            };
            let dir = self.data_dir(ns, &id);
            std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
            self.hold_image(ns, &id, &image.target)?;
            self.records().insert(ns, &c)?;
            Ok(c)
        })();
        if made.is_err() {
            let _ = self.images.lease_delete(ns, &image_lease(&id));
            let _ = self.images.snapshots.remove(ns, &snapshot);
            let _ = std::fs::remove_dir_all(self.data_dir(ns, &id));
        }
        let c = made?;
        self.publish(ns, "/containers/create", &id, "", 0, 0);
        Ok(c)
    }
}
