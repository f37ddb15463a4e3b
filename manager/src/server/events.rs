//! The Events service: the manager's event bus, filtered per subscriber by
//! namespace, topic and container.

use berth_proto::containers::events_server::Events as EventsApi;
use berth_proto::containers::{self as pb};
use tokio_stream::StreamExt;
use tonic::Status;
use tonic::{Request, Response};

use super::containers::BoxStream;
use super::containers::{Out, Service};
use super::namespace;

#[tonic::async_trait]
impl EventsApi for Service {
    type SubscribeStream = BoxStream<pb::Envelope>;

    async fn subscribe(&self, r: Request<pb::SubscribeRequest>) -> Out<Self::SubscribeStream> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let rx = self.manager.subscribe();
        let s = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(move |e| match e {
            Ok(e) => {
                let topic_ok =
                    r.topics.is_empty() || r.topics.iter().any(|t| e.topic.starts_with(t.as_str()));
                let id_ok = r.containers.is_empty() || r.containers.contains(&e.id);
                (e.namespace == ns && topic_ok && id_ok).then_some(Ok(e))
            }
            // A subscriber too slow for the bus is told, not silently skipped.
            Err(_) => Some(Err(Status::data_loss(
                "events: this subscriber fell behind and missed events",
            ))),
        });
        Ok(Response::new(Box::pin(s)))
    }
}
