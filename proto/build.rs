//! Generates the Rust types and tonic services from `proto/*.proto` with the
//! system `protoc` (Debian's protobuf-compiler; `make deps` installs it).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        // The generated `connect(dst)` constructor would clash with the Connect
        // rpc; clients build their unix-socket channel themselves.
        .build_transport(false)
        .compile_protos(
            &[
                "proto/shim.proto",
                "proto/images.proto",
                "proto/containers.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
