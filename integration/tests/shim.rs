//! berth-shim end to end: real containers behind a real shim, each test run
//! over both `berth` and runc (the shim drives any runc-compatible runtime).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use berth_integration::shim::{connect, Runtime, ShimCtx};
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

fn create_req(s: &ShimCtx) -> pb::CreateRequest {
    pb::CreateRequest {
        id: s.ctx.id.clone(),
        bundle: s.ctx.bundle.to_string_lossy().into(),
        ..Default::default()
    }
}

async fn wait(c: &mut ShimClient<Channel>, id: &str, exec_id: &str) -> u32 {
    let w = c.wait(pb::WaitRequest {
        id: id.into(),
        exec_id: exec_id.into(),
    });
    tokio::time::timeout(Duration::from_secs(30), w)
        .await
        .expect("wait timed out")
        .expect("wait")
        .into_inner()
        .exit_status
}

async fn state(c: &mut ShimClient<Channel>, id: &str, exec_id: &str) -> pb::StateResponse {
    c.state(pb::StateRequest {
        id: id.into(),
        exec_id: exec_id.into(),
    })
    .await
    .expect("state")
    .into_inner()
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
    let s = ShimCtx::new("shim-life", rt, &["sh", "-c", "echo out; echo err >&2; exit 3"]);
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
    let conn = c.connect(pb::ConnectRequest { id: id.clone() }).await.unwrap().into_inner();
    assert_eq!(conn.task_pid, pid);
    assert_eq!(Some(conn.shim_pid as i32), s.shim_pid());

    assert_eq!(c.start(pb::StartRequest { id: id.clone(), exec_id: "".into() }).await.unwrap().into_inner().pid, pid);
    assert_eq!(wait(&mut c, &id, "").await, 3);
    let st = state(&mut c, &id, "").await;
    assert_eq!((st.status(), st.exit_status), (pb::Status::Stopped, 3));
    assert!(st.exited_at.is_some());
    // A second waiter after the exit gets the same answer at once.
    assert_eq!(wait(&mut c, &id, "").await, 3);

    let err = c.shutdown(pb::ShutdownRequest { id: id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let d = c.delete(pb::DeleteRequest { id: id.clone(), exec_id: "".into() }).await.unwrap().into_inner();
    assert_eq!((d.pid, d.exit_status), (pid, 3));
    assert!(!s.runtime_state().status.success(), "the runtime still knows the container");

    let log = s.log();
    assert!(log.contains(" stdout F out\n") && log.contains(" stderr F err\n"), "{log}");

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
    assert_eq!(topics, ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]);

    c.shutdown(pb::ShutdownRequest { id: id.clone() }).await.unwrap();
    for _ in 0..100 {
        if !s.address.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!s.address.exists(), "the shim did not exit on Shutdown");
    assert!(!s.ctx.bundle.join("address").exists());
}
both!(lifecycle_over_berth, lifecycle_over_runc, lifecycle);
