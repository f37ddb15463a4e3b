//! `berth ps`: the processes of a container, as runc shows them: the pids in
//! its cgroup as JSON, or the host's `ps` output filtered to them.

use std::path::Path;
use std::process::Command;

use crate::cgroups;
use crate::container::Error;
use crate::state::Dir;

/// Host pids of every process in the container's cgroup.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>, Error> {
    let dir = Dir::open(root, id)?;
    let saved = dir.load()?;
    Ok(cgroups::procs(&saved.cgroup_paths))
}

/// Runs `ps` with `args` (`-ef` when empty) and keeps its header and the lines
/// of `pids`.
pub fn table(pids: &[i32], args: &[String]) -> Result<String, Error> {
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::Ps(format!("run ps {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(Error::Ps(format!(
            "ps {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    filter(&String::from_utf8_lossy(&out.stdout), pids)
}

/// Keeps the header and the lines whose PID column is one of `pids`.
pub fn filter(ps_output: &str, pids: &[i32]) -> Result<String, Error> {
    let mut lines = ps_output.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| Error::Ps("couldn't find PID field in ps output".into()))?;
    let mut out = format!("{header}\n");
    for l in lines {
        let pid = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_header_and_container_pids() {
        let ps = "UID        PID  PPID  C STIME TTY          TIME CMD\n\
                  root         1     0  0 10:00 ?        00:00:01 init\n\
                  root       420     1  0 10:00 ?        00:00:00 sleep 100\n\
                  root       421   420  0 10:00 ?        00:00:00 sh\n";
        let t = filter(ps, &[420]).unwrap();
        assert_eq!(t.lines().count(), 2);
        assert!(t.contains("sleep 100"));
        assert!(!t.contains(" sh\n"));
        assert!(filter("USER CMD\nroot x\n", &[1]).is_err());
    }
}
