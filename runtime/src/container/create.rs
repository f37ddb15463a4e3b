//! `create`: the container process cloned into its namespaces and set up
//! up to the exec fifo, its state saved; undone step by step on failure.

use crate::cgroups::{self, Layout};
use crate::namespaces;
use crate::state::{self, Dir, Saved, Status};
use crate::{hooks, init, notify, process, rootfs, sync, syscall, terminal};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxNamespaceType;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::*;

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
    /// `--systemd-cgroup`: the cgroup is a transient scope systemd makes.
    pub systemd_cgroup: bool,
}

/// Partial state to undo if `create` fails, so a failure leaves nothing.
pub(super) struct Undo {
    pidfd: Option<OwnedFd>,
    our_child: bool,
    cgroups: Vec<PathBuf>,
    /// A pid file written before the create failed.
    pid_file: Option<PathBuf>,
    /// A systemd scope started before the create failed (unit, user's).
    systemd_unit: Option<(String, bool)>,
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
        if let Some((unit, user)) = self.systemd_unit.take() {
            let _ = cgroups::systemd::dbus::stop(&unit, user);
        }
        let _ = cgroups::remove_dirs(&self.cgroups, &self.cgroups);
        if let Some(p) = self.pid_file.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Waits until the process behind a pidfd has exited (or `ms` passed).
pub(super) fn wait_gone(pidfd: &OwnedFd, ms: i32) -> bool {
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
pub(super) fn create_inner(
    o: &CreateOpts,
    own_console: bool,
    release: bool,
) -> Result<Created, Error> {
    let mut b = load_bundle(&o.bundle)?;
    let terminal = b
        .spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal().unwrap_or(false));
    if terminal && o.console_socket.is_none() && !own_console {
        return Err(Error::Invalid(
            "process.terminal is true but no --console-socket was given: a detached container's terminal must go somewhere (cannot allocate tty if berth will detach without setting console socket)".into(),
        ));
    }
    if !terminal && o.console_socket.is_some() {
        return Err(Error::Invalid(
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
        systemd_unit: None,
    };
    let r = (|| {
        fs::write(dir.path.join(state::CREATING_FILE), b"")
            .map_err(io_err("mark container as creating"))?;
        if let Some(host) = &o.notify_socket {
            notify::add_to_spec(&mut b.spec, &dir.path)
                .map_err(|x| Error::Notify(format!("NOTIFY_SOCKET {host}: {x}")))?;
            b.parse_added_mounts()?;
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

pub(super) fn create_in(
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
    let cgroups_path = linux.cgroups_path().as_ref().and_then(|p| p.to_str());
    // With the systemd driver the cgroup is the scope systemd makes once the
    // container process exists (it is started with the process's pid).
    // An unprivileged caller's scopes are its own user manager's.
    let systemd_user = !nix::unistd::geteuid().is_root();
    let systemd_unit = o
        .systemd_cgroup
        .then(|| cgroups::systemd::Unit::parse(cgroups_path, &o.id, systemd_user))
        .transpose()?;
    // A user's manager puts units below its own cgroup: the path is known
    // before the container process exists, which needs it.
    let mut cgroup_dirs = match &systemd_unit {
        Some(u) => {
            let root = cgroups::systemd::dbus::manager_root(systemd_user)?;
            layout.container_dirs(Some(&format!("{root}{}", u.cgroup_path())), &o.id)?
        }
        None => layout.container_dirs(cgroups_path, &o.id)?,
    };
    if systemd_unit.is_none() {
        prepare_cgroups(&layout, &mut cgroup_dirs, &linux, undo)?;
    }
    crate::debug!("cgroups: {:?}", cgroup_dirs);

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

    // Namespaces the clone creates must be owned by the user namespace the
    // container joins by path: a helper joins it first and clones from there.
    let user_path = b
        .plan
        .join
        .iter()
        .find(|(t, _)| *t == LinuxNamespaceType::User)
        .map(|(_, p)| p.clone())
        .filter(|_| !b.plan.clone.is_empty());
    // PID and time namespaces apply to the children of whoever joins them:
    // with that helper, the helper joins them (after the user namespace), so
    // it stays in ours and reports the container's pid as we see it.
    if user_path.is_none() {
        for (t, path) in &b.plan.join_before_clone {
            namespaces::join(*t, path)?;
        }
    }
    if b.plan.new_time {
        nix::sched::unshare(namespaces::flag(LinuxNamespaceType::Time))
            .map_err(|e| io_err("unshare time namespace")(e.into()))?;
        namespaces::write_time_offsets(spec)?;
    }
    // Idmapped bind mounts are made here, with the host's privileges, and
    // attached by the container process. So are all bind mounts of a
    // container with a new user namespace when we are root: its process
    // resolves paths as the mapped user, who may not reach the sources
    // (a 0700 parent), and runc opens them before entering it too.
    let mounts = spec.mounts().clone().unwrap_or_default();
    let source_of = |i: usize| {
        let src = mounts[i].source().clone().unwrap_or_default();
        if src.is_absolute() {
            src
        } else {
            b.dir.join(src)
        }
    };
    let recursive = |i: usize| {
        b.mount_options[i]
            .flags
            .contains(nix::mount::MsFlags::MS_REC)
    };
    let mut idmapped = Vec::new();
    for (i, uid, gid) in &b.idmaps {
        idmapped.push((
            *i,
            rootfs::idmap_tree(&source_of(*i), recursive(*i), uid, gid)?,
        ));
    }
    if b.plan.creates(LinuxNamespaceType::User)
        && b.plan.creates(LinuxNamespaceType::Mount)
        && nix::unistd::geteuid().is_root()
    {
        for (i, opts) in b.mount_options.iter().enumerate() {
            if opts.is_bind() && !idmapped.iter().any(|(j, _)| *j == i) {
                let src = source_of(i);
                let tree =
                    syscall::open_tree_clone(&src, recursive(i)).map_err(io_err(format!(
                        "mount {}: open source {} before the user namespace",
                        mounts[i].destination().display(),
                        src.display()
                    )))?;
                idmapped.push((i, tree));
            }
        }
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
    // Into the cgroup2 directory (pure v2, or a hybrid host's) the process
    // is born (CLONE_INTO_CGROUP).
    let v2_dir = cgroups::unified_dir(&layout, &cgroup_dirs)
        .filter(|_| user_path.is_none() && systemd_unit.is_none())
        .and_then(|d| {
            nix::fcntl::open(
                d,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ok()
        });
    let mut born_in_cgroup = false;
    // Into v1 directories the process moves itself, without the lock a pid
    // write takes.
    let self_join = match systemd_unit {
        Some(_) => None,
        None => cgroups::SelfJoin::open(&layout, &cgroup_dirs),
    };
    // Entered here and left after the clone (see `Plan::join_around_clone`).
    let around = JoinedAround::enter(&b.plan.join_around_clone)?;
    let cloned = (|| -> Result<i32, Error> {
        Ok(match (&user_path, &v2_dir) {
            (Some(path), _) => clone_in_userns(flags, path, &b.plan.join_before_clone, o.detach)?,
            (None, Some(dir)) => match syscall::clone_into_cgroup(flags as u32 as u64, dir.as_fd())
            {
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
            (None, None) => {
                syscall::clone_fork(flags).map_err(io_err("clone container process"))?
            }
        })
    })();
    // The parent goes back even when the clone failed; the child is born
    // in the joined namespaces and stays (the saved fds are close-on-exec).
    match cloned {
        Ok(0) => drop(around),
        _ => around.leave()?,
    }
    let pid = cloned?;
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
            mount_options: &b.mount_options,
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
    if let Some(u) = &systemd_unit {
        let made = start_scope(u, pid, systemd_user, &layout, &linux, undo)?;
        if made != cgroup_dirs {
            return Err(Error::Stuck(format!(
                "systemd put {} at {made:?}, not {cgroup_dirs:?}",
                u.name
            )));
        }
    }
    // What neither way covered gets the pid written (systemd moved it).
    let unified = cgroups::unified_dir(&layout, &cgroup_dirs);
    let by_pid: Vec<PathBuf> = cgroup_dirs
        .iter()
        .filter(|_| systemd_unit.is_none())
        .filter(|d| {
            if Some(*d) == unified {
                !born_in_cgroup
            } else {
                self_join.is_none()
            }
        })
        .cloned()
        .collect();
    cgroups::add_pid(&by_pid, pid)?;
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
        systemd_unit: systemd_unit.as_ref().map(|u| u.name.clone()),
        systemd_user: systemd_unit.is_some() && systemd_user,
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
    crate::debug!("container process {pid}: setting up");
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
                Error::Died(format!(
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
                crate::debug!("container process {pid}: prestart and createRuntime hooks");
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
            sync::READY => {
                crate::debug!("container process {pid}: ready, waiting for start");
                break;
            }
            other => return Err(Error::Sync(sync::Error::Unexpected(other as char))),
        }
    }
    drop(parent_sock);
    Ok((saved, pidfd, released))
}

/// The cgroupfs driver's cgroups: made (or found), checked as runc checks
/// them, and given the container's limits before its process exists.
fn prepare_cgroups(
    layout: &Layout,
    cgroup_dirs: &mut Vec<PathBuf>,
    linux: &oci_spec::runtime::Linux,
    undo: &mut Undo,
) -> Result<(), Error> {
    match cgroups::create_dirs(layout, cgroup_dirs) {
        Ok(created) => undo.cgroups = created,
        // An ordinary user without a delegated cgroup: the container runs
        // in ours when it asks for no limits, as rootless runc does.
        Err(cgroups::Error::Io { err, path, .. })
            if err.kind() == io::ErrorKind::PermissionDenied
                && !nix::unistd::geteuid().is_root() =>
        {
            if cgroups::limits_requested(linux.resources().as_ref()) {
                return Err(Error::Unsupported(format!(
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
    // A cgroup that was there before: runc refuses a frozen one (the
    // container would never run) and warns of processes already in it.
    if cgroup_dirs.iter().any(|d| !undo.cgroups.contains(d)) {
        if cgroups::is_frozen(cgroup_dirs) {
            return Err(Error::WrongState(
                "container's cgroup unexpectedly frozen".into(),
            ));
        }
        let n = cgroups::procs(cgroup_dirs).len();
        if n > 0 {
            crate::warn!("container's cgroup is not empty: {n} process(es) found");
        }
    }
    cgroups::apply(layout, cgroup_dirs, linux.resources().as_ref())?;

    Ok(())
}

/// The systemd driver: starts the container's transient scope with the
/// process in it and the properties its resources map to, then writes what
/// systemd has no property for into the delegated cgroup; the container's
/// cgroup directories, where systemd put the scope. On v1, the hierarchies
/// systemd does not manage get a directory of ours.
fn start_scope(
    u: &cgroups::systemd::Unit,
    pid: i32,
    user: bool,
    layout: &Layout,
    linux: &oci_spec::runtime::Linux,
    undo: &mut Undo,
) -> Result<Vec<PathBuf>, Error> {
    let res = linux.resources().clone().unwrap_or_default();
    let upid = u32::try_from(pid).map_err(|_| Error::Invalid(format!("pid {pid} out of range")))?;
    let props = cgroups::systemd::properties(&res, layout.is_pure_v2(), Some((u, upid)))?;
    let control_group = cgroups::systemd::dbus::start(u, &props, user)?;
    undo.systemd_unit = Some((u.name.clone(), user));
    crate::debug!("systemd: {} started in {}", u.name, control_group);
    let cgroup_dirs = layout.container_dirs(Some(&control_group), &u.name)?;
    let missing: Vec<PathBuf> = cgroup_dirs
        .iter()
        .filter(|d| !d.exists())
        .cloned()
        .collect();
    if !missing.is_empty() {
        undo.cgroups = cgroups::create_dirs(layout, &missing)?;
        cgroups::add_pid(&missing, pid)?;
    }
    cgroups::apply(layout, &cgroup_dirs, linux.resources().as_ref())?;
    Ok(cgroup_dirs)
}

/// Clones the container process from inside the user namespace at `userns`
/// through a short-lived helper, so that the new namespaces belong to it;
/// the helper joins `for_children` (PID, time) after it, so the container
/// process is born in them while the helper, in ours, sees its pid as we do.
/// Returns 0 in the container process and its pid in the caller; the
/// container process is our child (or, with `detach`, our caller's).
pub(super) fn clone_in_userns(
    flags: i32,
    userns: &Path,
    for_children: &[(LinuxNamespaceType, std::path::PathBuf)],
    detach: bool,
) -> Result<i32, Error> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io_err("pipe")(e.into()))?;
    let helper = syscall::clone_fork(if detach { libc::CLONE_PARENT } else { 0 })
        .map_err(io_err("clone user namespace helper"))?;
    if helper == 0 {
        drop(r);
        let res = namespaces::join(LinuxNamespaceType::User, &userns.to_path_buf())
            .and_then(|()| {
                for_children
                    .iter()
                    .try_for_each(|(t, path)| namespaces::join(*t, path))
            })
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
        _ => Err(Error::Died(format!(
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

pub(super) fn owner_name(path: &Path) -> String {
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

/// Namespaces the runtime entered for its clone to inherit, and its own to
/// go back to.
struct JoinedAround(Vec<(LinuxNamespaceType, fs::File)>);

impl JoinedAround {
    /// Saves the runtime's own namespace of each type, then joins `joins`.
    fn enter(joins: &[(LinuxNamespaceType, PathBuf)]) -> Result<JoinedAround, Error> {
        let mut own = Vec::new();
        for (t, path) in joins {
            let mine = format!("/proc/thread-self/ns/{}", namespaces::proc_name(*t));
            own.push((
                *t,
                fs::File::open(&mine).map_err(io_err(format!("open {mine}")))?,
            ));
            namespaces::join(*t, path)?;
        }
        Ok(JoinedAround(own))
    }

    /// Back in the runtime's own namespaces.
    fn leave(self) -> Result<(), Error> {
        for (t, f) in self.0 {
            nix::sched::setns(&f, namespaces::flag(t)).map_err(|e| {
                io_err(format!(
                    "return to the runtime's {} namespace",
                    namespaces::proc_name(t)
                ))(e.into())
            })?;
        }
        Ok(())
    }
}
