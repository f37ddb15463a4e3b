//! The Content service. Blobs are shared by all namespaces (as content
//! addressed data may be); what a namespace references is in its images.

use std::sync::Arc;

use berth_proto::images::content_server::Content as ContentApi;
use berth_proto::images::{self as pb};
use tonic::{Request, Response, Status};

use super::{blocking, namespace};
use crate::store::digest::Digest;
use crate::store::images::Images;

/// The service and its store.
pub struct Service {
    pub(super) store: Arc<Images>,
}

fn digest(s: &str) -> Result<Digest, Status> {
    s.parse()
        .map_err(|e: crate::store::digest::DigestError| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl ContentApi for Service {
    async fn info(
        &self,
        r: Request<pb::ContentRequest>,
    ) -> Result<Response<pb::ContentInfo>, Status> {
        namespace(&r)?;
        let d = digest(&r.into_inner().digest)?;
        let s = self.store.clone();
        let i = blocking(move || Ok(s.content.info(&d)?)).await?;
        Ok(Response::new(pb::ContentInfo {
            digest: i.digest.to_string(),
            size: i.size,
        }))
    }

    type ReadStream = super::images::ChunkStream;

    async fn read(
        &self,
        r: Request<pb::ContentRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        namespace(&r)?;
        let d = digest(&r.into_inner().digest)?;
        Ok(Response::new(super::images::blob_stream(&self.store, d)?))
    }

    async fn delete(&self, r: Request<pb::ContentRequest>) -> Result<Response<pb::Empty>, Status> {
        namespace(&r)?;
        let d = digest(&r.into_inner().digest)?;
        let s = self.store.clone();
        blocking(move || Ok(s.content.delete(&d)?)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn list(
        &self,
        r: Request<pb::Empty>,
    ) -> Result<Response<pb::ListContentResponse>, Status> {
        namespace(&r)?;
        let s = self.store.clone();
        let blobs = blocking(move || Ok(s.content.list()?)).await?;
        Ok(Response::new(pb::ListContentResponse {
            blobs: blobs
                .into_iter()
                .map(|i| pb::ContentInfo {
                    digest: i.digest.to_string(),
                    size: i.size,
                })
                .collect(),
        }))
    }
}
