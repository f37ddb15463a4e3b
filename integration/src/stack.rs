//! A whole stack for a test: its own berthd (in a network namespace of
//! its own unless asked otherwise), directory and cgroup parent, with the
//! busybox image imported; everything it started is removed on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::manager::Berthd;
use crate::{ok, stdout, workspace};

/// A network namespace pinned at a file, with `lo` up; unpinned on drop.
/// Nothing a test does inside reaches the machine's own interfaces.
pub struct NetNs {
    /// The pinned namespace file.
    pub path: PathBuf,
}

impl NetNs {
    /// Makes a namespace pinned at `path`.
    pub fn new(path: &Path) -> NetNs {
        fs::File::create(path).unwrap();
        ok(&Command::new("unshare")
            .arg(format!("--net={}", path.display()))
            .arg("true")
            .output()
            .unwrap());
        let n = NetNs {
            path: path.to_path_buf(),
        };
        ok(&n.run(&["busybox", "ip", "link", "set", "lo", "up"]));
        n
    }

    /// Runs a command inside.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .args(args)
            .output()
            .unwrap()
    }

    /// The interface names inside (without `@peer`).
    pub fn links(&self) -> Vec<String> {
        let out = ok(&self.run(&["busybox", "ip", "-o", "link"]));
        let mut v: Vec<String> = out
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect();
        v.sort();
        v
    }

    /// `iptables-save` inside, without its comment and counter lines.
    pub fn iptables(&self) -> Vec<String> {
        let out = ok(&self.run(&["iptables-save"]));
        out.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(" [").next().unwrap_or(l).to_string())
            .collect()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&self.path);
    }
}

/// A test's directory, berthd, cgroup parent and network namespace;
/// cleaned up on drop.
pub struct Stack {
    /// The test's directory.
    pub dir: PathBuf,
    /// The cgroup parent's name.
    pub cgroup: String,
    /// Its berthd while running.
    pub d: Option<Berthd>,
    /// The network namespace berthd runs in (None: the host's).
    pub net: Option<NetNs>,
    /// More flags for berthd at its next start.
    pub extra_args: Vec<String>,
}

impl Stack {
    /// berthd in a network namespace of its own (bridges, veths, iptables
    /// rules and published ports live there), with the busybox image.
    pub fn new(name: &str) -> Stack {
        Stack::with(name, true, &[])
    }

    /// berthd in the host's network namespace (to reach a registry on the
    /// host's loopback); its containers must not use CNI networks.
    pub fn in_host_net(name: &str) -> Stack {
        Stack::with(name, false, &[])
    }

    /// In the host's network, with more flags for berthd from its start.
    pub fn in_host_net_with(name: &str, args: &[&str]) -> Stack {
        Stack::with(name, false, args)
    }

    fn with(name: &str, own_net: bool, args: &[&str]) -> Stack {
        let dir = std::env::temp_dir().join(format!("berth-it-ctr-{name}-{}", std::process::id()));
        if let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") {
            // A netns file left pinned by an earlier run of this pid.
            for l in mi.lines().filter(|l| l.contains(&*dir.to_string_lossy())) {
                if let Some(p) = l.split(' ').nth(4) {
                    let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let cgroup = format!("berth-it-ctr-{name}-{}", std::process::id());
        let net = own_net.then(|| NetNs::new(&dir.join("netns")));
        let mut s = Stack {
            dir,
            cgroup,
            d: None,
            net,
            extra_args: args.iter().map(|a| a.to_string()).collect(),
        };
        s.start();
        let image = s.dir.join("busybox.tar");
        let out = Command::new(workspace().join("tools/mk-busybox-image.sh"))
            .arg(&image)
            .output()
            .unwrap();
        ok(&out);
        let out = s.ctl(&[
            "import",
            "--base-name",
            "berth/busybox",
            image.to_str().unwrap(),
        ]);
        ok(&out);
        s
    }

    /// Starts (or restarts) berthd, in the test's network namespace.
    pub fn start(&mut self) {
        let parent = format!("/{}", self.cgroup);
        let conf = self.dir.join("net.d");
        let mut args = vec![
            "--cgroup-parent",
            &parent,
            "--cni-conf-dir",
            conf.to_str().unwrap(),
        ];
        args.extend(self.extra_args.iter().map(String::as_str));
        self.d = Some(match &self.net {
            Some(n) => Berthd::start_in(&self.dir.join("berthd"), Some(&n.path), &[], &args),
            None => Berthd::start_with(&self.dir.join("berthd"), &[], &args),
        });
    }

    /// Its berthd.
    pub fn d(&self) -> &Berthd {
        self.d.as_ref().expect("berthd running")
    }

    /// berthctl against it.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        self.d().ctl(args)
    }

    /// berthctl, which must succeed; its stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        ok(&self.ctl(args))
    }

    /// `inspect` of one container.
    pub fn inspect(&self, id: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ctl_ok(&["inspect", id])).unwrap();
        v[0].clone()
    }

    /// Processes whose command line names this test's directory (shims).
    pub fn our_processes(&self) -> Vec<i32> {
        let needle = self.dir.join("berthd/state/bundles").display().to_string();
        let mut out = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(&needle) {
                out.push(pid);
            }
        }
        out
    }

    /// Mounts under this test's directory (berthd's).
    pub fn our_mounts(&self) -> Vec<String> {
        let needle = self.dir.display().to_string();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&needle))
            // The test's own pinned network namespace is not berthd's.
            .filter(|l| {
                let own = self.net.as_ref().map(|n| n.path.display().to_string());
                l.split(' ').nth(4).map(str::to_string) != own
            })
            .map(str::to_string)
            .collect()
    }

    /// Container cgroups left under this test's parent.
    pub fn our_cgroups(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for p in crate::cgroup_dirs_named(&self.cgroup) {
            for ns in fs::read_dir(&p).into_iter().flatten().flatten() {
                if ns.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    for c in fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                        if c.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            out.push(c.path());
                        }
                    }
                }
            }
        }
        out
    }

    /// Snapshots in the store (the image's one layer when no container is left).
    pub fn snapshots(&self) -> usize {
        fs::read_dir(self.dir.join("berthd/root/overlay/snapshots"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// No container, shim, mount, cgroup, snapshot, bundle or network
    /// namespace is left.
    pub fn assert_nothing_left(&self) {
        assert_eq!(self.ctl_ok(&["ps", "-a", "-q"]).trim(), "");
        assert_eq!(self.our_processes(), Vec::<i32>::new(), "shims left");
        assert_eq!(self.our_mounts(), Vec::<String>::new(), "mounts left");
        assert_eq!(self.our_cgroups(), Vec::<PathBuf>::new(), "cgroups left");
        assert_eq!(self.snapshots(), 1, "snapshots besides the image's layer");
        let bundles = self.dir.join("berthd/state/bundles/default");
        let left: Vec<_> = fs::read_dir(&bundles)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "bundles left: {left:?}");
        let netns = self.dir.join("berthd/state/netns/default");
        let left: Vec<_> = fs::read_dir(&netns)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "network namespaces left: {left:?}");
        let att = self.dir.join("berthd/root/net/attachments/default");
        let left: Vec<_> = fs::read_dir(&att)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "network attachments left: {left:?}");
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(d) = &self.d {
            let ids = d.ctl(&["ps", "-a", "-q"]);
            for id in stdout(&ids).lines() {
                let _ = d.ctl(&["rm", "-f", id]);
            }
        }
        drop(self.d.take());
        // Shims and containers this test started and its berthd did not remove.
        for pid in self.our_processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for m in self.our_mounts().iter().rev() {
            if let Some(p) = m.split(' ').nth(4) {
                let _ = Command::new("umount").arg("-l").arg(p).output();
            }
        }
        let mut cgs = self.our_cgroups();
        cgs.extend(
            crate::cgroup_dirs_named(&self.cgroup)
                .into_iter()
                .flat_map(|p| {
                    let mut v: Vec<PathBuf> = fs::read_dir(&p)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                        .map(|e| e.path())
                        .collect();
                    v.push(p);
                    v
                }),
        );
        for c in cgs {
            let _ = fs::remove_dir(c);
        }
        drop(self.net.take());
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A command's exit code (-1 for a signal).
pub fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Polls `f` until it holds; fails the test after `secs`.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
