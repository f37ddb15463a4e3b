//! The image store end to end: archives made by umoci and skopeo imported,
//! unpacked into overlay snapshots, and the mounted result compared with
//! `umoci unpack` of the same image; hostile layers refused.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_integration::oci::{run, tree, umoci_image};
use berth_manager::store::images::{ImageError, Images};
use berth_manager::store::oci::Platform;

/// A test's directory, removed (after unmounting what it mounted) on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("berth-it-images-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.0.join("merged"))
            .output();
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Imports `archive`, unpacks `name`, mounts a view of it at
/// `<dir>/merged` and returns the mount point.
fn import_and_mount(dir: &Path, archive: &Path, base: Option<&str>, name: &str) -> PathBuf {
    let store = Images::open(&dir.join("store")).unwrap();
    let imported = store
        .import("default", fs::File::open(archive).unwrap(), base)
        .unwrap();
    assert!(imported.iter().any(|i| i.name == name), "{imported:?}");
    let img = store.get("default", name).unwrap();
    let top = store.unpack("default", &img, &Platform::host()).unwrap();
    // A second unpack reuses the committed layers.
    assert_eq!(
        store.unpack("default", &img, &Platform::host()).unwrap(),
        top
    );
    let m = store
        .snapshots
        .view("default", "view", Some(&top.to_string()))
        .unwrap();
    let merged = dir.join("merged");
    fs::create_dir_all(&merged).unwrap();
    run(Command::new("mount")
        .args([
            "-t",
            &m[0].kind,
            "-o",
            &m[0].options.join(","),
            &m[0].source,
        ])
        .arg(&merged));
    merged
}

#[test]
fn umoci_layout_unpacks_like_umoci() {
    let d = Dir::new("umoci");
    let layout = umoci_image(&d.0);
    let archive = d.0.join("layout.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg("."));
    let merged = import_and_mount(&d.0, &archive, Some("test/bb"), "docker.io/test/bb:v2");
    let want = tree(&d.0.join("ref/rootfs"));
    let got = tree(&merged);
    assert!(
        !got.contains_key("bin/ls")
            && !got.contains_key("opt/gone")
            && !got.contains_key("opt/keep/old")
    );
    assert_eq!(
        got.get("opt/keep/new").map(|v| v.4.as_slice()),
        Some(&b"new"[..])
    );
    assert_eq!(
        fs::metadata(merged.join("opt/hard")).unwrap().ino(),
        fs::metadata(merged.join("opt/keep/new")).unwrap().ino()
    );
    let diff: Vec<_> = want
        .keys()
        .chain(got.keys())
        .filter(|k| want.get(*k) != got.get(*k))
        .collect();
    assert!(diff.is_empty(), "trees differ at {diff:?}");
}

#[test]
fn skopeo_archives_import() {
    let d = Dir::new("skopeo");
    let layout = umoci_image(&d.0);
    // docker save format and an OCI archive, both written by skopeo.
    let docker = d.0.join("docker.tar");
    run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:v2", layout.display()))
        .arg(format!("docker-archive:{}:skopeo/bb:v2", docker.display())));
    let merged = import_and_mount(&d.0, &docker, None, "docker.io/skopeo/bb:v2");
    assert_eq!(tree(&merged), tree(&d.0.join("ref/rootfs")));
    let _ = Command::new("umount").arg(&merged).output();
    let oci = d.0.join("oci.tar");
    run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:v2", layout.display()))
        .arg(format!("oci-archive:{}:v2", oci.display())));
    let store = Images::open(&d.0.join("store2")).unwrap();
    let imgs = store
        .import("default", fs::File::open(&oci).unwrap(), Some("oci/bb"))
        .unwrap();
    assert_eq!(imgs[0].name, "docker.io/oci/bb:v2");
    // A bare tag without a base name is a clear error.
    let err = store
        .import("default", fs::File::open(&oci).unwrap(), None)
        .unwrap_err();
    assert!(err.to_string().contains("give a base name"), "{err}");
}

#[test]
fn corrupt_and_hostile_layers_are_refused() {
    let d = Dir::new("hostile");
    let layout = umoci_image(&d.0);
    // Replace v2's top layer blob with a tar that climbs out, keeping the
    // layout's digests consistent so only the unpacker can object.
    let evil = d.0.join("evil.tar");
    run(Command::new("python3").arg("-c").arg(format!(
        "import tarfile, io\nt = tarfile.open('{}', 'w')\ni = tarfile.TarInfo('../../escaped')\ni.size = 3\nt.addfile(i, io.BytesIO(b'bad'))\nt.close()",
        evil.display()
    )));
    let store = Images::open(&d.0.join("store")).unwrap();
    let data = fs::read(&evil).unwrap();
    let digest = berth_manager::store::digest::sha256_of(&data);
    store.content.write_all(&digest, &data).unwrap();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest.to_string()]}});
    let cbytes = serde_json::to_vec(&config).unwrap();
    let cd = berth_manager::store::digest::sha256_of(&cbytes);
    store.content.write_all(&cd, &cbytes).unwrap();
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": berth_manager::store::oci::MT_OCI_MANIFEST,
        "config": {"mediaType": berth_manager::store::oci::MT_OCI_CONFIG, "digest": cd.to_string(), "size": cbytes.len()},
        "layers": [{"mediaType": berth_manager::store::oci::MT_OCI_LAYER, "digest": digest.to_string(), "size": data.len()}]});
    let mbytes = serde_json::to_vec(&manifest).unwrap();
    let md = berth_manager::store::digest::sha256_of(&mbytes);
    store.content.write_all(&md, &mbytes).unwrap();
    let img = berth_manager::store::images::Image {
        name: "docker.io/test/evil:latest".into(),
        target: serde_json::from_value(
            serde_json::json!({"mediaType": berth_manager::store::oci::MT_OCI_MANIFEST,
            "digest": md.to_string(), "size": mbytes.len()}),
        )
        .unwrap(),
        created: 0,
        labels: Default::default(),
    };
    let err = store
        .unpack("default", &img, &Platform::host())
        .unwrap_err();
    assert!(matches!(err, ImageError::Unpack { .. }), "{err}");
    assert!(err.to_string().contains("refused"), "{err}");
    assert!(!d.0.join("escaped").exists() && !std::env::temp_dir().join("escaped").exists());
    // Nothing half-made is left: no snapshot at all.
    assert!(store.snapshots.list("default").unwrap().is_empty());

    // A blob in an archive whose bytes do not match its name is rejected.
    let blobs = layout.join("blobs/sha256");
    let victim = fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    fs::write(&victim, b"tampered").unwrap();
    let archive = d.0.join("bad.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg("."));
    let store = Images::open(&d.0.join("store2")).unwrap();
    let err = store
        .import("default", fs::File::open(&archive).unwrap(), Some("x/y"))
        .unwrap_err();
    assert!(err.to_string().contains("has digest"), "{err}");
}

/// An archive missing a layer, or whose manifest gives a layer a wrong
/// size, is refused at import, naming the blob; nothing is recorded.
#[test]
fn incomplete_archives_are_refused_at_import() {
    let d = Dir::new("incomplete");
    let layout = umoci_image(&d.0);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let v2 = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "v2")
        .unwrap()
        .clone();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(v2["digest"].as_str().unwrap())).unwrap()).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let tar_of = |dir: &Path, out: &Path| {
        run(Command::new("tar")
            .arg("-C")
            .arg(dir)
            .arg("-cf")
            .arg(out)
            .arg("."));
    };
    // A wrong size: a manifest naming the layer with one byte too many.
    let bad = d.0.join("bad");
    run(Command::new("cp").arg("-a").arg(&layout).arg(&bad));
    let mut m2 = manifest.clone();
    m2["layers"][0]["size"] = serde_json::json!(m2["layers"][0]["size"].as_u64().unwrap() + 1);
    let bytes = serde_json::to_vec(&m2).unwrap();
    let md = berth_manager::store::digest::sha256_of(&bytes).to_string();
    fs::write(
        bad.join("blobs/sha256")
            .join(md.trim_start_matches("sha256:")),
        &bytes,
    )
    .unwrap();
    let idx = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "v2"}}]});
    fs::write(bad.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    let bad_tar = d.0.join("bad.tar");
    tar_of(&bad, &bad_tar);
    let store = Images::open(&d.0.join("store")).unwrap();
    let e = store
        .import("default", fs::File::open(&bad_tar).unwrap(), Some("x/bad"))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("layer 1 {layer}: its descriptor says")),
        "{e}"
    );
    assert!(store.list("default").unwrap().is_empty());
    // A missing layer.
    fs::remove_file(blob(&layer)).unwrap();
    let missing = d.0.join("missing.tar");
    tar_of(&layout, &missing);
    // A store of its own: the first store holds the layer from the first
    // archive (content stays until collected).
    let store = Images::open(&d.0.join("store2")).unwrap();
    let e = store
        .import(
            "default",
            fs::File::open(&missing).unwrap(),
            Some("x/missing"),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("layer 1 {layer} is not in the archive")),
        "{e}"
    );
    assert!(store.list("default").unwrap().is_empty());
}
