//! The container process's side of `create`: from the clone to the exec of
//! the user's program. It runs in a single-threaded copy of `berth`, so all
//! ordinary code is safe here; it reports failures to the parent over the
//! sync channel and exits.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, LinuxPersonality, Process, Spec};

use crate::cgroups::{self, Layout};
use crate::namespaces::{self, Plan};
use crate::state::SavedHook;
use crate::{hooks, process, rootfs, seccomp, sync, syscall, terminal};

/// Everything the container process needs, prepared by the parent before the
/// clone (so the child reads it from its copy of memory).
pub struct Args<'a> {
    pub spec: &'a Spec,
    pub plan: &'a Plan,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub layout: &'a Layout,
    pub cgroup_dirs: &'a [PathBuf],
    /// The container's v1 cgroups, joined by the process itself (None: the
    /// parent put it there).
    pub cgroup_join: Option<&'a cgroups::SelfJoin>,
    /// O_PATH fd of the exec fifo, opened by the parent: the state root may
    /// not be reachable once the process is an unprivileged user.
    pub fifo: &'a OwnedFd,
    pub sync: OwnedFd,
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    /// Join a new session keyring `_ses.<id>`, so keys of the caller's
    /// session do not reach the container.
    pub new_keyring: bool,
    /// The user namespace given by path was joined before the clone.
    pub user_joined: bool,
    /// Idmapped bind mounts prepared by the parent, by index in `mounts`.
    pub idmapped: &'a [(usize, OwnedFd)],
    /// Each mount's options, parsed once by `load_bundle`.
    pub mount_options: &'a [rootfs::MountOptions],
    pub preserve_fds: u32,
    pub create_container_hooks: &'a [SavedHook],
    pub start_container_hooks: &'a [SavedHook],
    pub has_runtime_hooks: bool,
    pub seccomp: Option<&'a seccomp::Filter>,
}

/// Errors in the container process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Rootfs(#[from] rootfs::Error),
    #[error(transparent)]
    Process(#[from] process::Error),
    #[error(transparent)]
    Namespace(#[from] namespaces::Error),
    #[error(transparent)]
    Hook(#[from] hooks::Error),
    #[error(transparent)]
    Sync(#[from] sync::Error),
    #[error(transparent)]
    Terminal(#[from] terminal::Error),
    #[error(transparent)]
    Seccomp(#[from] seccomp::Error),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::Error),
    /// A step of the setup failed: what it was, and the system's reason.
    #[error("{what}: {err}")]
    Step { what: String, err: String },
    /// The config asks for something that cannot be (the message names the field).
    #[error("{0}")]
    Invalid(String),
    /// An order the setup keeps was broken: a bug, never the config.
    #[error("{0}")]
    Bug(&'static str),
}

fn other(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Step {
        what: what.to_string(),
        err: e.to_string(),
    }
}

/// The maps of a user namespace joined by path must be the config's (runc
/// 1.2 refuses a mismatch too): read from inside, /proc/self shows them
/// relative to the namespace's parent, as the config writes them.
fn check_joined_maps(linux: &oci_spec::runtime::Linux) -> Result<(), Error> {
    for (file, maps) in [
        ("uid_map", linux.uid_mappings()),
        ("gid_map", linux.gid_mappings()),
    ] {
        let Some(maps) = maps.as_ref().filter(|m| !m.is_empty()) else {
            continue;
        };
        let path = format!("/proc/self/{file}");
        let got = std::fs::read_to_string(&path).map_err(|e| other(&format!("read {path}"), e))?;
        if !namespaces::map_matches(&got, maps) {
            let one_line = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
            let field = if file == "uid_map" {
                "uidMappings"
            } else {
                "gidMappings"
            };
            return Err(Error::Namespace(namespaces::Error::Invalid(format!(
                "linux.{field}: the joined user namespace maps {:?}, the config says {:?}",
                one_line(&got),
                one_line(&namespaces::format_map(maps))
            ))));
        }
    }
    Ok(())
}

/// Set once READY is sent: from then on the parent no longer reads the
/// sync channel (it may even have read READY and closed it after our
/// message arrived), so an error, an execve's included, goes to stderr.
static READY_SENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs the container process to the exec; never returns.
pub fn run(args: Args) -> ! {
    match setup(&args) {
        Ok(never) => match never {},
        Err(e) => {
            // Before READY the parent is listening and reports the error; after
            // it, stderr is the only witness. (A message sent after READY was
            // lost when a `run`'s parent, whose exec fifo was open already,
            // read READY and closed the channel before reading it.)
            let ready = READY_SENT.load(std::sync::atomic::Ordering::Relaxed);
            if ready || sync::send(&args.sync, sync::ERROR, &e.to_string()).is_err() {
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    format!("berth: {e}\n").as_bytes(),
                );
                // And in the log, where runc's callers (shims) look.
                crate::log::log("error", &format!("container process: {e}"));
            }
            syscall::exit_now(1)
        }
    }
}

enum Never {}

fn setup(a: &Args) -> Result<Never, Error> {
    let spec = a.spec;
    let linux = spec.linux().clone().unwrap_or_default();
    let proc_ = spec
        .process()
        .clone()
        .ok_or_else(|| Error::Invalid("process: missing".into()))?;
    let sync = &a.sync;

    let states = sync::expect(sync, sync::GO)?;
    // Still one thread: this moves the whole process, before anything runs
    // in the container and before a cgroup namespace is made.
    if let Some(j) = a.cgroup_join {
        j.join()?;
    }
    // Id maps are written (a rootless parent needed us dumpable for that).
    process::set_not_dumpable()?;
    let (creating_state, created_state) = states.split_once('\n').unwrap_or((&states, &states));

    let new_user = a.plan.creates(LinuxNamespaceType::User);
    if new_user {
        syscall::setresgid(0)
            .map_err(|e| other("become root in the user namespace (setresgid 0)", e))?;
        syscall::setresuid(0)
            .map_err(|e| other("become root in the user namespace (setresuid 0)", e))?;
    }
    for (t, path) in &a.plan.join {
        if *t == LinuxNamespaceType::User && a.user_joined {
            continue;
        }
        namespaces::join(*t, path)?;
    }
    if a.plan.joins(LinuxNamespaceType::User) {
        // Our host ids mean nothing in the joined namespace: become its root,
        // as a process created in it would be.
        syscall::setresgid(0)
            .map_err(|e| other("become root in the joined user namespace (setresgid 0)", e))?;
        syscall::setresuid(0)
            .map_err(|e| other("become root in the joined user namespace (setresuid 0)", e))?;
        check_joined_maps(&linux)?;
    }
    if a.plan.new_cgroup {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| other("unshare cgroup namespace", e))?;
    }
    if a.new_keyring {
        let name =
            CString::new(format!("_ses.{}", a.id)).map_err(|e| other("session keyring name", e))?;
        match syscall::join_session_keyring(&name) {
            Ok(_) => {}
            // Kernels without keys, or a keyctl-denying outer sandbox: as
            // runc, the container runs with the inherited keyring.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {}
            Err(e) => return Err(other("join a new session keyring", e)),
        }
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| other(&format!("set hostname {h}"), e))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        syscall::setdomainname(d).map_err(|e| other(&format!("set domainname {d}"), e))?;
    }

    // Host /proc and the fifo, opened before the root change: the fifo is
    // reopened for writing through them at the very end.
    let host_proc = nix::fcntl::open(
        "/proc",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| other("open /proc", e))?;
    rootfs::ensure_procfs(&host_proc, "/proc")?;
    let fifo = a.fifo;

    let uid_map = linux.uid_mappings().clone().unwrap_or_default();
    let gid_map = linux.gid_mappings().clone().unwrap_or_default();
    let to_host = |maps: &[oci_spec::runtime::LinuxIdMapping]| {
        maps.iter()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
            .unwrap_or(0)
    };
    let in_userns = new_user || a.plan.joins(LinuxNamespaceType::User);
    let ctx = rootfs::Context {
        sys: &rootfs::Kernel,
        rootfs: a.rootfs,
        bundle: a.bundle,
        layout: a.layout,
        cgroup_dirs: a.cgroup_dirs,
        new_cgroupns: a.plan.new_cgroup,
        in_userns,
        // Inside a user namespace, new or joined, ids are the container's own.
        root_uid: if in_userns { 0 } else { to_host(&uid_map) },
        root_gid: if in_userns { 0 } else { to_host(&gid_map) },
    };
    // The rootfs is set up in the container's mount namespace, new or
    // joined by path, or, when the config lists none, in the caller's (the
    // spec's inheritance), as runc sets it up in each.
    let own_mnt = a.plan.has(LinuxNamespaceType::Mount);
    let mounts = spec.mounts().clone().unwrap_or_default();
    {
        let rootfd = rootfs::prepare_root(&ctx, linux.rootfs_propagation().as_deref())?;
        syscall::umask(0o022);
        let cwd = spec.process().as_ref().map(|p| p.cwd().clone());
        rootfs::populate(
            &ctx,
            rootfd.as_fd(),
            &rootfs::Populate {
                mounts: &mounts,
                options: a.mount_options,
                idmapped: a.idmapped,
                devices: linux.devices().as_deref().unwrap_or(&[]),
                cwd: cwd.as_deref(),
            },
        )?;
    }

    if a.has_runtime_hooks {
        sync::send(sync, sync::HOOKS, "")?;
        sync::expect(sync, sync::HOOKS_DONE)?;
    }
    if !a.create_container_hooks.is_empty() {
        hooks::run_all_in(
            "createContainer",
            a.create_container_hooks,
            creating_state,
            a.rootfs,
        )?;
    }

    {
        let how = match (own_mnt, a.no_pivot) {
            (true, false) => rootfs::RootChange::Pivot,
            (true, true) => rootfs::RootChange::Move,
            // Moving the rootfs over the caller's own / is never wanted.
            (false, _) => rootfs::RootChange::Chroot,
        };
        crate::debug!("root change: {how:?}");
        rootfs::change_root(a.rootfs, how)?;
        let sysctl = linux.sysctl().clone().unwrap_or_default();
        rootfs::write_sysctls(&sysctl)?;
        rootfs::restrict(
            &rootfs::Kernel,
            &rootfs::Restrict {
                readonly_paths: linux.readonly_paths().as_deref().unwrap_or(&[]),
                masked_paths: linux.masked_paths().as_deref().unwrap_or(&[]),
                readonly_root: spec
                    .root()
                    .as_ref()
                    .is_some_and(|r| r.readonly().unwrap_or(false)),
                propagation: linux.rootfs_propagation().as_deref(),
            },
        )?;
    }

    let setup = ProcessSetup {
        process: &proc_,
        personality: linux.personality().as_ref(),
        console: a.console.as_ref(),
        preserve_fds: a.preserve_fds,
        seccomp: a.seccomp,
        sync,
    };
    let prepared = prepare_process(&setup)?;
    finish(
        prepared,
        &setup,
        Some(Release {
            fifo,
            host_proc: Some(host_proc),
            hooks: a.start_container_hooks,
            created_state,
        }),
    )
}

/// What an init's release needs: the exec fifo that `start` opens, and the
/// startContainer hooks.
struct Release<'a> {
    fifo: &'a OwnedFd,
    /// The host's /proc, through which the O_PATH fifo is opened for writing;
    /// closed once it is written.
    host_proc: Option<OwnedFd>,
    hooks: &'a [SavedHook],
    created_state: &'a str,
}

impl Release<'_> {
    /// Blocks until `start` opens the fifo for reading, then writes it.
    fn wait_for_start(&mut self) -> Result<(), Error> {
        let host_proc = self
            .host_proc
            .take()
            .ok_or(Error::Bug("exec fifo: written twice"))?;
        let fifo_path = format!("thread-self/fd/{}", self.fifo.as_raw_fd());
        let w = loop {
            // The wait may be long (until `start`): a signal must not end it.
            match nix::fcntl::openat(
                &host_proc,
                fifo_path.as_str(),
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                Err(nix::Error::EINTR) => continue,
                r => break r.map_err(|e| other("open exec fifo", e))?,
            }
        };
        nix::unistd::write(&w, b"0").map_err(|e| other("write exec fifo", e))?;
        Ok(())
    }
}

/// Runs the last steps in the order `last_steps` plans them, ending in
/// execve; `release` is None for an `exec`'d process.
fn finish(p: Prepared, s: &ProcessSetup, mut release: Option<Release>) -> Result<Never, Error> {
    use crate::last_steps::{plan, Shape, Step};
    let no_new_privs = s.process.no_new_privileges().unwrap_or(false);
    let shape = Shape {
        init: release.is_some(),
        no_new_privs,
        seccomp: s.seccomp.is_some(),
        notifies: s.seccomp.is_some_and(|f| f.notifies()),
    };
    for step in plan(shape) {
        match (step, &mut release) {
            (Step::ResetSignals, _) => syscall::reset_signals(),
            (Step::Seccomp, _) => {
                if let Some(f) = s.seccomp {
                    install_seccomp(f, s.sync)?;
                }
            }
            (Step::User, _) => p.change_user(s.process)?,
            (Step::NoNewPrivs, _) => process::set_no_new_privs()?,
            (Step::Ready, _) => {
                sync::send(s.sync, sync::READY, "")?;
                READY_SENT.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            (Step::ExecFifo, Some(r)) => r.wait_for_start()?,
            (Step::StartHooks, Some(r)) => {
                if !r.hooks.is_empty() {
                    hooks::run_all("startContainer", r.hooks, r.created_state)?;
                }
            }
            (Step::ExecFifo | Step::StartHooks, None) => {}
            (Step::Exec, _) => return Err(p.exec()),
        }
    }
    Err(Error::Bug("the last steps end without execve"))
}

/// The process attributes shared by a container's init and `exec`'d processes.
struct ProcessSetup<'a> {
    process: &'a Process,
    personality: Option<&'a LinuxPersonality>,
    console: Option<&'a OwnedFd>,
    preserve_fds: u32,
    seccomp: Option<&'a seccomp::Filter>,
    sync: &'a OwnedFd,
}

/// Installs the filter; a notification fd goes to the parent, which hands it
/// to the listener, and we wait until it did.
fn install_seccomp(f: &seccomp::Filter, sync: &OwnedFd) -> Result<(), Error> {
    if let Some(fd) = seccomp::install(f)? {
        sync::send_fd(sync, sync::SECCOMP, &fd)?;
        sync::expect(sync, sync::SECCOMP_DONE)?;
    }
    Ok(())
}

/// A process whose own setup is done: what is left is its user, the
/// filter and the program (see `finish`).
struct Prepared {
    exe: CString,
    display: String,
    argv: Vec<CString>,
    env: Vec<CString>,
    caps: Option<process::CapSets>,
    /// False in a user namespace whose setgroups is denied.
    setgroups_ok: bool,
}

impl Prepared {
    /// Groups, gid, uid, umask, then the capability sets (none when the
    /// config names none).
    fn change_user(&self, proc_: &Process) -> Result<(), Error> {
        process::set_user(proc_, self.setgroups_ok)?;
        if proc_.user().umask().is_none() {
            syscall::umask(0o022);
        }
        match &self.caps {
            Some(c) => process::set_caps(c)?,
            None => process::set_caps(&process::CapSets {
                bounding: Default::default(),
                effective: Default::default(),
                permitted: Default::default(),
                inheritable: Default::default(),
                ambient: Default::default(),
            })?,
        }
        Ok(())
    }

    /// Signals were reset and the filter installed by `finish`: execve is
    /// the only call left.
    fn exec(self) -> Error {
        let err = syscall::execve(&self.exe, &self.argv, &self.env);
        other(&format!("exec {}", self.display), err)
    }
}

/// berth's own setup of the process, none of it under the container's
/// filter: terminal, scheduling, LSM label, cwd, capability bounding set, the
/// executable looked up for the user the process will be, every fd the
/// caller did not pass marked close-on-exec. `finish` does the rest.
fn prepare_process(s: &ProcessSetup) -> Result<Prepared, Error> {
    let proc_ = s.process;
    if let Some(console) = s.console {
        let (master, slave) = terminal::open_pty()?;
        terminal::give_to(&slave, proc_.user().uid())?;
        terminal::send_fd(console, "/dev/ptmx", master.as_fd())?;
        drop(master);
        terminal::make_controlling(&slave)?;
    }

    process::set_sched_io_persona(proc_, s.personality)?;
    process::set_lsm_labels(proc_)?;

    // The working directory is resolved inside the root, refusing magic
    // links (a leaked /proc/self/fd/N must not become the cwd).
    let slash = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| other("open /", e))?;
    let cwd = proc_.cwd();
    let cwd_fd = rootfs::open_in_root(
        &rootfs::Kernel,
        slash.as_fd(),
        cwd,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )
    .map_err(|e| other(&format!("process.cwd {}", cwd.display()), e))?;
    nix::unistd::fchdir(&cwd_fd)
        .map_err(|e| other(&format!("chdir to process.cwd {}", cwd.display()), e))?;
    let now = syscall::getcwd().map_err(|e| other("getcwd after chdir", e))?;
    if now.first() != Some(&b'/') {
        return Err(Error::Invalid(format!(
            "process.cwd {}: outside the container root",
            cwd.display()
        )));
    }
    drop(cwd_fd);
    drop(slash);

    let caps = proc_
        .capabilities()
        .as_ref()
        .map(process::to_caps)
        .transpose()?;
    if let Some(c) = &caps {
        process::drop_bounding(c)?;
    }
    // In a user namespace whose setgroups is denied, groups cannot change.
    let setgroups_ok = std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true);
    let env: Vec<String> = proc_.env().clone().unwrap_or_default();
    let argv: Vec<String> = proc_.args().clone().unwrap_or_default();
    let exe = process::find_executable(&argv[0], &env, &process::Who::of(proc_, caps.as_ref()))?;
    let c = |s: &str| {
        CString::new(s).map_err(|_| Error::Invalid(format!("process: {s:?} contains a NUL byte")))
    };
    let prepared = Prepared {
        argv: argv.iter().map(|s| c(s)).collect::<Result<Vec<_>, _>>()?,
        env: env.iter().map(|s| c(s)).collect::<Result<Vec<_>, _>>()?,
        exe: CString::new(exe.as_os_str().as_bytes())
            .map_err(|_| Error::Invalid("process.args[0]: NUL byte".into()))?,
        display: exe.display().to_string(),
        caps,
        setgroups_ok,
    };

    // Nothing the caller did not pass reaches the container: every fd past
    // stdio and the preserved ones is close-on-exec.
    syscall::cloexec_from(3 + s.preserve_fds).map_err(|e| other("mark fds close-on-exec", e))?;
    for fd in 3..3 + s.preserve_fds as i32 {
        let _ = syscall::clear_cloexec(fd);
    }
    Ok(prepared)
}

/// Everything an `exec`'d process needs, prepared by `berth exec` before the
/// fork. The parent has already joined the container's pid namespace, so
/// this process is inside it.
pub struct ExecArgs<'a> {
    pub process: &'a Process,
    pub personality: Option<&'a LinuxPersonality>,
    /// pidfd of the container's init, whose namespaces are joined.
    pub init: &'a OwnedFd,
    /// The namespaces of init that differ from ours (pid excluded).
    pub join: nix::sched::CloneFlags,
    pub sync: OwnedFd,
    pub console: Option<OwnedFd>,
    pub preserve_fds: u32,
    pub seccomp: Option<&'a seccomp::Filter>,
    /// The cgroups to join, by the process itself (None: the parent adds it).
    pub cgroup_join: Option<&'a cgroups::SelfJoin>,
}

/// Runs an `exec`'d process to its exec; never returns. Success shows to the
/// parent as the sync socket closing (it is close-on-exec).
pub fn run_exec(a: ExecArgs) -> ! {
    let r = (|| -> Result<Never, Error> {
        sync::expect(&a.sync, sync::GO)?;
        if let Some(j) = a.cgroup_join {
            j.join()?;
        }
        if !a.join.is_empty() {
            // One setns on the pidfd joins all of them at once, user
            // namespace first as the kernel orders it.
            nix::sched::setns(a.init, a.join)
                .map_err(|e| other("join the container's namespaces", e))?;
        }
        let setup = ProcessSetup {
            process: a.process,
            personality: a.personality,
            console: a.console.as_ref(),
            preserve_fds: a.preserve_fds,
            seccomp: a.seccomp,
            sync: &a.sync,
        };
        let prepared = prepare_process(&setup)?;
        finish(prepared, &setup, None)
    })();
    match r {
        Ok(never) => match never {},
        Err(e) => {
            let _ = sync::send(&a.sync, sync::ERROR, &e.to_string());
            syscall::exit_now(1)
        }
    }
}
