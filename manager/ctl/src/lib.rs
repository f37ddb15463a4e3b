//! `berthctl`, berthd's command-line client, as docker's CLI: the command
//! line and its dispatch here; image commands in `images`, container
//! commands in `containers`, leases in `leases`. It depends on berthd's API
//! (`berth-proto`) and its rules (`berth-rules`), never on the store.

mod build;
mod containers;
mod context_tar;
mod failure;
mod format;
mod images;
mod leases;
mod login;
mod push;
mod tty;
mod usage;

use std::path::PathBuf;
use std::process::ExitCode;

use berth_proto::images::images_client::ImagesClient;
use clap::{Parser, Subcommand};

/// berthctl's command line.
#[derive(Parser)]
#[command(
    name = "berthctl",
    version,
    about = "Client of the Berth manager daemon"
)]
pub struct Cli {
    /// berthd's socket.
    #[arg(long, global = true, default_value = "/run/berth/berthd.sock")]
    address: PathBuf,
    /// The namespace to work in.
    #[arg(long, short = 'n', global = true, default_value = "default")]
    namespace: String,
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per process: the size of the container variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Pull an image from a registry.
    Pull {
        /// The image (`busybox`, `127.0.0.1:5000/app:v1`, `name@sha256:…`).
        reference: String,
        /// os/arch[/variant] (default: this host's).
        #[arg(long, default_value = "")]
        platform: String,
        /// Do not unpack the layers into snapshots.
        #[arg(long)]
        no_unpack: bool,
    },
    /// Build an image from a Dockerfile, as docker's `build`.
    Build(build::Args),
    /// Push an image to its registry, as docker's `push` (credentials from
    /// `login`).
    Push {
        /// The image (`127.0.0.1:5000/app:v1`; `latest` without a tag).
        reference: String,
        /// os/arch[/variant] pushed when only part of a multi-platform
        /// image is here (default: this host's).
        #[arg(long, default_value = "")]
        platform: String,
        /// Print only the pushed name.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List images, as docker's `images`.
    Images {
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
        /// Image ids only.
        #[arg(short, long)]
        quiet: bool,
        /// Every image (intermediate ones too; berth's builder keeps none).
        #[arg(short, long)]
        all: bool,
        /// Show the manifest digests.
        #[arg(long)]
        digests: bool,
        /// Do not cut ids.
        #[arg(long)]
        no_trunc: bool,
        /// Keep only images matching: `dangling=true|false`,
        /// `reference=PATTERN` (repeatable).
        #[arg(short, long = "filter")]
        filters: Vec<String>,
    },
    /// Remove images (names or ids), as docker's `rmi`.
    Rmi {
        /// Remove even when a container uses it, and every name of an id.
        #[arg(short, long)]
        force: bool,
        /// The images.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Give an image another name.
    Tag {
        /// The image.
        source: String,
        /// The new name.
        target: String,
    },
    /// Import an OCI image layout or `docker save` archive ("-": stdin).
    Import {
        /// The archive.
        file: String,
        /// The name for images the archive names only by tag.
        #[arg(long, default_value = "")]
        base_name: String,
    },
    /// Make a container's changes a new image (with --from: an active
    /// snapshot's changes over that image).
    Commit {
        /// The image the snapshot was prepared from (snapshot form only).
        #[arg(long = "from")]
        base: Option<String>,
        /// The container (or, with --from, the active snapshot).
        snapshot: String,
        /// The new image's name.
        name: String,
        /// A comment for the image's history.
        #[arg(short, long, default_value = "")]
        message: String,
    },
    /// Image housekeeping.
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// The store as a whole.
    System {
        #[command(subcommand)]
        cmd: SystemCmd,
    },
    /// Leases: hold content and snapshots from collection.
    Lease {
        #[command(subcommand)]
        cmd: leases::LeaseCmd,
    },
    #[command(flatten)]
    Container(containers::ContainerCmd),
    /// Log in to a registry: the credentials are checked, then kept in
    /// docker's config.json for berthd's pulls.
    Login {
        /// The user.
        #[arg(short, long)]
        username: Option<String>,
        /// The password (prefer --password-stdin).
        #[arg(short, long)]
        password: Option<String>,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
        /// The registry (default: Docker Hub).
        server: Option<String>,
    },
    /// Log out from a registry: its credentials are removed.
    Logout {
        /// The registry (default: Docker Hub).
        server: Option<String>,
    },
    /// Search a registry for repositories, as docker's `search`
    /// (`[REGISTRY/]TERM`; Docker Hub without a registry).
    Search {
        /// At most this many results (default 25).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Do not cut descriptions.
        #[arg(long)]
        no_trunc: bool,
        /// Keep only results matching: `stars=N` (at least N),
        /// `is-official=true|false` (repeatable).
        #[arg(short, long = "filter")]
        filters: Vec<String>,
        /// List the tags of each repository found (a registry's).
        #[arg(long)]
        list_tags: bool,
        /// The term.
        term: String,
    },
    /// Show an image's history, newest step first, as docker's `history`.
    History {
        /// Show full ids and commands.
        #[arg(long)]
        no_trunc: bool,
        /// Only the ids (`<missing>` for steps that are no image).
        #[arg(short, long)]
        quiet: bool,
        /// The image.
        image: String,
    },
    /// Save images to a tar archive, as docker's `save` (both an OCI image
    /// layout and a `docker save` archive; stdout by default).
    Save {
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<String>,
        /// The images.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Load images from a tar archive (OCI layout or `docker save`), as
    /// docker's `load` (stdin by default).
    Load {
        /// Read from this file instead of stdin.
        #[arg(short, long)]
        input: Option<String>,
        /// Suppress the load output.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Export images as an OCI image layout archive ("-": stdout).
    Export {
        /// The archive to write.
        file: String,
        /// The images.
        #[arg(required = true)]
        names: Vec<String>,
        /// os/arch[/variant] (default: this host's).
        #[arg(long, default_value = "")]
        platform: String,
    },
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Remove dangling images (with --all, every image no container
    /// uses), then unused content and layers.
    Prune {
        /// Every image no container uses.
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum SystemCmd {
    /// Space used by images, containers, volumes and the build cache, as
    /// docker's `system df`.
    Df {
        /// Every image, container and volume.
        #[arg(short, long)]
        verbose: bool,
    },
}

fn request<T>(ns: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Ok(v) = ns.parse() {
        r.metadata_mut().insert(berth_proto::NAMESPACE_HEADER, v);
    }
    r
}

/// Why berthd's socket could not be reached, worded for what the user can
/// do: a socket that is not theirs is not a berthd that is down.
fn connect_error(
    address: &std::path::Path,
    e: &(dyn std::error::Error + 'static),
) -> anyhow::Error {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return anyhow::anyhow!(
                    "permission denied while trying to connect to berthd's socket at {} (it is root's: run berthctl as root)",
                    address.display()
                );
            }
        }
        cause = c.source();
    }
    anyhow::anyhow!(
        "cannot connect to berthd at {}: {e} (is berthd running? start it, or give --address)",
        address.display()
    )
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let ch = berth_proto::connect_unix(&cli.address)
        .await
        .map_err(|e| connect_error(&cli.address, &e))?;
    let ns = cli.namespace.as_str();
    match cli.cmd {
        Cmd::Container(cmd) => containers::run(ch, ns, cmd).await,
        Cmd::Lease { cmd } => leases::run(ch, ns, cmd).await.map(|()| 0),
        Cmd::Login {
            username,
            password,
            password_stdin,
            server,
        } => login::login(
            ImagesClient::new(ch),
            ns,
            server,
            username,
            password,
            password_stdin,
        )
        .await
        .map(|()| 0),
        Cmd::Logout { server } => login::logout(server).map(|()| 0),
        Cmd::Build(a) => build::build(&mut ImagesClient::new(ch), ns, a)
            .await
            .map(|()| 0),
        Cmd::Push {
            reference,
            platform,
            quiet,
        } => push::push(&mut ImagesClient::new(ch), ns, reference, platform, quiet)
            .await
            .map(|()| 0),
        Cmd::Commit {
            base: None,
            snapshot,
            name,
            message,
        } => containers::commit(ch, ns, &snapshot, &name, &message).await,
        cmd => images::run(ImagesClient::new(ch), ns, cmd)
            .await
            .map(|()| 0),
    }
}

/// berthctl's entry point.
pub fn main() -> ExitCode {
    // Usage errors end with 125, as docker's do; help and version with 0.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 125 } else { 0 });
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthctl: start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(run(cli));
    // Stdin readers may still block in a worker thread: do not wait for them.
    rt.shutdown_background();
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("berthctl: {e:#}");
            // berthd or the request failed (125), unless the error says otherwise.
            ExitCode::from(e.downcast_ref::<failure::Failed>().map_or(125, |f| f.code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_socket_is_not_a_stopped_berthd() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let m = connect_error(std::path::Path::new("/run/berth/berthd.sock"), &denied).to_string();
        assert!(
            m.starts_with("permission denied") && !m.contains("is berthd running"),
            "{m}"
        );
        let gone = std::io::Error::from(std::io::ErrorKind::NotFound);
        let m = connect_error(std::path::Path::new("/x.sock"), &gone).to_string();
        assert!(m.contains("is berthd running"), "{m}");
    }

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
