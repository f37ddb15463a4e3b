//! `berth`: an OCI runtime, CLI-compatible with runc.

/// A short-lived process's heap (see [`berth::alloc`]): 8 MiB of bss, only
/// the pages used are ever touched.
#[global_allocator]
static HEAP: berth::alloc::Heap<{ 8 << 20 }> = berth::alloc::Heap::new();

fn main() {
    std::process::exit(berth::cli::main(std::env::args().collect()));
}
