//! `berth exec`: a new process in a running container. It joins every
//! namespace of the container's init (the pid namespace too: it is forked
//! after `berth` joined it), its cgroup, and gets the process attributes of
//! the config (or of `--process`) with the same fd and cwd hygiene as init.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{Capabilities, Process, Spec};

use crate::cgroups::{self, Layout};
use crate::container::{self, Error};
use crate::state::{self, Dir, Status};
use crate::{foreground, init, namespaces, process, sync, syscall, terminal};

/// What `exec` needs beyond the process itself.
#[derive(Debug, Default)]
pub struct ExecOpts {
    pub root: PathBuf,
    pub id: String,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// `--cgroup`: a sub-cgroup of the container's to run in.
    pub cgroup: Option<String>,
    pub ignore_paused: bool,
}

/// The command-line overrides of the container's process (when no
/// `--process` file is given).
#[derive(Debug, Default)]
pub struct Overrides {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// `uid[:gid]`, numeric as in runc.
    pub user: Option<String>,
    pub additional_gids: Vec<String>,
    pub caps: Vec<String>,
    pub no_new_privs: Option<bool>,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub tty: bool,
}

fn bad(msg: String) -> Error {
    Error::Invalid(msg)
}

/// The container's config, read from its bundle as runc reads it.
pub fn container_spec(root: &std::path::Path, id: &str) -> Result<Spec, Error> {
    let dir = Dir::open(root, id)?;
    let saved = dir.load()?;
    let path = saved.bundle.join("config.json");
    let data = fs::read(&path).map_err(|e| bad(format!("read {}: {e}", path.display())))?;
    serde_json::from_slice(&data).map_err(|e| bad(format!("parse {}: {e}", path.display())))
}

/// Reads a `--process` file: the whole process, no overrides.
pub fn process_from_file(path: &std::path::Path) -> Result<Process, Error> {
    let data =
        fs::read(path).map_err(|e| bad(format!("read --process {}: {e}", path.display())))?;
    let parse = |e: serde_json::Error| bad(format!("parse --process {}: {e}", path.display()));
    let mut v: serde_json::Value = serde_json::from_slice(&data).map_err(parse)?;
    // Without a user the process runs as root, as runc's exec runs it.
    if let Some(o) = v.as_object_mut() {
        o.entry("user")
            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    }
    let p: Process = serde_json::from_value(v).map_err(parse)?;
    process::validate(&p)?;
    Ok(p)
}

/// The container's process with the command line's overrides applied, the
/// way runc's `exec` builds it.
pub fn process_from_overrides(base: &Process, o: &Overrides) -> Result<Process, Error> {
    let mut p = base.clone();
    if o.args.is_empty() {
        return Err(bad(
            "exec: no command given (pass it after the container id, or use --process)".into(),
        ));
    }
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    // Later entries win, so `--env` overrides the config.
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &o.env {
        if !kv.contains('=') {
            return Err(bad(format!("--env {kv:?}: must be KEY=VALUE")));
        }
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = o.cwd.as_ref().filter(|c| !c.is_empty()) {
        p.set_cwd(PathBuf::from(cwd));
    }
    let mut user = p.user().clone();
    if let Some(u) = &o.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        let num = |s: &str, what: &str| {
            s.parse::<u32>()
                .map_err(|_| bad(format!("--user {u:?}: {what} must be a number")))
        };
        user.set_uid(num(uid, "uid")?);
        if let Some(g) = gid {
            user.set_gid(num(g, "gid")?);
        }
    }
    if !o.additional_gids.is_empty() {
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        for g in &o.additional_gids {
            gids.push(
                g.parse::<u32>()
                    .map_err(|_| bad(format!("--additional-gids {g:?}: must be a number")))?,
            );
        }
        user.set_additional_gids(Some(gids));
    }
    p.set_user(user);
    if !o.caps.is_empty() {
        let mut c = p.capabilities().clone().unwrap_or_default();
        let add = |set: &Option<Capabilities>| -> Result<Capabilities, Error> {
            let mut set = set.clone().unwrap_or_default();
            for name in &o.caps {
                let cap = process::parse_cap(name)?;
                set.insert(cap);
            }
            Ok(set)
        };
        // Never the inheritable set (CVE-2022-29162): an exec'd process must
        // not pass added capabilities on to programs it runs. Ambient needs
        // inheritable, so it only grows where the config already has some.
        let bounding = add(c.bounding())?;
        let effective = add(c.effective())?;
        let permitted = add(c.permitted())?;
        let ambient = if c.inheritable().as_ref().is_some_and(|i| !i.is_empty()) {
            Some(add(c.ambient())?)
        } else {
            c.ambient().clone()
        };
        c.set_bounding(Some(bounding));
        c.set_effective(Some(effective));
        c.set_permitted(Some(permitted));
        c.set_ambient(ambient);
        p.set_capabilities(Some(c));
    }
    if let Some(n) = o.no_new_privs {
        p.set_no_new_privileges(Some(n));
    }
    if let Some(a) = o.apparmor.as_ref().filter(|a| !a.is_empty()) {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = o.process_label.as_ref().filter(|l| !l.is_empty()) {
        p.set_selinux_label(Some(l.clone()));
    }
    process::validate(&p)?;
    Ok(p)
}

/// Runs `proc_` in the container. Detached it returns 0 once the process
/// has exec'd (it becomes our caller's child); in the foreground it returns
/// the process's exit status.
pub fn exec(o: &ExecOpts, proc_: &Process, spec: &Spec) -> Result<i32, Error> {
    let terminal = proc_.terminal().unwrap_or(false);
    if terminal && o.detach && o.console_socket.is_none() {
        return Err(bad(
            "cannot allocate tty if berth will detach without setting console socket".into(),
        ));
    }
    if !terminal && o.console_socket.is_some() {
        return Err(bad(
            "--console-socket given but no tty was asked for (--tty)".into(),
        ));
    }
    let dir = Dir::open(&o.root, &o.id)?;
    let saved = dir.load()?;
    match state::status_of(&dir, &saved) {
        Status::Stopped => return Err(bad("cannot exec in a stopped container".into())),
        Status::Paused if !o.ignore_paused => {
            return Err(bad(
                "cannot exec in a paused container (use --ignore-paused to override)".into(),
            ))
        }
        _ => {}
    }
    let init_fd = syscall::pidfd_open(saved.pid).map_err(|_| Error::NotRunning)?;
    let mut join = namespaces::differing(saved.pid)?;
    // The pidfd is taken: if init is still the process we saved, every
    // namespace read above was its.
    if !state::init_alive(&saved) {
        return Err(Error::NotRunning);
    }
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let filter = profile
        .map(|s| crate::seccomp::load_or_compile(&o.root, s))
        .transpose()?;
    let layout = Layout::detect()?;
    let cgroup_dirs = match &o.cgroup {
        Some(s) => cgroups::sub_dirs(&layout, &saved.cgroup_paths, s)?,
        None => saved.cgroup_paths.clone(),
    };
    let self_join = cgroups::SelfJoin::open(&layout, &cgroup_dirs);

    let (parent_sock, child_sock) = sync::pair()?;
    let (console, ours) = terminal::endpoints(o.console_socket.as_deref(), terminal)?;
    if !o.detach {
        foreground::block_signals()?;
    }
    process::set_not_dumpable()?;
    // The pid namespace applies to children: join it here, fork into it.
    if join.contains(CloneFlags::CLONE_NEWPID) {
        nix::sched::setns(&init_fd, CloneFlags::CLONE_NEWPID)
            .map_err(|x| bad(format!("join pid namespace of container {}: {x}", o.id)))?;
        join.remove(CloneFlags::CLONE_NEWPID);
    }
    let flags = if o.detach { libc::CLONE_PARENT } else { 0 };
    let pid = syscall::clone_fork(flags).map_err(|x| bad(format!("fork exec process: {x}")))?;
    if pid == 0 {
        drop(parent_sock);
        drop(ours);
        init::run_exec(init::ExecArgs {
            process: proc_,
            personality: spec.linux().as_ref().and_then(|l| l.personality().as_ref()),
            init: &init_fd,
            join,
            sync: child_sock,
            console,
            preserve_fds: o.preserve_fds,
            seccomp: filter.as_ref(),
            cgroup_join: self_join.as_ref(),
        });
    }
    let parent_adds = self_join.is_none();
    let unified = cgroups::unified_dir(&layout, &cgroup_dirs);
    drop(self_join);
    drop(child_sock);
    drop(console);
    let child = syscall::pidfd_open(pid).map_err(|x| bad(format!("pidfd_open {pid}: {x}")))?;
    let started = (|| {
        if parent_adds {
            cgroups::add_pid(&cgroup_dirs, pid)?;
        } else if let Some(u) = unified {
            // A hybrid host's cgroup2 directory, which has no tasks file.
            cgroups::add_pid(std::slice::from_ref(u), pid)?;
        }
        process::set_rlimits(pid, proc_)?;
        if let Some(adj) = proc_.oom_score_adj() {
            container::set_oom_score_adj(pid, adj)?;
        }
        sync::send(&parent_sock, sync::GO, "")?;
        // The sync socket is close-on-exec: EOF means the program runs.
        loop {
            match sync::recv_with_fd(&parent_sock) {
                Err(sync::Error::Closed) => break,
                Err(e) => return Err(e.into()),
                Ok((sync::SECCOMP, _, Some(fd))) => {
                    let p = profile.ok_or(sync::Error::Unexpected(sync::SECCOMP as char))?;
                    let st = state::oci_state(&saved, Status::Running);
                    crate::seccomp::send_to_listener(p, pid, st, &fd)?;
                    sync::send(&parent_sock, sync::SECCOMP_DONE, "")?;
                }
                Ok((t, _, _)) => return Err(sync::Error::Unexpected(t as char).into()),
            }
        }
        let master = ours
            .as_ref()
            .map(|s| terminal::recv_master(s.as_fd()))
            .transpose()?;
        if let Some(p) = &o.pid_file {
            container::write_pid_file(p, pid)?;
        }
        Ok::<Option<OwnedFd>, Error>(master)
    })();
    let master = match started {
        Ok(m) => m,
        Err(e) => {
            let _ = syscall::pidfd_send_signal(child.as_fd(), libc::SIGKILL);
            if !o.detach {
                let _ = syscall::wait_pidfd(child.as_fd(), false);
            }
            return Err(e);
        }
    };
    drop(dir);
    if o.detach {
        return Ok(0);
    }
    Ok(foreground::wait(foreground::Foreground {
        pid,
        master,
        notify: None,
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Capability;

    fn base() -> Process {
        serde_json::from_value(serde_json::json!({
            "args": ["sh"], "cwd": "/", "env": ["PATH=/bin", "A=1"],
            "user": {"uid": 0, "gid": 0, "additionalGids": [5]},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
            "terminal": true
        }))
        .unwrap()
    }

    #[test]
    fn overrides_apply_as_runc() {
        let o = Overrides {
            args: vec!["id".into()],
            env: vec!["A=2".into(), "B=3".into()],
            cwd: Some("/tmp".into()),
            user: Some("1000:1001".into()),
            additional_gids: vec!["7".into()],
            caps: vec!["CAP_NET_ADMIN".into()],
            no_new_privs: Some(true),
            ..Default::default()
        };
        let p = process_from_overrides(&base(), &o).unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["id"]);
        assert_eq!(p.env().as_ref().unwrap(), &["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(p.cwd(), &PathBuf::from("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1001));
        assert_eq!(p.user().additional_gids().as_ref().unwrap(), &[5, 7]);
        assert_eq!(p.terminal(), Some(false));
        assert_eq!(p.no_new_privileges(), Some(true));
        let c = p.capabilities().as_ref().unwrap();
        for set in [c.bounding(), c.effective(), c.permitted()] {
            assert!(set.as_ref().unwrap().contains(&Capability::NetAdmin));
        }
        assert!(c
            .inheritable()
            .as_ref()
            .is_none_or(|i| !i.contains(&Capability::NetAdmin)));
        assert!(c
            .ambient()
            .as_ref()
            .is_none_or(|i| !i.contains(&Capability::NetAdmin)));
    }

    #[test]
    fn bad_overrides_are_refused() {
        let with = |f: fn(&mut Overrides)| {
            let mut o = Overrides {
                args: vec!["x".into()],
                ..Default::default()
            };
            f(&mut o);
            process_from_overrides(&base(), &o)
        };
        assert!(with(|o| o.user = Some("root".into())).is_err());
        assert!(with(|o| o.env = vec!["NOEQUALS".into()]).is_err());
        assert!(with(|o| o.caps = vec!["CAP_BOGUS".into()]).is_err());
        assert!(with(|o| o.args.clear()).is_err());
    }
}
