//! How berthctl fails: the exit status docker gives each kind of failure,
//! and gRPC errors worded for a terminal.

/// A failure with the exit status berthctl ends with.
#[derive(Debug)]
pub struct Failed {
    /// The exit status.
    pub code: u8,
    /// What to print.
    pub message: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

/// The status docker gives a failure to create or start a process.
pub fn start_failure_code(message: &str) -> u8 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") || message.contains("not executable") {
        126
    } else {
        125
    }
}

pub(crate) fn failed(code: u8, message: impl Into<String>) -> anyhow::Error {
    Failed {
        code,
        message: message.into(),
    }
    .into()
}

pub(crate) fn status_err(what: &str, s: tonic::Status) -> anyhow::Error {
    failed(125, format!("{what}: {}", s.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_failures_map_as_docker() {
        assert_eq!(
            start_failure_code("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(start_failure_code("boom"), 125);
    }
}
