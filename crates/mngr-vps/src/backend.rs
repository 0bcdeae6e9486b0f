//! Builds the provider instance a command uses, from the resolved settings: the local
//! backend (`local-vps` on this machine's Docker engine), Vultr or Hetzner.

use std::sync::Arc;

use hetzner::{HetznerClient, HetznerConfig};
use local_vps::{LocalVpsClient, LocalVpsConfig};
use local_vps_images::{Image, ImageError};
use vps_client::VpsClient;
use vps_docker_provider::VpsDockerProvider;
use vultr::{VultrClient, VultrConfig};

use crate::error::CliError;
use crate::progress::Reporter;
use crate::settings::{Backend, Resolved, TEST_RUN_LABEL};

/// What a command needs of the local engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Images {
    /// Only that an engine answers.
    Check,
    /// The host image, built now if missing (a create).
    Ensure,
}

/// The provider instance of `resolved`. For the local backend the engine is checked
/// first (and with [`Images::Ensure`] the host image is built on first use, with progress).
pub async fn provider(
    resolved: &Resolved,
    reporter: &Reporter,
    images: Images,
) -> Result<VpsDockerProvider, CliError> {
    let client: Arc<dyn VpsClient> =
        match resolved.backend {
            Backend::Local => {
                local_images(reporter, images).await?;
                let sink = reporter.clone();
                let mut config = LocalVpsConfig::default()
                    .account(resolved.local_account.clone())
                    .progress(move |line| sink.line(&format!("  {line}")));
                if let Some(run) = &resolved.test_run {
                    config = config.label(TEST_RUN_LABEL, run.clone());
                }
                Arc::new(LocalVpsClient::new(config).map_err(|e| {
                    CliError::Usage(format!("the local provider's configuration: {e}"))
                })?)
            }
            Backend::Vultr => {
                let config =
                    VultrConfig::from_toml_table(resolved.backend_table.clone()).map_err(|e| {
                        CliError::Usage(format!(
                            "[providers.{}] in {}: {e}",
                            resolved.provider,
                            resolved.paths.config_file().display()
                        ))
                    })?;
                Arc::new(VultrClient::new(config).map_err(|e| {
                CliError::Usage(format!(
                    "the Vultr provider {}: {e}; set VULTR_API_KEY or api_key in [providers.{}]",
                    resolved.provider, resolved.provider
                ))
            })?)
            }
            Backend::Hetzner => {
                let config = HetznerConfig::from_toml_table(resolved.backend_table.clone())
                    .map_err(|e| {
                        CliError::Usage(format!(
                            "[providers.{}] in {}: {e}",
                            resolved.provider,
                            resolved.paths.config_file().display()
                        ))
                    })?;
                // The client's error names HCLOUD_TOKEN and `api_token` itself.
                Arc::new(HetznerClient::new(config).map_err(|e| {
                    CliError::Usage(format!("the Hetzner provider {}: {e}", resolved.provider))
                })?)
            }
        };
    VpsDockerProvider::new(
        resolved.provider.clone(),
        client,
        resolved.config.clone(),
        resolved.key_dir(),
    )
    .map_err(CliError::from)
}

/// Checks the engine (and builds the host image when asked), off the async threads.
async fn local_images(reporter: &Reporter, images: Images) -> Result<(), CliError> {
    let sink = reporter.clone();
    let result = tokio::task::spawn_blocking(move || match images {
        Images::Check => local_vps_images::image_present(&Image::Host.tag()).map(|_| ()),
        Images::Ensure => {
            let tag = Image::Host.tag();
            if !local_vps_images::image_present(&tag)? {
                sink.activity(&format!("building the host image {tag} (first use)"));
            }
            local_vps_images::ensure_image(Image::Host, &mut |line| sink.line(&format!("  {line}")))
                .map(|_| ())
        }
    })
    .await
    .map_err(|e| CliError::Failed(format!("the image check did not finish: {e}")))?;
    result.map_err(|e| match e {
        ImageError::EngineUnreachable { .. } => CliError::Failed(format!(
            "the local provider needs a Docker engine: {e}; if Docker is not installed: \
             `apt-get install docker.io`; or choose another provider with --provider"
        )),
        other => CliError::Failed(format!("the local provider's host image: {other}")),
    })
}
