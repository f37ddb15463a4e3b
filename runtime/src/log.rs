//! runc-compatible logging: `--log FILE`, `--log-format text|json`, `--debug`.
//!
//! Text lines look like logrus's (`time="…" level=error msg="…"`), JSON lines
//! like `{"level":"error","msg":"…","time":"…"}`, which is what containerd's
//! runc shim and podman parse.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// The output format of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    file: Option<File>,
    format: Format,
    debug: bool,
}

thread_local! {
    // The runtime is single-threaded; a thread-local is its global.
    static LOGGER: RefCell<Logger> = const { RefCell::new(Logger { file: None, format: Format::Text, debug: false }) };
}

/// Configures the logger. `path` None logs to stderr.
pub fn init(path: Option<&Path>, format: Format, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
        None => None,
    };
    LOGGER.with(|l| {
        *l.borrow_mut() = Logger {
            file,
            format,
            debug,
        }
    });
    Ok(())
}

/// True when logs go to stderr already (so errors are not printed twice).
pub fn to_stderr() -> bool {
    LOGGER.with(|l| l.borrow().file.is_none())
}

/// True with `--debug`.
pub fn debug_enabled() -> bool {
    LOGGER.with(|l| l.borrow().debug)
}

/// Formats one log line (with the trailing newline).
pub fn format_line(format: Format, level: &str, msg: &str, time: &str) -> String {
    match format {
        Format::Json => {
            let v = serde_json::json!({ "level": level, "msg": msg, "time": time });
            format!("{v}\n")
        }
        Format::Text => {
            format!("time=\"{time}\" level={level} msg={}\n", quote_logfmt(msg))
        }
    }
}

fn quote_logfmt(msg: &str) -> String {
    // logrus quotes values that contain anything beyond a plain word.
    let plain = !msg.is_empty()
        && msg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._/@^+".contains(&b));
    if plain {
        msg.to_string()
    } else {
        serde_json::to_string(msg).unwrap_or_default()
    }
}

/// Writes one line at `level` ("debug", "info", "warning", "error").
pub fn log(level: &str, msg: &str) {
    LOGGER.with(|l| {
        let l = l.borrow();
        if level == "debug" && !l.debug {
            return;
        }
        let time = if l.format == Format::Json {
            berth_rules::time::now_rfc3339_nano()
        } else {
            berth_rules::time::now_rfc3339()
        };
        let line = format_line(l.format, level, msg, &time);
        match &l.file {
            Some(f) => {
                let mut f: &File = f;
                let _ = f.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    });
}

/// Logs at debug level, formatting lazily.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { if $crate::log::debug_enabled() { $crate::log::log("debug", &format!($($t)*)) } };
}

/// Logs a warning.
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::log("warning", &format!($($t)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_runc_fields() {
        let l = format_line(Format::Json, "error", "boom \"x\"", "T");
        let v: serde_json::Value = serde_json::from_str(l.trim()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert_eq!(v["time"], "T");
    }

    #[test]
    fn text_line_quotes_like_logrus() {
        assert_eq!(
            format_line(Format::Text, "info", "ok", "T"),
            "time=\"T\" level=info msg=ok\n"
        );
        assert_eq!(
            format_line(Format::Text, "error", "a b", "T"),
            "time=\"T\" level=error msg=\"a b\"\n"
        );
    }
}
