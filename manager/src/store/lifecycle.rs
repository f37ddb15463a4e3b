//! Image names over time, as docker keeps them: a name that moves to other
//! content (a rebuild, a re-pull, a tag) leaves the old image dangling,
//! recorded as `<none>@<manifest digest>` (shown as `<none>:<none>`) until
//! it is pruned or removed; a new name for that content takes it back.
//! Images are also found by id (docker's: the config's digest, or the
//! manifest's, or a unique hex prefix of either), removed (`rmi`, refused
//! while a container uses the image unless forced), and pruned (dangling
//! ones, or with `all` every image no container uses).

use std::collections::HashSet;

use crate::store::digest::Digest;
use crate::store::images::{Image, ImageError, Images};
use crate::store::meta::{Table, Txn};
use crate::store::oci::Platform;

/// The record name of a dangling image.
pub fn dangling_name(d: &Digest) -> String {
    format!("<none>@{d}")
}

/// Whether a record name is a dangling image's.
pub fn is_dangling(name: &str) -> bool {
    name.starts_with("<none>@")
}

/// What a removal did, as docker reports it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Names taken away.
    pub untagged: Vec<String>,
    /// Image ids (config digests) whose last name went.
    pub deleted: Vec<String>,
}

/// Why a removal is refused.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// The store failed, or nothing has that name or id.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A container uses it, or an id names several repositories.
    #[error("conflict: {0}")]
    Conflict(String),
}

/// Records `image` in a transaction: the name's earlier image, when no
/// other name holds it, becomes dangling; a dangling record of the new
/// content goes, since a name holds it now.
pub(crate) fn put_in(t: &mut Txn, ns: &str, image: &Image) -> Result<(), ImageError> {
    let key = format!("{ns}/{}", image.name);
    let old: Option<Image> = t.get(Table::Images, &key)?;
    t.put(Table::Images, &key, image)?;
    if !is_dangling(&image.name) {
        t.delete(
            Table::Images,
            &format!("{ns}/{}", dangling_name(&image.target.digest)),
        )?;
    }
    let Some(old) = old.filter(|o| o.target.digest != image.target.digest && !is_dangling(&o.name))
    else {
        return Ok(());
    };
    for k in t.keys(Table::Images, &format!("{ns}/"))? {
        if let Some(other) = t.get::<Image>(Table::Images, &k)? {
            if other.target.digest == old.target.digest {
                return Ok(());
            }
        }
    }
    let d = Image {
        name: dangling_name(&old.target.digest),
        ..old
    };
    t.put(Table::Images, &format!("{ns}/{}", d.name), &d)?;
    Ok(())
}

impl Images {
    /// docker's image id: the digest of the image's config (for this host's
    /// platform), else its manifest's.
    pub fn image_id(&self, image: &Image) -> Digest {
        self.manifest(image, &Platform::host())
            .map(|(_, m)| m.config.digest)
            .unwrap_or_else(|_| image.target.digest.clone())
    }

    /// The images `wanted` names: one by name, or every record of the
    /// content an id (or unique hex prefix, `sha256:` optional) names.
    pub fn resolve(&self, ns: &str, wanted: &str) -> Result<Vec<Image>, ImageError> {
        if let Ok(img) = self.get(ns, wanted) {
            return Ok(vec![img]);
        }
        let hex = wanted.strip_prefix("sha256:").unwrap_or(wanted);
        if hex.len() < 4
            || !hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(ImageError::NotFound(wanted.into()));
        }
        let all = self.list(ns)?;
        let mut targets: HashSet<Digest> = HashSet::new();
        for img in &all {
            let id = self.image_id(img);
            if id.hex().starts_with(hex) || img.target.digest.hex().starts_with(hex) {
                targets.insert(img.target.digest.clone());
            }
        }
        match targets.len() {
            0 => Err(ImageError::NotFound(wanted.into())),
            1 => Ok(all
                .into_iter()
                .filter(|i| targets.contains(&i.target.digest))
                .collect()),
            _ => Err(ImageError::Invalid(format!(
                "image id {wanted:?} is ambiguous: it begins {} images' ids",
                targets.len()
            ))),
        }
    }

    /// `rmi`: a name is untagged (the content goes with its last name); an
    /// id takes every name of its content, which needs `force` when there
    /// are several. `user` names a container using a record, if any:
    /// refused unless `force`, as docker refuses.
    pub fn remove_image(
        &self,
        ns: &str,
        wanted: &str,
        force: bool,
        user: impl Fn(&Image) -> Option<String>,
    ) -> Result<Removed, RemoveError> {
        let found = self.resolve(ns, wanted)?;
        let by_id = self.get(ns, wanted).is_err();
        let named: Vec<&Image> = found.iter().filter(|i| !is_dangling(&i.name)).collect();
        if by_id && named.len() > 1 && !force {
            return Err(RemoveError::Conflict(format!(
                "unable to delete {wanted} (must be forced) - image is referenced in multiple repositories"
            )));
        }
        let used = found.iter().any(|i| user(i).is_some());
        if !force {
            for i in &found {
                if let Some(c) = user(i) {
                    let id = self.image_id(i);
                    return Err(RemoveError::Conflict(format!(
                        "unable to remove repository reference {:?} (must force) - container {} is using its referenced image {}",
                        i.name,
                        &c[..12.min(c.len())],
                        &id.hex()[..12]
                    )));
                }
            }
        }
        let mut out = Removed::default();
        let target = found[0].target.digest.clone();
        let id = self.image_id(&found[0]);
        for i in &found {
            self.remove(ns, &i.name)?;
            if !is_dangling(&i.name) {
                out.untagged.push(i.name.clone());
            }
        }
        let still = self.list(ns)?.iter().any(|i| i.target.digest == target);
        if !still && used {
            // Forced away from a container that uses it: the image stays,
            // dangling, as docker keeps it while the container exists.
            let d = Image {
                name: dangling_name(&target),
                ..found[0].clone()
            };
            self.put(ns, &d)?;
        } else if !still {
            out.deleted.push(id.to_string());
        }
        Ok(out)
    }

    /// `image prune`: dangling images (and digest-only names), or with
    /// `all` every image whose content no container uses (`in_use`: the
    /// manifest digests of images containers use). What went, by name.
    pub fn prune_images(
        &self,
        ns: &str,
        all: bool,
        in_use: &HashSet<Digest>,
    ) -> Result<Vec<String>, ImageError> {
        let mut removed = Vec::new();
        for img in self.list(ns)? {
            let dangling = is_dangling(&img.name)
                || crate::store::reference::Reference::parse(&img.name)
                    .is_ok_and(|r| r.tag.is_none());
            if (dangling || all) && !in_use.contains(&img.target.digest) {
                self.remove(ns, &img.name)?;
                removed.push(img.name);
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangling_names_are_recognised() {
        let d = crate::store::digest::sha256_of(b"x");
        assert!(is_dangling(&dangling_name(&d)));
        assert!(!is_dangling("docker.io/library/busybox:latest"));
    }
}
