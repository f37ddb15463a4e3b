//! The CNI protocol, as the spec (v1.0) gives it to runtimes: network
//! configuration lists read from a directory, plugins found on a search path
//! and executed with `CNI_COMMAND` ADD, DEL or CHECK, the configuration on
//! stdin (name, cniVersion, `runtimeConfig` for the capabilities a plugin
//! declares, `prevResult` down the chain), the result or a structured error
//! on stdout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// A CNI failure.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// A configuration file is unreadable or not a valid configuration.
    #[error("network config {path}: {why}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// No plugin binary of that type on the search path.
    #[error("network {network}: plugin {plugin:?} not found in {dirs}")]
    PluginNotFound {
        /// The network.
        network: String,
        /// The plugin type.
        plugin: String,
        /// The directories searched.
        dirs: String,
    },
    /// A plugin ran and reported failure.
    #[error("network {network}: plugin {plugin} {command}: {msg}")]
    Plugin {
        /// The network.
        network: String,
        /// The plugin type.
        plugin: String,
        /// ADD, DEL or CHECK.
        command: &'static str,
        /// Its message (with details and code when it gave them).
        msg: String,
    },
}

/// A network configuration list.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Its name (`--network NAME`).
    pub name: String,
    /// The CNI version the plugins are spoken to in.
    pub cni_version: String,
    /// The plugins, in ADD order.
    pub plugins: Vec<Value>,
    /// Whether CHECK is turned off for it.
    pub disable_check: bool,
    /// The whole list as written.
    pub raw: Value,
    /// The file it came from.
    pub file: PathBuf,
}

impl NetworkConfig {
    /// Parses a `.conflist` (a list) or a `.conf` (one plugin, made a list of one).
    pub fn parse(bytes: &[u8], file: &Path) -> Result<NetworkConfig, CniError> {
        let bad = |why: String| CniError::Config {
            path: file.to_path_buf(),
            why,
        };
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let raw = if v.get("plugins").is_some() {
            v
        } else if v.get("type").is_some() {
            // A single plugin configuration: a list of one, as libcni reads it.
            json!({"cniVersion": v["cniVersion"], "name": v["name"], "plugins": [v]})
        } else {
            return Err(bad(
                "neither a plugin list nor a plugin configuration".into()
            ));
        };
        let name = raw["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("no name".into()))?
            .to_string();
        let cni_version = raw["cniVersion"].as_str().unwrap_or("0.4.0").to_string();
        let plugins = raw["plugins"]
            .as_array()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("no plugins".into()))?
            .clone();
        for p in &plugins {
            let t = p["type"].as_str().unwrap_or("");
            if t.is_empty() || t.contains('/') || t.starts_with('.') {
                return Err(bad(format!("plugin type {t:?} is not a plugin name")));
            }
        }
        Ok(NetworkConfig {
            name,
            cni_version,
            plugins,
            disable_check: raw["disableCheck"].as_bool().unwrap_or(false),
            raw,
            file: file.to_path_buf(),
        })
    }

    /// The first plugin's type (the network's driver, as `network ls` shows it).
    pub fn driver(&self) -> &str {
        self.plugins[0]["type"].as_str().unwrap_or("")
    }

    /// The IPv4/IPv6 subnets its IPAM hands addresses from.
    pub fn subnets(&self) -> Vec<String> {
        let ipam = &self.plugins[0]["ipam"];
        let mut out = Vec::new();
        if let Some(s) = ipam["subnet"].as_str() {
            out.push(s.to_string());
        }
        for set in ipam["ranges"].as_array().into_iter().flatten() {
            for r in set.as_array().into_iter().flatten() {
                if let Some(s) = r["subnet"].as_str() {
                    out.push(s.to_string());
                }
            }
        }
        out
    }
}

/// Every network configuration in `dir` (`*.conflist`, `*.conf`, `*.json`),
/// in file-name order; of two with the same name the first wins, as in libcni.
/// Unreadable files are returned apart, so one bad file hides nothing else.
pub fn load_dir(dir: &Path) -> (Vec<NetworkConfig>, Vec<CniError>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        })
        .collect();
    files.sort();
    let (mut nets, mut errs) = (Vec::<NetworkConfig>::new(), Vec::new());
    for f in files {
        match std::fs::read(&f)
            .map_err(|e| CniError::Config {
                path: f.clone(),
                why: e.to_string(),
            })
            .and_then(|b| NetworkConfig::parse(&b, &f))
        {
            Ok(n) if nets.iter().any(|m| m.name == n.name) => {}
            Ok(n) => nets.push(n),
            Err(e) => errs.push(e),
        }
    }
    (nets, errs)
}

/// One container's attachment: what the plugins are told about it.
#[derive(Clone, Debug)]
pub struct Attachment<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_NETNS`.
    pub netns: &'a Path,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_ARGS` pairs.
    pub args: &'a [(String, String)],
    /// Capability arguments (`portMappings`, ...), given to the plugins that
    /// declare each capability as `runtimeConfig`.
    pub capabilities: &'a Value,
}

/// How plugins are found and run.
#[derive(Clone, Debug)]
pub struct Plugins {
    /// The directories searched for plugin binaries (`CNI_PATH`).
    pub dirs: Vec<PathBuf>,
    /// How long one plugin may run.
    pub timeout: Duration,
}

#[derive(Clone, Copy)]
enum Command {
    Add,
    Del,
    Check,
}

impl Command {
    fn name(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
        }
    }
}

/// Whether `version` (x.y.z) is at least `min`.
fn version_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut it = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    v >= min
}

/// The stdin of one plugin: its own configuration with the list's name and
/// version, its capabilities' arguments, and the previous result.
fn plugin_stdin(
    net: &NetworkConfig,
    plugin: &Value,
    att: &Attachment<'_>,
    prev: Option<&Value>,
) -> Value {
    let mut conf = plugin.clone();
    conf["name"] = json!(net.name);
    conf["cniVersion"] = json!(net.cni_version);
    let mut rc = serde_json::Map::new();
    if let (Some(caps), Some(args)) = (
        plugin["capabilities"].as_object(),
        att.capabilities.as_object(),
    ) {
        for (k, on) in caps {
            if on.as_bool() == Some(true) {
                if let Some(v) = args.get(k) {
                    rc.insert(k.clone(), v.clone());
                }
            }
        }
    }
    if !rc.is_empty() {
        conf["runtimeConfig"] = Value::Object(rc);
    }
    if let Some(p) = prev {
        conf["prevResult"] = p.clone();
    }
    conf
}

impl Plugins {
    fn find(&self, net: &str, plugin: &str) -> Result<PathBuf, CniError> {
        self.dirs
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| p.is_file())
            .ok_or_else(|| CniError::PluginNotFound {
                network: net.into(),
                plugin: plugin.into(),
                dirs: self
                    .dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
            })
    }

    async fn exec(
        &self,
        cmd: Command,
        net: &NetworkConfig,
        plugin: &Value,
        att: &Attachment<'_>,
        prev: Option<&Value>,
    ) -> Result<Value, CniError> {
        let kind = plugin["type"].as_str().unwrap_or("");
        let fail = |msg: String| CniError::Plugin {
            network: net.name.clone(),
            plugin: kind.into(),
            command: cmd.name(),
            msg,
        };
        let bin = self.find(&net.name, kind)?;
        let stdin = serde_json::to_vec(&plugin_stdin(net, plugin, att, prev)).unwrap_or_default();
        let args: Vec<String> = att.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let cni_path = std::env::join_paths(&self.dirs).unwrap_or_default();
        let mut child = tokio::process::Command::new(&bin)
            .env("CNI_COMMAND", cmd.name())
            .env("CNI_CONTAINERID", att.container_id)
            .env("CNI_NETNS", att.netns)
            .env("CNI_IFNAME", att.ifname)
            .env("CNI_ARGS", args.join(";"))
            .env("CNI_PATH", cni_path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("run {}: {e}", bin.display())))?;
        if let Some(mut w) = child.stdin.take() {
            w.write_all(&stdin)
                .await
                .map_err(|e| fail(format!("write its config: {e}")))?;
        }
        let out = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| fail(format!("no answer in {:?}", self.timeout)))?
            .map_err(|e| fail(format!("wait: {e}")))?;
        let parsed: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if !out.status.success() {
            return Err(fail(match parsed {
                Some(e) if e.get("msg").is_some() => {
                    let mut m = e["msg"].as_str().unwrap_or("").to_string();
                    if let Some(d) = e["details"].as_str().filter(|d| !d.is_empty()) {
                        m.push_str(&format!(": {d}"));
                    }
                    format!("{m} (code {})", e["code"])
                }
                _ => {
                    let text = String::from_utf8_lossy(&out.stderr);
                    format!("{} ({})", text.trim(), out.status)
                }
            }));
        }
        match cmd {
            Command::Add => parsed
                .filter(Value::is_object)
                .ok_or_else(|| fail("its result is not a JSON object".into())),
            Command::Del | Command::Check => Ok(Value::Null),
        }
    }

    /// ADD: runs the list's plugins in order, each given the last one's
    /// result; returns the final result. On failure the plugins already run
    /// are undone with DEL, as the spec asks of runtimes.
    pub async fn add(&self, net: &NetworkConfig, att: &Attachment<'_>) -> Result<Value, CniError> {
        let mut prev: Option<Value> = None;
        for p in &net.plugins {
            match self.exec(Command::Add, net, p, att, prev.as_ref()).await {
                Ok(r) => prev = Some(r),
                Err(e) => {
                    if let Err(d) = self.del(net, att, prev.as_ref()).await {
                        tracing::warn!(network = %net.name, error = %d, "undo a failed ADD");
                    }
                    return Err(e);
                }
            }
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    /// DEL: runs the list's plugins in reverse order, each given the ADD's
    /// result (from CNI 0.4.0 on). Every plugin runs even when one fails,
    /// so one broken plugin leaks no more than its own share; the first
    /// failure is returned.
    pub async fn del(
        &self,
        net: &NetworkConfig,
        att: &Attachment<'_>,
        result: Option<&Value>,
    ) -> Result<(), CniError> {
        let prev = result.filter(|_| version_at_least(&net.cni_version, (0, 4)));
        let mut first = None;
        for p in net.plugins.iter().rev() {
            if let Err(e) = self.exec(Command::Del, net, p, att, prev).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// CHECK: asks each plugin whether the attachment is as ADD left it
    /// (from CNI 0.4.0 on, unless the list disables it).
    pub async fn check(
        &self,
        net: &NetworkConfig,
        att: &Attachment<'_>,
        result: &Value,
    ) -> Result<(), CniError> {
        if net.disable_check || !version_at_least(&net.cni_version, (0, 4)) {
            return Ok(());
        }
        for p in &net.plugins {
            self.exec(Command::Check, net, p, att, Some(result)).await?;
        }
        Ok(())
    }
}

/// The addresses (without prefix length) a result gives the container's
/// interface `ifname`, IPv4 first.
pub fn addresses(result: &Value, ifname: &str) -> Vec<String> {
    let ifaces = result["interfaces"].as_array();
    let mut out: Vec<String> = result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|ip| match (ip["interface"].as_u64(), ifaces) {
            (Some(i), Some(list)) => list
                .get(usize::try_from(i).unwrap_or(usize::MAX))
                .is_none_or(|f| f["name"].as_str() == Some(ifname)),
            _ => true,
        })
        .filter_map(|ip| ip["address"].as_str())
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .collect();
    // CNI 0.2.0 results.
    for k in ["ip4", "ip6"] {
        if let Some(a) = result[k]["ip"].as_str() {
            out.push(a.split('/').next().unwrap_or(a).to_string());
        }
    }
    out.sort_by_key(|a| a.contains(':'));
    out
}

/// The gateway of the first IPv4 address in a result.
pub fn gateway(result: &Value) -> Option<String> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|ip| !ip["address"].as_str().unwrap_or("").contains(':'))
        .find_map(|ip| ip["gateway"].as_str().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn loads_lists_and_single_plugin_confs_in_name_order() {
        let dir = std::env::temp_dir().join(format!("berth-cni-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write(
            &dir,
            "10-a.conflist",
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}]]}},{"type":"portmap"}]}"#,
        );
        write(
            &dir,
            "20-b.conf",
            r#"{"cniVersion":"0.3.1","name":"b","type":"ptp","ipam":{"subnet":"10.2.0.0/24"}}"#,
        );
        write(
            &dir,
            "30-dup.conflist",
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"macvlan"}]}"#,
        );
        write(
            &dir,
            "40-bad.conflist",
            r#"{"name":"c","plugins":[{"type":"../evil"}]}"#,
        );
        write(&dir, "notes.txt", "ignored");
        let (nets, errs) = load_dir(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(nets.len(), 2);
        assert_eq!((nets[0].name.as_str(), nets[0].driver()), ("a", "bridge"));
        assert_eq!(nets[0].subnets(), ["10.1.0.0/24"]);
        assert_eq!(nets[0].plugins.len(), 2);
        assert_eq!((nets[1].name.as_str(), nets[1].driver()), ("b", "ptp"));
        assert_eq!(nets[1].subnets(), ["10.2.0.0/24"]);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].to_string().contains("not a plugin name"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn stdin_carries_name_version_capabilities_and_prev_result() {
        let net = NetworkConfig::parse(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}}]}"#,
            Path::new("x"),
        )
        .unwrap();
        let caps = json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}], "bandwidth": {"x": 1}});
        let att = Attachment {
            container_id: "c",
            netns: Path::new("/n"),
            ifname: "eth0",
            args: &[],
            capabilities: &caps,
        };
        let first = plugin_stdin(&net, &net.plugins[0], &att, None);
        assert_eq!(first["name"], "n");
        assert_eq!(first["cniVersion"], "1.0.0");
        assert!(first.get("runtimeConfig").is_none() && first.get("prevResult").is_none());
        let prev = json!({"ips": []});
        let second = plugin_stdin(&net, &net.plugins[1], &att, Some(&prev));
        assert_eq!(
            second["runtimeConfig"],
            json!({"portMappings": caps["portMappings"]})
        );
        assert_eq!(second["prevResult"], prev);
    }

    #[test]
    fn result_addresses_and_gateway() {
        let r = json!({
            "interfaces": [{"name": "br0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/n"}],
            "ips": [
                {"interface": 2, "address": "fd00::5/64"},
                {"interface": 2, "address": "10.210.0.5/16", "gateway": "10.210.0.1"},
                {"interface": 0, "address": "10.210.0.1/16"}
            ]
        });
        assert_eq!(addresses(&r, "eth0"), ["10.210.0.5", "fd00::5"]);
        assert_eq!(gateway(&r).as_deref(), Some("10.210.0.1"));
        assert_eq!(
            addresses(&json!({"ip4": {"ip": "10.0.0.2/24"}}), "eth0"),
            ["10.0.0.2"]
        );
        assert!(version_at_least("1.0.0", (0, 4)) && version_at_least("0.4.0", (0, 4)));
        assert!(!version_at_least("0.3.1", (0, 4)));
    }
}
