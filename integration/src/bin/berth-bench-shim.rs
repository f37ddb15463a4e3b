//! Drives a shim for `bench/shim.sh`: berth-shim over its gRPC API, conmon
//! by its command line, each the way its manager would.
//!
//! ```text
//! berth-bench-shim up    SHIM RUNTIME RUNTIME_ROOT BUNDLE ID SOCK   # shim + running container, left up
//! berth-bench-shim down  SOCK ID                                    # kill, delete, shut the shim down
//! berth-bench-shim cycle SHIM RUNTIME RUNTIME_ROOT BUNDLE ID SOCK   # one container start to end
//! berth-bench-shim conmon-up    RUNC RUNTIME_ROOT BUNDLE ID DIR
//! berth-bench-shim conmon-down  RUNC RUNTIME_ROOT ID DIR
//! berth-bench-shim conmon-cycle RUNC RUNTIME_ROOT BUNDLE ID DIR
//! ```
//!
//! `cycle` and `conmon-cycle` make this process the child subreaper, so the
//! daemonized shim is reparented to it and reaped by it: its CPU time then
//! counts in what hyperfine measures.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_proto::shim::shim_client::ShimClient;
use berth_proto::shim::{self as pb};
use tonic::transport::Channel;

type Client = ShimClient<Channel>;

fn must(c: &mut Command) {
    let out = c.stdin(Stdio::null()).output().expect("spawn");
    if !out.status.success() {
        panic!(
            "{:?}: {}{}",
            c,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn client(sock: &str) -> Client {
    ShimClient::new(berth_proto::connect_unix(sock).await.expect("connect"))
}

async fn up(a: &[String]) -> Client {
    let [shim, runtime, root, bundle, id, sock] = &a[..6] else {
        panic!("usage")
    };
    must(Command::new(shim).args([
        "start",
        "--id",
        id,
        "--bundle",
        bundle,
        "--address",
        sock,
        "--runtime",
        runtime,
        "--runtime-root",
        root,
    ]));
    let mut c = client(sock).await;
    c.create(pb::CreateRequest {
        id: id.clone(),
        bundle: bundle.clone(),
        ..Default::default()
    })
    .await
    .expect("create");
    c.start(pb::StartRequest {
        id: id.clone(),
        exec_id: String::new(),
    })
    .await
    .expect("start");
    c
}

async fn finish(c: &mut Client, id: &str) {
    c.wait(pb::WaitRequest {
        id: id.into(),
        exec_id: String::new(),
    })
    .await
    .expect("wait");
    c.delete(pb::DeleteRequest {
        id: id.into(),
        exec_id: String::new(),
    })
    .await
    .expect("delete");
    c.shutdown(pb::ShutdownRequest { id: id.into() })
        .await
        .expect("shutdown");
}

/// Reaps every child (the shim daemon included) until none is left.
fn reap_all() {
    while nix::sys::wait::wait().is_ok() {}
}

fn conmon(a: &[String], dir: &Path) {
    let [runc, root, bundle, id] = &a[..4] else {
        panic!("usage")
    };
    must(
        Command::new("conmon")
            .args(["--api-version", "1", "-c", id, "-u", id, "-n", id])
            .args(["-r", runc, "-b", bundle])
            .arg("-p")
            .arg(dir.join("pid"))
            .arg("-P")
            .arg(dir.join("conmon.pid"))
            .arg("-l")
            .arg(format!("k8s-file:{}", dir.join("log").display()))
            .arg("--exit-dir")
            .arg(dir.join("exits"))
            .arg("--socket-dir-path")
            .arg(dir.join("sock"))
            .args(["--runtime-arg", "--root", "--runtime-arg", root]),
    );
    // conmon's parent returns at once; the container exists once runc
    // create has written its pid file.
    wait_file(&dir.join("pid"));
    must(Command::new(runc).args(["--root", root, "start", id]));
}

fn wait_file(p: &Path) {
    for _ in 0..5000 {
        if p.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("no {}", p.display());
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, a) = args.split_first().expect("usage: see the source");
    match cmd.as_str() {
        "up" => drop(up(a).await),
        "down" => {
            let (sock, id) = (&a[0], &a[1]);
            let mut c = client(sock).await;
            c.kill(pb::KillRequest {
                id: id.clone(),
                exec_id: String::new(),
                signal: 9,
                all: false,
            })
            .await
            .expect("kill");
            finish(&mut c, id).await;
        }
        "cycle" => {
            nix::sys::prctl::set_child_subreaper(true).expect("subreaper");
            let mut c = up(a).await;
            finish(&mut c, &a[4]).await;
            // Reap on another thread: this one keeps serving the connection,
            // whose graceful close (an HTTP/2 ping) the shim waits for.
            tokio::task::spawn_blocking(reap_all).await.unwrap();
            drop(c);
        }
        "conmon-up" | "conmon-cycle" => {
            let dir = PathBuf::from(&a[4]);
            std::fs::create_dir_all(dir.join("exits")).unwrap();
            std::fs::create_dir_all(dir.join("sock")).unwrap();
            if cmd == "conmon-cycle" {
                nix::sys::prctl::set_child_subreaper(true).expect("subreaper");
            }
            conmon(a, &dir);
            if cmd == "conmon-cycle" {
                wait_file(&dir.join("exits").join(&a[3]));
                must(Command::new(&a[0]).args(["--root", &a[1], "delete", &a[3]]));
                reap_all();
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        "conmon-down" => {
            let (runc, root, id, dir) = (&a[0], &a[1], &a[2], Path::new(&a[3]));
            must(Command::new(runc).args(["--root", root, "kill", id, "KILL"]));
            wait_file(&dir.join("exits").join(id));
            must(Command::new(runc).args(["--root", root, "delete", id]));
        }
        other => panic!("unknown command {other}"),
    }
}
