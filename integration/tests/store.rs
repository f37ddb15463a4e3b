//! The store end to end through berthd and berthctl: leases keeping
//! content and snapshots from collection, rmi and prune, commit, the lease
//! commands, and stale spools and ingests removed at start.

use std::fs;
use std::process::Command;

use berth_integration::manager::{Berthd, Registry};
use berth_integration::oci::{run, tree, umoci_image};
use berth_integration::store::{
    block_on, chain_id, df, manifest_digest, mount_at, mount_view, push, Dir,
};
use berth_integration::{ok, stderr};
use berth_proto::images::snapshots_client::SnapshotsClient;
use berth_proto::images::{self as pb};

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
    let m = block_on(async {
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
    mount_at(&m[0], &m1);
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
