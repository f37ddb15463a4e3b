//! Images through the CRI: by id, tag and digest, one id for two tags,
//! pulls through registry mirrors, and a host-network pod running the
//! pulled image.

use berth_integration::cri::{CriStack, BUSYBOX};
use k8s_cri::v1 as cri;
use std::fs;

#[test]
fn images_by_id_tag_and_digest_with_one_id_for_two_tags() {
    let c = CriStack::new("images");
    let mut is = c.is.clone();
    let list = c
        .call(is.list_images(cri::ListImagesRequest { filter: None }))
        .unwrap()
        .images;
    assert_eq!(list.len(), 1, "{list:?}");
    let img = &list[0];
    assert!(img.id.starts_with("sha256:"), "{}", img.id);
    assert_eq!(img.repo_tags, ["docker.io/berth/busybox:latest"]);
    assert_eq!(img.repo_digests.len(), 1);
    assert!(img.repo_digests[0].starts_with("docker.io/berth/busybox@sha256:"));
    assert_eq!(img.uid, Some(cri::Int64Value { value: 0 }));
    let status = |name: &str| {
        let mut is = c.is.clone();
        c.call(is.image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: name.into(),
                ..Default::default()
            }),
            verbose: false,
        }))
        .unwrap()
        .image
    };
    for name in [
        BUSYBOX,
        "berth/busybox",
        img.id.as_str(),
        &img.id[7..19],
        img.repo_digests[0].as_str(),
    ] {
        assert_eq!(status(name).map(|i| i.id), Some(img.id.clone()), "{name}");
    }
    assert_eq!(status("no/such:image"), None);
    // A second tag: one image, two RepoTags.
    berth_integration::ok(&c.s.ctl(&["-n", "k8s.io", "tag", BUSYBOX, "example.com/other:v2"]));
    let list = c
        .call(is.list_images(cri::ListImagesRequest { filter: None }))
        .unwrap()
        .images;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].repo_tags.len(), 2);
    // Removing by id takes every tag; removing again is fine.
    c.call(is.remove_image(cri::RemoveImageRequest {
        image: Some(cri::ImageSpec {
            image: img.id.clone(),
            ..Default::default()
        }),
    }))
    .unwrap();
    assert_eq!(status(BUSYBOX), None);
    assert_eq!(status("example.com/other:v2"), None);
    c.call(is.remove_image(cri::RemoveImageRequest {
        image: Some(cri::ImageSpec {
            image: img.id.clone(),
            ..Default::default()
        }),
    }))
    .unwrap();
    let fs = c
        .call(is.image_fs_info(cri::ImageFsInfoRequest {}))
        .unwrap();
    assert_eq!(fs.image_filesystems.len(), 1);
}

#[test]
fn pulls_go_through_registry_mirrors_and_a_host_network_pod_runs_the_image() {
    let mut c = CriStack::in_host_net("mirror");
    let layout = c.s.dir.join("layout");
    fs::create_dir_all(&layout).unwrap();
    berth_integration::ok(
        &std::process::Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-xf")
            .arg(c.s.dir.join("busybox.tar"))
            .output()
            .unwrap(),
    );
    let reg = berth_integration::manager::Registry::start(&c.s.dir.join("reg"), None);
    for dest in ["e2e-test-images/busybox:1.29-2", "library/busybox:mirrored"] {
        berth_integration::ok(
            &std::process::Command::new("skopeo")
                .args(["copy", "--quiet", "--dest-tls-verify=false"])
                .arg(format!("oci:{}:latest", layout.display()))
                .arg(format!("docker://{}/{dest}", reg.host))
                .output()
                .unwrap(),
        );
    }
    // registry.k8s.io and docker.io served by the loopback registry.
    let config = c.s.dir.join("berthd.toml");
    fs::write(
        &config,
        format!(
            "registry_mirrors = [\"http://{h}\"]\n[registries.\"registry.k8s.io\"]\nmirrors = [\"http://{h}\"]\n",
            h = reg.host
        ),
    )
    .unwrap();
    c.s.extra_args = vec!["--config".into(), config.display().to_string()];
    drop(c.s.d.take());
    c.s.start();
    c.reconnect();
    let pull = |name: &str| {
        let mut is = c.is.clone();
        c.call(is.pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: name.into(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        }))
    };
    let k8s = "registry.k8s.io/e2e-test-images/busybox:1.29-2";
    let id = pull(k8s)
        .expect("pull through the registry.k8s.io mirror")
        .image_ref;
    assert!(id.starts_with("sha256:"), "{id}");
    let id2 = pull("busybox:mirrored")
        .expect("pull through the docker.io mirror")
        .image_ref;
    assert_eq!(id, id2, "the same content is the same image");
    let mut is = c.is.clone();
    let img = c
        .call(is.image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: id.clone(),
                ..Default::default()
            }),
            verbose: false,
        }))
        .unwrap()
        .image
        .unwrap();
    // The canonical names, not the mirror's.
    for name in [k8s, "docker.io/library/busybox:mirrored"] {
        assert!(
            img.repo_tags.iter().any(|t| t == name),
            "{:?}",
            img.repo_tags
        );
    }
    assert!(
        !img.repo_tags.iter().any(|t| t.contains("127.0.0.1")),
        "{:?}",
        img.repo_tags
    );
    // A pod on the node's network runs it.
    let mut pc = c.pod_config("hostnet");
    pc.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options = Some(cri::NamespaceOption {
        network: cri::NamespaceMode::Node as i32,
        ..Default::default()
    });
    let pod = c.run_pod(&pc);
    assert_eq!(
        c.pod_status(&pod).state,
        cri::PodSandboxState::SandboxReady as i32
    );
    let mut cfg = c.container_config("app", "exec sleep 1000");
    cfg.image = Some(cri::ImageSpec {
        image: k8s.into(),
        ..Default::default()
    });
    let app = c.start(&pod, &pc, cfg);
    let host_net = fs::read_link("/proc/self/ns/net")
        .unwrap()
        .display()
        .to_string();
    assert_eq!(
        c.exec_ok(&app, "readlink /proc/self/ns/net").trim(),
        host_net
    );
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(c.exec_ok(&app, "hostname"), host_name);
    c.remove_pod(&pod);
    c.assert_nothing_left();
}
