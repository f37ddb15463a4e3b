//! `build`: an image from a Dockerfile and a context, as docker builds it.
//! The Dockerfile is read (`dockerfile`), its variables expanded
//! (`expand`); config-only instructions change the image config
//! (`config`); COPY and ADD read the context or another stage through
//! fd-resolved paths (`sources`, `context`) and write into a mounted
//! snapshot (`fs`); RUN runs a container through berthd's own shim and
//! runtime path (`run`). Each step is one image, cached by what made it
//! (`store::build_cache`); `stage` drives the stages and steps.

pub mod config;
pub mod context;
mod copy;
pub mod dockerfile;
pub mod expand;
mod fs;
mod run;
pub mod sources;
mod stage;
mod state;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

pub use stage::Builder;

use crate::containers::tasks::TaskError;
use crate::store::images::ImageError;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile cannot be read.
    #[error(transparent)]
    Parse(#[from] dockerfile::ParseError),
    /// A step cannot be done as written.
    #[error("dockerfile line {line}: {instruction}: {why}")]
    Step {
        /// Its line.
        line: usize,
        /// The instruction as written.
        instruction: String,
        /// What is wrong.
        why: String,
    },
    /// RUN's command failed.
    #[error("dockerfile line {line}: the command '{command}' returned a non-zero code: {code}")]
    RunFailed {
        /// Its line.
        line: usize,
        /// The command as run.
        command: String,
        /// Its exit status.
        code: u32,
    },
    /// The request is unusable.
    #[error("{0}")]
    Invalid(String),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A container step failed.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// A file step failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The object.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.into();
    move |source| BuildError::Io { what, path, source }
}

/// What to build.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The context, unpacked, `.dockerignore` applied.
    pub context: PathBuf,
    /// Names to tag the result with (normalized).
    pub tags: Vec<String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The stage to stop at (empty: the last).
    pub target: String,
    /// Ignore the cache.
    pub no_cache: bool,
    /// Pull every FROM image, even when present.
    pub pull: bool,
    /// RUN's network: none, host, or a network's name (bridge).
    pub network: String,
    /// Labels set on the result.
    pub labels: BTreeMap<String, String>,
}

/// What a build reports.
#[derive(Debug)]
pub enum Event {
    /// A line of output (a step, its command's output, its result).
    Line(String),
    /// The image is built: its id (config digest) and manifest.
    Done {
        /// The image id (`sha256:` of its config).
        id: String,
        /// The manifest's digest.
        manifest: String,
    },
}

/// Where events go.
pub type Events = mpsc::Sender<Result<Event, BuildError>>;

/// The short form of an image id, as docker prints it.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..12.min(hex.len())]
}

/// Starts a build; its events arrive on the returned channel, the last
/// being `Done` or an error.
pub fn start(
    builder: Arc<Builder>,
    ns: String,
    req: Request,
) -> mpsc::Receiver<Result<Event, BuildError>> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let r = builder.build(&ns, req, &tx).await;
        if let Err(e) = r {
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}
