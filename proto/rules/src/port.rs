//! Published ports in docker's `-p` syntax, and as `ps` prints them.

use serde::{Deserialize, Serialize};

/// A port mapping that does not parse; the message says why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PortError(pub String);

/// A published port: `[hostip:][hostport:]containerport[/tcp|udp]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address it listens on ("" for all).
    pub host_ip: String,
    /// The host port (0: berthd picks a free one).
    pub host_port: u16,
    /// The port in the container.
    pub container_port: u16,
    /// "tcp" or "udp".
    pub protocol: String,
}

impl PortMapping {
    /// Parses docker's `-p` syntax.
    pub fn parse(s: &str) -> Result<PortMapping, PortError> {
        let bad = |why: &str| PortError(format!("port {s:?}: {why}"));
        let (spec, protocol) = match s.rsplit_once('/') {
            Some((a, p)) => (a, p.to_ascii_lowercase()),
            None => (s, "tcp".to_string()),
        };
        if protocol != "tcp" && protocol != "udp" {
            return Err(bad("protocol must be tcp or udp"));
        }
        // An IPv6 host address is bracketed: [::1]:8080:80.
        let (host_ip, rest) = if let Some(r) = spec.strip_prefix('[') {
            let (ip, rest) = r.split_once("]:").ok_or_else(|| bad("unclosed ["))?;
            (ip.to_string(), rest)
        } else {
            let parts: Vec<&str> = spec.split(':').collect();
            match parts.len() {
                1 | 2 => (String::new(), spec),
                3 => (parts[0].to_string(), &spec[parts[0].len() + 1..]),
                _ => return Err(bad("expected [hostip:][hostport:]containerport[/proto]")),
            }
        };
        if !host_ip.is_empty() && host_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(bad("the host address is not an IP address"));
        }
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| bad("a port is a number from 1 to 65535"))
        };
        let (host_port, container_port) = match rest.split_once(':') {
            Some(("", c)) => (0, port(c)?),
            Some((h, c)) => (port(h)?, port(c)?),
            None => (0, port(rest)?),
        };
        Ok(PortMapping {
            host_ip,
            host_port,
            container_port,
            protocol,
        })
    }

    /// As docker prints it: `0.0.0.0:8080->80/tcp`.
    pub fn display(&self) -> String {
        let ip = if self.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            &self.host_ip
        };
        format!(
            "{ip}:{}->{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

impl PortMapping {
    /// From the wire's u32 fields (the API carries ports as uint32): a value
    /// past 65535 is refused, never wrapped.
    pub fn from_wire(
        host_ip: &str,
        host_port: u32,
        container_port: u32,
        protocol: &str,
    ) -> Result<PortMapping, PortError> {
        let port =
            |p: u32| u16::try_from(p).map_err(|_| PortError(format!("port {p} is past 65535")));
        Ok(PortMapping {
            host_ip: host_ip.to_string(),
            host_port: port(host_port)?,
            container_port: port(container_port)?,
            protocol: protocol.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_as_docker_reads_them() {
        let p = PortMapping::parse("8080:80").unwrap();
        assert_eq!(
            (
                p.host_ip.as_str(),
                p.host_port,
                p.container_port,
                p.protocol.as_str()
            ),
            ("", 8080, 80, "tcp")
        );
        let p = PortMapping::parse("127.0.0.1:53:5353/udp").unwrap();
        assert_eq!(
            (
                p.host_ip.as_str(),
                p.host_port,
                p.container_port,
                p.protocol.as_str()
            ),
            ("127.0.0.1", 53, 5353, "udp")
        );
        let p = PortMapping::parse("[::1]:80:8080").unwrap();
        assert_eq!((p.host_ip.as_str(), p.host_port), ("::1", 80));
        assert_eq!(PortMapping::parse("80").unwrap().host_port, 0);
        assert_eq!(PortMapping::parse("127.0.0.1::80").unwrap().host_port, 0);
        assert_eq!(
            PortMapping::parse("8080:80").unwrap().display(),
            "0.0.0.0:8080->80/tcp"
        );
        for bad in [
            "",
            "x:80",
            "80/sctp",
            "1:2:3:4",
            "0:80",
            "70000:80",
            "nothost:80:80",
        ] {
            assert!(PortMapping::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wire_ports_past_u16_are_refused() {
        assert!(PortMapping::from_wire("", 70000, 80, "tcp").is_err());
        assert_eq!(
            PortMapping::from_wire("", 8080, 80, "tcp")
                .unwrap()
                .display(),
            "0.0.0.0:8080->80/tcp"
        );
    }
}
