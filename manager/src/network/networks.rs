//! Container networks: the CNI network lists in berthd's conf dir (a default
//! `bridge` written on first start, others made by `network create`), each
//! container's attachment to one (CNI ADD when its task is created, DEL when
//! it is deleted or found orphaned after a crash), published ports, and the
//! `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` written for it.
//!
//! An attachment is recorded in `<root>/net/attachments/<ns>/<id>` before ADD
//! runs and removed only after DEL succeeded, so a crash at any point leaves
//! a record that the next start turns into a DEL: no IPAM lease, iptables
//! rule or veth outlives its container.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::network::cni::{self, Attachment, CniError, NetworkConfig, Plugins};

/// The default network's name (as docker's).
pub const DEFAULT: &str = "bridge";
/// The default network's bridge device.
pub const DEFAULT_BRIDGE: &str = "berth0";
/// The default network's subnet.
pub const DEFAULT_SUBNET: &str = "10.210.0.0/16";
/// The container's interface.
pub const IFNAME: &str = "eth0";

/// A network failure.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// CNI configuration or a plugin failed.
    #[error(transparent)]
    Cni(#[from] CniError),
    /// No such network.
    #[error("network {0} not found")]
    NotFound(String),
    /// A network of that name exists.
    #[error("network {0} already exists")]
    Exists(String),
    /// The request cannot be met.
    #[error("{0}")]
    Invalid(String),
    /// A file step failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The object.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NetworkError {
    let path = path.to_path_buf();
    move |source| NetworkError::Io { what, path, source }
}

pub use berth_rules::port::PortMapping;

/// An IPv4 CIDR block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Its first address.
    pub net: Ipv4Addr,
    /// Its prefix length.
    pub len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/len`, whose host bits must be zero.
    pub fn parse(s: &str) -> Result<Cidr, NetworkError> {
        let bad = |why: &str| NetworkError::Invalid(format!("subnet {s:?}: {why}"));
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| bad("expected a.b.c.d/len"))?;
        let net: Ipv4Addr = a.parse().map_err(|_| bad("not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|&n| (8..=30).contains(&n))
            .ok_or_else(|| bad("the prefix length must be 8 to 30"))?;
        if u32::from(net) & !Cidr::mask(len) != 0 {
            return Err(bad("host bits are set"));
        }
        Ok(Cidr { net, len })
    }

    fn mask(len: u8) -> u32 {
        u32::MAX << (32 - len as u32)
    }

    /// Whether the two blocks share an address.
    pub fn overlaps(&self, o: &Cidr) -> bool {
        let m = Cidr::mask(self.len.min(o.len));
        u32::from(self.net) & m == u32::from(o.net) & m
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Cidr::mask(self.len) == u32::from(self.net)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

/// The list berthd writes for a bridge network: a bridge with host-local
/// IPAM whose leases live under `ipam_dir`, masquerading for traffic that
/// leaves the subnet, published ports through portmap, and the firewall
/// plugin so forwarding works on hosts whose FORWARD policy is DROP and
/// networks do not reach each other (`same-bridge`, as docker isolates them).
pub fn bridge_conflist(
    name: &str,
    bridge: &str,
    subnet: &Cidr,
    gateway: Option<Ipv4Addr>,
    ipam_dir: &Path,
) -> Value {
    let mut range = json!({"subnet": subnet.to_string()});
    if let Some(g) = gateway {
        range["gateway"] = json!(g.to_string());
    }
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "berth": {"created_ms": berth_rules::time::now_ms()},
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[range]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir.display().to_string(),
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall", "ingressPolicy": "same-bridge"}
        ]
    })
}

/// `/etc/hosts` for a container named `hostname` with `addrs`.
pub fn hosts_file(hostname: &str, addrs: &[String], extra: &[(String, String)]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (name, ip) in extra {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    for a in addrs {
        s.push_str(&format!("{a}\t{hostname}\n"));
    }
    s
}

/// `/etc/resolv.conf` for a container: the host's, without the nameservers
/// on the host's loopback (a container cannot reach them); docker's public
/// fallbacks when none is left. `dns` replaces the nameservers.
pub fn resolv_conf(host: &str, dns: &[String]) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut w = line.split_whitespace();
        if w.next() == Some("nameserver") {
            let ip = w.next().unwrap_or("");
            if !dns.is_empty() || ip.starts_with("127.") || ip == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    for d in dns {
        out.push_str(&format!("nameserver {d}\n"));
        servers += 1;
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// What berthd records of one container's attachment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// The network's name.
    pub network: String,
    /// Its configuration list as it was at ADD (DEL uses the same).
    pub config: Value,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// The namespace's path.
    pub netns: PathBuf,
    /// Capability arguments (port mappings).
    pub capabilities: Value,
    /// The ADD result; null until ADD has succeeded.
    pub result: Value,
}

impl Record {
    /// What the plugins are told about it.
    fn attachment(&self) -> Attachment<'_> {
        Attachment {
            container_id: &self.container_id,
            netns: &self.netns,
            ifname: IFNAME,
            args: &[],
            capabilities: &self.capabilities,
        }
    }

    /// The configuration list as it was at ADD (`file`: the record, for errors).
    fn network_config(&self, file: &Path) -> Result<NetworkConfig, CniError> {
        NetworkConfig::parse(&serde_json::to_vec(&self.config).unwrap_or_default(), file)
    }

    /// The container's addresses on the network.
    pub fn addresses(&self) -> Vec<String> {
        cni::addresses(&self.result, IFNAME)
    }
}

/// The networks of one berthd.
pub struct Networks {
    /// Where the network configuration lists are.
    pub conf_dir: PathBuf,
    /// How plugins are found and run.
    pub plugins: Plugins,
    ipam_dir: PathBuf,
    records: PathBuf,
}

impl Networks {
    /// Networks configured in `conf_dir`, plugins from `bin_dirs`, state under `root`.
    pub fn new(conf_dir: PathBuf, bin_dirs: Vec<PathBuf>, root: &Path) -> Networks {
        Networks {
            conf_dir,
            plugins: Plugins {
                dirs: bin_dirs,
                timeout: std::time::Duration::from_secs(60),
            },
            ipam_dir: root.join("net/ipam"),
            records: root.join("net/attachments"),
        }
    }

    /// Writes the default network's list unless a network of its name exists.
    pub fn ensure_default(&self) -> Result<(), NetworkError> {
        if self.get(DEFAULT).is_ok() {
            return Ok(());
        }
        let subnet = Cidr::parse(DEFAULT_SUBNET)?;
        let list = bridge_conflist(DEFAULT, DEFAULT_BRIDGE, &subnet, None, &self.ipam_dir);
        self.write(&self.conf_dir.join("10-berth-bridge.conflist"), &list)?;
        tracing::info!(file = %self.conf_dir.join("10-berth-bridge.conflist").display(), "wrote the default network configuration");
        Ok(())
    }

    fn write(&self, path: &Path, list: &Value) -> Result<(), NetworkError> {
        std::fs::create_dir_all(&self.conf_dir).map_err(io("create", &self.conf_dir))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(list).unwrap_or_default())
            .map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("rename into place", path))
    }

    /// Every network configured, in the order libcni reads them.
    pub fn list(&self) -> Vec<NetworkConfig> {
        let (nets, errs) = cni::load_dir(&self.conf_dir);
        for e in errs {
            tracing::warn!(error = %e, "skipping a network configuration");
        }
        nets
    }

    /// One network by name.
    pub fn get(&self, name: &str) -> Result<NetworkConfig, NetworkError> {
        self.list()
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| NetworkError::NotFound(name.into()))
    }

    /// Makes a bridge network: its own bridge device and a subnet that
    /// overlaps no other network's (the first free 10.211-254.0.0/16 unless given).
    pub fn create(
        &self,
        name: &str,
        subnet: Option<&str>,
        gateway: Option<&str>,
    ) -> Result<NetworkConfig, NetworkError> {
        if !berth_rules::id::is_name(name) || name == "none" || name == "host" {
            return Err(NetworkError::Invalid(format!(
                "network name {name:?} is not allowed"
            )));
        }
        let nets = self.list();
        if nets.iter().any(|n| n.name == name) {
            return Err(NetworkError::Exists(name.into()));
        }
        let used: Vec<Cidr> = nets
            .iter()
            .flat_map(|n| n.subnets())
            .filter_map(|s| Cidr::parse(&s).ok())
            .collect();
        let subnet = match subnet {
            Some(s) => {
                let c = Cidr::parse(s)?;
                if let Some(o) = used.iter().find(|u| u.overlaps(&c)) {
                    return Err(NetworkError::Invalid(format!(
                        "subnet {c} overlaps {o}, which another network uses"
                    )));
                }
                c
            }
            None => (211..=254)
                .map(|b| Cidr {
                    net: Ipv4Addr::new(10, b, 0, 0),
                    len: 16,
                })
                .find(|c| !used.iter().any(|u| u.overlaps(c)))
                .ok_or_else(|| {
                    NetworkError::Invalid(
                        "no free subnet left in 10.211.0.0-10.254.255.255; give --subnet".into(),
                    )
                })?,
        };
        let gateway = match gateway {
            Some(g) => {
                let ip: Ipv4Addr = g.parse().map_err(|_| {
                    NetworkError::Invalid(format!("gateway {g:?} is not an IPv4 address"))
                })?;
                if !subnet.contains(ip) {
                    return Err(NetworkError::Invalid(format!(
                        "gateway {ip} is not in subnet {subnet}"
                    )));
                }
                Some(ip)
            }
            None => None,
        };
        let digest = crate::store::digest::sha256_of(name.as_bytes()).to_string();
        let hex = digest.rsplit(':').next().unwrap_or(&digest);
        let bridge = format!("br-{}", &hex[..12]);
        let list = bridge_conflist(name, &bridge, &subnet, gateway, &self.ipam_dir);
        self.write(&self.conf_dir.join(format!("50-{name}.conflist")), &list)?;
        self.get(name)
    }

    /// Removes a network's list, its IPAM state and, when berthd made it,
    /// its bridge device. The caller checks that no container uses it.
    pub fn remove(&self, name: &str) -> Result<(), NetworkError> {
        if name == DEFAULT {
            return Err(NetworkError::Invalid(format!(
                "network {name} is the default network and cannot be removed"
            )));
        }
        let net = self.get(name)?;
        std::fs::remove_file(&net.file).map_err(io("remove", &net.file))?;
        let _ = std::fs::remove_dir_all(self.ipam_dir.join(name));
        if net.raw.get("berth").is_some() && net.driver() == "bridge" {
            if let Some(dev) = net.plugins[0]["bridge"].as_str() {
                match crate::sys::delete_bridge(dev) {
                    Ok(()) | Err(nix::errno::Errno::ENXIO) | Err(nix::errno::Errno::ENODEV) => {}
                    Err(e) => tracing::warn!(bridge = dev, error = %e, "delete bridge"),
                }
            }
        }
        Ok(())
    }

    fn record_path(&self, ns: &str, id: &str) -> PathBuf {
        self.records.join(ns).join(id)
    }

    /// The attachment of a container's task, if it has one.
    pub fn record(&self, ns: &str, id: &str) -> Option<Record> {
        let b = std::fs::read(self.record_path(ns, id)).ok()?;
        serde_json::from_slice(&b).ok()
    }

    fn save(&self, ns: &str, id: &str, r: &Record) -> Result<(), NetworkError> {
        let p = self.record_path(ns, id);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(io("create", d))?;
        }
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(r).unwrap_or_default())
            .map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &p).map_err(io("rename into place", &p))
    }

    /// Every recorded attachment as (namespace, id).
    pub fn recorded(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for ns in std::fs::read_dir(&self.records)
            .into_iter()
            .flatten()
            .flatten()
        {
            for e in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                if !id.ends_with(".tmp") {
                    out.push((ns.file_name().to_string_lossy().to_string(), id));
                }
            }
        }
        out
    }

    /// Attaches the namespace at `netns` to network `name` with `ports`.
    pub async fn attach(
        &self,
        ns: &str,
        id: &str,
        name: &str,
        netns: &Path,
        ports: &[PortMapping],
    ) -> Result<Record, NetworkError> {
        let net = self.get(name)?;
        let mappings: Vec<Value> = ports
            .iter()
            .map(|p| {
                json!({"hostPort": p.host_port, "containerPort": p.container_port,
                       "protocol": p.protocol, "hostIP": p.host_ip})
            })
            .collect();
        if !ports.is_empty()
            && !net
                .plugins
                .iter()
                .any(|p| p["capabilities"]["portMappings"] == true)
        {
            return Err(NetworkError::Invalid(format!(
                "network {name} cannot publish ports: none of its plugins has the portMappings capability"
            )));
        }
        let digest = crate::store::digest::sha256_of(format!("{ns}/{id}").as_bytes()).to_string();
        let hex = digest.rsplit(':').next().unwrap_or(&digest);
        let mut rec = Record {
            network: name.into(),
            config: net.raw.clone(),
            container_id: format!("berth-{}", &hex[..32]),
            netns: netns.to_path_buf(),
            capabilities: json!({"portMappings": mappings}),
            result: Value::Null,
        };
        // Recorded before ADD: a crash during it still leads to a DEL.
        self.save(ns, id, &rec)?;
        match self.plugins.add(&net, &rec.attachment()).await {
            Ok(result) => {
                rec.result = result;
                self.save(ns, id, &rec)?;
                Ok(rec)
            }
            Err(e) => {
                // add() has undone what it did.
                let _ = std::fs::remove_file(self.record_path(ns, id));
                Err(e.into())
            }
        }
    }

    /// Detaches a container's task (DEL with the recorded list and result);
    /// the record goes only once DEL succeeded, so a failure is retried.
    pub async fn detach(&self, ns: &str, id: &str) -> Result<(), NetworkError> {
        let Some(rec) = self.record(ns, id) else {
            return Ok(());
        };
        let path = self.record_path(ns, id);
        let result = Some(&rec.result).filter(|r| !r.is_null());
        self.plugins
            .del(&rec.network_config(&path)?, &rec.attachment(), result)
            .await?;
        std::fs::remove_file(&path).map_err(io("remove", &path))
    }

    /// CHECK of a recorded attachment.
    pub async fn check(&self, ns: &str, id: &str) -> Result<(), NetworkError> {
        let Some(rec) = self.record(ns, id) else {
            return Ok(());
        };
        let net = rec.network_config(&self.record_path(ns, id))?;
        Ok(self
            .plugins
            .check(&net, &rec.attachment(), &rec.result)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_overlap() {
        let a = Cidr::parse("10.210.0.0/16").unwrap();
        assert!(a.overlaps(&Cidr::parse("10.210.5.0/24").unwrap()));
        assert!(!a.overlaps(&Cidr::parse("10.211.0.0/16").unwrap()));
        assert!(a.contains("10.210.3.4".parse().unwrap()));
        assert!(Cidr::parse("10.210.0.1/16").is_err());
        assert!(Cidr::parse("10.0.0.0/4").is_err());
        assert!(Cidr::parse("fd00::/64").is_err());
    }

    #[test]
    fn resolv_conf_drops_loopback_servers() {
        let host =
            "search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.1\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, &[]),
            "search example.org\nnameserver 192.0.2.1\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", &[]),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(
            resolv_conf(host, &["1.1.1.1".into()]),
            "search example.org\noptions edns0\nnameserver 1.1.1.1\n"
        );
    }

    #[test]
    fn hosts_names_the_container() {
        let h = hosts_file(
            "web",
            &["10.210.0.2".into()],
            &[("db".into(), "10.0.0.9".into())],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.0.0.9\tdb\n10.210.0.2\tweb\n"), "{h}");
    }

    #[test]
    fn create_picks_a_free_subnet_and_refuses_overlaps() {
        let dir = std::env::temp_dir().join(format!("berth-net-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let n = Networks::new(dir.join("conf"), vec![], &dir);
        n.ensure_default().unwrap();
        n.ensure_default().unwrap();
        assert_eq!(n.list().len(), 1);
        let a = n.create("a", None, None).unwrap();
        assert_eq!(a.subnets(), ["10.211.0.0/16"]);
        assert_eq!(a.plugins[0]["bridge"].as_str().unwrap().len(), 15);
        let b = n
            .create("b", Some("192.168.77.0/24"), Some("192.168.77.254"))
            .unwrap();
        assert_eq!(
            b.plugins[0]["ipam"]["ranges"][0][0]["gateway"],
            "192.168.77.254"
        );
        assert!(matches!(
            n.create("a", None, None),
            Err(NetworkError::Exists(_))
        ));
        assert!(n
            .create("c", Some("10.211.1.0/24"), None)
            .unwrap_err()
            .to_string()
            .contains("overlaps"));
        assert!(n
            .create("d", Some("10.9.0.0/16"), Some("10.8.0.1"))
            .is_err());
        assert!(n.create("host", None, None).is_err());
        assert!(n.remove(DEFAULT).is_err());
        n.remove("b").unwrap();
        assert!(matches!(n.get("b"), Err(NetworkError::NotFound(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
