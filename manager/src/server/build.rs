//! The Build call: the options and the context tar arrive on the request
//! stream; the context is spooled under berthd's root, unpacked, its
//! `.dockerignore` applied, and the build's output streams back.

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;

use berth_proto::images::{self as pb};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::namespace;
use crate::build::{self, Builder, Event};
use crate::codes::build_status;

pub type BuildStream = Pin<Box<dyn Stream<Item = Result<pb::BuildProgress, Status>> + Send>>;

/// A directory removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves one Build call.
pub async fn build(
    builder: &Arc<Builder>,
    tmp: &std::path::Path,
    r: Request<Streaming<pb::BuildChunk>>,
) -> Result<Response<BuildStream>, Status> {
    let ns = namespace(&r)?;
    let mut input = r.into_inner();
    let first = input
        .next()
        .await
        .ok_or_else(|| Status::invalid_argument("build: no options sent"))??;
    let o = first.options.ok_or_else(|| {
        Status::invalid_argument("build: the first message must carry the options")
    })?;
    let scratch = Scratch(tmp.join(format!("build-{}", &berth_rules::id::random()[..16])));
    let context = scratch.0.join("context");
    std::fs::create_dir_all(&context)
        .map_err(|e| Status::internal(format!("create {}: {e}", context.display())))?;
    let spool = scratch.0.join("context.tar");
    let mut f = std::fs::File::create(&spool)
        .map_err(|e| Status::internal(format!("spool the context: {e}")))?;
    f.write_all(&first.data)
        .map_err(|e| Status::internal(format!("spool the context: {e}")))?;
    while let Some(chunk) = input.next().await {
        f.write_all(&chunk?.data)
            .map_err(|e| Status::internal(format!("spool the context: {e}")))?;
    }
    drop(f);
    let tags = o
        .tags
        .iter()
        .map(|t| crate::store::images::normalize(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(super::status_of)?;
    let (ctx2, spool2) = (context.clone(), spool.clone());
    let dockerfile_name = if o.dockerfile.is_empty() {
        "Dockerfile".to_string()
    } else {
        o.dockerfile.clone()
    };
    let text = o.dockerfile_text.clone();
    let dockerfile = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&spool2)
            .map_err(|e| build::BuildError::Invalid(format!("build context: {e}")))?;
        build::context::unpack(&ctx2, f)?;
        let _ = std::fs::remove_file(&spool2);
        let text = if text.is_empty() {
            build::context::dockerfile(&ctx2, &dockerfile_name)?
        } else {
            text
        };
        build::context::apply_ignore(&ctx2)?;
        Ok::<_, build::BuildError>(text)
    })
    .await
    .map_err(|e| Status::internal(format!("worker: {e}")))?
    .map_err(build_status)?;
    let req = build::Request {
        dockerfile,
        context,
        tags,
        build_args: o.build_args.into_iter().collect(),
        target: o.target,
        no_cache: o.no_cache,
        pull: o.pull,
        network: if o.network.is_empty() {
            "bridge".into()
        } else {
            o.network
        },
        labels: o.labels.into_iter().collect(),
    };
    let rx = build::start(builder.clone(), ns, req);
    // The scratch directory lives as long as the stream.
    let s = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |ev| {
        let _keep = &scratch;
        match ev {
            Ok(Event::Line(line)) => Ok(pb::BuildProgress {
                line,
                ..Default::default()
            }),
            Ok(Event::Done { id, manifest }) => Ok(pb::BuildProgress {
                line: String::new(),
                id,
                manifest,
            }),
            Err(e) => Err(build_status(e)),
        }
    });
    Ok(Response::new(Box::pin(s)))
}
