//! `commit`: a container's filesystem as a new image.

use super::*;

impl Manager {
    /// Makes the container's changes a new image `name` (paused meanwhile
    /// when running, as docker does).
    pub async fn commit(
        &self,
        ns: &str,
        id: &str,
        name: &str,
        comment: &str,
    ) -> Result<crate::store::images::Image, TaskError> {
        let c = self.records().get(ns, id)?;
        let paused = match self.status(ns, id).await.0 {
            Status::Running => self.pause(ns, id).await.is_ok(),
            _ => false,
        };
        let images = self.images.clone();
        let bound = self.bound_etc_files(ns, &c);
        let (ns2, name, comment) = (ns.to_string(), name.to_string(), comment.to_string());
        let r = tokio::task::spawn_blocking(move || {
            // The /etc files berthd binds (hosts, hostname, resolv.conf) are
            // the container's runtime configuration, not its changes; their
            // mount points in the upper layer stay out, as docker's init layer.
            let skip: &[&str] = if bound {
                &["etc/hosts", "etc/hostname", "etc/resolv.conf"]
            } else {
                &[]
            };
            // The image the container was made from, even when its name
            // has moved or gone since (the container's lease keeps it).
            let base = match (images.get(&ns2, &c.image), &c.image_target) {
                (Ok(i), Some(t)) if i.target.digest == t.digest => i,
                (_, Some(t)) => crate::store::images::Image {
                    name: c.image.clone(),
                    target: t.clone(),
                    created: 0,
                    labels: Default::default(),
                },
                (r, None) => r?,
            };
            images.commit(&ns2, &c.snapshot, &base, &name, &comment, skip)
        })
        .await
        .map_err(|e| TaskError::Invalid(format!("worker: {e}")));
        if paused {
            let _ = self.resume(ns, id).await;
        }
        let img = r??;
        self.publish(ns, "/images/create", &img.name, "", 0, 0);
        Ok(img)
    }
}
