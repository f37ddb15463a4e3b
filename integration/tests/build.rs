//! `berthctl build` end to end: a multi-stage Dockerfile with every
//! instruction, built offline over the busybox image, compared with
//! Debian's buildah building the same Dockerfile (the unpacked trees and
//! the config); the cache (hits, invalidation, --no-cache, collected with
//! its image); `.dockerignore`; a failing RUN; a context piped in as a tar.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_integration::oci::{run, tree};
use berth_integration::stack::Stack;
use berth_integration::{ok, stderr};

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=berth/busybox
FROM ${BASE} AS build
ARG GREETING=hello
ENV APP_HOME=/app \
    MODE=test
# A comment between instructions.
WORKDIR $APP_HOME
COPY --chown=1000:1000 src/ ./src/
COPY *.txt ./
ADD bundle.tar.gz /opt/
RUN echo "$GREETING from $MODE" > greeting && \
    rm -f src/remove-me && stat -c '%a %u %g %n' src/* > listing && \
    echo "visible output of step 8"
RUN ["sh", "-c", "echo exec-form > exec.txt"]
SHELL ["/bin/sh", "-ec"]
RUN echo shelled > shelled.txt

FROM berth/busybox
LABEL org.example.name="app" version=1.0
COPY --from=build /app /srv
COPY --from=build /opt/bundle /opt/bundle
EXPOSE 8080 53/udp
VOLUME /data
USER 1000:1000
WORKDIR /srv
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=2 CMD wget -q -O- localhost:8080 || exit 1
ONBUILD COPY a.txt /srv/from-onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat greeting"]
"#;

/// A context directory for the Dockerfile above.
fn context(dir: &Path) -> PathBuf {
    let c = dir.join("context");
    fs::create_dir_all(c.join("src")).unwrap();
    fs::create_dir_all(c.join("bundle")).unwrap();
    fs::write(c.join("Dockerfile"), DOCKERFILE).unwrap();
    fs::write(c.join("src/one"), "one\n").unwrap();
    fs::write(c.join("src/remove-me"), "gone\n").unwrap();
    fs::write(c.join("a.txt"), "a\n").unwrap();
    fs::write(c.join("b.txt"), "b\n").unwrap();
    fs::write(c.join("secret.key"), "hunter2\n").unwrap();
    fs::write(c.join("bundle/file"), "inside\n").unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&c)
        .arg("-czf")
        .arg(c.join("bundle.tar.gz"))
        .arg("bundle"));
    fs::remove_dir_all(c.join("bundle")).unwrap();
    fs::write(c.join(".dockerignore"), "# keys stay home\n*.key\n").unwrap();
    c
}

/// buildah with a private store under `dir`.
fn buildah(dir: &Path) -> Command {
    let mut c = Command::new("buildah");
    c.arg("--root")
        .arg(dir.join("buildah/root"))
        .arg("--runroot")
        .arg(dir.join("buildah/run"))
        .args(["--storage-driver", "vfs"]);
    c
}

/// The image's config and unpacked tree, from an OCI layout.
fn unpack(layout: &Path, tag: &str, to: &Path) -> serde_json::Value {
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(to));
    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let m = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap()
        .clone();
    let man: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(m["digest"].as_str().unwrap())).unwrap()).unwrap();
    serde_json::from_slice(&fs::read(blob(man["config"]["digest"].as_str().unwrap())).unwrap())
        .unwrap()
}

/// Builds with `name` in the context, written with `text`, as the Dockerfile.
fn build_file(
    s: &Stack,
    ctx: &Path,
    name: &str,
    text: impl AsRef<str>,
    extra: &[&str],
) -> std::process::Output {
    let f = ctx.join(name);
    fs::write(&f, text.as_ref()).unwrap();
    let mut a = vec!["-f", f.to_str().unwrap()];
    a.extend_from_slice(extra);
    a.push(ctx.to_str().unwrap());
    build(s, &a)
}

fn build(s: &Stack, args: &[&str]) -> std::process::Output {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    s.ctl(&a)
}

#[test]
fn a_multi_stage_dockerfile_builds_as_buildah_builds_it() {
    let s = Stack::new("build");
    let ctx = context(&s.dir);
    let c = ctx.to_str().unwrap();
    let out = build(&s, &["-t", "berth/app:v1", "-t", "berth/app:latest", c]);
    let text = ok(&out);
    assert!(
        text.starts_with("Step 1/24 : FROM ${BASE} AS build\n"),
        "{text}"
    );
    // A step's own output streams with the build's.
    assert!(text.contains("\nvisible output of step 8\n"), "{text}");
    assert!(text.contains(" ---> Running in "), "{text}");
    let last: Vec<&str> = text.lines().rev().take(3).collect();
    assert_eq!(last[0], "Successfully tagged docker.io/berth/app:latest");
    assert_eq!(last[1], "Successfully tagged docker.io/berth/app:v1");
    assert!(last[2].starts_with("Successfully built "), "{text}");
    let id = last[2].trim_start_matches("Successfully built ");

    // It runs, as its config says: entrypoint, cmd, user, workdir.
    let out = s.ctl(&["run", "--rm", "--net", "none", "berth/app:v1"]);
    assert_eq!(ok(&out), "hello from test\n");
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "none",
        "berth/app:v1",
        "id -u; pwd; cat listing exec.txt shelled.txt; cat /opt/bundle/file",
    ]);
    assert_eq!(
        ok(&out),
        "1000\n/srv\n644 1000 1000 src/one\nexec-form\nshelled\ninside\n"
    );
    // The history names every step, newest first, with the image id.
    let h = ok(&s.ctl(&["history", "berth/app:v1"]));
    assert!(h.lines().nth(1).unwrap().starts_with(id), "{h}");
    assert!(h.contains("CMD [\"cat greeting\"]"), "{h}");

    // The same Dockerfile through buildah: the same files, the same config.
    let base = s.dir.join("busybox.tar");
    let layout = s.dir.join("bb-layout");
    fs::create_dir_all(&layout).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-xf")
        .arg(&base));
    let pulled = run(buildah(&s.dir)
        .args(["pull", "-q"])
        .arg(format!("oci:{}:latest", layout.display())));
    run(buildah(&s.dir).args(["tag", pulled.trim(), "docker.io/berth/busybox:latest"]));
    run(buildah(&s.dir)
        .args([
            "build",
            "--isolation",
            "chroot",
            "--format",
            "docker",
            "-q",
            "-t",
            "app:v1",
        ])
        .arg(&ctx));
    run(buildah(&s.dir)
        .args(["push", "-q", "app:v1"])
        .arg(format!("oci:{}:v1", s.dir.join("theirs").display())));
    ok(&s.ctl(&[
        "save",
        "-o",
        s.dir.join("ours.tar").to_str().unwrap(),
        "berth/app:v1",
    ]));
    let ours = s.dir.join("ours");
    fs::create_dir_all(&ours).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&ours)
        .arg("-xf")
        .arg(s.dir.join("ours.tar")));
    let oc = unpack(&ours, "v1", &s.dir.join("ours-root"));
    let tc = unpack(&s.dir.join("theirs"), "v1", &s.dir.join("theirs-root"));
    let (ot, tt) = (
        tree(&s.dir.join("ours-root/rootfs")),
        tree(&s.dir.join("theirs-root/rootfs")),
    );
    for (p, v) in &tt {
        assert_eq!(ot.get(p), Some(v), "{p} differs from buildah's");
    }
    for p in ot.keys() {
        assert!(tt.contains_key(p), "{p} is not in buildah's image");
    }
    for k in [
        "Cmd",
        "Entrypoint",
        "Env",
        "ExposedPorts",
        "StopSignal",
        "User",
        "Volumes",
        "WorkingDir",
    ] {
        assert_eq!(oc["config"][k], tc["config"][k], "config {k}");
    }
    assert_eq!(oc["config"]["Labels"]["org.example.name"], "app");
    assert_eq!(oc["config"]["Labels"]["version"], "1.0");
    assert_eq!(oc["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    // buildah's OCI output drops these two; docker's image config has them.
    assert_eq!(
        oc["config"]["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "wget -q -O- localhost:8080 || exit 1"], "Interval": 30_000_000_000i64, "Retries": 2})
    );
    assert_eq!(
        oc["config"]["OnBuild"],
        serde_json::json!(["COPY a.txt /srv/from-onbuild"])
    );

    // A child image runs the ONBUILD trigger, and does not inherit it.
    let child = s.dir.join("child");
    fs::create_dir_all(&child).unwrap();
    fs::write(
        child.join("Dockerfile"),
        "FROM berth/app:v1\nCMD [\"cat from-onbuild\"]\n",
    )
    .unwrap();
    fs::write(child.join("a.txt"), "from the trigger\n").unwrap();
    let out = build(&s, &["-t", "berth/child", child.to_str().unwrap()]);
    assert!(
        ok(&out).contains("Running ONBUILD trigger COPY a.txt /srv/from-onbuild"),
        "{}",
        ok(&out)
    );
    assert_eq!(
        ok(&s.ctl(&["run", "--rm", "--net", "none", "berth/child"])),
        "from the trigger\n"
    );

    // --target stops at a stage; --build-arg changes what RUN sees.
    let out = build(
        &s,
        &[
            "--target",
            "build",
            "--build-arg",
            "GREETING=hi",
            "-t",
            "berth/stage",
            c,
        ],
    );
    ok(&out);
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "none",
        "berth/stage",
        "cat",
        "/app/greeting",
    ]);
    assert_eq!(ok(&out), "hi from test\n");
}

#[test]
fn the_build_cache_hits_invalidates_and_goes_with_its_image() {
    let s = Stack::new("bcache");
    let ctx = context(&s.dir);
    let c = ctx.to_str().unwrap();
    let first = ok(&build(&s, &["-t", "berth/cached", c]));
    let id = |text: &str| text.lines().rev().nth(1).unwrap().to_string();
    // Unchanged: every step after each FROM comes from the cache, same image.
    let again = ok(&build(&s, &["-t", "berth/cached", c]));
    assert_eq!(again.matches(" ---> Using cache").count(), 21, "{again}");
    assert_eq!(id(&again), id(&first));
    // A changed file: steps before the COPY that reads it are cached, the
    // COPY and everything after it are made again.
    fs::write(ctx.join("b.txt"), "b, changed\n").unwrap();
    let changed = ok(&build(&s, &["-t", "berth/cached", c]));
    let step = |n: usize| {
        let start = changed.find(&format!("Step {n}/24")).unwrap();
        let end = changed[start..]
            .find("\nStep ")
            .map_or(changed.len(), |e| start + e);
        changed[start..end].to_string()
    };
    for n in [3, 4, 5] {
        assert!(step(n).contains("Using cache"), "step {n}: {changed}");
    }
    for n in [6, 7, 8] {
        assert!(!step(n).contains("Using cache"), "step {n}: {changed}");
    }
    assert_ne!(id(&changed), id(&first));
    let out = s.ctl(&["run", "--rm", "--net", "none", "berth/cached", "cat b.txt"]);
    assert_eq!(ok(&out), "b, changed\n");
    // --no-cache makes every step.
    let fresh = ok(&build(&s, &["--no-cache", "-t", "berth/cached", c]));
    assert!(!fresh.contains("Using cache"), "{fresh}");
    // The cache goes with the images built through it.
    ok(&s.ctl(&["rmi", "berth/cached"]));
    ok(&s.ctl(&["image", "prune", "-a"]));
    ok(&s.ctl(&[
        "import",
        "--base-name",
        "berth/busybox",
        s.dir.join("busybox.tar").to_str().unwrap(),
    ]));
    let after = ok(&build(&s, &["-t", "berth/cached", c]));
    assert!(!after.contains("Using cache"), "{after}");
}

#[test]
fn ignored_files_failing_runs_and_piped_contexts() {
    let s = Stack::new("bmisc");
    let ctx = context(&s.dir);
    let out = build_file(
        &s,
        &ctx,
        "Dockerfile.copy",
        "FROM berth/busybox\nCOPY . /ctx/\nRUN ls -a /ctx | tr '\\n' ' '\n",
        &["-t", "berth/ctx"],
    );
    let text = ok(&out);
    assert!(text.contains("a.txt") && text.contains("src"), "{text}");
    assert!(
        !text.contains("secret.key"),
        "an ignored file was copied: {text}"
    );
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "none",
        "berth/ctx",
        "cat",
        "/ctx/secret.key",
    ]);
    assert!(!out.status.success());

    // A failing RUN: the line, the command and its status; no image.
    let out = build_file(
        &s,
        &ctx,
        "Dockerfile.fail",
        "FROM berth/busybox\nRUN echo before\nRUN echo doomed; exit 3\nRUN echo never\n",
        &["-t", "berth/fail"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("doomed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr(&out).contains("dockerfile line 3: the command '/bin/sh -c echo doomed; exit 3' returned a non-zero code: 3"),
        "{}",
        stderr(&out)
    );
    assert!(!ok(&s.ctl(&["images", "--format", "json"])).contains("berth/fail"));
    // Nothing of the build is left: no container, no mount.
    assert_eq!(ok(&s.ctl(&["ps", "-a", "-q"])), "");
    assert!(
        s.our_mounts().iter().all(|m| !m.contains("/build/")),
        "{:?}",
        s.our_mounts()
    );

    // An unknown instruction is refused before anything runs.
    let out = build_file(
        &s,
        &ctx,
        "Dockerfile.bad",
        "FROM berth/busybox\nFROB x\n",
        &[],
    );
    assert!(
        stderr(&out).contains("dockerfile line 2: unknown instruction: FROB"),
        "{}",
        stderr(&out)
    );

    // ADD of a URL: fetched by berthd (here from a server in the test's
    // network namespace), 0600, checked against --checksum; an address with
    // no route is a clear error.
    let www = s.dir.join("www");
    fs::create_dir_all(&www).unwrap();
    fs::write(www.join("remote.txt"), "from the web\n").unwrap();
    let mut server = Command::new("nsenter")
        .arg(format!("--net={}", s.net.as_ref().unwrap().path.display()))
        .args([
            "python3",
            "-u",
            "-m",
            "http.server",
            "8099",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&www)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let sum = run(Command::new("sha256sum").arg(www.join("remote.txt")));
    let sum = sum.split_whitespace().next().unwrap();
    let out = build_file(&s, &ctx, "Dockerfile.url", format!("FROM berth/busybox\nADD --checksum=sha256:{sum} http://127.0.0.1:8099/remote.txt /r/\nRUN stat -c '%a %u' /r/remote.txt && cat /r/remote.txt\n"), &[]);
    let text = ok(&out);
    assert!(text.contains("\n600 0\nfrom the web\n"), "{text}");
    let out = build_file(&s, &ctx, "Dockerfile.url", "FROM berth/busybox\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 http://127.0.0.1:8099/remote.txt /r/\n", &[]);
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
    let _ = server.kill();
    let _ = server.wait();
    let out = build_file(
        &s,
        &ctx,
        "Dockerfile.url",
        "FROM berth/busybox\nADD http://192.0.2.1/x /x\n",
        &[],
    );
    assert!(
        stderr(&out).contains(
            "dockerfile line 2: ADD http://192.0.2.1/x /x: ADD http://192.0.2.1/x: cannot fetch"
        ),
        "{}",
        stderr(&out)
    );

    // A context piped in as a tar, its Dockerfile inside.
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    let mut child = s
        .d()
        .ctl_cmd(&["build", "-q", "-t", "berth/piped", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tar.stdout).unwrap();
    let out = child.wait_with_output().unwrap();
    let id = ok(&out);
    assert!(id.starts_with("sha256:") && id.lines().count() == 1, "{id}");
    let out = s.ctl(&["run", "--rm", "--net", "none", "berth/piped"]);
    assert_eq!(ok(&out), "hello from test\n");
}

#[test]
fn rebuilds_leave_dangling_images_for_rmi_and_prune() {
    let s = Stack::new("dangling");
    let ctx = s.dir.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM berth/busybox\nCOPY v /v\n").unwrap();
    fs::write(ctx.join("v"), "1\n").unwrap();
    let c = ctx.to_str().unwrap();
    let first = ok(&build(&s, &["-q", "-t", "berth/dang", c]));
    fs::write(ctx.join("v"), "2\n").unwrap();
    let second = ok(&build(&s, &["-q", "-t", "berth/dang", c]));
    assert_ne!(first, second);
    let short = |id: &str| id.trim().trim_start_matches("sha256:")[..12].to_string();
    // The first build lost its name: <none>:<none>, listed and filtered.
    let table = ok(&s.ctl(&["images"]));
    assert!(table.starts_with("REPOSITORY"), "{table}");
    assert!(
        table.lines().next().unwrap().contains("IMAGE ID"),
        "{table}"
    );
    let dangling = ok(&s.ctl(&["images", "-f", "dangling=true"]));
    let rows: Vec<&str> = dangling.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{dangling}");
    assert!(
        rows[0].starts_with("<none>") && rows[0].contains(&short(&first)),
        "{dangling}"
    );
    let named = ok(&s.ctl(&["images", "-f", "dangling=false"]));
    assert!(
        named.contains("docker.io/berth/dang") && !named.contains("<none>"),
        "{named}"
    );
    let ids = ok(&s.ctl(&["images", "-qa"]));
    assert!(
        ids.lines().any(|l| l == short(&first)) && ids.lines().any(|l| l == short(&second)),
        "{ids}"
    );

    // rmi refuses an image a (stopped) container uses; -f takes it.
    ok(&s.ctl(&[
        "run",
        "--name",
        "user",
        "--net",
        "none",
        "berth/dang",
        "true",
    ]));
    let out = s.ctl(&["rmi", "berth/dang"]);
    assert!(!out.status.success(), "removed an image in use");
    assert!(
        stderr(&out).contains("conflict: unable to remove repository reference")
            && stderr(&out).contains("(must force)"),
        "{}",
        stderr(&out)
    );
    ok(&s.ctl(&["tag", "berth/dang", "berth/dang:keep"]));
    let out = ok(&s.ctl(&["rmi", "-f", "berth/dang"]));
    assert_eq!(out, "Untagged: docker.io/berth/dang:latest\n");
    // By id: every name of the content. A container still uses it: it
    // stays, dangling, and its layers with it.
    let out = ok(&s.ctl(&["rmi", "-f", &short(&second)]));
    assert_eq!(out, "Untagged: docker.io/berth/dang:keep\n");
    ok(&s.ctl(&["image", "prune", "-a", "-f"]));
    let dangling = ok(&s.ctl(&["images", "-q", "--no-trunc", "-f", "dangling=true"]));
    assert_eq!(dangling, second, "{dangling}");
    // What the container needs is never collected: it commits and starts.
    ok(&s.ctl(&["commit", "user", "berth/saved"]));
    let out = s.ctl(&["run", "--rm", "--net", "none", "berth/saved", "cat", "/v"]);
    assert_eq!(ok(&out), "2\n");
    ok(&s.ctl(&["start", "user"]));

    // system df: docker's rows.
    let df = ok(&s.ctl(&["system", "df"]));
    let head: Vec<&str> = df.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        "{df}"
    );
    for row in ["Images", "Containers", "Local Volumes", "Build Cache"] {
        assert!(df.lines().any(|l| l.starts_with(row)), "{row}: {df}");
    }
    let containers = df.lines().find(|l| l.starts_with("Containers")).unwrap();
    assert_eq!(containers.split_whitespace().nth(1), Some("1"), "{df}");
    let v = ok(&s.ctl(&["system", "df", "-v"]));
    assert!(
        v.contains("Images space usage:") && v.contains("Containers space usage:"),
        "{v}"
    );
    assert!(v.contains("user"), "{v}");

    // prune takes the dangling image once no container uses it, and says
    // what it reclaimed.
    ok(&s.ctl(&["rm", "-f", "user"]));
    let out = ok(&s.ctl(&["image", "prune", "-f"]));
    assert!(out.starts_with("Deleted Images:\n"), "{out}");
    assert!(out.contains("deleted: sha256:"), "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert_eq!(ok(&s.ctl(&["images", "-q", "-f", "dangling=true"])), "");
    // Named images stay: prune without -a takes dangling images only.
    assert!(ok(&s.ctl(&["images"])).contains("docker.io/berth/saved"));
}
