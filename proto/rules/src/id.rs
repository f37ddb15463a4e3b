//! Ids and names: each one ends up a path component (a state directory, a
//! bundle, a socket name), so each is checked before anything is made, and
//! a too-long one is refused here rather than failing later with
//! ENAMETOOLONG.

/// A container id as runc takes it: `[A-Za-z0-9_+.-]`, not starting with a
/// dot, 1 to 255 bytes (one file name: NAME_MAX).
pub fn is_runtime_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
}

/// A container, exec, volume or network name as docker takes it:
/// `[A-Za-z0-9][A-Za-z0-9_.-]*`, 1 to 128 bytes.
pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// A manager namespace: `[a-z0-9][a-z0-9._-]*`, at most 64 bytes.
pub fn is_namespace(ns: &str) -> bool {
    let b = ns.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
}

/// A lease id: `[A-Za-z0-9._-]`, 1 to 76 bytes, as containerd's identifiers.
pub fn is_lease_id(id: &str) -> bool {
    (1..=76).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A fresh id: 16 hex digits from the kernel's random pool.
pub fn random() -> String {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_ids() {
        for ok in ["a", "web-1", "x.y_z+1", &"a".repeat(255)] {
            assert!(is_runtime_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "ä",
            &"a".repeat(256),
        ] {
            assert!(!is_runtime_id(bad), "{bad}");
        }
    }

    #[test]
    fn names_namespaces_and_leases() {
        assert!(is_name("web") && is_name("a.b-c_d") && is_name(&"x".repeat(128)));
        for bad in ["", "-a", ".a", "a/b", "a+b", &"x".repeat(129)] {
            assert!(!is_name(bad), "{bad}");
        }
        assert!(is_namespace("default") && is_namespace("k8s.io"));
        for bad in ["", "Default", "-x", "a/b", &"x".repeat(65)] {
            assert!(!is_namespace(bad), "{bad}");
        }
        assert!(is_lease_id("Lease.1_-") && !is_lease_id(&"l".repeat(77)) && !is_lease_id("a/b"));
    }

    #[test]
    fn random_ids_differ() {
        let (a, b) = (random(), random());
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
