//! The Snapshots service.

use std::sync::Arc;

use berth_proto::images::snapshots_server::Snapshots as SnapshotsApi;
use berth_proto::images::{self as pb};
use tonic::{Request, Response, Status};

use super::{blocking, namespace};
use crate::store::images::Images;
use crate::store::snapshot::{Kind, Mount};

/// The service and its store.
pub struct Service {
    pub(super) store: Arc<Images>,
}

fn mounts(m: Vec<Mount>) -> pb::MountsResponse {
    pb::MountsResponse {
        mounts: m
            .into_iter()
            .map(|m| pb::Mount {
                r#type: m.kind,
                source: m.source,
                options: m.options,
            })
            .collect(),
    }
}

fn parent(p: &str) -> Option<String> {
    (!p.is_empty()).then(|| p.to_string())
}

fn check_key(k: &str) -> Result<(), Status> {
    if k.is_empty() || k.len() > 256 || k.contains('\0') {
        return Err(Status::invalid_argument(format!(
            "invalid snapshot key {k:?}"
        )));
    }
    Ok(())
}

impl Service {
    /// Prepare (an active snapshot) or View.
    async fn create(
        &self,
        r: Request<pb::PrepareRequest>,
        kind: Kind,
    ) -> Result<Response<pb::MountsResponse>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        check_key(&r.key)?;
        let s = self.store.clone();
        let m = blocking(move || {
            let p = parent(&r.parent);
            Ok(match kind {
                Kind::View => s.snapshots.view(&ns, &r.key, p.as_deref())?,
                _ => s.snapshots.prepare(&ns, &r.key, p.as_deref())?,
            })
        })
        .await?;
        Ok(Response::new(mounts(m)))
    }
}

#[tonic::async_trait]
impl SnapshotsApi for Service {
    async fn prepare(
        &self,
        r: Request<pb::PrepareRequest>,
    ) -> Result<Response<pb::MountsResponse>, Status> {
        self.create(r, Kind::Active).await
    }

    async fn view(
        &self,
        r: Request<pb::PrepareRequest>,
    ) -> Result<Response<pb::MountsResponse>, Status> {
        self.create(r, Kind::View).await
    }

    async fn mounts(
        &self,
        r: Request<pb::SnapshotKey>,
    ) -> Result<Response<pb::MountsResponse>, Status> {
        let ns = namespace(&r)?;
        let key = r.into_inner().key;
        let s = self.store.clone();
        let m = blocking(move || Ok(s.snapshots.mounts(&ns, &key)?)).await?;
        Ok(Response::new(mounts(m)))
    }

    async fn commit(&self, r: Request<pb::CommitRequest>) -> Result<Response<pb::Empty>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        check_key(&r.name)?;
        let s = self.store.clone();
        blocking(move || Ok(s.snapshots.commit(&ns, &r.name, &r.key)?)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn remove(&self, r: Request<pb::SnapshotKey>) -> Result<Response<pb::Empty>, Status> {
        let ns = namespace(&r)?;
        let key = r.into_inner().key;
        let s = self.store.clone();
        blocking(move || Ok(s.snapshots.remove(&ns, &key)?)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn list(
        &self,
        r: Request<pb::Empty>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        let ns = namespace(&r)?;
        let s = self.store.clone();
        let list = blocking(move || Ok(s.snapshots.list(&ns)?)).await?;
        Ok(Response::new(pb::ListSnapshotsResponse {
            snapshots: list
                .into_iter()
                .map(|(key, i)| pb::SnapshotInfo {
                    key,
                    parent: i.parent.unwrap_or_default(),
                    kind: match i.kind {
                        Kind::Committed => "committed",
                        Kind::Active => "active",
                        Kind::View => "view",
                    }
                    .into(),
                    created: i.created,
                })
                .collect(),
        }))
    }

    async fn usage(
        &self,
        r: Request<pb::SnapshotKey>,
    ) -> Result<Response<pb::UsageResponse>, Status> {
        let ns = namespace(&r)?;
        let key = r.into_inner().key;
        let s = self.store.clone();
        let (size, inodes) = blocking(move || Ok(s.snapshots.usage(&ns, &key)?)).await?;
        Ok(Response::new(pb::UsageResponse { size, inodes }))
    }
}
