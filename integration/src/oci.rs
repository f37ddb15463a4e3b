//! OCI images for tests: a umoci-built busybox image with whiteouts and
//! links, and a comparable listing of a file tree.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{busybox_rootfs, ok};

/// Runs a command, asserting success; returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    ok(&cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}")))
}

/// An OCI layout at `<dir>/layout` with a busybox image `base` and a `v2`
/// on top that deletes files and a directory (whiteouts, opaque
/// directory) and adds a hard link; `<dir>/ref/rootfs` is `umoci unpack`
/// of `v2`, the expected tree.
pub fn umoci_image(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    let l = layout.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", l]));
    run(Command::new("umoci").args(["new", "--image", &format!("{l}:base")]));
    let b = dir.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &format!("{l}:base")])
        .arg(&b));
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", busybox_rootfs().display()))
        .arg(b.join("rootfs")));
    fs::create_dir_all(b.join("rootfs/opt/keep")).unwrap();
    fs::write(b.join("rootfs/opt/keep/old"), "old").unwrap();
    fs::write(b.join("rootfs/opt/gone"), "gone").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &format!("{l}:base")])
        .arg(&b));
    // v2: delete a file and replace a directory's contents.
    fs::remove_file(b.join("rootfs/opt/gone")).unwrap();
    fs::remove_file(b.join("rootfs/bin/ls")).unwrap();
    fs::remove_dir_all(b.join("rootfs/opt/keep")).unwrap();
    fs::create_dir_all(b.join("rootfs/opt/keep")).unwrap();
    fs::write(b.join("rootfs/opt/keep/new"), "new").unwrap();
    fs::hard_link(b.join("rootfs/opt/keep/new"), b.join("rootfs/opt/hard")).unwrap();
    std::os::unix::fs::symlink("/opt/keep/new", b.join("rootfs/opt/sym")).unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &format!("{l}:v2")])
        .arg(&b));
    let r = dir.join("ref");
    run(Command::new("umoci")
        .args(["unpack", "--image", &format!("{l}:v2")])
        .arg(&r));
    layout
}

/// Path → (type, mode, uid, gid, content or link target) for a tree.
pub fn tree(root: &Path) -> BTreeMap<String, (u32, u32, u32, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let data = if m.file_type().is_symlink() {
                fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if m.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(
                rel,
                (
                    m.mode() & libc::S_IFMT,
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid(),
                    data,
                ),
            );
        }
    }
    out
}
