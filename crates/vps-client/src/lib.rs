//! The [`VpsClient`] trait: what the toolkit needs from a VPS provider's API.
//!
//! A provider crate (`vultr`, `local-vps`) implements it; everything above
//! (`vps-docker-provider`, the CLI) speaks only to `dyn VpsClient`. This crate knows nothing
//! of SSH or Docker.

mod types;

pub use types::*;

use std::net::SocketAddr;

use async_trait::async_trait;
use vps_primitives::{SshKeyId, Tag, VpsInstanceId, VpsInstanceStatus, VpsSnapshotId};

/// What a VPS provider's API can do for the toolkit. Usable as `dyn VpsClient`.
///
/// Contract (held by the conformance suite behind the `testing` feature):
/// - `destroy_instance` of an instance that is already gone succeeds.
/// - `get_instance` and `socket_addr` of an unknown id fail with [`VpsClientError::NotFound`].
/// - `list_instances(Some(tag))` returns exactly the instances carrying that tag.
/// - Each method is one logical provider operation; retries on transient failures happen
///   inside the implementation, and what is left is reported.
#[async_trait]
pub trait VpsClient: Send + Sync {
    /// A short name of the provider kind, e.g. `vultr` or `local`, for messages.
    fn provider_kind(&self) -> &str;

    /// Orders a new instance. Returns as soon as the provider accepted the order; use
    /// `wait_until_active` to wait for it to boot.
    async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<VpsInstanceId, VpsClientError>;

    /// Destroys an instance for good. An instance that is already gone is a success.
    async fn destroy_instance(&self, id: &VpsInstanceId) -> Result<(), VpsClientError>;

    /// What the provider knows of one instance.
    async fn get_instance(&self, id: &VpsInstanceId) -> Result<InstanceInfo, VpsClientError>;

    /// The status of one instance.
    async fn instance_status(
        &self,
        id: &VpsInstanceId,
    ) -> Result<VpsInstanceStatus, VpsClientError> {
        Ok(self.get_instance(id).await?.status)
    }

    /// The socket address at which `port` of the VPS is reached from this machine: the
    /// public IP and the same port for a cloud VPS, a mapped port on 127.0.0.1 for a local
    /// one. Fails with [`VpsClientError::NotReady`] while the instance has no address.
    async fn socket_addr(
        &self,
        id: &VpsInstanceId,
        port: u16,
    ) -> Result<SocketAddr, VpsClientError>;

    /// All instances, or those that carry `tag`.
    async fn list_instances(&self, tag: Option<&Tag>)
    -> Result<Vec<InstanceInfo>, VpsClientError>;

    /// Takes a provider-level (disk) snapshot of an instance.
    async fn create_snapshot(
        &self,
        id: &VpsInstanceId,
        description: &str,
    ) -> Result<VpsSnapshotId, VpsClientError>;

    /// Deletes a snapshot. One that is already gone is a success.
    async fn delete_snapshot(&self, id: &VpsSnapshotId) -> Result<(), VpsClientError>;

    /// All snapshots of the account.
    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, VpsClientError>;

    /// Registers an SSH public key (one OpenSSH line) with the account, for
    /// [`CreateInstanceRequest::ssh_key_ids`].
    async fn upload_ssh_key(
        &self,
        name: &str,
        public_key: &str,
    ) -> Result<SshKeyId, VpsClientError>;

    /// Removes a registered key. One that is already gone is a success.
    async fn delete_ssh_key(&self, id: &SshKeyId) -> Result<(), VpsClientError>;

    /// All registered keys.
    async fn list_ssh_keys(&self) -> Result<Vec<SshKeyInfo>, VpsClientError>;
}
