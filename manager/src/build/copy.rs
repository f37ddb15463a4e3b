//! COPY and ADD: the sources resolved in the context or in a view of
//! another stage's (or image's) root, hashed for the cache key, then
//! copied (ADD: a local archive unpacked) into the step's mounted
//! snapshot, which becomes the step's layer.

use std::path::PathBuf;

use super::dockerfile::{self, Instruction};
use super::expand::{self, Vars};
use super::fs::Mounted;
use super::sources::{self, Owner, Root};
use super::stage::{step_err, Builder, Run};
use super::state::State;
use super::{config, io, BuildError};
use crate::store::build_cache;
use crate::store::digest::Digest;
use crate::store::images::ImageError;
use crate::store::oci::Platform;

impl Builder {
    /// A view of another stage's or an image's root, for COPY --from.
    async fn source_root(
        &self,
        run: &mut Run<'_>,
        i: &Instruction,
        from: &str,
    ) -> Result<(State, Option<(String, Mounted)>), BuildError> {
        let st = match run
            .names
            .get(&from.to_ascii_lowercase())
            .copied()
            .or_else(|| from.parse::<usize>().ok())
        {
            Some(n) => run.done.get(&n).cloned().ok_or_else(|| {
                step_err(
                    i,
                    format!("--from={from}: that stage is not built before this one"),
                )
            })?,
            None => self.image_state(run, i, from, &Platform::host()).await?,
        };
        let Some(chain) = st.chain() else {
            return Ok((st, None));
        };
        run.mounts += 1;
        let key = format!("build-{}-{}", run.id, run.mounts);
        self.store
            .snapshots
            .view(run.ns, &key, Some(&chain))
            .map_err(ImageError::from)?;
        let at = self.work.join(&run.id).join(format!("m{}", run.mounts));
        match Mounted::mount(&self.store, run.ns, &key, &at) {
            Ok(m) => Ok((st, Some((key, m)))),
            Err(e) => {
                let _ = self.store.snapshots.remove(run.ns, &key);
                Err(e)
            }
        }
    }

    pub(super) async fn copy_step(
        &self,
        run: &mut Run<'_>,
        i: &Instruction,
        state: State,
        args: &Vars,
    ) -> Result<State, BuildError> {
        let add = i.keyword == "ADD";
        if add {
            i.check_flags(&["chown", "chmod", "link", "checksum"])?;
        } else {
            i.check_flags(&["from", "chown", "chmod", "link"])?;
        }
        let vars = config::vars(&state.config, args);
        let words = match dockerfile::json_array(&i.args) {
            Some(v) => v
                .iter()
                .map(|w| expand::word(w, &vars, run.escape))
                .collect::<Result<Vec<_>, _>>(),
            None => expand::words(&i.args, &vars, run.escape),
        }
        .map_err(|e| step_err(i, e))?;
        if words.len() < 2 {
            return Err(step_err(
                i,
                format!("{} requires at least two arguments", i.keyword),
            ));
        }
        let (srcs, dest) = words.split_at(words.len() - 1);
        let workdir = state.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("/")
            .to_string();
        let dest_raw = &dest[0];
        let dest_abs = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{dest_raw}", workdir.trim_end_matches('/'))
        };
        let dest_dir_form = dest_raw.ends_with('/') || dest_raw.ends_with("/.") || dest_raw == ".";
        let mode = match i.flag("chmod") {
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .map_err(|_| step_err(i, format!("--chmod={m}: not an octal mode")))?,
            ),
            None => None,
        };
        // Where the sources are: the context, or another stage or image.
        let from = i
            .flag("from")
            .map(|f| expand::word(f, &run.meta_args, run.escape))
            .transpose()
            .map_err(|e| step_err(i, e))?;
        let (root, from_view) = match &from {
            Some(f) => {
                let (_, view) = self.source_root(run, i, f).await?;
                let root = match &view {
                    Some((_, m)) => {
                        Root::from_fd(m.root.try_clone().map_err(io("dup", "the stage root"))?)
                    }
                    None => {
                        return Err(step_err(
                            i,
                            format!("--from={f}: that stage's filesystem is empty"),
                        ))
                    }
                };
                (root, view)
            }
            None => (
                Root::open(&run.req.context).map_err(|e| step_err(i, e))?,
                None,
            ),
        };
        let result = self
            .copy_with(
                run,
                i,
                state,
                &root,
                srcs,
                &dest_abs,
                dest_dir_form,
                from.is_some(),
                mode,
                add,
            )
            .await;
        if let Some((key, m)) = from_view {
            drop(m);
            let _ = self.store.snapshots.remove(run.ns, &key);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_with(
        &self,
        run: &mut Run<'_>,
        i: &Instruction,
        state: State,
        root: &Root,
        srcs: &[String],
        dest: &str,
        dest_dir_form: bool,
        from_stage: bool,
        mode: Option<u32>,
        add: bool,
    ) -> Result<State, BuildError> {
        let mut found = Vec::new();
        for s in srcs {
            if add && (s.starts_with("http://") || s.starts_with("https://")) {
                let (dir, name) = self.download(run, i, s).await?;
                let mut got = Root::open(&dir)
                    .and_then(|r| r.sources(&name))
                    .map_err(|e| step_err(i, e))?;
                for g in &mut got {
                    g.remote = true;
                }
                found.extend(got);
                continue;
            }
            found.extend(root.sources(s).map_err(|e| step_err(i, e))?);
        }
        let (key, m) = self.mount_step(run, &state)?;
        let r = self
            .copy_into_mount(
                run,
                i,
                &state,
                &m,
                &found,
                dest,
                dest_dir_form,
                from_stage,
                mode,
                add,
            )
            .await;
        drop(m);
        let (ckey, created_by) = match r {
            Ok(Copied::Made(k, by)) => (k, by),
            Ok(Copied::Cached(s)) => {
                let _ = self.store.snapshots.remove(run.ns, &key);
                return Ok(*s);
            }
            Err(e) => {
                let _ = self.store.snapshots.remove(run.ns, &key);
                return Err(e);
            }
        };
        let s = self
            .layer_step(run, state, key, &[], Some(created_by))
            .await?;
        self.remember(run, &ckey, &s)?;
        Ok(s)
    }

    /// ADD of a URL: the file fetched into the build's scratch space, named
    /// by the URL's last path segment, 0600 as docker makes it, checked
    /// against `--checksum` when given. Returns its directory and name.
    async fn download(
        &self,
        run: &mut Run<'_>,
        i: &Instruction,
        url: &str,
    ) -> Result<(PathBuf, String), BuildError> {
        let name = url
            .split(['?', '#'])
            .next()
            .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
            .filter(|n| !n.is_empty() && !n.contains(':'))
            .unwrap_or("download")
            .to_string();
        let fail = |why: String| step_err(i, format!("ADD {url}: {why}"));
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let mut res = client
            .get(url)
            .send()
            .await
            .map_err(|e| fail(format!("cannot fetch: {}", crate::store::pull::chain(&e))))?;
        if !res.status().is_success() {
            return Err(fail(format!(
                "cannot fetch: the server answered {}",
                res.status()
            )));
        }
        run.mounts += 1;
        let dir = self.work.join(&run.id).join(format!("dl{}", run.mounts));
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let path = dir.join(&name);
        let mut f = std::fs::File::create(&path).map_err(io("create", &path))?;
        let mut h = crate::store::digest::Hasher::new(crate::store::digest::Algorithm::Sha256);
        while let Some(chunk) = res.chunk().await.map_err(|e| fail(format!("read: {e}")))? {
            h.update(&chunk);
            std::io::Write::write_all(&mut f, &chunk).map_err(io("write", &path))?;
        }
        drop(f);
        if let Some(want) = i.flag("checksum") {
            let got = h.finish().to_string();
            if got != want {
                return Err(fail(format!(
                    "checksum mismatch: got {got}, --checksum says {want}"
                )));
            }
        }
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(io("chmod", &path))?;
        Ok((dir, name))
    }

    /// Copies into the mounted step snapshot, unless the cache has the step
    /// (its key needs the sources read, and the mount for `--chown` names
    /// and the destination's kind).
    #[allow(clippy::too_many_arguments)]
    async fn copy_into_mount(
        &self,
        run: &mut Run<'_>,
        i: &Instruction,
        state: &State,
        m: &Mounted,
        found: &[sources::Source],
        dest: &str,
        dest_dir_form: bool,
        from_stage: bool,
        mode: Option<u32>,
        add: bool,
    ) -> Result<Copied, BuildError> {
        let ids = match i.flag("chown") {
            Some(c) => Some(m.ids(c).map_err(|e| step_err(i, e))?),
            // Context files become root's; another stage's keep theirs.
            None if from_stage => None,
            None => Some((0, 0)),
        };
        let owner = Owner { ids, mode };
        let into_dir =
            dest_dir_form || found.len() > 1 || found.iter().any(|s| s.is_dir) || m.is_dir(dest);
        let mut h = crate::store::digest::Hasher::new(crate::store::digest::Algorithm::Sha256);
        let context_skip = |_: &str| false;
        let mut plans: Vec<(String, Plan)> = Vec::new();
        for src in found {
            // ADD unpacks a local archive into the destination.
            if add && !src.is_dir && !from_stage && !src.remote {
                if let Some(kind) = archive_kind(src) {
                    let e = sources::entries(src, b"archive", &context_skip)
                        .map_err(|e| step_err(i, e))?;
                    h.update(format!("archive {kind}\n").as_bytes());
                    sources::hash(&e, owner, &mut h).map_err(|e| step_err(i, e))?;
                    plans.push((dest.to_string(), Plan::Extract(src.proc_path())));
                    continue;
                }
            }
            let (dir, name) = if src.is_dir || into_dir {
                (
                    dest.to_string(),
                    if src.is_dir {
                        Vec::new()
                    } else {
                        src.base_name()
                    },
                )
            } else {
                let p = std::path::Path::new(dest);
                (
                    p.parent().map_or("/".into(), |d| d.display().to_string()),
                    p.file_name()
                        .map(|n| std::os::unix::ffi::OsStrExt::as_bytes(n).to_vec())
                        .unwrap_or_default(),
                )
            };
            let e = sources::entries(src, &name, &context_skip).map_err(|e| step_err(i, e))?;
            h.update(format!("{dir}\n").as_bytes());
            sources::hash(&e, owner, &mut h).map_err(|e| step_err(i, e))?;
            plans.push((dir, Plan::Copy(e)));
        }
        let inputs = h.finish();
        let key = build_cache::key(
            &state.manifest.digest,
            &format!("{} dest={dest} dir={into_dir}", i.original),
            &inputs.to_string(),
        );
        if let Some(s) = self.cached(run, &key).await? {
            return Ok(Copied::Cached(Box::new(s)));
        }
        for (dir, plan) in plans {
            let fd = m
                .ensure_dir(&dir, i.flag("chown").and(owner.ids))
                .map_err(|e| step_err(i, e))?;
            match plan {
                Plan::Extract(path) => {
                    let f = std::fs::File::open(&path).map_err(io("open", &path))?;
                    let r = decompress(f).map_err(|e| step_err(i, e))?;
                    super::fs::extract_into(fd, r).map_err(|e| step_err(i, e))?;
                }
                Plan::Copy(entries) => {
                    super::fs::copy_into(fd, entries, owner).map_err(|e| step_err(i, e))?;
                }
            }
        }
        let what = if add { "ADD" } else { "COPY" };
        Ok(Copied::Made(
            key,
            format!("/bin/sh -c #(nop) {what} {inputs} in {dest}"),
        ))
    }
}

/// What a COPY or ADD into the mounted snapshot came to.
enum Copied {
    /// The cache had the step: its image.
    Cached(Box<State>),
    /// Copied: the step's cache key and history text.
    Made(Digest, String),
}

/// What one COPY source becomes.
enum Plan {
    /// Entries copied below a directory.
    Copy(Vec<sources::Entry>),
    /// An archive (ADD) unpacked below it.
    Extract(PathBuf),
}

/// What kind of archive a file is, by its first bytes (as docker detects
/// them), or None: a file that is no archive is copied as it is.
fn archive_kind(src: &sources::Source) -> Option<&'static str> {
    let mut head = [0u8; 512];
    let mut f = std::fs::File::open(src.proc_path()).ok()?;
    let n = std::io::Read::read(&mut f, &mut head).ok()?;
    let h = &head[..n];
    if h.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if h.starts_with(b"BZh") {
        Some("bzip2")
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if n >= 262 && &h[257..262] == b"ustar" {
        Some("tar")
    } else {
        None
    }
}

/// A reader of the archive's tar, decompressed.
fn decompress(f: std::fs::File) -> Result<Box<dyn std::io::Read + Send>, String> {
    let mut head = [0u8; 6];
    let n = std::io::Read::read(&mut &f, &mut head).map_err(|e| e.to_string())?;
    use std::io::Seek;
    let mut f = f;
    f.rewind().map_err(|e| e.to_string())?;
    let h = &head[..n];
    Ok(if h.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(f).map_err(|e| e.to_string())?)
    } else if h.starts_with(b"BZh") || h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err("bzip2 and xz archives are not unpacked by berth's builder: recompress it with gzip or zstd".into());
    } else {
        Box::new(f)
    })
}
