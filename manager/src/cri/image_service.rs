//! The CRI ImageService: ListImages, ImageStatus, PullImage (with the
//! request's credentials), RemoveImage and ImageFsInfo, over the store.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService as Api;
use oci_client::secrets::RegistryAuth;
use tonic::{Request, Response, Status};

use super::images::{self, CriImage};
use super::{Cri, NAMESPACE};
use crate::store::images::ImageError;
use crate::store::oci::Platform;
use crate::store::pull::{PullEvent, PullRequest};

/// The service over one CRI runtime.
#[derive(Clone)]
pub struct ImageService {
    /// The runtime (its manager holds the store).
    pub cri: Arc<Cri>,
}

type Out<T> = Result<Response<T>, Status>;

/// The registry credentials of a CRI AuthConfig (None: anonymous, or the
/// node's docker config.json).
pub fn auth_of(a: Option<&cri::AuthConfig>) -> Result<Option<RegistryAuth>, Status> {
    use base64::Engine as _;
    let Some(a) = a else { return Ok(None) };
    if !a.registry_token.is_empty() {
        return Ok(Some(RegistryAuth::Bearer(a.registry_token.clone())));
    }
    if !a.identity_token.is_empty() {
        return Err(Status::invalid_argument(
            "auth identity_token (an OAuth refresh token) is not supported: give username and password, auth, or registry_token",
        ));
    }
    if !a.username.is_empty() {
        return Ok(Some(RegistryAuth::Basic(
            a.username.clone(),
            a.password.clone(),
        )));
    }
    if !a.auth.is_empty() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.auth.trim())
            .map_err(|_| Status::invalid_argument("auth: not base64"))?;
        let text =
            String::from_utf8(raw).map_err(|_| Status::invalid_argument("auth: not text"))?;
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| Status::invalid_argument("auth: not user:password"))?;
        return Ok(Some(RegistryAuth::Basic(u.into(), p.into())));
    }
    Ok(None)
}

impl ImageService {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::store::images::Images) -> Result<T, ImageError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.cri.manager.images.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Status::internal(format!("worker: {e}")))?
            .map_err(crate::codes::image_status)
    }

    async fn resolve(&self, spec: Option<cri::ImageSpec>) -> Result<Option<CriImage>, Status> {
        let wanted = spec.map(|s| s.image).unwrap_or_default();
        self.blocking(move |s| images::resolve(s, &wanted)).await
    }
}

#[tonic::async_trait]
impl Api for ImageService {
    async fn list_images(
        &self,
        r: Request<cri::ListImagesRequest>,
    ) -> Out<cri::ListImagesResponse> {
        let want = r
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .unwrap_or_default();
        let list = if want.is_empty() {
            self.blocking(images::all).await?
        } else {
            self.blocking(move |s| images::resolve(s, &want))
                .await?
                .into_iter()
                .collect()
        };
        Ok(Response::new(cri::ListImagesResponse {
            images: list.iter().map(images::to_cri).collect(),
        }))
    }

    async fn image_status(
        &self,
        r: Request<cri::ImageStatusRequest>,
    ) -> Out<cri::ImageStatusResponse> {
        let r = r.into_inner();
        let found = self.resolve(r.image).await?;
        let mut info = HashMap::new();
        if let (true, Some(i)) = (r.verbose, &found) {
            let img = i.clone();
            let cfg = self
                .blocking(move |s| {
                    let rec = s.get(NAMESPACE, &img.name)?;
                    s.config(&rec, &Platform::host())
                })
                .await?;
            info.insert(
                "info".to_string(),
                serde_json::json!({"imageSpec": cfg, "chainID": "", "name": i.name}).to_string(),
            );
        }
        Ok(Response::new(cri::ImageStatusResponse {
            image: found.as_ref().map(images::to_cri),
            info,
        }))
    }

    async fn pull_image(&self, r: Request<cri::PullImageRequest>) -> Out<cri::PullImageResponse> {
        let r = r.into_inner();
        let reference = r.image.map(|i| i.image).unwrap_or_default();
        if reference.is_empty() {
            return Err(Status::invalid_argument("PullImage without an image"));
        }
        let auth = auth_of(r.auth.as_ref())?;
        let mut rx = crate::store::pull::start(
            self.cri.manager.images.clone(),
            NAMESPACE.into(),
            PullRequest {
                reference: reference.clone(),
                platform: Platform::host(),
                unpack: true,
                auth,
            },
            self.cri.config.registries.clone(),
        )
        .map_err(crate::codes::image_status)?;
        let image = loop {
            match rx.recv().await {
                Some(Ok(PullEvent::Done(img))) => break img,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(crate::codes::image_status(e)),
                None => return Err(Status::internal(format!("pull {reference}: ended early"))),
            }
        };
        self.cri
            .manager
            .publish(NAMESPACE, "/images/create", &image.name, "", 0, 0);
        let name = image.name.clone();
        let found = self
            .blocking(move |s| images::resolve(s, &name))
            .await?
            .ok_or_else(|| Status::internal(format!("pulled {reference}, then not found")))?;
        Ok(Response::new(cri::PullImageResponse {
            image_ref: found.id,
        }))
    }

    async fn remove_image(
        &self,
        r: Request<cri::RemoveImageRequest>,
    ) -> Out<cri::RemoveImageResponse> {
        // Removing an image that is not there succeeds, as kubelet expects.
        if let Some(i) = self.resolve(r.into_inner().image).await? {
            let id = i.id.clone();
            self.blocking(move |s| images::remove(s, &i)).await?;
            self.cri
                .manager
                .publish(NAMESPACE, "/images/delete", &id, "", 0, 0);
        }
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _: Request<cri::ImageFsInfoRequest>,
    ) -> Out<cri::ImageFsInfoResponse> {
        let dir = self.cri.config.root.join("overlay");
        let d2 = dir.clone();
        let (bytes, inodes) = tokio::task::spawn_blocking(move || images::usage(&d2))
            .await
            .map_err(|e| Status::internal(format!("worker: {e}")))?;
        let fs = cri::FilesystemUsage {
            timestamp: super::now_ns(),
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: dir.display().to_string(),
            }),
            used_bytes: Some(cri::UInt64Value { value: bytes }),
            inodes_used: Some(cri::UInt64Value { value: inodes }),
        };
        Ok(Response::new(cri::ImageFsInfoResponse {
            image_filesystems: vec![fs.clone()],
            container_filesystems: vec![fs],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_an_auth_config() {
        assert!(auth_of(None).unwrap().is_none());
        let a = cri::AuthConfig {
            username: "u".into(),
            password: "p".into(),
            ..Default::default()
        };
        assert!(
            matches!(auth_of(Some(&a)).unwrap(), Some(RegistryAuth::Basic(u, p)) if u == "u" && p == "p")
        );
        let a = cri::AuthConfig {
            auth: "dTpw".into(), // u:p
            ..Default::default()
        };
        assert!(
            matches!(auth_of(Some(&a)).unwrap(), Some(RegistryAuth::Basic(u, p)) if u == "u" && p == "p")
        );
        let a = cri::AuthConfig {
            registry_token: "t".into(),
            ..Default::default()
        };
        assert!(matches!(auth_of(Some(&a)).unwrap(), Some(RegistryAuth::Bearer(t)) if t == "t"));
        let a = cri::AuthConfig {
            identity_token: "t".into(),
            ..Default::default()
        };
        assert_eq!(
            auth_of(Some(&a)).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }
}
