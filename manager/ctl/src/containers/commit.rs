//! `commit CONTAINER IMAGE`: a container's filesystem as a new image.

use berth_proto::containers::{self as pb};
use tonic::transport::Channel;

use super::Clients;
use crate::failure::status_err;

/// `commit CONTAINER IMAGE`.
pub async fn commit(
    ch: Channel,
    ns: &str,
    container: &str,
    image: &str,
    message: &str,
) -> anyhow::Result<u8> {
    let mut c = Clients::new(ch, ns);
    let r = c.req(pb::CommitRequest {
        container_id: container.into(),
        image: image.into(),
        comment: message.into(),
    });
    let out = c
        .tasks
        .commit(r)
        .await
        .map_err(|s| status_err(&format!("commit {container}"), s))?
        .into_inner();
    println!("{}", out.digest);
    Ok(0)
}
