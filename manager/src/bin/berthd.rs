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
    /// The cgroup containers' cgroups go under (default /berth).
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// cgroupfs (berth's cgroup directories, the default) or systemd (each
    /// container a transient systemd scope, as kubelet's systemd driver
    /// expects).
    #[arg(long)]
    cgroup_driver: Option<String>,
    /// The runtime binary containers use by default (default: berth beside berthd).
    #[arg(long)]
    runtime: Option<PathBuf>,
    /// The berth-shim binary (default: beside berthd, else on PATH).
    #[arg(long)]
    shim: Option<PathBuf>,
    /// Where CNI network configuration lists are (default /etc/berth/net.d).
    #[arg(long)]
    cni_conf_dir: Option<PathBuf>,
    /// Where CNI plugins are, colon-separated (default /usr/lib/cni:/opt/cni/bin).
    #[arg(long)]
    cni_bin_dir: Option<String>,
    /// A registry to pull from over plain HTTP (host, host:port or an
    /// address range such as 10.0.0.0/8); loopback ones always are. Repeatable.
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    insecure_registries: Vec<String>,
    /// A mirror of docker.io, tried before it (repeatable, in order; as
    /// dockerd's --registry-mirror). Other registries' mirrors are set in the
    /// TOML file's [registries."HOST"] tables.
    #[arg(long = "registry-mirror", value_name = "URL")]
    registry_mirrors: Vec<String>,
    /// The Kubernetes CRI socket (default /run/berth/cri.sock; "" disables it).
    #[arg(long)]
    cri_address: Option<PathBuf>,
    /// Where the CNI configuration lists for CRI pods are (default /etc/cni/net.d).
    #[arg(long)]
    cri_cni_conf_dir: Option<PathBuf>,
    /// The CRI streaming server's HOST:PORT for exec, attach and port-forward
    /// URLs (default 127.0.0.1:0, any free loopback port; "" disables it).
    #[arg(long)]
    stream_address: Option<String>,
    /// A CRI runtime handler: NAME=PATH of an OCI runtime with runc's command
    /// line (repeatable; kubelet's RuntimeClass handler NAME runs it).
    #[arg(long = "runtime-handler", value_name = "NAME=PATH")]
    runtime_handlers: Vec<String>,
    /// A TOML file with root, state, address, shim, runtime, cgroup_parent, cgroup_driver,
    /// cni_conf_dir, cni_bin_dirs, insecure_registries, registry_mirrors,
    /// [registries."HOST"] mirrors, cri_address, cri_cni_conf_dir,
    /// stream_address, [runtime_handlers] NAME = PATH.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    berth_manager::tune_process();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    // Colours only on a terminal: a log file stays plain text.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    if let Some(c) = a.cgroup_parent {
        cfg.cgroup_parent = c;
    }
    if let Some(d) = a.cgroup_driver {
        cfg.cgroup_driver = d;
    }
    if let Some(s) = a.shim {
        cfg.shim = Some(s);
    }
    if let Some(r) = a.runtime {
        cfg.runtime = Some(r);
    }
    if let Some(d) = a.cni_conf_dir {
        cfg.cni_conf_dir = d;
    }
    if let Some(d) = a.cni_bin_dir {
        cfg.cni_bin_dirs = std::env::split_paths(&d).collect();
    }
    if let Some(c) = a.cri_address {
        cfg.cri_address = c;
    }
    if let Some(d) = a.cri_cni_conf_dir {
        cfg.cri_cni_conf_dir = d;
    }
    if let Some(s) = a.stream_address {
        cfg.stream_address = s;
    }
    for h in a.runtime_handlers {
        let (name, path) = h
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--runtime-handler {h:?}: not NAME=PATH"))?;
        cfg.runtime_handlers.insert(name.into(), path.into());
    }
    cfg.insecure_registries.extend(a.insecure_registries);
    cfg.registry_mirrors.extend(a.registry_mirrors);
    berth_manager::server::serve(cfg).await?;
    Ok(())
}
