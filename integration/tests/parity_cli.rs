//! The runtime's command line as runc's callers read it: JSON keys in
//! runc's order, Go durations, help in runc's shape, exit codes (255 for an
//! exec that fails) and the error words scripts match. Each checked under
//! berth and runc where runc is installed (absent: SKIP, berth alone).

use std::process::{Command, Stdio};

use berth_integration::parity::*;
use berth_integration::*;
use serde_json::Value;

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `a`'s keys that `b` has too, in `a`'s order, equal `b`'s keys that `a`
/// has, in `b`'s: the same relative order.
fn same_order(what: &str, a: &Value, b: &Value) {
    let (ka, kb) = (keys(a), keys(b));
    let common_a: Vec<_> = ka.iter().filter(|k| kb.contains(k)).collect();
    let common_b: Vec<_> = kb.iter().filter(|k| ka.contains(k)).collect();
    assert!(
        !common_a.is_empty(),
        "{what}: nothing in common: {ka:?} {kb:?}"
    );
    assert_eq!(common_a, common_b, "{what}: berth {ka:?}, runc {kb:?}");
}

#[test]
fn state_list_and_events_print_keys_in_runcs_order() {
    let c = Ctx::new("cli-keys", &["sleep", "1000"]);
    let mut seen = Vec::new();
    for rt in runtimes("state_list_and_events_print_keys_in_runcs_order") {
        let id = start_detached(&c, &rt);
        let state: Value =
            serde_json::from_str(&ok(&c.with_runtime(&rt, &["state", &id]))).unwrap();
        let list: Value =
            serde_json::from_str(&ok(&c.with_runtime(&rt, &["list", "--format", "json"]))).unwrap();
        let events: Value =
            serde_json::from_str(&ok(&c.with_runtime(&rt, &["events", "--stats", &id]))).unwrap();
        ok(&c.with_runtime(&rt, &["delete", "--force", &id]));
        // The runtime spec's order, which runc keeps.
        assert_eq!(
            &keys(&state)[..8],
            [
                "ociVersion",
                "id",
                "pid",
                "status",
                "bundle",
                "rootfs",
                "created",
                "owner"
            ],
            "{rt}"
        );
        assert_eq!(keys(&events), ["type", "id", "data"], "{rt}");
        seen.push((state, list[0].clone(), events["data"].clone()));
    }
    if let [(bs, bl, be), (rs, rl, re)] = &seen[..] {
        same_order("state", bs, rs);
        same_order("list", bl, rl);
        same_order("events data", be, re);
        same_order("cpu", &be["cpu"], &re["cpu"]);
        same_order("cpu usage", &be["cpu"]["usage"], &re["cpu"]["usage"]);
        same_order("memory", &be["memory"], &re["memory"]);
        same_order(
            "memory usage",
            &be["memory"]["usage"],
            &re["memory"]["usage"],
        );
        same_order("memory swap", &be["memory"]["swap"], &re["memory"]["swap"]);
        same_order("memory raw", &be["memory"]["raw"], &re["memory"]["raw"]);
    }
}

#[test]
fn events_interval_takes_go_durations() {
    let c = Ctx::new("cli-interval", &["sleep", "1000"]);
    for rt in runtimes("events_interval_takes_go_durations") {
        let id = start_detached(&c, &rt);
        // 100 ms for a second: about ten lines (a loaded host gives fewer).
        let out = Command::new("timeout")
            .arg("1")
            .arg(bin_of(&rt))
            .arg("--root")
            .arg(c.dir.join(format!("root-{}", name_of(&rt))))
            .args(["events", "--interval", "100ms", &id])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let lines = stdout(&out).lines().count();
        assert!(
            lines >= 4,
            "{rt}: {lines} lines in 1 s at 100ms: {}",
            stderr(&out)
        );
        let bad = c.with_runtime(&rt, &["events", "--interval", "soon", &id]);
        assert_eq!(bad.status.code(), Some(1), "{rt}");
        assert!(
            stderr(&bad).contains(r#"invalid value \"soon\" for flag -interval"#),
            "{rt}: {}",
            stderr(&bad)
        );
        assert!(stdout(&bad).starts_with("Incorrect Usage: "), "{rt}");
        ok(&c.with_runtime(&rt, &["delete", "--force", &id]));
    }
}

#[test]
fn help_and_unknown_commands_are_answered_as_runc_answers() {
    let c = Ctx::new("cli-help", &["true"]);
    for rt in runtimes("help_and_unknown_commands_are_answered_as_runc_answers") {
        let n = name_of(&rt);
        let app = ok(&c.with_runtime(&rt, &["-h"]));
        let mut at = 0;
        for section in [
            "NAME:\n",
            "\nUSAGE:\n",
            "\nVERSION:\n",
            "\nCOMMANDS:\n",
            "\nGLOBAL OPTIONS:\n",
        ] {
            let i = app[at..]
                .find(section)
                .unwrap_or_else(|| panic!("{rt}: no {section:?} after {at} in {app}"));
            at += i;
        }
        for line in ["\n   --root value ", "\n   --version, -v ", "\n   help, h "] {
            assert!(app.contains(line), "{rt}: no {line:?}: {app}");
        }
        let h = ok(&c.with_runtime(&rt, &["events", "-h"]));
        assert!(
            h.starts_with(&format!("NAME:\n   {n} events - ")),
            "{rt}: {h}"
        );
        assert!(
            h.contains(&format!(
                "\nUSAGE:\n   {n} events [command options] <container-id>"
            )),
            "{rt}: {h}"
        );
        assert!(h.contains("\nOPTIONS:\n   --interval value  "), "{rt}: {h}");
        assert_eq!(h, ok(&c.with_runtime(&rt, &["help", "events"])), "{rt}");
        for unknown in [&["version"][..], &["nonsense", "-h"]] {
            let out = c.with_runtime(&rt, unknown);
            assert_eq!(out.status.code(), Some(3), "{rt} {unknown:?}");
            assert!(
                stderr(&out).contains(&format!("No help topic for '{}'", unknown[0])),
                "{rt}: {}",
                stderr(&out)
            );
        }
        let out = c.with_runtime(&rt, &["state"]);
        assert_eq!(out.status.code(), Some(1), "{rt}");
        assert!(
            stdout(&out).starts_with("Incorrect Usage.\n\nNAME:\n"),
            "{rt}"
        );
        assert!(
            stderr(&out).contains(&format!(r#"{n}: \"state\" requires exactly 1 argument(s)"#)),
            "{rt}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn exec_failures_exit_255_with_runcs_words() {
    let c = Ctx::new("cli-exec", &["sleep", "1000"]);
    for rt in runtimes("exec_failures_exit_255_with_runcs_words") {
        let id = start_detached(&c, &rt);
        for (cmd, says) in [
            (
                "/nonexistent",
                r#"exec failed: unable to start container process: exec: \"/nonexistent\": "#,
            ),
            (
                "no-such-program",
                r#"exec failed: unable to start container process: exec: \"no-such-program\": executable file not found in $PATH"#,
            ),
            (
                "/etc/passwd",
                r#"exec failed: unable to start container process: exec: \"/etc/passwd\": permission denied"#,
            ),
        ] {
            let out = c.with_runtime(&rt, &["exec", &id, cmd]);
            assert_eq!(out.status.code(), Some(255), "{rt} {cmd}: {}", stderr(&out));
            assert!(stderr(&out).contains(says), "{rt} {cmd}: {}", stderr(&out));
        }
        let out = c.with_runtime(&rt, &["exec", "nosuch", "true"]);
        assert_eq!(out.status.code(), Some(255), "{rt}");
        assert!(
            stderr(&out).contains("exec failed: container does not exist"),
            "{rt}"
        );
        ok(&c.with_runtime(&rt, &["kill", &id, "KILL"]));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ok(&c.with_runtime(&rt, &["state", &id])).contains("\"stopped\"") {
            assert!(std::time::Instant::now() < deadline, "{rt}: not stopped");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = c.with_runtime(&rt, &["exec", &id, "true"]);
        assert_eq!(out.status.code(), Some(255), "{rt}");
        assert!(
            stderr(&out).contains("exec failed: cannot exec in a stopped container"),
            "{rt}: {}",
            stderr(&out)
        );
        for cmd in ["pause", "update"] {
            let mut args = vec![cmd];
            if cmd == "update" {
                args.extend(["--pids-limit", "10"]);
            }
            args.push(&id);
            let out = c.with_runtime(&rt, &args);
            assert_eq!(out.status.code(), Some(1), "{rt} {cmd}");
            assert!(
                stderr(&out).contains("container not running"),
                "{rt} {cmd}: {}",
                stderr(&out)
            );
        }
        ok(&c.with_runtime(&rt, &["delete", &id]));
    }
}

#[test]
fn create_failures_say_what_runcs_say() {
    let c = Ctx::new("cli-create", &["no-such-program"]);
    for rt in runtimes("create_failures_say_what_runcs_say") {
        let n = name_of(&rt);
        let id = c.id_for(&rt);
        let b = c.bundle.to_str().unwrap().to_string();
        let out = c.with_runtime(&rt, &["create", "--bundle", &b, &id]);
        assert_eq!(out.status.code(), Some(1), "{rt}");
        let want = format!(
            r#"{n} create failed: unable to start container process: exec: \"no-such-program\": executable file not found in $PATH"#
        );
        assert!(stderr(&out).contains(&want), "{rt}: {}", stderr(&out));
        let _ = c.with_runtime(&rt, &["delete", "--force", &id]);
    }
}

#[test]
fn debug_logs_every_command() {
    let c = Ctx::new("cli-debug", &["sleep", "1000"]);
    let log = c.dir.join("debug.json");
    let l = log.to_str().unwrap().to_string();
    let b = c.bundle.to_str().unwrap().to_string();
    let with = |args: &[&str]| {
        let mut all = vec!["--debug", "--log", &l, "--log-format", "json"];
        all.extend(args);
        ok(&c.berth(&all))
    };
    let mut seen = 0;
    for args in [
        &["create", "--bundle", &b, &c.id][..],
        &["start", &c.id],
        &["state", &c.id],
        &["list"],
        &["kill", &c.id, "KILL"],
        &["delete", "--force", &c.id],
    ] {
        with(args);
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|x| serde_json::from_str(x).unwrap())
            .collect();
        assert!(
            lines[seen..].iter().any(|x| x["level"] == "debug"),
            "{args:?} logged no debug line: {:?}",
            &lines[seen..]
        );
        seen = lines.len();
    }
    // Text format on stderr, as runc's.
    let out = c.berth(&["--debug", "list"]);
    assert!(
        stderr(&out).contains("level=debug msg="),
        "{}",
        stderr(&out)
    );
}
