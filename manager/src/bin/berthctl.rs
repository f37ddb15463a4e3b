//! `berthctl`: the command-line client of berthd; see the library's `ctl`.

fn main() -> std::process::ExitCode {
    berth_manager::ctl::main()
}
