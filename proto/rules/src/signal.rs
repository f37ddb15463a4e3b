//! Signals by name (`KILL`, `SIGKILL`, `sigterm`, `RTMIN+3`) or number, as
//! runc's `kill` and docker's `--signal` and `STOPSIGNAL` take them.

/// A signal that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid signal {0:?}")]
pub struct SignalError(pub String);

/// Linux's standard signals by name (the same numbers on every
/// architecture Berth builds for: x86_64, aarch64, riscv64).
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The real-time signals as a process sees them: glibc reserves the first
/// two or three for itself, so SIGRTMIN is what libc says it is.
fn rt_range() -> (i32, i32) {
    (libc::SIGRTMIN(), libc::SIGRTMAX())
}

/// Parses a signal: a number from 1 to 64, or a name with or without `SIG`
/// in any case, `RTMIN+N` and `RTMAX-N` included.
pub fn parse(s: &str) -> Result<i32, SignalError> {
    let bad = || SignalError(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let (rtmin, rtmax) = rt_range();
    let offset = |rest: &str, sign: char| -> Result<i32, SignalError> {
        if rest.is_empty() {
            return Ok(0);
        }
        rest.strip_prefix(sign)
            .and_then(|n| n.parse::<i32>().ok())
            .filter(|n| (0..=rtmax - rtmin).contains(n))
            .ok_or_else(bad)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return Ok(rtmin + offset(rest, '+')?);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return Ok(rtmax - offset(rest, '-')?);
    }
    NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(bad)
}

/// A signal's name without `SIG` (`TERM`), or its number for a real-time one.
pub fn name(sig: i32) -> String {
    NAMES
        .iter()
        .find(|(_, v)| *v == sig)
        .map(|(n, _)| (*n).to_string())
        .unwrap_or_else(|| sig.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_real_time() {
        assert_eq!(parse("KILL"), Ok(9));
        assert_eq!(parse("sigterm"), Ok(15));
        assert_eq!(parse("SIGWINCH"), Ok(28));
        assert_eq!(parse("10"), Ok(10));
        assert_eq!(parse("RTMIN"), Ok(libc::SIGRTMIN()));
        assert_eq!(parse("SIGRTMIN+3"), Ok(libc::SIGRTMIN() + 3));
        assert_eq!(parse("RTMAX-1"), Ok(libc::SIGRTMAX() - 1));
        assert_eq!(name(15), "TERM");
        for bad in [
            "0", "65", "-9", "NOPE", "SIG", "RTMIN+99", "RTMIN-1", "RTMAX+1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
