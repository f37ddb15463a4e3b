//! Who may reach berthd's directories and sockets. A container's filesystem can hold a
//! setuid-root binary or a 0666 device node from an image (or one that the
//! container wrote): if any host user can reach it, that user is root
//! (the CVE-2021-41103 class). So every directory above a container
//! filesystem is closed to other users, and configs that carry the
//! container's environment are readable by root only.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// berthd's data root: layers, container filesystems, content, logs.
pub const ROOT: u32 = 0o700;
/// berthd's state directory: traversable, so that a runtime-made path below
/// it can be reached by name, but not listable.
pub const STATE: u32 = 0o711;
/// Directories holding container filesystems (snapshots, bundles).
pub const FILESYSTEMS: u32 = 0o700;
/// The bundles directory and its namespaces' directories: traversable, so a
/// container in a user namespace reaches its own bundle by name, each
/// bundle itself closed (`bundle`).
pub const BUNDLES: u32 = 0o711;
/// Files naming a container's environment (a bundle's config.json).
pub const SECRET_FILE: u32 = 0o600;

/// Makes `dir` (and its missing parents, with the default mode) and sets
/// exactly `mode` on it, also when it already existed with another: a store
/// made by an older berthd gets closed too. A symlink at `dir` is refused.
pub fn dir(dir: &Path, mode: u32) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let m = std::fs::symlink_metadata(dir)?;
            if !m.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                ));
            }
        }
        Err(e) => return Err(e),
    }
    // The umask may have taken bits off at mkdir; set the mode exactly.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// A container's bundle directory: root's alone (0700), or, for a container
/// whose root is `mapped_root_gid` on the host (a user namespace), group
/// `mapped_root_gid` may traverse it too (0710), so the container's root
/// reaches its rootfs and no other user does (containerd does the same).
pub fn bundle(dir: &Path, mapped_root_gid: Option<u32>) -> io::Result<()> {
    self::dir(dir, FILESYSTEMS)?;
    if let Some(gid) = mapped_root_gid {
        std::os::unix::fs::lchown(dir, Some(0), Some(gid))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o710))?;
    }
    Ok(())
}

/// Closes the bundles directory as `bundle` keeps it: traversable
/// directories, each bundle 0700 unless it is a user namespace's 0710 (a
/// store from an older berthd had them 0755 under a closed parent).
pub fn close_bundles(bundles: &Path) -> io::Result<()> {
    dir(bundles, BUNDLES)?;
    for ns in std::fs::read_dir(bundles)?.flatten() {
        if !ns.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        dir(&ns.path(), BUNDLES)?;
        for b in std::fs::read_dir(ns.path())?.flatten() {
            let Ok(m) = b.metadata() else { continue };
            let mode = m.permissions().mode() & 0o7777;
            if m.is_dir() && mode != FILESYSTEMS && mode != 0o710 {
                std::fs::set_permissions(b.path(), std::fs::Permissions::from_mode(FILESYSTEMS))?;
            }
        }
    }
    Ok(())
}

/// Writes `data` to a new file at `path` readable by root only (replacing one
/// that exists: its mode is set again too).
pub fn write_secret(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(SECRET_FILE)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(SECRET_FILE))?;
    f.write_all(data)
}

/// Listens on the unix socket `address`, root's alone (0600): a stale
/// socket is replaced, one that answers is refused (`who` serves there).
/// The error names the step that failed.
pub fn listen(
    address: &Path,
    who: &str,
) -> Result<tokio::net::UnixListener, (&'static str, io::Error)> {
    if let Some(dir) = address.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ("create", e))?;
    }
    if address.exists() {
        if std::os::unix::net::UnixStream::connect(address).is_ok() {
            return Err((
                "listen on",
                io::Error::new(io::ErrorKind::AddrInUse, format!("{who} serves there")),
            ));
        }
        std::fs::remove_file(address).map_err(|e| ("remove stale socket", e))?;
    }
    let l = tokio::net::UnixListener::bind(address).map_err(|e| ("listen on", e))?;
    std::fs::set_permissions(address, std::fs::Permissions::from_mode(SECRET_FILE))
        .map_err(|e| ("chmod", e))?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn bundles_are_traversable_and_each_bundle_closed() {
        let t = std::env::temp_dir().join(format!("berth-perm-b-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let plain = t.join("default/a");
        let userns = t.join("k8s.io/b");
        bundle(&plain, None).unwrap();
        bundle(&userns, Some(1000)).unwrap();
        assert_eq!(mode(&plain), 0o700);
        assert_eq!(mode(&userns), 0o710);
        assert_eq!(
            std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(&userns).unwrap()),
            1000
        );
        // An older berthd's open bundle is closed; a user namespace's stays.
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
        close_bundles(&t).unwrap();
        assert_eq!(mode(&t), 0o711);
        assert_eq!(mode(&t.join("default")), 0o711);
        assert_eq!(mode(&plain), 0o700);
        assert_eq!(mode(&userns), 0o710);
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn new_and_existing_dirs_get_exactly_the_mode() {
        let t = std::env::temp_dir().join(format!("berth-perm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let d = t.join("a/b");
        dir(&d, ROOT).unwrap();
        assert_eq!(mode(&d), 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir(&d, STATE).unwrap();
        assert_eq!(mode(&d), 0o711);
        std::os::unix::fs::symlink(&d, t.join("link")).unwrap();
        assert!(dir(&t.join("link"), ROOT).is_err());
        std::fs::write(t.join("f"), b"x").unwrap();
        assert!(dir(&t.join("f"), ROOT).is_err());
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn secrets_are_root_only_even_when_the_file_existed() {
        let t = std::env::temp_dir().join(format!("berth-perm-s-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(&t).unwrap();
        let f = t.join("config.json");
        std::fs::write(&f, b"old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_secret(&f, b"{}").unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(std::fs::read(&f).unwrap(), b"{}");
        std::fs::remove_dir_all(&t).unwrap();
    }
}
