//! `berthd`: the Berth manager daemon. Flags over the config file over defaults.

use std::path::PathBuf;

use clap::Parser;

/// Serves images, snapshots and content over gRPC on a unix socket.
#[derive(Parser)]
#[command(name = "berthd", version)]
struct Args {
    /// Persistent data (default /var/lib/berth).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Runtime state (default /run/berth).
    #[arg(long)]
    state: Option<PathBuf>,
    /// The gRPC socket (default /run/berth/berthd.sock).
    #[arg(long)]
    address: Option<PathBuf>,
    /// A TOML file with root, state and address.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let mut cfg = match &a.config {
        Some(p) => berth_manager::server::Config::load(p)?,
        None => berth_manager::server::Config::default(),
    };
    if let Some(r) = a.root {
        cfg.root = r;
    }
    if let Some(s) = a.state {
        cfg.state = s;
    }
    if let Some(s) = a.address {
        cfg.address = s;
    }
    berth_manager::server::serve(cfg).await?;
    Ok(())
}
