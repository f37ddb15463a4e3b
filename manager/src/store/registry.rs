//! An authenticated HTTP session with one repository of a registry, for
//! pushes (pulls go through oci-client): how the registry authenticates is
//! learnt from `GET /v2/` as dockerd does; Basic credentials go with every
//! request, a Bearer token is fetched from the challenge's realm for the
//! scopes the push needs and fetched again when the registry answers 401
//! (tokens live a minute on many registries; a push may take longer).

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::store::images::{ImageError, RegistryFailure};
use crate::store::login::bearer_params;

/// How requests are authorized.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Authz {
    None,
    Basic(String, String),
    Bearer(String),
}

/// A session with `repository` on a registry.
pub struct Session {
    client: reqwest::Client,
    /// `https://host` or `http://host`.
    base: String,
    /// The repository pushed to.
    pub repository: String,
    creds: Option<(String, String)>,
    /// Scopes a token is asked for: push to the repository, pull from the
    /// repositories blobs may be mounted from.
    scopes: Vec<String>,
    /// The Bearer challenge (realm, service), when the registry sent one.
    challenge: Option<(String, String)>,
    authz: tokio::sync::RwLock<Authz>,
}

/// The host the registry's API lives on: Docker Hub's is not `docker.io`.
pub fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// A failed request as an image error: `what` was asked, the registry's
/// JSON error (`unauthorized: authentication required`) or the status why.
pub async fn failure(what: String, res: Response) -> ImageError {
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    let why = registry_message(&body).unwrap_or_else(|| status.to_string());
    ImageError::Registry {
        what,
        why,
        kind: kind_of(status),
    }
}

/// The first error of a registry's JSON error body, as docker prints it.
fn registry_message(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let e = v.get("errors")?.as_array()?.first()?;
    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
    Some(match (code, msg) {
        ("", m) => m.to_string(),
        (c, "") => c.to_ascii_lowercase(),
        (c, m) => format!("{}: {m}", c.to_ascii_lowercase()),
    })
}

/// What kind of failure an HTTP status is.
pub fn kind_of(status: StatusCode) -> RegistryFailure {
    match status.as_u16() {
        401 | 403 => RegistryFailure::Unauthorized,
        404 => RegistryFailure::NotFound,
        408 | 429 | 500..=599 => RegistryFailure::Unreachable,
        _ => RegistryFailure::Other,
    }
}

/// A transport failure (connection refused, reset, timed out).
pub fn transport(what: String, e: &reqwest::Error) -> ImageError {
    ImageError::Registry {
        what,
        why: crate::store::pull::chain(e),
        kind: RegistryFailure::Unreachable,
    }
}

impl Session {
    /// Opens a session: asks the registry how it authenticates and, for a
    /// Bearer challenge, fetches a token for pushing to `repository` and
    /// pulling from `mount_from`.
    pub async fn open(
        registry: &str,
        repository: &str,
        plain_http: bool,
        creds: Option<(String, String)>,
        mount_from: &[String],
    ) -> Result<Session, ImageError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            // A stalled transfer is a broken one: the upload resumes.
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| transport(format!("push to {registry}"), &e))?;
        let base = format!(
            "{}://{}",
            if plain_http { "http" } else { "https" },
            api_host(registry)
        );
        let mut scopes = vec![format!("repository:{repository}:pull,push")];
        scopes.extend(
            mount_from
                .iter()
                .filter(|r| *r != repository)
                .map(|r| format!("repository:{r}:pull")),
        );
        let mut s = Session {
            client,
            base,
            repository: repository.to_string(),
            creds,
            scopes,
            challenge: None,
            authz: tokio::sync::RwLock::new(Authz::None),
        };
        let url = format!("{}/v2/", s.base);
        let res = s
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| transport(format!("GET {url}"), &e))?;
        if res.status() == StatusCode::UNAUTHORIZED {
            let header = res
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string();
            if let Some(c) = bearer_params(&header) {
                s.challenge = Some(c);
                s.refresh().await?;
            } else if header
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("basic")
            {
                let (u, p) = s.creds.clone().ok_or_else(|| ImageError::Registry {
                    what: format!("push to {registry}"),
                    why: "unauthorized: authentication required (log in with berthctl login)"
                        .into(),
                    kind: RegistryFailure::Unauthorized,
                })?;
                *s.authz.get_mut() = Authz::Basic(u, p);
            } else {
                return Err(ImageError::Registry {
                    what: format!("push to {registry}"),
                    why: format!(
                        "the registry asks for an authentication berth does not speak: {header:?}"
                    ),
                    kind: RegistryFailure::Unauthorized,
                });
            }
        } else if !res.status().is_success() {
            return Err(failure(format!("GET {url}"), res).await);
        }
        Ok(s)
    }

    /// Fetches a new token from the challenge's realm.
    async fn refresh(&self) -> Result<(), ImageError> {
        let Some((realm, service)) = &self.challenge else {
            return Ok(());
        };
        let mut q: Vec<(&str, &str)> = vec![("service", service)];
        q.extend(self.scopes.iter().map(|s| ("scope", s.as_str())));
        let mut req = self.client.get(realm).query(&q);
        if let Some((u, p)) = &self.creds {
            req = req.query(&[("account", u)]).basic_auth(u, Some(p));
        }
        let what = format!("fetch a token from {realm}");
        let res = req.send().await.map_err(|e| transport(what.clone(), &e))?;
        if matches!(res.status().as_u16(), 401 | 403) {
            return Err(ImageError::Registry {
                what,
                why: if self.creds.is_some() {
                    "unauthorized: incorrect username or password".into()
                } else {
                    "unauthorized: authentication required (log in with berthctl login)".into()
                },
                kind: RegistryFailure::Unauthorized,
            });
        }
        if !res.status().is_success() {
            return Err(failure(what, res).await);
        }
        let v: serde_json::Value = res.json().await.map_err(|e| transport(what.clone(), &e))?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| ImageError::Registry {
                what,
                why: "the answer holds no token".into(),
                kind: RegistryFailure::Other,
            })?;
        *self.authz.write().await = Authz::Bearer(token.to_string());
        Ok(())
    }

    /// The URL of `path` (`/v2/...`), or `location` as the registry gave
    /// it (absolute, or relative to the registry).
    pub fn url(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// The repository's `/v2/<name>/<rest>` URL.
    pub fn repo_url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, self.repository)
    }

    fn authorize(&self, req: RequestBuilder, authz: &Authz) -> RequestBuilder {
        match authz {
            Authz::None => req,
            Authz::Basic(u, p) => req.basic_auth(u, Some(p)),
            Authz::Bearer(t) => req.bearer_auth(t),
        }
    }

    /// Sends a request made by `make` (called again for a retry), with
    /// credentials; a 401 under a token fetches a new one and retries once.
    /// Transport failures are returned as they are; statuses are the
    /// caller's to judge.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        make: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, reqwest::Error> {
        let authz = self.authz.read().await.clone();
        let res = self
            .authorize(make(self.client.request(method.clone(), url)), &authz)
            .send()
            .await?;
        if res.status() != StatusCode::UNAUTHORIZED || self.challenge.is_none() {
            return Ok(res);
        }
        if self.refresh().await.is_err() {
            return Ok(res);
        }
        let authz = self.authz.read().await.clone();
        self.authorize(make(self.client.request(method, url)), &authz)
            .send()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_read_as_docker_prints_them() {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        assert_eq!(
            registry_message(body).as_deref(),
            Some("unauthorized: authentication required")
        );
        assert_eq!(registry_message("<html>"), None);
        assert_eq!(
            kind_of(StatusCode::FORBIDDEN),
            RegistryFailure::Unauthorized
        );
        assert_eq!(
            kind_of(StatusCode::BAD_GATEWAY),
            RegistryFailure::Unreachable
        );
        assert_eq!(kind_of(StatusCode::BAD_REQUEST), RegistryFailure::Other);
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
