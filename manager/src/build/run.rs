//! RUN: the command runs as a container through berthd's own path (record,
//! snapshot, spec, shim, runtime) over the step's parent image, with the
//! stage's env, user, workdir and shell, the build's arguments in its
//! environment and the build's network; its output streams to the client
//! as it comes. The container goes afterwards; its snapshot stays, to be
//! diffed into the step's layer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{BuildError, Event, Events};
use crate::containers::logs;
use crate::containers::spec;
use crate::containers::tasks::{CreateOptions, Manager};
use crate::store::images::Image;

/// PATH for RUN when the image sets none, as docker's builder gives.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What one RUN does.
pub struct Run<'a> {
    /// The step's parent image (not recorded under any name).
    pub image: Image,
    /// The command, as the container's argv.
    pub argv: Vec<String>,
    /// KEY=VALUE added to the image's Env (the build arguments in scope,
    /// and a default PATH when the image has none).
    pub env: Vec<String>,
    /// The network: none, host or a CNI network's name.
    pub network: &'a str,
    /// The file its output is logged to.
    pub log: &'a Path,
    /// Its Dockerfile line, for the error.
    pub line: usize,
}

/// The /etc files berthd binds into a container with its own network;
/// their mount points are no change of the step's.
pub const BOUND_ETC: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// Runs it; returns the container's snapshot key (its changes) and whether
/// the /etc files were bound (their mount points are to be left out).
pub async fn run(
    manager: &Arc<Manager>,
    ns: &str,
    r: Run<'_>,
    tx: &Events,
) -> Result<(String, bool), BuildError> {
    let id = berth_rules::id::random();
    let short = &id[..12];
    let network =
        spec::Network::parse(r.network).map_err(|e| BuildError::Invalid(e.to_string()))?;
    let env = r.env.clone();
    let c = manager
        .create(
            ns,
            CreateOptions {
                id: id.clone(),
                image: "berth-build".into(),
                image_record: Some(r.image.clone()),
                spec: spec::Options {
                    args: r.argv.clone(),
                    entrypoint: Some(Vec::new()),
                    env,
                    ..Default::default()
                },
                network: network.to_string(),
                log_path: Some(r.log.to_path_buf()),
                ..Default::default()
            },
        )
        .await?;
    let _ = tx
        .send(Ok(Event::Line(format!(" ---> Running in {short}"))))
        .await;
    let bound = network != spec::Network::Host;
    let result = async {
        manager.create_task(ns, &id).await?;
        manager.start(ns, &id, "").await?;
        let mut wait = Box::pin(manager.wait(ns, &id, ""));
        let mut joiner = logs::Joiner::default();
        let mut offset = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let exit = loop {
            tokio::select! {
                e = &mut wait => break e?,
                _ = tick.tick() => {
                    offset = forward(r.log, offset, &mut joiner, tx).await;
                }
            }
        };
        forward(r.log, offset, &mut joiner, tx).await;
        Ok::<_, BuildError>(exit)
    }
    .await;
    // The container goes whatever happened; its snapshot stays for the diff.
    let removed = manager.delete(ns, &id, true, true).await;
    let exit = match result {
        Ok(e) => e,
        Err(e) => {
            let _ = manager.images.snapshots.remove(ns, &c.snapshot);
            return Err(e);
        }
    };
    removed?;
    if exit.status != 0 {
        let _ = manager.images.snapshots.remove(ns, &c.snapshot);
        return Err(BuildError::RunFailed {
            line: r.line,
            command: r.argv.join(" "),
            code: exit.status,
        });
    }
    let _ = tx
        .send(Ok(Event::Line(format!(
            "Removing intermediate container {short}"
        ))))
        .await;
    Ok((c.snapshot, bound))
}

/// Sends the log's new lines from `offset`; returns the new offset.
async fn forward(log: &Path, offset: u64, j: &mut logs::Joiner, tx: &Events) -> u64 {
    let Ok((lines, next)) = logs::read_from(log, offset, j) else {
        return offset;
    };
    for l in lines {
        let text = String::from_utf8_lossy(&l.data);
        let _ = tx
            .send(Ok(Event::Line(text.trim_end_matches('\n').to_string())))
            .await;
    }
    next
}
