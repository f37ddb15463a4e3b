//! The container lifecycle commands: `run`, `create`, `start`, `stop`,
//! `kill`, `rm`.

use berth_proto::containers::{self as pb};

use super::args::{parse_signal, CreateArgs};
use super::Clients;
use crate::failure::{failed, status_err};

/// `run`: create, start, attach unless detached, wait, remove with `--rm`.
pub(crate) async fn run(
    c: &mut Clients,
    create: CreateArgs,
    detach: bool,
    rm: bool,
    detach_keys: String,
) -> anyhow::Result<u8> {
    let ctr = c.create(&create, rm && detach).await?;
    let id = ctr.id.clone();
    if let Err(e) = c.create_task(&id).await {
        if rm {
            let _ = c.remove(&id, true).await;
        }
        return Err(e);
    }
    if detach {
        if let Err(e) = c.start_task(&id, "").await {
            if rm {
                let _ = c.remove(&id, true).await;
            }
            return Err(e);
        }
        println!("{id}");
        return Ok(0);
    }
    let detached = match c
        .attach_and_run(&id, "", create.tty, create.interactive, true, &detach_keys)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            if rm {
                let _ = c.remove(&id, true).await;
            }
            return Err(e);
        }
    };
    if detached {
        return Ok(0);
    }
    let status = c.wait(&id, "").await?;
    if rm {
        c.remove(&id, true).await?;
    }
    Ok(status.min(255) as u8)
}

/// `create`: the container, no task yet.
pub(crate) async fn create(c: &mut Clients, create: CreateArgs) -> anyhow::Result<u8> {
    let ctr = c.create(&create, false).await?;
    println!("{}", ctr.id);
    Ok(0)
}

/// `start`: each container's task, attached with `-a`/`-i` (one container then).
pub(crate) async fn start(
    c: &mut Clients,
    attach: bool,
    interactive: bool,
    detach_keys: String,
    containers: Vec<String>,
) -> anyhow::Result<u8> {
    if (attach || interactive) && containers.len() > 1 {
        return Err(failed(
            125,
            "you cannot start and attach multiple containers at once",
        ));
    }
    for id in &containers {
        let ctr = c.get(id).await?;
        if matches!(
            ctr.status(),
            pb::TaskStatus::Running | pb::TaskStatus::Paused
        ) {
            if !attach {
                println!("{id}");
            }
            continue;
        }
        if ctr.status() == pb::TaskStatus::None {
            c.create_task(id).await?;
        }
        if attach || interactive {
            if c.attach_and_run(
                id,
                "",
                ctr.tty,
                interactive && ctr.stdin,
                true,
                &detach_keys,
            )
            .await?
            {
                return Ok(0);
            }
            return Ok(c.wait(id, "").await?.min(255) as u8);
        }
        c.start_task(id, "").await?;
        println!("{id}");
    }
    Ok(0)
}

/// `stop`: SIGTERM, then SIGKILL after `time` seconds.
pub(crate) async fn stop(
    c: &mut Clients,
    time: u64,
    containers: Vec<String>,
) -> anyhow::Result<u8> {
    for id in &containers {
        c.stop(id, time).await?;
        println!("{id}");
    }
    Ok(0)
}

/// `kill`: a signal to each container's init.
pub(crate) async fn kill(
    c: &mut Clients,
    signal: String,
    containers: Vec<String>,
) -> anyhow::Result<u8> {
    let sig = parse_signal(&signal).map_err(|e| failed(125, e))?;
    for id in &containers {
        c.get(id).await?;
        c.kill(id, sig, false)
            .await
            .map_err(|s| status_err(&format!("kill {id}"), s))?;
        println!("{id}");
    }
    Ok(0)
}

/// `rm`: each container, killed first with `-f`.
pub(crate) async fn rm(
    c: &mut Clients,
    force: bool,
    containers: Vec<String>,
) -> anyhow::Result<u8> {
    for id in &containers {
        c.remove(id, force).await?;
        println!("{id}");
    }
    Ok(0)
}
