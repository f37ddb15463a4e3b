//! `berth`: an OCI runtime, CLI-compatible with runc.

fn main() {
    std::process::exit(berth::cli::main(std::env::args().collect()));
}
