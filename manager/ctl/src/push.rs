//! `push`, as docker's: the repository, a line per layer as it ends
//! (`Pushed`, `Layer already exists`, `Mounted from REPO`), then the tag's
//! digest and size. On a terminal a layer's progress is drawn as it goes.

use std::io::{IsTerminal, Write};

use berth_proto::images::images_client::ImagesClient;
use berth_proto::images::{self as pb};
use tonic::transport::Channel;

use crate::format::human_size;
use crate::request;

/// The line docker prints for a layer's state, if it prints one.
fn status_line(p: &pb::PushProgress) -> Option<String> {
    Some(match p.status.as_str() {
        "pushed" => "Pushed".into(),
        "exists" => "Layer already exists".into(),
        "mounted" => format!("Mounted from {}", p.from),
        _ => return None,
    })
}

/// The repository part of `name` (`127.0.0.1:5000/app` of `…/app:v1`).
fn repository(name: &str) -> &str {
    crate::images::repo_tag(name).0
}

pub(crate) async fn push(
    c: &mut ImagesClient<Channel>,
    ns: &str,
    reference: String,
    platform: String,
    quiet: bool,
) -> anyhow::Result<()> {
    let normalized = berth_rules::reference::Reference::parse(&reference)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| reference.clone());
    let mut s = c
        .push(request(
            ns,
            pb::PushRequest {
                reference: reference.clone(),
                platform,
            },
        ))
        .await
        .map_err(|e| anyhow::anyhow!("push {reference}: {}", e.message()))?
        .into_inner();
    let tty = !quiet && std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    if !quiet {
        writeln!(
            out,
            "The push refers to repository [{}]",
            repository(&normalized)
        )?;
    }
    loop {
        let p = match s.message().await {
            Ok(Some(p)) => p,
            Ok(None) => anyhow::bail!("push {reference}: the stream ended without a result"),
            Err(e) => {
                if tty {
                    writeln!(out)?;
                }
                anyhow::bail!("push {reference}: {}", e.message())
            }
        };
        if p.status == "complete" {
            if quiet {
                writeln!(out, "{normalized}")?;
            } else {
                if tty {
                    write!(out, "\r\x1b[K")?;
                }
                writeln!(out, "{}: digest: {} size: {}", p.tag, p.digest, p.total)?;
            }
            return Ok(());
        }
        if quiet || !p.layer {
            continue;
        }
        let short = p
            .digest
            .split(':')
            .nth(1)
            .map_or(p.digest.as_str(), |h| &h[..12.min(h.len())]);
        if let Some(line) = status_line(&p) {
            if tty {
                write!(out, "\r\x1b[K")?;
            }
            writeln!(out, "{short}: {line}")?;
        } else if tty && (p.status == "pushing" || p.status == "resuming") {
            write!(
                out,
                "\r\x1b[K{short}: {} {}/{}",
                if p.status == "pushing" {
                    "Pushing"
                } else {
                    "Resuming"
                },
                human_size(p.offset),
                human_size(p.total)
            )?;
            out.flush()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_states_read_as_docker_prints_them() {
        let p = |status: &str, from: &str| pb::PushProgress {
            status: status.into(),
            from: from.into(),
            ..Default::default()
        };
        assert_eq!(status_line(&p("pushed", "")).unwrap(), "Pushed");
        assert_eq!(
            status_line(&p("exists", "")).unwrap(),
            "Layer already exists"
        );
        assert_eq!(
            status_line(&p("mounted", "library/busybox")).unwrap(),
            "Mounted from library/busybox"
        );
        assert_eq!(status_line(&p("pushing", "")), None);
        assert_eq!(repository("127.0.0.1:5000/app:v1"), "127.0.0.1:5000/app");
    }
}
