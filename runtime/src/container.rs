//! The container lifecycle as the runtime spec and runc define it: create,
//! start, run, state, kill, delete, list.

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::cgroups::{self, Layout};
use crate::namespaces::{self, Plan};
use crate::state::{self, Dir, Saved, Status};
use crate::{foreground, hooks, init, notify, process, rootfs, sync, syscall, terminal};

/// Errors of lifecycle commands, as `berth` prints them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] state::Error),
    #[error(transparent)]
    Namespace(#[from] namespaces::Error),
    #[error(transparent)]
    Cgroup(#[from] cgroups::Error),
    #[error(transparent)]
    Process(#[from] process::Error),
    #[error(transparent)]
    Rootfs(#[from] rootfs::Error),
    #[error(transparent)]
    Hook(#[from] hooks::Error),
    #[error(transparent)]
    Sync(#[from] sync::Error),
    #[error(transparent)]
    Terminal(#[from] terminal::Error),
    #[error(transparent)]
    Foreground(#[from] foreground::Error),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::Error),
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error("{0}")]
    Config(String),
    #[error("container not running")]
    NotRunning,
    /// The reason says what was seen of the container process.
    #[error("cannot start a container that has stopped: {0}")]
    StartStopped(String),
    #[error("cannot start an already running container")]
    StartRunning,
    #[error("cannot delete container {0} that is not stopped: {1}")]
    DeleteNotStopped(String, &'static str),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |err| Error::Io { what, err }
}

/// Options of `create` and `run`.
#[derive(Debug, Default, Clone)]
pub struct CreateOpts {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// Keep the caller's session keyring instead of a new one named
    /// `_ses.<id>` (runc's `--no-new-keyring`).
    pub no_new_keyring: bool,
    /// Socket-activation fds (LISTEN_FDS) handed to us: passed as fds 3..,
    /// before the preserved ones, with LISTEN_FDS/LISTEN_PID set for the
    /// container process.
    pub listen_fds: u32,
    /// The caller's NOTIFY_SOCKET: the container gets a socket of its own
    /// whose READY=1 is relayed there.
    pub notify_socket: Option<String>,
    /// True for `create` and `run -d`: the container process becomes a child
    /// of our caller (CLONE_PARENT), so a subreaper caller such as a shim
    /// reaps it, and nothing of `berth` stays behind.
    pub detach: bool,
}

/// A loaded and validated bundle.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
    pub plan: Plan,
    /// Mounts with `uidMappings`/`gidMappings` (runtime-spec 1.1, which
    /// oci-spec 0.8 does not parse).
    pub idmaps: Vec<MountIdmap>,
}

/// An idmapped mount: (index in mounts, uid maps, gid maps).
pub type MountIdmap = (usize, Vec<LinuxIdMapping>, Vec<LinuxIdMapping>);

/// Reads the per-mount id mappings from the raw config, refusing what
/// cannot be idmapped.
fn mount_idmaps(raw: &serde_json::Value, spec: &Spec) -> Result<Vec<MountIdmap>, Error> {
    let mut out = Vec::new();
    let mounts = spec.mounts().clone().unwrap_or_default();
    for (i, m) in raw["mounts"].as_array().into_iter().flatten().enumerate() {
        let (u, g) = (&m["uidMappings"], &m["gidMappings"]);
        if u.is_null() && g.is_null() {
            continue;
        }
        let parse = |v: &serde_json::Value, what: &str| -> Result<Vec<LinuxIdMapping>, Error> {
            serde_json::from_value(v.clone())
                .map_err(|e| Error::Config(format!("mounts[{i}].{what}: {e}")))
        };
        let (u, g) = (parse(u, "uidMappings")?, parse(g, "gidMappings")?);
        if u.is_empty() || g.is_empty() {
            return Err(Error::Config(format!(
                "mounts[{i}]: an idmapped mount needs both uidMappings and gidMappings"
            )));
        }
        let opts = mounts
            .get(i)
            .map(|m| rootfs::parse_options(m.options().as_deref().unwrap_or(&[])))
            .transpose()?;
        if !opts.is_some_and(|o| o.is_bind()) {
            return Err(Error::Config(format!(
                "mounts[{i}]: only bind mounts can be idmapped here"
            )));
        }
        out.push((i, u, g));
    }
    Ok(out)
}

/// Loads `config.json` from the bundle and validates it: every refusal names
/// the field and happens before anything is created.
pub fn load_bundle(bundle: &Path) -> Result<Bundle, Error> {
    let dir = fs::canonicalize(bundle).map_err(io_err(format!("bundle {}", bundle.display())))?;
    let cfg = dir.join("config.json");
    let data = fs::read(&cfg).map_err(io_err(format!("read {}", cfg.display())))?;
    let spec: Spec = serde_json::from_slice(&data)
        .map_err(|e| Error::Config(format!("parse {}: {e}", cfg.display())))?;
    // The raw JSON only for what oci-spec drops: skip the second parse on
    // the common path, where no mapping is named at all.
    let idmaps = if data
        .windows(11)
        .any(|w| w == b"uidMappings" || w == b"gidMappings")
    {
        let raw: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| Error::Config(format!("parse {}: {e}", cfg.display())))?;
        mount_idmaps(&raw, &spec)?
    } else {
        Vec::new()
    };
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Config("root: missing from config.json".into()))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs =
        fs::canonicalize(&rootfs).map_err(io_err(format!("root.path {}", rootfs.display())))?;
    if !rootfs.is_dir() {
        return Err(Error::Config(format!(
            "root.path {}: not a directory",
            rootfs.display()
        )));
    }
    let p = spec.process().as_ref().ok_or_else(|| {
        Error::Config("process: missing from config.json (needed to create a container)".into())
    })?;
    process::validate(p)?;
    let plan = namespaces::plan(&spec)?;
    if !plan.has(LinuxNamespaceType::Mount) {
        return Err(Error::Config(
            "linux.namespaces: a mount namespace is required".into(),
        ));
    }
    if let Some(linux) = spec.linux() {
        for k in linux.sysctl().iter().flat_map(|s| s.keys()) {
            rootfs::validate_sysctl(
                k,
                plan.has(LinuxNamespaceType::Network),
                plan.has(LinuxNamespaceType::Ipc),
                plan.has(LinuxNamespaceType::Uts),
            )?;
        }
        if let Some(p) = linux
            .rootfs_propagation()
            .as_deref()
            .filter(|p| !p.is_empty())
        {
            rootfs::propagation_flag(p)?;
        }
        if let Some(s) = linux.seccomp() {
            crate::seccomp::validate(s)?;
        }
        if linux.intel_rdt().is_some() {
            return Err(Error::Config("linux.intelRdt: not supported".into()));
        }
        for m in spec.mounts().iter().flatten() {
            rootfs::parse_options(m.options().as_deref().unwrap_or(&[]))?;
            if !m.destination().is_absolute() {
                return Err(Error::Config(format!(
                    "mounts: destination {} is not absolute",
                    m.destination().display()
                )));
            }
        }
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !plan.creates(LinuxNamespaceType::Uts)
    {
        return Err(Error::Config(
            "hostname: setting it needs a new uts namespace".into(),
        ));
    }
    if let Some(h) = spec.hooks() {
        hooks::validate("prestart", &hooks::from_spec(h.prestart()))?;
        hooks::validate("createRuntime", &hooks::from_spec(h.create_runtime()))?;
        hooks::validate("createContainer", &hooks::from_spec(h.create_container()))?;
        hooks::validate("startContainer", &hooks::from_spec(h.start_container()))?;
        hooks::validate("poststart", &hooks::from_spec(h.poststart()))?;
        hooks::validate("poststop", &hooks::from_spec(h.poststop()))?;
    }
    Ok(Bundle {
        dir,
        spec,
        rootfs,
        plan,
        idmaps,
    })
}

/// Partial state to undo if `create` fails, so a failure leaves nothing.
struct Undo {
    pidfd: Option<OwnedFd>,
    our_child: bool,
    cgroups: Vec<PathBuf>,
    /// A pid file written before the create failed.
    pid_file: Option<PathBuf>,
}

impl Undo {
    fn run(&mut self) {
        if let Some(fd) = self.pidfd.take() {
            let _ = syscall::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            if self.our_child {
                let _ = syscall::wait_pidfd(fd.as_fd(), false);
            } else {
                wait_gone(&fd, 5000);
            }
        }
        let _ = cgroups::remove_dirs(&self.cgroups, &self.cgroups);
        if let Some(p) = self.pid_file.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Waits until the process behind a pidfd has exited (or `ms` passed).
fn wait_gone(pidfd: &OwnedFd, ms: i32) -> bool {
    let mut fds = [nix::poll::PollFd::new(
        pidfd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX)), Ok(n) if n > 0)
}

/// The result of a successful create.
pub struct Created {
    pub dir: Dir,
    pub saved: Saved,
    pub pidfd: OwnedFd,
    /// For a foreground `run`, our end of the console socket: the pty master
    /// is waiting on it.
    pub console: Option<OwnedFd>,
    /// For `run`, the exec fifo's read end, opened before the container
    /// process was set up: it does not wait for `start` to open it.
    pub released: Option<OwnedFd>,
}

/// `create`: builds the container process, blocked before exec, and returns
/// once it is fully set up.
pub fn create(o: &CreateOpts) -> Result<Created, Error> {
    create_inner(o, false, false)
}

/// `own_console`: a foreground `run` without `--console-socket`, where berth
/// receives the pty master itself to proxy it to its own stdio. `release`: a
/// `run` whose container starts as soon as it is set up (see
/// [`Created::released`]).
fn create_inner(o: &CreateOpts, own_console: bool, release: bool) -> Result<Created, Error> {
    let mut b = load_bundle(&o.bundle)?;
    let terminal = b
        .spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal().unwrap_or(false));
    if terminal && o.console_socket.is_none() && !own_console {
        return Err(Error::Config(
            "process.terminal is true but no --console-socket was given: a detached container's terminal must go somewhere (cannot allocate tty if berth will detach without setting console socket)".into(),
        ));
    }
    if !terminal && o.console_socket.is_some() {
        return Err(Error::Config(
            "--console-socket given but process.terminal is false".into(),
        ));
    }
    // Compiled (or taken from the cache) before anything exists.
    let filter = b
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| crate::seccomp::load_or_compile(&o.root, s))
        .transpose()?;
    let dir = Dir::create(&o.root, &o.id)?;
    let mut undo = Undo {
        pidfd: None,
        our_child: !o.detach,
        cgroups: Vec::new(),
        pid_file: None,
    };
    let r = (|| {
        fs::write(dir.path.join(state::CREATING_FILE), b"")
            .map_err(io_err("mark container as creating"))?;
        if let Some(host) = &o.notify_socket {
            notify::add_to_spec(&mut b.spec, &dir.path)
                .map_err(|x| Error::Config(format!("NOTIFY_SOCKET {host}: {x}")))?;
        }
        if o.listen_fds > 0 {
            if let Some(p) = b.spec.process_mut() {
                let mut env = p.env().clone().unwrap_or_default();
                env.retain(|v| !v.starts_with("LISTEN_FDS=") && !v.starts_with("LISTEN_PID="));
                env.push(format!("LISTEN_FDS={}", o.listen_fds));
                env.push("LISTEN_PID=1".into());
                p.set_env(Some(env));
            }
        }
        let (console, ours) = terminal::endpoints(o.console_socket.as_deref(), terminal)?;
        let (saved, pidfd, released) =
            // A terminal's master is received after `create`: not released.
            create_in(o, &b, &dir, &mut undo, console, filter.as_ref(), release && !terminal)?;
        Ok((saved, pidfd, ours, released))
    })();
    match r {
        Ok((saved, pidfd, console, released)) => Ok(Created {
            dir,
            saved,
            pidfd,
            console,
            released,
        }),
        Err(e) => {
            undo.run();
            let _ = dir.remove();
            Err(e)
        }
    }
}

fn create_in(
    o: &CreateOpts,
    b: &Bundle,
    dir: &Dir,
    undo: &mut Undo,
    console: Option<OwnedFd>,
    filter: Option<&crate::seccomp::Filter>,
    release: bool,
) -> Result<(Saved, OwnedFd, Option<OwnedFd>), Error> {
    let spec = &b.spec;
    let linux = spec.linux().clone().unwrap_or_default();
    let layout = Layout::detect()?;
    let mut cgroup_dirs = layout.container_dirs(
        linux.cgroups_path().as_ref().and_then(|p| p.to_str()),
        &o.id,
    )?;
    match cgroups::create_dirs(&cgroup_dirs) {
        Ok(created) => undo.cgroups = created,
        // An ordinary user without a delegated cgroup: the container runs
        // in ours when it asks for no limits, as rootless runc does.
        Err(cgroups::Error::Io { err, path, .. })
            if err.kind() == io::ErrorKind::PermissionDenied
                && !nix::unistd::geteuid().is_root() =>
        {
            if cgroups::limits_requested(linux.resources().as_ref()) {
                return Err(Error::Config(format!(
                    "linux.resources: cannot create the container's cgroup {} as an unprivileged user (no delegated cgroup); remove the limits or delegate a cgroup",
                    path.display()
                )));
            }
            crate::debug!(
                "rootless: no writable cgroup at {}, running without one",
                path.display()
            );
            cgroup_dirs.clear();
        }
        Err(e) => return Err(e.into()),
    }
    cgroups::apply(
        &layout,
        &cgroup_dirs,
        linux.resources().as_ref(),
        linux.devices().as_deref().unwrap_or(&[]),
    )?;

    let fifo = dir.fifo();
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622))
        .map_err(|e| io_err(format!("mkfifo {}", fifo.display()))(e.into()))?;
    // The container process opens it for writing after it changed user: give
    // it to the container's root and undo the umask.
    let root_host = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        m.iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
    };
    std::os::unix::fs::chown(
        &fifo,
        root_host(linux.uid_mappings()),
        root_host(linux.gid_mappings()),
    )
    .map_err(io_err(format!("chown {}", fifo.display())))?;
    fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .map_err(io_err(format!("chmod {}", fifo.display())))?;
    let fifo_fd = nix::fcntl::open(&fifo, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| io_err(format!("open {}", fifo.display()))(e.into()))?;
    let (parent_sock, child_sock) = sync::pair()?;

    let hooks_cfg = spec.hooks().clone().unwrap_or_default();
    let prestart = hooks::from_spec(hooks_cfg.prestart());
    let create_runtime = hooks::from_spec(hooks_cfg.create_runtime());
    let create_container = hooks::from_spec(hooks_cfg.create_container());
    let start_container = hooks::from_spec(hooks_cfg.start_container());

    for (t, path) in &b.plan.join_before_clone {
        namespaces::join(*t, path)?;
    }
    if b.plan.new_time {
        nix::sched::unshare(namespaces::flag(LinuxNamespaceType::Time))
            .map_err(|e| io_err("unshare time namespace")(e.into()))?;
        namespaces::write_time_offsets(spec)?;
    }
    // Idmapped bind mounts are made here, with the host's privileges, and
    // attached by the container process.
    let mounts = spec.mounts().clone().unwrap_or_default();
    let mut idmapped = Vec::new();
    for (i, uid, gid) in &b.idmaps {
        let m = &mounts[*i];
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_absolute() {
            src
        } else {
            b.dir.join(src)
        };
        let recursive = rootfs::parse_options(m.options().as_deref().unwrap_or(&[]))?
            .flags
            .contains(nix::mount::MsFlags::MS_REC);
        idmapped.push((*i, rootfs::idmap_tree(&src, recursive, uid, gid)?));
    }
    // Not dumpable from here on: processes in the container cannot open the
    // /proc entries of the container process while it runs Berth code.
    // An unprivileged caller writes the child's id maps through /proc, which
    // a non-dumpable child's files refuse: the child turns itself
    // non-dumpable after GO instead.
    let rootless = !nix::unistd::geteuid().is_root();
    if !rootless {
        process::set_not_dumpable()?;
    }

    let mut flags = b.plan.clone.bits();
    if o.detach {
        flags |= libc::CLONE_PARENT;
    }
    // Namespaces the clone creates must be owned by the user namespace the
    // container joins by path: a helper joins it first and clones from there.
    let user_path = b
        .plan
        .join
        .iter()
        .find(|(t, _)| *t == LinuxNamespaceType::User)
        .map(|(_, p)| p.clone())
        .filter(|_| !b.plan.clone.is_empty());
    // On cgroup v2 the process is born in its cgroup (CLONE_INTO_CGROUP).
    let v2_dir = cgroup_dirs
        .first()
        .filter(|_| layout.is_pure_v2() && user_path.is_none())
        .and_then(|d| {
            nix::fcntl::open(
                d,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ok()
        });
    let mut born_in_cgroup = false;
    // On v1 the process moves itself, without the lock a pid write takes.
    let self_join = match v2_dir {
        Some(_) => None,
        None => cgroups::SelfJoin::open(&layout, &cgroup_dirs),
    };
    let pid = match (&user_path, &v2_dir) {
        (Some(path), _) => clone_in_userns(flags, path, o.detach)?,
        (None, Some(dir)) => match syscall::clone_into_cgroup(flags as u32 as u64, dir.as_fd()) {
            Ok(pid) => {
                born_in_cgroup = true;
                pid
            }
            // Kernels before 5.7: clone, then move it.
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                syscall::clone_fork(flags).map_err(io_err("clone container process"))?
            }
            Err(e) => return Err(io_err("clone3 container process into its cgroup")(e)),
        },
        (None, None) => syscall::clone_fork(flags).map_err(io_err("clone container process"))?,
    };
    if pid == 0 {
        drop(parent_sock);
        init::run(init::Args {
            spec,
            plan: &b.plan,
            id: &o.id,
            bundle: &b.dir,
            rootfs: &b.rootfs,
            layout: &layout,
            cgroup_dirs: &cgroup_dirs,
            cgroup_join: self_join.as_ref(),
            fifo: &fifo_fd,
            sync: child_sock,
            console,
            no_pivot: o.no_pivot,
            new_keyring: !o.no_new_keyring,
            user_joined: user_path.is_some(),
            idmapped: &idmapped,
            preserve_fds: o.listen_fds + o.preserve_fds,
            create_container_hooks: &create_container,
            start_container_hooks: &start_container,
            has_runtime_hooks: !prestart.is_empty() || !create_runtime.is_empty(),
            seccomp: filter,
        });
    }
    drop(child_sock);
    drop(console);
    let pidfd = syscall::pidfd_open(pid).map_err(io_err(format!("pidfd_open {pid}")))?;
    undo.pidfd = Some(pidfd.try_clone().map_err(io_err("dup pidfd"))?);

    if b.plan.creates(LinuxNamespaceType::User) {
        let uid = linux.uid_mappings().clone().unwrap_or_default();
        let gid = linux.gid_mappings().clone().unwrap_or_default();
        // Unprivileged: gid_map needs setgroups denied first.
        namespaces::write_id_maps(pid, &uid, &gid, rootless)?;
    }
    if !born_in_cgroup && self_join.is_none() {
        cgroups::add_pid(&cgroup_dirs, pid)?;
    }
    drop(self_join);
    if let Some(p) = spec.process() {
        process::set_rlimits(pid, p)?;
    }
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        set_oom_score_adj(pid, adj)?;
    }

    let (_, start_time) = state::proc_stat(pid).ok_or(Error::Sync(sync::Error::Closed))?;
    let saved = Saved {
        id: o.id.clone(),
        pid,
        start_time,
        bundle: b.dir.clone(),
        rootfs: b.rootfs.clone(),
        created: berth_rules::time::now_rfc3339_nano(),
        owner: owner_name(&dir.path),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        poststart: hooks::from_spec(hooks_cfg.poststart()),
        poststop: hooks::from_spec(hooks_cfg.poststop()),
        cgroup_paths: cgroup_dirs.clone(),
        cgroup_owned: undo.cgroups.clone(),
        shared_pidns: !b.plan.creates(LinuxNamespaceType::Pid),
        started: false,
    };

    // GO carries the hook states the container process needs (as the host
    // sees it: the host pid), one JSON document per line.
    let states = format!(
        "{}\n{}",
        state::hook_state(&saved, Status::Creating),
        state::hook_state(&saved, Status::Created)
    );
    // Opened before GO, so the container process finds a reader when it
    // gets there. Not with a notify relay, which `run` binds after `create`.
    let released = if release && o.notify_socket.is_none() {
        Some(
            nix::fcntl::open(
                &fifo,
                OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err(format!("open {}", fifo.display()))(e.into()))?,
        )
    } else {
        None
    };
    sync::send(&parent_sock, sync::GO, &states)?;
    // Written while the container process sets itself up: nothing can read
    // them before we return, as other commands wait for the directory lock,
    // and nothing can fail after READY, when a released process may run.
    dir.save(&saved)?;
    if let Some(p) = &o.pid_file {
        write_pid_file(p, pid)?;
        undo.pid_file = Some(p.clone());
    }
    loop {
        let (tag, _, attached) = sync::recv_with_fd(&parent_sock).map_err(|e| match e {
            sync::Error::Closed => {
                let status = if o.detach {
                    None
                } else {
                    syscall::wait_pidfd(pidfd.as_fd(), false).ok().flatten()
                };
                Error::Config(format!(
                    "container process exited during setup{}",
                    status
                        .map(|s| format!(" with status {s}"))
                        .unwrap_or_default()
                ))
            }
            e => Error::Sync(e),
        })?;
        match tag {
            sync::HOOKS => {
                let st = state::hook_state(&saved, Status::Creating);
                hooks::run_all("prestart", &prestart, &st)?;
                hooks::run_all("createRuntime", &create_runtime, &st)?;
                sync::send(&parent_sock, sync::HOOKS_DONE, "")?;
            }
            sync::SECCOMP => {
                let (Some(fd), Some(profile)) = (attached, linux.seccomp()) else {
                    return Err(Error::Sync(sync::Error::Unexpected(tag as char)));
                };
                let st = state::oci_state(&saved, Status::Creating);
                crate::seccomp::send_to_listener(profile, pid, st, &fd)?;
                sync::send(&parent_sock, sync::SECCOMP_DONE, "")?;
            }
            sync::READY => break,
            other => return Err(Error::Sync(sync::Error::Unexpected(other as char))),
        }
    }
    drop(parent_sock);
    Ok((saved, pidfd, released))
}

/// Clones the container process from inside the user namespace at `userns`
/// through a short-lived helper, so that the new namespaces belong to it.
/// Returns 0 in the container process and its pid in the caller; the
/// container process is our child (or, with `detach`, our caller's).
fn clone_in_userns(flags: i32, userns: &Path, detach: bool) -> Result<i32, Error> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io_err("pipe")(e.into()))?;
    let helper = syscall::clone_fork(if detach { libc::CLONE_PARENT } else { 0 })
        .map_err(io_err("clone user namespace helper"))?;
    if helper == 0 {
        drop(r);
        let res = namespaces::join(LinuxNamespaceType::User, &userns.to_path_buf())
            .map_err(|e| e.to_string())
            .and_then(|()| {
                // CLONE_PARENT: the container process is a sibling of this
                // helper, so it has the helper's parent.
                syscall::clone_fork(flags | libc::CLONE_PARENT).map_err(|e| e.to_string())
            });
        match res {
            Ok(0) => return Ok(0),
            Ok(pid) => {
                let _ = nix::unistd::write(&w, &pid.to_le_bytes());
                syscall::exit_now(0)
            }
            Err(msg) => {
                let _ = nix::unistd::write(&w, msg.as_bytes());
                syscall::exit_now(1)
            }
        }
    }
    drop(w);
    let mut buf = [0u8; 512];
    let n = loop {
        match nix::unistd::read(&r, &mut buf) {
            Err(nix::Error::EINTR) => continue,
            other => {
                break other.map_err(|e| io_err("read from user namespace helper")(e.into()))?
            }
        }
    };
    if !detach {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(helper), None);
    }
    match n {
        4 => Ok(i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])),
        _ => Err(Error::Config(format!(
            "join user namespace {}: {}",
            userns.display(),
            String::from_utf8_lossy(&buf[..n])
        ))),
    }
}

/// Writes `adj` to /proc/<pid>/oom_score_adj, checking that /proc is procfs.
pub fn set_oom_score_adj(pid: i32, adj: i32) -> Result<(), Error> {
    let proc_dir = nix::fcntl::open(
        format!("/proc/{pid}").as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(format!("open /proc/{pid}"))(e.into()))?;
    rootfs::ensure_procfs(&proc_dir, "/proc")?;
    let f = nix::fcntl::openat(
        &proc_dir,
        "oom_score_adj",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open oom_score_adj")(e.into()))?;
    nix::unistd::write(&f, adj.to_string().as_bytes())
        .map_err(|e| io_err(format!("set process.oomScoreAdj {adj}"))(e.into()))?;
    Ok(())
}

/// Writes the pid file atomically (temp file then rename), as runc does.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), Error> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let tmp = abs.with_file_name(format!(
        ".{}.tmp",
        abs.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(io_err(format!("write pid file {}", abs.display())))?;
    f.write_all(pid.to_string().as_bytes())
        .map_err(io_err(format!("write pid file {}", abs.display())))?;
    fs::rename(&tmp, &abs).map_err(io_err(format!("write pid file {}", abs.display())))
}

fn owner_name(path: &Path) -> String {
    let uid = fs::metadata(path).map(|m| m.uid()).unwrap_or(0);
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

/// `start`: releases a created container to exec its process, then runs the
/// poststart hooks. With `notify_socket` (the caller's NOTIFY_SOCKET) and a
/// container created with one, it returns once the container reported ready
/// (or exited), as runc does.
pub fn start(root: &Path, id: &str, notify_socket: Option<&str>) -> Result<(), Error> {
    let dir = Dir::open(root, id)?;
    let mut saved = dir.load()?;
    let mut relay = bind_relay(&dir, &saved, notify_socket)?;
    start_loaded(&dir, &mut saved, false, None)?;
    drop(dir);
    if let Some(r) = &mut relay {
        wait_ready(r, &saved);
    }
    Ok(())
}

/// Binds the container's notify socket when the caller has NOTIFY_SOCKET set
/// and the container was created with one.
fn bind_relay(
    dir: &Dir,
    saved: &Saved,
    notify_socket: Option<&str>,
) -> Result<Option<notify::Relay>, Error> {
    match notify_socket {
        Some(host) if dir.path.join(notify::DIR).is_dir() => Ok(Some(
            notify::Relay::bind(&dir.path, host, saved.pid)
                .map_err(|x| Error::Config(x.to_string()))?,
        )),
        _ => Ok(None),
    }
}

fn wait_ready(relay: &mut notify::Relay, saved: &Saved) {
    if let Ok(pidfd) = syscall::pidfd_open(saved.pid) {
        if state::init_alive(saved) {
            relay.wait_ready(pidfd.as_fd());
        }
    }
}

/// Releases a created container. `fresh`: this process has just created it,
/// so its status is known; `released`, its exec fifo reader if it opened it
/// already (`Created::released`).
fn start_loaded(
    dir: &Dir,
    saved: &mut Saved,
    fresh: bool,
    released: Option<OwnedFd>,
) -> Result<(), Error> {
    if !fresh {
        match state::status_of(dir, saved) {
            Status::Created => {}
            Status::Stopped => {
                let why = state::why_gone(saved);
                return Err(Error::StartStopped(why.unwrap_or_else(|| {
                    format!("container process {} exited", saved.pid)
                })));
            }
            _ => return Err(Error::StartRunning),
        }
    }
    let fifo_path = dir.fifo();
    let fifo = match released {
        Some(fd) => fd,
        None => nix::fcntl::open(
            &fifo_path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(format!("open {}", fifo_path.display()))(e.into()))?,
    };
    let pidfd = syscall::pidfd_open(saved.pid).map_err(|e| {
        Error::StartStopped(format!(
            "pidfd_open of container process {}: {e}",
            saved.pid
        ))
    })?;
    // Wait for the container process's byte; if it dies first, say so.
    loop {
        let mut fds = [
            nix::poll::PollFd::new(fifo.as_fd(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(io_err("wait for container process")(e.into())),
            Ok(_) => {}
        }
        let mut b = [0u8; 1];
        match nix::unistd::read(&fifo, &mut b) {
            Ok(1) => break,
            Ok(_) | Err(nix::Error::EAGAIN) => {
                if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                    return Err(Error::StartStopped(format!(
                        "container process {} exited while start waited for it",
                        saved.pid
                    )));
                }
                // No writer yet: the fifo reports HUP until the process opens it.
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            Err(e) => return Err(io_err("read exec fifo")(e.into())),
        }
    }
    saved.started = true;
    // Without the fifo the container reads as running (`state::status_of`);
    // the state is written again only where the fifo stays. One write of
    // state.json per container instead of two.
    if fs::remove_file(&fifo_path).is_err() {
        dir.save(saved)?;
    }
    if !saved.poststart.is_empty() {
        let st = state::hook_state(saved, Status::Running);
        if let Err(e) = hooks::run_all("poststart", &saved.poststart, &st) {
            crate::warn!("{e}");
        }
    }
    Ok(())
}

/// Parses a signal by name (`KILL`, `SIGKILL`) or number (`berth_rules::signal`).
pub fn parse_signal(s: &str) -> Result<i32, Error> {
    berth_rules::signal::parse(s).map_err(|e| Error::Config(e.to_string()))
}

/// Sends `sig` to the container's init, or with `all` to every process in its cgroup.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<(), Error> {
    let dir = Dir::open(root, id)?;
    let saved = dir.load()?;
    if !state::init_alive(&saved) {
        return Err(Error::NotRunning);
    }
    signal_container(&saved, sig, all)
}

fn signal_container(saved: &Saved, sig: i32, all: bool) -> Result<(), Error> {
    // Take the pidfd first and check it names our init: after this a recycled
    // pid cannot be hit, whatever the kill below does to init.
    let pidfd = syscall::pidfd_open(saved.pid).map_err(|_| Error::NotRunning)?;
    if !state::init_alive(saved) {
        return Err(Error::NotRunning);
    }
    if all {
        for pid in cgroups::procs(&saved.cgroup_paths) {
            if pid != saved.pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::try_from(sig).ok(),
                );
            }
        }
    }
    match syscall::pidfd_send_signal(pidfd.as_fd(), sig) {
        Ok(()) => Ok(()),
        // Exited since the check: with --all that is the goal reached.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) && all => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(Error::NotRunning),
        Err(e) => Err(io_err(format!(
            "send signal {sig} to container {}",
            saved.id
        ))(e)),
    }
}

/// `delete`: removes a stopped (or created) container and everything it made;
/// with `force`, kills a running one first. A missing id with `force` is fine.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), Error> {
    let dir = match Dir::open(root, id) {
        Ok(d) => d,
        Err(state::Error::NotExist) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let saved = match dir.load() {
        Ok(s) => s,
        // A create that died half-way: nothing to run, just remove it.
        Err(state::Error::NotExist) => {
            dir.remove()?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let st = state::status_of(&dir, &saved);
    match st {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&saved)?,
        other => {
            if !force {
                return Err(Error::DeleteNotStopped(id.to_string(), other.as_str()));
            }
            kill_and_wait(&saved)?;
        }
    }
    destroy(dir, &saved)
}

fn kill_and_wait(saved: &Saved) -> Result<(), Error> {
    let pidfd = match syscall::pidfd_open(saved.pid) {
        Ok(fd) if state::init_alive(saved) => fd,
        _ => return Ok(()),
    };
    let _ = signal_container(saved, libc::SIGKILL, saved.shared_pidns);
    if !wait_gone(&pidfd, 10_000) {
        return Err(Error::Config(format!(
            "container {} did not exit 10s after SIGKILL",
            saved.id
        )));
    }
    Ok(())
}

/// Removes everything a stopped container holds, then runs poststop hooks.
pub fn destroy(dir: Dir, saved: &Saved) -> Result<(), Error> {
    if saved.shared_pidns {
        for pid in cgroups::procs(&saved.cgroup_paths) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    cgroups::remove_dirs(&saved.cgroup_owned, &saved.cgroup_paths)?;
    if !saved.poststop.is_empty() {
        let st = state::hook_state(saved, Status::Stopped);
        if let Err(e) = hooks::run_all("poststop", &saved.poststop, &st) {
            crate::warn!("{e}");
        }
    }
    dir.remove()?;
    Ok(())
}

/// `pause`: freezes every process of a running container.
pub fn pause(root: &Path, id: &str) -> Result<(), Error> {
    let dir = Dir::open(root, id)?;
    let saved = dir.load()?;
    match state::status_of(&dir, &saved) {
        Status::Running | Status::Created => {}
        Status::Paused => return Err(Error::Config(format!("container {id} is already paused"))),
        _ => return Err(Error::NotRunning),
    }
    Ok(cgroups::freeze(&saved.cgroup_paths, true)?)
}

/// `resume`: thaws a paused container.
pub fn resume(root: &Path, id: &str) -> Result<(), Error> {
    let dir = Dir::open(root, id)?;
    let saved = dir.load()?;
    if state::status_of(&dir, &saved) != Status::Paused {
        return Err(Error::Config("container not paused".into()));
    }
    Ok(cgroups::freeze(&saved.cgroup_paths, false)?)
}

/// `update`: applies new resource limits (OCI `linux.resources` JSON) to a
/// container that has not stopped.
pub fn update(root: &Path, id: &str, res: &serde_json::Value) -> Result<(), Error> {
    let dir = Dir::open(root, id)?;
    let saved = dir.load()?;
    if state::status_of(&dir, &saved) == Status::Stopped {
        return Err(Error::Config(format!(
            "cannot update container {id}: it is stopped"
        )));
    }
    if res.get("devices").is_some_and(|d| !d.is_null()) {
        return Err(Error::Config(
            "update: device rules cannot change on a running container".into(),
        ));
    }
    let layout = Layout::detect()?;
    let m = &res["memory"];
    if m["checkBeforeUpdate"].as_bool() == Some(true) {
        if let (Some(limit), Some(usage)) = (
            m["limit"].as_i64().filter(|l| *l > 0),
            cgroups::memory_usage(&layout, &saved.cgroup_paths),
        ) {
            if (limit as u64) < usage {
                return Err(Error::Config(format!(
                    "memory.limit {limit} is below the container's current usage {usage} (checkBeforeUpdate)"
                )));
            }
        }
    }
    Ok(cgroups::apply_json(&layout, &saved.cgroup_paths, res)?)
}

/// `events`: resource statistics of a container as runc prints them, once
/// (`stats`) or every `interval` until it stops, with OOM events.
pub fn events(
    root: &Path,
    id: &str,
    once: bool,
    interval: std::time::Duration,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let layout = Layout::detect()?;
    let mut ooms = None;
    loop {
        let (saved, stopped) = {
            let dir = Dir::open(root, id)?;
            let saved = dir.load()?;
            let stopped = state::status_of(&dir, &saved) == Status::Stopped;
            (saved, stopped)
        };
        if stopped && once {
            return Err(Error::NotRunning);
        }
        // Checked once more after a stop: an OOM kill of init is reported too.
        let n = cgroups::oom_kills(&layout, &saved.cgroup_paths);
        if ooms.is_some_and(|o| n > o) {
            let ev = serde_json::json!({"type": "oom", "id": id});
            let _ = writeln!(out, "{ev}");
        }
        if stopped {
            let _ = out.flush();
            return Ok(());
        }
        ooms = Some(n);
        let ev = serde_json::json!({"type": "stats", "id": id,
            "data": cgroups::stats(&layout, &saved.cgroup_paths)});
        let _ = writeln!(out, "{ev}");
        let _ = out.flush();
        if once {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

/// `state`: the OCI state JSON of one container.
pub fn state_json(root: &Path, id: &str) -> Result<serde_json::Value, Error> {
    let dir = Dir::open(root, id)?;
    let saved = dir.load()?;
    let st = state::status_of(&dir, &saved);
    Ok(state::oci_state(&saved, st))
}

/// `list`: the state of every container under the root.
pub fn list(root: &Path) -> Result<Vec<serde_json::Value>, Error> {
    let mut out = Vec::new();
    for id in state::list_ids(root)? {
        let Ok(dir) = Dir::open(root, &id) else {
            continue;
        };
        let Ok(saved) = dir.load() else { continue };
        let st = state::status_of(&dir, &saved);
        out.push(state::oci_state(&saved, st));
    }
    Ok(out)
}

/// Options of a foreground `run` beyond create's.
pub struct RunOpts {
    pub keep: bool,
    pub no_subreaper: bool,
}

/// `run`: create and start; in the foreground, forward signals, proxy the
/// terminal, reap, and return the container's exit status (128+N for a
/// signal), deleting the container unless `keep`.
pub fn run(o: &CreateOpts, r: &RunOpts) -> Result<i32, Error> {
    if o.detach {
        let mut c = create_inner(o, false, true)?;
        let released = c.released.take();
        let started = bind_relay(&c.dir, &c.saved, o.notify_socket.as_deref())
            .and_then(|relay| start_loaded(&c.dir, &mut c.saved, true, released).map(|()| relay));
        let mut relay = match started {
            Ok(relay) => relay,
            Err(e) => {
                abort(c, false);
                return Err(e);
            }
        };
        drop(c.dir);
        if let Some(relay) = &mut relay {
            wait_ready(relay, &c.saved);
        }
        return Ok(0);
    }
    if !r.no_subreaper {
        syscall::prctl(libc::PR_SET_CHILD_SUBREAPER, 1).map_err(io_err("become subreaper"))?;
    }
    // Signals are blocked before the clone so none is lost; the container
    // process unblocks them before it execs.
    foreground::block_signals()?;
    let mut c = create_inner(o, true, true)?;
    let released = c.released.take();
    let prepared = (|| {
        let master = c
            .console
            .take()
            .map(|s| terminal::recv_master(s.as_fd()))
            .transpose()?;
        let relay = bind_relay(&c.dir, &c.saved, o.notify_socket.as_deref())?;
        start_loaded(&c.dir, &mut c.saved, true, released)?;
        Ok::<_, Error>((master, relay))
    })();
    let (master, mut relay) = match prepared {
        Ok(x) => x,
        Err(e) => {
            abort(c, true);
            return Err(e);
        }
    };
    // Unlocked while it runs, so that other berth commands can act on it.
    drop(c.dir);
    let status = foreground::wait(foreground::Foreground {
        pid: c.saved.pid,
        master,
        notify: relay.as_mut(),
    })?;
    if !r.keep {
        if let Ok(dir) = Dir::open(&o.root, &o.id) {
            let saved = dir.load().unwrap_or(c.saved);
            destroy(dir, &saved)?;
        }
    }
    Ok(status)
}

/// Undoes a created container whose start failed.
fn abort(c: Created, our_child: bool) {
    let _ = kill_and_wait(&c.saved);
    if our_child {
        let _ = syscall::wait_pidfd(c.pidfd.as_fd(), false);
    }
    let _ = destroy(c.dir, &c.saved);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("hup").unwrap(), 1);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
