//! `volume create|ls|rm`.

use berth_proto::containers::volumes_client::VolumesClient;
use berth_proto::containers::{self as pb};

use super::args::VolumeCmd;
use super::Clients;
use crate::failure::status_err;
use crate::format::print_rows;

/// Runs a `volume` subcommand.
pub(crate) async fn run(c: &mut Clients, cmd: VolumeCmd) -> anyhow::Result<u8> {
    let mut v = VolumesClient::new(c.ch.clone());
    match cmd {
        VolumeCmd::Create { name } => {
            let r = c.req(pb::VolumeRef { name });
            let vol = v
                .create(r)
                .await
                .map_err(|s| status_err("volume create", s))?
                .into_inner();
            println!("{}", vol.name);
        }
        VolumeCmd::Ls { quiet } => {
            let r = c.req(pb::Empty {});
            let list = v
                .list(r)
                .await
                .map_err(|s| status_err("volume ls", s))?
                .into_inner()
                .volumes;
            if quiet {
                for x in &list {
                    println!("{}", x.name);
                }
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|x| vec![x.name.clone(), x.mountpoint.clone()])
                    .collect();
                print_rows(&["VOLUME NAME", "MOUNTPOINT"], &rows);
            }
        }
        VolumeCmd::Rm { names } => {
            for name in names {
                let r = c.req(pb::VolumeRef { name: name.clone() });
                v.remove(r)
                    .await
                    .map_err(|s| status_err(&format!("volume rm {name}"), s))?;
                println!("{name}");
            }
        }
    }
    Ok(0)
}
