//! berth-shim's API refusing what it must: bad ids, paths and states; and a
//! rootfs of many overlay layers. Over berth only.

use std::fs;

use berth_integration::shim::{create_req, wait, Runtime, ShimCtx};
use berth_proto::shim::{self as pb};
use serde_json::json;
use tonic::Code;

#[tokio::test(flavor = "current_thread")]
async fn api_validates_ids_paths_and_states() {
    let s = ShimCtx::new("shim-api", Runtime::Berth, &["sleep", "1000"]);
    s.start_shim();
    let mut c = s.client().await;
    let id = s.ctx.id.clone();
    let code = |r: Result<tonic::Response<pb::Empty>, tonic::Status>| r.unwrap_err().code();

    let e = c
        .create(pb::CreateRequest {
            id: "../x".into(),
            ..create_req(&s)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .create(pb::CreateRequest {
            id: "other".into(),
            ..create_req(&s)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .create(pb::CreateRequest {
            bundle: "/tmp".into(),
            ..create_req(&s)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .create(pb::CreateRequest {
            log_path: "rel.log".into(),
            ..create_req(&s)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .state(pb::StateRequest {
            id: id.clone(),
            exec_id: "".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // A symlink planted at the log's place is not followed out of the bundle.
    let outside = s.ctx.dir.join("outside.log");
    std::os::unix::fs::symlink(&outside, s.ctx.bundle.join("container.log")).unwrap();
    let e = c.create(create_req(&s)).await.unwrap_err();
    assert_eq!(e.code(), Code::Internal, "{e:?}");
    assert!(!outside.exists());
    fs::remove_file(s.ctx.bundle.join("container.log")).unwrap();

    c.create(create_req(&s)).await.unwrap();
    let e = c.create(create_req(&s)).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let exec = |exec_id: &str, spec: &str| pb::ExecRequest {
        id: id.clone(),
        exec_id: exec_id.into(),
        spec: spec.into(),
        ..Default::default()
    };
    // Exec needs a running container.
    assert_eq!(
        code(c.exec(exec("e1", r#"{"args":["true"],"cwd":"/"}"#)).await),
        Code::FailedPrecondition
    );
    c.start(pb::StartRequest {
        id: id.clone(),
        exec_id: "".into(),
    })
    .await
    .unwrap();
    let e = c
        .start(pb::StartRequest {
            id: id.clone(),
            exec_id: "".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(
        code(
            c.exec(exec("../../etc/x", r#"{"args":["true"],"cwd":"/"}"#))
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(c.exec(exec("e2", "not json")).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(c.exec(exec("e3", r#"{"args":[],"cwd":"/"}"#)).await),
        Code::InvalidArgument
    );
    let e = c
        .wait(pb::WaitRequest {
            id: id.clone(),
            exec_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(
        code(
            c.update(pb::UpdateRequest {
                id: id.clone(),
                resources: "[1]".into()
            })
            .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            c.kill(pb::KillRequest {
                id: id.clone(),
                exec_id: "".into(),
                signal: 99,
                all: false
            })
            .await
        ),
        Code::InvalidArgument
    );
    let e = c
        .delete(pb::DeleteRequest {
            id: id.clone(),
            exec_id: "".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(
        code(c.shutdown(pb::ShutdownRequest { id: id.clone() }).await),
        Code::FailedPrecondition
    );

    // Update and Stats reach the running container's cgroup.
    c.update(pb::UpdateRequest {
        id: id.clone(),
        resources: r#"{"pids":{"limit":77}}"#.into(),
    })
    .await
    .unwrap();
    let st = c
        .stats(pb::StatsRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.pids_limit, 77, "{}", st.json);
    assert!(st.pids_current >= 1);

    c.kill(pb::KillRequest {
        id: id.clone(),
        exec_id: "".into(),
        signal: 9,
        all: false,
    })
    .await
    .unwrap();
    assert_eq!(wait(&mut c, &id, "").await, 137);
    let e = c
        .kill(pb::KillRequest {
            id: id.clone(),
            exec_id: "".into(),
            signal: 9,
            all: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        exec_id: "".into(),
    })
    .await
    .unwrap();
    c.shutdown(pb::ShutdownRequest { id }).await.unwrap();
}

/// An image with many layers: overlay options longer than a page, which
/// mount(2) refuses as they are; the shim mounts them from the layers' common
/// directory with relative paths.
#[tokio::test(flavor = "current_thread")]
async fn overlay_rootfs_with_many_layers() {
    let mut s = ShimCtx::new(
        "shim-layers",
        Runtime::Berth,
        &[
            "sh",
            "-c",
            "ls /layers | wc -l; cat /layers/f0 /layers/f199",
        ],
    );
    let base = s.ctx.dir.join("snapshots");
    let mut lowers = Vec::new();
    for i in (0..200).rev() {
        let fs_dir = base.join(i.to_string()).join("fs");
        fs::create_dir_all(fs_dir.join("layers")).unwrap();
        fs::write(fs_dir.join(format!("layers/f{i}")), format!("layer {i}\n")).unwrap();
        lowers.push(fs_dir.to_string_lossy().into_owned());
    }
    lowers.push(s.ctx.config["root"]["path"].as_str().unwrap().to_string());
    for d in ["upper/fs", "upper/work"] {
        fs::create_dir_all(base.join(d)).unwrap();
    }
    // The busybox layer is elsewhere: share the shared rootfs through a
    // bind under the same base so that every path has the common prefix.
    let bb = base.join("busybox/fs");
    fs::create_dir_all(&bb).unwrap();
    let status = std::process::Command::new("mount")
        .args(["--bind", lowers.last().unwrap()])
        .arg(&bb)
        .status()
        .unwrap();
    assert!(status.success());
    *lowers.last_mut().unwrap() = bb.to_string_lossy().into_owned();
    let opts = vec![
        format!("workdir={}", base.join("upper/work").display()),
        format!("upperdir={}", base.join("upper/fs").display()),
        format!("lowerdir={}", lowers.join(":")),
    ];
    assert!(opts.join(",").len() > 4096, "not long enough to test");
    fs::create_dir_all(s.ctx.bundle.join("rootfs")).unwrap();
    s.ctx.config["root"]["path"] = json!("rootfs");
    s.start_shim();
    let mut c = s.client().await;
    let id = s.ctx.id.clone();
    let created = c
        .create(pb::CreateRequest {
            rootfs: vec![pb::Mount {
                r#type: "overlay".into(),
                source: "overlay".into(),
                options: opts,
            }],
            ..create_req(&s)
        })
        .await;
    let _ = std::process::Command::new("umount").arg(&bb).status();
    created.unwrap();
    c.start(pb::StartRequest {
        id: id.clone(),
        exec_id: "".into(),
    })
    .await
    .unwrap();
    assert_eq!(wait(&mut c, &id, "").await, 0);
    assert!(
        s.log().contains(" stdout F 200\n") && s.log().contains(" stdout F layer 199\n"),
        "{}",
        s.log()
    );
    c.delete(pb::DeleteRequest {
        id,
        exec_id: "".into(),
    })
    .await
    .unwrap();
}
