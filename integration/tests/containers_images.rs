//! Images through the whole stack as docker users meet them: save and
//! load, history over a commit, and an image whose layer has a root entry.

use std::fs;
use std::process::Command;

use berth_integration::oci::run;
use berth_integration::stack::Stack;
use berth_integration::{ok, stderr};

#[test]
fn save_and_load_as_docker_does() {
    let s = Stack::new("save");
    let tar = s.dir.join("saved.tar");
    ok(&s.ctl(&["save", "-o", tar.to_str().unwrap(), "berth/busybox"]));
    // One archive, two readings: an OCI layout and a `docker save` tar.
    let names = ok(&Command::new("tar").arg("-tf").arg(&tar).output().unwrap());
    assert!(names.lines().any(|l| l == "index.json"), "{names}");
    assert!(names.lines().any(|l| l == "manifest.json"), "{names}");
    let env = |src: String| {
        let out = ok(&Command::new("skopeo")
            .args(["inspect", "--config", &src])
            .output()
            .unwrap());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["config"]["Env"].clone()
    };
    let as_docker = env(format!("docker-archive:{}", tar.display()));
    let as_oci = env(format!("oci-archive:{}", tar.display()));
    assert_eq!(as_docker, as_oci);
    assert!(as_docker.as_array().is_some_and(|e| !e.is_empty()));
    // Saved to stdout when redirected, as docker does.
    let out = s.ctl(&["save", "berth/busybox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout.len() as u64, fs::metadata(&tar).unwrap().len());
    // Removed, loaded back from the file, and run.
    ok(&s.ctl(&["rmi", "berth/busybox"]));
    assert_eq!(
        ok(&s.ctl(&["load", "-i", tar.to_str().unwrap()])),
        "Loaded image: docker.io/berth/busybox:latest\n"
    );
    assert_eq!(
        ok(&s.ctl(&[
            "run",
            "--rm",
            "--net",
            "none",
            "berth/busybox",
            "echo",
            "loaded"
        ])),
        "loaded\n"
    );
    // A `docker save` archive made by skopeo, loaded from stdin, quietly.
    let skopeo_tar = s.dir.join("skopeo.tar");
    ok(&Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci-archive:{}", tar.display()))
        .arg(format!(
            "docker-archive:{}:other/box:2",
            skopeo_tar.display()
        ))
        .output()
        .unwrap());
    let out = s
        .d()
        .ctl_cmd(&["load", "-q"])
        .stdin(fs::File::open(&skopeo_tar).unwrap())
        .output()
        .unwrap();
    assert_eq!(ok(&out), "");
    assert!(ok(&s.ctl(&["images", "--format", "json"])).contains("\"docker.io/other/box:2\""));
}

#[test]
fn history_shows_a_commit_over_its_base_as_docker_does() {
    let s = Stack::new("history");
    ok(&s.ctl(&[
        "run",
        "--name",
        "h",
        "--net",
        "none",
        "berth/busybox",
        "sh",
        "-c",
        "head -c 100000 /dev/urandom > /data",
    ]));
    ok(&s.ctl(&["commit", "-m", "added data", "h", "berth/hist"]));
    let out = ok(&s.ctl(&["history", "berth/hist"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE") && lines[0].contains("CREATED BY"),
        "{out}"
    );
    // Newest first: the commit, with the image's id, its size and comment.
    let id = ok(&s.ctl(&["history", "-q", "--no-trunc", "berth/hist"]));
    assert!(id.lines().next().unwrap().starts_with("sha256:"), "{id}");
    assert!(
        lines[1].contains("berthctl commit") && lines[1].contains("added data"),
        "{out}"
    );
    // go-units: "1 second ago", "5 seconds ago".
    assert!(lines[1].contains(" second"), "{out}");
    assert!(
        lines[1].contains("100kB") || lines[1].contains("kB"),
        "{out}"
    );
    // The base's layers follow, as `<missing>` steps.
    assert!(
        lines.len() >= 3 && lines[2..].iter().all(|l| l.starts_with("<missing>")),
        "{out}"
    );
    let out = s.ctl(&["history", "no/such:image"]);
    assert!(
        !out.status.success() && stderr(&out).contains("not found"),
        "{}",
        stderr(&out)
    );
}

/// umoci writes a layer whose first entry is `/` (and `umoci insert … /x`
/// entries under an absolute path): rooted in the layer, as tar, containerd
/// and podman take them, the image imports and runs.
#[test]
fn an_image_with_a_root_entry_in_its_layer_runs() {
    let s = Stack::new("rootentry");
    let layout = s.dir.join("layout");
    fs::create_dir_all(&layout).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-xf")
        .arg(s.dir.join("busybox.tar")));
    let add = s.dir.join("add");
    fs::create_dir_all(add.join("etc")).unwrap();
    fs::write(add.join("etc/inserted"), "inserted\n").unwrap();
    fs::write(add.join("top"), "top\n").unwrap();
    let image = format!("{}:latest", layout.display());
    run(Command::new("umoci")
        .args(["insert", "--image", &image])
        .arg(&add)
        .arg("/"));
    run(Command::new("umoci")
        .args(["insert", "--image", &image])
        .arg(add.join("top"))
        .arg("/abs/top2"));
    // The layer umoci made starts with "/".
    let listing = run(Command::new("sh").arg("-c").arg(format!(
        "for b in {}/blobs/sha256/*; do tar -tzf \"$b\" 2>/dev/null | head -1; done",
        layout.display()
    )));
    assert!(listing.lines().any(|l| l == "/"), "{listing}");
    let tar = s.dir.join("inserted.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    ok(&s.ctl(&[
        "import",
        "--base-name",
        "berth/inserted",
        tar.to_str().unwrap(),
    ]));
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "none",
        "berth/inserted",
        "cat",
        "/etc/inserted",
        "/top",
        "/abs/top2",
    ]);
    assert_eq!(ok(&out), "inserted\ntop\ntop\n", "{}", stderr(&out));
}
