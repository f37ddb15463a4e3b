//! Running one bundle under berth and runc and comparing what each did.

use std::path::{Path, PathBuf};

use crate::{berth_bin, ok, runc_bin, skip, Ctx};

/// The runtimes to compare: berth, and runc where it is installed (absent:
/// SKIP is said and berth alone is checked).
pub fn runtimes(test: &str) -> Vec<String> {
    let mut v = vec!["berth".to_string()];
    match runc_bin() {
        Some(r) => v.push(r.to_string_lossy().into_owned()),
        None => skip(
            test,
            "runc is not installed (apt-get install runc): berth alone",
        ),
    }
    v
}

/// The runtime's program name (`berth`, `runc`).
pub fn name_of(rt: &str) -> String {
    Path::new(rt)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The runtime's binary.
pub fn bin_of(rt: &str) -> PathBuf {
    if rt == "berth" {
        berth_bin()
    } else {
        rt.into()
    }
}

/// Starts the bundle detached (`create` + `start`) with `rt`; its id.
pub fn start_detached(c: &Ctx, rt: &str) -> String {
    let id = c.id_for(rt);
    let b = c.bundle.to_str().unwrap().to_string();
    ok(&c.with_runtime(rt, &["create", "--bundle", &b, &id]));
    ok(&c.with_runtime(rt, &["start", &id]));
    id
}

/// Asserts every runtime printed the same.
pub fn assert_alike(mut seen: Vec<String>) {
    seen.dedup();
    assert_eq!(seen.len(), 1, "berth and runc differ: {seen:?}");
}

/// Runs the bundle `make` builds in the foreground under each runtime,
/// checks each output with `check`, and asserts they are alike.
pub fn run_alike(test: &str, make: impl Fn() -> Ctx, check: impl Fn(&str, &str)) {
    let mut seen = Vec::new();
    for rt in runtimes(test) {
        let out = ok(&make().run_with(&rt));
        check(&rt, &out);
        seen.push(out);
    }
    assert_alike(seen);
}
