//! A task's network: its namespace joined to a CNI network, published
//! host ports checked and mapped, torn down when the task goes.

use crate::containers::records::Container;
use crate::containers::spec;
use crate::network::networks::PortMapping;
use std::path::Path;

use super::*;

impl Manager {
    /// Attaches a CNI container's namespace to its network and writes the
    /// container's /etc/hosts, /etc/hostname and /etc/resolv.conf.
    pub(super) async fn setup_network(
        &self,
        ns: &str,
        c: &Container,
        netns: Option<&Path>,
    ) -> Result<(), TaskError> {
        let network = spec::Network::parse(&c.network)?;
        let mut addrs = Vec::new();
        if let (spec::Network::Cni(name), Some(p)) = (&network, netns) {
            self.check_ports_unallocated(ns, c)?;
            let ports = self.free_host_ports(&c.ports)?;
            addrs = self
                .networks
                .attach(ns, &c.id, name, p, &ports)
                .await?
                .addresses();
        }
        if !self.bound_etc_files(ns, c) {
            return Ok(());
        }
        let dir = self.data_dir(ns, &c.id);
        let hostname = c.spec["hostname"].as_str().unwrap_or(&c.id).to_string();
        let (hosts, resolv) = match &network {
            spec::Network::Container(other) => {
                // The other container's files: the same network, the same names.
                let od = self.data_dir(ns, other);
                (
                    std::fs::read_to_string(od.join("hosts")).unwrap_or_default(),
                    std::fs::read_to_string(od.join("resolv.conf")).unwrap_or_default(),
                )
            }
            _ => (
                crate::network::networks::hosts_file(&hostname, &addrs, &[]),
                crate::network::networks::resolv_conf(
                    &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
                    &[],
                ),
            ),
        };
        for (name, text) in [
            ("hosts", hosts),
            ("hostname", format!("{hostname}\n")),
            ("resolv.conf", resolv),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(io("write", &p))?;
        }
        Ok(())
    }

    /// Whether the container's spec binds berthd's /etc files over its own.
    pub(super) fn bound_etc_files(&self, ns: &str, c: &Container) -> bool {
        let hosts = self.data_dir(ns, &c.id).join("hosts");
        c.spec["mounts"].as_array().is_some_and(|m| {
            m.iter().any(|m| {
                m["destination"] == "/etc/hosts"
                    && m["source"].as_str().map(Path::new) == Some(hosts.as_path())
            })
        })
    }

    /// The mappings with every host port 0 replaced by a free one.
    /// Refuses a host port another running container of the namespace
    /// publishes (the same port and protocol, on an address that overlaps),
    /// as docker refuses it: "port is already allocated".
    fn check_ports_unallocated(&self, ns: &str, c: &Container) -> Result<(), TaskError> {
        let overlap = |a: &str, b: &str| {
            let any = |x: &str| x.is_empty() || x == "0.0.0.0" || x == "::";
            any(a) || any(b) || a == b
        };
        for other in self.records().list(ns)? {
            if other.id == c.id || !self.has_task(ns, &other.id) {
                continue;
            }
            for p in c.ports.iter().filter(|p| p.host_port != 0) {
                let taken = other.ports.iter().any(|o| {
                    o.host_port == p.host_port
                        && o.protocol == p.protocol
                        && overlap(&o.host_ip, &p.host_ip)
                });
                if taken {
                    let ip = if p.host_ip.is_empty() {
                        "0.0.0.0"
                    } else {
                        &p.host_ip
                    };
                    return Err(TaskError::State(format!(
                        "Bind for {ip}:{} failed: port is already allocated (container {} publishes it)",
                        p.host_port, other.id
                    )));
                }
            }
        }
        Ok(())
    }

    pub(super) fn free_host_ports(
        &self,
        ports: &[PortMapping],
    ) -> Result<Vec<PortMapping>, TaskError> {
        ports
            .iter()
            .map(|p| {
                let mut p = p.clone();
                if p.host_port == 0 {
                    let ip = if p.host_ip.is_empty() {
                        "0.0.0.0"
                    } else {
                        &p.host_ip
                    };
                    let addr = (ip, 0);
                    let port = if p.protocol == "udp" {
                        std::net::UdpSocket::bind(addr).and_then(|s| s.local_addr())
                    } else {
                        std::net::TcpListener::bind(addr).and_then(|s| s.local_addr())
                    };
                    p.host_port = port
                        .map_err(io("find a free port on", Path::new(ip)))?
                        .port();
                }
                Ok(p)
            })
            .collect()
    }

    /// Undoes a task's networking: CNI DEL (kept for a retry at the next
    /// start when it fails), then the namespace.
    pub(super) async fn teardown_network(&self, ns: &str, id: &str) {
        if let Err(e) = self.networks.detach(ns, id).await {
            tracing::warn!(namespace = %ns, id = %id, error = %e, "detach from network");
        }
        if let Err(e) = crate::network::netns::remove(&self.netns_path(ns, id)) {
            tracing::warn!(namespace = %ns, id = %id, error = %e, "remove network namespace");
        }
    }
}
