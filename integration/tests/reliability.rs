//! berthd under conditions it must survive: a full disk.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_integration::manager::Berthd;
use berth_integration::*;

/// A small tmpfs of the test's, unmounted (lazily) when dropped.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(at: &Path, size: &str) -> SmallFs {
        fs::create_dir_all(at).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0700").as_str()),
        )
        .expect("mount a tmpfs");
        SmallFs(at.to_path_buf())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Writes `path` until the filesystem is full.
fn fill(path: &Path) {
    let mut f = fs::File::create(path).unwrap();
    let chunk = vec![7u8; 1 << 20];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn a_full_disk_fails_the_call_and_berthd_goes_on_once_space_is_freed() {
    let dir = std::env::temp_dir().join(format!("berth-it-enospc-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    // Unmounted after berthd is gone (drop order: last declared first).
    let _fs = SmallFs::mount(&dir.join("root"), "64m");
    let d = Berthd::start(&dir, &[]);
    let image = dir.join("busybox.tar");
    ok(&Command::new(workspace().join("tools/mk-busybox-image.sh"))
        .arg(&image)
        .output()
        .unwrap());
    ok(&d.ctl(&[
        "import",
        "--base-name",
        "berth/busybox",
        image.to_str().unwrap(),
    ]));
    ok(&d.ctl(&[
        "run",
        "-d",
        "--name",
        "before",
        "berth/busybox",
        "sleep",
        "1000",
    ]));
    let filler = dir.join("root/filler");
    fill(&filler);
    // Metadata writes until one meets the full disk.
    let mut refused = None;
    for i in 0..400 {
        let out = d.ctl(&["tag", "berth/busybox", &format!("berth/fill:{i}")]);
        if !out.status.success() {
            refused = Some(stderr(&out));
            break;
        }
    }
    let Some(why) = refused else {
        fs::remove_file(&filler).unwrap();
        skip(
            "a_full_disk_fails_the_call_and_berthd_goes_on_once_space_is_freed",
            "400 tags fit in the store's free pages: no write met the full disk",
        );
        return;
    };
    assert!(why.contains("No space left on device"), "{why}");
    fs::remove_file(&filler).unwrap();
    // Space freed: no restart, every kind of call works again.
    let images = ok(&d.ctl(&["images"]));
    assert!(images.contains("berth/busybox"), "{images}");
    ok(&d.ctl(&["tag", "berth/busybox", "berth/after:1"]));
    assert!(ok(&d.ctl(&["images"])).contains("berth/after"));
    let ps = ok(&d.ctl(&["ps"]));
    assert!(ps.contains("before"), "{ps}");
    let out = ok(&d.ctl(&["run", "--rm", "berth/busybox", "echo", "ran"]));
    assert_eq!(out.trim(), "ran");
    ok(&d.ctl(&["rm", "-f", "before"]));
    ok(&d.ctl(&["rmi", "berth/after:1"]));
    drop(d);
}
