//! The image commands: `pull`, `images`, `rmi`, `tag`, `import`, `export`,
//! `image prune`, `system df`, `commit` of a snapshot.

use std::io::{IsTerminal, Read, Write};

use berth_proto::images::images_client::ImagesClient;
use berth_proto::images::{self as pb};
use tonic::transport::Channel;

use crate::format::{ago, human_size};
use crate::{request, Cmd, ImageCmd, SystemCmd};

/// Splits a normalized name into repository and tag for the table.
pub(crate) fn repo_tag(name: &str) -> (&str, &str) {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, "<none>"),
    }
}

pub(crate) async fn run(mut c: ImagesClient<Channel>, ns: &str, cmd: Cmd) -> anyhow::Result<()> {
    let c = &mut c;
    match cmd {
        Cmd::Container(_)
        | Cmd::Lease { .. }
        | Cmd::Login { .. }
        | Cmd::Logout { .. }
        | Cmd::Push { .. }
        | Cmd::Build(_)
        | Cmd::Commit { base: None, .. } => {
            unreachable!("handled by run")
        }
        Cmd::Pull {
            reference,
            platform,
            no_unpack,
        } => pull(c, ns, reference, platform, !no_unpack, true).await,
        Cmd::Images {
            format,
            quiet,
            all: _,
            digests,
            no_trunc,
            filters,
        } => {
            crate::usage::images(
                c,
                ns,
                crate::usage::ListArgs {
                    format,
                    quiet,
                    digests,
                    no_trunc,
                    filters,
                },
            )
            .await
        }
        Cmd::Rmi { force, names } => crate::usage::rmi(c, ns, force, names).await,
        Cmd::Tag { source, target } => {
            let i = c
                .tag(request(ns, pb::TagRequest { source, target }))
                .await?
                .into_inner();
            println!("{}", i.name);
            Ok(())
        }
        Cmd::Import { file, base_name } => {
            for name in import(c, ns, file, base_name).await? {
                println!("{name}");
            }
            Ok(())
        }
        Cmd::Load { input, quiet } => {
            let names = import(c, ns, input.unwrap_or_else(|| "-".into()), String::new()).await?;
            if !quiet {
                for name in names {
                    println!("Loaded image: {name}");
                }
            }
            Ok(())
        }
        Cmd::Commit {
            base: Some(base),
            snapshot,
            name,
            message,
        } => {
            let i = c
                .commit(request(
                    ns,
                    pb::CommitImageRequest {
                        snapshot,
                        base,
                        name,
                        comment: message,
                    },
                ))
                .await?
                .into_inner();
            println!("{}", i.name);
            Ok(())
        }
        Cmd::Image {
            cmd: ImageCmd::Prune { all, force },
        } => crate::usage::prune(c, ns, all, force).await,
        Cmd::System {
            cmd: SystemCmd::Df { verbose },
        } => crate::usage::df(c, ns, verbose).await,
        Cmd::Export {
            file,
            names,
            platform,
        } => export(c, ns, &file, names, platform).await,
        Cmd::History {
            no_trunc,
            quiet,
            image,
        } => {
            let h = c
                .history(request(
                    ns,
                    pb::GetImageRequest {
                        name: image.clone(),
                    },
                ))
                .await
                .map_err(|e| anyhow::anyhow!("history of {image}: {}", e.message()))?
                .into_inner();
            let now = berth_rules::time::now_secs();
            let rows = history_rows(&h, no_trunc, now);
            if quiet {
                for r in rows {
                    println!("{}", r[0]);
                }
            } else {
                print_table(
                    &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
                    &rows,
                );
            }
            Ok(())
        }
        Cmd::Search {
            limit,
            no_trunc,
            filters,
            list_tags,
            term,
        } => {
            let keep = search_filter(&filters)?;
            let found = c
                .search(request(
                    ns,
                    pb::SearchRequest {
                        term,
                        limit,
                        list_tags,
                    },
                ))
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message()))?
                .into_inner()
                .results;
            if list_tags {
                let rows: Vec<[String; 2]> = found
                    .iter()
                    .filter(|f| keep(f))
                    .flat_map(|f| f.tags.iter().map(|t| [f.name.clone(), t.clone()]))
                    .collect();
                print_table(&["NAME", "TAG"], &rows);
                return Ok(());
            }
            let rows: Vec<[String; 4]> = found
                .into_iter()
                .filter(|f| keep(f))
                .map(|f| {
                    let d = if no_trunc || f.description.chars().count() <= 45 {
                        f.description
                    } else {
                        format!("{}…", f.description.chars().take(44).collect::<String>())
                    };
                    [
                        f.name,
                        d,
                        f.stars.to_string(),
                        if f.official {
                            "[OK]".into()
                        } else {
                            String::new()
                        },
                    ]
                })
                .collect();
            print_table(&["NAME", "DESCRIPTION", "STARS", "OFFICIAL"], &rows);
            Ok(())
        }
        Cmd::Save { output, names } => {
            let file = match output {
                Some(f) => f,
                // docker's words: an archive is no terminal's business.
                None if std::io::IsTerminal::is_terminal(&std::io::stdout()) => anyhow::bail!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                ),
                None => "-".into(),
            };
            export(c, ns, &file, names, String::new()).await
        }
    }
}

/// `docker history`'s rows: the image id on the newest step and
/// `<missing>` on the others, commands cut at 45 characters unless
/// `no_trunc`.
fn history_rows(h: &pb::HistoryResponse, no_trunc: bool, now: u64) -> Vec<[String; 5]> {
    let id = if no_trunc {
        h.id.clone()
    } else {
        let hex = h.id.split(':').nth(1).unwrap_or(&h.id);
        hex[..12.min(hex.len())].to_string()
    };
    h.entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let by = e.created_by.replace(['\n', '\t'], " ");
            let by = if no_trunc || by.chars().count() <= 45 {
                by
            } else {
                format!("{}…", by.chars().take(44).collect::<String>())
            };
            [
                if i == 0 {
                    id.clone()
                } else {
                    "<missing>".into()
                },
                if e.created > 0 {
                    ago(u64::try_from(e.created).unwrap_or(0), now)
                } else {
                    "N/A".into()
                },
                by,
                human_size(e.size),
                e.comment.clone(),
            ]
        })
        .collect()
}

/// docker search's `--filter`s as one predicate: `stars=N` (at least N),
/// `is-official=BOOL`; anything else is refused, naming it.
fn search_filter(filters: &[String]) -> anyhow::Result<impl Fn(&pb::SearchResult) -> bool> {
    let (mut stars, mut official) = (0u32, None);
    for f in filters {
        match f.split_once('=') {
            Some(("stars", n)) => {
                stars = n
                    .parse()
                    .map_err(|_| anyhow::anyhow!("invalid filter 'stars={n}': not a number"))?
            }
            Some(("is-official", b)) => {
                official = Some(
                    b.parse::<bool>()
                        .map_err(|_| anyhow::anyhow!("invalid filter 'is-official={b}'"))?,
                )
            }
            _ => anyhow::bail!("invalid filter '{f}' (stars=N or is-official=true|false)"),
        }
    }
    Ok(move |r: &pb::SearchResult| r.stars >= stars && official.is_none_or(|o| r.official == o))
}

/// Streams `file` ("-": stdin) to berthd's import; the images it made.
async fn import(
    c: &mut ImagesClient<Channel>,
    ns: &str,
    file: String,
    base_name: String,
) -> anyhow::Result<Vec<String>> {
    let mut input: Box<dyn Read + Send> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&file).map_err(|e| anyhow::anyhow!("open {file}: {e}"))?)
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut first = true;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            let chunk = pb::ImportChunk {
                data: buf[..n].to_vec(),
                base_name: if first {
                    base_name.clone()
                } else {
                    String::new()
                },
            };
            first = false;
            if tx.blocking_send(chunk).is_err() {
                return Ok(());
            }
        }
    });
    let resp = c
        .import(request(ns, tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await;
    reader.await??;
    Ok(resp?
        .into_inner()
        .images
        .into_iter()
        .map(|i| i.name)
        .collect())
}

/// Writes the archive of `names` from berthd to `file` ("-": stdout).
async fn export(
    c: &mut ImagesClient<Channel>,
    ns: &str,
    file: &str,
    names: Vec<String>,
    platform: String,
) -> anyhow::Result<()> {
    let mut s = c
        .export(request(ns, pb::ExportRequest { names, platform }))
        .await?
        .into_inner();
    let mut out: Box<dyn Write> = if file == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(std::fs::File::create(file).map_err(|e| anyhow::anyhow!("create {file}: {e}"))?)
    };
    while let Some(chunk) = s.message().await? {
        out.write_all(&chunk.data)?;
    }
    out.flush()?;
    Ok(())
}

/// Prints rows under `head`, columns padded as docker's tables.
pub(crate) fn print_table<R: AsRef<[String]>>(head: &[&str], rows: &[R]) {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.as_ref().iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        println!("{}", s.join("   ").trim_end());
    };
    line(head.to_vec());
    for r in rows {
        line(r.as_ref().iter().map(String::as_str).collect());
    }
}

pub(crate) async fn pull(
    c: &mut ImagesClient<Channel>,
    ns: &str,
    reference: String,
    platform: String,
    unpack: bool,
    print_name: bool,
) -> anyhow::Result<()> {
    let mut s = c
        .pull(request(
            ns,
            pb::PullRequest {
                reference: reference.clone(),
                platform,
                unpack,
            },
        ))
        .await
        .map_err(|e| anyhow::anyhow!("pull {reference}: {}", e.message()))?
        .into_inner();
    let tty = std::io::stderr().is_terminal();
    let mut err = std::io::stderr();
    loop {
        let p = match s.message().await {
            Ok(Some(p)) => p,
            Ok(None) => anyhow::bail!("pull {reference}: the stream ended without a result"),
            Err(e) => anyhow::bail!("pull {reference}: {}", e.message()),
        };
        if p.status == "complete" {
            if tty {
                writeln!(err)?;
            }
            let img = p.image.unwrap_or_default();
            if print_name {
                println!("{}", img.name);
            }
            return Ok(());
        }
        let short = p
            .digest
            .split(':')
            .nth(1)
            .map_or(p.digest.as_str(), |h| &h[..12.min(h.len())]);
        let bar = |done: u64, total: u64| {
            const WIDTH: usize = 30;
            // At most WIDTH: done is capped at total.
            let fill = (done.min(total) * WIDTH as u64)
                .checked_div(total)
                .map_or(WIDTH, |f| usize::try_from(f).unwrap_or(WIDTH));
            format!("[{}{}]", "=".repeat(fill), " ".repeat(WIDTH - fill))
        };
        match p.status.as_str() {
            "downloading" if tty => {
                write!(
                    err,
                    "\r{short}: {} {}/{}",
                    bar(p.offset, p.total),
                    human_size(p.offset),
                    human_size(p.total)
                )?;
            }
            "downloading" => {}
            status => {
                if tty {
                    write!(err, "\r")?;
                }
                writeln!(
                    err,
                    "{short}: {status} {}",
                    if p.total > 0 {
                        human_size(p.total)
                    } else {
                        String::new()
                    }
                )?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_filters_as_docker_reads_them() {
        let r = |stars, official| pb::SearchResult {
            name: "x".into(),
            description: String::new(),
            stars,
            official,
            tags: Vec::new(),
        };
        let keep = search_filter(&["stars=3".into(), "is-official=true".into()]).unwrap();
        assert!(keep(&r(5, true)));
        assert!(!keep(&r(2, true)) && !keep(&r(5, false)));
        assert!(search_filter(&[]).unwrap()(&r(0, false)));
        assert!(search_filter(&["is-automated=true".into()]).is_err());
        assert!(search_filter(&["stars=many".into()]).is_err());
    }

    #[test]
    fn history_rows_as_docker_shows_them() {
        let h = pb::HistoryResponse {
            id: "sha256:0123456789abcdef0123".into(),
            entries: vec![
                pb::HistoryEntry {
                    created: 1000,
                    created_by: "/bin/sh -c #(nop)  CMD [\"sh\"] with a long tail of words".into(),
                    comment: String::new(),
                    size: 0,
                    empty_layer: true,
                },
                pb::HistoryEntry {
                    created: 0,
                    created_by: "ADD file:abc in /".into(),
                    comment: "imported".into(),
                    size: 1_240_000,
                    empty_layer: false,
                },
            ],
        };
        let r = history_rows(&h, false, 1000 + 2 * 86400);
        assert_eq!(r[0][0], "0123456789ab");
        assert_eq!(r[1][0], "<missing>");
        assert_eq!(r[0][1], "2 days ago");
        assert_eq!(r[1][1], "N/A");
        assert_eq!(r[0][2].chars().count(), 45);
        assert!(r[0][2].ends_with('…'));
        assert_eq!((r[0][3].as_str(), r[1][3].as_str()), ("0B", "1.24MB"));
        assert_eq!(r[1][4], "imported");
        let full = history_rows(&h, true, 0);
        assert_eq!(full[0][0], "sha256:0123456789abcdef0123");
        assert!(full[0][2].ends_with("words"));
    }

    #[test]
    fn names_split_as_docker_shows_them() {
        assert_eq!(
            repo_tag("127.0.0.1:5000/bb:v1"),
            ("127.0.0.1:5000/bb", "v1")
        );
        assert_eq!(
            repo_tag("docker.io/library/busybox:latest"),
            ("docker.io/library/busybox", "latest")
        );
    }
}
