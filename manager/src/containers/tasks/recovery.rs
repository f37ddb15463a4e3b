//! After berthd restarts: every shim found by its bundle, reconnected, or
//! cleaned up with what it left.

use crate::containers::records::Exit;
use berth_proto::shim::shim_client::ShimClient;
use berth_proto::shim::{self as shimpb};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use super::*;

impl Manager {
    /// After a restart: reconnects to every container's shim, records the
    /// exits that happened meanwhile, cleans up after shims that died, and
    /// removes bundles no container owns. Containers are handled in parallel.
    pub async fn recover(self: &Arc<Self>) -> Result<(), TaskError> {
        let all = self.records().all()?;
        let mut jobs = tokio::task::JoinSet::new();
        for (ns, c) in &all {
            let bundle = self.bundle(ns, &c.id);
            if !bundle.join("address").exists() && !bundle.join("shim.pid").exists() {
                continue;
            }
            let (me, ns, id) = (self.clone(), ns.clone(), c.id.clone());
            jobs.spawn(async move { me.recover_one(&ns, &id).await });
        }
        while let Some(r) = jobs.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "recover");
            }
        }
        // Networking of tasks that are gone (berthd died between a task's
        // end and its teardown, or during a setup): DEL and the namespace,
        // in the background under the container's lock. Attachments of live
        // tasks get a CHECK.
        let mut net: std::collections::BTreeSet<(String, String)> =
            self.networks.recorded().into_iter().collect();
        net.extend(
            per_container(&self.paths.state.join("netns"))
                .into_iter()
                .map(|(n, i, _)| (n, i)),
        );
        for (ns, id) in net {
            let me = self.clone();
            tokio::spawn(async move {
                let _g = me.lock(&ns, &id).await;
                if me.task(&ns, &id).is_some() {
                    if let Err(e) = me.networks.check(&ns, &id).await {
                        tracing::warn!(namespace = %ns, id = %id, error = %e, "network CHECK failed");
                    }
                } else if !me.bundle(&ns, &id).join("address").exists() {
                    tracing::info!(namespace = %ns, id = %id, "tearing down orphaned networking");
                    me.teardown_network(&ns, &id).await;
                }
            });
        }
        // Snapshots a crash left without an owner: a container's prepared
        // before its record was written (or after it was removed), and an
        // earlier berthd's unpacks in progress. Snapshots clients made
        // through the API have other keys and are theirs.
        let me = std::process::id();
        for (ns, key, _) in self.images.snapshots.list_all().unwrap_or_default() {
            let orphan = match key.strip_prefix("container-") {
                Some(id) => !all.iter().any(|(n, c)| *n == ns && c.id == id),
                None => key
                    .strip_prefix("extract-")
                    .and_then(|rest| rest.split_once('-'))
                    .is_some_and(|(pid, _)| pid.parse::<u32>() != Ok(me)),
            };
            if orphan {
                tracing::info!(namespace = %ns, key = %key, "removing orphaned snapshot");
                if let Err(e) = self.images.snapshots.remove(&ns, &key) {
                    tracing::warn!(namespace = %ns, key = %key, error = %e, "remove orphaned snapshot");
                }
            }
        }
        // Bundles without a record (a crash between a shim's start and the
        // end of a removal).
        let owned: std::collections::HashSet<(String, String)> =
            all.iter().map(|(n, c)| (n.clone(), c.id.clone())).collect();
        for (ns, id, path) in per_container(&self.paths.state.join("bundles")) {
            if !owned.contains(&(ns.clone(), id.clone())) {
                tracing::info!(namespace = %ns, id = %id, "removing orphaned bundle");
                self.shim_delete(&ns, &id).await;
                let _ = std::fs::remove_dir_all(path);
            }
        }
        Ok(())
    }

    pub(super) async fn recover_one(self: &Arc<Self>, ns: &str, id: &str) -> Result<(), TaskError> {
        let bundle = self.bundle(ns, id);
        let address = std::fs::read_to_string(bundle.join("address")).unwrap_or_default();
        let connected = async {
            let ch = tokio::time::timeout(
                Duration::from_secs(2),
                berth_proto::connect_unix(address.trim()),
            )
            .await
            .ok()?
            .ok()?;
            let mut client = ShimClient::new(ch);
            let events = client
                .events(shimpb::EventsRequest {})
                .await
                .ok()?
                .into_inner();
            Some((client, events))
        }
        .await;
        // A shim that serves is never taken for gone: berthd may have died
        // while it was creating the container (wait for that), or before it
        // was asked to (shut it down through its API).
        let connected = match connected {
            None => None,
            Some((mut client, events)) => match self.shim_state(&mut client, id).await {
                Ok(st) => Some((client, events, st)),
                Err(status) if status.code() == tonic::Code::NotFound => {
                    tracing::info!(namespace = %ns, id = %id, "shim without a container; shutting it down");
                    let _ = client
                        .shutdown(shimpb::ShutdownRequest { id: id.into() })
                        .await;
                    self.wait_shim_gone(&bundle).await;
                    None
                }
                Err(status) => {
                    return Err(TaskError::State(format!(
                        "shim of {id} serves but cannot say its state: {}; left as it is",
                        status.message()
                    )))
                }
            },
        };
        let Some((client, events, st)) = connected else {
            // The shim is gone: its container was killed with it (137). The
            // cleanup (`berth-shim delete`: kill, runtime delete, unmount) runs
            // in the background under the container's lock, so berthd serves
            // at once and calls on this container wait for it.
            let guard = self.lock(ns, id).await;
            let status = 128 + libc::SIGKILL as u32;
            let c = self.records().get(ns, id)?;
            if c.exit.is_none() {
                self.records().modify(ns, id, |c| {
                    c.exit = Some(Exit {
                        oom_killed: false,
                        status,
                        at_ms: berth_rules::time::now_ms(),
                    })
                })?;
            }
            self.publish(ns, "/tasks/exit", id, "", 0, status);
            let (me, ns, id) = (self.clone(), ns.to_string(), id.to_string());
            tokio::spawn(async move {
                let _guard = guard;
                me.shim_delete(&ns, &id).await;
                let _ = std::fs::remove_dir_all(me.bundle(&ns, &id));
                me.teardown_network(&ns, &id).await;
                tracing::info!(namespace = %ns, id = %id, "shim was gone; cleaned up");
            });
            return Ok(());
        };
        let task = Arc::new(Task {
            client,
            pid: st.pid,
            exit: watch::channel(None).0,
            // An OOM kill while berthd was away is the shim's to tell.
            oom: std::sync::atomic::AtomicBool::new(st.oom_killed),
        });
        self.tasks.lock().unwrap().insert(key(ns, id), task.clone());
        self.watch(ns, id, task.clone(), events);
        if st.status() == shimpb::Status::Stopped {
            let exit = Exit {
                oom_killed: st.oom_killed,
                ..exit_of(st.exit_status, st.exited_at.as_ref())
            };
            self.publish(ns, "/tasks/exit", id, "", st.pid, st.exit_status);
            // Recorded now; the task's deletion and the shim's exit follow in
            // the background (under the container's lock), so berthd serves at once.
            self.record_exit(ns, id, &task, exit);
            let (me, ns, id) = (self.clone(), ns.to_string(), id.to_string());
            tokio::spawn(async move { me.init_exited(&ns, &id, &task, exit).await });
            return Ok(());
        }
        tracing::info!(namespace = %ns, id = %id, "reconnected to shim");
        Ok(())
    }

    /// The init's state, waiting (up to 30 s) while the shim is still
    /// creating it.
    async fn shim_state(
        &self,
        client: &mut ShimClient<tonic::transport::Channel>,
        id: &str,
    ) -> Result<shimpb::StateResponse, tonic::Status> {
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = client
                .state(shimpb::StateRequest {
                    id: id.into(),
                    exec_id: String::new(),
                })
                .await;
            match r {
                Err(s)
                    if s.code() == tonic::Code::Unavailable
                        && tokio::time::Instant::now() < until =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                r => return r.map(|r| r.into_inner()),
            }
        }
    }

    /// Waits (up to 5 s) until the shim of `bundle` no longer serves: it
    /// removes its address file on the way out.
    async fn wait_shim_gone(&self, bundle: &std::path::Path) {
        for _ in 0..100 {
            if !bundle.join("address").exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
