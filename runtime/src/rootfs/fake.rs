//! The recording double of [`Sys`] for unit tests: a tree in memory stands
//! for the container's root (and a few host paths, for bind sources), and
//! every call that changes something is recorded with the container path it
//! acted on. Descriptors are real (each an `O_PATH` of `/dev/null`), mapped
//! to the path they stand for, so the code under test runs unchanged.

use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::SFlag;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use super::*;

/// A node of the fake tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir,
    File,
    Char(u64, u64),
    Block(u64, u64),
    Fifo,
    Link(PathBuf),
}

/// One recorded call. Paths are the container's (`/dev/null`); a mount
/// source that is a descriptor of the tree reads `rootfs:/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Mkdir(PathBuf, u32),
    Create(PathBuf),
    Mknod {
        path: PathBuf,
        node: Node,
        mode: u32,
    },
    Chmod(PathBuf, u32),
    Chown(PathBuf, u32, u32),
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
    Unlink(PathBuf),
    Mount {
        src: Option<String>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount(PathBuf),
    SetAttr {
        path: PathBuf,
        recursive: bool,
        set: u64,
        clear: u64,
    },
    MoveMount(PathBuf),
    CopyTree {
        from: PathBuf,
        to: PathBuf,
    },
}

type Failure = (Box<dyn Fn(&Call) -> bool>, i32);

/// The fake kernel.
pub struct Fake {
    tree: RefCell<BTreeMap<PathBuf, Node>>,
    host: BTreeMap<PathBuf, Node>,
    fds: RefCell<HashMap<RawFd, PathBuf>>,
    calls: RefCell<Vec<Call>>,
    fail: RefCell<Vec<Failure>>,
}

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

impl std::fmt::Debug for Fake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fake")
            .field("tree", &self.tree.borrow())
            .field("calls", &self.calls.borrow())
            .finish()
    }
}

impl Default for Fake {
    fn default() -> Self {
        Self::new()
    }
}

impl Fake {
    /// An empty root.
    pub fn new() -> Self {
        let mut tree = BTreeMap::new();
        tree.insert(PathBuf::from("/"), Node::Dir);
        Fake {
            tree: RefCell::new(tree),
            host: BTreeMap::new(),
            fds: RefCell::new(HashMap::new()),
            calls: RefCell::new(Vec::new()),
            fail: RefCell::new(Vec::new()),
        }
    }

    /// Adds `node` at `path` in the root, with any missing parent directories.
    pub fn with(self, path: &str, node: Node) -> Self {
        let path = PathBuf::from(path);
        let mut tree = self.tree.borrow_mut();
        for a in path.ancestors().skip(1) {
            tree.entry(a.to_path_buf()).or_insert(Node::Dir);
        }
        tree.insert(path, node);
        drop(tree);
        self
    }

    /// Adds a host path (a bind source).
    pub fn with_host(mut self, path: &str, node: Node) -> Self {
        self.host.insert(PathBuf::from(path), node);
        self
    }

    /// Makes every later call that `when` matches fail with `err`.
    pub fn fail_when(self, when: impl Fn(&Call) -> bool + 'static, err: i32) -> Self {
        self.fail.borrow_mut().push((Box::new(when), err));
        self
    }

    /// A descriptor of the root.
    pub fn root(&self) -> OwnedFd {
        self.fd_for(Path::new("/"))
    }

    /// The calls made so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// The mounts made so far, as (source, target, fstype, flags, data).
    pub fn mounts(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Mount { .. }))
            .collect()
    }

    /// The node at `path`, if any.
    pub fn node(&self, path: &str) -> Option<Node> {
        self.tree.borrow().get(Path::new(path)).cloned()
    }

    /// A descriptor standing for `path` (need not exist: a detached tree).
    pub fn fd_for(&self, path: &Path) -> OwnedFd {
        let f = std::fs::File::open("/dev/null").expect("open /dev/null");
        let fd = OwnedFd::from(f);
        self.fds
            .borrow_mut()
            .insert(fd.as_raw_fd(), path.to_path_buf());
        fd
    }

    fn path_of(&self, fd: BorrowedFd<'_>) -> PathBuf {
        self.fds
            .borrow()
            .get(&fd.as_raw_fd())
            .cloned()
            .expect("a descriptor the fake made")
    }

    /// A `/proc/self/fd/N` path back to the tree's path it stands for.
    fn unproc(&self, p: &Path) -> Option<PathBuf> {
        let n: RawFd = p
            .strip_prefix("/proc/self/fd")
            .ok()?
            .to_str()?
            .parse()
            .ok()?;
        self.fds.borrow().get(&n).cloned()
    }

    fn record(&self, c: Call) -> io::Result<()> {
        if let Some((_, e)) = self.fail.borrow().iter().find(|(w, _)| w(&c)) {
            return Err(errno(*e));
        }
        self.calls.borrow_mut().push(c);
        Ok(())
    }

    /// Resolves `rel` from `base` inside the root, as RESOLVE_IN_ROOT does.
    fn resolve(
        &self,
        base: &Path,
        rel: &Path,
        follow_last: bool,
        no_symlinks: bool,
    ) -> io::Result<PathBuf> {
        let tree = self.tree.borrow();
        let mut todo: Vec<OsString> = Vec::new();
        let mut cur = base.to_path_buf();
        let push = |todo: &mut Vec<OsString>, cur: &mut PathBuf, p: &Path| {
            let mut comps = Vec::new();
            for c in p.components() {
                match c {
                    Component::RootDir => *cur = PathBuf::from("/"),
                    Component::Normal(n) => comps.push(n.to_owned()),
                    Component::ParentDir => comps.push("..".into()),
                    _ => {}
                }
            }
            comps.reverse();
            todo.extend(comps);
        };
        push(&mut todo, &mut cur, rel);
        let mut links = 0;
        while let Some(name) = todo.pop() {
            if name == ".." {
                if cur != Path::new("/") {
                    cur.pop();
                }
                continue;
            }
            let next = cur.join(&name);
            match tree.get(&next) {
                None => return Err(errno(libc::ENOENT)),
                Some(Node::Link(t)) => {
                    if no_symlinks {
                        return Err(errno(libc::ELOOP));
                    }
                    if todo.is_empty() && !follow_last {
                        return Ok(next);
                    }
                    links += 1;
                    if links > 40 {
                        return Err(errno(libc::ELOOP));
                    }
                    let t = t.clone();
                    push(&mut todo, &mut cur, &t);
                }
                Some(Node::Dir) => cur = next,
                Some(_) if todo.is_empty() => cur = next,
                Some(_) => return Err(errno(libc::ENOTDIR)),
            }
        }
        Ok(cur)
    }

    fn create(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<PathBuf> {
        let path = self.path_of(dir).join(name);
        if self.tree.borrow().contains_key(&path) {
            return Err(errno(libc::EEXIST));
        }
        Ok(path)
    }

    fn mode_of(node: &Node) -> (u32, u64) {
        match node {
            Node::Dir => (libc::S_IFDIR | 0o755, 0),
            Node::File => (libc::S_IFREG | 0o644, 0),
            Node::Char(a, b) => (libc::S_IFCHR | 0o666, nix::sys::stat::makedev(*a, *b)),
            Node::Block(a, b) => (libc::S_IFBLK | 0o660, nix::sys::stat::makedev(*a, *b)),
            Node::Fifo => (libc::S_IFIFO | 0o644, 0),
            Node::Link(_) => (libc::S_IFLNK | 0o777, 0),
        }
    }
}

impl Sys for Fake {
    fn openat2(
        &self,
        dir: BorrowedFd<'_>,
        rel: &Path,
        flags: i32,
        resolve: u64,
    ) -> io::Result<OwnedFd> {
        let base = self.path_of(dir);
        let path = self.resolve(
            &base,
            rel,
            flags & libc::O_NOFOLLOW == 0,
            resolve & crate::syscall::RESOLVE_NO_SYMLINKS != 0,
        )?;
        if flags & libc::O_DIRECTORY != 0 && self.tree.borrow().get(&path) != Some(&Node::Dir) {
            return Err(errno(libc::ENOTDIR));
        }
        Ok(self.fd_for(&path))
    }

    fn open_root(&self) -> io::Result<OwnedFd> {
        Ok(self.root())
    }

    fn mkdirat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
        let path = self.create(dir, name)?;
        self.record(Call::Mkdir(path.clone(), mode))?;
        self.tree.borrow_mut().insert(path, Node::Dir);
        Ok(())
    }

    fn readlinkat(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OsString> {
        match self.tree.borrow().get(&self.path_of(dir).join(name)) {
            Some(Node::Link(t)) => Ok(t.clone().into_os_string()),
            Some(_) => Err(errno(libc::EINVAL)),
            None => Err(errno(libc::ENOENT)),
        }
    }

    fn create_file(&self, dir: BorrowedFd<'_>, name: &OsStr, _mode: u32) -> io::Result<()> {
        let path = self.create(dir, name)?;
        self.record(Call::Create(path.clone()))?;
        self.tree.borrow_mut().insert(path, Node::File);
        Ok(())
    }

    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: SFlag,
        mode: u32,
        dev: u64,
    ) -> io::Result<()> {
        let (a, b) = (libc::major(dev).into(), libc::minor(dev).into());
        let node = match kind {
            SFlag::S_IFCHR => Node::Char(a, b),
            SFlag::S_IFBLK => Node::Block(a, b),
            SFlag::S_IFIFO => Node::Fifo,
            _ => return Err(errno(libc::EINVAL)),
        };
        let path = self.create(dir, name)?;
        self.record(Call::Mknod {
            path: path.clone(),
            node: node.clone(),
            mode,
        })?;
        self.tree.borrow_mut().insert(path, node);
        Ok(())
    }

    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
        self.record(Call::Chmod(self.path_of(dir).join(name), mode))
    }

    fn fchownat(&self, dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        self.record(Call::Chown(self.path_of(dir).join(name), uid, gid))
    }

    fn symlinkat(&self, target: &OsStr, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let node = Node::Link(PathBuf::from(target));
        let path = self.create(dir, name)?;
        self.record(Call::Symlink {
            path: path.clone(),
            target: PathBuf::from(target),
        })?;
        self.tree.borrow_mut().insert(path, node);
        Ok(())
    }

    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let path = self.path_of(dir).join(name);
        if !self.tree.borrow().contains_key(&path) {
            return Err(errno(libc::ENOENT));
        }
        self.record(Call::Unlink(path.clone()))?;
        self.tree.borrow_mut().remove(&path);
        Ok(())
    }

    fn stat(&self, path: &Path) -> io::Result<u32> {
        self.host
            .get(path)
            .map(|n| Self::mode_of(n).0)
            .ok_or_else(|| errno(libc::ENOENT))
    }

    fn copy_tree(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
        self.record(Call::CopyTree {
            from: self.path_of(from),
            to: self.path_of(to),
        })
    }

    fn fstat(&self, fd: BorrowedFd<'_>) -> io::Result<(u32, u64)> {
        let path = self.path_of(fd);
        self.tree
            .borrow()
            .get(&path)
            .map(Self::mode_of)
            .ok_or_else(|| errno(libc::ENOENT))
    }

    fn mount(
        &self,
        src: Option<&OsStr>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        let src = src.map(|s| match self.unproc(Path::new(s)) {
            Some(p) => format!("rootfs:{}", p.display()),
            None => s.to_string_lossy().into_owned(),
        });
        let target = self.unproc(target).unwrap_or_else(|| target.to_path_buf());
        self.record(Call::Mount {
            src,
            target,
            fstype: fstype.map(String::from),
            flags,
            data: data.map(String::from),
        })
    }

    fn umount(&self, target: &Path, _flags: MntFlags) -> io::Result<()> {
        let target = self.unproc(target).unwrap_or_else(|| target.to_path_buf());
        self.record(Call::Umount(target))
    }

    fn mount_setattr(
        &self,
        fd: BorrowedFd<'_>,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> io::Result<()> {
        self.record(Call::SetAttr {
            path: self.path_of(fd),
            recursive,
            set,
            clear,
        })
    }

    fn move_mount(&self, _tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
        self.record(Call::MoveMount(self.path_of(target)))
    }
}

/// A context over `fake` for a rootfs at `/run/c/rootfs`, bundle `/run/c`;
/// `layout` decides the cgroup mounts.
pub fn ctx<'a>(fake: &'a Fake, layout: &'a crate::cgroups::Layout) -> Context<'a> {
    Context {
        sys: fake,
        rootfs: Path::new("/run/c/rootfs"),
        bundle: Path::new("/run/c"),
        layout,
        cgroup_dirs: &[],
        new_cgroupns: true,
        in_userns: false,
        root_uid: 0,
        root_gid: 0,
    }
}

/// A mount call, for comparing with what was recorded.
pub fn mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Call {
    Call::Mount {
        src: src.map(String::from),
        target: PathBuf::from(target),
        fstype: fstype.map(String::from),
        flags,
        data: data.map(String::from),
    }
}
