//! What images, containers, volumes and the build cache hold, as docker's
//! `system df` counts it, and which images containers use (for `rmi`,
//! `image prune -a` and the `images` table).

use std::collections::{BTreeMap, HashMap, HashSet};

use berth_proto::images::{self as pb};

use crate::containers::records::Container;
use crate::containers::tasks::{Manager, Status};
use crate::store::digest::Digest;
use crate::store::images::{ImageError, Images};
use crate::store::lifecycle::is_dangling;
use crate::store::oci::Platform;

/// The content (manifest digest) each container's image names, by container.
pub fn container_images(
    store: &Images,
    ns: &str,
    containers: &[Container],
) -> HashMap<String, Digest> {
    containers
        .iter()
        .filter_map(|c| {
            let d = match &c.image_target {
                Some(t) => t.digest.clone(),
                None => store.get(ns, &c.image).ok()?.target.digest,
            };
            Some((c.id.clone(), d))
        })
        .collect()
}

/// The manifest digests of images containers of `ns` use.
pub fn in_use(store: &Images, ns: &str, containers: &[Container]) -> HashSet<Digest> {
    container_images(store, ns, containers)
        .into_values()
        .collect()
}

/// The blobs (digest → size) of an image for this host's platform.
fn blobs(store: &Images, img: &crate::store::images::Image) -> BTreeMap<Digest, u64> {
    let mut out = BTreeMap::new();
    if let Ok((d, m)) = store.manifest(img, &Platform::host()) {
        out.insert(img.target.digest.clone(), img.target.size);
        out.insert(d.digest.clone(), d.size);
        out.insert(m.config.digest.clone(), m.config.size);
        for l in &m.layers {
            out.insert(l.digest.clone(), l.size);
        }
    }
    out
}

/// Bytes under a directory.
fn dir_bytes(d: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![d.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// `system df` for `ns`.
pub async fn disk_usage(
    manager: &Manager,
    store: &Images,
    ns: &str,
) -> Result<pb::DiskUsageResponse, ImageError> {
    let containers = manager.list(ns).unwrap_or_default();
    let mut running = HashSet::new();
    for c in &containers {
        if manager.status(ns, &c.id).await.0 == Status::Running {
            running.insert(c.id.clone());
        }
    }
    let base = store.disk_usage(ns)?;
    let uses = container_images(store, ns, &containers);
    let images = store.list(ns)?;
    // Images by content: every blob counted once, as docker counts by id.
    let mut by_target: BTreeMap<Digest, (crate::store::images::Image, BTreeMap<Digest, u64>)> =
        BTreeMap::new();
    for i in &images {
        by_target
            .entry(i.target.digest.clone())
            .or_insert_with(|| (i.clone(), blobs(store, i)));
    }
    let mut holders: HashMap<Digest, u64> = HashMap::new();
    for (_, b) in by_target.values() {
        for d in b.keys() {
            *holders.entry(d.clone()).or_default() += 1;
        }
    }
    let active: HashSet<&Digest> = uses.values().collect();
    let mut all_blobs: BTreeMap<&Digest, u64> = BTreeMap::new();
    let mut active_blobs: HashSet<&Digest> = HashSet::new();
    let mut details = Vec::new();
    for (t, (img, b)) in &by_target {
        for (d, s) in b {
            all_blobs.insert(d, *s);
            if active.contains(t) {
                active_blobs.insert(d);
            }
        }
        let users = uses.values().filter(|u| *u == t).count() as u64;
        for i in images.iter().filter(|i| &i.target.digest == t) {
            if is_dangling(&i.name)
                && images
                    .iter()
                    .any(|o| &o.target.digest == t && !is_dangling(&o.name))
            {
                continue;
            }
            details.push(pb::ImageUsage {
                name: i.name.clone(),
                id: store.image_id(img).to_string(),
                created: i.created,
                size: b.values().sum(),
                shared_size: b
                    .iter()
                    .filter(|(d, _)| holders.get(*d).copied().unwrap_or(0) > 1)
                    .map(|(_, s)| s)
                    .sum(),
                containers: users,
            });
        }
    }
    let size: u64 = all_blobs.values().sum();
    let reclaimable: u64 = all_blobs
        .iter()
        .filter(|(d, _)| !active_blobs.contains(*d))
        .map(|(_, s)| s)
        .sum();
    let image_usage = pb::UsageRow {
        total: by_target.len() as u64,
        active: by_target.keys().filter(|t| active.contains(t)).count() as u64,
        size,
        reclaimable,
    };
    let mut cdetails = Vec::new();
    let (mut csize, mut creclaim) = (0, 0);
    for c in &containers {
        let s = store
            .snapshots
            .usage(ns, &c.snapshot)
            .map(|u| u.0)
            .unwrap_or(0);
        csize += s;
        let run = running.contains(&c.id);
        if !run {
            creclaim += s;
        }
        cdetails.push(pb::ContainerUsage {
            id: c.id.clone(),
            image: c.image.clone(),
            command: c.spec["process"]["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
            size: s,
            created_ms: c.created_ms,
            status: if run {
                "running".into()
            } else {
                "stopped".into()
            },
            local_volumes: c.mounts.iter().filter(|m| m.kind == "volume").count() as u64,
        });
    }
    let container_usage = pb::UsageRow {
        total: containers.len() as u64,
        active: running.len() as u64,
        size: csize,
        reclaimable: creclaim,
    };
    let mut vdetails = Vec::new();
    let (mut vsize, mut vreclaim, mut vactive) = (0, 0, 0);
    for v in manager.volumes().list(ns).unwrap_or_default() {
        let links = containers
            .iter()
            .filter(|c| {
                c.mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.source == v.name)
            })
            .count() as u64;
        let s = dir_bytes(&manager.volumes().data_dir(ns, &v.name));
        vsize += s;
        if links == 0 {
            vreclaim += s;
        } else {
            vactive += 1;
        }
        vdetails.push(pb::VolumeUsage {
            name: v.name,
            links,
            size: s,
        });
    }
    let volume_usage = pb::UsageRow {
        total: vdetails.len() as u64,
        active: vactive,
        size: vsize,
        reclaimable: vreclaim,
    };
    // The build cache: its steps' blobs that no image holds.
    let entries = crate::store::build_cache::entries(store, ns)?;
    let mut cache_blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    for e in &entries {
        let img = crate::store::images::Image {
            name: String::new(),
            target: e.target.clone(),
            created: 0,
            labels: Default::default(),
        };
        if let Ok((d, m)) = store.manifest(&img, &Platform::host()) {
            for (dg, s) in std::iter::once((d.digest.clone(), d.size))
                .chain(std::iter::once((m.config.digest.clone(), m.config.size)))
                .chain(m.layers.iter().map(|l| (l.digest.clone(), l.size)))
            {
                if !all_blobs.contains_key(&dg) {
                    cache_blobs.insert(dg, s);
                }
            }
        }
    }
    let cache_size: u64 = cache_blobs.values().sum();
    let (partial_files, partial_bytes) = store.content.partial();
    Ok(pb::DiskUsageResponse {
        image_usage: Some(image_usage),
        container_usage: Some(container_usage),
        volume_usage: Some(volume_usage),
        build_cache_usage: Some(pb::UsageRow {
            total: entries.len() as u64,
            active: 0,
            size: cache_size,
            reclaimable: cache_size,
        }),
        image_details: details,
        container_details: cdetails,
        volume_details: vdetails,
        partial_files: partial_files as u64,
        partial_bytes,
        images: base.images as u64,
        blobs: base.blobs.0 as u64,
        blob_bytes: base.blobs.1,
        snapshots: base.snapshots.0 as u64,
        snapshot_bytes: base.snapshots.1,
    })
}
