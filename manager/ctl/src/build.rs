//! `build`, as docker's classic builder shows it: the context (a directory,
//! its `.dockerignore` applied here so ignored files are never sent, or a
//! tar on stdin with `-`) streams to berthd as a tar behind the options;
//! berthd's output is printed line by line.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use berth_proto::images::images_client::ImagesClient;
use berth_proto::images::{self as pb};
use berth_rules::dockerignore::Ignore;
use tonic::transport::Channel;

use crate::context_tar::TarWriter;
use crate::request;

/// What `berthctl build` was asked, as docker's flags.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Name and optionally a tag (NAME[:TAG]); repeatable.
    #[arg(short, long = "tag")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile; "-": stdin).
    #[arg(short, long)]
    pub file: Option<String>,
    /// A build argument, KEY=VALUE (KEY alone: from the environment).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// The stage to build.
    #[arg(long, default_value = "")]
    pub target: String,
    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Always pull the FROM images.
    #[arg(long)]
    pub pull: bool,
    /// RUN's network: bridge (default), none, host or a network's name.
    #[arg(long, default_value = "")]
    pub network: String,
    /// A label for the image, KEY=VALUE; repeatable.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// The context: a directory, or "-" for a tar on stdin.
    pub context: String,
}

/// `K=V` pairs; a `K` alone takes its value from the environment, as
/// docker's `--build-arg` (and is left out when unset).
fn pairs(list: &[String], from_env: bool) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for a in list {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            None if from_env && !a.is_empty() => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
            None if !from_env && !a.is_empty() => {
                out.insert(a.clone(), String::new());
            }
            _ => anyhow::bail!("invalid argument {a:?}: want KEY=VALUE"),
        }
    }
    Ok(out)
}

/// Writes the context directory as a tar: what `.dockerignore` excludes
/// is left out, but the Dockerfile and `.dockerignore` always go (berthd
/// reads them; its own pass keeps them from COPY as docker does).
fn write_context(dir: &Path, keep: &[String], w: impl Write) -> std::io::Result<()> {
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(t) => Ignore::parse(&t),
        Err(_) => Ignore::default(),
    };
    let mut b = TarWriter::new(w);
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, rel)) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&d)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let crel = if rel.is_empty() {
                n.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", n.to_string_lossy())
            };
            let path = d.join(&n);
            let m = std::fs::symlink_metadata(&path)?;
            let excluded = ignore.excluded(&crel) && !keep.contains(&crel);
            if m.is_dir() {
                if excluded && !ignore.has_exceptions() {
                    continue;
                }
                b.append(&path, &crel, &m)?;
                stack.push((path, crel));
            } else if !excluded {
                b.append(&path, &crel, &m)?;
            }
        }
    }
    b.finish()?.flush()
}

pub(crate) async fn build(c: &mut ImagesClient<Channel>, ns: &str, a: Args) -> anyhow::Result<()> {
    let from_stdin = a.context == "-";
    let dir = PathBuf::from(&a.context);
    if !from_stdin && !dir.is_dir() {
        anyhow::bail!("unable to prepare context: path {:?} not found", a.context);
    }
    // The Dockerfile: a path in the context goes by name; any other is sent.
    let (dockerfile, dockerfile_text) = match a.file.as_deref() {
        None => (String::new(), String::new()),
        Some("-") => {
            let mut t = String::new();
            std::io::stdin().read_to_string(&mut t)?;
            (String::new(), t)
        }
        Some(f) => {
            let p = std::fs::canonicalize(f).map_err(|e| anyhow::anyhow!("Dockerfile {f}: {e}"))?;
            let inside = (!from_stdin)
                .then(|| std::fs::canonicalize(&dir).ok())
                .flatten()
                .and_then(|d| p.strip_prefix(d).ok().map(|r| r.display().to_string()));
            match inside {
                Some(rel) => (rel, String::new()),
                None => (String::new(), std::fs::read_to_string(&p)?),
            }
        }
    };
    let options = pb::BuildOptions {
        tags: a.tags.clone(),
        dockerfile: dockerfile.clone(),
        dockerfile_text,
        build_args: pairs(&a.build_args, true)?,
        target: a.target.clone(),
        no_cache: a.no_cache,
        pull: a.pull,
        network: a.network.clone(),
        labels: pairs(&a.labels, false)?,
    };
    // The tar is made on a thread and sent as it is made.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::BuildChunk>(16);
    let _ = tx
        .send(pb::BuildChunk {
            options: Some(options),
            data: Vec::new(),
        })
        .await;
    let keep = vec![
        if dockerfile.is_empty() {
            "Dockerfile".to_string()
        } else {
            dockerfile
        },
        ".dockerignore".to_string(),
    ];
    let producer = std::thread::spawn(move || -> std::io::Result<()> {
        let w = ChunkWriter {
            tx,
            buf: Vec::new(),
        };
        if from_stdin {
            let mut w = w;
            std::io::copy(&mut std::io::stdin().lock(), &mut w)?;
            w.flush()
        } else {
            write_context(&dir, &keep, w)
        }
    });
    let mut s = c
        .build(request(ns, tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .map_err(|e| anyhow::anyhow!("build: {}", e.message()))?
        .into_inner();
    let mut out = std::io::stdout().lock();
    let result = loop {
        match s.message().await {
            Ok(Some(p)) if !p.id.is_empty() => {
                if a.quiet {
                    writeln!(out, "{}", p.id)?;
                }
                break Ok(());
            }
            Ok(Some(p)) => {
                if !a.quiet {
                    writeln!(out, "{}", p.line)?;
                }
            }
            Ok(None) => break Err(anyhow::anyhow!("build: the stream ended without a result")),
            Err(e) => break Err(anyhow::anyhow!("{}", e.message())),
        }
    };
    if let Ok(Err(e)) = producer.join() {
        if result.is_ok() {
            anyhow::bail!("build: send the context: {e}");
        }
    }
    result
}

/// Sends what is written as chunks of the context.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<pb::BuildChunk>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 << 10 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        self.tx
            .blocking_send(pb::BuildChunk {
                options: None,
                data,
            })
            .map_err(|_| std::io::Error::other("berthd stopped reading the context"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_read_as_docker_reads_them() {
        std::env::set_var("BERTH_TEST_ARG", "from-env");
        let p = pairs(
            &[
                "A=1".into(),
                "BERTH_TEST_ARG".into(),
                "UNSET_BERTH_ARG".into(),
            ],
            true,
        )
        .unwrap();
        assert_eq!(p.get("A").map(String::as_str), Some("1"));
        assert_eq!(
            p.get("BERTH_TEST_ARG").map(String::as_str),
            Some("from-env")
        );
        assert!(!p.contains_key("UNSET_BERTH_ARG"));
        assert!(pairs(&["=x".into()], true).is_err());
    }

    #[test]
    fn the_context_leaves_ignored_files_out_but_keeps_the_dockerfile() {
        let d = std::env::temp_dir().join(format!("berthctl-ctx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(d.join("a"), "a").unwrap();
        std::fs::write(d.join("tmp/x"), "x").unwrap();
        std::fs::write(d.join(".dockerignore"), "tmp\nDockerfile\n.dockerignore\n").unwrap();
        let mut tar = Vec::new();
        write_context(&d, &["Dockerfile".into(), ".dockerignore".into()], &mut tar).unwrap();
        let names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, [".dockerignore", "Dockerfile", "a"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
