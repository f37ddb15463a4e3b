//! Images as the CRI sees them, over the store's named records in `k8s.io`:
//! an image's id is its config's digest, so one image under several tags
//! is one image with several RepoTags; RepoDigests are `repo@<manifest
//! digest>`; ImageStatus finds an image by id (or a prefix of it), by tag,
//! or by digest reference.

use std::collections::BTreeMap;
use std::path::Path;

use berth_rules::reference::Reference;
use k8s_cri::v1 as cri;

use super::NAMESPACE;
use crate::store::images::{ImageError, Images};
use crate::store::oci::Platform;

/// One CRI image: its records grouped by config digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriImage {
    /// The config's digest.
    pub id: String,
    /// A name to create containers from (the first record's).
    pub name: String,
    /// `repo@sha256:…` of the first record, else the id.
    pub image_ref: String,
    /// Its stop signal.
    pub stop_signal: u32,
    /// Names that are tags.
    pub repo_tags: Vec<String>,
    /// `repo@digest`, one per repository.
    pub repo_digests: Vec<String>,
    /// Blob bytes.
    pub size: u64,
    /// The config's `User`.
    pub user: String,
}

/// The repository of a normalized name (`docker.io/library/busybox`).
pub fn repository(name: &str) -> String {
    Reference::parse(name)
        .map(|r| r.name())
        .unwrap_or_else(|_| name.to_string())
}

/// A signal's number from an image's `StopSignal` (`SIGQUIT`, `QUIT`,
/// `3`), else SIGTERM.
pub fn stop_signal(config: &serde_json::Value) -> u32 {
    config["config"]["StopSignal"]
        .as_str()
        .and_then(|s| berth_rules::signal::parse(s).ok())
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(libc::SIGTERM as u32)
}

/// Every CRI image, by id.
pub fn all(store: &Images) -> Result<Vec<CriImage>, ImageError> {
    let platform = Platform::host();
    let mut by_id: BTreeMap<String, CriImage> = BTreeMap::new();
    for img in store.list(NAMESPACE)? {
        let (mdesc, m) = match store.manifest(&img, &platform) {
            Ok(x) => x,
            // An image without this platform cannot run here: not listed.
            Err(ImageError::NoPlatform { .. }) => continue,
            Err(e) => return Err(e),
        };
        let id = m.config.digest.to_string();
        let repo_digest = format!("{}@{}", repository(&img.name), img.target.digest);
        let e = match by_id.get_mut(&id) {
            Some(e) => e,
            None => {
                let cfg = store.config(&img, &platform)?;
                by_id.entry(id.clone()).or_insert(CriImage {
                    id: id.clone(),
                    name: img.name.clone(),
                    image_ref: repo_digest.clone(),
                    stop_signal: stop_signal(&cfg),
                    repo_tags: Vec::new(),
                    repo_digests: Vec::new(),
                    size: crate::store::images::blob_bytes(&mdesc, &m),
                    user: cfg["config"]["User"].as_str().unwrap_or("").to_string(),
                })
            }
        };
        if !img.name.contains('@') && !e.repo_tags.contains(&img.name) {
            e.repo_tags.push(img.name.clone());
        }
        if !crate::store::lifecycle::is_dangling(&img.name)
            && !e.repo_digests.contains(&repo_digest)
        {
            e.repo_digests.push(repo_digest);
        }
    }
    Ok(by_id.into_values().collect())
}

/// The image `wanted` names: an id (`sha256:…`, or its hex, or a unique
/// prefix of at least 12 digits), a digest reference, or a tag.
pub fn resolve(store: &Images, wanted: &str) -> Result<Option<CriImage>, ImageError> {
    if wanted.is_empty() {
        return Ok(None);
    }
    let images = all(store)?;
    let hex = wanted.strip_prefix("sha256:").unwrap_or(wanted);
    if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hits: Vec<&CriImage> = images
            .iter()
            .filter(|i| i.id.trim_start_matches("sha256:").starts_with(hex))
            .collect();
        if hits.len() == 1 {
            return Ok(Some(hits[0].clone()));
        }
    }
    let Ok(r) = Reference::parse(wanted) else {
        return Ok(None);
    };
    let name = r.to_string();
    let found = images.into_iter().find(|i| {
        i.repo_tags.contains(&name)
            || match &r.digest {
                Some(d) => i.repo_digests.contains(&format!("{}@{d}", r.name())),
                None => false,
            }
    });
    Ok(found)
}

/// The CRI form of an image.
pub fn to_cri(i: &CriImage) -> cri::Image {
    let (uid, username) = match i.user.split(':').next().unwrap_or("") {
        "" => (Some(cri::Int64Value { value: 0 }), String::new()),
        u => match u.parse::<i64>() {
            Ok(n) => (Some(cri::Int64Value { value: n }), String::new()),
            Err(_) => (None, u.to_string()),
        },
    };
    cri::Image {
        id: i.id.clone(),
        repo_tags: i.repo_tags.clone(),
        repo_digests: i.repo_digests.clone(),
        size: i.size,
        uid,
        username,
        spec: Some(cri::ImageSpec {
            image: i.id.clone(),
            ..Default::default()
        }),
        pinned: false,
    }
}

/// Removes every name of the image and collects what nothing else uses.
pub fn remove(store: &Images, i: &CriImage) -> Result<(), ImageError> {
    let platform = Platform::host();
    for img in store.list(NAMESPACE)? {
        let ours = store
            .manifest(&img, &platform)
            .map(|(_, m)| m.config.digest.to_string() == i.id)
            .unwrap_or(false);
        if ours {
            store.remove(NAMESPACE, &img.name)?;
        }
    }
    store.gc().map(drop)
}

/// Bytes and inodes used under `dir` (the image filesystem's usage).
pub fn usage(dir: &Path) -> (u64, u64) {
    fn walk(d: &Path, bytes: &mut u64, inodes: &mut u64) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            *inodes += 1;
            *bytes += std::os::unix::fs::MetadataExt::blocks(&m) * 512;
            if m.is_dir() {
                walk(&e.path(), bytes, inodes);
            }
        }
    }
    let (mut b, mut n) = (0, 0);
    walk(dir, &mut b, &mut n);
    (b, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_by_name_or_number() {
        let c = |s: &str| serde_json::json!({"config": {"StopSignal": s}});
        assert_eq!(stop_signal(&c("SIGQUIT")), 3);
        assert_eq!(stop_signal(&c("9")), 9);
        assert_eq!(stop_signal(&serde_json::json!({})), 15);
    }

    #[test]
    fn repositories_and_users() {
        assert_eq!(
            repository("docker.io/library/busybox:latest"),
            "docker.io/library/busybox"
        );
        assert_eq!(repository("127.0.0.1:5000/a/b:1"), "127.0.0.1:5000/a/b");
        let mut i = CriImage {
            id: "sha256:ab".into(),
            name: "x".into(),
            image_ref: "x".into(),
            stop_signal: 15,
            repo_tags: vec![],
            repo_digests: vec![],
            size: 1,
            user: "1002".into(),
        };
        assert_eq!(to_cri(&i).uid, Some(cri::Int64Value { value: 1002 }));
        i.user = "www-data".into();
        let c = to_cri(&i);
        assert_eq!((c.uid, c.username.as_str()), (None, "www-data"));
        i.user = "1003:1004".into();
        assert_eq!(to_cri(&i).uid, Some(cri::Int64Value { value: 1003 }));
    }
}
