//! Mount options (`mounts[].options`): parsed once into flags, data,
//! propagation and recursive attributes.

use crate::syscall;
use nix::mount::MsFlags;

use super::*;

/// Parsed `options` of one mount.
#[derive(Debug, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2).
    pub flags: MsFlags,
    /// Flags explicitly cleared (`rw`, `suid`, …), for bind remounts.
    pub clear: MsFlags,
    /// Propagation changes applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// mount_setattr bits set and cleared recursively (`rro`, `rnosuid`, …).
    pub rec_set: u64,
    pub rec_clear: u64,
    /// Filesystem-specific data (`mode=755,size=65536k`).
    pub data: String,
    /// `tmpcopyup`: a tmpfs starts with the content of the directory it covers.
    pub tmpcopyup: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clear: 0,
            data: String::new(),
            tmpcopyup: false,
        }
    }
}

impl MountOptions {
    /// True for bind and rbind mounts.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// Parses mount options as runc does; unknown words are filesystem data.
pub fn parse_options(opts: &[String]) -> Result<MountOptions, Error> {
    use syscall::*;
    let mut o = MountOptions::default();
    for opt in opts {
        let set = |o: &mut MountOptions, f: MsFlags| {
            o.flags |= f;
            o.clear.remove(f);
        };
        let clr = |o: &mut MountOptions, f: MsFlags| {
            o.flags.remove(f);
            o.clear |= f;
        };
        match opt.as_str() {
            "defaults" => {}
            "ro" => set(&mut o, MsFlags::MS_RDONLY),
            "rw" => clr(&mut o, MsFlags::MS_RDONLY),
            "nosuid" => set(&mut o, MsFlags::MS_NOSUID),
            "suid" => clr(&mut o, MsFlags::MS_NOSUID),
            "nodev" => set(&mut o, MsFlags::MS_NODEV),
            "dev" => clr(&mut o, MsFlags::MS_NODEV),
            "noexec" => set(&mut o, MsFlags::MS_NOEXEC),
            "exec" => clr(&mut o, MsFlags::MS_NOEXEC),
            "sync" => set(&mut o, MsFlags::MS_SYNCHRONOUS),
            "async" => clr(&mut o, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => set(&mut o, MsFlags::MS_DIRSYNC),
            "remount" => set(&mut o, MsFlags::MS_REMOUNT),
            "mand" => set(&mut o, MsFlags::MS_MANDLOCK),
            "nomand" => clr(&mut o, MsFlags::MS_MANDLOCK),
            "atime" => clr(&mut o, MsFlags::MS_NOATIME),
            "noatime" => set(&mut o, MsFlags::MS_NOATIME),
            "diratime" => clr(&mut o, MsFlags::MS_NODIRATIME),
            "nodiratime" => set(&mut o, MsFlags::MS_NODIRATIME),
            "relatime" => set(&mut o, MsFlags::MS_RELATIME),
            "norelatime" => clr(&mut o, MsFlags::MS_RELATIME),
            "strictatime" => set(&mut o, MsFlags::MS_STRICTATIME),
            "nostrictatime" => clr(&mut o, MsFlags::MS_STRICTATIME),
            "lazytime" => set(&mut o, MsFlags::MS_LAZYTIME),
            "nolazytime" => clr(&mut o, MsFlags::MS_LAZYTIME),
            "iversion" => set(&mut o, MsFlags::MS_I_VERSION),
            "noiversion" => clr(&mut o, MsFlags::MS_I_VERSION),
            "silent" => set(&mut o, MsFlags::MS_SILENT),
            "loud" => clr(&mut o, MsFlags::MS_SILENT),
            "nosymfollow" => set(&mut o, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
            "symfollow" => clr(&mut o, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
            "bind" => o.flags |= MsFlags::MS_BIND,
            "rbind" => o.flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "private" => o.propagation.push(MsFlags::MS_PRIVATE),
            "rprivate" => o.propagation.push(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
            "shared" => o.propagation.push(MsFlags::MS_SHARED),
            "rshared" => o.propagation.push(MsFlags::MS_SHARED | MsFlags::MS_REC),
            "slave" => o.propagation.push(MsFlags::MS_SLAVE),
            "rslave" => o.propagation.push(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            "unbindable" => o.propagation.push(MsFlags::MS_UNBINDABLE),
            "runbindable" => o.propagation.push(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
            "rro" => o.rec_set |= MOUNT_ATTR_RDONLY,
            "rrw" => o.rec_clear |= MOUNT_ATTR_RDONLY,
            "rnosuid" => o.rec_set |= MOUNT_ATTR_NOSUID,
            "rsuid" => o.rec_clear |= MOUNT_ATTR_NOSUID,
            "rnodev" => o.rec_set |= MOUNT_ATTR_NODEV,
            "rdev" => o.rec_clear |= MOUNT_ATTR_NODEV,
            "rnoexec" => o.rec_set |= MOUNT_ATTR_NOEXEC,
            "rexec" => o.rec_clear |= MOUNT_ATTR_NOEXEC,
            "rnodiratime" => o.rec_set |= MOUNT_ATTR_NODIRATIME,
            "rdiratime" => o.rec_clear |= MOUNT_ATTR_NODIRATIME,
            "rnosymfollow" => o.rec_set |= MOUNT_ATTR_NOSYMFOLLOW,
            "rsymfollow" => o.rec_clear |= MOUNT_ATTR_NOSYMFOLLOW,
            "rrelatime" => {
                o.rec_clear |= MOUNT_ATTR__ATIME;
                o.rec_set |= MOUNT_ATTR_RELATIME;
            }
            "rnoatime" => {
                o.rec_clear |= MOUNT_ATTR__ATIME;
                o.rec_set |= MOUNT_ATTR_NOATIME;
            }
            "rstrictatime" => {
                o.rec_clear |= MOUNT_ATTR__ATIME;
                o.rec_set |= MOUNT_ATTR_STRICTATIME;
            }
            "ratime" | "rnorelatime" | "rnostrictatime" => o.rec_clear |= MOUNT_ATTR__ATIME,
            "tmpcopyup" => o.tmpcopyup = true,
            "idmap" | "ridmap" => {
                return Err(Error::Invalid(format!(
                    "mount option {opt:?}: idmapped mounts are not implemented yet"
                )))
            }
            data => {
                if !o.data.is_empty() {
                    o.data.push(',');
                }
                o.data.push_str(data);
            }
        }
    }
    Ok(o)
}

/// The mount flag of a `rootfsPropagation` value.
pub fn propagation_flag(p: &str) -> Result<MsFlags, Error> {
    Ok(match p {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        other => {
            return Err(Error::Invalid(format!(
                "linux.rootfsPropagation {other:?}: unknown propagation"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    //! Each option of `mounts[].options`, one test each: what it sets,
    //! clears, propagates or applies recursively.
    use super::*;
    use crate::syscall::*;

    fn one(opt: &str) -> MountOptions {
        parse_options(&[opt.to_string()]).unwrap()
    }

    macro_rules! sets {
        ($($name:ident: $opt:literal => $flag:expr;)*) => {$(
            #[test]
            fn $name() {
                let o = one($opt);
                assert_eq!((o.flags, o.clear), ($flag, MsFlags::empty()), "{o:?}");
            }
        )*};
    }
    macro_rules! clears {
        ($($name:ident: $opt:literal => $flag:expr;)*) => {$(
            #[test]
            fn $name() {
                let o = one($opt);
                assert_eq!((o.flags, o.clear), (MsFlags::empty(), $flag), "{o:?}");
            }
        )*};
    }
    macro_rules! propagates {
        ($($name:ident: $opt:literal => $flag:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(one($opt).propagation, vec![$flag]);
                assert_eq!(propagation_flag($opt).unwrap(), $flag);
            }
        )*};
    }
    macro_rules! recursive {
        ($($name:ident: $opt:literal => ($set:expr, $clear:expr);)*) => {$(
            #[test]
            fn $name() {
                let o = one($opt);
                assert_eq!((o.rec_set, o.rec_clear), ($set, $clear), "{o:?}");
                assert!(o.flags.is_empty(), "a recursive attribute is not a mount flag");
            }
        )*};
    }

    sets! {
        ro: "ro" => MsFlags::MS_RDONLY;
        nosuid: "nosuid" => MsFlags::MS_NOSUID;
        nodev: "nodev" => MsFlags::MS_NODEV;
        noexec: "noexec" => MsFlags::MS_NOEXEC;
        sync: "sync" => MsFlags::MS_SYNCHRONOUS;
        dirsync: "dirsync" => MsFlags::MS_DIRSYNC;
        remount: "remount" => MsFlags::MS_REMOUNT;
        mand: "mand" => MsFlags::MS_MANDLOCK;
        noatime: "noatime" => MsFlags::MS_NOATIME;
        nodiratime: "nodiratime" => MsFlags::MS_NODIRATIME;
        relatime: "relatime" => MsFlags::MS_RELATIME;
        strictatime: "strictatime" => MsFlags::MS_STRICTATIME;
        lazytime: "lazytime" => MsFlags::MS_LAZYTIME;
        iversion: "iversion" => MsFlags::MS_I_VERSION;
        silent: "silent" => MsFlags::MS_SILENT;
        nosymfollow: "nosymfollow" => MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);
        bind: "bind" => MsFlags::MS_BIND;
        rbind: "rbind" => MsFlags::MS_BIND | MsFlags::MS_REC;
    }

    clears! {
        rw: "rw" => MsFlags::MS_RDONLY;
        suid: "suid" => MsFlags::MS_NOSUID;
        dev: "dev" => MsFlags::MS_NODEV;
        exec: "exec" => MsFlags::MS_NOEXEC;
        async_: "async" => MsFlags::MS_SYNCHRONOUS;
        nomand: "nomand" => MsFlags::MS_MANDLOCK;
        atime: "atime" => MsFlags::MS_NOATIME;
        diratime: "diratime" => MsFlags::MS_NODIRATIME;
        norelatime: "norelatime" => MsFlags::MS_RELATIME;
        nostrictatime: "nostrictatime" => MsFlags::MS_STRICTATIME;
        nolazytime: "nolazytime" => MsFlags::MS_LAZYTIME;
        noiversion: "noiversion" => MsFlags::MS_I_VERSION;
        loud: "loud" => MsFlags::MS_SILENT;
        symfollow: "symfollow" => MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);
    }

    propagates! {
        private: "private" => MsFlags::MS_PRIVATE;
        rprivate: "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC;
        shared: "shared" => MsFlags::MS_SHARED;
        rshared: "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC;
        slave: "slave" => MsFlags::MS_SLAVE;
        rslave: "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC;
        unbindable: "unbindable" => MsFlags::MS_UNBINDABLE;
        runbindable: "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC;
    }

    recursive! {
        rro: "rro" => (MOUNT_ATTR_RDONLY, 0);
        rrw: "rrw" => (0, MOUNT_ATTR_RDONLY);
        rnosuid: "rnosuid" => (MOUNT_ATTR_NOSUID, 0);
        rsuid: "rsuid" => (0, MOUNT_ATTR_NOSUID);
        rnodev: "rnodev" => (MOUNT_ATTR_NODEV, 0);
        rdev: "rdev" => (0, MOUNT_ATTR_NODEV);
        rnoexec: "rnoexec" => (MOUNT_ATTR_NOEXEC, 0);
        rexec: "rexec" => (0, MOUNT_ATTR_NOEXEC);
        rnodiratime: "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0);
        rdiratime: "rdiratime" => (0, MOUNT_ATTR_NODIRATIME);
        rnosymfollow: "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0);
        rsymfollow: "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW);
        rrelatime: "rrelatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME);
        rnoatime: "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME);
        rstrictatime: "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME);
        ratime: "ratime" => (0, MOUNT_ATTR__ATIME);
    }

    #[test]
    fn the_last_of_a_pair_wins() {
        let o = parse_options(&["ro".into(), "rw".into()]).unwrap();
        assert!(!o.flags.contains(MsFlags::MS_RDONLY) && o.clear.contains(MsFlags::MS_RDONLY));
        let o = parse_options(&["rw".into(), "ro".into()]).unwrap();
        assert!(o.flags.contains(MsFlags::MS_RDONLY) && !o.clear.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn unknown_options_are_filesystem_data_in_order() {
        let o = parse_options(&["size=64k".into(), "nosuid".into(), "mode=1777".into()]).unwrap();
        assert_eq!(o.data, "size=64k,mode=1777");
        assert_eq!(o.flags, MsFlags::MS_NOSUID);
    }

    #[test]
    fn tmpcopyup_and_defaults() {
        assert!(one("tmpcopyup").tmpcopyup);
        assert_eq!(one("defaults"), MountOptions::default());
    }

    #[test]
    fn idmap_options_are_refused_with_their_name() {
        for opt in ["idmap", "ridmap"] {
            let e = parse_options(&[opt.to_string()]).unwrap_err().to_string();
            assert!(e.contains(opt), "{e}");
        }
        assert!(propagation_flag("sideways").is_err());
    }
}
