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
pub struct Handlers(BTreeMap<String, Handler>);

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
        Ok(Handlers(out))
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
    /// User namespaces for pods are no handler's yet.
    pub fn list(&self) -> Vec<cri::RuntimeHandler> {
        let h = |name: &str, rro: bool| cri::RuntimeHandler {
            name: name.into(),
            features: Some(cri::RuntimeHandlerFeatures {
                recursive_read_only_mounts: rro,
                user_namespaces: false,
            }),
        };
        let mut out = vec![h("", true), h(HANDLER, true)];
        out.extend(self.0.iter().map(|(n, x)| h(n, x.rro)));
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
        let taken: BTreeMap<String, PathBuf> = [("berth".to_string(), PathBuf::from("/x"))].into();
        assert!(Handlers::probe(&taken).is_err());
    }
}
