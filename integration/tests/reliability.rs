//! berthd under conditions it must survive: a full disk, a flood of idle
//! connections, being killed in the middle of `run -d`, and 200 `run --rm`
//! at once.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_integration::manager::Berthd;
use berth_integration::*;

/// The load and crash tests of this file run one at a time: each is meant
/// to have the machine's descriptors and CPUs to itself (two of them at once
/// made a refused connect out of the 24000-connection test's backlog).
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A small tmpfs of the test's, unmounted (lazily) when dropped.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(at: &Path, size: &str) -> SmallFs {
        fs::create_dir_all(at).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0700").as_str()),
        )
        .expect("mount a tmpfs");
        SmallFs(at.to_path_buf())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Writes `path` until the filesystem is full.
fn fill(path: &Path) {
    let mut f = fs::File::create(path).unwrap();
    let chunk = vec![7u8; 1 << 20];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn a_full_disk_fails_the_call_and_berthd_goes_on_once_space_is_freed() {
    let dir = std::env::temp_dir().join(format!("berth-it-enospc-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    // Removed last, after the filesystem below it is unmounted.
    let _rm = RemoveOnDrop(dir.clone());
    // Unmounted after berthd is gone (drop order: last declared first).
    let _fs = SmallFs::mount(&dir.join("root"), "64m");
    let d = Berthd::start(&dir, &[]);
    let image = dir.join("busybox.tar");
    ok(&Command::new(workspace().join("tools/mk-busybox-image.sh"))
        .arg(&image)
        .output()
        .unwrap());
    ok(&d.ctl(&[
        "import",
        "--base-name",
        "berth/busybox",
        image.to_str().unwrap(),
    ]));
    ok(&d.ctl(&[
        "run",
        "-d",
        "--name",
        "before",
        "berth/busybox",
        "sleep",
        "1000",
    ]));
    let filler = dir.join("root/filler");
    fill(&filler);
    // Metadata writes until one meets the full disk.
    let mut refused = None;
    for i in 0..400 {
        let out = d.ctl(&["tag", "berth/busybox", &format!("berth/fill:{i}")]);
        if !out.status.success() {
            refused = Some(stderr(&out));
            break;
        }
    }
    let Some(why) = refused else {
        fs::remove_file(&filler).unwrap();
        skip(
            "a_full_disk_fails_the_call_and_berthd_goes_on_once_space_is_freed",
            "400 tags fit in the store's free pages: no write met the full disk",
        );
        return;
    };
    assert!(why.contains("No space left on device"), "{why}");
    fs::remove_file(&filler).unwrap();
    // Space freed: no restart, every kind of call works again.
    let images = ok(&d.ctl(&["images"]));
    assert!(images.contains("berth/busybox"), "{images}");
    ok(&d.ctl(&["tag", "berth/busybox", "berth/after:1"]));
    assert!(ok(&d.ctl(&["images"])).contains("berth/after"));
    let ps = ok(&d.ctl(&["ps"]));
    assert!(ps.contains("before"), "{ps}");
    let out = ok(&d.ctl(&["run", "--rm", "berth/busybox", "echo", "ran"]));
    assert_eq!(out.trim(), "ran");
    ok(&d.ctl(&["rm", "-f", "before"]));
    ok(&d.ctl(&["rmi", "berth/after:1"]));
    drop(d);
}

/// Holds `n` connections to `socket` from a python process of the test's
/// (its own descriptor limit raised to the hard one); prints "held K".
fn holder(socket: &Path, n: usize) -> std::process::Child {
    let script = r#"
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(sys.argv[1])
    except OSError:
        s.close()
        continue
    held.append(s)
print("held", len(held), flush=True)
time.sleep(600)
"#;
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(socket)
        .arg(n.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3")
}

#[test]
fn twenty_four_thousand_idle_connections_do_not_stop_berthd() {
    let _heavy = heavy();
    let dir = std::env::temp_dir().join(format!("berth-it-conns-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let _rm = RemoveOnDrop(dir.clone());
    let d = Berthd::start(&dir, &[]);
    let socket = dir.join("berthd.sock");
    let mut holders: Vec<_> = (0..2).map(|_| holder(&socket, 12_000)).collect();
    for h in &mut holders {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(h.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("held "), "{line}");
    }
    // berthd still answers, promptly, and holds no more than its cap. A
    // connect may meet the listen backlog still full of the holders' (it is
    // refused at once, not queued): the client tries again, as long as the
    // deadline allows.
    let t = std::time::Instant::now();
    let out = loop {
        // Bounded: a berthd out of descriptors never accepts it.
        let out = Command::new("timeout")
            .arg("30")
            .arg(berth_integration::manager::sibling("berthctl"))
            .arg("--address")
            .arg(&socket)
            .args(["ps", "-a"])
            .output()
            .unwrap();
        if out.status.success() || t.elapsed() > std::time::Duration::from_secs(10) {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let took = t.elapsed();
    for h in &mut holders {
        let _ = h.kill();
        let _ = h.wait();
    }
    ok(&out);
    assert!(
        took < std::time::Duration::from_secs(10),
        "ps took {took:?}"
    );
    let fds = fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .unwrap()
        .count();
    assert!(fds < 1024 + 256, "berthd holds {fds} descriptors");
}

/// berthd SIGKILLed at every moment of `run -d` (shim starting, creating,
/// starting the container), then restarted: every shim that still serves is
/// reconnected (a container it was creating waited for) or shut down through
/// its API, and `rm -f` then leaves no shim, mount, cgroup, bundle or
/// snapshot. Before, a shim caught creating was taken for gone: its bundle
/// was removed under it and it lived on with the container's mount.
#[test]
fn berthd_killed_during_run_d_leaves_nothing_once_restarted_and_removed() {
    let _heavy = heavy();
    let mut s = stack::Stack::new("killrun");
    // Warm up (the first run loads the image's layer).
    s.ctl_ok(&["run", "--rm", "--net", "none", "berth/busybox", "true"]);
    for i in 0..16u64 {
        let name = format!("k{i}");
        let mut run = s
            .d()
            .ctl_cmd(&[
                "run",
                "-d",
                "--name",
                &name,
                "--net",
                "none",
                "berth/busybox",
                "sleep",
                "1000",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // From before the request arrives to after the container runs.
        std::thread::sleep(std::time::Duration::from_millis(4 * i));
        s.d.take().unwrap().kill();
        let _ = run.wait();
        s.start();
        let out = s.ctl(&["rm", "-f", &name]);
        assert!(
            out.status.success() || stderr(&out).contains("no such container"),
            "rm -f {name}: {}",
            stderr(&out)
        );
    }
    // Cleanups of shims found gone run in the background, each under its
    // container's lock: wait for them.
    let t = std::time::Instant::now();
    while !s.our_processes().is_empty() && t.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let left: Vec<String> = s
        .our_processes()
        .iter()
        .map(|p| {
            let cmd = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect();
    assert!(left.is_empty(), "processes left: {left:#?}");
    stack::wait_until("every mount gone", 20, || s.our_mounts().is_empty());
    s.assert_nothing_left();
}

/// 200 `run --rm` at once through one berthd: every one exits 0 with its
/// output, and nothing is left.
#[test]
fn two_hundred_concurrent_run_rm_all_succeed() {
    let _heavy = heavy();
    let s = stack::Stack::new("load");
    let children: Vec<_> = (0..200)
        .map(|i| {
            s.d()
                .ctl_cmd(&[
                    "run",
                    "--rm",
                    "--net",
                    "none",
                    "berth/busybox",
                    "echo",
                    &format!("n{i}"),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut failed = Vec::new();
    for (i, ch) in children.into_iter().enumerate() {
        let out = ch.wait_with_output().unwrap();
        if !out.status.success() || stdout(&out) != format!("n{i}\n") {
            failed.push(format!(
                "{i}: {:?} {:?} {:?}",
                out.status.code(),
                stdout(&out),
                stderr(&out)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 200 failed: {failed:#?}",
        failed.len()
    );
    stack::wait_until("every shim gone", 30, || s.our_processes().is_empty());
    s.assert_nothing_left();
}
