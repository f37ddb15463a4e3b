//! A pod's /etc files, shared by its containers: hostname, hosts (the pod's
//! address and hostname) and resolv.conf from the pod's DNS config (the
//! host's without loopback nameservers when the pod gives none).

use k8s_cri::v1::DnsConfig;

/// `/etc/resolv.conf` for `dns`, or from `host` (the node's) when `dns` has
/// no servers, as kubelet's ClusterFirst/Default policies expect.
pub fn resolv_conf(dns: Option<&DnsConfig>, host: &str) -> String {
    match dns {
        Some(d) if !d.servers.is_empty() || !d.searches.is_empty() || !d.options.is_empty() => {
            let mut s = String::new();
            if !d.searches.is_empty() {
                s.push_str(&format!("search {}\n", d.searches.join(" ")));
            }
            for n in &d.servers {
                s.push_str(&format!("nameserver {n}\n"));
            }
            if !d.options.is_empty() {
                s.push_str(&format!("options {}\n", d.options.join(" ")));
            }
            s
        }
        _ => crate::network::networks::resolv_conf(host, &[]),
    }
}

/// `/etc/hosts` for a pod named `hostname` at `ip` (none: loopback only).
pub fn hosts(hostname: &str, ip: &str) -> String {
    let addrs: Vec<String> = if ip.is_empty() {
        Vec::new()
    } else {
        vec![ip.to_string()]
    };
    crate::network::networks::hosts_file(hostname, &addrs, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_config_becomes_resolv_conf() {
        let d = DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(Some(&d), "nameserver 1.1.1.1\n"),
            "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        // No DNS config: the node's, without loopback servers.
        let r = resolv_conf(None, "nameserver 127.0.0.53\nnameserver 9.9.9.9\n");
        assert!(r.contains("9.9.9.9") && !r.contains("127.0.0.53"), "{r}");
    }

    #[test]
    fn hosts_name_the_pod() {
        let h = hosts("web-0", "10.88.0.5");
        assert!(
            h.contains("10.88.0.5\tweb-0") || h.contains("10.88.0.5 web-0"),
            "{h}"
        );
        assert!(hosts("web-0", "").contains("localhost"));
    }
}
