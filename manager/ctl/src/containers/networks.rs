//! `network create|ls|inspect|rm`.

use berth_proto::containers::networks_client::NetworksClient;
use berth_proto::containers::{self as pb};

use super::args::NetworkCmd;
use super::show::network_json;
use super::Clients;
use crate::failure::{failed, status_err};
use crate::format::print_rows;

pub(crate) async fn network(c: Clients, cmd: NetworkCmd) -> anyhow::Result<u8> {
    let mut n = NetworksClient::new(c.ch.clone());
    match cmd {
        NetworkCmd::Create {
            name,
            subnet,
            gateway,
            driver,
        } => {
            if driver != "bridge" {
                return Err(failed(
                    125,
                    format!("network driver {driver:?}: only bridge (write a CNI conflist into berthd's conf dir for others)"),
                ));
            }
            let r = c.req(pb::CreateNetworkRequest {
                name,
                subnet: subnet.unwrap_or_default(),
                gateway: gateway.unwrap_or_default(),
            });
            let net = n
                .create(r)
                .await
                .map_err(|s| status_err("network create", s))?
                .into_inner();
            println!("{}", net.name);
        }
        NetworkCmd::Ls { quiet } => {
            let list = n
                .list(c.req(pb::Empty {}))
                .await
                .map_err(|s| status_err("network ls", s))?
                .into_inner()
                .networks;
            // none and host are modes, listed as docker lists them.
            let mut rows: Vec<Vec<String>> = list
                .iter()
                .map(|x| vec![x.name.clone(), x.driver.clone(), x.subnets.join(",")])
                .collect();
            rows.push(vec!["host".into(), "host".into(), String::new()]);
            rows.push(vec!["none".into(), "null".into(), String::new()]);
            if quiet {
                for r in &rows {
                    println!("{}", r[0]);
                }
            } else {
                print_rows(&["NAME", "DRIVER", "SUBNET"], &rows);
            }
        }
        NetworkCmd::Rm { names } => {
            for name in names {
                let r = c.req(pb::NetworkRef { name: name.clone() });
                n.remove(r)
                    .await
                    .map_err(|s| status_err(&format!("network rm {name}"), s))?;
                println!("{name}");
            }
        }
        NetworkCmd::Inspect { names } => {
            let mut out = Vec::new();
            for name in names {
                let r = c.req(pb::NetworkRef { name: name.clone() });
                let net = n
                    .get(r)
                    .await
                    .map_err(|s| status_err(&format!("network inspect {name}"), s))?
                    .into_inner();
                out.push(network_json(&net));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(0)
}
