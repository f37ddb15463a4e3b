//! Help in runc's shape (urfave/cli's templates): NAME, USAGE, VERSION,
//! COMMANDS and GLOBAL OPTIONS for the program; NAME, USAGE, DESCRIPTION
//! and OPTIONS for a command. Scripts and people who know runc find each
//! thing where they expect it.

use std::fmt::Write;

use super::commands::{Command, COMMANDS, GLOBAL};
use super::flags::Flag;

const ABOUT: &str = "berth is a runtime for containers as the Open Container Initiative specifies
them, taking the same commands, flags and bundles as runc.

A bundle is a directory holding config.json and the container's root
filesystem. To run a container from the bundle in the current directory:

    # berth run <container-id>

\"<container-id>\" names the container; it must be unique under the state root.";

/// A flag as the help lists it: `--name value, -n value` or `--name, -n`.
fn flag_names(fl: &Flag) -> String {
    fl.names
        .iter()
        .map(|n| {
            let dash = if n.len() == 1 { "-" } else { "--" };
            if fl.value {
                format!("{dash}{n} value")
            } else {
                format!("{dash}{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows of two columns, the second aligned two spaces past the widest
/// first, each indented by three spaces.
fn columns(rows: &[(String, &str)]) -> String {
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (a, b) in rows {
        let _ = writeln!(out, "   {a:<w$}  {b}");
    }
    out
}

/// The program's help.
pub fn app(version: &str) -> String {
    let mut commands: Vec<(String, &str)> = COMMANDS
        .iter()
        .map(|c| (c.name.to_string(), c.summary))
        .collect();
    commands.push((
        "help, h".into(),
        "list the commands, or show one command's help",
    ));
    let flags: Vec<(String, &str)> = GLOBAL.iter().map(|f| (flag_names(f), f.help)).collect();
    format!(
        "NAME:\n   berth - an OCI container runtime, compatible with runc\n\n{ABOUT}\n\nUSAGE:\n   berth [global options] command [command options] [arguments...]\n\nVERSION:\n   {version}\nCOMMANDS:\n{}\nGLOBAL OPTIONS:\n{}",
        columns(&commands),
        columns(&flags)
    )
}

/// One command's help.
pub fn command(c: &Command) -> String {
    let mut out = format!(
        "NAME:\n   berth {} - {}\n\nUSAGE:\n   berth {}",
        c.name, c.summary, c.name
    );
    if !c.flags.is_empty() {
        out.push_str(" [command options]");
    }
    if !c.args.is_empty() {
        out.push(' ');
        out.push_str(c.args);
    }
    out.push('\n');
    if !c.description.is_empty() {
        let _ = write!(out, "\nDESCRIPTION:\n   {}\n", c.description);
    }
    if !c.flags.is_empty() {
        let rows: Vec<(String, &str)> = c
            .flags
            .iter()
            .flat_map(|s| s.iter())
            .map(|f| (flag_names(f), f.help))
            .collect();
        let _ = write!(out, "\nOPTIONS:\n{}   \n", columns(&rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::commands::find;
    use super::*;

    #[test]
    fn a_commands_help_has_runcs_sections() {
        let h = command(find("events").unwrap());
        assert!(h.starts_with("NAME:\n   berth events - "), "{h}");
        assert!(h.contains("\nUSAGE:\n   berth events [command options] <container-id>\n"));
        assert!(h.contains("\nDESCRIPTION:\n   "));
        assert!(
            h.contains("\nOPTIONS:\n   --interval value  how often"),
            "{h}"
        );
        assert!(h.contains("\n   --stats           report"), "{h}");
        // No flags: no "[command options]", no OPTIONS.
        let h = command(find("state").unwrap());
        assert!(h.contains("USAGE:\n   berth state <container-id>\n"), "{h}");
        assert!(!h.contains("OPTIONS"));
    }

    #[test]
    fn the_programs_help_lists_commands_and_global_flags() {
        let h = app("1.0\nspec: 1.0.2\n");
        for section in [
            "NAME:\n",
            "\nUSAGE:\n",
            "\nVERSION:\n   1.0\n",
            "\nCOMMANDS:\n",
            "\nGLOBAL OPTIONS:\n",
        ] {
            assert!(h.contains(section), "{section:?} in {h}");
        }
        assert!(h.contains("\n   help, h     "), "{h}");
        assert!(h.contains("\n   --log-format value  "), "{h}");
        assert!(
            h.contains("\n   --version, -v       print the version\n"),
            "{h}"
        );
    }
}
