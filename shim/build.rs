//! Generates containerd's runtime v2 shim protocol (`proto/`) for ttrpc.

fn main() {
    let protos = [
        "proto/types.proto",
        "proto/task_types.proto",
        "proto/task.proto",
        "proto/events.proto",
        "proto/forward.proto",
        "proto/runc.proto",
        "proto/runtimeoptions.proto",
        "proto/metrics_v1.proto",
        "proto/metrics_v2.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    ttrpc_codegen::Codegen::new()
        .out_dir(&out)
        .inputs(protos)
        .include("proto")
        // The well-known types (Any, Empty, Timestamp), from libprotobuf-dev.
        .include("/usr/include")
        .rust_protobuf()
        .customize(ttrpc_codegen::Customize {
            async_all: true,
            ..Default::default()
        })
        .run()
        .expect("generate the containerd shim protocol");
    // One file of modules: the generated files carry inner attributes, which
    // `include!` cannot take inside a module, and the services name Empty
    // as `super::empty::Empty`.
    let mut all = String::from(
        "pub mod empty {\n    pub use ::protobuf::well_known_types::empty::Empty;\n}\n",
    );
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("read OUT_DIR")
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".rs") && n != "mod.rs" && n != "all.rs")
        .collect();
    names.sort();
    for n in names {
        let text = std::fs::read_to_string(out.join(&n)).expect("read a generated file");
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("#!["))
            .map(|l| format!("{l}\n"))
            .collect();
        all.push_str(&format!(
            "pub mod {} {{\n{body}}}\n",
            n.trim_end_matches(".rs")
        ));
    }
    std::fs::write(out.join("all.rs"), all).expect("write all.rs");
}
