//! Pushes images to OCI registries (distribution spec), as `docker push`:
//! every blob is first asked for with HEAD and skipped when the registry has
//! it; a blob another repository of the same registry holds (known from the
//! local images named there) is mounted from it; the rest is uploaded in
//! chunks, and an upload broken off is resumed where the registry says it
//! stopped. Manifests go last (an index's children before it), so a tag
//! never names content the registry lacks. Blobs and manifests are sent as
//! stored, byte for byte: the image pulls back with the same digest.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::sync::mpsc;

use crate::store::digest::Digest;
use crate::store::images::{Image, ImageError, Images, RegistryFailure};
use crate::store::mirrors::RegistrySettings;
use crate::store::oci::{self, Descriptor, Index, Manifest, Platform};
use crate::store::reference::Reference;
use crate::store::registry::{failure, kind_of, transport, Session};

/// Blobs uploaded at the same time.
const PARALLEL: usize = 3;

/// The size of one upload request: what a broken connection loses at most.
const CHUNK: u64 = 16 << 20;

/// Attempts at one blob's upload before the push fails.
const ATTEMPTS: u32 = 5;

/// What a push reports while it runs, then its end.
#[derive(Debug)]
pub enum PushEvent {
    /// A blob's progress.
    Progress {
        /// The blob.
        digest: Digest,
        /// preparing, pushing, resuming, pushed, exists, mounted.
        status: String,
        /// Bytes sent (for pushing and resuming).
        offset: u64,
        /// Its size.
        total: u64,
        /// Whether it is a layer (docker lists only those).
        layer: bool,
        /// With mounted: the repository it came from.
        from: String,
    },
    /// The tag now names this manifest.
    Done {
        /// The tag pushed.
        tag: String,
        /// The manifest's (or index's) digest.
        digest: Digest,
        /// Its size.
        size: u64,
    },
}

type Progress = mpsc::Sender<Result<PushEvent, ImageError>>;

/// What one push sends: blobs, then manifests in order (an index last).
#[derive(Debug)]
pub struct Plan {
    /// Configs and layers, each once, with whether it is a layer.
    pub blobs: Vec<(Descriptor, bool)>,
    /// Manifests to put by digest, then the one the tag names, last.
    pub manifests: Vec<Descriptor>,
}

/// What to push for `image`: the whole index when every manifest it lists
/// is here; else (an index pulled for one platform) the manifest of
/// `platform` alone, as docker does with what it has.
pub fn plan(store: &Images, image: &Image, platform: &Platform) -> Result<Plan, ImageError> {
    let mut manifests = Vec::new();
    if oci::is_index(&image.target.media_type) {
        let data = store.content.read_all(&image.target.digest, 4 << 20)?;
        let idx: Index = serde_json::from_slice(&data)
            .map_err(|e| ImageError::Invalid(format!("index {}: {e}", image.target.digest)))?;
        let complete = idx.manifests.iter().all(|m| {
            oci::is_manifest(&m.media_type)
                && store.content.exists(&m.digest)
                && read_manifest(store, m).is_ok_and(|man| {
                    std::iter::once(&man.config)
                        .chain(&man.layers)
                        .all(|b| store.content.exists(&b.digest))
                })
        });
        if complete {
            manifests.extend(idx.manifests.iter().cloned());
            manifests.push(image.target.clone());
        } else {
            manifests.push(store.manifest(image, platform)?.0);
        }
    } else {
        manifests.push(image.target.clone());
    }
    let mut blobs: Vec<(Descriptor, bool)> = Vec::new();
    for m in manifests.iter().filter(|m| oci::is_manifest(&m.media_type)) {
        let man = read_manifest(store, m)?;
        let listed =
            std::iter::once((man.config, false)).chain(man.layers.into_iter().map(|l| (l, true)));
        for (d, layer) in listed {
            if !store.content.exists(&d.digest) {
                return Err(ImageError::Invalid(format!(
                    "image {}: blob {} is not in the content store",
                    image.name, d.digest
                )));
            }
            if !blobs.iter().any(|(b, _)| b.digest == d.digest) {
                blobs.push((d, layer));
            }
        }
    }
    Ok(Plan { blobs, manifests })
}

fn read_manifest(store: &Images, d: &Descriptor) -> Result<Manifest, ImageError> {
    let data = store.content.read_all(&d.digest, 4 << 20)?;
    serde_json::from_slice(&data)
        .map_err(|e| ImageError::Invalid(format!("manifest {}: {e}", d.digest)))
}

/// For each blob, a repository of `r`'s registry other than `r`'s whose
/// local image holds it: where a mount may find it.
pub fn mount_sources(
    store: &Images,
    ns: &str,
    r: &Reference,
    platform: &Platform,
) -> BTreeMap<Digest, String> {
    let mut out = BTreeMap::new();
    for img in store.list(ns).unwrap_or_default() {
        let Ok(other) = Reference::parse(&img.name) else {
            continue;
        };
        if other.registry != r.registry || other.repository == r.repository {
            continue;
        }
        let Ok(p) = plan(store, &img, platform) else {
            continue;
        };
        for (b, _) in p.blobs {
            out.entry(b.digest)
                .or_insert_with(|| other.repository.clone());
        }
    }
    out
}

/// What a push asks for.
pub struct PushRequest {
    /// The image, as the user wrote it (a tag, never a digest).
    pub reference: String,
    /// The platform pushed when only part of an index is here.
    pub platform: Platform,
}

/// Starts pushing; progress and the result arrive on the returned channel.
/// Credentials are the docker config.json's for the registry; mirrors are
/// for pulls only: a push goes to the registry itself.
pub fn start(
    store: Arc<Images>,
    ns: String,
    req: PushRequest,
    settings: Arc<RegistrySettings>,
) -> Result<mpsc::Receiver<Result<PushEvent, ImageError>>, ImageError> {
    let r = Reference::parse(&req.reference).map_err(|e| ImageError::Invalid(e.to_string()))?;
    if r.digest.is_some() {
        return Err(ImageError::Invalid(format!(
            "push {}: cannot push a digest reference",
            req.reference
        )));
    }
    let image = store.get(&ns, &r.to_string())?;
    let plan = plan(&store, &image, &req.platform)?;
    let sources = mount_sources(&store, &ns, &r, &req.platform);
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let result = push(&store, &r, &plan, &sources, &settings, &tx).await;
        let _ = tx.send(result).await;
    });
    Ok(rx)
}

async fn report(tx: &Progress, d: &Descriptor, layer: bool, status: &str, offset: u64) {
    let _ = tx
        .send(Ok(PushEvent::Progress {
            digest: d.digest.clone(),
            status: status.into(),
            offset,
            total: d.size,
            layer,
            from: String::new(),
        }))
        .await;
}

async fn push(
    store: &Arc<Images>,
    r: &Reference,
    plan: &Plan,
    sources: &BTreeMap<Digest, String>,
    settings: &RegistrySettings,
    tx: &Progress,
) -> Result<PushEvent, ImageError> {
    let plain = crate::store::pull::insecure(&r.registry, &settings.insecure);
    let creds = match crate::store::pull::credentials(&r.registry) {
        oci_client::secrets::RegistryAuth::Basic(u, p) => Some((u, p)),
        _ => None,
    };
    let mut from: Vec<String> = sources.values().cloned().collect();
    from.sort();
    from.dedup();
    let session = Arc::new(Session::open(&r.registry, &r.repository, plain, creds, &from).await?);
    // GC stays out while blobs are read.
    let _shared = store.gc_lock.read().await;
    for (d, layer) in &plan.blobs {
        report(tx, d, *layer, "preparing", 0).await;
    }
    let mut set = tokio::task::JoinSet::new();
    for (d, layer) in plan.blobs.clone() {
        while set.len() >= PARALLEL {
            set.join_next()
                .await
                .expect("non-empty")
                .map_err(|e| ImageError::Invalid(e.to_string()))??;
        }
        let (s, st, t) = (session.clone(), store.clone(), tx.clone());
        let source = sources.get(&d.digest).cloned();
        set.spawn(async move { push_blob(&s, &st, &d, layer, source, &t).await });
    }
    while let Some(res) = set.join_next().await {
        res.map_err(|e| ImageError::Invalid(e.to_string()))??;
    }
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    let (last, children) = plan.manifests.split_last().expect("a plan has a manifest");
    for m in children {
        put_manifest(&session, store, m, &m.digest.to_string()).await?;
    }
    put_manifest(&session, store, last, &tag).await?;
    Ok(PushEvent::Done {
        tag,
        digest: last.digest.clone(),
        size: last.size,
    })
}

async fn put_manifest(
    s: &Session,
    store: &Images,
    d: &Descriptor,
    reference: &str,
) -> Result<(), ImageError> {
    let body = store.content.read_all(&d.digest, 4 << 20)?;
    let url = s.repo_url(&format!("manifests/{reference}"));
    let what = format!("put manifest {}:{reference}", s.repository);
    let res = s
        .send(Method::PUT, &url, |b| {
            b.header(reqwest::header::CONTENT_TYPE, &d.media_type)
                .body(body.clone())
        })
        .await
        .map_err(|e| transport(what.clone(), &e))?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(failure(what, res).await)
    }
}

/// Whether the registry has the blob in the session's repository.
async fn exists(s: &Session, d: &Descriptor) -> Result<bool, ImageError> {
    let url = s.repo_url(&format!("blobs/{}", d.digest));
    let what = format!("check blob {}", d.digest);
    let res = s
        .send(Method::HEAD, &url, |b| b)
        .await
        .map_err(|e| transport(what.clone(), &e))?;
    match res.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(failure(what, res).await),
    }
}

/// Where a new upload goes (202 and its Location); with `mount`, a 201
/// means the registry mounted the blob and there is nothing to upload.
async fn begin(
    s: &Session,
    d: &Descriptor,
    mount: Option<&str>,
) -> Result<Option<String>, ImageError> {
    let mut url = s.repo_url("blobs/uploads/");
    if let Some(from) = mount {
        url.push_str(&format!("?mount={}&from={from}", d.digest));
    }
    let what = format!("start the upload of {}", d.digest);
    let res = s
        .send(Method::POST, &url, |b| {
            b.header(reqwest::header::CONTENT_LENGTH, 0)
        })
        .await
        .map_err(|e| transport(what.clone(), &e))?;
    match res.status() {
        StatusCode::CREATED if mount.is_some() => Ok(None),
        StatusCode::ACCEPTED => Ok(Some(location(s, &res, &what)?)),
        _ => Err(failure(what, res).await),
    }
}

fn location(s: &Session, res: &reqwest::Response, what: &str) -> Result<String, ImageError> {
    res.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(|l| s.url(l))
        .ok_or_else(|| ImageError::Registry {
            what: what.to_string(),
            why: "the registry gave no upload location".into(),
            kind: RegistryFailure::Other,
        })
}

/// The byte after the last one an upload holds, from its `Range: 0-N`;
/// None where the registry's answer cannot tell (distribution sends `0-0`
/// for both nothing and one byte): the upload starts over.
pub fn resume_offset(range: Option<&str>) -> Option<u64> {
    let end = range?.trim().strip_prefix("0-")?.parse::<u64>().ok()?;
    (end > 0).then_some(end + 1)
}

/// Reads `len` bytes of blob `d` from `offset`.
fn read_chunk(
    store: &Images,
    d: &Descriptor,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, ImageError> {
    let mut f = store.content.open_blob(&d.digest)?;
    let io = |e: std::io::Error| ImageError::Invalid(format!("read blob {}: {e}", d.digest));
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(len).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 != len {
        return Err(ImageError::Invalid(format!(
            "read blob {}: it is shorter than its descriptor's {} bytes",
            d.digest, d.size
        )));
    }
    Ok(buf)
}

async fn push_blob(
    s: &Session,
    store: &Arc<Images>,
    d: &Descriptor,
    layer: bool,
    source: Option<String>,
    tx: &Progress,
) -> Result<(), ImageError> {
    if exists(s, d).await? {
        report(tx, d, layer, "exists", d.size).await;
        return Ok(());
    }
    let mut loc = match begin(s, d, source.as_deref()).await? {
        Some(l) => l,
        None => {
            let _ = tx
                .send(Ok(PushEvent::Progress {
                    digest: d.digest.clone(),
                    status: "mounted".into(),
                    offset: d.size,
                    total: d.size,
                    layer,
                    from: source.unwrap_or_default(),
                }))
                .await;
            return Ok(());
        }
    };
    let mut offset = 0u64;
    let mut failures = 0u32;
    while offset < d.size {
        let len = CHUNK.min(d.size - offset);
        let (st, dd) = (store.clone(), d.clone());
        let chunk = tokio::task::spawn_blocking(move || read_chunk(&st, &dd, offset, len))
            .await
            .map_err(|e| ImageError::Invalid(e.to_string()))??;
        let what = format!("upload {}", d.digest);
        let sent = s
            .send(Method::PATCH, &loc, |b| {
                b.header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .header(
                        reqwest::header::CONTENT_RANGE,
                        format!("{offset}-{}", offset + len - 1),
                    )
                    .body(chunk.clone())
            })
            .await;
        let broken = match sent {
            Ok(res) if res.status() == StatusCode::ACCEPTED => {
                loc = location(s, &res, &what)?;
                offset += len;
                report(tx, d, layer, "pushing", offset).await;
                continue;
            }
            Ok(res) if kind_of(res.status()) != RegistryFailure::Unreachable => {
                return Err(failure(what, res).await)
            }
            Ok(res) => failure(what, res).await,
            Err(e) => transport(what, &e),
        };
        failures += 1;
        if failures >= ATTEMPTS {
            return Err(broken);
        }
        tracing::info!(blob = %d.digest, error = %broken, "upload broken off; resuming");
        tokio::time::sleep(Duration::from_millis(200 << failures)).await;
        // Ask the registry how far it got; start over where it cannot say.
        let what = format!("upload status of {}", d.digest);
        let status = s.send(Method::GET, &loc, |b| b).await;
        match status {
            Ok(res) if res.status() == StatusCode::NO_CONTENT => {
                let range = res
                    .headers()
                    .get(reqwest::header::RANGE)
                    .and_then(|r| r.to_str().ok());
                match resume_offset(range) {
                    Some(o) if o <= d.size => {
                        offset = o;
                        loc = location(s, &res, &what).unwrap_or(loc);
                    }
                    _ => {
                        offset = 0;
                        loc = begin(s, d, None).await?.expect("no mount asked");
                    }
                }
            }
            _ => {
                offset = 0;
                loc = begin(s, d, None).await?.expect("no mount asked");
            }
        }
        report(tx, d, layer, "resuming", offset).await;
    }
    let mut url = reqwest::Url::parse(&loc).map_err(|e| ImageError::Registry {
        what: format!("upload {}", d.digest),
        why: format!("bad upload location {loc:?}: {e}"),
        kind: RegistryFailure::Other,
    })?;
    url.query_pairs_mut()
        .append_pair("digest", &d.digest.to_string());
    let what = format!("finish the upload of {}", d.digest);
    let res = s
        .send(Method::PUT, url.as_str(), |b| {
            b.header(reqwest::header::CONTENT_LENGTH, 0)
        })
        .await
        .map_err(|e| transport(what.clone(), &e))?;
    if !res.status().is_success() {
        return Err(failure(what, res).await);
    }
    report(tx, d, layer, "pushed", d.size).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_resumes_after_the_last_byte_the_registry_holds() {
        assert_eq!(resume_offset(Some("0-1048575")), Some(1048576));
        // Nothing, or one byte: distribution says 0-0 for both.
        assert_eq!(resume_offset(Some("0-0")), None);
        assert_eq!(resume_offset(Some("bytes=5-9")), None);
        assert_eq!(resume_offset(None), None);
    }
}
