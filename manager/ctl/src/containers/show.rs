//! How containers are shown: `ps`'s status and ports columns, `inspect`'s JSON.

use berth_proto::containers::{self as pb};

use crate::format::{ago, rfc3339};

pub(crate) fn status_text(c: &pb::Container, now: u64) -> String {
    let since = |t: &Option<prost_types::Timestamp>| {
        let s = t.as_ref().map(|t| t.seconds as u64).unwrap_or(now);
        ago(s, now)
    };
    let up = |t: &Option<prost_types::Timestamp>| since(t).trim_end_matches(" ago").to_string();
    match c.status() {
        pb::TaskStatus::Running => format!("Up {}", up(&c.started_at)),
        pb::TaskStatus::Paused => format!("Up {} (Paused)", up(&c.started_at)),
        pb::TaskStatus::Created => "Created".into(),
        pb::TaskStatus::Stopped => format!("Exited ({})", c.exit_status),
        pb::TaskStatus::None if c.exited => {
            format!("Exited ({}) {}", c.exit_status, since(&c.exited_at))
        }
        pb::TaskStatus::None => "Created".into(),
    }
}

pub(crate) fn state_name(c: &pb::Container) -> &'static str {
    match c.status() {
        pb::TaskStatus::Running => "running",
        pb::TaskStatus::Paused => "paused",
        pb::TaskStatus::Created => "created",
        pb::TaskStatus::Stopped => "exited",
        pb::TaskStatus::None if c.exited => "exited",
        pb::TaskStatus::None => "created",
    }
}

/// Port mappings as docker's inspect shows them: `{"80/tcp": [{"HostIp", "HostPort"}]}`.
pub(crate) fn ports_json(ports: &[pb::PortMapping]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for p in ports {
        let e = m
            .entry(format!("{}/{}", p.container_port, p.protocol))
            .or_insert_with(|| serde_json::json!([]));
        if let Some(list) = e.as_array_mut() {
            list.push(
                serde_json::json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()}),
            );
        }
    }
    serde_json::Value::Object(m)
}

/// `0.0.0.0:8080->80/tcp, ...` for `ps`.
pub(crate) fn ports_text(c: &pb::Container) -> String {
    c.published
        .iter()
        .map(|p| {
            // Ports past 65535 never come from berthd; shown as the error says.
            berth_rules::port::PortMapping::from_wire(
                &p.host_ip,
                p.host_port,
                p.container_port,
                &p.protocol,
            )
            .map_or_else(|e| e.to_string(), |m| m.display())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `inspect` form of a container.
pub(crate) fn inspect_json(c: &pb::Container) -> serde_json::Value {
    let t = |t: &Option<prost_types::Timestamp>| t.as_ref().map(rfc3339);
    let spec: serde_json::Value = serde_json::from_str(&c.spec).unwrap_or_default();
    serde_json::json!({
        "Id": c.id,
        "Name": c.id,
        "Image": c.image,
        "Created": t(&c.created),
        "State": {
            "Status": state_name(c),
            "Running": matches!(c.status(), pb::TaskStatus::Running | pb::TaskStatus::Paused),
            "Paused": c.status() == pb::TaskStatus::Paused,
            "Pid": c.pid,
            "ExitCode": c.exit_status,
            "StartedAt": t(&c.started_at),
            "FinishedAt": t(&c.exited_at),
        },
        "Config": {
            "Tty": c.tty,
            "OpenStdin": c.stdin,
            "Cmd": spec["process"]["args"],
            "Env": spec["process"]["env"],
            "WorkingDir": spec["process"]["cwd"],
            "Labels": c.labels,
        },
        "HostConfig": {
            "AutoRemove": c.auto_remove, "NetworkMode": c.network, "Runtime": c.runtime,
            "PortBindings": ports_json(&c.ports),
        },
        "NetworkSettings": {
            "IPAddress": c.ip_addresses.iter().find(|a| !a.contains(':')).cloned().unwrap_or_default(),
            "IPAddresses": c.ip_addresses,
            "Gateway": c.gateway,
            "Ports": ports_json(&c.published),
        },
        "Mounts": c.mounts.iter().map(|m| serde_json::json!({
            "Type": m.kind, "Source": m.source, "Destination": m.destination, "RW": !m.read_only,
        })).collect::<Vec<_>>(),
        "LogPath": c.log_path,
        "Snapshot": c.snapshot,
        "Spec": spec,
    })
}

pub(crate) fn network_json(n: &pb::Network) -> serde_json::Value {
    let config: serde_json::Value = serde_json::from_str(&n.config).unwrap_or_default();
    serde_json::json!({
        "Name": n.name,
        "Driver": n.driver,
        "IPAM": {"Config": n.subnets.iter().map(|s| serde_json::json!({"Subnet": s})).collect::<Vec<_>>()},
        "Containers": n.containers.iter().map(|e| serde_json::json!({
            "Namespace": e.namespace, "Name": e.id, "IPAddresses": e.ip_addresses,
        })).collect::<Vec<_>>(),
        "ConfigFile": n.file,
        "Config": config,
    })
}
