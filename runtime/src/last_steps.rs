//! The order of a process's last steps, from the end of berth's own setup
//! to execve: where the seccomp filter goes among the user change, the
//! release to `start` and the startContainer hooks.
//!
//! The filter is the container's, not berth's: a strict allow-list (default
//! ERRNO, written before close_range or openat2 existed) must break nothing
//! of berth's setup. So it goes on as late as it can:
//! - with no_new_privs, last, right before execve;
//! - without, installing it needs CAP_SYS_ADMIN, so before the user and
//!   capabilities change (as runc orders it); then only that change, the
//!   startContainer hooks (run as the process's user, as runc does) and
//!   execve come after it;
//! - a filter with a notify action hands its fd to the parent, which passes
//!   it to the listener: it goes on before the parent lets go (READY).
//!
//! Signals are reset just before the filter, so rt_sigaction is not needed
//! under it. Everything else (the executable looked up, fds marked
//! close-on-exec) happens before any of these steps.

/// One of the last steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Every signal back to its default disposition, none blocked.
    ResetSignals,
    /// The container's seccomp filter.
    Seccomp,
    /// Groups, gid, uid, umask and the capability sets.
    User,
    /// PR_SET_NO_NEW_PRIVS.
    NoNewPrivs,
    /// The parent is told that the process is ready (init only).
    Ready,
    /// The exec fifo is written: blocks until `start` (init only).
    ExecFifo,
    /// The startContainer hooks (init only).
    StartHooks,
    /// execve of the user's program.
    Exec,
}

/// What decides the order.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// A container's init (released by `start`), not an `exec`'d process.
    pub init: bool,
    /// process.noNewPrivileges.
    pub no_new_privs: bool,
    /// A filter is configured.
    pub seccomp: bool,
    /// The filter has a notify action (its fd goes to the parent).
    pub notifies: bool,
}

/// The steps in the order they run.
pub fn plan(s: Shape) -> Vec<Step> {
    use Step::*;
    // The user changes before the release (where the parent still reports
    // a failure) unless a filter must go on while berth is privileged.
    let user_first = s.no_new_privs || !s.seccomp;
    let mut v = Vec::with_capacity(8);
    let filter = |v: &mut Vec<Step>| {
        v.push(ResetSignals);
        if s.seccomp {
            v.push(Seccomp);
        }
        if !user_first {
            v.push(User);
        }
    };
    if user_first {
        v.push(User);
    }
    if s.no_new_privs {
        v.push(NoNewPrivs);
    }
    let early = s.seccomp && s.notifies;
    if early {
        filter(&mut v);
    }
    if s.init {
        v.extend([Ready, ExecFifo]);
        if user_first || early {
            v.push(StartHooks);
        }
    }
    if !early {
        filter(&mut v);
        if s.init && !user_first {
            v.push(StartHooks);
        }
    }
    v.push(Exec);
    v
}

#[cfg(test)]
mod tests {
    use super::Step::*;
    use super::*;

    fn all() -> Vec<Shape> {
        let mut v = Vec::new();
        for init in [false, true] {
            for no_new_privs in [false, true] {
                for seccomp in [false, true] {
                    for notifies in [false, true] {
                        if notifies && !seccomp {
                            continue;
                        }
                        v.push(Shape {
                            init,
                            no_new_privs,
                            seccomp,
                            notifies,
                        });
                    }
                }
            }
        }
        v
    }

    fn after(v: &[Step], s: Step) -> &[Step] {
        let i = v.iter().position(|x| *x == s).expect("step present");
        &v[i + 1..]
    }

    #[test]
    fn every_step_runs_once_and_exec_is_last() {
        for s in all() {
            let v = plan(s);
            assert_eq!(v.last(), Some(&Exec), "{s:?}");
            for step in [ResetSignals, User, Exec] {
                assert_eq!(v.iter().filter(|x| **x == step).count(), 1, "{s:?}: {v:?}");
            }
            let count = |x| v.iter().filter(|y| **y == x).count();
            assert_eq!(count(Seccomp), s.seccomp as usize, "{s:?}");
            assert_eq!(count(NoNewPrivs), s.no_new_privs as usize, "{s:?}");
            for step in [Ready, ExecFifo, StartHooks] {
                assert_eq!(count(step), s.init as usize, "{s:?}: {v:?}");
            }
        }
    }

    #[test]
    fn with_no_new_privs_only_execve_follows_the_filter() {
        for s in all()
            .into_iter()
            .filter(|s| s.no_new_privs && s.seccomp && !s.notifies)
        {
            assert_eq!(after(&plan(s), Seccomp), &[Exec], "{s:?}");
        }
    }

    #[test]
    fn without_no_new_privs_only_the_user_change_and_hooks_follow_the_filter() {
        let s = Shape {
            init: true,
            no_new_privs: false,
            seccomp: true,
            notifies: false,
        };
        assert_eq!(
            plan(s),
            vec![
                Ready,
                ExecFifo,
                ResetSignals,
                Seccomp,
                User,
                StartHooks,
                Exec
            ]
        );
        let exec = Shape { init: false, ..s };
        assert_eq!(plan(exec), vec![ResetSignals, Seccomp, User, Exec]);
    }

    #[test]
    fn the_release_and_the_fifo_never_run_under_a_plain_filter() {
        for s in all()
            .into_iter()
            .filter(|s| s.init && s.seccomp && !s.notifies)
        {
            let v = plan(s);
            assert!(!after(&v, Seccomp).contains(&Ready), "{s:?}: {v:?}");
            assert!(!after(&v, Seccomp).contains(&ExecFifo), "{s:?}: {v:?}");
        }
    }

    #[test]
    fn a_notifying_filter_is_handed_over_before_the_parent_lets_go() {
        for s in all().into_iter().filter(|s| s.init && s.notifies) {
            let v = plan(s);
            assert!(after(&v, Seccomp).contains(&Ready), "{s:?}: {v:?}");
        }
    }

    #[test]
    fn filter_needs_privilege_without_no_new_privs() {
        // Without no_new_privs, the filter must go on while berth still has
        // CAP_SYS_ADMIN: before the user change.
        for s in all().into_iter().filter(|s| s.seccomp && !s.no_new_privs) {
            let v = plan(s);
            assert!(after(&v, Seccomp).contains(&User), "{s:?}: {v:?}");
        }
        // With it, the user (and its capabilities) change first.
        for s in all().into_iter().filter(|s| s.seccomp && s.no_new_privs) {
            let v = plan(s);
            assert!(after(&v, User).contains(&Seccomp), "{s:?}: {v:?}");
            assert!(after(&v, NoNewPrivs).contains(&Seccomp), "{s:?}: {v:?}");
        }
    }

    #[test]
    fn hooks_run_as_the_processs_user() {
        for s in all().into_iter().filter(|s| s.init) {
            let v = plan(s);
            assert!(after(&v, User).contains(&StartHooks), "{s:?}: {v:?}");
            assert!(after(&v, ExecFifo).contains(&StartHooks), "{s:?}: {v:?}");
        }
    }

    #[test]
    fn without_a_filter_the_user_changes_while_the_parent_listens() {
        for s in all().into_iter().filter(|s| s.init && !s.seccomp) {
            let v = plan(s);
            assert!(after(&v, User).contains(&Ready), "{s:?}: {v:?}");
        }
    }

    #[test]
    fn signals_are_reset_before_the_filter() {
        for s in all().into_iter().filter(|s| s.seccomp) {
            let v = plan(s);
            assert!(after(&v, ResetSignals).contains(&Seccomp), "{s:?}: {v:?}");
        }
    }
}
