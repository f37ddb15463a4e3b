//! Task events, published in the order they happen and fanned out to every
//! `Events` stream. A subscriber that falls too far behind is told so (its
//! stream ends with DATA_LOSS) rather than silently missing events.

use std::time::SystemTime;

use berth_proto::shim::{event, Event};
use tokio::sync::broadcast;

/// Events a slow subscriber may lag behind before it is cut off.
const BACKLOG: usize = 256;

/// The shim's event bus.
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

/// containerd's topic for an event.
pub fn topic(e: &event::Event) -> &'static str {
    use event::Event::*;
    match e {
        Create(_) => "/tasks/create",
        Start(_) => "/tasks/start",
        Exit(_) => "/tasks/exit",
        Delete(_) => "/tasks/delete",
        Oom(_) => "/tasks/oom",
        Paused(_) => "/tasks/paused",
        Resumed(_) => "/tasks/resumed",
        ExecAdded(_) => "/tasks/exec-added",
        ExecStarted(_) => "/tasks/exec-started",
    }
}

impl Events {
    /// Publishes `e` about process `exec_id` ("" for the init) of container `id`.
    pub fn publish(&self, id: &str, exec_id: &str, e: event::Event) {
        let ev = Event {
            topic: topic(&e).into(),
            timestamp: Some(SystemTime::now().into()),
            id: id.into(),
            exec_id: exec_id.into(),
            event: Some(e),
        };
        // No subscriber is not an error: events are not stored.
        let _ = self.tx.send(ev);
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
