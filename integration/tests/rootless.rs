//! berth run by an ordinary user: `spec --rootless` as it is, and id ranges
//! from /etc/subuid through newuidmap.

use berth_integration::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs berth as uid/gid 1000 (no passwd entry needed), with `env`.
fn as_user(args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", "1000", "--regid", "1000", "--clear-groups"])
        .arg(berth_bin())
        .args(args)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("setpriv (util-linux)")
}

/// A directory for a test run by uid 1000, with a bundle and an
/// XDG_RUNTIME_DIR it owns; removed when the guard drops.
fn user_dirs(name: &str) -> (RemoveOnDrop, PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("berth-it-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let (bundle, xdg) = (dir.join("bundle"), dir.join("xdg"));
    for d in [&dir, &bundle, &xdg] {
        fs::create_dir_all(d).unwrap();
        std::os::unix::fs::chown(d, Some(1000), Some(1000)).unwrap();
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    (RemoveOnDrop(dir.clone()), dir, bundle, xdg)
}

#[test]
fn rootless_subuid_ranges_through_newuidmap() {
    // /etc/subuid and /etc/subgid of our own, bind-mounted over the host's
    // in a private mount namespace: the host's files are not changed.
    let (_cleanup, dir, bundle, xdg) = user_dirs("subuid");
    let user = String::from_utf8(
        Command::new("id")
            .args(["-nu", "1000"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let sub = format!("{}:200000:65536\n", user.trim());
    fs::write(dir.join("subuid"), &sub).unwrap();
    fs::write(dir.join("subgid"), &sub).unwrap();
    let b = bundle.to_str().unwrap();
    ok(&as_user(&["spec", "--rootless", "--bundle", b], &[]));
    let cfg = bundle.join("config.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&cfg).unwrap()).unwrap();
    v["root"] = json!({"path": busybox_rootfs(), "readonly": true});
    v["process"]["terminal"] = json!(false);
    let ranges = json!([{"containerID": 0, "hostID": 1000, "size": 1},
                        {"containerID": 1, "hostID": 200000, "size": 65536}]);
    v["linux"]["uidMappings"] = ranges.clone();
    v["linux"]["gidMappings"] = ranges;
    v["process"]["user"] = json!({"uid": 0, "gid": 0, "additionalGids": [7]});
    for set in ["bounding", "effective", "permitted"] {
        v["process"]["capabilities"][set] = json!(["CAP_CHOWN"]);
    }
    v["process"]["args"] = json!([
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -G; \
         touch /dev/shm/f && chown 5:6 /dev/shm/f && stat -c %u:%g /dev/shm/f"
    ]);
    fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    let script = format!(
        "mount --bind {d}/subuid /etc/subuid && mount --bind {d}/subgid /etc/subgid && \
         exec setpriv --reuid 1000 --regid 1000 --clear-groups env XDG_RUNTIME_DIR={x} {berth} run --bundle {b} sub",
        d = dir.display(),
        x = xdg.display(),
        berth = berth_bin().display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let words: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let want: Vec<Vec<&str>> = vec![
        vec!["0", "1000", "1"],
        vec!["1", "200000", "65536"],
        vec!["0", "1000", "1"],
        vec!["1", "200000", "65536"],
        // newgidmap leaves setgroups allowed, so additionalGids apply.
        vec!["allow"],
        vec!["0", "7"],
        // Ids beyond the caller's own exist in the container.
        vec!["5:6"],
    ];
    assert_eq!(words, want, "{text}");

    // Without the helpers' blessing (no ranges for this user) the error names the field.
    fs::write(dir.join("subuid"), "").unwrap();
    let out = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script.replace(" sub", " sub2"),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("linux.uidMappings: newuidmap"),
        "{}",
        stderr(&out)
    );
    assert!(!xdg.join("berth/sub2").exists());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn rootless_run_as_an_ordinary_user() {
    let (_cleanup, dir, bundle, xdg) = user_dirs("rootless");
    let b = bundle.to_str().unwrap();
    ok(&as_user(&["spec", "--rootless", "--bundle", b], &[]));
    let cfg = bundle.join("config.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&cfg).unwrap()).unwrap();
    v["root"] = json!({"path": busybox_rootfs(), "readonly": true});
    v["process"]["terminal"] = json!(false);
    v["process"]["args"] = json!([
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; hostname; exit 4"
    ]);
    fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();

    // The state root defaults to $XDG_RUNTIME_DIR/berth; no cgroup is
    // writable, and none is needed without limits.
    let out = as_user(&["run", "--bundle", b, "rl"], &[("XDG_RUNTIME_DIR", &xdg)]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(out.status.code(), Some(4), "{text}{}", stderr(&out));
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "1000", "1"]
    );
    assert_eq!(lines[2], "berth");
    assert!(xdg.join("berth").is_dir());
    assert!(!xdg.join("berth/rl").exists(), "deleted after the run");

    // A limit it cannot apply is a clear error, leaving nothing behind.
    v["linux"]["resources"] = json!({"pids": {"limit": 10}});
    fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = as_user(&["run", "--bundle", b, "rl2"], &[("XDG_RUNTIME_DIR", &xdg)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unprivileged"), "{}", stderr(&out));
    assert!(!xdg.join("berth/rl2").exists());
    let _ = fs::remove_dir_all(&dir);
}
