//! The gRPC APIs of the Berth stack, generated from `proto/*.proto`.

/// `berth.shim.v1`: the API each `berth-shim` serves on its unix socket.
pub mod shim {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("berth.shim.v1");
}

/// `berth.images.v1`: berthd's images, snapshots and content services.
pub mod images {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("berth.images.v1");
}

/// `berth.containers.v1`: berthd's containers, tasks, events and volumes.
pub mod containers {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("berth.containers.v1");
}

/// The request metadata naming the namespace a call works in.
pub const NAMESPACE_HEADER: &str = "berth-namespace";

/// The `version` a shim reports in `Connect`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Dials a gRPC server on a unix socket (a shim's address, berthd's socket).
pub async fn connect_unix(
    path: impl AsRef<std::path::Path>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let path = path.as_ref().to_path_buf();
    // The URI is required by the API and ignored: every connection goes to `path`.
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await
}
