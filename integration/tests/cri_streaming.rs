//! berthd's CRI streaming server, driven as kubectl and crictl drive it:
//! exec (SPDY and WebSocket, with and without a terminal, stdin, exit
//! codes, resize), attach, and port-forward to a server that listens only
//! on a pod's loopback. Each test has its own berthd and checks that
//! nothing is left.

use std::time::Duration;

use berth_integration::cri::CriStack;
use berth_integration::stack::wait_until;
use berth_integration::streaming::{
    dial_in, drain, open, spdy, split_url, websocket, ws_collect, ws_send,
};
use k8s_cri::v1 as cri;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// A pod with one running container from `config`; (pod, container).
fn pod_with(c: &CriStack, name: &str, config: cri::ContainerConfig) -> (String, String) {
    let pc = c.pod_config(name);
    let pod = c.run_pod(&pc);
    let id = c.start(&pod, &pc, config);
    (pod, id)
}

fn exec_url(c: &CriStack, r: cri::ExecRequest) -> String {
    let mut rs = c.rs.clone();
    c.call(rs.exec(r)).expect("Exec").url
}

fn exec_req(id: &str, cmd: &[&str], stdin: bool, tty: bool) -> cri::ExecRequest {
    cri::ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        stdin,
        stdout: true,
        stderr: !tty,
        tty,
    }
}

fn netns(c: &CriStack) -> std::path::PathBuf {
    c.s.net.as_ref().expect("berthd's own netns").path.clone()
}

#[test]
fn spdy_exec_carries_stdin_stdout_stderr_and_the_exit_code() {
    let c = CriStack::new("spdy-exec");
    let (pod, id) = pod_with(
        &c,
        "spdy-exec",
        c.container_config("sleeper", "exec sleep 1000"),
    );
    let ns = netns(&c);
    // Version 4: the exit code as a Status cause.
    let url = exec_url(
        &c,
        exec_req(&id, &["sh", "-c", "cat; echo err >&2; exit 3"], true, false),
    );
    let (host, path) = split_url(&url);
    let (out, err, status) = c.rt.block_on(async {
        let tcp = dial_in(&ns, &host).await;
        let (s, head) = spdy(tcp, &path, &["v4.channel.k8s.io", "v3.channel.k8s.io"])
            .await
            .unwrap();
        assert!(
            head.to_ascii_lowercase()
                .contains("x-stream-protocol-version: v4.channel.k8s.io"),
            "{head}"
        );
        let mut error = open(&s, "error", &[]).await;
        let stdin = open(&s, "stdin", &[]).await;
        let mut stdout = open(&s, "stdout", &[]).await;
        let mut stderr = open(&s, "stderr", &[]).await;
        stdin.tx.write(b"hello over spdy\n").await.unwrap();
        stdin.tx.close().await.unwrap();
        let (o, e, st) = tokio::join!(drain(&mut stdout), drain(&mut stderr), drain(&mut error));
        (o, e, st)
    });
    assert_eq!(text(&out), "hello over spdy\n");
    assert_eq!(text(&err), "err\n");
    let st: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(st["status"], "Failure", "{st}");
    assert_eq!(st["reason"], "NonZeroExitCode");
    assert_eq!(st["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(st["details"]["causes"][0]["message"], "3");

    // The URL was for one use.
    let again = c.rt.block_on(async {
        let tcp = dial_in(&ns, &host).await;
        spdy(tcp, &path, &["v4.channel.k8s.io"]).await.err()
    });
    assert!(
        again.is_some_and(|h| h.starts_with("HTTP/1.1 404")),
        "a used token was served again"
    );

    // Version 2: success says nothing, a failure says it in text.
    let url = exec_url(
        &c,
        exec_req(&id, &["sh", "-c", "echo two; exit 5"], false, false),
    );
    let (host, path) = split_url(&url);
    let (out, status) = c.rt.block_on(async {
        let tcp = dial_in(&ns, &host).await;
        let (s, _) = spdy(tcp, &path, &["v2.channel.k8s.io"]).await.unwrap();
        let mut error = open(&s, "error", &[]).await;
        let mut stdout = open(&s, "stdout", &[]).await;
        let _stderr = open(&s, "stderr", &[]).await;
        tokio::join!(drain(&mut stdout), drain(&mut error))
    });
    assert_eq!(text(&out), "two\n");
    assert!(
        text(&status).contains("non-zero exit code"),
        "{}",
        text(&status)
    );

    // What kubelet refuses before any URL: a tty with stderr, no streams.
    let mut rs = c.rs.clone();
    let mut bad = exec_req(&id, &["true"], false, true);
    bad.stderr = true;
    let e = c.call(rs.exec(bad)).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    let mut none = exec_req(&id, &["true"], false, false);
    none.stdout = false;
    none.stderr = false;
    assert_eq!(
        c.call(rs.exec(none)).unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

#[test]
fn a_terminal_exec_is_resized_and_killed_when_its_client_goes() {
    let c = CriStack::new("tty-exec");
    let (pod, id) = pod_with(
        &c,
        "tty-exec",
        c.container_config("sleeper", "exec sleep 1000"),
    );
    let ns = netns(&c);
    let url = exec_url(
        &c,
        exec_req(
            &id,
            &[
                "sh",
                "-c",
                // The size arrives just after the start: wait for it (10 s at most).
                "for i in $(seq 100); do [ \"$(stty size)\" = '45 123' ] && break; sleep 0.1; done; \
                 stty size; read line; echo got $line; tty",
            ],
            true,
            true,
        ),
    );
    let (host, path) = split_url(&url);
    let (out, status) = c.rt.block_on(async {
        let tcp = dial_in(&ns, &host).await;
        let (s, _) = spdy(tcp, &path, &["v4.channel.k8s.io"]).await.unwrap();
        let mut error = open(&s, "error", &[]).await;
        let stdin = open(&s, "stdin", &[]).await;
        let mut stdout = open(&s, "stdout", &[]).await;
        let resize = open(&s, "resize", &[]).await;
        resize
            .tx
            .write(br#"{"Width":123,"Height":45}"#)
            .await
            .unwrap();
        stdin.tx.write(b"typed\r").await.unwrap();
        tokio::join!(drain(&mut stdout), drain(&mut error))
    });
    let out = text(&out);
    assert!(
        out.contains("45 123"),
        "the terminal was not resized: {out:?}"
    );
    assert!(out.contains("got typed"), "{out:?}");
    assert!(out.contains("/dev/pts/"), "no terminal: {out:?}");
    let st: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(st["status"], "Success", "{st}");

    // A client that goes away takes its process with it.
    let url = exec_url(&c, exec_req(&id, &["sleep", "1234"], true, true));
    let (host, path) = split_url(&url);
    c.rt.block_on(async {
        let tcp = dial_in(&ns, &host).await;
        let (s, _) = spdy(tcp, &path, &["v4.channel.k8s.io"]).await.unwrap();
        let _error = open(&s, "error", &[]).await;
        let _stdin = open(&s, "stdin", &[]).await;
        let _stdout = open(&s, "stdout", &[]).await;
        let _resize = open(&s, "resize", &[]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Dropping the session closes the connection.
    });
    wait_until("the abandoned exec to be killed", 10, || {
        !c.exec_ok(&id, "ps -o args").contains("sleep 1234")
    });
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

#[test]
fn websocket_exec_speaks_v5_with_stdin_close_and_v4_exit_codes() {
    let c = CriStack::new("ws-exec");
    let (pod, id) = pod_with(
        &c,
        "ws-exec",
        c.container_config("sleeper", "exec sleep 1000"),
    );
    let ns = netns(&c);
    let url = exec_url(
        &c,
        exec_req(&id, &["sh", "-c", "cat; echo done >&2"], true, false),
    );
    let (host, _) = split_url(&url);
    let (proto, got) = c.rt.block_on(async {
        let tcp = dial_in(&ns, &host).await;
        let (mut ws, proto) = websocket(tcp, &url, "v5.channel.k8s.io, v4.channel.k8s.io").await;
        ws_send(&mut ws, 0, b"over websocket\n").await;
        // v5: channel 255 closes stdin, so cat ends.
        ws_send(&mut ws, 255, &[0]).await;
        (proto, ws_collect(&mut ws).await)
    });
    assert_eq!(proto, "v5.channel.k8s.io");
    assert_eq!(text(&got[&1]), "over websocket\n");
    assert_eq!(text(&got[&2]), "done\n");
    let st: serde_json::Value = serde_json::from_slice(&got[&3]).unwrap();
    assert_eq!(st["status"], "Success", "{st}");

    let url = exec_url(
        &c,
        exec_req(&id, &["sh", "-c", "echo four; exit 4"], false, false),
    );
    let (host, _) = split_url(&url);
    let (proto, got) = c.rt.block_on(async {
        let tcp = dial_in(&ns, &host).await;
        let (mut ws, proto) = websocket(tcp, &url, "v4.channel.k8s.io").await;
        (proto, ws_collect(&mut ws).await)
    });
    assert_eq!(proto, "v4.channel.k8s.io");
    assert_eq!(text(&got[&1]), "four\n");
    let st: serde_json::Value = serde_json::from_slice(&got[&3]).unwrap();
    assert_eq!(st["details"]["causes"][0]["message"], "4", "{st}");
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

#[test]
fn attach_reads_the_containers_output_and_writes_its_stdin() {
    let c = CriStack::new("attach");
    let mut cfg = c.container_config(
        "echoer",
        "while read l; do echo got $l; done; echo stdin-closed",
    );
    cfg.stdin = true;
    cfg.stdin_once = true;
    let (pod, id) = pod_with(&c, "attach", cfg);
    let ns = netns(&c);
    let mut rs = c.rs.clone();
    let url = c
        .call(rs.attach(cri::AttachRequest {
            container_id: id.clone(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: true,
        }))
        .expect("Attach")
        .url;
    let (host, path) = split_url(&url);
    let out = c.rt.block_on(async {
        let tcp = dial_in(&ns, &host).await;
        let (s, _) = spdy(tcp, &path, &["v4.channel.k8s.io"]).await.unwrap();
        let mut error = open(&s, "error", &[]).await;
        let stdin = open(&s, "stdin", &[]).await;
        let mut stdout = open(&s, "stdout", &[]).await;
        let _stderr = open(&s, "stderr", &[]).await;
        stdin.tx.write(b"one\ntwo\n").await.unwrap();
        // stdin_once: the client's close is the container's EOF.
        stdin.tx.close().await.unwrap();
        let (o, _) = tokio::join!(drain(&mut stdout), drain(&mut error));
        o
    });
    assert_eq!(text(&out), "got one\ngot two\nstdin-closed\n");
    let st = c.wait_exited(&id, 10);
    assert_eq!(st.exit_code, 0);
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

/// An HTTP/1.0 GET over a port-forward data stream; the whole answer.
async fn get_over(
    s: &berth_manager::cri::streaming::spdy::session::Session,
    port: &str,
    request_id: &str,
) -> (String, String) {
    let mut error = open(s, "error", &[("port", port), ("requestID", request_id)]).await;
    let mut data = open(s, "data", &[("port", port), ("requestID", request_id)]).await;
    data.tx.write(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let (d, e) = tokio::join!(drain(&mut data), drain(&mut error));
    (text(&d), text(&e))
}

#[test]
fn port_forward_reaches_the_pods_loopback_over_spdy_and_websocket() {
    let c = CriStack::new("portfwd");
    // The server listens on the pod's loopback only: the node cannot reach
    // it, a forward made outside the pod's namespace would be refused.
    let (pod, id) = pod_with(
        &c,
        "portfwd",
        c.container_config(
            "web",
            "mkdir -p /tmp/www && echo inside-the-pod > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www",
        ),
    );
    wait_until("the pod's server to listen", 10, || {
        c.exec(
            &id,
            &["sh", "-c", "netstat -ltn | grep -q 127.0.0.1:8080"],
            5,
        )
        .is_ok_and(|r| r.exit_code == 0)
    });
    let ns = netns(&c);
    let url = |c: &CriStack| {
        let mut rs = c.rs.clone();
        c.call(rs.port_forward(cri::PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![8080],
        }))
        .expect("PortForward")
        .url
    };
    // SPDY: two connections at once on one session, and a closed port.
    let u = url(&c);
    let (host, path) = split_url(&u);
    let (a, b, closed) = c.rt.block_on(async {
        let tcp = dial_in(&ns, &host).await;
        let (s, _) = spdy(tcp, &path, &["portforward.k8s.io"]).await.unwrap();
        let (a, b) = tokio::join!(get_over(&s, "8080", "0"), get_over(&s, "8080", "1"));
        let closed = get_over(&s, "8081", "2").await;
        (a, b, closed)
    });
    for (body, err) in [&a, &b] {
        assert!(body.contains("inside-the-pod"), "{body:?}");
        assert!(err.is_empty(), "{err}");
    }
    assert!(closed.0.is_empty());
    assert!(
        closed.1.contains("8081"),
        "no error for a closed port: {:?}",
        closed.1
    );

    // WebSocket, SPDY tunnelled (client-go's and crictl's transport).
    let u = url(&c);
    let (host, _) = split_url(&u);
    let (proto, tunnelled) = c.rt.block_on(async {
        let tcp = dial_in(&ns, &host).await;
        let (ws, proto) = websocket(tcp, &u, "SPDY/3.1+portforward.k8s.io").await;
        let s = berth_manager::cri::streaming::spdy::session::Session::new(
            berth_manager::cri::streaming::portforward::tunnel(ws),
            berth_manager::cri::streaming::spdy::session::Role::Client,
        );
        (proto, get_over(&s, "8080", "0").await)
    });
    assert_eq!(proto, "SPDY/3.1+portforward.k8s.io");
    assert!(tunnelled.0.contains("inside-the-pod"), "{tunnelled:?}");

    // WebSocket channels: data on 0, errors on 1, each first carrying the port.
    let u = url(&c);
    let (host, _) = split_url(&u);
    let got = c.rt.block_on(async {
        let tcp = dial_in(&ns, &host).await;
        let (mut ws, proto) = websocket(tcp, &format!("{u}?port=8080"), "v4.channel.k8s.io").await;
        assert_eq!(proto, "v4.channel.k8s.io");
        ws_send(&mut ws, 0, b"GET / HTTP/1.0\r\n\r\n").await;
        let mut data = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        use futures_util::StreamExt;
        while !text(&data).contains("inside-the-pod") && tokio::time::Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(b)))) if b[0] == 0 => {
                    data.extend_from_slice(&b[1..])
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        data
    });
    // The port first (8080 little-endian), then the answer.
    assert_eq!(&got[..2], &8080u16.to_le_bytes());
    assert!(text(&got).contains("inside-the-pod"), "{:?}", text(&got));
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

#[test]
fn stats_show_a_busy_loop_an_allocation_and_the_pods_network() {
    let c = CriStack::new("stats");
    let pc = c.pod_config("stats");
    let pod = c.run_pod(&pc);
    let busy = c.start(&pod, &pc, c.container_config("busy", "while :; do :; done"));
    // 64 MiB held in a shell variable (a command after the sleep keeps the
    // shell from exec'ing it and freeing the memory).
    let hog = c.start(
        &pod,
        &pc,
        c.container_config(
            "hog",
            "x=$(head -c 67108864 /dev/zero | tr '\\0' a); sleep 1000; echo ${#x}",
        ),
    );
    let mut rs = c.rs.clone();
    let container = |id: &str| {
        let mut rs = c.rs.clone();
        c.call(rs.container_stats(cri::ContainerStatsRequest {
            container_id: id.into(),
        }))
        .expect("ContainerStats")
        .stats
        .unwrap()
    };
    // Two samples make a rate.
    std::thread::sleep(Duration::from_millis(500));
    let _ = container(&busy);
    std::thread::sleep(Duration::from_secs(1));
    let s = container(&busy);
    let cpu = s.cpu.unwrap();
    // It shows (a loaded CI host may give it little of a core).
    assert!(
        cpu.usage_nano_cores.unwrap().value > 50_000_000,
        "a busy loop shows no CPU: {cpu:?}"
    );
    // A minute: making 64 MiB in a shell is slow in an emulated guest.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let m = container(&hog).memory;
        if m.as_ref()
            .and_then(|m| m.working_set_bytes.as_ref())
            .is_some_and(|w| w.value > 60 << 20)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the allocation does not show: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The pod: the sums, its processes, its interface.
    let ps = c
        .call(rs.pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: pod.clone(),
        }))
        .expect("PodSandboxStats")
        .stats
        .unwrap();
    let l = ps.linux.unwrap();
    assert_eq!(l.containers.len(), 2);
    assert!(l.memory.unwrap().working_set_bytes.unwrap().value > 60 << 20);
    assert!(l.cpu.unwrap().usage_core_nano_seconds.unwrap().value > 0);
    assert!(l.process.unwrap().process_count.unwrap().value >= 2);
    let net = l.network.unwrap();
    let eth0 = net.default_interface.unwrap();
    assert_eq!(eth0.name, "eth0");
    assert!(
        eth0.tx_bytes.unwrap().value > 0,
        "the pod's interface sent nothing (router solicitations, ARP)"
    );
    let all = c
        .call(rs.list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: None }))
        .expect("ListPodSandboxStats")
        .stats;
    assert_eq!(all.len(), 1);
    // The same numbers as cAdvisor metrics, each described.
    let d = c
        .call(rs.list_metric_descriptors(cri::ListMetricDescriptorsRequest {}))
        .expect("ListMetricDescriptors")
        .descriptors;
    let cpu_ns = |id: &str| {
        container(id)
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map_or(0, |u| u.value)
    };
    let busy_before = cpu_ns(&busy);
    let m = c
        .call(rs.list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {}))
        .expect("ListPodSandboxMetrics")
        .pod_metrics;
    let busy_after = cpu_ns(&busy);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].pod_sandbox_id, pod);
    // CPU in whole seconds (containerd's CRI sends them so), between the
    // samples taken around the call; user, system and CFS counters beside it.
    let busy_metric = |name: &str| {
        m[0].container_metrics
            .iter()
            .find(|c| c.container_id == busy)
            .and_then(|c| c.metrics.iter().find(|x| x.name == name))
            .and_then(|x| x.value.as_ref())
            .map(|v| v.value)
    };
    let secs = busy_metric("container_cpu_usage_seconds_total").expect("the busy loop's CPU");
    assert!(
        (busy_before / 1_000_000_000..=busy_after / 1_000_000_000).contains(&secs),
        "{secs} s of CPU is not between {busy_before} and {busy_after} ns"
    );
    for name in [
        "container_cpu_user_seconds_total",
        "container_cpu_system_seconds_total",
        "container_cpu_cfs_periods_total",
        "container_cpu_cfs_throttled_seconds_total",
    ] {
        assert!(busy_metric(name).is_some(), "no {name}");
    }
    let hog_ws = m[0]
        .container_metrics
        .iter()
        .find(|c| c.container_id == hog)
        .and_then(|c| {
            c.metrics
                .iter()
                .find(|x| x.name == "container_memory_working_set_bytes")
        })
        .expect("the hog's working set");
    assert!(hog_ws.value.as_ref().unwrap().value > 60 << 20);
    let rx = m[0]
        .metrics
        .iter()
        .find(|x| x.name == "container_network_transmit_bytes_total")
        .expect("the pod's network");
    assert_eq!(rx.label_values, vec!["eth0".to_string()]);
    for x in m[0]
        .metrics
        .iter()
        .chain(m[0].container_metrics.iter().flat_map(|c| &c.metrics))
    {
        assert!(
            d.iter().any(|d| d.name == x.name),
            "{} is not described",
            x.name
        );
    }
    c.remove_pod(&pod);
    c.assert_nothing_left();
}

#[test]
fn container_events_follow_a_pods_life_for_every_subscriber() {
    use futures_util::StreamExt;
    let c = CriStack::new("events");
    let mut rs = c.rs.clone();
    let mut first = c
        .call(rs.get_container_events(cri::GetEventsRequest {}))
        .expect("GetContainerEvents");
    let mut second = c
        .call(rs.get_container_events(cri::GetEventsRequest {}))
        .expect("GetContainerEvents");
    let pc = c.pod_config("events");
    let pod = c.run_pod(&pc);
    let id = c.start(&pod, &pc, c.container_config("short", "exit 7"));
    c.wait_exited(&id, 10);
    c.remove_pod(&pod);
    let take = |s: &mut tonic::Streaming<cri::ContainerEventResponse>| {
        c.rt.block_on(async {
            let mut got = Vec::new();
            while got.len() < 8 {
                match tokio::time::timeout(Duration::from_secs(10), s.next()).await {
                    Ok(Some(Ok(e))) => got.push(e),
                    _ => break,
                }
            }
            got
        })
    };
    use cri::ContainerEventType as T;
    let want = vec![
        (pod.clone(), T::ContainerCreatedEvent),
        (pod.clone(), T::ContainerStartedEvent),
        (id.clone(), T::ContainerCreatedEvent),
        (id.clone(), T::ContainerStartedEvent),
        (id.clone(), T::ContainerStoppedEvent),
        (pod.clone(), T::ContainerStoppedEvent),
        (id.clone(), T::ContainerDeletedEvent),
        (pod.clone(), T::ContainerDeletedEvent),
    ];
    for stream in [&mut first, &mut second] {
        let got = take(stream);
        let kinds: Vec<(String, T)> = got
            .iter()
            .map(|e| {
                (
                    e.container_id.clone(),
                    T::try_from(e.container_event_type).unwrap(),
                )
            })
            .collect();
        assert_eq!(kinds, want);
        // The stop carries the exit, with the pod's status.
        let stopped = &got[4];
        assert_eq!(stopped.pod_sandbox_status.as_ref().unwrap().id, pod);
        let st = stopped
            .containers_statuses
            .iter()
            .find(|s| s.id == id)
            .unwrap();
        assert_eq!(st.exit_code, 7);
        assert!(got.iter().all(|e| e.created_at > 0));
    }
    c.assert_nothing_left();
}
