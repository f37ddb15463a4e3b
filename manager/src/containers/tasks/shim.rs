//! A task's shim: launched with the bundle written, connected, its events
//! forwarded; the init's exit recorded and the shim let go.

use crate::containers::records::{Container, Exit};
use crate::store::images::ImageError;
use berth_proto::shim::shim_client::ShimClient;
use berth_proto::shim::{self as shimpb};
use berth_rules::idmap::{self, IdMap, UserMaps};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tonic::transport::Channel;

use super::*;

/// The uid and gid maps of a container that runs in a user namespace with
/// id mappings (a CRI pod's); None otherwise.
fn spec_user_maps(spec: &Value) -> Option<UserMaps> {
    let linux = &spec["linux"];
    linux["namespaces"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == "user")?;
    let maps = |key: &str| -> Option<Vec<IdMap>> {
        let list: Option<Vec<IdMap>> = linux[key]
            .as_array()?
            .iter()
            .map(|m| {
                let n = |k: &str| m[k].as_u64().and_then(|v| u32::try_from(v).ok());
                IdMap::new(n("containerID")?, n("hostID")?, n("size")?).ok()
            })
            .collect();
        list.filter(|l| !l.is_empty())
    };
    Some((maps("uidMappings")?, maps("gidMappings")?))
}

/// containerd's `uidmap=`/`gidmap=` rootfs mount options for a container
/// with `maps`: the shim then idmaps the image's layers, so what root owns
/// in the image the container's root owns.
fn rootfs_idmap((uid, gid): &UserMaps) -> [String; 2] {
    [
        format!("uidmap={}", idmap::format(uid)),
        format!("gidmap={}", idmap::format(gid)),
    ]
}

impl Manager {
    /// Launches the container's shim and creates its init.
    pub async fn create_task(self: &Arc<Self>, ns: &str, id: &str) -> Result<u32, TaskError> {
        let _g = self.lock(ns, id).await;
        let c = self.records().get(ns, id)?;
        if self.task(ns, id).is_some() {
            return Err(TaskError::State(format!(
                "container {id} already has a task: it is running"
            )));
        }
        let mut spec = c.spec.clone();
        let netns = if let Some(other) = c.network.strip_prefix("container:") {
            // Join the other container's network namespace through its init.
            let t = self.task(ns, other).ok_or_else(|| {
                TaskError::State(format!(
                    "cannot join the network of container {other}: it is not running"
                ))
            })?;
            Some(PathBuf::from(format!("/proc/{}/ns/net", t.pid)))
        } else if let Some(p) = c.network.strip_prefix("netns:") {
            // Made and networked by its owner (a CRI pod): only joined.
            Some(PathBuf::from(p))
        } else if c.network != "host" {
            // berthd's own namespace (lo up), attached to the CNI network when
            // the container has one; both go with the task.
            let p = self.netns_path(ns, id);
            self.teardown_network(ns, id).await;
            crate::network::netns::create(&p).map_err(|e| TaskError::State(e.to_string()))?;
            Some(p)
        } else {
            None
        };
        if let (Some(p), Some(list)) = (&netns, spec["linux"]["namespaces"].as_array_mut()) {
            for n in list.iter_mut().filter(|n| n["type"] == "network") {
                n["path"] = Value::String(p.display().to_string());
            }
        }
        let r = async {
            self.setup_network(ns, &c, netns.as_deref()).await?;
            self.launch(ns, id, &c, &spec).await
        }
        .await;
        if r.is_err() {
            self.teardown_network(ns, id).await;
        }
        r
    }

    /// Writes the bundle, starts the shim, creates the task.
    pub(super) async fn launch(
        self: &Arc<Self>,
        ns: &str,
        id: &str,
        c: &Container,
        spec: &Value,
    ) -> Result<u32, TaskError> {
        let bundle = self.bundle(ns, id);
        let _ = std::fs::remove_dir_all(&bundle);
        let user_maps = spec_user_maps(spec);
        // Closed to other users; a user namespace's root may traverse it.
        if let Some(ns_dir) = bundle.parent() {
            crate::perm::dir(ns_dir, crate::perm::BUNDLES).map_err(io("create", ns_dir))?;
        }
        let mapped_root_gid = user_maps.as_ref().and_then(|(_, g)| idmap::to_host(g, 0));
        crate::perm::bundle(&bundle, mapped_root_gid).map_err(io("create", &bundle))?;
        std::fs::create_dir_all(bundle.join("rootfs")).map_err(io("create", &bundle))?;
        let spec = serde_json::to_vec_pretty(spec).unwrap_or_default();
        // The config carries the container's environment (secrets given with -e).
        crate::perm::write_secret(&bundle.join("config.json"), &spec)
            .map_err(io("write", &bundle.join("config.json")))?;
        let mut mounts = self
            .images
            .snapshots
            .mounts(ns, &c.snapshot)
            .map_err(ImageError::from)?;
        if let Some(maps) = &user_maps {
            for m in &mut mounts {
                m.options.extend(rootfs_idmap(maps));
            }
        }
        let runtime = if c.runtime.is_empty() {
            self.paths.runtime.clone()
        } else {
            PathBuf::from(&c.runtime)
        };
        let address = self.address(ns, id);
        let out = tokio::process::Command::new(&self.paths.shim)
            .arg("start")
            .arg("--id")
            .arg(id)
            .arg("--bundle")
            .arg(&bundle)
            .arg("--address")
            .arg(&address)
            .arg("--runtime")
            .arg(&runtime)
            .arg("--runtime-root")
            .arg(self.runtime_root(ns))
            .args(
                (self.paths.cgroup_driver == crate::containers::cgroups::CgroupDriver::Systemd)
                    .then_some("--systemd-cgroup"),
            )
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(io("run", &self.paths.shim))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&bundle);
            return Err(TaskError::State(format!(
                "start shim for {id}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let result = async {
            let ch = berth_proto::connect_unix(&address)
                .await
                .map_err(|e| TaskError::State(format!("connect to shim of {id}: {e}")))?;
            let mut client = ShimClient::new(ch);
            let events = client
                .events(shimpb::EventsRequest {})
                .await
                .map_err(shim_err(id))?
                .into_inner();
            let log = self.log_file(ns, c);
            let r = client
                .create(shimpb::CreateRequest {
                    id: id.into(),
                    bundle: bundle.display().to_string(),
                    terminal: c.tty,
                    stdin: c.stdin,
                    rootfs: mounts
                        .iter()
                        .map(|m| shimpb::Mount {
                            r#type: m.kind.clone(),
                            source: m.source.clone(),
                            options: m.options.clone(),
                        })
                        .collect(),
                    log_path: log.display().to_string(),
                    log_max_size: c.log_max_size,
                    // The shim counts rotated copies; docker's max-file
                    // counts the log too.
                    log_max_files: c.log_max_files.saturating_sub(1),
                })
                .await;
            match r {
                Ok(r) => Ok((client, events, r.into_inner().pid)),
                Err(status) => {
                    let _ = client
                        .shutdown(shimpb::ShutdownRequest { id: id.into() })
                        .await;
                    Err(TaskError::Shim {
                        id: id.into(),
                        status,
                    })
                }
            }
        }
        .await;
        let (client, events, pid) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&bundle);
                return Err(e);
            }
        };
        let task = Arc::new(Task {
            client,
            pid,
            exit: watch::channel(None).0,
            oom: Default::default(),
        });
        self.tasks.lock().unwrap().insert(key(ns, id), task.clone());
        self.watch(ns, id, task, events);
        Ok(pid)
    }

    /// Forwards a shim's events; on its init's exit, records it and deletes
    /// the task. A stream that ends while the task is registered means the
    /// shim died: its leftovers are cleaned with `berth-shim delete`.
    pub(super) fn watch(
        self: &Arc<Self>,
        ns: &str,
        id: &str,
        task: Arc<Task>,
        mut events: tonic::Streaming<shimpb::Event>,
    ) {
        let (me, ns, id) = (self.clone(), ns.to_string(), id.to_string());
        tokio::spawn(async move {
            loop {
                let ev = match events.message().await {
                    Ok(Some(ev)) => ev,
                    _ => break,
                };
                let (pid, status) = match &ev.event {
                    Some(shimpb::event::Event::Create(e)) => (e.pid, 0),
                    Some(shimpb::event::Event::Start(e)) => (e.pid, 0),
                    Some(shimpb::event::Event::Exit(e)) => (e.pid, e.exit_status),
                    Some(shimpb::event::Event::Delete(e)) => (e.pid, e.exit_status),
                    Some(shimpb::event::Event::ExecStarted(e)) => (e.pid, 0),
                    _ => (0, 0),
                };
                // The init's delete is published by `finish`, in order with
                // what follows it (a container removal).
                if !(ev.exec_id.is_empty() && ev.topic == "/tasks/delete") {
                    me.publish(&ns, &ev.topic, &id, &ev.exec_id, pid, status);
                }
                if let (Some(shimpb::event::Event::Oom(_)), true) =
                    (&ev.event, ev.exec_id.is_empty())
                {
                    task.oom.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                if let Some(shimpb::event::Event::Exit(e)) = &ev.event {
                    if ev.exec_id.is_empty() {
                        let mut exit = exit_of(e.exit_status, e.exited_at.as_ref());
                        exit.oom_killed = task.oom.load(std::sync::atomic::Ordering::Relaxed);
                        me.init_exited(&ns, &id, &task, exit).await;
                    }
                }
            }
            // The stream ended. Our own cleanup removed the task first; if it
            // is still registered, the shim is gone without telling.
            let still = me.task(&ns, &id).is_some_and(|t| Arc::ptr_eq(&t, &task));
            if still {
                tracing::warn!(namespace = %ns, id = %id, "shim connection lost; cleaning up");
                let status = me.shim_delete(&ns, &id).await;
                let exit = Exit {
                    oom_killed: task.oom.load(std::sync::atomic::Ordering::Relaxed),
                    status,
                    at_ms: berth_rules::time::now_ms(),
                };
                me.init_exited(&ns, &id, &task, exit).await;
            }
        });
    }

    /// Records an init's exit, wakes waiters, then (under the container's
    /// lock) deletes the task and, for an auto-remove container, the container.
    pub(super) async fn init_exited(&self, ns: &str, id: &str, task: &Arc<Task>, exit: Exit) {
        self.record_exit(ns, id, task, exit);
        let _g = self.lock(ns, id).await;
        if self.finish(ns, id, task).await {
            let auto = self.records().get(ns, id).map(|c| c.auto_remove);
            if auto.unwrap_or(false) {
                if let Err(e) = self.remove_container(ns, id, false).await {
                    tracing::warn!(namespace = %ns, id = %id, error = %e, "auto-remove failed");
                }
            }
        }
    }

    /// Records an init's first reported exit on the container and wakes
    /// its waiters; later reports of the same exit change nothing.
    pub(super) fn record_exit(&self, ns: &str, id: &str, task: &Task, exit: Exit) {
        if task.exit.borrow().is_none() {
            let _ = self.records().modify(ns, id, |c| c.exit = Some(exit));
            task.exit.send_replace(Some(exit));
        }
    }

    /// Deletes a stopped task in its shim and lets the shim exit; false when
    /// another caller already did. Call with the container's lock held.
    pub(super) async fn finish(&self, ns: &str, id: &str, task: &Arc<Task>) -> bool {
        {
            let mut tasks = self.tasks.lock().unwrap();
            match tasks.get(&key(ns, id)) {
                Some(t) if Arc::ptr_eq(t, task) => {
                    tasks.remove(&key(ns, id));
                }
                _ => return false,
            }
        }
        let mut c = task.client.clone();
        let _ = c
            .delete(shimpb::DeleteRequest {
                id: id.into(),
                exec_id: String::new(),
            })
            .await;
        let _ = c.shutdown(shimpb::ShutdownRequest { id: id.into() }).await;
        let _ = std::fs::remove_dir_all(self.bundle(ns, id));
        self.teardown_network(ns, id).await;
        let status = task.exit.borrow().map(|e| e.status).unwrap_or(0);
        self.publish(ns, "/tasks/delete", id, "", task.pid, status);
        true
    }

    /// `berth-shim delete` for a container whose shim is gone; the exit
    /// status to report.
    pub(super) async fn shim_delete(&self, ns: &str, id: &str) -> u32 {
        let bundle = self.bundle(ns, id);
        let out = tokio::process::Command::new(&self.paths.shim)
            .arg("delete")
            .arg("--id")
            .arg(id)
            .arg("--bundle")
            .arg(&bundle)
            .stdin(std::process::Stdio::null())
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => serde_json::from_slice::<Value>(&o.stdout)
                .ok()
                .and_then(|v| v["exit_status"].as_u64())
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(255),
            Ok(o) => {
                tracing::warn!(id = %id, error = %String::from_utf8_lossy(&o.stderr).trim(), "berth-shim delete failed");
                255
            }
            Err(e) => {
                tracing::warn!(id = %id, error = %e, "berth-shim delete failed");
                255
            }
        }
    }

    /// The shim's client of a running container (for attach and friends).
    pub fn shim(&self, ns: &str, id: &str) -> Result<ShimClient<Channel>, TaskError> {
        Ok(self.running_task(ns, id)?.client.clone())
    }
}

#[cfg(test)]
mod idmap_tests {
    use super::*;

    #[test]
    fn a_container_in_a_mapped_user_namespace_gets_idmapped_layers() {
        let m = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 100000}]);
        let spec = serde_json::json!({"linux": {
            "namespaces": [{"type": "mount"}, {"type": "user", "path": "/p/ns/user"}],
            "uidMappings": m, "gidMappings": m,
        }});
        let maps = spec_user_maps(&spec).unwrap();
        assert_eq!(
            rootfs_idmap(&maps),
            ["uidmap=0:1000:100000", "gidmap=0:1000:100000"]
        );
        assert_eq!(idmap::to_host(&maps.1, 0), Some(1000));
        let no_userns = serde_json::json!({"linux": {"namespaces": [{"type": "mount"}], "uidMappings": m, "gidMappings": m}});
        assert!(spec_user_maps(&no_userns).is_none());
        let no_maps = serde_json::json!({"linux": {"namespaces": [{"type": "user"}]}});
        assert!(spec_user_maps(&no_maps).is_none());
    }
}
