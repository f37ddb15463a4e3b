//! The reverse of unpacking: an overlayfs upper directory as a layer tar.
//! Whiteouts (0/0 character devices) become `.wh.<name>` entries and opaque
//! directories (`trusted.overlay.opaque=y`) a `.wh..wh..opq` entry; hard
//! links, devices, FIFOs, symlinks, ownership, modes, times and xattrs
//! (other than overlay's own, as PAX records) are kept. Entries are written in sorted order,
//! so the same tree always makes the same tar.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Writes the layer tar of `upper` to `w`, leaving out the non-directory
/// entries named in `skip` (paths relative to the root, as `etc/hosts`).
pub fn write_layer(upper: &Path, w: impl Write, skip: &[&str]) -> io::Result<()> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    walk(upper, b"", &mut b, &mut links, skip)?;
    b.into_inner()?.flush()
}

fn header_for(m: &fs::Metadata, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(m.mode() & 0o7777);
    h.set_uid(m.uid() as u64);
    h.set_gid(m.gid() as u64);
    h.set_mtime(m.mtime().max(0) as u64);
    h.set_size(size);
    h
}

fn walk(
    dir: &Path,
    rel: &[u8],
    b: &mut tar::Builder<impl Write>,
    links: &mut HashMap<(u64, u64), Vec<u8>>,
    skip: &[&str],
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let mut entry = rel.to_vec();
        if !entry.is_empty() {
            entry.push(b'/');
        }
        entry.extend_from_slice(name.as_bytes());
        let m = fs::symlink_metadata(&path)?;
        let ft = m.file_type();
        if ft.is_char_device() && m.rdev() == 0 {
            // An overlay whiteout: the name is deleted in this layer.
            let mut wh = rel.to_vec();
            if !wh.is_empty() {
                wh.push(b'/');
            }
            wh.extend_from_slice(b".wh.");
            wh.extend_from_slice(name.as_bytes());
            append(
                b,
                header_for(&m, tar::EntryType::Regular, 0),
                &wh,
                None,
                io::empty(),
            )?;
            continue;
        }
        if ft.is_dir() {
            let mut h = header_for(&m, tar::EntryType::Directory, 0);
            h.set_size(0);
            let mut d = entry.clone();
            d.push(b'/');
            append_xattrs(b, &path)?;
            append(b, h, &d, None, io::empty())?;
            if is_opaque(&path) {
                let mut o = entry.clone();
                o.extend_from_slice(b"/.wh..wh..opq");
                append(
                    b,
                    header_for(&m, tar::EntryType::Regular, 0),
                    &o,
                    None,
                    io::empty(),
                )?;
            }
            walk(&path, &entry, b, links, skip)?;
            continue;
        }
        if skip.iter().any(|s| s.as_bytes() == entry.as_slice()) {
            continue;
        }
        if m.nlink() > 1 && !ft.is_dir() {
            let key = (m.dev(), m.ino());
            if let Some(first) = links.get(&key) {
                let h = header_for(&m, tar::EntryType::Link, 0);
                append(b, h, &entry, Some(first.clone()), io::empty())?;
                continue;
            }
            links.insert(key, entry.clone());
        }
        append_xattrs(b, &path)?;
        if ft.is_file() {
            let f = fs::File::open(&path)?;
            append(
                b,
                header_for(&m, tar::EntryType::Regular, m.len()),
                &entry,
                None,
                f,
            )?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path)?;
            append(
                b,
                header_for(&m, tar::EntryType::Symlink, 0),
                &entry,
                Some(target.as_os_str().as_bytes().to_vec()),
                io::empty(),
            )?;
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = header_for(&m, kind, 0);
            let (major, minor) = (
                nix::sys::stat::major(m.rdev()),
                nix::sys::stat::minor(m.rdev()),
            );
            // tar's ustar fields hold 32 bits; Linux's numbers are 12 and 20.
            let num = |n: u64| {
                u32::try_from(n)
                    .map_err(|_| io::Error::other(format!("device number {n} too large for tar")))
            };
            h.set_device_major(num(major)?)?;
            h.set_device_minor(num(minor)?)?;
            append(b, h, &entry, None, io::empty())?;
        } else if ft.is_fifo() {
            append(
                b,
                header_for(&m, tar::EntryType::Fifo, 0),
                &entry,
                None,
                io::empty(),
            )?;
        }
        // Sockets are not layer content.
    }
    Ok(())
}

/// Appends one entry; long names and link targets get GNU extension records.
fn append(
    b: &mut tar::Builder<impl Write>,
    mut h: tar::Header,
    path: &[u8],
    link: Option<Vec<u8>>,
    data: impl io::Read,
) -> io::Result<()> {
    let p = Path::new(std::ffi::OsStr::from_bytes(path));
    if let Some(l) = link {
        let t = Path::new(std::ffi::OsStr::from_bytes(&l));
        return b.append_link(&mut h, p, t);
    }
    b.append_data(&mut h, p, data)
}

fn is_opaque(dir: &Path) -> bool {
    crate::sys::get_xattr(dir, b"trusted.overlay.opaque").is_some_and(|v| v == b"y")
}

/// Records `path`'s extended attributes (but overlay's own) as PAX
/// `SCHILY.xattr.*` records for the entry that follows.
fn append_xattrs(b: &mut tar::Builder<impl Write>, path: &Path) -> io::Result<()> {
    let mut recs: Vec<(String, Vec<u8>)> = Vec::new();
    for name in crate::sys::list_xattrs(path) {
        if name.starts_with(b"trusted.overlay.") {
            continue;
        }
        if let (Ok(n), Some(v)) = (
            std::str::from_utf8(&name),
            crate::sys::get_xattr(path, &name),
        ) {
            recs.push((format!("SCHILY.xattr.{n}"), v));
        }
    }
    if recs.is_empty() {
        return Ok(());
    }
    b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_dir_round_trips_through_unpack() {
        let base = std::env::temp_dir().join(format!("berth-diff-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let (up, out) = (base.join("upper"), base.join("out"));
        fs::create_dir_all(up.join("etc/conf.d")).unwrap();
        fs::create_dir_all(&out).unwrap();
        fs::write(up.join("etc/conf.d/a"), "a").unwrap();
        fs::hard_link(up.join("etc/conf.d/a"), up.join("etc/a-link")).unwrap();
        std::os::unix::fs::symlink("../x", up.join("etc/sym")).unwrap();
        nix::sys::stat::mknod(
            &up.join("gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let fd = nix::fcntl::open(
            &up.join("etc/conf.d"),
            nix::fcntl::OFlag::O_PATH,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        crate::sys::set_xattr(&fd, Path::new(""), b"trusted.overlay.opaque", b"y").unwrap();
        let mut tar = Vec::new();
        write_layer(&up, &mut tar, &[]).unwrap();
        let names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
            .collect();
        assert!(names.contains(&".wh.gone".to_string()), "{names:?}");
        assert!(
            names.contains(&"etc/conf.d/.wh..wh..opq".to_string()),
            "{names:?}"
        );
        // Applying it recreates the same upper directory.
        crate::store::unpack::apply(&out, &tar[..]).unwrap();
        assert!(fs::symlink_metadata(out.join("gone"))
            .unwrap()
            .file_type()
            .is_char_device());
        assert_eq!(
            fs::read_link(out.join("etc/sym")).unwrap(),
            Path::new("../x")
        );
        assert_eq!(
            fs::metadata(out.join("etc/a-link")).unwrap().ino(),
            fs::metadata(out.join("etc/conf.d/a")).unwrap().ino()
        );
        assert!(is_opaque(&out.join("etc/conf.d")));
        fs::remove_dir_all(&base).unwrap();
    }
}
