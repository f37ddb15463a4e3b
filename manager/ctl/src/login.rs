//! `login` and `logout`, as docker's: credentials checked by berthd against
//! the registry, then kept in docker's `config.json` (`$DOCKER_CONFIG`, else
//! `~/.docker`) under `auths`, where berthd's pulls find them.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::Context;
use base64::Engine as _;
use berth_proto::images::images_client::ImagesClient;
use berth_proto::images::{self as pb};
use tonic::transport::Channel;

use crate::request;

/// Docker Hub's key in `auths`, as docker writes it.
const HUB_KEY: &str = "https://index.docker.io/v1/";

/// The key of `server` in `auths` and the host to check it against.
pub fn server_key(server: Option<&str>) -> (String, String) {
    match server.map(|s| {
        s.trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
    }) {
        None
        | Some("")
        | Some("docker.io")
        | Some("index.docker.io")
        | Some("index.docker.io/v1") => (HUB_KEY.into(), "registry-1.docker.io".into()),
        Some(s) => (s.to_string(), s.to_string()),
    }
}

fn config_path() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(
            std::env::var_os("HOME").context("neither DOCKER_CONFIG nor HOME is set")?,
        )
        .join(".docker"),
    };
    Ok(dir.join("config.json"))
}

fn read_config(path: &PathBuf) -> anyhow::Result<serde_json::Value> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("parse {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Writes the config whole, then renames it in place: 0600, as docker.
fn write_config(path: &PathBuf, v: &serde_json::Value) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().context("config path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("create {}", tmp.display()))?;
        std::io::Write::write_all(&mut f, serde_json::to_string_pretty(v)?.as_bytes())?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))
}

/// `login [-u USER] [-p PASS | --password-stdin] [SERVER]`.
pub async fn login(
    mut c: ImagesClient<Channel>,
    ns: &str,
    server: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let (key, host) = server_key(server.as_deref());
    let username = username
        .filter(|u| !u.is_empty())
        .context("login: give the user with --username (berthctl does not prompt)")?;
    let password = match (password, password_stdin) {
        (Some(_), true) => anyhow::bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => {
            let mut p = String::new();
            std::io::stdin().read_to_string(&mut p)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if std::io::stdin().is_terminal() => {
            anyhow::bail!(
                "login: give the password with --password-stdin (berthctl does not prompt)"
            )
        }
        (None, false) => anyhow::bail!("login: no password: use --password-stdin"),
    };
    if password.is_empty() {
        anyhow::bail!("login: the password is empty");
    }
    c.login(request(
        ns,
        pb::LoginRequest {
            server: host,
            username: username.clone(),
            password: password.clone(),
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let path = config_path()?;
    let mut cfg = read_config(&path)?;
    if !cfg["auths"].is_object() {
        cfg["auths"] = serde_json::json!({});
    }
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    cfg["auths"][&key] = serde_json::json!({ "auth": auth });
    write_config(&path, &cfg)?;
    println!("Login Succeeded");
    Ok(())
}

/// `logout [SERVER]`.
pub fn logout(server: Option<String>) -> anyhow::Result<()> {
    let (key, _) = server_key(server.as_deref());
    let path = config_path()?;
    let mut cfg = read_config(&path)?;
    let removed = cfg["auths"]
        .as_object_mut()
        .map(|a| {
            [
                key.clone(),
                format!("https://{key}"),
                format!("http://{key}"),
            ]
            .iter()
            .filter(|k| a.remove(k.as_str()).is_some())
            .count()
        })
        .unwrap_or(0);
    if removed == 0 {
        println!("Not logged in to {key}");
        return Ok(());
    }
    write_config(&path, &cfg)?;
    println!("Removing login credentials for {key}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_key_as_docker_writes_them() {
        assert_eq!(server_key(None).0, HUB_KEY);
        assert_eq!(server_key(Some("docker.io")).1, "registry-1.docker.io");
        assert_eq!(
            server_key(Some("https://127.0.0.1:5000/")),
            ("127.0.0.1:5000".into(), "127.0.0.1:5000".into())
        );
    }
}
