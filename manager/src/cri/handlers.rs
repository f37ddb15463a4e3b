//! Runtime handlers: what a pod's `runtime_handler` (kubelet's RuntimeClass)
//! names. `""` and `berth` are berthd's own runtime; more come from the
//! config (`[runtime_handlers] runc = "/usr/sbin/runc"`), each an OCI
//! runtime with runc's command line. Each is listed with what it supports,
//! asked of the runtime itself (`features`), never assumed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;

use super::{CriError, HANDLER};

/// One configured handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handler {
    /// The OCI runtime binary.
    pub path: PathBuf,
    /// Its `features` list the `rro` mount option.
    pub rro: bool,
}

/// The handlers beside berthd's own.
#[derive(Clone, Debug, Default)]
pub struct Handlers(BTreeMap<String, Handler>, UserNamespaces);

/// Whether berthd's own handlers offer user namespaces for pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum UserNamespaces {
    /// Not asked yet.
    #[default]
    Unknown,
    /// The layers' filesystem takes idmapped mounts.
    Yes,
    /// Not here, and why (logged once at start).
    No(String),
}

/// Asks the shim whether the filesystem at `root` (where the layers are)
/// takes idmapped mounts, which a pod's user namespace needs for its rootfs.
pub async fn probe_user_namespaces(shim: &Path, root: &Path) -> UserNamespaces {
    let check = tokio::process::Command::new(shim)
        .arg("idmap-check")
        .arg(root)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(std::time::Duration::from_secs(10), check).await {
        Ok(Ok(o)) if o.status.success() => UserNamespaces::Yes,
        Ok(Ok(o)) => UserNamespaces::No(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Ok(Err(e)) => UserNamespaces::No(format!("run {}: {e}", shim.display())),
        Err(_) => UserNamespaces::No(format!(
            "{} idmap-check did not answer in 10 s",
            shim.display()
        )),
    }
}

/// Whether `features` JSON (runc's `features` command) offers `rro`.
pub fn offers_rro(features: &serde_json::Value) -> bool {
    features["mountOptions"]
        .as_array()
        .is_some_and(|o| o.iter().any(|o| o == "rro"))
}

fn probe(path: &Path) -> bool {
    std::process::Command::new(path)
        .arg("features")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .is_some_and(|f| offers_rro(&f))
}

impl Handlers {
    /// Handlers from `name → runtime binary`, each asked for its features.
    /// Berth's own names cannot be taken.
    pub fn probe(config: &BTreeMap<String, PathBuf>) -> Result<Handlers, CriError> {
        let mut out = BTreeMap::new();
        for (name, path) in config {
            if name.is_empty() || name == HANDLER {
                return Err(CriError::Invalid(format!(
                    "runtime handler {name:?} is berthd's own runtime; give another name"
                )));
            }
            if !berth_rules::id::is_name(name) {
                return Err(CriError::Invalid(format!(
                    "runtime handler name {name:?} is not valid"
                )));
            }
            out.insert(
                name.clone(),
                Handler {
                    path: path.clone(),
                    rro: probe(path),
                },
            );
        }
        Ok(Handlers(out, UserNamespaces::Unknown))
    }

    /// The same, with berthd's own handlers offering user namespaces for
    /// pods as `u` says.
    pub fn with_user_namespaces(self, u: UserNamespaces) -> Handlers {
        Handlers(self.0, u)
    }

    /// Whether a pod may ask for a user namespace (else the reason).
    pub fn user_namespaces(&self) -> Result<(), String> {
        match &self.1 {
            UserNamespaces::Yes => Ok(()),
            UserNamespaces::No(why) => Err(why.clone()),
            UserNamespaces::Unknown => Err("not probed".into()),
        }
    }

    /// The runtime binary of handler `name` (`None`: berthd's own).
    pub fn resolve(&self, name: &str) -> Result<Option<&Path>, CriError> {
        if name.is_empty() || name == HANDLER {
            return Ok(None);
        }
        match self.0.get(name) {
            Some(h) => Ok(Some(&h.path)),
            None => Err(CriError::Invalid(format!(
                "runtime handler {name:?} is not configured (berthd has {:?})",
                self.names()
            ))),
        }
    }

    /// Every handler's name, berthd's own first.
    pub fn names(&self) -> Vec<String> {
        ["", HANDLER]
            .into_iter()
            .map(String::from)
            .chain(self.0.keys().cloned())
            .collect()
    }

    /// The handlers as Status lists them: the default (`""`, what kubelet
    /// uses without a RuntimeClass) and `berth` with what Berth's runtime
    /// supports, then each configured one with what it said it supports.
    /// User namespaces for pods are berthd's own handlers' where the
    /// layers' filesystem takes idmapped mounts.
    pub fn list(&self) -> Vec<cri::RuntimeHandler> {
        let h = |name: &str, rro: bool, userns: bool| cri::RuntimeHandler {
            name: name.into(),
            features: Some(cri::RuntimeHandlerFeatures {
                recursive_read_only_mounts: rro,
                user_namespaces: userns,
            }),
        };
        let own_userns = self.1 == UserNamespaces::Yes;
        let mut out = vec![h("", true, own_userns), h(HANDLER, true, own_userns)];
        out.extend(self.0.iter().map(|(n, x)| h(n, x.rro, false)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_runtimes_and_features_are_asked() {
        assert!(offers_rro(
            &serde_json::json!({"mountOptions": ["ro", "rro"]})
        ));
        assert!(!offers_rro(&serde_json::json!({"mountOptions": ["ro"]})));
        assert!(!offers_rro(&serde_json::json!({})));
        let cfg: BTreeMap<String, PathBuf> =
            [("other".to_string(), PathBuf::from("/nonexistent/runtime"))].into();
        let h = Handlers::probe(&cfg).unwrap();
        assert_eq!(h.resolve("").unwrap(), None);
        assert_eq!(h.resolve("berth").unwrap(), None);
        assert_eq!(
            h.resolve("other").unwrap(),
            Some(Path::new("/nonexistent/runtime"))
        );
        assert!(h.resolve("kata").is_err());
        let list = h.list();
        assert_eq!(list.len(), 3);
        // A runtime that cannot say what it supports gets nothing advertised.
        assert!(!list[2].features.unwrap().recursive_read_only_mounts);
        assert!(!list[0].features.unwrap().user_namespaces);
        assert!(h.user_namespaces().is_err());
        let h = h.with_user_namespaces(UserNamespaces::Yes);
        let list = h.list();
        assert!(list[0].features.unwrap().user_namespaces);
        assert!(list[1].features.unwrap().user_namespaces);
        assert!(!list[2].features.unwrap().user_namespaces);
        assert!(h.user_namespaces().is_ok());
        let taken: BTreeMap<String, PathBuf> = [("berth".to_string(), PathBuf::from("/x"))].into();
        assert!(Handlers::probe(&taken).is_err());
    }
}
