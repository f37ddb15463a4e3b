//! berth-shim end to end: real containers behind a real shim, each test run
//! over both `berth` and runc (the shim drives any runc-compatible runtime).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use berth_integration::shim::{connect, create_req, state, wait, Runtime, ShimCtx};
use berth_integration::{cgroup_dirs_named, ok, stderr};
use berth_proto::shim::shim_client::ShimClient;
use berth_proto::shim::{self as pb, attach_request, AttachRequest};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

/// Runs `case` once over berth and once over runc.
macro_rules! both {
    ($berth:ident, $runc:ident, $case:ident) => {
        #[tokio::test(flavor = "current_thread")]
        async fn $berth() {
            $case(Runtime::Berth).await
        }
        #[tokio::test(flavor = "current_thread")]
        async fn $runc() {
            $case(Runtime::Runc).await
        }
    };
}

/// Attaches to a process: returns its output stream and a sender for stdin.
async fn attach(
    c: &mut ShimClient<Channel>,
    id: &str,
    exec_id: &str,
) -> (
    tonic::Streaming<pb::AttachResponse>,
    mpsc::Sender<AttachRequest>,
) {
    let (tx, rx) = mpsc::channel(8);
    tx.send(AttachRequest {
        msg: Some(attach_request::Msg::Start(pb::AttachStart {
            id: id.into(),
            exec_id: exec_id.into(),
            stdout: true,
            stderr: true,
        })),
    })
    .await
    .unwrap();
    let out = c.attach(ReceiverStream::new(rx)).await.expect("attach");
    (out.into_inner(), tx)
}

/// Reads attached output until it contains `needle`.
async fn read_until(out: &mut tonic::Streaming<pb::AttachResponse>, needle: &str) -> String {
    let mut got = String::new();
    let r = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(m) = out.next().await {
            got.push_str(&String::from_utf8_lossy(&m.expect("attach stream").data));
            if got.contains(needle) {
                return;
            }
        }
    })
    .await;
    assert!(
        r.is_ok() && got.contains(needle),
        "no {needle:?} in {got:?}"
    );
    got
}

fn stdin(data: &[u8]) -> AttachRequest {
    AttachRequest {
        msg: Some(attach_request::Msg::Stdin(data.to_vec())),
    }
}

async fn lifecycle(rt: Runtime) {
    let s = ShimCtx::new(
        "shim-life",
        rt,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    let address = s.start_shim();
    assert_eq!(address, s.address.to_string_lossy());
    let mode = fs::metadata(&s.address).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    let mut c = s.client().await;
    let mut events = c.events(pb::EventsRequest {}).await.unwrap().into_inner();
    let id = s.ctx.id.clone();

    let pid = c.create(create_req(&s)).await.unwrap().into_inner().pid;
    assert!(pid > 0);
    let st = state(&mut c, &id, "").await;
    assert_eq!((st.status(), st.pid), (pb::Status::Created, pid));
    let conn = c
        .connect(pb::ConnectRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(conn.task_pid, pid);
    assert_eq!(Some(conn.shim_pid as i32), s.shim_pid());

    assert_eq!(
        c.start(pb::StartRequest {
            id: id.clone(),
            exec_id: "".into()
        })
        .await
        .unwrap()
        .into_inner()
        .pid,
        pid
    );
    assert_eq!(wait(&mut c, &id, "").await, 3);
    let st = state(&mut c, &id, "").await;
    assert_eq!((st.status(), st.exit_status), (pb::Status::Stopped, 3));
    assert!(st.exited_at.is_some());
    // A second waiter after the exit gets the same answer at once.
    assert_eq!(wait(&mut c, &id, "").await, 3);

    let err = c
        .shutdown(pb::ShutdownRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let d = c
        .delete(pb::DeleteRequest {
            id: id.clone(),
            exec_id: "".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((d.pid, d.exit_status), (pid, 3));
    assert!(
        !s.runtime_state().status.success(),
        "the runtime still knows the container"
    );

    let log = s.log();
    assert!(
        log.contains(" stdout F out\n") && log.contains(" stderr F err\n"),
        "{log}"
    );

    let mut topics = Vec::new();
    while topics.len() < 4 {
        let e = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("event")
            .unwrap()
            .unwrap();
        assert_eq!(e.id, id);
        topics.push(e.topic);
    }
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ]
    );

    c.shutdown(pb::ShutdownRequest { id: id.clone() })
        .await
        .unwrap();
    for _ in 0..100 {
        if !s.address.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!s.address.exists(), "the shim did not exit on Shutdown");
    // Open event streams end with the shim.
    let end = tokio::time::timeout(Duration::from_secs(2), events.next()).await;
    assert!(matches!(end, Ok(None) | Ok(Some(Err(_)))), "{end:?}");
    assert!(!s.ctx.bundle.join("address").exists());
}
both!(lifecycle_over_berth, lifecycle_over_runc, lifecycle);

async fn log_records(rt: Runtime) {
    // A 20000-byte line is longer than the shim's 8192-byte line buffer; the
    // output ends without a newline.
    let script =
        "echo first; echo oops >&2; head -c 20000 /dev/zero | tr '\\0' x; echo; printf tail";
    let s = ShimCtx::new("shim-log", rt, &["sh", "-c", script]);
    s.start_shim();
    let mut c = s.client().await;
    let id = s.ctx.id.clone();
    c.create(create_req(&s)).await.unwrap();
    c.start(pb::StartRequest {
        id: id.clone(),
        exec_id: "".into(),
    })
    .await
    .unwrap();
    assert_eq!(wait(&mut c, &id, "").await, 0);
    let log = s.log();
    let recs: Vec<(&str, &str, &str)> = log
        .lines()
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let ts = f.next().unwrap();
            assert!(ts.ends_with('Z') && ts.contains('T'), "timestamp {ts:?}");
            (f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""))
        })
        .collect();
    let stdout: Vec<_> = recs
        .iter()
        .filter(|r| r.0 == "stdout")
        .map(|r| (r.1, r.2.len(), &r.2[..r.2.len().min(5)]))
        .collect();
    assert_eq!(
        stdout,
        [
            ("F", 5, "first"),
            ("P", 8192, "xxxxx"),
            ("P", 8192, "xxxxx"),
            ("F", 20000 - 2 * 8192, "xxxxx"),
            ("F", 4, "tail"),
        ],
        "{log}"
    );
    let stderr: Vec<_> = recs
        .iter()
        .filter(|r| r.0 == "stderr")
        .map(|r| (r.1, r.2))
        .collect();
    assert_eq!(stderr, [("F", "oops")]);
    c.delete(pb::DeleteRequest {
        id,
        exec_id: "".into(),
    })
    .await
    .unwrap();
}
both!(log_records_over_berth, log_records_over_runc, log_records);

async fn stdin_to_cat(rt: Runtime) {
    let s = ShimCtx::new("shim-cat", rt, &["cat"]);
    s.start_shim();
    let mut c = s.client().await;
    let id = s.ctx.id.clone();
    c.create(pb::CreateRequest {
        stdin: true,
        ..create_req(&s)
    })
    .await
    .unwrap();
    let (mut out, tx) = attach(&mut c, &id, "").await;
    c.start(pb::StartRequest {
        id: id.clone(),
        exec_id: "".into(),
    })
    .await
    .unwrap();
    tx.send(stdin(b"hello through the shim\n")).await.unwrap();
    read_until(&mut out, "hello through the shim\n").await;
    // A second client's stdin reaches the same cat.
    let (mut out2, tx2) = attach(&mut c, &id, "").await;
    tx2.send(stdin(b"second\n")).await.unwrap();
    read_until(&mut out2, "second\n").await;
    c.close_io(pb::CloseIoRequest {
        id: id.clone(),
        exec_id: "".into(),
        stdin: true,
    })
    .await
    .unwrap();
    assert_eq!(wait(&mut c, &id, "").await, 0);
    // The attached streams end with the output.
    assert!(tokio::time::timeout(Duration::from_secs(5), async {
        while out.next().await.is_some() {}
    })
    .await
    .is_ok());
    assert!(s.log().contains(" stdout F hello through the shim\n"));
    c.delete(pb::DeleteRequest {
        id,
        exec_id: "".into(),
    })
    .await
    .unwrap();
}
both!(
    stdin_to_cat_over_berth,
    stdin_to_cat_over_runc,
    stdin_to_cat
);

fn process_spec(s: &ShimCtx, args: &[&str], terminal: bool) -> String {
    let mut p = s.ctx.config["process"].clone();
    p["args"] = json!(args);
    p["terminal"] = json!(terminal);
    p.to_string()
}

async fn exec_pipes_and_tty(rt: Runtime) {
    let s = ShimCtx::new("shim-exec", rt, &["sleep", "1000"]);
    s.start_shim();
    let mut c = s.client().await;
    let mut events = c.events(pb::EventsRequest {}).await.unwrap().into_inner();
    let id = s.ctx.id.clone();
    c.create(create_req(&s)).await.unwrap();
    c.start(pb::StartRequest {
        id: id.clone(),
        exec_id: "".into(),
    })
    .await
    .unwrap();

    // Without a tty: its own pipes, its own exit status and log.
    c.exec(pb::ExecRequest {
        id: id.clone(),
        exec_id: "e1".into(),
        spec: process_spec(
            &s,
            &["sh", "-c", "echo exec-out; echo exec-err >&2; exit 5"],
            false,
        ),
        ..Default::default()
    })
    .await
    .unwrap();
    let (mut out, _tx) = attach(&mut c, &id, "e1").await;
    let epid = c
        .start(pb::StartRequest {
            id: id.clone(),
            exec_id: "e1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pid;
    assert!(epid > 0);
    let got = read_until(&mut out, "exec-out").await;
    assert_eq!(wait(&mut c, &id, "e1").await, 5, "{got}");
    let st = state(&mut c, &id, "e1").await;
    assert_eq!(
        (st.status(), st.exit_status, st.pid),
        (pb::Status::Stopped, 5, epid)
    );
    let elog = fs::read_to_string(&st.log_path).unwrap();
    assert!(
        elog.contains(" stdout F exec-out\n") && elog.contains(" stderr F exec-err\n"),
        "{elog}"
    );
    let err = c
        .exec(pb::ExecRequest {
            id: id.clone(),
            exec_id: "e1".into(),
            spec: process_spec(&s, &["true"], false),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        exec_id: "e1".into(),
    })
    .await
    .unwrap();

    // With a tty: the resize is what `stty size` reports inside.
    c.exec(pb::ExecRequest {
        id: id.clone(),
        exec_id: "t1".into(),
        terminal: true,
        stdin: true,
        spec: process_spec(&s, &["sh", "-c", "read x; tty; stty size"], true),
    })
    .await
    .unwrap();
    c.start(pb::StartRequest {
        id: id.clone(),
        exec_id: "t1".into(),
    })
    .await
    .unwrap();
    let (mut out, tx) = attach(&mut c, &id, "t1").await;
    c.resize_pty(pb::ResizePtyRequest {
        id: id.clone(),
        exec_id: "t1".into(),
        width: 123,
        height: 45,
    })
    .await
    .unwrap();
    tx.send(stdin(b"go\n")).await.unwrap();
    let got = read_until(&mut out, "45 123").await;
    assert!(got.contains("/dev/pts/"), "{got}");
    assert_eq!(wait(&mut c, &id, "t1").await, 0);
    // Resize on a process without a tty is refused.
    let err = c
        .resize_pty(pb::ResizePtyRequest {
            id: id.clone(),
            exec_id: "".into(),
            width: 1,
            height: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    c.kill(pb::KillRequest {
        id: id.clone(),
        exec_id: "".into(),
        signal: 9,
        all: false,
    })
    .await
    .unwrap();
    assert_eq!(wait(&mut c, &id, "").await, 137);
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        exec_id: "".into(),
    })
    .await
    .unwrap();
    let mut topics = Vec::new();
    while let Ok(Some(Ok(e))) =
        tokio::time::timeout(Duration::from_millis(500), events.next()).await
    {
        topics.push(format!("{}:{}", e.topic, e.exec_id));
    }
    let want = [
        "/tasks/create:",
        "/tasks/start:",
        "/tasks/exec-added:e1",
        "/tasks/exec-started:e1",
        "/tasks/exit:e1",
        "/tasks/exec-added:t1",
        "/tasks/exec-started:t1",
        "/tasks/exit:t1",
        "/tasks/exit:",
        "/tasks/delete:",
    ];
    assert_eq!(topics, want);
}
both!(
    exec_pipes_and_tty_over_berth,
    exec_pipes_and_tty_over_runc,
    exec_pipes_and_tty
);

async fn kill_all_and_pids(rt: Runtime) {
    // As pid 1 of its namespace, sh ignores SIGTERM: only `all` ends it, by
    // killing its children so its `wait` returns.
    let s = ShimCtx::new(
        "shim-killall",
        rt,
        &["sh", "-c", "sleep 1000 & sleep 1000 & wait $!"],
    );
    s.start_shim();
    let mut c = s.client().await;
    let id = s.ctx.id.clone();
    c.create(create_req(&s)).await.unwrap();
    c.start(pb::StartRequest {
        id: id.clone(),
        exec_id: "".into(),
    })
    .await
    .unwrap();
    let mut n = 0;
    for _ in 0..100 {
        n = c
            .pids(pb::PidsRequest { id: id.clone() })
            .await
            .unwrap()
            .into_inner()
            .processes
            .len();
        if n >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(n >= 3, "pids: {n}");
    c.pause(pb::PauseRequest { id: id.clone() }).await.unwrap();
    assert_eq!(state(&mut c, &id, "").await.status(), pb::Status::Paused);
    c.resume(pb::ResumeRequest { id: id.clone() })
        .await
        .unwrap();
    assert_eq!(state(&mut c, &id, "").await.status(), pb::Status::Running);
    c.kill(pb::KillRequest {
        id: id.clone(),
        exec_id: "".into(),
        signal: 15,
        all: true,
    })
    .await
    .unwrap();
    assert_eq!(wait(&mut c, &id, "").await, 128 + 15);
    c.delete(pb::DeleteRequest {
        id,
        exec_id: "".into(),
    })
    .await
    .unwrap();
}
both!(
    kill_all_and_pids_over_berth,
    kill_all_and_pids_over_runc,
    kill_all_and_pids
);

async fn oom_is_reported(rt: Runtime) {
    let mut s = ShimCtx::new("shim-oom", rt, &["sh", "-c", "tail /dev/zero"]);
    s.ctx.config["linux"]["resources"]["memory"] = json!({ "limit": 16 << 20 });
    s.start_shim();
    let mut c = s.client().await;
    let mut events = c.events(pb::EventsRequest {}).await.unwrap().into_inner();
    let id = s.ctx.id.clone();
    c.create(create_req(&s)).await.unwrap();
    c.start(pb::StartRequest {
        id: id.clone(),
        exec_id: "".into(),
    })
    .await
    .unwrap();
    let status = wait(&mut c, &id, "").await;
    let mut topics = Vec::new();
    while let Ok(Some(Ok(e))) =
        tokio::time::timeout(Duration::from_millis(500), events.next()).await
    {
        topics.push(e.topic);
    }
    assert!(
        topics.iter().any(|t| t == "/tasks/oom"),
        "{topics:?}, exit {status}"
    );
    assert_eq!(status, 137);
    c.delete(pb::DeleteRequest {
        id,
        exec_id: "".into(),
    })
    .await
    .unwrap();
}
both!(
    oom_is_reported_over_berth,
    oom_is_reported_over_runc,
    oom_is_reported
);

async fn survives_its_launcher(rt: Runtime) {
    let s = ShimCtx::new("shim-orphan", rt, &["sh", "-c", "read x; exit 7"]);
    s.ctx.write_config();
    // The launcher runs `berth-shim start` and is then killed.
    let mut cmd = s.start_command();
    let line = format!(
        "{} >/dev/null; exec sleep 1000",
        cmd.get_args().fold(
            format!("'{}'", cmd.get_program().to_string_lossy()),
            |a, b| format!("{a} '{}'", b.to_string_lossy())
        )
    );
    cmd = std::process::Command::new("sh");
    // Killed and reaped however the test ends, so a failure leaves no sleep.
    struct Launcher(std::process::Child);
    impl Drop for Launcher {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut launcher = Launcher(cmd.arg("-c").arg(line).spawn().unwrap());
    for _ in 0..250 {
        if s.ctx.bundle.join("address").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = s.ctx.id.clone();
    {
        let mut c = s.client().await;
        c.create(pb::CreateRequest {
            stdin: true,
            ..create_req(&s)
        })
        .await
        .unwrap();
        c.start(pb::StartRequest {
            id: id.clone(),
            exec_id: "".into(),
        })
        .await
        .unwrap();
        launcher.0.kill().unwrap();
        launcher.0.wait().unwrap();
        // The container ends while no client is connected.
        c.close_io(pb::CloseIoRequest {
            id: id.clone(),
            exec_id: "".into(),
            stdin: true,
        })
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A new client finds the shim through the bundle's address file.
    let address = fs::read_to_string(s.ctx.bundle.join("address")).unwrap();
    let mut c = connect(std::path::Path::new(address.trim())).await;
    assert_eq!(wait(&mut c, &id, "").await, 7);
    let st = state(&mut c, &id, "").await;
    assert_eq!((st.status(), st.exit_status), (pb::Status::Stopped, 7));
    c.delete(pb::DeleteRequest {
        id: id.clone(),
        exec_id: "".into(),
    })
    .await
    .unwrap();
    c.shutdown(pb::ShutdownRequest { id }).await.unwrap();
}
both!(
    survives_its_launcher_over_berth,
    survives_its_launcher_over_runc,
    survives_its_launcher
);

fn mounted(path: &std::path::Path) -> bool {
    let p = path.to_string_lossy().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

async fn killed_shim_then_delete(rt: Runtime) {
    let mut s = ShimCtx::new("shim-killed", rt, &["sleep", "1000"]);
    // The rootfs is a mount the shim makes on <bundle>/rootfs.
    let rootfs = s.ctx.bundle.join("rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    let src = s.ctx.config["root"]["path"].as_str().unwrap().to_string();
    s.ctx.config["root"]["path"] = json!("rootfs");
    s.start_shim();
    let mut c = s.client().await;
    let id = s.ctx.id.clone();
    let pid = c
        .create(pb::CreateRequest {
            rootfs: vec![pb::Mount {
                r#type: "bind".into(),
                source: src,
                options: vec!["rbind".into(), "ro".into()],
            }],
            ..create_req(&s)
        })
        .await
        .unwrap()
        .into_inner()
        .pid;
    c.start(pb::StartRequest {
        id: id.clone(),
        exec_id: "".into(),
    })
    .await
    .unwrap();
    assert!(mounted(&rootfs));
    assert!(!cgroup_dirs_named(&id).is_empty(), "no cgroup for {id}");
    let shim = s.shim_pid().unwrap();
    let console_dir = std::path::Path::new("/run/berth-shim").join(shim.to_string());
    assert!(console_dir.is_dir());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    drop(c);
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{shim}")).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The container outlives its shim…
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // …until `berth-shim delete` cleans up.
    let out = s.shim_delete();
    assert!(ok(&out).contains("\"exit_status\":137"), "{}", stderr(&out));
    for _ in 0..250 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "container pid {pid} survived"
    );
    assert!(!mounted(&rootfs), "rootfs still mounted");
    assert!(!console_dir.exists());
    assert!(
        cgroup_dirs_named(&id).is_empty(),
        "cgroups left: {:?}",
        cgroup_dirs_named(&id)
    );
    assert!(!s.runtime_state().status.success());
}
both!(
    killed_shim_then_delete_over_berth,
    killed_shim_then_delete_over_runc,
    killed_shim_then_delete
);
