//! Variable expansion and word splitting in instruction arguments, as
//! docker's Dockerfile lexer does it: `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR:+alt}` (and the forms without `:`), `${VAR:?message}`; single
//! quotes literal, double quotes expanding, the escape character quoting the
//! next one. RUN, CMD and ENTRYPOINT are not expanded: their shell does it.

use std::collections::BTreeMap;

/// An expansion that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${` without its `}`.
    #[error("missing '}}' in {0:?}")]
    Unclosed(String),
    /// A quote without its pair.
    #[error("unmatched quote in {0:?}")]
    Quote(String),
    /// `${VAR:?message}` with VAR unset.
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// Its message.
        message: String,
    },
}

/// The variables an instruction sees.
pub type Vars = BTreeMap<String, String>;

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a Vars,
    src: &'a str,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    /// Words of the input; with `split` false, the whole input is one word.
    fn words(&mut self, split: bool) -> Result<Vec<String>, ExpandError> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut any = false;
        while let Some(c) = self.next() {
            match c {
                c if c.is_whitespace() && split => {
                    if any {
                        words.push(std::mem::take(&mut cur));
                        any = false;
                    }
                }
                '\'' => {
                    any = true;
                    loop {
                        match self.next() {
                            Some('\'') => break,
                            Some(c) => cur.push(c),
                            None => return Err(ExpandError::Quote(self.src.into())),
                        }
                    }
                }
                '"' => {
                    any = true;
                    loop {
                        match self.next() {
                            Some('"') => break,
                            Some(c) if c == self.escape => match self.peek() {
                                // Inside double quotes only these are escaped.
                                Some(n @ ('"' | '$')) => {
                                    self.pos += 1;
                                    cur.push(n);
                                }
                                Some(n) if n == self.escape => {
                                    self.pos += 1;
                                    cur.push(n);
                                }
                                _ => cur.push(c),
                            },
                            Some('$') => cur.push_str(&self.dollar()?),
                            Some(c) => cur.push(c),
                            None => return Err(ExpandError::Quote(self.src.into())),
                        }
                    }
                }
                '$' => {
                    // An unquoted expansion to nothing makes no word, as in sh.
                    let v = self.dollar()?;
                    any |= !v.is_empty();
                    cur.push_str(&v);
                }
                c if c == self.escape => {
                    any = true;
                    match self.next() {
                        Some(n) => cur.push(n),
                        None => cur.push(c),
                    }
                }
                c => {
                    any = true;
                    cur.push(c);
                }
            }
        }
        if any || !split {
            words.push(cur);
        }
        Ok(words)
    }

    /// A variable name: letters, digits and `_`.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// After a `$`: the variable's value (or the `$` itself).
    fn dollar(&mut self) -> Result<String, ExpandError> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name();
                match self.next() {
                    Some('}') => Ok(self.vars.get(&name).cloned().unwrap_or_default()),
                    Some(c @ (':' | '-' | '+' | '?')) => {
                        let (colon, op) = if c == ':' {
                            match self.next() {
                                Some(o @ ('-' | '+' | '?')) => (true, o),
                                _ => return Err(ExpandError::Unclosed(self.src.into())),
                            }
                        } else {
                            (false, c)
                        };
                        let word = self.until_brace()?;
                        let value = self.vars.get(&name);
                        let set = match value {
                            Some(v) => !colon || !v.is_empty(),
                            None => false,
                        };
                        Ok(match op {
                            '-' if set => value.cloned().unwrap_or_default(),
                            '-' => word,
                            '+' if set => word,
                            '+' => String::new(),
                            _ if set => value.cloned().unwrap_or_default(),
                            _ => {
                                return Err(ExpandError::Required {
                                    name,
                                    message: if word.is_empty() {
                                        "parameter not set".into()
                                    } else {
                                        word
                                    },
                                })
                            }
                        })
                    }
                    _ => Err(ExpandError::Unclosed(self.src.into())),
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok(self.vars.get(&name).cloned().unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }

    /// The word of `${VAR:-word}`, expanded, up to its `}`.
    fn until_brace(&mut self) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('}') => return Ok(out),
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                Some(c) => out.push(c),
                None => return Err(ExpandError::Unclosed(self.src.into())),
            }
        }
    }
}

/// Expands `s` into words, split on unquoted whitespace.
pub fn words(s: &str, vars: &Vars, escape: char) -> Result<Vec<String>, ExpandError> {
    Lexer {
        chars: s.chars().collect(),
        pos: 0,
        escape,
        vars,
        src: s,
    }
    .words(true)
}

/// Expands `s` as one word (quotes removed, nothing split).
pub fn word(s: &str, vars: &Vars, escape: char) -> Result<String, ExpandError> {
    Ok(Lexer {
        chars: s.chars().collect(),
        pos: 0,
        escape,
        vars,
        src: s,
    }
    .words(false)?
    .pop()
    .unwrap_or_default())
}

/// `KEY=VALUE` pairs of ENV, LABEL and ARG, or the legacy `ENV KEY VALUE`
/// form (`legacy`: for ENV and LABEL only when no word has a `=`).
pub fn pairs(
    s: &str,
    vars: &Vars,
    escape: char,
    legacy: bool,
) -> Result<Vec<(String, String)>, ExpandError> {
    let first = s.split_whitespace().next().unwrap_or("");
    if legacy && !first.contains('=') {
        let rest = s.trim_start()[first.len()..].trim();
        return Ok(vec![(first.to_string(), word(rest, vars, escape)?)]);
    }
    Ok(words(s, vars, escape)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (w, String::new()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [("A", "1"), ("E", ""), ("P", "/usr/bin")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn variables_expand_as_docker_does() {
        let v = vars();
        let w = |s| words(s, &v, '\\').unwrap();
        assert_eq!(w("$A ${A}x $Z end"), ["1", "1x", "end"]);
        assert_eq!(
            w("${Z:-d} ${E:-d} ${E-d} ${A:+set} ${Z:+set}x"),
            ["d", "d", "set", "x"]
        );
        assert_eq!(w("'$A' \"$A b\" \\$A"), ["$A", "1 b", "$A"]);
        assert_eq!(w("a\\ b $ x"), ["a b", "$", "x"]);
        assert_eq!(word("${P}:/bin", &v, '\\').unwrap(), "/usr/bin:/bin");
        assert!(matches!(
            words("${Z:?needed}", &v, '\\'),
            Err(ExpandError::Required { .. })
        ));
        assert!(words("${A", &v, '\\').is_err());
        assert!(words("\"open", &v, '\\').is_err());
    }

    #[test]
    fn env_and_label_pairs_in_both_forms() {
        let v = vars();
        assert_eq!(
            pairs("X=$A Y=\"a b\" Z=c\\ d", &v, '\\', true).unwrap(),
            [
                ("X".into(), "1".into()),
                ("Y".into(), "a b".into()),
                ("Z".into(), "c d".into())
            ]
        );
        assert_eq!(
            pairs("X hello  $A world", &v, '\\', true).unwrap(),
            [("X".to_string(), "hello  1 world".to_string())]
        );
        assert_eq!(
            pairs("V=1 W", &v, '\\', false).unwrap(),
            [("V".into(), "1".into()), ("W".into(), String::new())]
        );
    }
}
