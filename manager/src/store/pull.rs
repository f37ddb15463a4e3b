//! Pulls images from OCI registries (distribution spec) with oci-client:
//! manifests and indexes (OCI and Docker schema2), the platform chosen from
//! an index, anonymous, Bearer and Basic auth (credentials from a
//! docker-style config.json), plain HTTP only for insecure registries
//! (loopback by default, as docker), layers fetched concurrently into the
//! content store with progress, resumed where an earlier pull stopped. Every
//! byte is verified against the digest Berth asked for; a server's digest
//! header is never trusted.

use std::collections::BTreeMap;
use std::sync::Arc;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::store::digest::Digest;
use crate::store::images::{Image, ImageError, Images, RegistryFailure};
use crate::store::mirrors::{Endpoint, RegistrySettings};
use crate::store::oci::{self, Descriptor, Index, Manifest, Platform};
use crate::store::reference::Reference;

/// Layers fetched at the same time.
const PARALLEL: usize = 3;

/// Manifests and configs larger than this are refused.
const MAX_JSON: usize = 4 << 20;

/// What a pull reports while it runs, then its end.
#[derive(Debug)]
pub enum PullEvent {
    /// A blob's progress; `status` is resolved, exists, resuming,
    /// downloading, done or unpacking.
    Progress {
        /// The blob.
        digest: Digest,
        /// What is happening to it.
        status: String,
        /// Bytes so far.
        offset: u64,
        /// Its size (0 where unknown).
        total: u64,
    },
    /// The pulled image, recorded.
    Done(Image),
}

type Progress = mpsc::Sender<Result<PullEvent, ImageError>>;

/// Whether plain HTTP is allowed for `registry` (host[:port]): loopback
/// addresses and `localhost`, as docker treats them, and whatever `listed`
/// names. An entry of the list is a registry as written in references
/// (`host:port`, matching that port only), a bare host (any port), or an
/// address range (`10.0.0.0/8`, `fd00::/8`) holding the registry's IP
/// address, as dockerd's `--insecure-registry`.
pub fn insecure(registry: &str, listed: &[String]) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = host.parse::<std::net::IpAddr>().ok();
    host == "localhost"
        || ip.is_some_and(|ip| ip.is_loopback())
        || listed.iter().any(|e| {
            e == registry
                || e.trim_start_matches('[').trim_end_matches(']') == host
                || ip.is_some_and(|ip| in_range(ip, e))
        })
}

/// Whether `ip` is in the range `cidr` (`addr/len`); false for anything else.
fn in_range(ip: std::net::IpAddr, cidr: &str) -> bool {
    use std::net::IpAddr;
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Checks an insecure-registry entry: `host`, `host:port` or `addr/len`.
pub fn valid_insecure_entry(e: &str) -> bool {
    if let Some((net, len)) = e.split_once('/') {
        let Ok(net) = net.parse::<std::net::IpAddr>() else {
            return false;
        };
        let max = if net.is_ipv4() { 32 } else { 128 };
        return len.parse::<u32>().is_ok_and(|l| l <= max);
    }
    !e.is_empty()
        && !e.contains("://")
        && e.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

/// Credentials for `registry` from a docker-style config.json: the file
/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn credentials(registry: &str) -> RegistryAuth {
    let path = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))
        .map(|d| d.join("config.json"));
    let Some(text) = path.and_then(|p| std::fs::read(p).ok()) else {
        return RegistryAuth::Anonymous;
    };
    auth_from_config(&text, registry).unwrap_or(RegistryAuth::Anonymous)
}

/// The Basic credentials a docker config.json holds for `registry`.
pub fn auth_from_config(config: &[u8], registry: &str) -> Option<RegistryAuth> {
    use base64::Engine as _;
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let keys = [
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        // Docker Hub's historical key.
        if registry == "docker.io" {
            "https://index.docker.io/v1/".into()
        } else {
            String::new()
        },
    ];
    let entry = keys.iter().find_map(|k| auths.get(k))?;
    let b64 = entry.get("auth")?.as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let (user, pass) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    Some(RegistryAuth::Basic(user.into(), pass.into()))
}

fn accept() -> Vec<&'static str> {
    vec![
        oci::MT_OCI_INDEX,
        oci::MT_OCI_MANIFEST,
        oci::MT_DOCKER_LIST,
        oci::MT_DOCKER_MANIFEST,
    ]
}

/// An error with its causes: a transport error's own text stops at "error
/// sending request", and the cause (a refused certificate, a reset
/// connection) is what the user needs to see.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn invalid(e: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid(e.to_string())
}

/// A failed registry request, classified for the client.
fn registry(what: String, e: &oci_client::errors::OciDistributionError) -> ImageError {
    ImageError::Registry {
        what,
        why: chain(e),
        kind: classify(e),
    }
}

fn classify(e: &oci_client::errors::OciDistributionError) -> RegistryFailure {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
    match e {
        E::ImageManifestNotFoundError(_) => RegistryFailure::NotFound,
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => RegistryFailure::Unauthorized,
        E::RegistryError { envelope, .. } => {
            let has = |codes: &[C]| envelope.errors.iter().any(|x| codes.contains(&x.code));
            if has(&[
                C::ManifestUnknown,
                C::BlobUnknown,
                C::NameUnknown,
                C::NotFound,
            ]) {
                RegistryFailure::NotFound
            } else if has(&[C::Unauthorized, C::Denied]) {
                RegistryFailure::Unauthorized
            } else if has(&[C::Toomanyrequests]) {
                RegistryFailure::Unreachable
            } else {
                RegistryFailure::Other
            }
        }
        E::ServerError { code, .. } => match code {
            404 => RegistryFailure::NotFound,
            401 | 403 => RegistryFailure::Unauthorized,
            429 | 500..=599 => RegistryFailure::Unreachable,
            _ => RegistryFailure::Other,
        },
        E::RequestError(_) | E::IoError(_) => RegistryFailure::Unreachable,
        _ => RegistryFailure::Other,
    }
}

/// What a pull asks for: the image, its platform, whether to unpack it, and
/// the credentials (None: the docker config.json's for its registry).
pub struct PullRequest {
    /// The reference, as the user wrote it.
    pub reference: String,
    /// The platform to pick from an index.
    pub platform: Platform,
    /// Unpack into snapshots as well.
    pub unpack: bool,
    /// Credentials given with the request (the CRI's AuthConfig).
    pub auth: Option<RegistryAuth>,
}

/// Starts a pull; progress and the result arrive on the returned channel.
/// The registry's mirrors are tried first, in order (any failure of one
/// moves on to the next), then the registry itself.
pub fn start(
    store: Arc<Images>,
    ns: String,
    req: PullRequest,
    settings: Arc<RegistrySettings>,
) -> Result<mpsc::Receiver<Result<PullEvent, ImageError>>, ImageError> {
    let r = Reference::parse(&req.reference).map_err(invalid)?;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut result = Err(invalid("no endpoint to pull from"));
        for e in settings.endpoints(&r.registry) {
            // The request's credentials are the registry's; a mirror's
            // come from the docker config.json, as dockerd's do.
            let auth = match (&req.auth, e.mirror) {
                (Some(a), false) => a.clone(),
                _ => credentials(&e.host),
            };
            let how = How {
                platform: &req.platform,
                unpack: req.unpack,
                endpoint: &e,
                auth: &auth,
            };
            result = pull(&store, &ns, &r, &how, &tx).await;
            match &result {
                Err(err) if e.mirror => {
                    tracing::info!(image = %r, mirror = %e.host, error = %err, "mirror failed; trying the next endpoint");
                }
                _ => break,
            }
        }
        let _ = tx.send(result.map(PullEvent::Done)).await;
    });
    Ok(rx)
}

async fn report(tx: &Progress, digest: &Digest, status: &str, offset: u64, total: u64) {
    let _ = tx
        .send(Ok(PullEvent::Progress {
            digest: digest.clone(),
            offset,
            total,
            status: status.into(),
        }))
        .await;
}

/// Fetches a manifest or index by reference; verifies and stores it.
async fn fetch_manifest(
    client: &oci_client::Client,
    store: &Images,
    r: &oci_client::Reference,
    auth: &RegistryAuth,
    want: Option<&Digest>,
) -> Result<(Descriptor, Vec<u8>), ImageError> {
    let (bytes, _) = client
        .pull_manifest_raw(r, auth, &accept())
        .await
        .map_err(|e| registry(format!("fetch manifest {r}"), &e))?;
    if bytes.len() > MAX_JSON {
        return Err(invalid(format!(
            "manifest {r} is larger than {MAX_JSON} bytes"
        )));
    }
    let digest = crate::store::digest::sha256_of(&bytes);
    if let Some(w) = want {
        if w.algorithm() == digest.algorithm() && w != &digest {
            return Err(ImageError::Invalid(format!(
                "manifest {r}: got digest {digest}, asked for {w}"
            )));
        }
    }
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("manifest {r}: {e}")))?;
    let media_type = match v.get("mediaType").and_then(|m| m.as_str()) {
        Some(m) => m.to_string(),
        None if v.get("manifests").is_some() => oci::MT_OCI_INDEX.into(),
        None => oci::MT_OCI_MANIFEST.into(),
    };
    if let Some(mut w) = writer_or_wait(store, &digest, Some(bytes.len() as u64)).await? {
        if w.offset() > 0 {
            w.reset()?;
        }
        w.write(&bytes)?;
        w.commit()?;
    }
    Ok((
        Descriptor {
            media_type,
            digest,
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        },
        bytes.to_vec(),
    ))
}

/// A writer for blob `d`, or None once it is in the store. Another pull
/// writing it (the same image pulled twice at once) is waited for, as
/// containerd's ingest lock makes its clients wait, rather than failing
/// this pull (it then fell through to the next mirror, or failed offline).
async fn writer_or_wait(
    store: &Images,
    d: &Digest,
    size: Option<u64>,
) -> Result<Option<crate::store::content::Writer>, ImageError> {
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        if store.content.exists(d) {
            return Ok(None);
        }
        match store.content.writer(d, size) {
            Ok(w) => return Ok(Some(w)),
            Err(crate::store::content::ContentError::Busy(_))
                if tokio::time::Instant::now() < until =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Fetches one blob into the content store, resuming a partial ingest.
async fn fetch_blob(
    client: &oci_client::Client,
    store: &Images,
    r: &oci_client::Reference,
    d: &Descriptor,
    tx: &Progress,
) -> Result<(), ImageError> {
    let Some(mut w) = writer_or_wait(store, &d.digest, Some(d.size)).await? else {
        report(tx, &d.digest, "exists", d.size, d.size).await;
        return Ok(());
    };
    let desc = OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.to_string(),
        size: d.size as i64,
        ..Default::default()
    };
    let offset = w.offset();
    if offset > 0 {
        report(tx, &d.digest, "resuming", offset, d.size).await;
    }
    let mut stream = if offset > 0 && offset < d.size {
        match client
            .pull_blob_stream_partial(r, &desc, offset, None)
            .await
            .map_err(|e| registry(format!("fetch {}", d.digest), &e))?
        {
            oci_client::client::BlobResponse::Partial(s) => s,
            // The registry sent it all: start over.
            oci_client::client::BlobResponse::Full(s) => {
                w.reset()?;
                s
            }
        }
    } else {
        if offset > 0 {
            w.reset()?;
        }
        client
            .pull_blob_stream(r, &desc)
            .await
            .map_err(|e| registry(format!("fetch {}", d.digest), &e))?
    };
    let mut last = 0;
    while let Some(chunk) = stream.next().await {
        // A broken stream is the transport's failure: the pull resumes later.
        let chunk = chunk.map_err(|e| ImageError::Registry {
            what: format!("fetch {}", d.digest),
            why: chain(&e),
            kind: RegistryFailure::Unreachable,
        })?;
        w.write(&chunk)?;
        if w.offset() - last >= 1 << 20 {
            last = w.offset();
            report(tx, &d.digest, "downloading", last, d.size).await;
        }
    }
    w.commit()?;
    report(tx, &d.digest, "done", d.size, d.size).await;
    Ok(())
}

/// How one pull goes.
struct How<'a> {
    platform: &'a Platform,
    unpack: bool,
    endpoint: &'a Endpoint,
    auth: &'a RegistryAuth,
}

async fn pull(
    store: &Arc<Images>,
    ns: &str,
    r: &Reference,
    how: &How<'_>,
    tx: &Progress,
) -> Result<Image, ImageError> {
    let (platform, unpack, auth) = (how.platform, how.unpack, how.auth);
    // The endpoint serves the registry's repositories under the same paths.
    let host = &how.endpoint.host;
    // Until the image is recorded its blobs are unreferenced: keep GC out.
    let shared = store.gc_lock.read().await;
    let protocol = if how.endpoint.plain_http {
        ClientProtocol::HttpsExcept(vec![host.clone()])
    } else {
        ClientProtocol::Https
    };
    let client = oci_client::Client::new(ClientConfig {
        protocol,
        accept_invalid_certificates: how.endpoint.skip_verify,
        ..Default::default()
    });
    let oref = match (&r.tag, &r.digest) {
        (_, Some(d)) => {
            oci_client::Reference::with_digest(host.clone(), r.repository.clone(), d.to_string())
        }
        (Some(t), None) => {
            oci_client::Reference::with_tag(host.clone(), r.repository.clone(), t.clone())
        }
        (None, None) => unreachable!("a parsed reference has a tag or a digest"),
    };
    let (top, bytes) = fetch_manifest(&client, store, &oref, auth, r.digest.as_ref()).await?;
    report(tx, &top.digest, "resolved", top.size, top.size).await;
    let (mdesc, mbytes) = if oci::is_index(&top.media_type) {
        let idx: Index = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("index {}: {e}", top.digest)))?;
        let pick = idx
            .manifests
            .into_iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| platform.matches(p)))
            .ok_or_else(|| ImageError::NoPlatform {
                image: r.to_string(),
                platform: platform.to_string(),
            })?;
        let by_digest = oci_client::Reference::with_digest(
            host.clone(),
            r.repository.clone(),
            pick.digest.to_string(),
        );
        let (d, b) = fetch_manifest(&client, store, &by_digest, auth, Some(&pick.digest)).await?;
        if d.digest != pick.digest {
            return Err(ImageError::Invalid(format!(
                "manifest {}: got digest {}",
                pick.digest, d.digest
            )));
        }
        (d, b)
    } else {
        (top.clone(), bytes)
    };
    let m: Manifest = serde_json::from_slice(&mbytes)
        .map_err(|e| invalid(format!("manifest {}: {e}", mdesc.digest)))?;
    for l in &m.layers {
        if oci::layer_compression(&l.media_type).is_none() {
            return Err(ImageError::Invalid(format!(
                "layer {}: unsupported media type {}",
                l.digest, l.media_type
            )));
        }
    }
    fetch_blob(&client, store, &oref, &m.config, tx).await?;
    // Layers, a few at a time.
    let client = Arc::new(client);
    let mut set = tokio::task::JoinSet::new();
    for l in m.layers.clone() {
        while set.len() >= PARALLEL {
            set.join_next()
                .await
                .expect("non-empty")
                .map_err(invalid)??;
        }
        let (c, s, o, t) = (client.clone(), store.clone(), oref.clone(), tx.clone());
        set.spawn(async move { fetch_blob(&c, &s, &o, &l, &t).await });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(invalid)??;
    }
    let mut target = top;
    target.platform = None;
    let img = Image {
        name: r.to_string(),
        target,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        labels: BTreeMap::new(),
    };
    store.put(ns, &img)?;
    drop(shared);
    if unpack {
        report(tx, &mdesc.digest, "unpacking", 0, 0).await;
        let (s, n, i, p) = (store.clone(), ns.to_string(), img.clone(), platform.clone());
        tokio::task::spawn_blocking(move || s.unpack(&n, &i, &p))
            .await
            .map_err(invalid)??;
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_failures_are_classified_for_the_client() {
        use oci_client::errors::OciDistributionError as E;
        let server = |code| E::ServerError {
            code,
            url: "https://r/v2/".into(),
            message: String::new(),
        };
        assert_eq!(classify(&server(503)), RegistryFailure::Unreachable);
        assert_eq!(classify(&server(404)), RegistryFailure::NotFound);
        assert_eq!(classify(&server(401)), RegistryFailure::Unauthorized);
        assert_eq!(classify(&server(400)), RegistryFailure::Other);
        assert_eq!(
            classify(&E::ImageManifestNotFoundError("x".into())),
            RegistryFailure::NotFound
        );
        assert_eq!(
            classify(&E::UnauthorizedError { url: "u".into() }),
            RegistryFailure::Unauthorized
        );
        let io = E::IoError(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&io), RegistryFailure::Unreachable);
        let e = registry("fetch manifest r/x:latest".into(), &io);
        assert!(
            e.to_string().starts_with("fetch manifest r/x:latest: "),
            "{e}"
        );
    }

    #[test]
    fn error_chains_name_their_causes() {
        let inner = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let outer = std::io::Error::other(Wrap(inner));
        assert_eq!(
            chain(&outer),
            "error sending request: invalid peer certificate: UnknownIssuer"
        );
    }

    #[derive(Debug)]
    struct Wrap(std::io::Error);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request")
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn loopback_is_insecure_and_config_credentials_parse() {
        let none: &[String] = &[];
        assert!(
            insecure("127.0.0.1:5000", none)
                && insecure("localhost:5000", none)
                && insecure("[::1]:5000", none)
        );
        assert!(!insecure("docker.io", none) && !insecure("10.0.0.1:5000", none));
        let listed: Vec<String> = [
            "reg.example:5000",
            "plain.example",
            "10.1.0.0/16",
            "fd00::/8",
        ]
        .map(String::from)
        .into();
        assert!(insecure("reg.example:5000", &listed) && !insecure("reg.example:5001", &listed));
        assert!(insecure("plain.example", &listed) && insecure("plain.example:443", &listed));
        assert!(insecure("10.1.2.3:5000", &listed) && !insecure("10.2.0.1", &listed));
        assert!(insecure("[fd12::1]:5000", &listed) && !insecure("[fe80::1]:5000", &listed));
        assert!(!insecure("docker.io", &listed));
        for ok in ["reg.example:5000", "10.0.0.0/8", "[::1]:5000", "fd00::/8"] {
            assert!(valid_insecure_entry(ok), "{ok}");
        }
        for bad in ["", "http://reg", "10.0.0.0/33", "reg/8", "a b"] {
            assert!(!valid_insecure_entry(bad), "{bad}");
        }
        let cfg = br#"{"auths": {"127.0.0.1:5000": {"auth": "dXNlcjpwYXNz"}}}"#;
        match auth_from_config(cfg, "127.0.0.1:5000") {
            Some(RegistryAuth::Basic(u, p)) => {
                assert_eq!((u.as_str(), p.as_str()), ("user", "pass"))
            }
            other => panic!("{other:?}"),
        }
        assert!(auth_from_config(cfg, "docker.io").is_none());
    }
}
