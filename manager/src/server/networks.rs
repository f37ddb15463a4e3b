//! The Networks service: CNI networks by name, and the containers on each.

use berth_proto::containers::networks_server::Networks as NetworksApi;
use berth_proto::containers::{self as pb};
use tonic::Status;
use tonic::{Request, Response};

use super::containers::{status_of, Out, Service};
use crate::containers::tasks::Manager;

fn network_pb(m: &Manager, n: crate::network::cni::NetworkConfig) -> Result<pb::Network, Status> {
    let users = m.network_users(&n.name).map_err(status_of)?;
    Ok(pb::Network {
        driver: n.driver().into(),
        subnets: n.subnets(),
        config: serde_json::to_string_pretty(&n.raw).unwrap_or_default(),
        file: n.file.display().to_string(),
        name: n.name,
        containers: users
            .into_iter()
            .map(|(namespace, id, ip_addresses)| pb::NetworkEndpoint {
                namespace,
                id,
                ip_addresses,
            })
            .collect(),
    })
}

#[tonic::async_trait]
impl NetworksApi for Service {
    async fn create(&self, r: Request<pb::CreateNetworkRequest>) -> Out<pb::Network> {
        let r = r.into_inner();
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let n = self
            .manager
            .networks
            .create(
                &r.name,
                some(&r.subnet).as_deref(),
                some(&r.gateway).as_deref(),
            )
            .map_err(|e| status_of(e.into()))?;
        Ok(Response::new(network_pb(&self.manager, n)?))
    }

    async fn list(&self, _r: Request<pb::Empty>) -> Out<pb::ListNetworksResponse> {
        let mut networks = Vec::new();
        for n in self.manager.networks.list() {
            networks.push(network_pb(&self.manager, n)?);
        }
        Ok(Response::new(pb::ListNetworksResponse { networks }))
    }

    async fn get(&self, r: Request<pb::NetworkRef>) -> Out<pb::Network> {
        let n = self
            .manager
            .networks
            .get(&r.into_inner().name)
            .map_err(|e| status_of(e.into()))?;
        Ok(Response::new(network_pb(&self.manager, n)?))
    }

    async fn remove(&self, r: Request<pb::NetworkRef>) -> Out<pb::Empty> {
        self.manager
            .remove_network(&r.into_inner().name)
            .map_err(status_of)?;
        Ok(Response::new(pb::Empty {}))
    }
}
