//! The build context on berthd's side: the tar berthctl streams, unpacked
//! with the layer unpacker's refusals (nothing lands outside the context
//! directory), then its `.dockerignore` applied: what it excludes is
//! removed, so no COPY can read it. The Dockerfile is read before that, as
//! docker reads an ignored Dockerfile but never copies it.

use std::io::Read;
use std::path::Path;

use berth_rules::dockerignore::Ignore;

use super::{io, BuildError};

/// Unpacks the context tar `r` into the empty directory `dir`.
pub fn unpack(dir: &Path, r: impl Read) -> Result<(), BuildError> {
    let f = std::fs::File::open(dir).map_err(io("open", dir))?;
    crate::store::unpack::apply_at(f.into(), r, false)
        .map_err(|e| BuildError::Invalid(format!("build context: {e}")))?;
    Ok(())
}

/// Reads the Dockerfile `name` (a path in the context) from `dir`.
pub fn dockerfile(dir: &Path, name: &str) -> Result<String, BuildError> {
    let root = super::sources::Root::open(dir).map_err(|e| BuildError::Invalid(e.to_string()))?;
    let src = root.sources(name).map_err(|_| {
        BuildError::Invalid(format!(
            "cannot find the Dockerfile {name:?} in the build context"
        ))
    })?;
    src[0]
        .read_text(1 << 20)
        .map_err(|e| BuildError::Invalid(format!("Dockerfile {name:?}: {e}")))
}

/// Applies the context's `.dockerignore` (if any): removes what it
/// excludes, the `.dockerignore` itself included when it says so.
pub fn apply_ignore(dir: &Path) -> Result<Ignore, BuildError> {
    let text = match std::fs::symlink_metadata(dir.join(".dockerignore")) {
        Ok(m) if m.is_file() => std::fs::read_to_string(dir.join(".dockerignore"))
            .map_err(io("read", dir.join(".dockerignore")))?,
        _ => String::new(),
    };
    let ignore = Ignore::parse(&text);
    prune(dir, "", &ignore)?;
    Ok(ignore)
}

fn prune(dir: &Path, rel: &str, ignore: &Ignore) -> Result<(), BuildError> {
    let names: Vec<_> = std::fs::read_dir(dir)
        .map_err(io("read", dir))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    for n in names {
        let path = dir.join(&n);
        let crel = if rel.is_empty() {
            n.to_string_lossy().into_owned()
        } else {
            format!("{rel}/{}", n.to_string_lossy())
        };
        let m = std::fs::symlink_metadata(&path).map_err(io("stat", &path))?;
        let excluded = ignore.excluded(&crel);
        if m.is_dir() {
            if excluded && !ignore.has_exceptions() {
                std::fs::remove_dir_all(&path).map_err(io("remove", &path))?;
                continue;
            }
            prune(&path, &crel, ignore)?;
            let empty = std::fs::read_dir(&path)
                .map_err(io("read", &path))?
                .next()
                .is_none();
            if excluded && empty {
                std::fs::remove_dir(&path).map_err(io("remove", &path))?;
            }
        } else if excluded {
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_paths_are_removed_and_exceptions_kept() {
        let d = std::env::temp_dir().join(format!("berth-ctx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("logs/keep")).unwrap();
        std::fs::create_dir_all(d.join("src")).unwrap();
        std::fs::write(d.join("logs/a.log"), "").unwrap();
        std::fs::write(d.join("logs/keep/k.log"), "").unwrap();
        std::fs::write(d.join("src/x.rs"), "").unwrap();
        std::fs::write(d.join("secret"), "").unwrap();
        std::fs::write(d.join(".dockerignore"), "logs\n!logs/keep\nsecret\n").unwrap();
        apply_ignore(&d).unwrap();
        assert!(!d.join("logs/a.log").exists() && !d.join("secret").exists());
        assert!(d.join("logs/keep/k.log").exists() && d.join("src/x.rs").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
