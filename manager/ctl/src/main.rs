//! `berthctl`: the command-line client of berthd; see the library.

fn main() -> std::process::ExitCode {
    berthctl::main()
}
