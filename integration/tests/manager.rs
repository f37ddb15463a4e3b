//! berthd and berthctl end to end: pulls from Debian's docker-registry on
//! 127.0.0.1 (images pushed with skopeo), by tag and digest, with htpasswd
//! auth, zstd layers and a multi-arch index; corrupted blobs rejected;
//! resumed and interrupted pulls; import, export, tag, rmi.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_integration::manager::{make_certs, Auth, Berthd, Redirector, Registry};
use berth_integration::oci::{run, tree, umoci_image};
use berth_integration::{ok, stderr};
use berth_proto::images::snapshots_client::SnapshotsClient;
use berth_proto::images::{self as pb};

/// A test's directory; mounts under `<dir>/m*` are undone on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
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
fn push(layout: &Path, tag: &str, reg: &Registry, extra: &[&str]) {
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .args(extra)
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{}/bb:{tag}", reg.host)));
}

/// Mounts a view of an unpacked image's top snapshot at `at`.
fn mount_view(d: &Berthd, chain_id: &str, key: &str, at: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let m = rt.block_on(async {
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
    fs::create_dir_all(at).unwrap();
    run(Command::new("mount")
        .args([
            "-t",
            &m[0].r#type,
            "-o",
            &m[0].options.join(","),
            &m[0].source,
        ])
        .arg(at));
}

/// The top chain id of an image, through the Unpack call (a no-op when unpacked).
fn chain_id(d: &Berthd, name: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
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
fn manifest_raw(reg: &Registry, tag: &str) -> String {
    run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/bb:{tag}", reg.host)))
}

fn manifest_digest(reg: &Registry, tag: &str) -> String {
    berth_manager::store::digest::sha256_of(manifest_raw(reg, tag).as_bytes()).to_string()
}

#[test]
fn pull_by_tag_and_digest_unpacks_like_umoci() {
    let dir = Dir::new("pull");
    let layout = umoci_image(&dir.0);
    let reg = Registry::start(&dir.0.join("reg"), None);
    push(&layout, "v2", &reg, &[]);
    let d = Berthd::start(&dir.0.join("berthd"), &[]);
    let name = format!("{}/bb:v2", reg.host);
    let out = d.ctl(&["pull", &name]);
    assert_eq!(ok(&out).trim(), name, "{}", stderr(&out));
    let table = ok(&d.ctl(&["images"]));
    assert!(
        table.starts_with("REPOSITORY")
            && table.contains(&format!("{}/bb", reg.host))
            && table.contains(" v2 "),
        "{table}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(&d.ctl(&["images", "--format", "json"]))).unwrap();
    assert_eq!(v[0]["name"], name.as_str());
    assert!(v[0]["size"].as_u64().unwrap() > 100_000);
    mount_view(&d, &chain_id(&d, &name), "view1", &dir.0.join("m1"));
    assert_eq!(tree(&dir.0.join("m1")), tree(&dir.0.join("ref/rootfs")));

    // By digest: the same manifest, recorded under its digest reference.
    let digest = manifest_digest(&reg, "v2");
    let by_digest = format!("{}/bb@{digest}", reg.host);
    assert_eq!(ok(&d.ctl(&["pull", &by_digest])).trim(), by_digest);
    // tag, rmi, images -q.
    ok(&d.ctl(&["tag", &name, "local/copy:1"]));
    assert!(ok(&d.ctl(&["images", "--format", "json"])).contains("\"docker.io/local/copy:1\""));
    ok(&d.ctl(&["rmi", "local/copy:1"]));
    let out = d.ctl(&["rmi", "local/copy:1"]);
    assert!(
        !out.status.success() && stderr(&out).contains("not found"),
        "{}",
        stderr(&out)
    );

    // Export, then import into a second namespace: the same image.
    let tar = dir.0.join("export.tar");
    ok(&d.ctl(&["export", tar.to_str().unwrap(), &name]));
    let out = d.ctl(&["--namespace", "other", "import", tar.to_str().unwrap()]);
    assert_eq!(ok(&out).trim(), name);
    assert!(
        ok(&d.ctl(&["-n", "third", "images", "-q"])).is_empty(),
        "namespaces are isolated"
    );
}

/// Pushes v2 to `reg` (which wants tester:s3cret) and checks berthd: refused
/// without credentials, pulls with them from a docker config.json.
fn pull_needs_credentials(dir: &Dir, layout: &Path, reg: &Registry) {
    push(layout, "v2", reg, &["--dest-creds", "tester:s3cret"]);
    let name = format!("{}/bb:v2", reg.host);
    {
        let d = Berthd::start(
            &dir.0.join("anon"),
            &[("DOCKER_CONFIG", &dir.0.join("none"))],
        );
        let out = d.ctl(&["pull", &name]);
        assert!(!out.status.success(), "pulled without credentials");
        assert!(
            stderr(&out).to_lowercase().contains("authorized"),
            "{}",
            stderr(&out)
        );
    }
    // `login` checks the credentials with the registry, then keeps them
    // where berthd's pulls read them; `logout` takes them away.
    let cfg = dir.0.join("docker");
    let d = Berthd::start(&dir.0.join("authed"), &[("DOCKER_CONFIG", &cfg)]);
    let login = |password: &str| {
        let mut child = d
            .ctl_cmd(&["login", "-u", "tester", "--password-stdin", &reg.host])
            .env("DOCKER_CONFIG", &cfg)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            format!("{password}\n").as_bytes(),
        )
        .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = login("wrong");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("incorrect username or password"),
        "{}",
        stderr(&out)
    );
    assert!(
        !cfg.join("config.json").exists(),
        "bad credentials were kept"
    );
    assert_eq!(ok(&login("s3cret")), "Login Succeeded\n");
    let meta = fs::metadata(cfg.join("config.json")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(cfg.join("config.json")).unwrap()).unwrap();
    // base64("tester:s3cret"), under the host, as docker writes it.
    assert_eq!(v["auths"][&reg.host]["auth"], "dGVzdGVyOnMzY3JldA==");
    let out = d.ctl(&["pull", &name]);
    assert_eq!(ok(&out).trim(), name, "{}", stderr(&out));
    ok(&d.ctl(&["rmi", &name]));
    let out = d
        .ctl_cmd(&["logout", &reg.host])
        .env("DOCKER_CONFIG", &cfg)
        .output()
        .unwrap();
    assert_eq!(
        ok(&out),
        format!("Removing login credentials for {}\n", reg.host)
    );
    let out = d.ctl(&["pull", &name]);
    assert!(!out.status.success(), "pulled after logout");
}

/// A docker config directory with tester:s3cret for `host`.
fn docker_config(dir: &Dir, host: &str) -> PathBuf {
    let cfg = dir.0.join("docker");
    fs::create_dir_all(&cfg).unwrap();
    // base64("tester:s3cret")
    fs::write(
        cfg.join("config.json"),
        format!("{{\"auths\":{{\"{host}\":{{\"auth\":\"dGVzdGVyOnMzY3JldA==\"}}}}}}"),
    )
    .unwrap();
    cfg
}

fn htpasswd_registry(dir: &Dir) -> Registry {
    let htpasswd = dir.0.join("htpasswd");
    run(Command::new("htpasswd")
        .args(["-Bbc"])
        .arg(&htpasswd)
        .args(["tester", "s3cret"]));
    Registry::start(&dir.0.join("reg"), Some(&htpasswd))
}

fn port_of(host: &str) -> &str {
    host.rsplit(':').next().unwrap()
}

/// HTTPS with the system's CAs: a registry whose certificate a test CA signed
/// is refused (naming the certificate) until that CA is in the system bundle
/// berthd sees; a plain-HTTP registry under a name that is not loopback is
/// pulled from only when `--insecure-registry` lists it. berthd runs in a
/// private mount namespace whose /etc/hosts and CA bundle the test gives.
#[test]
fn pull_over_https_with_system_cas_and_listed_insecure_registries() {
    let dir = Dir::new("tls");
    let layout = umoci_image(&dir.0);
    let certs = dir.0.join("certs");
    make_certs(&certs, "registry.berth.test");
    let tls = Registry::start_tls(&dir.0.join("tls"), &certs);
    push(&layout, "v2", &tls, &[]);
    let plain = Registry::start(&dir.0.join("plain"), None);
    push(&layout, "v2", &plain, &[]);
    let hosts = dir.0.join("hosts");
    fs::write(
        &hosts,
        "127.0.0.1 localhost\n127.0.0.1 registry.berth.test plain.berth.test\n",
    )
    .unwrap();
    // The system bundle with one more CA, as update-ca-certificates makes it.
    let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
    let bundle = dir.0.join("ca-certificates.crt");
    let mut pem = fs::read(system).expect("the ca-certificates package");
    pem.extend(fs::read(certs.join("ca.crt")).unwrap());
    fs::write(&bundle, pem).unwrap();
    let tls_name = format!("registry.berth.test:{}/bb:v2", port_of(&tls.host));
    let plain_registry = format!("plain.berth.test:{}", port_of(&plain.host));
    let plain_name = format!("{plain_registry}/bb:v2");
    let etc_hosts = Path::new("/etc/hosts");
    {
        let d = Berthd::start_binding(
            &dir.0.join("d1"),
            &[(&hosts, etc_hosts)],
            &["--insecure-registry", &plain_registry],
        );
        let out = d.ctl(&["pull", &tls_name]);
        assert!(!out.status.success(), "pulled without the CA");
        assert!(stderr(&out).contains("certificate"), "{}", stderr(&out));
        let out = d.ctl(&["pull", &plain_name]);
        assert_eq!(ok(&out).trim(), plain_name, "{}", stderr(&out));
    }
    let d = Berthd::start_binding(
        &dir.0.join("d2"),
        &[(&hosts, etc_hosts), (&bundle, system)],
        &[],
    );
    let out = d.ctl(&["pull", &tls_name]);
    assert_eq!(ok(&out).trim(), tls_name, "{}", stderr(&out));
    let out = d.ctl(&["pull", &plain_name]);
    assert!(!out.status.success(), "pulled over plain HTTP unlisted");
    // A bad entry is refused at start, naming it.
    let out = Command::new(berth_integration::manager::sibling("berthd"))
        .args(["--insecure-registry", "http://x", "--root"])
        .arg(dir.0.join("d3"))
        .output()
        .unwrap();
    assert!(
        !out.status.success() && stderr(&out).contains("http://x"),
        "{}",
        stderr(&out)
    );
}

/// A registry that sends blob downloads to another host (as registries on
/// object storage do): berthd follows the redirect, and the credentials it
/// gave the registry do not go with it.
#[test]
fn redirected_blobs_are_fetched_without_the_registrys_credentials() {
    let dir = Dir::new("redirect");
    let layout = umoci_image(&dir.0);
    let reg = htpasswd_registry(&dir);
    push(&layout, "v2", &reg, &["--dest-creds", "tester:s3cret"]);
    let front = Redirector::start(&dir.0.join("front"), &reg);
    let cfg = docker_config(&dir, &front.host);
    let d = Berthd::start(&dir.0.join("berthd"), &[("DOCKER_CONFIG", &cfg)]);
    let name = format!("{}/bb:v2", front.host);
    let out = d.ctl(&["pull", &name]);
    assert_eq!(ok(&out).trim(), name, "{}", stderr(&out));
    let log = fs::read_to_string(dir.0.join("front/blob-requests.log")).unwrap();
    // The config and every layer came from the other host, none with credentials.
    assert!(log.lines().count() >= 2, "{log}");
    assert!(log.lines().all(|l| l.ends_with(" no-auth")), "{log}");
}

#[test]
fn pull_with_htpasswd_auth() {
    let dir = Dir::new("auth");
    let layout = umoci_image(&dir.0);
    let reg = htpasswd_registry(&dir);
    pull_needs_credentials(&dir, &layout, &reg);
}

/// Bearer tokens, as Docker Hub and most registries use them: the registry
/// sends the client to a token server, which wants the Basic credentials.
#[test]
fn pull_with_token_auth() {
    let dir = Dir::new("token");
    let layout = umoci_image(&dir.0);
    let auth = Auth::Token {
        user: "tester",
        password: "s3cret",
    };
    let reg = Registry::start_with(&dir.0.join("reg"), auth);
    pull_needs_credentials(&dir, &layout, &reg);
}

#[test]
fn zstd_layers_and_a_multi_arch_index() {
    let dir = Dir::new("multi");
    let layout = umoci_image(&dir.0);
    let reg = Registry::start(&dir.0.join("reg"), None);
    push(
        &layout,
        "v2",
        &reg,
        &[
            "--dest-compress-format",
            "zstd",
            "--dest-oci-accept-uncompressed-layers",
        ],
    );
    // An index: this host's platform → v2, linux/arm64 → base.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let by_tag = |t: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == t)
            .unwrap()
            .clone()
    };
    let host = berth_manager::store::oci::Platform::host();
    let (mut v2, mut base) = (by_tag("v2"), by_tag("base"));
    v2["platform"] = serde_json::json!({"os": "linux", "architecture": host.architecture});
    base["platform"] = serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
    v2.as_object_mut().unwrap().remove("annotations");
    base.as_object_mut().unwrap().remove("annotations");
    let multi = serde_json::json!({"schemaVersion": 2, "mediaType": berth_manager::store::oci::MT_OCI_INDEX, "manifests": [v2, base]});
    let bytes = serde_json::to_vec(&multi).unwrap();
    let digest = berth_manager::store::digest::sha256_of(&bytes);
    fs::write(layout.join("blobs/sha256").join(digest.hex()), &bytes).unwrap();
    let mut idx = index.clone();
    idx["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": berth_manager::store::oci::MT_OCI_INDEX, "digest": digest.to_string(), "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}));
    fs::write(layout.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    push(&layout, "multi", &reg, &["--all"]);

    let d = Berthd::start(&dir.0.join("berthd"), &[]);
    // zstd layers unpack to the same tree.
    let zname = format!("{}/bb:v2", reg.host);
    let out = d.ctl(&["pull", &zname]);
    assert!(out.status.success(), "{}", stderr(&out));
    mount_view(&d, &chain_id(&d, &zname), "vz", &dir.0.join("m1"));
    assert_eq!(tree(&dir.0.join("m1")), tree(&dir.0.join("ref/rootfs")));
    // The index: this host gets v2; --platform linux/arm64 gets base.
    let mname = format!("{}/bb:multi", reg.host);
    ok(&d.ctl(&["pull", &mname]));
    mount_view(&d, &chain_id(&d, &mname), "vm", &dir.0.join("m2"));
    assert!(dir.0.join("m2/opt/keep/new").exists() && !dir.0.join("m2/opt/keep/old").exists());
    let v: serde_json::Value =
        serde_json::from_str(&ok(&d.ctl(&["images", "--format", "json"]))).unwrap();
    let entry = v
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == mname.as_str())
        .unwrap();
    assert_eq!(
        entry["digest"],
        digest.to_string().as_str(),
        "the image names the index"
    );
    let out = d.ctl(&["pull", "--platform", "linux/arm64", "--no-unpack", &mname]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = d.ctl(&["pull", "--platform", "linux/s390x", &mname]);
    assert!(
        stderr(&out).contains("no manifest for platform linux/s390x"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn corrupted_blob_is_rejected_and_partial_pulls_resume() {
    let dir = Dir::new("corrupt");
    let layout = umoci_image(&dir.0);
    let reg = Registry::start(&dir.0.join("reg"), None);
    push(&layout, "v2", &reg, &[]);
    let raw = manifest_raw(&reg, "v2");
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let base_layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let d = Berthd::start(&dir.0.join("berthd"), &[]);
    let name = format!("{}/bb:v2", reg.host);

    // Plant the first half of the big layer as an interrupted ingest.
    let blob = fs::read(reg.blob_path(&base_layer)).unwrap();
    let ingest = d
        .root
        .join("content/ingest")
        .join(base_layer.replacen(':', "-", 1));
    fs::write(&ingest, &blob[..blob.len() / 2]).unwrap();
    let out = d.ctl(&["pull", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("resuming"), "{}", stderr(&out));
    assert!(!ingest.exists());
    assert_eq!(
        fs::read(
            d.root
                .join("content/blobs/sha256")
                .join(base_layer.trim_start_matches("sha256:"))
        )
        .unwrap(),
        blob
    );

    // A corrupted blob in the registry: refused, named, not stored.
    let top = m["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let p = reg.blob_path(&top);
    let mut bad = fs::read(&p).unwrap();
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    fs::write(&p, &bad).unwrap();
    let d2 = Berthd::start(&dir.0.join("berthd2"), &[]);
    let out = d2.ctl(&["pull", &name]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&top) && stderr(&out).contains("digest"),
        "{}",
        stderr(&out)
    );
    assert!(
        ok(&d2.ctl(&["images", "-q"])).trim().is_empty(),
        "no image recorded"
    );
    assert!(!d2
        .root
        .join("content/blobs/sha256")
        .join(top.trim_start_matches("sha256:"))
        .exists());
}

#[test]
fn berthd_killed_during_a_pull_then_pull_completes() {
    let dir = Dir::new("kill");
    let layout = umoci_image(&dir.0);
    let reg = Registry::start(&dir.0.join("reg"), None);
    push(&layout, "v2", &reg, &[]);
    let name = format!("{}/bb:v2", reg.host);
    let bdir = dir.0.join("berthd");
    let d = Berthd::start(&bdir, &[]);
    let mut pull = Command::new(berth_integration::manager::sibling("berthctl"))
        .arg("--address")
        .arg(&d.address)
        .args(["pull", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    d.kill();
    let _ = pull.wait();
    // Restarted on the same root: the store opens, the pull completes.
    let d = Berthd::start(&bdir, &[]);
    let out = d.ctl(&["pull", &name]);
    assert_eq!(ok(&out).trim(), name, "{}", stderr(&out));
    mount_view(&d, &chain_id(&d, &name), "vk", &dir.0.join("m3"));
    assert_eq!(tree(&dir.0.join("m3")), tree(&dir.0.join("ref/rootfs")));
}

/// The store's counts: (images, blobs, snapshots), from the DiskUsage call
/// (`system df` shows docker's rows, not these).
fn df(d: &Berthd) -> (u64, u64, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let u = rt.block_on(async {
        let ch = berth_proto::connect_unix(&d.address).await.unwrap();
        berth_proto::images::images_client::ImagesClient::new(ch)
            .disk_usage(pb::Empty {})
            .await
            .unwrap()
            .into_inner()
    });
    (u.images, u.blobs, u.snapshots)
}

/// Leases over gRPC: a lease on an image's manifest and top layer keeps the
/// manifest, what it references and the layer snapshot through `rmi` and
/// `prune --all`; once it is deleted, and an expired one holds nothing, the
/// next collection takes them.
#[test]
fn leases_keep_content_and_snapshots_from_collection() {
    use berth_proto::images::leases_client::LeasesClient;
    let dir = Dir::new("leases");
    let layout = umoci_image(&dir.0);
    let reg = Registry::start(&dir.0.join("reg"), None);
    push(&layout, "base", &reg, &[]);
    let d = Berthd::start(&dir.0.join("berthd"), &[]);
    let base = format!("{}/bb:base", reg.host);
    ok(&d.ctl(&["pull", &base]));
    assert_eq!(df(&d), (1, 3, 1));
    let manifest = manifest_digest(&reg, "base");
    let chain = chain_id(&d, &base);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut c = rt.block_on(async {
        LeasesClient::new(berth_proto::connect_unix(&d.address).await.unwrap())
    });
    let res = |lease: &str, kind: &str, id: &str| pb::LeaseResource {
        lease: lease.into(),
        r#type: kind.into(),
        id: id.into(),
    };
    rt.block_on(async {
        let l = c
            .create(pb::CreateLeaseRequest {
                id: "hold".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((l.id.as_str(), l.expires), ("hold", 0));
        c.add_resource(res("hold", "content", &manifest))
            .await
            .unwrap();
        c.add_resource(res("hold", "snapshots", &chain))
            .await
            .unwrap();
        let e = c
            .add_resource(res("hold", "images", "x"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        let e = c
            .add_resource(res("nope", "content", &manifest))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
        let e = c
            .create(pb::CreateLeaseRequest {
                id: "hold".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e}");
        let r = c
            .list_resources(pb::LeaseRequest { id: "hold".into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.resources.len(), 2);
    });
    ok(&d.ctl(&["rmi", &base]));
    ok(&d.ctl(&["image", "prune", "--all"]));
    // The manifest, its config and layer, and the layer snapshot stay.
    assert_eq!(df(&d), (0, 3, 1));
    rt.block_on(async {
        c.create(pb::CreateLeaseRequest {
            id: "short".into(),
            expire_seconds: 1,
            ..Default::default()
        })
        .await
        .unwrap();
        c.add_resource(res("short", "content", &manifest))
            .await
            .unwrap();
        c.delete(pb::LeaseRequest { id: "hold".into() })
            .await
            .unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(2100));
    ok(&d.ctl(&["image", "prune", "--all"]));
    assert_eq!(df(&d), (0, 0, 0));
    let left = rt.block_on(async { c.list(pb::Empty {}).await.unwrap().into_inner() });
    assert!(
        left.leases.is_empty(),
        "expired leases are dropped: {left:?}"
    );
}

#[test]
fn rmi_and_prune_collect_unused_content_and_layers() {
    let dir = Dir::new("gc");
    let layout = umoci_image(&dir.0);
    let reg = Registry::start(&dir.0.join("reg"), None);
    push(&layout, "base", &reg, &[]);
    push(&layout, "v2", &reg, &[]);
    let d = Berthd::start(&dir.0.join("berthd"), &[]);
    let (base, v2) = (
        format!("{}/bb:base", reg.host),
        format!("{}/bb:v2", reg.host),
    );
    ok(&d.ctl(&["pull", &base]));
    ok(&d.ctl(&["pull", &v2]));
    // base: manifest, config, 1 layer; v2 adds manifest, config, 1 layer.
    assert_eq!(df(&d), (2, 6, 2));
    // Removing v2 frees what only v2 used; base's layer stays.
    ok(&d.ctl(&["rmi", &v2]));
    assert_eq!(df(&d), (1, 3, 1));
    // A digest-only image is untagged: prune takes it, not the tagged one.
    let by_digest = format!("{}/bb@{}", reg.host, manifest_digest(&reg, "base"));
    ok(&d.ctl(&["pull", &by_digest]));
    let out = ok(&d.ctl(&["image", "prune"]));
    assert!(out.contains(&format!("untagged: {by_digest}")), "{out}");
    assert_eq!(df(&d).0, 1);
    // A live snapshot keeps its layers through `prune --all`; content goes.
    mount_view(&d, &chain_id(&d, &base), "live", &dir.0.join("m1"));
    let out = ok(&d.ctl(&["image", "prune", "--all"]));
    assert!(out.contains(&format!("untagged: {base}")), "{out}");
    assert_eq!(df(&d), (0, 0, 2));
    assert!(dir.0.join("m1/bin/busybox").exists());
}

#[test]
fn commit_makes_a_container_filesystem_an_image() {
    let dir = Dir::new("commit");
    let layout = umoci_image(&dir.0);
    let reg = Registry::start(&dir.0.join("reg"), None);
    push(&layout, "v2", &reg, &[]);
    let d = Berthd::start(&dir.0.join("berthd"), &[]);
    let v2 = format!("{}/bb:v2", reg.host);
    ok(&d.ctl(&["pull", &v2]));
    // A container's filesystem: an active snapshot over v2, changed.
    let parent = chain_id(&d, &v2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let m = rt.block_on(async {
        let ch = berth_proto::connect_unix(&d.address).await.unwrap();
        SnapshotsClient::new(ch)
            .prepare(pb::PrepareRequest {
                key: "ctr1".into(),
                parent,
            })
            .await
            .unwrap()
            .into_inner()
            .mounts
    });
    let m1 = dir.0.join("m1");
    fs::create_dir_all(&m1).unwrap();
    run(Command::new("mount")
        .args([
            "-t",
            &m[0].r#type,
            "-o",
            &m[0].options.join(","),
            &m[0].source,
        ])
        .arg(&m1));
    fs::write(m1.join("opt/keep/added"), "added").unwrap();
    fs::remove_file(m1.join("bin/cat")).unwrap();
    fs::remove_dir_all(m1.join("etc")).unwrap();
    fs::create_dir(m1.join("etc")).unwrap();
    fs::write(m1.join("etc/only"), "only").unwrap();
    let want = tree(&m1);
    run(Command::new("umount").arg(&m1));

    let name = ok(&d.ctl(&[
        "commit",
        "--from",
        &v2,
        "ctr1",
        "local/committed:1",
        "-m",
        "test",
    ]));
    assert_eq!(name.trim(), "docker.io/local/committed:1");
    mount_view(
        &d,
        &chain_id(&d, "local/committed:1"),
        "vc",
        &dir.0.join("m2"),
    );
    assert_eq!(tree(&dir.0.join("m2")), want);
    // umoci reads the exported image the same way.
    let tar = dir.0.join("committed.tar");
    ok(&d.ctl(&["export", tar.to_str().unwrap(), "local/committed:1"]));
    let l2 = dir.0.join("layout2");
    fs::create_dir_all(&l2).unwrap();
    run(Command::new("tar").arg("-C").arg(&l2).arg("-xf").arg(&tar));
    run(Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:1", l2.display())])
        .arg(dir.0.join("b2")));
    assert_eq!(tree(&dir.0.join("b2/rootfs")), want);
}

/// `berthctl lease`: create (id, labels, expiry), ls, add/del/resources, rm,
/// and clear errors for bad input.
#[test]
fn lease_commands() {
    let dir = Dir::new("leasecli");
    let d = Berthd::start(&dir.0.join("berthd"), &[]);
    assert_eq!(
        ok(&d.ctl(&["lease", "create", "--id", "keep", "-l", "owner=ci", "--expire", "2h"])).trim(),
        "keep"
    );
    let generated = ok(&d.ctl(&["lease", "create"])).trim().to_string();
    assert!(!generated.is_empty() && generated != "keep");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&d.ctl(&["lease", "ls", "--format", "json"]))).unwrap();
    let keep = v
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "keep")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(keep["labels"]["owner"], "ci");
    let (created, expires) = (
        keep["created"].as_u64().unwrap(),
        keep["expires"].as_u64().unwrap(),
    );
    assert!((7190..=7210).contains(&(expires - created)), "{keep}");
    let table = ok(&d.ctl(&["lease", "ls"]));
    assert!(
        table.contains("owner=ci") && table.contains(&generated),
        "{table}"
    );

    let digest = format!("sha256:{}", "ab".repeat(32));
    ok(&d.ctl(&["lease", "add", "keep", "content", &digest]));
    ok(&d.ctl(&["lease", "add", "keep", "snapshots", "some-key"]));
    let res = ok(&d.ctl(&["lease", "resources", "keep"]));
    assert!(
        res.contains(&format!("content {digest}")) && res.contains("snapshots some-key"),
        "{res}"
    );
    ok(&d.ctl(&["lease", "del", "keep", "snapshots", "some-key"]));
    assert_eq!(
        ok(&d.ctl(&["lease", "resources", "keep"])).trim(),
        format!("content {digest}")
    );

    for (args, want) in [
        (
            &["lease", "create", "--expire", "1w"][..],
            "--expire \"1w\"",
        ),
        (
            &["lease", "create", "-l", "novalue"][..],
            "--label \"novalue\"",
        ),
        (
            &["lease", "add", "keep", "blobs", "x"][..],
            "content or snapshots",
        ),
        (&["lease", "rm", "nosuch"][..], "nosuch"),
    ] {
        let out = d.ctl(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    ok(&d.ctl(&["lease", "rm", "keep", &generated]));
    assert_eq!(ok(&d.ctl(&["lease", "ls", "-q"])).trim(), "");
}

#[test]
fn search_finds_repositories_in_a_registry_catalog() {
    let dir = Dir::new("search");
    let layout = umoci_image(&dir.0);
    let reg = Registry::start(&dir.0.join("reg"), None);
    for repo in ["bb", "tools/busybox-extra", "nginx"] {
        run(Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v2", layout.display()))
            .arg(format!("docker://{}/{repo}:v2", reg.host)));
    }
    let d = Berthd::start(&dir.0.join("d"), &[]);
    let out = ok(&d.ctl(&["search", &format!("{}/b", reg.host)]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("OFFICIAL"),
        "{out}"
    );
    let names: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            format!("{}/bb", reg.host),
            format!("{}/tools/busybox-extra", reg.host)
        ]
    );
    let out = ok(&d.ctl(&["search", "--limit", "1", &format!("{}/b", reg.host)]));
    assert_eq!(out.lines().count(), 2, "{out}");
    // --list-tags: each repository's tags.
    let out = ok(&d.ctl(&["search", "--list-tags", &format!("{}/busybox", reg.host)]));
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let repo = format!("{}/tools/busybox-extra", reg.host);
    assert_eq!(
        rows,
        [vec!["NAME", "TAG"], vec![repo.as_str(), "v2"]],
        "{out}"
    );
    // A catalog knows no stars: `--filter stars=1` leaves the header alone.
    let out = ok(&d.ctl(&["search", "-f", "stars=1", &format!("{}/b", reg.host)]));
    assert_eq!(out.lines().count(), 1, "{out}");
    // Docker Hub is out of reach here: a clear error, not an empty table.
    let out = d.ctl(&["search", "busybox"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("search docker.io"),
        "{}",
        stderr(&out)
    );
}

/// What an interrupted import or download leaves (spool files, ingests of
/// unknown digest, resumable ingests untouched for a day) goes when berthd
/// starts; a recent resumable download stays, and `system df -v` counts it.
#[test]
fn stale_spools_and_ingests_go_at_start() {
    let dir = Dir::new("stale");
    let bdir = dir.0.join("berthd");
    let d = Berthd::start(&bdir, &[]);
    let root = d.root.clone();
    d.kill();
    let spool = root.join("tmp/import-123-0");
    fs::write(&spool, vec![0u8; 10_000]).unwrap();
    let unknown = root.join("content/ingest/unknown-99-0");
    fs::write(&unknown, vec![0u8; 20_000]).unwrap();
    let old = root.join(format!("content/ingest/sha256-{}", "a".repeat(64)));
    fs::write(&old, vec![0u8; 30_000]).unwrap();
    let two_days = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 24 * 3600);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_days)
        .unwrap();
    let fresh = root.join(format!("content/ingest/sha256-{}", "b".repeat(64)));
    fs::write(&fresh, vec![0u8; 4_000]).unwrap();
    let d = Berthd::start(&bdir, &[]);
    assert!(!spool.exists() && !unknown.exists() && !old.exists());
    assert!(fresh.exists(), "a recent download is kept for resuming");
    let out = ok(&d.ctl(&["system", "df", "-v"]));
    assert!(
        out.contains("Partial downloads (kept for resuming): 1 files, 4kB"),
        "{out}"
    );
}

#[test]
fn the_same_image_pulled_eight_times_at_once_is_pulled_by_all() {
    // Each pull met the others' ingests as "being written by another
    // client" and failed (or fell through to the next mirror); now each
    // waits for the writer and finds the blob in place.
    let dir = Dir::new("pull-race");
    let layout = umoci_image(&dir.0);
    let reg = Registry::start(&dir.0.join("reg"), None);
    push(&layout, "v2", &reg, &[]);
    let d = Berthd::start(&dir.0.join("berthd"), &[]);
    let name = format!("{}/bb:v2", reg.host);
    let pulls: Vec<_> = (0..8)
        .map(|_| {
            d.ctl_cmd(&["pull", &name])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for p in pulls {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = d.ctl(&["run", "--rm", "--net", "none", &name, "true"]);
    ok(&out);
}
