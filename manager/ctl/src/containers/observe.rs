//! The commands that look at containers: `ps`, `logs`, `inspect`, `stats`,
//! `events`.

use std::io::Write;
use std::time::Duration;

use berth_proto::containers::events_client::EventsClient;
use berth_proto::containers::{self as pb};
use tonic::Code;

use super::args::parse_since;
use super::show::{inspect_json, ports_text, status_text};
use super::Clients;
use crate::failure::{failed, status_err};
use crate::format::{ago, human_size, now_secs, print_rows, rfc3339};
use crate::request;

/// `ps`: a table as docker's, `-q` ids, `--format json`.
pub(crate) async fn ps(
    c: &mut Clients,
    all: bool,
    quiet: bool,
    format: String,
) -> anyhow::Result<u8> {
    let list = c.list(all).await?;
    if quiet {
        for x in &list {
            println!("{}", x.id);
        }
        return Ok(0);
    }
    if format == "json" {
        let v: Vec<_> = list.iter().map(inspect_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let now = now_secs() as u64;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|x| {
            let spec: serde_json::Value = serde_json::from_str(&x.spec).unwrap_or_default();
            let cmd: Vec<String> =
                serde_json::from_value(spec["process"]["args"].clone()).unwrap_or_default();
            let mut cmd = cmd.join(" ");
            if cmd.chars().count() > 20 {
                cmd = cmd.chars().take(19).collect::<String>() + "…";
            }
            vec![
                x.id.clone(),
                x.image.clone(),
                format!("\"{cmd}\""),
                ago(
                    x.created.as_ref().map(|t| t.seconds as u64).unwrap_or(now),
                    now,
                ),
                status_text(x, now),
                ports_text(x),
                x.id.clone(),
            ]
        })
        .collect();
    print_rows(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ],
        &rows,
    );
    Ok(0)
}

/// `logs`: stdout and stderr as the container wrote them; `--tail`, `--since`, `-f`, `-t`.
pub(crate) async fn logs(
    c: &mut Clients,
    follow: bool,
    tail: String,
    since: Option<String>,
    timestamps: bool,
    container: String,
) -> anyhow::Result<u8> {
    let tail = if tail == "all" {
        -1
    } else {
        tail.parse::<i64>()
            .map_err(|_| failed(125, format!("invalid --tail {tail:?}")))?
    };
    let since = match since {
        Some(s) => parse_since(&s, now_secs()).map_err(|e| failed(125, e))?,
        None => 0,
    };
    let r = c.req(pb::LogsRequest {
        container_id: container.clone(),
        follow,
        tail,
        since,
    });
    let mut s = c
        .tasks
        .logs(r)
        .await
        .map_err(|s| match s.code() {
            Code::NotFound => failed(1, format!("no such container: {container}")),
            _ => status_err("logs", s),
        })?
        .into_inner();
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    while let Some(l) = s.message().await.map_err(|s| status_err("logs", s))? {
        let w: &mut dyn Write = if l.stream == pb::StreamKind::Stderr as i32 {
            &mut stderr
        } else {
            &mut stdout
        };
        if timestamps {
            if let Some(t) = &l.time {
                let _ = write!(w, "{} ", rfc3339(t));
            }
        }
        let _ = w.write_all(&l.data);
        let _ = w.flush();
    }
    Ok(0)
}

/// `inspect`: docker's JSON form of each container.
pub(crate) async fn inspect(c: &mut Clients, containers: Vec<String>) -> anyhow::Result<u8> {
    let mut out = Vec::new();
    for id in &containers {
        out.push(inspect_json(&c.get(id).await?));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

/// `stats`: CPU, memory and pids of running containers, sampled 0.5 s apart.
pub(crate) async fn stats(
    c: &mut Clients,
    no_stream: bool,
    containers: Vec<String>,
) -> anyhow::Result<u8> {
    let ids: Vec<String> = if containers.is_empty() {
        c.list(false).await?.into_iter().map(|x| x.id).collect()
    } else {
        containers
    };
    loop {
        let sample = |c: &mut Clients, ids: Vec<String>| {
            let mut tasks = c.tasks.clone();
            let ns = c.ns.clone();
            async move {
                let mut out = Vec::new();
                for id in ids {
                    let s = tasks
                        .stats(request(
                            &ns,
                            pb::TaskRef {
                                container_id: id.clone(),
                                exec_id: String::new(),
                            },
                        ))
                        .await
                        .map_err(|s| status_err(&format!("stats {id}"), s))?
                        .into_inner();
                    out.push((id, s, std::time::Instant::now()));
                }
                Ok::<_, anyhow::Error>(out)
            }
        };
        let a = sample(c, ids.clone()).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let b = sample(c, ids.clone()).await?;
        let rows: Vec<Vec<String>> = a
            .iter()
            .zip(&b)
            .map(|((id, s1, t1), (_, s2, t2))| {
                let dt = t2.duration_since(*t1).as_nanos().max(1) as f64;
                let cpu = s2.cpu_usage_ns.saturating_sub(s1.cpu_usage_ns) as f64 / dt * 100.0;
                let limit = if s2.memory_limit_bytes == 0 || s2.memory_limit_bytes >= 1 << 62 {
                    "unlimited".to_string()
                } else {
                    human_size(s2.memory_limit_bytes)
                };
                vec![
                    id.clone(),
                    format!("{cpu:.2}%"),
                    format!("{} / {limit}", human_size(s2.memory_usage_bytes)),
                    s2.pids_current.to_string(),
                ]
            })
            .collect();
        print_rows(&["CONTAINER", "CPU %", "MEM USAGE / LIMIT", "PIDS"], &rows);
        if no_stream {
            return Ok(0);
        }
    }
}

/// `events`: berthd's event stream, filtered; text or JSON lines.
pub(crate) async fn events(
    c: &mut Clients,
    filter: Vec<String>,
    format: String,
) -> anyhow::Result<u8> {
    let mut req = pb::SubscribeRequest::default();
    for f in &filter {
        match f.split_once('=') {
            Some(("container", v)) => req.containers.push(v.into()),
            Some(("topic", v)) => req.topics.push(v.into()),
            Some(("event", v)) => {
                req.topics.push(format!("/tasks/{v}"));
                req.topics.push(format!("/containers/{v}"));
                req.topics.push(format!("/images/{v}"));
            }
            _ => {
                return Err(failed(
                    125,
                    format!("invalid filter {f:?} (container=, topic=, event=)"),
                ))
            }
        }
    }
    let mut ev = EventsClient::new(c.ch.clone());
    let r = c.req(req);
    let mut s = ev
        .subscribe(r)
        .await
        .map_err(|s| status_err("events", s))?
        .into_inner();
    let mut stdout = std::io::stdout();
    while let Some(e) = s.message().await.map_err(|s| status_err("events", s))? {
        let t = e.timestamp.as_ref().map(rfc3339).unwrap_or_default();
        if format == "json" {
            let v = serde_json::json!({
                "time": t, "namespace": e.namespace, "topic": e.topic, "id": e.id,
                "exec_id": e.exec_id, "pid": e.pid, "exit_status": e.exit_status,
            });
            let _ = writeln!(stdout, "{v}");
        } else {
            let mut line = format!("{t} {} {} {}", e.topic, e.namespace, e.id);
            if !e.exec_id.is_empty() {
                line.push_str(&format!(" exec={}", e.exec_id));
            }
            if e.pid != 0 {
                line.push_str(&format!(" pid={}", e.pid));
            }
            if e.topic == "/tasks/exit" || e.topic == "/tasks/delete" {
                line.push_str(&format!(" status={}", e.exit_status));
            }
            let _ = writeln!(stdout, "{line}");
        }
        let _ = stdout.flush();
    }
    Ok(0)
}
