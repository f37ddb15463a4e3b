//! `berthctl lease`: leases that hold content and snapshots from collection,
//! as `ctr leases` does for containerd.

use berth_proto::images::leases_client::LeasesClient;
use berth_proto::images::{self as pb};
use clap::Subcommand;
use tonic::transport::Channel;

use crate::request;

/// The lease commands.
#[derive(Subcommand)]
pub enum LeaseCmd {
    /// Make a lease and print its id.
    Create {
        /// The id (default: a generated one).
        #[arg(long, default_value = "")]
        id: String,
        /// A label, KEY=VALUE (repeatable).
        #[arg(long = "label", short = 'l')]
        labels: Vec<String>,
        /// How long it holds: 90s, 10m, 2h, 1d, or seconds; 0: until removed.
        #[arg(long, default_value = "0")]
        expire: String,
    },
    /// List leases.
    Ls {
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
        /// Ids only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove leases; what only they held goes at the next collection.
    Rm {
        /// The leases.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Make a lease hold a blob (`content sha256:…`) or a snapshot (`snapshots KEY`).
    Add {
        /// The lease.
        lease: String,
        /// content or snapshots.
        kind: String,
        /// The digest or snapshot key.
        id: String,
    },
    /// Stop a lease holding a blob or snapshot.
    Del {
        /// The lease.
        lease: String,
        /// content or snapshots.
        kind: String,
        /// The digest or snapshot key.
        id: String,
    },
    /// List what a lease holds.
    Resources {
        /// The lease.
        lease: String,
    },
}

/// Seconds of a duration such as `90s`, `10m`, `2h`, `1d` or `300`.
pub fn parse_duration(s: &str) -> anyhow::Result<u64> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => anyhow::bail!("--expire {s:?}: use a number with s, m, h or d (90s, 10m, 2h, 1d)"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--expire {s:?}: use a number with s, m, h or d"))?;
    n.checked_mul(mult)
        .ok_or_else(|| anyhow::anyhow!("--expire {s:?}: too long"))
}

fn parse_labels(labels: &[String]) -> anyhow::Result<std::collections::HashMap<String, String>> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => anyhow::bail!("--label {l:?}: use KEY=VALUE"),
        })
        .collect()
}

fn resource(lease: String, kind: String, id: String) -> anyhow::Result<pb::LeaseResource> {
    if kind != "content" && kind != "snapshots" {
        anyhow::bail!("resource type {kind:?}: content or snapshots");
    }
    Ok(pb::LeaseResource {
        lease,
        r#type: kind,
        id,
    })
}

/// Runs one lease command against berthd.
pub async fn run(ch: Channel, ns: &str, cmd: LeaseCmd) -> anyhow::Result<()> {
    let mut c = LeasesClient::new(ch);
    match cmd {
        LeaseCmd::Create { id, labels, expire } => {
            let req = pb::CreateLeaseRequest {
                id,
                labels: parse_labels(&labels)?,
                expire_seconds: parse_duration(&expire)?,
            };
            let l = c.create(request(ns, req)).await?.into_inner();
            println!("{}", l.id);
        }
        LeaseCmd::Ls { format, quiet } => {
            let mut list = c.list(request(ns, pb::Empty {})).await?.into_inner().leases;
            list.sort_by(|a, b| a.id.cmp(&b.id));
            if quiet {
                for l in &list {
                    println!("{}", l.id);
                }
                return Ok(());
            }
            match format.as_str() {
                "json" => {
                    let v: Vec<_> = list
                        .iter()
                        .map(|l| {
                            serde_json::json!({"id": l.id, "created": l.created,
                                "expires": l.expires, "labels": l.labels})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                "table" => {
                    let now = berth_rules::time::now_secs();
                    println!("{:<28}{:<20}{:<20}LABELS", "ID", "CREATED", "EXPIRES");
                    for l in &list {
                        let expires = match l.expires {
                            0 => "never".to_string(),
                            e if e <= now => "expired".to_string(),
                            e => format!("in {}s", e - now),
                        };
                        let mut labels: Vec<String> =
                            l.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        labels.sort();
                        println!(
                            "{:<28}{:<20}{:<20}{}",
                            l.id,
                            crate::format::ago(l.created, now),
                            expires,
                            labels.join(",")
                        );
                    }
                }
                other => anyhow::bail!("unknown format {other:?} (table or json)"),
            }
        }
        LeaseCmd::Rm { ids } => {
            for id in ids {
                c.delete(request(ns, pb::LeaseRequest { id: id.clone() }))
                    .await
                    .map_err(|e| anyhow::anyhow!("remove lease {id}: {}", e.message()))?;
                println!("{id}");
            }
        }
        LeaseCmd::Add { lease, kind, id } => {
            c.add_resource(request(ns, resource(lease, kind, id)?))
                .await?;
        }
        LeaseCmd::Del { lease, kind, id } => {
            c.delete_resource(request(ns, resource(lease, kind, id)?))
                .await?;
        }
        LeaseCmd::Resources { lease } => {
            let r = c
                .list_resources(request(ns, pb::LeaseRequest { id: lease }))
                .await?
                .into_inner();
            for x in r.resources {
                println!("{} {}", x.r#type, x.id);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("10m").unwrap(), 600);
        assert_eq!(parse_duration("2h").unwrap(), 7200);
        assert_eq!(parse_duration("1d").unwrap(), 86400);
        for bad in ["", "m", "1w", "-1s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels_and_resource_types() {
        let l = parse_labels(&["a=1".into(), "b=".into()]).unwrap();
        assert_eq!(l["a"], "1");
        assert_eq!(l["b"], "");
        assert!(parse_labels(&["nokey".into()]).is_err());
        assert!(parse_labels(&["=v".into()]).is_err());
        assert!(resource("l".into(), "blobs".into(), "x".into()).is_err());
        assert!(resource("l".into(), "content".into(), "x".into()).is_ok());
    }
}
