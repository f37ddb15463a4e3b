//! berthd and berthctl end to end: pulls from Debian's docker-registry on
//! 127.0.0.1 (images pushed with skopeo), by tag and digest, with htpasswd
//! auth, zstd layers and a multi-arch index; corrupted blobs rejected;
//! resumed and interrupted pulls; search (leases, collection and commit:
//! `store.rs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_integration::manager::{make_certs, Auth, Berthd, Redirector, Registry};
use berth_integration::oci::{run, tree, umoci_image};
use berth_integration::store::{chain_id, manifest_digest, manifest_raw, mount_view, push, Dir};
use berth_integration::{ok, stderr};

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
