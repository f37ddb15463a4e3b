//! The Volumes service: named volumes per namespace.

use berth_proto::containers::volumes_server::Volumes as VolumesApi;
use berth_proto::containers::{self as pb};
use tonic::{Request, Response};

use super::containers::{status_of, Out, Service};
use super::namespace;
use crate::containers::tasks::{timestamp as ts, Manager};

fn volume_pb(m: &Manager, ns: &str, v: crate::containers::records::Volume) -> pb::Volume {
    pb::Volume {
        mountpoint: m.volumes().data_dir(ns, &v.name).display().to_string(),
        name: v.name,
        created: Some(ts(v.created_ms)),
    }
}

#[tonic::async_trait]
impl VolumesApi for Service {
    async fn create(&self, r: Request<pb::VolumeRef>) -> Out<pb::Volume> {
        let ns = namespace(&r)?;
        let v = self
            .manager
            .volumes()
            .create(&ns, &r.into_inner().name)
            .map_err(|e| status_of(e.into()))?;
        Ok(Response::new(volume_pb(&self.manager, &ns, v)))
    }

    async fn list(&self, r: Request<pb::Empty>) -> Out<pb::ListVolumesResponse> {
        let ns = namespace(&r)?;
        let vols = self
            .manager
            .volumes()
            .list(&ns)
            .map_err(|e| status_of(e.into()))?;
        Ok(Response::new(pb::ListVolumesResponse {
            volumes: vols
                .into_iter()
                .map(|v| volume_pb(&self.manager, &ns, v))
                .collect(),
        }))
    }

    async fn remove(&self, r: Request<pb::VolumeRef>) -> Out<pb::Empty> {
        let ns = namespace(&r)?;
        self.manager
            .volumes()
            .remove(&ns, &r.into_inner().name)
            .map_err(|e| status_of(e.into()))?;
        Ok(Response::new(pb::Empty {}))
    }
}
