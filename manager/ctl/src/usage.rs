//! The image lifecycle as docker shows it: `images` (with `<none>:<none>`
//! for dangling images, ids, `--digests`, `--filter`), `rmi`, `image prune`
//! and `system df`.

use std::io::{IsTerminal, Write};

use berth_proto::images::images_client::ImagesClient;
use berth_proto::images::{self as pb};
use tonic::transport::Channel;

use crate::format::{ago, human_size};
use crate::images::{print_table, repo_tag};
use crate::request;

/// What `images` was asked.
pub(crate) struct ListArgs {
    pub format: String,
    pub quiet: bool,
    pub digests: bool,
    pub no_trunc: bool,
    pub filters: Vec<String>,
}

/// An id as docker prints it: 12 hex digits, or whole with `--no-trunc`.
fn show_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        return id.to_string();
    }
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex[..12.min(hex.len())].to_string()
}

/// The repository and tag shown for an image.
fn names(i: &pb::Image) -> (String, String) {
    if i.dangling {
        return ("<none>".into(), "<none>".into());
    }
    let (r, t) = repo_tag(&i.name);
    (r.to_string(), t.to_string())
}

/// A test on an image.
type ImageTest = Box<dyn Fn(&pb::Image) -> bool>;

/// A `--filter` as a test on an image.
fn filter(f: &str) -> anyhow::Result<ImageTest> {
    let (k, v) = f
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))?;
    let v = v.to_string();
    Ok(match k {
        "dangling" => {
            let want = match v.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => anyhow::bail!("invalid filter 'dangling={v}': want true or false"),
            };
            Box::new(move |i: &pb::Image| i.dangling == want)
        }
        "reference" => Box::new(move |i: &pb::Image| {
            let (r, t) = names(i);
            let short = r
                .strip_prefix("docker.io/library/")
                .or_else(|| r.strip_prefix("docker.io/"))
                .unwrap_or(&r)
                .to_string();
            [format!("{r}:{t}"), format!("{short}:{t}"), r.clone(), short]
                .iter()
                .any(|n| glob(v.as_bytes(), n.as_bytes()))
        }),
        other => anyhow::bail!("invalid filter '{other}'"),
    })
}

/// `*` and `?` over a whole name, `/` included (docker's reference filter
/// matches path.Match per name; close enough for one-level patterns).
fn glob(p: &[u8], s: &[u8]) -> bool {
    berth_rules::dockerignore::component(p, s)
}

pub(crate) async fn images(
    c: &mut ImagesClient<Channel>,
    ns: &str,
    a: ListArgs,
) -> anyhow::Result<()> {
    let mut list = c
        .list(request(ns, pb::ListImagesRequest {}))
        .await?
        .into_inner()
        .images;
    let tests = a
        .filters
        .iter()
        .map(|f| filter(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    list.retain(|i| tests.iter().all(|t| t(i)));
    // A dangling record of content a name also holds is no separate image.
    list.sort_by(|x, y| y.created.cmp(&x.created).then(x.name.cmp(&y.name)));
    if a.quiet {
        let mut seen = Vec::new();
        for i in &list {
            let id = show_id(&i.id, a.no_trunc);
            if !seen.contains(&id) {
                println!("{id}");
                seen.push(id);
            }
        }
        return Ok(());
    }
    match a.format.as_str() {
        "json" => {
            let v: Vec<_> = list
                .iter()
                .map(|i| {
                    let t = i.target.clone().unwrap_or_default();
                    serde_json::json!({"name": i.name, "id": i.id, "digest": t.digest, "mediaType": t.media_type,
                        "size": i.size, "created": i.created, "labels": i.labels, "dangling": i.dangling,
                        "containers": i.containers})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "table" => {
            let now = berth_rules::time::now_secs();
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| {
                    let (repo, tag) = names(i);
                    let mut row = vec![repo, tag];
                    if a.digests {
                        let d = i.target.clone().unwrap_or_default().digest;
                        row.push(if i.dangling { "<none>".into() } else { d });
                    }
                    row.push(show_id(&i.id, a.no_trunc));
                    row.push(ago(i.created, now));
                    row.push(human_size(i.size));
                    row
                })
                .collect();
            let mut head = vec!["REPOSITORY", "TAG"];
            if a.digests {
                head.push("DIGEST");
            }
            head.extend(["IMAGE ID", "CREATED", "SIZE"]);
            print_table(&head, &rows);
        }
        other => anyhow::bail!("unknown format {other:?} (table or json)"),
    }
    Ok(())
}

pub(crate) async fn rmi(
    c: &mut ImagesClient<Channel>,
    ns: &str,
    force: bool,
    names: Vec<String>,
) -> anyhow::Result<()> {
    let mut failed: Vec<String> = Vec::new();
    for n in names {
        match c
            .remove(request(
                ns,
                pb::RemoveImageRequest {
                    name: n.clone(),
                    force,
                },
            ))
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                for u in &r.untagged {
                    println!("Untagged: {u}");
                }
                for d in &r.deleted {
                    println!("Deleted: {d}");
                }
            }
            // docker goes on with the other images and fails at the end.
            Err(e) => failed.push(format!("remove {n}: {}", e.message())),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("{}", failed.join("\n")))
    }
}

pub(crate) async fn prune(
    c: &mut ImagesClient<Channel>,
    ns: &str,
    all: bool,
    force: bool,
) -> anyhow::Result<()> {
    if !force && std::io::stdin().is_terminal() {
        let what = if all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        print!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let r = c
        .prune(request(ns, pb::PruneRequest { all }))
        .await?
        .into_inner();
    if !r.removed.is_empty() {
        println!("Deleted Images:");
        for n in &r.removed {
            match n.strip_prefix("<none>@") {
                Some(d) => println!("deleted: {d}"),
                None => println!("untagged: {n}"),
            }
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(r.bytes_freed));
    Ok(())
}

/// `SIZE (PERCENT%)` of the reclaimable part, as docker shows it.
fn reclaim(row: &pb::UsageRow) -> String {
    let pct = (row.reclaimable * 100).checked_div(row.size).unwrap_or(0);
    if row.size == 0 {
        human_size(row.reclaimable)
    } else {
        format!("{} ({pct}%)", human_size(row.reclaimable))
    }
}

pub(crate) async fn df(
    c: &mut ImagesClient<Channel>,
    ns: &str,
    verbose: bool,
) -> anyhow::Result<()> {
    let u = c.disk_usage(request(ns, pb::Empty {})).await?.into_inner();
    let now = berth_rules::time::now_secs();
    if !verbose {
        let rows: Vec<Vec<String>> = [
            ("Images", u.image_usage),
            ("Containers", u.container_usage),
            ("Local Volumes", u.volume_usage),
            ("Build Cache", u.build_cache_usage),
        ]
        .into_iter()
        .map(|(name, r)| {
            let r = r.unwrap_or_default();
            vec![
                name.to_string(),
                r.total.to_string(),
                r.active.to_string(),
                human_size(r.size),
                reclaim(&r),
            ]
        })
        .collect();
        print_table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows);
        return Ok(());
    }
    println!("Images space usage:\n");
    let rows: Vec<Vec<String>> = u
        .image_details
        .iter()
        .map(|i| {
            let (r, t) = if i.name.starts_with("<none>@") {
                ("<none>".to_string(), "<none>".to_string())
            } else {
                let (r, t) = repo_tag(&i.name);
                (r.to_string(), t.to_string())
            };
            vec![
                r,
                t,
                show_id(&i.id, false),
                ago(i.created, now),
                human_size(i.size),
                human_size(i.shared_size),
                human_size(i.size - i.shared_size.min(i.size)),
                i.containers.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ],
        &rows,
    );
    println!("\nContainers space usage:\n");
    let rows: Vec<Vec<String>> = u
        .container_details
        .iter()
        .map(|c| {
            let mut cmd = c.command.clone();
            if cmd.chars().count() > 20 {
                cmd = format!("\"{}…\"", cmd.chars().take(19).collect::<String>());
            } else {
                cmd = format!("\"{cmd}\"");
            }
            vec![
                c.id[..12.min(c.id.len())].to_string(),
                c.image.clone(),
                cmd,
                c.local_volumes.to_string(),
                human_size(c.size),
                ago(c.created_ms / 1000, now),
                c.status.clone(),
                c.id.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "LOCAL VOLUMES",
            "SIZE",
            "CREATED",
            "STATUS",
            "NAMES",
        ],
        &rows,
    );
    println!("\nLocal Volumes space usage:\n");
    let rows: Vec<Vec<String>> = u
        .volume_details
        .iter()
        .map(|v| vec![v.name.clone(), v.links.to_string(), human_size(v.size)])
        .collect();
    print_table(&["VOLUME NAME", "LINKS", "SIZE"], &rows);
    println!(
        "\nBuild cache usage: {}",
        human_size(u.build_cache_usage.unwrap_or_default().size)
    );
    println!(
        "\nPartial downloads (kept for resuming): {} files, {}",
        u.partial_files,
        human_size(u.partial_bytes)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_as_docker_reads_them() {
        let img = |name: &str, dangling: bool| pb::Image {
            name: name.into(),
            dangling,
            ..Default::default()
        };
        let d = filter("dangling=true").unwrap();
        assert!(d(&img("<none>@sha256:00", true)) && !d(&img("docker.io/library/a:1", false)));
        let r = filter("reference=busy*").unwrap();
        assert!(r(&img("docker.io/library/busybox:latest", false)));
        assert!(!r(&img("docker.io/berth/app:v1", false)));
        assert!(filter("nope=1").is_err() && filter("dangling=maybe").is_err());
        assert_eq!(show_id("sha256:0123456789abcdef", false), "0123456789ab");
        let row = pb::UsageRow {
            total: 2,
            active: 1,
            size: 200,
            reclaimable: 50,
        };
        assert_eq!(reclaim(&row), "50B (25%)");
    }
}
