//! Where a registry's images are fetched from: its mirrors, in order, then
//! the registry itself. docker.io's mirrors are dockerd's `registry-mirrors`
//! (`registry_mirrors` in berthd's TOML); any registry can have its own, as
//! containerd's hosts.toml gives them:
//!
//! ```toml
//! registry_mirrors = ["https://mirror.example"]
//! [registries."registry.k8s.io"]
//! mirrors = ["http://127.0.0.1:5000", { url = "https://m.local", insecure = true }]
//! ```
//!
//! An `http://` mirror is spoken to in plain HTTP; `insecure` on an
//! `https://` one accepts a certificate that does not verify. The image keeps
//! its canonical name whichever endpoint served it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A mirror as written in the TOML file: a URL, or a table with options.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum MirrorSpec {
    /// `"http://127.0.0.1:5000"`.
    Url(String),
    /// `{ url = "...", insecure = true }`.
    Table {
        /// The endpoint.
        url: String,
        /// Accept a certificate that does not verify.
        #[serde(default)]
        insecure: bool,
    },
}

/// One registry's settings.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryHosts {
    /// Its mirrors, tried in order before it.
    #[serde(default)]
    pub mirrors: Vec<MirrorSpec>,
}

/// A place to fetch from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]`.
    pub host: String,
    /// Plain HTTP.
    pub plain_http: bool,
    /// TLS without verifying the certificate.
    pub skip_verify: bool,
    /// A mirror (else the registry itself).
    pub mirror: bool,
}

/// A mirror URL that is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("registry mirror {0:?}: not an http:// or https:// URL of a host")]
pub struct BadMirror(pub String);

/// Every registry's settings and the insecure list, for every pull.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Registries spoken to in plain HTTP (see `pull::insecure`).
    pub insecure: Vec<String>,
    /// Mirrors by registry host (`docker.io` for dockerd's list).
    pub mirrors: BTreeMap<String, Vec<MirrorSpec>>,
}

fn parse(spec: &MirrorSpec) -> Result<Endpoint, BadMirror> {
    let (url, insecure) = match spec {
        MirrorSpec::Url(u) => (u.as_str(), false),
        MirrorSpec::Table { url, insecure } => (url.as_str(), *insecure),
    };
    let bad = || BadMirror(url.to_string());
    let (plain, rest) = if let Some(r) = url.strip_prefix("http://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (false, r)
    } else {
        return Err(bad());
    };
    // A path after the host (`/v2/`) is the API's own: dropped.
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(Endpoint {
        host: host.to_string(),
        plain_http: plain,
        skip_verify: insecure && !plain,
        mirror: true,
    })
}

impl RegistrySettings {
    /// Settings from berthd's config: dockerd's list for docker.io, the
    /// per-registry tables, and the insecure list. Every mirror is checked.
    pub fn new(
        insecure: Vec<String>,
        docker_io: &[String],
        registries: &BTreeMap<String, RegistryHosts>,
    ) -> Result<RegistrySettings, BadMirror> {
        let mut mirrors: BTreeMap<String, Vec<MirrorSpec>> = registries
            .iter()
            .map(|(k, v)| (k.clone(), v.mirrors.clone()))
            .collect();
        if !docker_io.is_empty() {
            let list = mirrors.entry("docker.io".into()).or_default();
            let mut all: Vec<MirrorSpec> = docker_io.iter().cloned().map(MirrorSpec::Url).collect();
            all.append(list);
            *list = all;
        }
        for m in mirrors.values().flatten() {
            parse(m)?;
        }
        Ok(RegistrySettings { insecure, mirrors })
    }

    /// Where to fetch `registry`'s content from, in order.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = self
            .mirrors
            .get(registry)
            .into_iter()
            .flatten()
            .filter_map(|m| parse(m).ok())
            .collect();
        out.push(Endpoint {
            host: registry.to_string(),
            plain_http: super::pull::insecure(registry, &self.insecure),
            skip_verify: false,
            mirror: false,
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_come_first_then_the_registry() {
        let regs: BTreeMap<String, RegistryHosts> = toml::from_str(
            r#"
            [registries."registry.k8s.io"]
            mirrors = ["http://127.0.0.1:5000", { url = "https://m.local/v2/", insecure = true }]
            "#,
        )
        .map(|t: BTreeMap<String, BTreeMap<String, RegistryHosts>>| t["registries"].clone())
        .unwrap();
        let s = RegistrySettings::new(vec![], &["https://hub.mirror".into()], &regs).unwrap();
        let e = s.endpoints("registry.k8s.io");
        assert_eq!(e.len(), 3);
        assert_eq!(
            (e[0].host.as_str(), e[0].plain_http, e[0].mirror),
            ("127.0.0.1:5000", true, true)
        );
        assert_eq!(
            (e[1].host.as_str(), e[1].plain_http, e[1].skip_verify),
            ("m.local", false, true)
        );
        assert_eq!(
            (e[2].host.as_str(), e[2].mirror),
            ("registry.k8s.io", false)
        );
        let d = s.endpoints("docker.io");
        assert_eq!(d[0].host, "hub.mirror");
        assert_eq!(d[1].host, "docker.io");
        // A registry without mirrors: itself; loopback ones in plain HTTP.
        let l = s.endpoints("localhost:5000");
        assert_eq!(l.len(), 1);
        assert!(l[0].plain_http);
    }

    #[test]
    fn a_bad_mirror_is_refused_naming_it() {
        let regs: BTreeMap<String, RegistryHosts> = [(
            "r.io".to_string(),
            RegistryHosts {
                mirrors: vec![MirrorSpec::Url("ftp://x".into())],
            },
        )]
        .into();
        let e = RegistrySettings::new(vec![], &[], &regs).unwrap_err();
        assert_eq!(e, BadMirror("ftp://x".into()));
        assert!(RegistrySettings::new(vec![], &["mirror.local".into()], &BTreeMap::new()).is_err());
    }
}
