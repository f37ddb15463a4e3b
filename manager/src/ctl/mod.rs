//! `berthctl`, berthd's command-line client: image commands here, container
//! commands in `containers`.

mod containers;
mod leases;
mod tty;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use berth_proto::images::images_client::ImagesClient;
use berth_proto::images::{self as pb};
use clap::{Parser, Subcommand};
use tonic::transport::Channel;

/// berthctl's command line.
#[derive(Parser)]
#[command(
    name = "berthctl",
    version,
    about = "Client of the Berth manager daemon"
)]
pub struct Cli {
    /// berthd's socket.
    #[arg(long, global = true, default_value = "/run/berth/berthd.sock")]
    address: PathBuf,
    /// The namespace to work in.
    #[arg(long, short = 'n', global = true, default_value = "default")]
    namespace: String,
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per process: the size of the container variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Pull an image from a registry.
    Pull {
        /// The image (`busybox`, `127.0.0.1:5000/app:v1`, `name@sha256:…`).
        reference: String,
        /// os/arch[/variant] (default: this host's).
        #[arg(long, default_value = "")]
        platform: String,
        /// Do not unpack the layers into snapshots.
        #[arg(long)]
        no_unpack: bool,
    },
    /// List images.
    Images {
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
        /// Names only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove images.
    Rmi {
        /// The images.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Give an image another name.
    Tag {
        /// The image.
        source: String,
        /// The new name.
        target: String,
    },
    /// Import an OCI image layout or `docker save` archive ("-": stdin).
    Import {
        /// The archive.
        file: String,
        /// The name for images the archive names only by tag.
        #[arg(long, default_value = "")]
        base_name: String,
    },
    /// Make a container's changes a new image (with --from: an active
    /// snapshot's changes over that image).
    Commit {
        /// The image the snapshot was prepared from (snapshot form only).
        #[arg(long = "from")]
        base: Option<String>,
        /// The container (or, with --from, the active snapshot).
        snapshot: String,
        /// The new image's name.
        name: String,
        /// A comment for the image's history.
        #[arg(short, long, default_value = "")]
        message: String,
    },
    /// Image housekeeping.
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// The store as a whole.
    System {
        #[command(subcommand)]
        cmd: SystemCmd,
    },
    /// Leases: hold content and snapshots from collection.
    Lease {
        #[command(subcommand)]
        cmd: leases::LeaseCmd,
    },
    #[command(flatten)]
    Container(containers::ContainerCmd),
    /// Export images as an OCI image layout archive ("-": stdout).
    Export {
        /// The archive to write.
        file: String,
        /// The images.
        #[arg(required = true)]
        names: Vec<String>,
        /// os/arch[/variant] (default: this host's).
        #[arg(long, default_value = "")]
        platform: String,
    },
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Remove untagged images (all images with --all), then unused content and layers.
    Prune {
        /// Every image of the namespace.
        #[arg(short, long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum SystemCmd {
    /// Space used by images, content and snapshots.
    Df,
}

fn request<T>(ns: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Ok(v) = ns.parse() {
        r.metadata_mut().insert(berth_proto::NAMESPACE_HEADER, v);
    }
    r
}

/// Human size, as docker prints it (decimal units).
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[u]
    }
}

/// "N units ago", as docker prints creation times.
pub fn ago(secs: u64, now: u64) -> String {
    let d = now.saturating_sub(secs);
    let (n, unit) = match d {
        0..=59 => (d, "second"),
        60..=3599 => (d / 60, "minute"),
        3600..=86399 => (d / 3600, "hour"),
        _ => (d / 86400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Splits a normalized name into repository and tag for the table.
fn repo_tag(name: &str) -> (&str, &str) {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, "<none>"),
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let ch = berth_proto::connect_unix(&cli.address).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to berthd at {}: {e} (is berthd running? start it, or give --address)",
            cli.address.display()
        )
    })?;
    let ns = cli.namespace.as_str();
    match cli.cmd {
        Cmd::Container(cmd) => containers::run(ch, ns, cmd).await,
        Cmd::Lease { cmd } => leases::run(ch, ns, cmd).await.map(|()| 0),
        Cmd::Commit {
            base: None,
            snapshot,
            name,
            message,
        } => containers::commit(ch, ns, &snapshot, &name, &message).await,
        cmd => images(ImagesClient::new(ch), ns, cmd).await.map(|()| 0),
    }
}

async fn images(mut c: ImagesClient<Channel>, ns: &str, cmd: Cmd) -> anyhow::Result<()> {
    let c = &mut c;
    match cmd {
        Cmd::Container(_) | Cmd::Lease { .. } | Cmd::Commit { base: None, .. } => {
            unreachable!("handled by run")
        }
        Cmd::Pull {
            reference,
            platform,
            no_unpack,
        } => pull(c, ns, reference, platform, !no_unpack, true).await,
        Cmd::Images { format, quiet } => {
            let list = c
                .list(request(ns, pb::ListImagesRequest {}))
                .await?
                .into_inner()
                .images;
            if quiet {
                for i in &list {
                    println!("{}", i.name);
                }
                return Ok(());
            }
            match format.as_str() {
                "json" => {
                    let v: Vec<_> = list
                        .iter()
                        .map(|i| {
                            let t = i.target.clone().unwrap_or_default();
                            serde_json::json!({"name": i.name, "digest": t.digest, "mediaType": t.media_type,
                                "size": i.size, "created": i.created, "labels": i.labels})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                "table" => {
                    let now = berth_rules::time::now_secs();
                    let rows: Vec<[String; 5]> = list
                        .iter()
                        .map(|i| {
                            let (repo, tag) = repo_tag(&i.name);
                            let d = i.target.clone().unwrap_or_default().digest;
                            let short = d
                                .split(':')
                                .nth(1)
                                .map_or(d.clone(), |h| h[..12.min(h.len())].to_string());
                            [
                                repo.into(),
                                tag.into(),
                                short,
                                human_size(i.size),
                                ago(i.created, now),
                            ]
                        })
                        .collect();
                    print_table(&["REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED"], &rows);
                }
                other => anyhow::bail!("unknown format {other:?} (table or json)"),
            }
            Ok(())
        }
        Cmd::Rmi { names } => {
            for n in names {
                c.remove(request(ns, pb::RemoveImageRequest { name: n.clone() }))
                    .await
                    .map_err(|e| anyhow::anyhow!("remove {n}: {}", e.message()))?;
                println!("{n}");
            }
            Ok(())
        }
        Cmd::Tag { source, target } => {
            let i = c
                .tag(request(ns, pb::TagRequest { source, target }))
                .await?
                .into_inner();
            println!("{}", i.name);
            Ok(())
        }
        Cmd::Import { file, base_name } => {
            let mut input: Box<dyn Read + Send> = if file == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(
                    std::fs::File::open(&file).map_err(|e| anyhow::anyhow!("open {file}: {e}"))?,
                )
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
            for i in resp?.into_inner().images {
                println!("{}", i.name);
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
            cmd: ImageCmd::Prune { all },
        } => {
            let r = c
                .prune(request(ns, pb::PruneRequest { all }))
                .await?
                .into_inner();
            for n in &r.removed {
                println!("deleted: {n}");
            }
            println!(
                "removed {} blobs and {} snapshots; reclaimed space: {}",
                r.blobs_removed,
                r.snapshots_removed,
                human_size(r.bytes_freed)
            );
            Ok(())
        }
        Cmd::System { cmd: SystemCmd::Df } => {
            let u = c.disk_usage(request(ns, pb::Empty {})).await?.into_inner();
            println!("{:<12}{:>8}{:>12}", "TYPE", "TOTAL", "SIZE");
            println!("{:<12}{:>8}{:>12}", "Images", u.images, "");
            println!(
                "{:<12}{:>8}{:>12}",
                "Content",
                u.blobs,
                human_size(u.blob_bytes)
            );
            println!(
                "{:<12}{:>8}{:>12}",
                "Snapshots",
                u.snapshots,
                human_size(u.snapshot_bytes)
            );
            Ok(())
        }
        Cmd::Export {
            file,
            names,
            platform,
        } => {
            let mut s = c
                .export(request(ns, pb::ExportRequest { names, platform }))
                .await?
                .into_inner();
            let mut out: Box<dyn Write> = if file == "-" {
                Box::new(std::io::stdout())
            } else {
                Box::new(
                    std::fs::File::create(&file)
                        .map_err(|e| anyhow::anyhow!("create {file}: {e}"))?,
                )
            };
            while let Some(chunk) = s.message().await? {
                out.write_all(&chunk.data)?;
            }
            out.flush()?;
            Ok(())
        }
    }
}

fn print_table(head: &[&str], rows: &[[String; 5]]) {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
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
        line(r.iter().map(String::as_str).collect());
    }
}

async fn pull(
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

/// berthctl's entry point.
pub fn main() -> ExitCode {
    // Usage errors end with 125, as docker's do; help and version with 0.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 125 } else { 0 });
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthctl: start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(run(cli));
    // Stdin readers may still block in a worker thread: do not wait for them.
    rt.shutdown_background();
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("berthctl: {e:#}");
            // berthd or the request failed (125), unless the error says otherwise.
            ExitCode::from(
                e.downcast_ref::<containers::Failed>()
                    .map_or(125, |f| f.code),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_times_and_names_print_as_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_376), "4.261MB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(ago(100, 101), "1 second ago");
        assert_eq!(ago(0, 7200), "2 hours ago");
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
