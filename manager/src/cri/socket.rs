//! The CRI socket: both services on their own unix socket (0600, root's).

use std::path::Path;
use std::sync::Arc;

use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tokio_stream::StreamExt;

use super::image_service::ImageService;
use super::runtime_service::RuntimeService;
use super::{Cri, CriError};

/// Listens on `address` (a stale socket replaced, a live one refused).
pub fn listen(address: &Path) -> Result<tokio::net::UnixListener, CriError> {
    crate::perm::listen(address, "another CRI runtime").map_err(|(what, source)| CriError::Io {
        what,
        path: address.into(),
        source,
    })
}

/// Serves the CRI on `listener` until `stop` resolves. Each connection
/// goes through the relay of `authority` (old clients' `:authority`).
pub async fn serve(
    cri: Arc<Cri>,
    listener: tokio::net::UnixListener,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let incoming = crate::conns::incoming(listener, crate::conns::Limits::default()).map(|conn| {
        conn.map(|client| {
            let (near, far) = tokio::io::duplex(RELAY_BUFFER);
            tokio::spawn(super::authority::relay(client, far));
            near
        })
    });
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(crate::conns::PING_EVERY))
        .add_service(RuntimeServiceServer::new(RuntimeService {
            cri: cri.clone(),
        }))
        .add_service(ImageServiceServer::new(ImageService { cri }))
        .serve_with_incoming_shutdown(incoming, stop)
        .await
}

/// The relay's buffer each way: a whole default-size HTTP/2 frame and more.
const RELAY_BUFFER: usize = 64 << 10;
