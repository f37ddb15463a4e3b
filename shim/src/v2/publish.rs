//! Events back to containerd: every event the shim publishes (create,
//! start, exit, delete, OOM, pause, resume, exec added and started) goes as
//! containerd's own event message, in an envelope with the namespace and
//! topic, through `Events.Forward` on containerd's ttrpc socket
//! (`TTRPC_ADDRESS`), dialed for each. A containerd that is down or
//! restarting misses what happens meanwhile; Wait and State still answer
//! it when it reconnects.

use std::sync::Arc;

use berth_proto::shim::{event::Event as Ev, Event};
use protobuf::well_known_types::any::Any;
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::{Message, MessageField};

use super::proto::{events as ce, forward, forward_ttrpc, types};

/// containerd's timestamp from prost's.
pub fn timestamp(t: Option<&prost_types::Timestamp>) -> MessageField<Timestamp> {
    match t {
        Some(t) => MessageField::some(Timestamp {
            seconds: t.seconds,
            nanos: t.nanos,
            ..Default::default()
        }),
        None => MessageField::none(),
    }
}

/// What containerd's TaskCreate carries that berth's event does not.
#[derive(Clone, Debug, Default)]
pub struct CreateFacts {
    /// The rootfs mounts.
    pub rootfs: Vec<types::Mount>,
    /// stdin, stdout, stderr, terminal.
    pub io: (String, String, String, bool),
}

/// containerd's event (its type name and bytes) for berth's `e`.
pub fn convert(e: &Event, create: &CreateFacts) -> Option<(&'static str, Vec<u8>)> {
    let cid = e.id.clone();
    let exec = e.exec_id.clone();
    // An init's id is its container's, as runc-v2's.
    let pid_id = if exec.is_empty() {
        cid.clone()
    } else {
        exec.clone()
    };
    let (name, bytes) = match e.event.as_ref()? {
        Ev::Create(c) => (
            "containerd.events.TaskCreate",
            ce::TaskCreate {
                container_id: cid,
                bundle: c.bundle.clone(),
                rootfs: create.rootfs.clone(),
                io: MessageField::some(ce::TaskIO {
                    stdin: create.io.0.clone(),
                    stdout: create.io.1.clone(),
                    stderr: create.io.2.clone(),
                    terminal: create.io.3,
                    ..Default::default()
                }),
                pid: c.pid,
                ..Default::default()
            }
            .write_to_bytes(),
        ),
        Ev::Start(s) => (
            "containerd.events.TaskStart",
            ce::TaskStart {
                container_id: cid,
                pid: s.pid,
                ..Default::default()
            }
            .write_to_bytes(),
        ),
        Ev::Exit(x) => (
            "containerd.events.TaskExit",
            ce::TaskExit {
                container_id: cid,
                id: pid_id,
                pid: x.pid,
                exit_status: x.exit_status,
                exited_at: timestamp(x.exited_at.as_ref()),
                ..Default::default()
            }
            .write_to_bytes(),
        ),
        Ev::Delete(d) => (
            "containerd.events.TaskDelete",
            ce::TaskDelete {
                container_id: cid,
                pid: d.pid,
                exit_status: d.exit_status,
                exited_at: timestamp(d.exited_at.as_ref()),
                id: pid_id,
                ..Default::default()
            }
            .write_to_bytes(),
        ),
        Ev::Oom(_) => (
            "containerd.events.TaskOOM",
            ce::TaskOOM {
                container_id: cid,
                ..Default::default()
            }
            .write_to_bytes(),
        ),
        Ev::Paused(_) => (
            "containerd.events.TaskPaused",
            ce::TaskPaused {
                container_id: cid,
                ..Default::default()
            }
            .write_to_bytes(),
        ),
        Ev::Resumed(_) => (
            "containerd.events.TaskResumed",
            ce::TaskResumed {
                container_id: cid,
                ..Default::default()
            }
            .write_to_bytes(),
        ),
        Ev::ExecAdded(_) => (
            "containerd.events.TaskExecAdded",
            ce::TaskExecAdded {
                container_id: cid,
                exec_id: exec,
                ..Default::default()
            }
            .write_to_bytes(),
        ),
        Ev::ExecStarted(s) => (
            "containerd.events.TaskExecStarted",
            ce::TaskExecStarted {
                container_id: cid,
                exec_id: exec,
                pid: s.pid,
                ..Default::default()
            }
            .write_to_bytes(),
        ),
    };
    Some((name, bytes.ok()?))
}

/// A connection to containerd's events service, dialed when needed.
pub struct Publisher {
    address: String,
    namespace: String,
}

impl Publisher {
    /// A publisher to `address` (containerd's ttrpc socket, `TTRPC_ADDRESS`)
    /// for namespace `ns`.
    pub fn new(address: String, ns: String) -> Arc<Publisher> {
        Arc::new(Publisher {
            address,
            namespace: ns,
        })
    }

    /// Sends one event.
    pub async fn publish(
        &self,
        topic: &str,
        type_name: &str,
        value: Vec<u8>,
        at: Option<&prost_types::Timestamp>,
    ) {
        if self.address.is_empty() {
            return;
        }
        let req = forward::ForwardRequest {
            envelope: MessageField::some(forward::Envelope {
                timestamp: timestamp(at),
                namespace: self.namespace.clone(),
                topic: topic.to_string(),
                event: MessageField::some(Any {
                    type_url: type_name.to_string(),
                    value,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        // Events come a few per container's life: a connection each, none
        // kept (its tasks and buffers) between them. A containerd that is
        // down misses it; State and Wait still tell it when it is back.
        let addr = if self.address.contains("://") {
            self.address.clone()
        } else {
            format!("unix://{}", self.address)
        };
        if let Ok(c) = ttrpc::r#async::Client::connect(&addr) {
            let _ = forward_ttrpc::EventsClient::new(c)
                .forward(ttrpc::context::with_timeout(5_000_000_000), &req)
                .await;
        }
    }

    /// Forwards every event of `events` until the shim ends.
    pub fn forward_all(
        self: &Arc<Self>,
        mut events: tokio::sync::broadcast::Receiver<Event>,
        create: Arc<std::sync::Mutex<std::collections::HashMap<String, CreateFacts>>>,
    ) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let e = match events.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                let facts = create
                    .lock()
                    .expect("create facts")
                    .get(&e.id)
                    .cloned()
                    .unwrap_or_default();
                if let Some((name, bytes)) = convert(&e, &facts) {
                    me.publish(&e.topic, name, bytes, e.timestamp.as_ref())
                        .await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::shim as pb;

    #[test]
    fn exits_become_containerds_task_exit() {
        let e = Event {
            topic: "/tasks/exit".into(),
            timestamp: None,
            id: "c1".into(),
            exec_id: String::new(),
            event: Some(Ev::Exit(pb::TaskExit {
                pid: 42,
                exit_status: 3,
                exited_at: Some(prost_types::Timestamp {
                    seconds: 5,
                    nanos: 6,
                }),
            })),
        };
        let (name, bytes) = convert(&e, &CreateFacts::default()).unwrap();
        assert_eq!(name, "containerd.events.TaskExit");
        let back = ce::TaskExit::parse_from_bytes(&bytes).unwrap();
        assert_eq!(
            (
                back.container_id.as_str(),
                back.id.as_str(),
                back.pid,
                back.exit_status
            ),
            ("c1", "c1", 42, 3)
        );
        assert_eq!(back.exited_at.seconds, 5);
    }
}
