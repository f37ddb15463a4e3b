//! `.dockerignore`, read as docker reads it: a pattern per line (blank lines
//! and `#` comments skipped), paths relative to the context root (a leading
//! `/` is the root), `*` and `?` within one path component, `[a-z]`
//! classes, `**` for any number of components, `!` for exceptions; the last
//! pattern that matches a path decides. A pattern matching a directory
//! excludes everything under it. berthctl applies it before sending the
//! context; berthd again on what arrives (a context piped in as a tar).

/// One pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    parts: Vec<String>,
    exception: bool,
}

/// The patterns of a `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

/// Cleans a slash path: `.` and empty parts dropped, `..` applied.
fn clean(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_string()),
        }
    }
    out
}

impl Ignore {
    /// Reads a `.dockerignore`'s text.
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let (exception, p) = match t.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, t),
            };
            let parts = clean(p);
            if parts.is_empty() {
                continue;
            }
            patterns.push(Pattern { parts, exception });
        }
        Ignore { patterns }
    }

    /// Whether there are exceptions (`!pattern`): an excluded directory may
    /// then still hold included files, and must be walked.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether the context path `path` (slash-separated, relative) is left out.
    pub fn excluded(&self, path: &str) -> bool {
        let parts = clean(path);
        if parts.is_empty() {
            return false;
        }
        let mut out = false;
        for p in &self.patterns {
            // A pattern matches the path or one of its parent directories.
            let hit = (1..=parts.len()).any(|n| matches(&p.parts, &parts[..n]));
            if hit {
                out = !p.exception;
            }
        }
        out
    }
}

/// Whether pattern components match path components entirely.
fn matches(pat: &[String], path: &[String]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| matches(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((p, prest)) => component(first.as_bytes(), p.as_bytes()) && matches(rest, prest),
            None => false,
        },
    }
}

/// Glob match of one component: `*`, `?`, `[...]` (with `!`/`^` negation
/// and ranges), `\` escaping the next character.
pub fn component(pat: &[u8], s: &[u8]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| component(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && component(rest, &s[1..]),
        Some((b'[', rest)) => {
            let Some(end) = rest.iter().skip(1).position(|&c| c == b']').map(|e| e + 1) else {
                return s.first() == Some(&b'[') && component(rest, &s[1..]);
            };
            let Some((&c, srest)) = s.split_first() else {
                return false;
            };
            let mut class = &rest[..end];
            let negate = matches!(class.first(), Some(b'!' | b'^'));
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && component(&rest[end + 1..], srest)
        }
        Some((b'\\', rest)) if !rest.is_empty() => {
            s.first() == Some(&rest[0]) && component(&rest[1..], &s[1..])
        }
        Some((&p, rest)) => s.first() == Some(&p) && component(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_exclude_as_docker_does() {
        let i = Ignore::parse(
            "# comment\n\n*.log\n/build\n**/secret*\ndocs/*.md\n!docs/keep.md\ntmp?\n[ab]x\n",
        );
        assert!(i.excluded("a.log"));
        assert!(!i.excluded("sub/a.log"), "* does not cross directories");
        assert!(i.excluded("build") && i.excluded("build/out/x"));
        assert!(i.excluded("secret.txt") && i.excluded("deep/down/secret-key"));
        assert!(i.excluded("docs/a.md") && !i.excluded("docs/keep.md"));
        assert!(i.excluded("tmp1") && !i.excluded("tmp12"));
        assert!(i.excluded("ax") && i.excluded("bx") && !i.excluded("cx"));
        assert!(!i.excluded("src/main.rs"));
        assert!(i.has_exceptions());
    }

    #[test]
    fn the_last_match_decides() {
        let i = Ignore::parse("*\n!src\nsrc/gen\n");
        assert!(i.excluded("README"));
        assert!(!i.excluded("src/a.rs"));
        assert!(i.excluded("src/gen/x.rs"));
        assert!(!Ignore::parse("").excluded("x"));
    }

    #[test]
    fn components_glob() {
        assert!(component(b"a*c", b"abbc") && component(b"*", b""));
        assert!(component(b"[!a]x", b"bx") && !component(b"[!a]x", b"ax"));
        assert!(component(b"[0-9]", b"7") && !component(b"[0-9]", b"x"));
        assert!(component(b"\\*", b"*") && !component(b"\\*", b"a"));
    }
}
