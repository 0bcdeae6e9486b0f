//! [`LocalVpsClient`]: the [`VpsClient`] whose VPSes are fake-VPS containers.
//!
//! The client is split by concern: [`errors`] (how failures are reported), [`keys`] (SSH
//! key records), [`ports`] (what is published where), [`images`] (the image cache and
//! `preload_image`, which reaches the VPS's engine through [`in_vps`]), [`lifecycle`]
//! (create, start, stop, read, remove) and [`snapshots`]. This file holds the client
//! itself and the [`VpsClient`] impl, which only delegates.

mod errors;
mod images;
mod in_vps;
mod keys;
mod lifecycle;
mod ports;
mod snapshots;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use docker_ssh::{ContainerInfo, Docker, LocalExecutor, VolumeInfo};
use local_vps_images::{Image, Privilege};
use vps_client::{
    CreateInstanceRequest, InstanceInfo, SnapshotInfo, SshKeyInfo, VpsClient, VpsClientError,
};
use vps_primitives::{SshKeyId, Tag, VpsInstanceId, VpsSnapshotId};

use crate::config::{LocalOs, LocalVpsConfig};
use crate::labels::{INSTANCE_LABEL, KIND_LABEL, Kind, has_all};
use errors::{engine_error, not_found, read_error};

pub use snapshots::SNAPSHOT_REPOSITORY;

/// A [`VpsClient`] whose VPSes are containers on the local Docker engine: systemd, sshd,
/// the real cloud-init reading a NoCloud seed made from the request, Docker (preinstalled
/// or not, see [`LocalOs`]), and a metadata service at 169.254.169.254.
///
/// The client keeps no state: instances, SSH key records and snapshots are Docker objects
/// carrying the labels of [`LocalVpsConfig`], so every process with the same config sees
/// the same account. See the crate docs for an example.
#[derive(Clone)]
pub struct LocalVpsClient {
    docker: Docker,
    config: LocalVpsConfig,
    /// Images this client has seen present (and how to run them), so a create does not
    /// ask the engine again. Not instance state: losing it costs two `docker image inspect`.
    images: Arc<tokio::sync::Mutex<HashMap<Image, (String, Privilege)>>>,
}

impl std::fmt::Debug for LocalVpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalVpsClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The names of an instance's objects, all derived from its id.
struct Names {
    container: String,
    docker_volume: String,
    /// The volume holding the NoCloud seed (see [`crate::seed`]).
    seed_volume: String,
    network: String,
}

impl Names {
    fn of(id: &VpsInstanceId) -> Self {
        Self {
            container: id.as_str().to_owned(),
            docker_volume: format!("{id}-docker"),
            seed_volume: format!("{id}-seed"),
            network: format!("{id}-net"),
        }
    }
}

fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl LocalVpsClient {
    /// A client on the local engine (the `docker` CLI on `PATH`) with `config`.
    ///
    /// Fails with [`VpsClientError::Config`] when the ownership labels are unusable.
    pub fn new(config: LocalVpsConfig) -> Result<Self, VpsClientError> {
        config.validate()?;
        Ok(Self {
            docker: Docker::new(Arc::new(LocalExecutor::new())),
            config,
            images: Arc::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LocalVpsConfig {
        &self.config
    }

    /// The OS id of the default image ([`LocalOs::DockerReady`]).
    pub fn default_os_id() -> vps_primitives::OsId {
        LocalOs::default().os_id()
    }

    /// The ownership labels plus `kind`: what every listing filters on.
    fn owned(&self, kind: Kind) -> Vec<(String, String)> {
        let mut labels = vec![(KIND_LABEL.to_owned(), kind.as_str().to_owned())];
        labels.extend(self.config.label_pairs());
        labels
    }

    /// The instance's container, if it exists and belongs to this account.
    async fn find_instance(
        &self,
        id: &VpsInstanceId,
    ) -> Result<Option<ContainerInfo>, VpsClientError> {
        let names = Names::of(id);
        let found = self
            .docker
            .inspect_container(&names.container)
            .await
            .map_err(|e| engine_error(format_args!("docker inspect {id}"), e))?;
        Ok(found.filter(|c| {
            c.short_name() == names.container
                && c.config.labels.get(INSTANCE_LABEL).map(String::as_str) == Some(id.as_str())
                && has_all(&c.config.labels, &self.owned(Kind::Instance))
        }))
    }

    async fn require_instance(&self, id: &VpsInstanceId) -> Result<ContainerInfo, VpsClientError> {
        self.find_instance(id)
            .await?
            .ok_or_else(|| not_found("instance", id))
    }

    /// `docker inspect` of several containers; those that vanished meanwhile are left out.
    async fn inspect_many(&self, ids: &[&str]) -> Result<Vec<ContainerInfo>, VpsClientError> {
        self.docker
            .inspect_containers(ids)
            .await
            .map_err(|e| read_error("docker inspect", e))
    }

    /// Volumes carrying all of `filters`, inspected; vanished ones are left out.
    async fn volumes(
        &self,
        filters: &[(String, String)],
    ) -> Result<Vec<VolumeInfo>, VpsClientError> {
        let names = self
            .docker
            .volume_ls(filters)
            .await
            .map_err(|e| engine_error("listing volumes", e))?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let all = self
            .docker
            .inspect_volumes(&names)
            .await
            .map_err(|e| read_error("docker volume inspect", e))?;
        Ok(all
            .into_iter()
            .filter(|v| has_all(&v.labels, filters))
            .collect())
    }
}

#[async_trait]
impl VpsClient for LocalVpsClient {
    fn provider_kind(&self) -> &str {
        "local"
    }

    /// Creates the fake VPS (network, `/var/lib/docker` volume, container), copies the
    /// NoCloud seed in and starts it; returns without waiting for the boot. Builds the
    /// image first if it is missing. A failed create leaves nothing behind.
    ///
    /// With [`CreateInstanceRequest::snapshot`], like a cloud's "create from snapshot":
    /// the disk is the snapshot's image and `/var/lib/docker` a copy of the snapshot's
    /// volume (images and containers of the inner engine included); `request.os` is not
    /// used. The request's user_data and keys make a new seed with a new instance id, so
    /// cloud-init treats it as a new instance and runs its per-instance modules again (the
    /// host key comes from the new user_data). An unknown snapshot is
    /// [`VpsClientError::NotFound`]; one not complete yet is an API error 409.
    #[tracing::instrument(skip(self, request), fields(label = %request.label))]
    async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<VpsInstanceId, VpsClientError> {
        self.create(request).await
    }

    #[tracing::instrument(skip(self), fields(instance = %id))]
    async fn destroy_instance(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
        self.remove_instance_objects(id).await
    }

    #[tracing::instrument(skip(self), fields(instance = %id))]
    async fn get_instance(&self, id: &VpsInstanceId) -> Result<InstanceInfo, VpsClientError> {
        let c = self.require_instance(id).await?;
        Ok(self.info_of(id.clone(), &c).await)
    }

    #[tracing::instrument(skip(self), fields(instance = %id))]
    async fn socket_addr(
        &self,
        id: &VpsInstanceId,
        port: u16,
    ) -> Result<SocketAddr, VpsClientError> {
        self.published_addr(id, port).await
    }

    #[tracing::instrument(skip(self))]
    async fn list_instances(&self, tag: Option<&Tag>) -> Result<Vec<InstanceInfo>, VpsClientError> {
        self.instances(tag).await
    }

    /// A snapshot is the VPS's disk (`docker commit` of its container, as the image
    /// `mngr-local-vps-snapshot:<id>`) plus a copy of its `/var/lib/docker` volume (a volume
    /// named after the snapshot, whose labels are the snapshot's record), taken with the VPS
    /// paused so both are consistent.
    #[tracing::instrument(skip(self), fields(instance = %id))]
    async fn create_snapshot(
        &self,
        id: &VpsInstanceId,
        description: &str,
    ) -> Result<VpsSnapshotId, VpsClientError> {
        self.snapshot(id, description).await
    }

    #[tracing::instrument(skip(self), fields(snapshot = %id))]
    async fn delete_snapshot(&self, id: &VpsSnapshotId) -> Result<(), VpsClientError> {
        self.remove_snapshot(id).await
    }

    #[tracing::instrument(skip(self))]
    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, VpsClientError> {
        self.snapshots().await
    }

    /// Records the key as an empty volume whose labels hold its name and public key.
    #[tracing::instrument(skip(self, public_key))]
    async fn upload_ssh_key(
        &self,
        name: &str,
        public_key: &str,
    ) -> Result<SshKeyId, VpsClientError> {
        self.record_key(name, public_key).await
    }

    #[tracing::instrument(skip(self), fields(key = %id))]
    async fn delete_ssh_key(&self, id: &SshKeyId) -> Result<(), VpsClientError> {
        self.remove_key(id).await
    }

    #[tracing::instrument(skip(self))]
    async fn list_ssh_keys(&self) -> Result<Vec<SshKeyInfo>, VpsClientError> {
        self.keys().await
    }
}
