//! Paths inside the rootfs, resolved by the kernel in the root
//! (`openat2` RESOLVE_IN_ROOT) from a directory fd, never by string joins.

use crate::syscall::{RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use super::*;

/// The procfs path naming an fd, for syscalls that take only paths.
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `path` inside the root `root` (a directory fd), never leaving it.
pub fn open_in_root(
    sys: &dyn Sys,
    root: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    extra_resolve: u64,
) -> io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    sys.openat2(
        root,
        rel,
        flags,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | extra_resolve,
    )
}

/// Creates every missing directory of `path` inside the root, and returns an
/// O_PATH fd of the last one. A symlink met on the way is followed inside the
/// root (a dangling one is created where it points, within the root), as a
/// container's own path resolution would see it.
pub fn mkdir_all_in_root(
    sys: &dyn Sys,
    root: BorrowedFd<'_>,
    path: &Path,
    mode: u32,
) -> Result<OwnedFd, Error> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = components(path);
    let mut prefix = PathBuf::from("/");
    let mut cur = open_in_root(sys, root, &prefix, flags, 0)
        .map_err(sys_err(format!("open rootfs for {}", path.display())))?;
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        let next = prefix.join(&name);
        match open_in_root(sys, root, &next, flags, 0) {
            Ok(fd) => {
                cur = fd;
                prefix = next;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(sys_err(format!("open {} in rootfs", next.display()))(e)),
        }
        match sys.mkdirat(cur.as_fd(), name.as_os_str(), mode) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // A dangling symlink: continue from where it points, inside the root.
                let target = sys
                    .readlinkat(cur.as_fd(), name.as_os_str())
                    .map_err(sys_err(format!("mkdir {} in rootfs", next.display())))?;
                links += 1;
                if links > 40 {
                    return Err(Error::Sys {
                        what: format!("mkdir {} in rootfs", path.display()),
                        err: io::Error::from_raw_os_error(libc::ELOOP),
                    });
                }
                let target = PathBuf::from(target);
                let mut rest = components(&target);
                rest.extend(todo.drain(..));
                todo = rest;
                if target.is_absolute() {
                    prefix = PathBuf::from("/");
                    cur = open_in_root(sys, root, &prefix, flags, 0)
                        .map_err(sys_err("open rootfs"))?;
                }
                continue;
            }
            Err(e) => return Err(sys_err(format!("mkdir {} in rootfs", next.display()))(e)),
        }
        cur = open_in_root(sys, root, &next, flags, 0)
            .map_err(sys_err(format!("open {} in rootfs", next.display())))?;
        prefix = next;
    }
    Ok(cur)
}

pub(super) fn components(p: &Path) -> std::collections::VecDeque<std::ffi::OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsStr::new("..").to_owned()),
            _ => None,
        })
        .collect()
}

/// Creates an empty file at `path` inside the root if nothing is there (the
/// target of a file bind mount or a device bind). A dangling symlink is
/// followed inside the root and the file made where it points, as runc
/// makes it (an image's `/etc/resolv.conf -> ../run/...` gets its bind).
pub(super) fn touch_in_root(sys: &dyn Sys, root: BorrowedFd<'_>, path: &Path) -> Result<(), Error> {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let name = path
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{}: no file name", path.display())))?
            .to_owned();
        let pfd = mkdir_all_in_root(sys, root, &parent, 0o755)?;
        match sys.create_file(pfd.as_fd(), &name, 0o644) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(sys_err(format!("create {} in rootfs", path.display()))(e)),
        }
        let Ok(target) = sys.readlinkat(pfd.as_fd(), &name) else {
            // Something other than a symlink is there.
            return Ok(());
        };
        if open_in_root(sys, root, &path, libc::O_PATH, 0).is_ok() {
            return Ok(());
        }
        path = parent.join(target);
    }
    Err(Error::Sys {
        what: format!("create {} in rootfs", path.display()),
        err: io::Error::from_raw_os_error(libc::ELOOP),
    })
}

#[cfg(test)]
mod tests {
    use super::super::fake::{Call, Fake, Node};
    use super::*;

    fn mkdirs(f: &Fake) -> Vec<PathBuf> {
        f.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Mkdir(p, _) => Some(p),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn mkdir_all_makes_each_missing_level_with_the_mode() {
        let f = Fake::new().with("/a", Node::Dir);
        mkdir_all_in_root(&f, f.root().as_fd(), Path::new("/a/b/c"), 0o700).unwrap();
        assert_eq!(
            f.calls(),
            vec![
                Call::Mkdir(PathBuf::from("/a/b"), 0o700),
                Call::Mkdir(PathBuf::from("/a/b/c"), 0o700)
            ]
        );
    }

    #[test]
    fn mkdir_all_of_an_existing_path_makes_nothing() {
        let f = Fake::new().with("/a/b", Node::Dir);
        mkdir_all_in_root(&f, f.root().as_fd(), Path::new("/a/b"), 0o755).unwrap();
        assert!(f.calls().is_empty());
    }

    #[test]
    fn mkdir_all_follows_a_dangling_absolute_link_inside_the_root() {
        let f = Fake::new().with("/var/run", Node::Link(PathBuf::from("/run")));
        mkdir_all_in_root(&f, f.root().as_fd(), Path::new("/var/run/app"), 0o755).unwrap();
        assert_eq!(
            mkdirs(&f),
            vec![PathBuf::from("/run"), PathBuf::from("/run/app")]
        );
    }

    #[test]
    fn mkdir_all_follows_a_dangling_relative_link_from_its_directory() {
        let f = Fake::new().with("/etc/data", Node::Link(PathBuf::from("../srv/data")));
        mkdir_all_in_root(&f, f.root().as_fd(), Path::new("/etc/data"), 0o755).unwrap();
        assert_eq!(
            mkdirs(&f),
            vec![PathBuf::from("/srv"), PathBuf::from("/srv/data")]
        );
    }

    #[test]
    fn dot_dot_never_climbs_above_the_root() {
        let f = Fake::new();
        mkdir_all_in_root(&f, f.root().as_fd(), Path::new("/../../x"), 0o755).unwrap();
        assert_eq!(mkdirs(&f), vec![PathBuf::from("/x")]);
    }

    #[test]
    fn a_link_loop_is_refused_with_eloop() {
        let f = Fake::new()
            .with("/a", Node::Link(PathBuf::from("/b")))
            .with("/b", Node::Link(PathBuf::from("/a")));
        let err = mkdir_all_in_root(&f, f.root().as_fd(), Path::new("/a/x"), 0o755).unwrap_err();
        assert!(
            matches!(&err, Error::Sys { err, .. } if err.raw_os_error() == Some(libc::ELOOP)),
            "{err}"
        );
    }

    #[test]
    fn a_file_in_the_way_of_a_directory_is_an_error_naming_the_path() {
        let f = Fake::new().with("/a", Node::File);
        let err = mkdir_all_in_root(&f, f.root().as_fd(), Path::new("/a/b"), 0o755)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/a"), "{err}");
    }

    #[test]
    fn touch_makes_an_empty_file_and_its_parents() {
        let f = Fake::new();
        touch_in_root(&f, f.root().as_fd(), Path::new("/etc/hosts")).unwrap();
        assert_eq!(
            f.calls(),
            vec![
                Call::Mkdir(PathBuf::from("/etc"), 0o755),
                Call::Create(PathBuf::from("/etc/hosts"))
            ]
        );
    }

    #[test]
    fn touch_leaves_an_existing_file_or_link_target_alone() {
        let f = Fake::new()
            .with("/etc/hosts", Node::File)
            .with("/etc/hostname", Node::Link(PathBuf::from("hosts")));
        touch_in_root(&f, f.root().as_fd(), Path::new("/etc/hosts")).unwrap();
        touch_in_root(&f, f.root().as_fd(), Path::new("/etc/hostname")).unwrap();
        assert!(f.calls().is_empty());
    }

    #[test]
    fn touch_through_a_dangling_link_makes_the_file_where_it_points() {
        let f = Fake::new().with(
            "/etc/resolv.conf",
            Node::Link(PathBuf::from("../run/systemd/resolve/stub-resolv.conf")),
        );
        touch_in_root(&f, f.root().as_fd(), Path::new("/etc/resolv.conf")).unwrap();
        assert_eq!(
            f.node("/run/systemd/resolve/stub-resolv.conf"),
            Some(Node::File)
        );
    }

    #[test]
    fn touch_through_a_dangling_link_out_of_the_root_stays_in_it() {
        let f = Fake::new().with("/etc/x", Node::Link(PathBuf::from("/../../../tmp/x")));
        touch_in_root(&f, f.root().as_fd(), Path::new("/etc/x")).unwrap();
        assert_eq!(f.node("/tmp/x"), Some(Node::File));
    }

    #[test]
    fn open_in_root_resolves_absolute_paths_from_the_root() {
        let f = Fake::new().with("/a", Node::Dir);
        let fd = open_in_root(&f, f.root().as_fd(), Path::new("/a"), libc::O_PATH, 0).unwrap();
        assert_eq!(f.fstat(fd.as_fd()).unwrap().0 & libc::S_IFMT, libc::S_IFDIR);
        assert_eq!(
            open_in_root(&f, f.root().as_fd(), Path::new("/b"), libc::O_PATH, 0)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENOENT)
        );
    }

    #[test]
    fn the_fd_path_names_the_descriptor_in_procfs() {
        let f = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(
            fd_path(&f),
            PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
        );
    }
}
