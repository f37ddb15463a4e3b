//! runc's flag syntax: `--flag`, `-flag`, `-f`, `--flag=value`, flags
//! before or after the container id, `--` ending them.

use std::collections::HashMap;

/// A flag a command accepts: its names (the first is canonical), whether it
/// takes a value, and its line in the command's help.
pub struct Flag {
    /// Long name first, then the short ones.
    pub names: &'static [&'static str],
    /// Whether it takes a value.
    pub value: bool,
    /// What it does, as the help lists it.
    pub help: &'static str,
}

/// A flag with its value-taking and help.
pub const fn f(names: &'static [&'static str], value: bool, help: &'static str) -> Flag {
    Flag { names, value, help }
}

/// Parsed flags and positional arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    flags: HashMap<&'static str, Vec<String>>,
    /// The positional arguments, in order.
    pub pos: Vec<String>,
}

impl Parsed {
    /// The flag's last value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value the flag was given.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.flags.get(name).cloned().unwrap_or_default()
    }

    /// The flag as a number, 0 when absent.
    pub fn u32(&self, name: &str) -> Result<u32, String> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("invalid value {v:?} for flag -{name}: parse error"))
            })
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// A boolean flag (given, and not `=false`).
    pub fn bool(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v != "false")
    }
}

/// Parses `args` against `flags`. With `stop_at_pos`, the first positional
/// ends flag parsing (the rest belong to a command line); otherwise flags
/// may follow positionals, as runc allows. `--` always ends flags. Errors
/// are worded as Go's flag package words them, which runc prints.
pub fn parse(args: &[String], sets: &[&[Flag]], stop_at_pos: bool) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            p.pos.extend(args[i..].iter().cloned());
            break;
        }
        if !a.starts_with('-') || a == "-" {
            p.pos.push(a.clone());
            if stop_at_pos {
                p.pos.extend(args[i..].iter().cloned());
                break;
            }
            continue;
        }
        let body = a.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let flag = sets
            .iter()
            .flat_map(|s| s.iter())
            .find(|fl| fl.names.contains(&name))
            .ok_or_else(|| format!("flag provided but not defined: -{name}"))?;
        let value = if flag.value {
            match inline {
                Some(v) => v,
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| format!("flag needs an argument: -{name}"))?;
                    i += 1;
                    v.clone()
                }
            }
        } else {
            inline.unwrap_or_else(|| "true".to_string())
        };
        p.flags.entry(flag.names[0]).or_default().push(value);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    const SET: &[Flag] = &[
        f(&["bundle", "b"], true, ""),
        f(&["pid-file"], true, ""),
        f(&["no-pivot"], false, ""),
    ];

    #[test]
    fn flags_before_and_after_id() {
        let p = parse(
            &s(&["--bundle", "/b", "id1", "--pid-file=/p", "-no-pivot"]),
            &[SET],
            false,
        )
        .unwrap();
        assert_eq!(p.pos, vec!["id1"]);
        assert_eq!(p.get("bundle"), Some("/b"));
        assert_eq!(p.get("pid-file"), Some("/p"));
        assert!(p.bool("no-pivot"));
        let p = parse(&s(&["-b", "x", "id"]), &[SET], false).unwrap();
        assert_eq!(p.get("bundle"), Some("x"));
    }

    #[test]
    fn the_first_positional_can_end_flags() {
        let p = parse(&s(&["-b", "x", "kill", "--all"]), &[SET], true).unwrap();
        assert_eq!(p.get("bundle"), Some("x"));
        assert_eq!(p.pos, s(&["kill", "--all"]));
    }

    #[test]
    fn unknown_flag_is_an_error() {
        assert_eq!(
            parse(&s(&["--bogus"]), &[SET], false).unwrap_err(),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(
            parse(&s(&["--bundle"]), &[SET], false).unwrap_err(),
            "flag needs an argument: -bundle"
        );
    }
}
