//! The images fake VPSes run (built when missing, remembered once seen) and copying
//! local images into a VPS's engine.

use std::sync::Arc;

use docker_ssh::{Docker, ImageTransfer};
use local_vps_images::{Image, Privilege, ensure_image};
use vps_client::VpsClientError;
use vps_primitives::VpsInstanceId;

use super::LocalVpsClient;
use super::errors::{image_error, transfer_error};
use super::in_vps::InVps;
use crate::config::LocalOs;

impl LocalVpsClient {
    /// Builds the image for `os` if it is missing (with progress lines) and finds out how
    /// fake VPSes get their privileges on this engine. Called by `create_instance`; call it
    /// ahead to move the first-use build out of a timed section.
    pub async fn prepare(&self, os: LocalOs) -> Result<String, VpsClientError> {
        self.ensure(os.image()).await.map(|(tag, _)| tag)
    }

    pub(super) async fn ensure(&self, image: Image) -> Result<(String, Privilege), VpsClientError> {
        // Held while building, so concurrent first creates wait for one build.
        let mut known = self.images.lock().await;
        if let Some(found) = known.get(&image) {
            return Ok(found.clone());
        }
        let found = self.ensure_uncached(image).await?;
        known.insert(image, found.clone());
        Ok(found)
    }

    async fn ensure_uncached(&self, image: Image) -> Result<(String, Privilege), VpsClientError> {
        let progress = self.config.progress_fn();
        let span = tracing::info_span!("ensure_image", image = image.name());
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut report = |line: &str| progress(line);
            let tag = ensure_image(image, &mut report).map_err(|e| image_error(image, e))?;
            let base =
                ensure_image(Image::Base, &mut report).map_err(|e| image_error(Image::Base, e))?;
            let privilege = Privilege::detect(&base).map_err(|e| VpsClientError::Backend {
                message: format!(
                    "local-vps: cannot tell how to run privileged containers on this engine: {e}"
                ),
                source: Some(Box::new(e)),
            })?;
            Ok((tag, privilege))
        })
        .await
        .map_err(|e| VpsClientError::Backend {
            message: format!("local-vps: the image build task failed: {e}"),
            source: None,
        })?
    }

    /// Copies a local image into the VPS's Docker engine with
    /// [`Docker::copy_image_to`]: `docker save IMAGE` here, streamed into `docker load`
    /// inside the VPS, skipped when the VPS has the image with the same id already.
    ///
    /// No engine on a VPS can pull (there is no registry), so tests and local hosts load
    /// what they need this way. It goes through the local engine (`docker exec` into the
    /// VPS), not the network: a cloud has no such path (there, the same
    /// [`Docker::copy_image_to`] to an `SshPool` of the VPS does it). The VPS must be
    /// running with its Docker engine up (on [`LocalOs::FreshDebian12`], after the
    /// user_data installed it).
    #[tracing::instrument(skip(self), fields(instance = %id))]
    pub async fn preload_image(
        &self,
        id: &VpsInstanceId,
        image: &str,
    ) -> Result<ImageTransfer, VpsClientError> {
        let c = self.require_instance(id).await?;
        if !c.state.running {
            return Err(VpsClientError::NotReady {
                id: id.clone(),
                message: format!("it is {}; start it before loading images", c.state.status),
            });
        }
        let vps = Docker::new(Arc::new(InVps::new(&c.id)));
        self.docker
            .copy_image_to(image, &vps)
            .await
            .map_err(|e| transfer_error(id, e))
    }
}
