//! The Images service.

use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use berth_proto::images::images_server::Images as ImagesApi;
use berth_proto::images::{self as pb};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::{blocking, namespace};
use crate::store::images::{Image, Images};
use crate::store::oci::Platform;

/// The service and what it works on.
pub struct Service {
    pub(super) store: Arc<Images>,
    /// Where uploads and exports are spooled.
    pub(super) tmp: PathBuf,
    /// Publishes image events.
    pub(super) manager: Arc<crate::containers::tasks::Manager>,
    /// Registries pulled from over plain HTTP besides loopback ones.
    pub(super) registries: Arc<crate::store::mirrors::RegistrySettings>,
    /// Builds images from Dockerfiles.
    pub(super) builder: Arc<crate::build::Builder>,
}

pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::Chunk, Status>> + Send>>;
type ProgressStream = Pin<Box<dyn Stream<Item = Result<pb::PullProgress, Status>> + Send>>;
type PushStream = Pin<Box<dyn Stream<Item = Result<pb::PushProgress, Status>> + Send>>;

/// The API form of an image, with its size for `platform` where known.
pub fn to_pb(store: &Images, i: &Image, platform: &Platform) -> pb::Image {
    pb::Image {
        name: i.name.clone(),
        target: Some(pb::Descriptor {
            media_type: i.target.media_type.clone(),
            digest: i.target.digest.to_string(),
            size: i.target.size,
        }),
        created: i.created,
        labels: i.labels.clone().into_iter().collect(),
        size: store.size(i, platform).unwrap_or(0),
        id: store.image_id(i).to_string(),
        dangling: crate::store::lifecycle::is_dangling(&i.name),
        containers: 0,
    }
}

/// `os/arch[/variant]`, or this host's platform for "".
pub fn platform(s: &str) -> Result<Platform, Status> {
    if s.is_empty() {
        return Ok(Platform::host());
    }
    Platform::parse(s).ok_or_else(|| {
        Status::invalid_argument(format!("invalid platform {s:?}: want os/arch[/variant]"))
    })
}

/// A spool file removed when dropped.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn spool(tmp: &std::path::Path, what: &str) -> Spool {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Spool(tmp.join(format!("{what}-{}-{n}", std::process::id())))
}

#[tonic::async_trait]
impl ImagesApi for Service {
    type PullStream = ProgressStream;
    type PushStream = PushStream;
    type BuildStream = super::build::BuildStream;

    async fn build(
        &self,
        r: Request<Streaming<pb::BuildChunk>>,
    ) -> Result<Response<Self::BuildStream>, Status> {
        super::build::build(&self.builder, &self.tmp, r).await
    }

    async fn push(
        &self,
        r: Request<pb::PushRequest>,
    ) -> Result<Response<Self::PushStream>, Status> {
        use crate::store::push::PushEvent;
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let req = crate::store::push::PushRequest {
            reference: r.reference,
            platform: platform(&r.platform)?,
        };
        let (store, registries) = (self.store.clone(), self.registries.clone());
        // Planning reads the store: off the async threads.
        let rx = blocking(move || crate::store::push::start(store, ns, req, registries)).await?;
        let s = tokio_stream::wrappers::ReceiverStream::new(rx).map(|ev| match ev {
            Ok(PushEvent::Progress {
                digest,
                status,
                offset,
                total,
                layer,
                from,
            }) => Ok(pb::PushProgress {
                digest: digest.to_string(),
                offset,
                total,
                status,
                layer,
                from,
                tag: String::new(),
            }),
            Ok(PushEvent::Done { tag, digest, size }) => Ok(pb::PushProgress {
                digest: digest.to_string(),
                total: size,
                status: "complete".into(),
                tag,
                ..Default::default()
            }),
            Err(e) => Err(super::status_of(e)),
        });
        Ok(Response::new(Box::pin(s)))
    }

    async fn pull(
        &self,
        r: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let platform = platform(&r.platform)?;
        let rx = crate::store::pull::start(
            self.store.clone(),
            ns.clone(),
            crate::store::pull::PullRequest {
                reference: r.reference,
                platform: platform.clone(),
                unpack: r.unpack,
                auth: None,
            },
            self.registries.clone(),
        )
        .map_err(super::status_of)?;
        let manager = self.manager.clone();
        let store = self.store.clone();
        let s = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |ev| match ev {
            Ok(crate::store::pull::PullEvent::Progress {
                digest,
                status,
                offset,
                total,
            }) => Ok(pb::PullProgress {
                digest: digest.to_string(),
                offset,
                total,
                status,
                image: None,
            }),
            Ok(crate::store::pull::PullEvent::Done(img)) => {
                manager.publish(&ns, "/images/create", &img.name, "", 0, 0);
                Ok(pb::PullProgress {
                    status: "complete".into(),
                    image: Some(crate::server::image_to_pb(&store, &img, &platform)),
                    ..Default::default()
                })
            }
            Err(e) => Err(super::status_of(e)),
        });
        Ok(Response::new(Box::pin(s)))
    }

    async fn import(
        &self,
        r: Request<Streaming<pb::ImportChunk>>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        let ns = namespace(&r)?;
        let mut input = r.into_inner();
        let file = spool(&self.tmp, "import");
        let mut f = std::fs::File::create(&file.0)
            .map_err(|e| Status::internal(format!("spool import: {e}")))?;
        let mut base = None;
        while let Some(chunk) = input.next().await {
            let chunk = chunk?;
            if base.is_none() && !chunk.base_name.is_empty() {
                base = Some(chunk.base_name);
            }
            f.write_all(&chunk.data)
                .map_err(|e| Status::internal(format!("spool import: {e}")))?;
        }
        drop(f);
        let store = self.store.clone();
        let ns2 = ns.clone();
        let images: Vec<pb::Image> = blocking(move || {
            let ns = ns2;
            let f =
                std::fs::File::open(&file.0).map_err(crate::store::images::ImageError::Archive)?;
            let imgs = store.import(&ns, f, base.as_deref())?;
            Ok(imgs
                .iter()
                .map(|i| to_pb(&store, i, &Platform::host()))
                .collect())
        })
        .await?;
        for i in &images {
            self.manager
                .publish(&ns, "/images/create", &i.name, "", 0, 0);
        }
        Ok(Response::new(pb::ImportResponse { images }))
    }

    type ExportStream = ChunkStream;

    async fn export(
        &self,
        r: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        if r.names.is_empty() {
            return Err(Status::invalid_argument(
                "export needs at least one image name",
            ));
        }
        let platform = platform(&r.platform)?;
        let file = spool(&self.tmp, "export");
        let store = self.store.clone();
        let path = file.0.clone();
        blocking(move || {
            let f =
                std::fs::File::create(&path).map_err(crate::store::images::ImageError::Archive)?;
            store.export(&ns, &r.names, &platform, std::io::BufWriter::new(f))
        })
        .await?;
        Ok(Response::new(file_stream(file)))
    }

    async fn list(
        &self,
        r: Request<pb::ListImagesRequest>,
    ) -> Result<Response<pb::ListImagesResponse>, Status> {
        let ns = namespace(&r)?;
        let store = self.store.clone();
        let containers = self.manager.list(&ns).unwrap_or_default();
        let images = blocking(move || {
            let host = Platform::host();
            let uses = super::usage::container_images(&store, &ns, &containers);
            Ok(store
                .list(&ns)?
                .iter()
                .map(|i| {
                    let mut p = to_pb(&store, i, &host);
                    p.containers = uses.values().filter(|d| **d == i.target.digest).count() as u64;
                    p
                })
                .collect())
        })
        .await?;
        Ok(Response::new(pb::ListImagesResponse { images }))
    }

    async fn get(&self, r: Request<pb::GetImageRequest>) -> Result<Response<pb::Image>, Status> {
        let ns = namespace(&r)?;
        let name = r.into_inner().name;
        let store = self.store.clone();
        let img =
            blocking(move || Ok(to_pb(&store, &store.get(&ns, &name)?, &Platform::host()))).await?;
        Ok(Response::new(img))
    }

    async fn remove(
        &self,
        r: Request<pb::RemoveImageRequest>,
    ) -> Result<Response<pb::RemoveImageResponse>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let store = self.store.clone();
        let containers = self.manager.list(&ns).unwrap_or_default();
        let ns2 = ns.clone();
        // The image's content and layers go unless another image uses them.
        let removed = tokio::task::spawn_blocking(move || {
            let uses = super::usage::container_images(&store, &ns2, &containers);
            let user = |i: &Image| {
                uses.iter()
                    .find(|(_, d)| **d == i.target.digest)
                    .map(|(c, _)| c.clone())
            };
            let removed =
                store
                    .remove_image(&ns2, &r.name, r.force, user)
                    .map_err(|e| match e {
                        crate::store::lifecycle::RemoveError::Image(e) => super::status_of(e),
                        e @ crate::store::lifecycle::RemoveError::Conflict(_) => {
                            Status::failed_precondition(e.to_string())
                        }
                    })?;
            store.gc().map_err(super::status_of)?;
            Ok::<_, Status>(removed)
        })
        .await
        .map_err(|e| Status::internal(format!("worker: {e}")))??;
        for n in &removed.untagged {
            self.manager.publish(&ns, "/images/delete", n, "", 0, 0);
        }
        Ok(Response::new(pb::RemoveImageResponse {
            untagged: removed.untagged,
            deleted: removed.deleted,
        }))
    }

    async fn tag(&self, r: Request<pb::TagRequest>) -> Result<Response<pb::Image>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let store = self.store.clone();
        let ns2 = ns.clone();
        let img = blocking(move || {
            Ok(to_pb(
                &store,
                &store.tag(&ns2, &r.source, &r.target)?,
                &Platform::host(),
            ))
        })
        .await?;
        self.manager
            .publish(&ns, "/images/create", &img.name, "", 0, 0);
        Ok(Response::new(img))
    }

    async fn prune(
        &self,
        r: Request<pb::PruneRequest>,
    ) -> Result<Response<pb::PruneResponse>, Status> {
        let ns = namespace(&r)?;
        let all = r.into_inner().all;
        let store = self.store.clone();
        let containers = self.manager.list(&ns).unwrap_or_default();
        let (removed, c) = blocking(move || {
            let in_use = super::usage::in_use(&store, &ns, &containers);
            store.prune(&ns, all, &in_use)
        })
        .await?;
        Ok(Response::new(pb::PruneResponse {
            removed,
            blobs_removed: c.blobs as u64,
            snapshots_removed: c.snapshots as u64,
            bytes_freed: c.bytes,
        }))
    }

    async fn disk_usage(
        &self,
        r: Request<pb::Empty>,
    ) -> Result<Response<pb::DiskUsageResponse>, Status> {
        let ns = namespace(&r)?;
        let u = super::usage::disk_usage(&self.manager, &self.store, &ns)
            .await
            .map_err(super::status_of)?;
        Ok(Response::new(u))
    }

    async fn commit(
        &self,
        r: Request<pb::CommitImageRequest>,
    ) -> Result<Response<pb::Image>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let store = self.store.clone();
        let img = blocking(move || {
            let base = store.get(&ns, &r.base)?;
            let i = store.commit(&ns, &r.snapshot, &base, &r.name, &r.comment, &[])?;
            Ok(to_pb(&store, &i, &Platform::host()))
        })
        .await?;
        Ok(Response::new(img))
    }

    async fn login(&self, r: Request<pb::LoginRequest>) -> Result<Response<pb::Empty>, Status> {
        let r = r.into_inner();
        if r.server.is_empty() || r.username.is_empty() {
            return Err(Status::invalid_argument(
                "login needs a registry and a username",
            ));
        }
        let plain = crate::store::pull::insecure(&r.server, &self.registries.insecure);
        crate::store::login::verify(&r.server, &r.username, &r.password, plain)
            .await
            .map_err(|e| match e {
                crate::store::login::LoginError::Unauthorized { .. } => {
                    Status::unauthenticated(e.to_string())
                }
                crate::store::login::LoginError::Unreachable { .. } => {
                    Status::unavailable(e.to_string())
                }
            })?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn search(
        &self,
        r: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let r = r.into_inner();
        let (registry, term) = crate::store::search::split_term(&r.term);
        if term.is_empty() {
            return Err(Status::invalid_argument("search needs a term"));
        }
        let limit = if r.limit == 0 { 25 } else { r.limit.min(100) } as usize;
        let plain = registry
            .is_some_and(|reg| crate::store::pull::insecure(reg, &self.registries.insecure));
        let auth = match crate::store::pull::credentials(registry.unwrap_or("docker.io")) {
            oci_client::secrets::RegistryAuth::Basic(u, p) => Some((u, p)),
            _ => None,
        };
        let found = crate::store::search::search(registry, term, limit, auth.clone(), plain)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut results = Vec::new();
        for f in found {
            let tags = match (r.list_tags, registry) {
                (false, _) => Vec::new(),
                (true, Some(reg)) => {
                    let repo = f.name.strip_prefix(&format!("{reg}/")).unwrap_or(&f.name);
                    crate::store::search::tags(reg, repo, auth.clone(), plain)
                        .await
                        .map_err(|e| Status::unavailable(e.to_string()))?
                }
                (true, None) => {
                    return Err(Status::invalid_argument(
                        "--list-tags needs a registry (REGISTRY/TERM): Docker Hub's search lists no tags",
                    ))
                }
            };
            results.push(pb::SearchResult {
                name: f.name,
                description: f.description,
                stars: f.stars,
                official: f.official,
                tags,
            });
        }
        Ok(Response::new(pb::SearchResponse { results }))
    }

    async fn history(
        &self,
        r: Request<pb::GetImageRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        let ns = namespace(&r)?;
        let name = r.into_inner().name;
        let store = self.store.clone();
        let (id, steps) = blocking(move || {
            let img = store.get(&ns, &name)?;
            store.history(&img, &Platform::host())
        })
        .await?;
        Ok(Response::new(pb::HistoryResponse {
            id,
            entries: steps
                .into_iter()
                .rev()
                .map(|h| pb::HistoryEntry {
                    created: h.created / 1_000_000_000,
                    created_by: h.created_by,
                    comment: h.comment,
                    size: h.size,
                    empty_layer: h.empty_layer,
                })
                .collect(),
        }))
    }

    async fn unpack(
        &self,
        r: Request<pb::UnpackRequest>,
    ) -> Result<Response<pb::UnpackResponse>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let platform = platform(&r.platform)?;
        let store = self.store.clone();
        let chain = blocking(move || {
            let img = store.get(&ns, &r.name)?;
            store.unpack(&ns, &img, &platform)
        })
        .await?;
        Ok(Response::new(pb::UnpackResponse {
            chain_id: chain.to_string(),
        }))
    }
}

/// Streams a spooled file in 64 KiB chunks, removing it at the end.
fn file_stream(file: Spool) -> ChunkStream {
    match std::fs::File::open(&file.0) {
        Ok(f) => read_stream(f, file, "export spool".into()),
        Err(e) => Box::pin(tokio_stream::once(Err(Status::internal(format!(
            "read export spool: {e}"
        ))))),
    }
}

/// Streams a blob from the content store.
pub fn blob_stream(
    store: &Images,
    digest: crate::store::digest::Digest,
) -> Result<ChunkStream, Status> {
    let f = store
        .content
        .open_blob(&digest)
        .map_err(|e| super::status_of(e.into()))?;
    Ok(read_stream(f, (), digest.to_string()))
}

/// Streams what `f` reads in 64 KiB chunks from a blocking thread; `guard`
/// lives until the end (a spool file's remover).
fn read_stream(
    mut f: impl std::io::Read + Send + 'static,
    guard: impl Send + 'static,
    what: String,
) -> ChunkStream {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let item = match f.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => Ok(pb::Chunk {
                    data: buf[..n].to_vec(),
                }),
                Err(e) => Err(Status::internal(format!("read {what}: {e}"))),
            };
            let last = item.is_err();
            if tx.blocking_send(item).is_err() || last {
                return;
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
