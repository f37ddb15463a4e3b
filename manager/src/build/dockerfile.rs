//! The Dockerfile as docker reads it: parser directives (`# syntax=`,
//! `# escape=`) before anything else, comments and blank lines dropped
//! (inside continuations too), lines joined on the escape character, then
//! each instruction split into its flags (`--from=x`) and its arguments in
//! JSON (exec) or shell form. Variables are not expanded here: that needs
//! the build's state (see `expand`).

use std::fmt;

/// A Dockerfile that cannot be read, with its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile line {line}: {why}")]
pub struct ParseError {
    /// 1-based line of the instruction.
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

/// The arguments of RUN, CMD, ENTRYPOINT: JSON (exec) or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `["a", "b"]`: run as is.
    Exec(Vec<String>),
    /// `a b`: run through the stage's SHELL.
    Shell(String),
}

/// One instruction as written: its keyword (upper case), flags, arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The 1-based line it starts on.
    pub line: usize,
    /// FROM, RUN, COPY, … in upper case.
    pub keyword: String,
    /// `--name=value` flags, in order (`--name` alone has an empty value).
    pub flags: Vec<(String, String)>,
    /// The rest of the line, joined, trimmed.
    pub args: String,
    /// The instruction as written (continuations joined), for history.
    pub original: String,
}

impl Instruction {
    /// The value of flag `name`, if given.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses flags other than `allowed`.
    pub fn check_flags(&self, allowed: &[&str]) -> Result<(), ParseError> {
        for (n, _) in &self.flags {
            if !allowed.contains(&n.as_str()) {
                return Err(ParseError {
                    line: self.line,
                    why: format!("{} does not support the flag --{n}", self.keyword),
                });
            }
        }
        Ok(())
    }

    /// The arguments as a command: JSON (exec form) when they parse as a
    /// JSON array of strings, else shell form.
    pub fn command(&self) -> Command {
        json_array(&self.args).map_or_else(|| Command::Shell(self.args.clone()), Command::Exec)
    }
}

impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\` or `` ` ``).
    pub escape: char,
    /// The `# syntax=` directive, if any (recorded, not acted on).
    pub syntax: Option<String>,
    /// The instructions, in order.
    pub instructions: Vec<Instruction>,
}

/// The instructions docker knows.
const KNOWN: [&str; 18] = [
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// A JSON array of strings, or None.
pub fn json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

/// Reads the parser directives at the top: `(escape, syntax, lines used)`.
fn directives(lines: &[&str]) -> Result<(char, Option<String>, usize), ParseError> {
    let mut escape = '\\';
    let mut syntax = None;
    let mut seen = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.trim().strip_prefix('#') else {
            return Ok((escape, syntax, i));
        };
        let Some((k, v)) = rest.split_once('=') else {
            return Ok((escape, syntax, i));
        };
        let k = k.trim().to_ascii_lowercase();
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Ok((escape, syntax, i));
        }
        if seen.contains(&k) {
            return Err(ParseError {
                line: i + 1,
                why: format!("only one {k} parser directive can be used"),
            });
        }
        let v = v.trim();
        match k.as_str() {
            "escape" => {
                escape = match v {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(ParseError {
                            line: i + 1,
                            why: format!("invalid escape token {v:?}: only \\ and ` are allowed"),
                        })
                    }
                }
            }
            "syntax" => syntax = Some(v.to_string()),
            // Others (check=…) are read and ignored, as docker's front end
            // ignores what it does not know.
            _ => {}
        }
        seen.push(k);
    }
    Ok((escape, syntax, lines.len()))
}

/// Whether `line` (trailing whitespace trimmed) ends in an unescaped escape
/// character: the next line continues it.
fn continues(line: &str, escape: char) -> bool {
    let t = line.trim_end();
    let n = t.chars().rev().take_while(|&c| c == escape).count();
    n % 2 == 1
}

/// Splits leading `--flag[=value]` words off `args`.
fn split_flags(args: &str) -> (Vec<(String, String)>, String) {
    let mut flags = Vec::new();
    let mut rest = args.trim_start();
    while let Some(f) = rest.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        if word.is_empty() {
            break;
        }
        let (n, v) = word.split_once('=').unwrap_or((word, ""));
        flags.push((n.to_ascii_lowercase(), v.to_string()));
        rest = f[end..].trim_start();
    }
    (flags, rest.to_string())
}

/// Whether `kw` takes flags.
fn takes_flags(kw: &str) -> bool {
    matches!(kw, "FROM" | "RUN" | "COPY" | "ADD" | "HEALTHCHECK")
}

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let (escape, syntax, mut i) = directives(&lines)?;
    let mut instructions = Vec::new();
    while i < lines.len() {
        let first = lines[i].trim();
        if first.is_empty() || first.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut joined = String::new();
        let mut line = lines[i];
        loop {
            let t = line.trim_end();
            if continues(t, escape) {
                joined.push_str(&t[..t.len() - escape.len_utf8()]);
                i += 1;
                // Comments and blank lines inside a continuation are dropped.
                while i < lines.len()
                    && (lines[i].trim().is_empty() || lines[i].trim_start().starts_with('#'))
                {
                    i += 1;
                }
                if i >= lines.len() {
                    break;
                }
                line = lines[i];
            } else {
                joined.push_str(t);
                i += 1;
                break;
            }
        }
        let joined = joined.trim().to_string();
        let (word, rest) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((&joined, ""));
        let keyword = word.to_ascii_uppercase();
        if !KNOWN.contains(&keyword.as_str()) {
            return Err(ParseError {
                line: start + 1,
                why: format!("unknown instruction: {word}"),
            });
        }
        let rest = rest.trim();
        if rest.starts_with("<<") || (keyword != "ONBUILD" && heredoc(rest)) {
            return Err(ParseError {
                line: start + 1,
                why: format!("{keyword}: heredocs (<<EOF) are not supported by berth's builder"),
            });
        }
        let (flags, args) = if takes_flags(&keyword) {
            split_flags(rest)
        } else {
            (Vec::new(), rest.to_string())
        };
        if args.is_empty() && !matches!(keyword.as_str(), "RUN" | "CMD" | "ENTRYPOINT") {
            return Err(ParseError {
                line: start + 1,
                why: format!("{keyword} requires at least one argument"),
            });
        }
        instructions.push(Instruction {
            line: start + 1,
            keyword,
            flags,
            args,
            original: joined,
        });
    }
    Ok(Dockerfile {
        escape,
        syntax,
        instructions,
    })
}

/// Whether a shell-form argument string holds a heredoc redirection
/// (`<<EOF`, `<<-EOF`, `<< "EOF"`): its body would be the next lines.
fn heredoc(args: &str) -> bool {
    if args.trim_start().starts_with('[') {
        return false;
    }
    let ident = |r: &str| {
        let r = r.trim_start_matches('-').trim_matches(['"', '\'']);
        !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let words: Vec<&str> = args.split_whitespace().collect();
    words
        .iter()
        .enumerate()
        .any(|(n, w)| match w.strip_prefix("<<") {
            Some("" | "-") => words.get(n + 1).is_some_and(|next| ident(next)),
            Some(r) => !r.starts_with('<') && ident(r),
            None => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_and_forms_as_docker_reads_them() {
        let df = parse(
            "# syntax=docker/dockerfile:1\n# escape=\\\n\nFROM busybox AS base\n# a comment\nRUN echo a \\\n  # dropped\n\n  && echo b\nCMD [\"sh\", \"-c\", \"x\"]\nENTRYPOINT echo hi\ncopy --from=base --chown=1:2 /a /b\n",
        )
        .unwrap();
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
        let i = &df.instructions;
        assert_eq!(i.len(), 5);
        assert_eq!((i[0].keyword.as_str(), i[0].line), ("FROM", 4));
        assert_eq!(i[1].args, "echo a   && echo b");
        assert_eq!(i[1].line, 6);
        assert_eq!(
            i[2].command(),
            Command::Exec(vec!["sh".into(), "-c".into(), "x".into()])
        );
        assert_eq!(i[3].command(), Command::Shell("echo hi".into()));
        assert_eq!(i[4].keyword, "COPY");
        assert_eq!(i[4].flag("from"), Some("base"));
        assert_eq!(i[4].flag("chown"), Some("1:2"));
        assert_eq!(i[4].args, "/a /b");
        assert!(i[4].check_flags(&["from"]).is_err());
    }

    #[test]
    fn the_escape_directive_changes_the_continuation() {
        let df = parse("# escape=`\nFROM scratch\nCOPY a `\n  c:\\b\\\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].args, "a   c:\\b\\");
        // A directive after an instruction is a comment.
        let df = parse("FROM scratch\n# escape=`\nRUN a `\n").unwrap();
        assert_eq!(df.escape, '\\');
        assert_eq!(df.instructions[1].args, "a `");
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("FROM busybox\nFROB x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "dockerfile line 2: unknown instruction: FROB"
        );
        let e = parse("FROM busybox\nRUN <<EOF\necho\nEOF\n").unwrap_err();
        assert!(e.why.contains("heredocs"), "{e}");
        let e = parse("FROM busybox\nCOPY --chown=1\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("# escape=x\nFROM a\n").is_err());
        // Shell redirections are no heredocs.
        assert!(parse("FROM a\nRUN cat << x_file\n").is_err());
        assert!(parse("FROM a\nRUN echo 1 <<< x\n").is_ok());
    }
}
