//! `berthctl push` end to end, against Debian's docker-registry with Bearer
//! tokens: layers pushed, found, mounted across repositories, an upload
//! broken off and resumed; what was pushed pulls back with the same digest
//! through skopeo and podman, and runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_integration::manager::{Auth, Berthd, CuttingProxy, Registry};
use berth_integration::oci::{run, umoci_image};
use berth_integration::{ok, stderr};

/// A test's directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("berth-it-push-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // podman's vfs store may hold read-only directories: make them ours.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&self.0)
            .output();
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A docker config directory with tester:s3cret for each of `hosts`.
fn docker_config(dir: &Path, hosts: &[&str]) -> PathBuf {
    let cfg = dir.join("docker");
    fs::create_dir_all(&cfg).unwrap();
    let auths: Vec<String> = hosts
        .iter()
        // base64("tester:s3cret")
        .map(|h| format!("\"{h}\":{{\"auth\":\"dGVzdGVyOnMzY3JldA==\"}}"))
        .collect();
    fs::write(
        cfg.join("config.json"),
        format!("{{\"auths\":{{{}}}}}", auths.join(",")),
    )
    .unwrap();
    cfg
}

/// The digest of a local image, as berthd records it.
fn local_digest(d: &Berthd, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&ok(&d.ctl(&["images", "--format", "json"]))).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no image {name} in {v}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The digest of the manifest the registry serves for `reference`.
fn remote_digest(reference: &str) -> String {
    let raw = run(Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "tester:s3cret",
        ])
        .arg(format!("docker://{reference}")));
    berth_manager::store::digest::sha256_of(raw.as_bytes()).to_string()
}

#[test]
fn push_then_pull_back_with_the_same_digest() {
    let dir = Dir::new("push");
    let layout = umoci_image(&dir.0);
    let src = Registry::start(&dir.0.join("src"), None);
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v2", layout.display()))
        .arg(format!("docker://{}/bb:v2", src.host)));
    let dst = Registry::start_with(
        &dir.0.join("dst"),
        Auth::Token {
            user: "tester",
            password: "s3cret",
        },
    );
    let proxy = CuttingProxy::start(&dir.0.join("proxy"), &dst);
    let source = format!("{}/bb:v2", src.host);

    // Without credentials the registry refuses, and the error says so.
    {
        let d = Berthd::start(
            &dir.0.join("anon"),
            &[("DOCKER_CONFIG", &dir.0.join("none"))],
        );
        ok(&d.ctl(&["pull", &source]));
        let name = format!("{}/app:v1", dst.host);
        ok(&d.ctl(&["tag", &source, &name]));
        let out = d.ctl(&["push", &name]);
        assert!(!out.status.success(), "pushed without credentials");
        assert!(
            stderr(&out).contains("unauthorized") || stderr(&out).contains("denied"),
            "{}",
            stderr(&out)
        );
    }

    let cfg = docker_config(&dir.0, &[&dst.host, &proxy.host]);
    let d = Berthd::start(&dir.0.join("berthd"), &[("DOCKER_CONFIG", &cfg)]);
    ok(&d.ctl(&["pull", &source]));
    let app = format!("{}/app:v1", dst.host);
    ok(&d.ctl(&["tag", &source, &app]));
    let digest = local_digest(&d, &app);
    let manifest: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{source}"))))
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap().len();

    // Every layer pushed, then the tag's digest: the local one.
    let out = ok(&d.ctl(&["push", &app]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("The push refers to repository [{}/app]", dst.host),
        "{out}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(": Pushed")).count(),
        layers,
        "{out}"
    );
    let size = fs::metadata(dst.blob_path(&digest))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(
        *lines.last().unwrap(),
        format!("v1: digest: {digest} size: {size}"),
        "{out}"
    );
    assert_eq!(remote_digest(&app), digest);

    // Again: the registry has every layer.
    let out = ok(&d.ctl(&["push", &app]));
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with(": Layer already exists"))
            .count(),
        layers,
        "{out}"
    );

    // Another repository of the same registry: the layers are mounted.
    let other = format!("{}/other:v1", dst.host);
    ok(&d.ctl(&["tag", &source, &other]));
    let out = ok(&d.ctl(&["push", &other]));
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with(": Mounted from app"))
            .count(),
        layers,
        "{out}"
    );
    assert_eq!(remote_digest(&other), digest);

    // A connection broken in the middle of a layer: the upload resumes
    // where the registry stopped, and the image is whole.
    let resumed = format!("{}/resumed:v1", proxy.host);
    ok(&d.ctl(&["tag", &source, &resumed]));
    let out = d.ctl(&["push", "-q", &resumed]);
    assert_eq!(ok(&out), format!("{resumed}\n"), "{}", stderr(&out));
    // The registry held half the chunk when the connection went.
    assert!(
        proxy.cuts().starts_with("cut ") && proxy.cuts().contains("registry said 202"),
        "nothing was cut: {:?}",
        proxy.cuts()
    );
    assert_eq!(remote_digest(&format!("{}/resumed:v1", dst.host)), digest);

    // skopeo and podman pull it back with the same digest.
    let back = dir.0.join("back");
    run(Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--src-creds",
            "tester:s3cret",
        ])
        .arg(format!("docker://{app}"))
        .arg(format!("oci:{}:v1", back.display())));
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(dir.0.join("podman/root"))
            .arg("--runroot")
            .arg(dir.0.join("podman/run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(args);
        c
    };
    run(&mut podman(&[
        "pull",
        "-q",
        "--tls-verify=false",
        "--creds",
        "tester:s3cret",
        &app,
    ]));
    let listed = run(&mut podman(&[
        "images",
        "--digests",
        "--format",
        "{{.Digest}}",
    ]));
    assert_eq!(listed.trim(), digest, "podman: {listed}");

    // And it runs from berthd, pulled back from the registry.
    for name in [&app, &other, &resumed, &source] {
        ok(&d.ctl(&["rmi", name]));
    }
    ok(&d.ctl(&["pull", &app]));
    let out = d.ctl(&["run", "--rm", "--net", "none", &app, "cat", "/opt/keep/new"]);
    assert_eq!(ok(&out), "new", "{}", stderr(&out));

    // A digest is no tag to push to.
    let out = d.ctl(&["push", &format!("{}/app@{digest}", dst.host)]);
    assert!(
        !out.status.success() && stderr(&out).contains("cannot push a digest reference"),
        "{}",
        stderr(&out)
    );
}
