//! The Leases service: leases of the request's namespace (see `leases.rs`).

use std::sync::Arc;

use berth_proto::images::leases_server::Leases as LeasesApi;
use berth_proto::images::{self as pb};
use tonic::{Request, Response, Status};

use super::{blocking, namespace};
use crate::store::images::Images;
use crate::store::leases::{Lease, Resource};

/// The service and its store.
pub struct Service {
    pub(super) store: Arc<Images>,
}

fn to_pb(l: Lease) -> pb::Lease {
    pb::Lease {
        id: l.id,
        labels: l.labels.into_iter().collect(),
        created: l.created,
        expires: l.expires.unwrap_or(0),
    }
}

#[tonic::async_trait]
impl LeasesApi for Service {
    async fn create(
        &self,
        r: Request<pb::CreateLeaseRequest>,
    ) -> Result<Response<pb::Lease>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let s = self.store.clone();
        let l = blocking(move || {
            s.lease_create(&ns, &r.id, r.labels.into_iter().collect(), r.expire_seconds)
        })
        .await?;
        Ok(Response::new(to_pb(l)))
    }

    async fn delete(&self, r: Request<pb::LeaseRequest>) -> Result<Response<pb::Empty>, Status> {
        let ns = namespace(&r)?;
        let id = r.into_inner().id;
        let s = self.store.clone();
        blocking(move || s.lease_delete(&ns, &id)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn list(
        &self,
        r: Request<pb::Empty>,
    ) -> Result<Response<pb::ListLeasesResponse>, Status> {
        let ns = namespace(&r)?;
        let s = self.store.clone();
        let leases = blocking(move || s.lease_list(&ns)).await?;
        Ok(Response::new(pb::ListLeasesResponse {
            leases: leases.into_iter().map(to_pb).collect(),
        }))
    }

    async fn add_resource(
        &self,
        r: Request<pb::LeaseResource>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.change(r, true).await
    }

    async fn delete_resource(
        &self,
        r: Request<pb::LeaseResource>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.change(r, false).await
    }

    async fn list_resources(
        &self,
        r: Request<pb::LeaseRequest>,
    ) -> Result<Response<pb::ListLeaseResourcesResponse>, Status> {
        let ns = namespace(&r)?;
        let id = r.into_inner().id;
        let s = self.store.clone();
        let l = blocking(move || s.lease_get(&ns, &id)).await?;
        Ok(Response::new(pb::ListLeaseResourcesResponse {
            resources: l
                .resources
                .iter()
                .map(|r| {
                    let (kind, id) = r.to_pair();
                    pb::LeaseResource {
                        lease: l.id.clone(),
                        r#type: kind.into(),
                        id,
                    }
                })
                .collect(),
        }))
    }
}

impl Service {
    async fn change(
        &self,
        r: Request<pb::LeaseResource>,
        add: bool,
    ) -> Result<Response<pb::Empty>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let s = self.store.clone();
        blocking(move || {
            let res = Resource::parse(&r.r#type, &r.id)?;
            s.lease_resource(&ns, &r.lease, res, add)
        })
        .await?;
        Ok(Response::new(pb::Empty {}))
    }
}
