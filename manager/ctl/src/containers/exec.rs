//! `exec`: a process in a running container, attached or detached.

use berth_proto::containers::tasks_client::TasksClient;
use berth_proto::containers::{self as pb};
use tonic::transport::Channel;
use tonic::Code;

use super::args::ExecArgs;
use super::Clients;
use crate::failure::{failed, status_err};
use crate::request;

/// `exec`: starts the process and, unless detached, attaches, waits and
/// removes it; its exit status.
pub(crate) async fn exec(c: &mut Clients, a: ExecArgs) -> anyhow::Result<u8> {
    let ExecArgs {
        interactive,
        tty,
        detach,
        process,
        privileged,
        detach_keys,
        container,
        command,
    } = a;
    let exec_id = format!("exec-{}", &berth_rules::id::random()[..12]);
    let r = c.req(pb::ExecRequest {
        container_id: container.clone(),
        exec_id: exec_id.clone(),
        args: command,
        env: process.env(),
        workdir: process.workdir.unwrap_or_default(),
        user: process.user.unwrap_or_default(),
        tty,
        stdin: interactive,
        privileged,
    });
    c.tasks.exec(r).await.map_err(|s| match s.code() {
        Code::NotFound => failed(1, format!("no such container: {container}")),
        _ => status_err(&format!("exec in {container}"), s),
    })?;
    let cleanup = |mut tasks: TasksClient<Channel>, ns: String, cid: String, eid: String| async move {
        let _ = tasks
            .delete(request(
                &ns,
                pb::TaskRef {
                    container_id: cid,
                    exec_id: eid,
                },
            ))
            .await;
    };
    if detach {
        c.start_task(&container, &exec_id).await?;
        return Ok(0);
    }
    let r = c
        .attach_and_run(&container, &exec_id, tty, interactive, true, &detach_keys)
        .await;
    let detached = match r {
        Ok(d) => d,
        Err(e) => {
            cleanup(
                c.tasks.clone(),
                c.ns.clone(),
                container.clone(),
                exec_id.clone(),
            )
            .await;
            return Err(e);
        }
    };
    if detached {
        return Ok(0);
    }
    let status = c.wait(&container, &exec_id).await?;
    cleanup(c.tasks.clone(), c.ns.clone(), container, exec_id).await;
    Ok(status.min(255) as u8)
}
