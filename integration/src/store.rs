//! Helpers of the store's end-to-end tests (`tests/manager.rs`,
//! `tests/store.rs`): a test directory, pushes with skopeo, snapshot views,
//! chain ids and the store's counts over gRPC.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_proto::images::snapshots_client::SnapshotsClient;
use berth_proto::images::{self as pb};

use crate::manager::{Berthd, Registry};
use crate::oci::run;

/// A test's directory; mounts under `<dir>/m*` are undone on drop.
pub struct Dir(pub PathBuf);

impl Dir {
    /// A fresh directory for the test `name`.
    pub fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("berth-it-mgr-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        for m in ["m1", "m2", "m3"] {
            let _ = Command::new("umount").arg(self.0.join(m)).output();
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Pushes `<layout>:<tag>` to the registry as `bb:<tag>` with skopeo.
pub fn push(layout: &Path, tag: &str, reg: &Registry, extra: &[&str]) {
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .args(extra)
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{}/bb:{tag}", reg.host)));
}

/// Runs one gRPC exchange (or any future) to completion on a runtime of
/// its own, for the tests' synchronous code.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Mounts a view of an unpacked image's top snapshot at `at`.
pub fn mount_view(d: &Berthd, chain_id: &str, key: &str, at: &Path) {
    let m = block_on(async {
        let ch = berth_proto::connect_unix(&d.address).await.unwrap();
        let mut c = SnapshotsClient::new(ch);
        c.view(pb::PrepareRequest {
            key: key.into(),
            parent: chain_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .mounts
    });
    mount_at(&m[0], at);
}

/// Mounts a snapshot's mount (as the Snapshots API returns it) at `at`.
pub fn mount_at(m: &pb::Mount, at: &Path) {
    fs::create_dir_all(at).unwrap();
    run(Command::new("mount")
        .args(["-t", &m.r#type, "-o", &m.options.join(","), &m.source])
        .arg(at));
}

/// The top chain id of an image, through the Unpack call (a no-op when unpacked).
pub fn chain_id(d: &Berthd, name: &str) -> String {
    block_on(async {
        let ch = berth_proto::connect_unix(&d.address).await.unwrap();
        let mut c = berth_proto::images::images_client::ImagesClient::new(ch);
        c.unpack(pb::UnpackRequest {
            name: name.into(),
            platform: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .chain_id
    })
}

/// The manifest of `bb:<tag>` as the registry serves it.
pub fn manifest_raw(reg: &Registry, tag: &str) -> String {
    run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/bb:{tag}", reg.host)))
}

/// The digest of `bb:<tag>`'s manifest.
pub fn manifest_digest(reg: &Registry, tag: &str) -> String {
    berth_manager::store::digest::sha256_of(manifest_raw(reg, tag).as_bytes()).to_string()
}

/// The store's counts: (images, blobs, snapshots), from the DiskUsage call
/// (`system df` shows docker's rows, not these).
pub fn df(d: &Berthd) -> (u64, u64, u64) {
    let u = block_on(async {
        let ch = berth_proto::connect_unix(&d.address).await.unwrap();
        berth_proto::images::images_client::ImagesClient::new(ch)
            .disk_usage(pb::Empty {})
            .await
            .unwrap()
            .into_inner()
    });
    (u.images, u.blobs, u.snapshots)
}
