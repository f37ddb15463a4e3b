//! User namespace id mappings as containerd's mount options carry them
//! (`uidmap=0:1000:65536`, several joined by `,`) and as
//! `/proc/PID/uid_map` takes them (one `container host length` per line).
//! berthd writes them for a pod with a user namespace; the shim reads them
//! to idmap the pod's rootfs layers and to make the pod's user namespace.

use std::fmt;

/// One range: `len` ids from `container` inside map to `host` outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    /// The first id inside the namespace.
    pub container: u32,
    /// The id it is outside.
    pub host: u32,
    /// How many ids.
    pub len: u32,
}

/// A user namespace's uid maps and gid maps.
pub type UserMaps = (Vec<IdMap>, Vec<IdMap>);

/// A malformed mapping.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "id mapping {0:?}: want CONTAINER:HOST:LENGTH with a length above 0 and no range past 2^32"
)]
pub struct IdMapError(pub String);

impl IdMap {
    /// A range of `len` ids (above 0) from `container` to `host`, neither
    /// end past 2^32.
    pub fn new(container: u32, host: u32, len: u32) -> Result<IdMap, IdMapError> {
        let fits = |start: u32| len > 0 && start.checked_add(len - 1).is_some();
        if !fits(container) || !fits(host) {
            return Err(IdMapError(format!("{container}:{host}:{len}")));
        }
        Ok(IdMap {
            container,
            host,
            len,
        })
    }

    /// The host id of `id` inside, if this range maps it.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        let off = id.checked_sub(self.container)?;
        (off < self.len).then(|| self.host + off)
    }
}

impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.container, self.host, self.len)
    }
}

/// Parses `C:H:L[,C:H:L...]`.
pub fn parse(s: &str) -> Result<Vec<IdMap>, IdMapError> {
    s.split(',')
        .map(|one| {
            let bad = || IdMapError(one.to_string());
            let mut it = one.split(':').map(|n| n.parse::<u32>().map_err(|_| bad()));
            let (Some(c), Some(h), Some(l), None) = (it.next(), it.next(), it.next(), it.next())
            else {
                return Err(bad());
            };
            IdMap::new(c?, h?, l?).map_err(|_| bad())
        })
        .collect()
}

/// `C:H:L` joined by `,` (what `parse` reads).
pub fn format(maps: &[IdMap]) -> String {
    maps.iter()
        .map(IdMap::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The text `/proc/PID/uid_map` (or `gid_map`) takes.
pub fn proc_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container, m.host, m.len))
        .collect()
}

/// The host id of `id` inside, if any range maps it.
pub fn to_host(maps: &[IdMap], id: u32) -> Option<u32> {
    maps.iter().find_map(|m| m.to_host(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_read_as_containerd_writes_them() {
        let m = parse("0:1000:100000").unwrap();
        assert_eq!(
            m,
            [IdMap {
                container: 0,
                host: 1000,
                len: 100000
            }]
        );
        assert_eq!(format(&m), "0:1000:100000");
        assert_eq!(proc_text(&m), "0 1000 100000\n");
        let two = parse("0:1000:1,1:200000:65535").unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(to_host(&two, 0), Some(1000));
        assert_eq!(to_host(&two, 2), Some(200001));
        assert_eq!(to_host(&two, 65536), None);
        assert_eq!(proc_text(&two), "0 1000 1\n1 200000 65535\n");
    }

    #[test]
    fn malformed_mappings_are_refused_with_their_text() {
        for bad in [
            "",
            "0:1000",
            "0:1000:0",
            "a:1:1",
            "0:1:2:3",
            "0:4294967295:2",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().contains("id mapping"), "{bad}: {e}");
        }
        assert!(parse("4294967295:0:1").is_ok());
    }
}
