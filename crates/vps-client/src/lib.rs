//! The [`VpsClient`] trait: what the toolkit needs from a VPS provider's API.
//!
//! A provider crate (`vultr`, `local-vps`) implements it; everything above
//! (`vps-docker-provider`, the CLI) speaks only to `dyn VpsClient`. This crate knows nothing
//! of SSH or Docker: "reachable" is whatever probe the caller hands to
//! [`wait_until_active`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use vps_client::fake::FakeVpsClient; // feature `testing`
//! use vps_client::{CreateInstanceRequest, UserData, VpsClient, WaitOptions, wait_until_active};
//! use vps_primitives::{OsId, PlanId, RegionId, Tag};
//!
//! let client: Box<dyn VpsClient> = Box::new(FakeVpsClient::new());
//! let request = CreateInstanceRequest {
//!     label: "mngr-my-agent".into(),
//!     region: RegionId::parse("ewr")?,
//!     plan: PlanId::parse("vc2-1c-1gb")?,
//!     os: OsId(2136),
//!     snapshot: None, // or Some(id) to boot from a snapshot's disk
//!     user_data: UserData::new("#cloud-config\n{}\n"),
//!     ssh_key_ids: vec![],
//!     tags: vec!["mngr-provider=vultr".parse::<Tag>()?],
//!     ports: vec![22, 2222],
//! };
//! let id = client.create_instance(&request).await?;
//! // A real caller probes SSH here (`probe_tcp_connect`, or an SSH handshake).
//! let probe = |_addr| async { Ok::<(), std::io::Error>(()) };
//! let opts = WaitOptions::with_timeout(Duration::from_secs(5));
//! let ssh = wait_until_active(client.as_ref(), &id, 22, &opts, probe).await?;
//! println!("VPS {id} answers at {ssh}");
//! client.destroy_instance(&id).await?;
//! client.destroy_instance(&id).await?; // already gone: still a success
//! # Ok(()) }
//! ```
//!
//! # Adding a provider
//!
//! Implement [`VpsClient`] on a type that holds the provider's HTTP client and credentials,
//! map the provider's states onto [`VpsInstanceStatus`] and its errors onto
//! [`VpsClientError`] (404 → [`VpsClientError::NotFound`]; 429/5xx of a request that is
//! safe to repeat, after retries → [`VpsClientError::Transient`]; a create that failed
//! after it may have reached the provider → [`VpsClientError::OutcomeUnknown`], never
//! repeated), and treat "already gone" as success in the three deletes. A skeleton (an in-memory table stands in for the provider's API):
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::Mutex;
//! use async_trait::async_trait;
//! use vps_client::*;
//! use vps_primitives::{SshKeyId, Tag, VpsInstanceId, VpsSnapshotId};
//!
//! /// A client for "Acme Cloud".
//! struct AcmeClient {
//!     // A real client holds an HTTP client, the base URL and the API key (redacted in Debug).
//!     api: Mutex<Vec<InstanceInfo>>,
//! }
//!
//! #[async_trait]
//! impl VpsClient for AcmeClient {
//!     fn provider_kind(&self) -> &str { "acme" }
//!
//!     async fn create_instance(&self, req: &CreateInstanceRequest) -> Result<VpsInstanceId, VpsClientError> {
//!         // POST /instances {label, region, plan, os or snapshot, user_data: base64, ssh keys, tags}
//!         let mut api = self.api.lock().map_err(|_| VpsClientError::Config("poisoned".into()))?;
//!         let id = VpsInstanceId::parse(&format!("acme-{}", api.len()))
//!             .map_err(|e| VpsClientError::InvalidResponse(e.to_string()))?;
//!         api.push(InstanceInfo { id: id.clone(), label: req.label.clone(),
//!             status: vps_primitives::VpsInstanceStatus::Pending, tags: req.tags.clone(), address: None,
//!             published: None, created_at: Some(time::OffsetDateTime::now_utc()) });
//!         Ok(id)
//!     }
//!     async fn destroy_instance(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
//!         // DELETE /instances/{id}; a 404 means already gone: Ok(())
//!         self.api.lock().map_err(|_| VpsClientError::Config("poisoned".into()))?.retain(|i| &i.id != id);
//!         Ok(())
//!     }
//!     async fn get_instance(&self, id: &VpsInstanceId) -> Result<InstanceInfo, VpsClientError> {
//!         let api = self.api.lock().map_err(|_| VpsClientError::Config("poisoned".into()))?;
//!         api.iter().find(|i| &i.id == id).cloned()
//!             .ok_or_else(|| VpsClientError::NotFound { kind: "instance", id: id.to_string() })
//!     }
//!     async fn socket_addr(&self, id: &VpsInstanceId, port: u16) -> Result<SocketAddr, VpsClientError> {
//!         let info = self.get_instance(id).await?;
//!         let ip = info.address.ok_or_else(|| VpsClientError::NotReady {
//!             id: id.clone(), message: "no IPv4 address assigned yet".into() })?;
//!         Ok(SocketAddr::new(ip, port))
//!     }
//!     async fn list_instances(&self, tag: Option<&Tag>) -> Result<Vec<InstanceInfo>, VpsClientError> {
//!         // GET /instances?tag=... with pagination
//!         let api = self.api.lock().map_err(|_| VpsClientError::Config("poisoned".into()))?;
//!         Ok(api.iter().filter(|i| tag.is_none_or(|t| i.tags.contains(t))).cloned().collect())
//!     }
//!     async fn create_snapshot(&self, id: &VpsInstanceId, _description: &str) -> Result<VpsSnapshotId, VpsClientError> {
//!         Err(VpsClientError::Api { status: 501, message: format!("Acme has no snapshots ({id})") })
//!     }
//!     async fn delete_snapshot(&self, _id: &VpsSnapshotId) -> Result<(), VpsClientError> { Ok(()) }
//!     async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, VpsClientError> { Ok(vec![]) }
//!     async fn upload_ssh_key(&self, _name: &str, _public_key: &str) -> Result<SshKeyId, VpsClientError> {
//!         SshKeyId::parse("acme-key-1").map_err(|e| VpsClientError::InvalidResponse(e.to_string()))
//!     }
//!     async fn delete_ssh_key(&self, _id: &SshKeyId) -> Result<(), VpsClientError> { Ok(()) }
//!     async fn list_ssh_keys(&self) -> Result<Vec<SshKeyInfo>, VpsClientError> { Ok(vec![]) }
//! }
//!
//! let client: &dyn VpsClient = &AcmeClient { api: Mutex::new(vec![]) };
//! assert_eq!(client.provider_kind(), "acme");
//! ```
//!
//! Then hold it to the contract: in the provider crate's tests, with
//! `vps-client = { workspace = true, features = ["testing"] }` as a dev-dependency, run
//! `conformance::run_all` (feature `testing`) against the client, pointed at a mock of the
//! provider's API, with `conformance::ConformanceOptions` saying what the backend
//! supports.
//!
//! # Features
//! - `testing`: `fake::FakeVpsClient`, an in-memory client with fault injection, and the
//!   `conformance` suite that every backend runs from its tests.

mod types;
mod wait;

#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "testing")]
pub mod fake;

/// The `time` crate, whose `OffsetDateTime` is [`InstanceInfo::created_at`]'s type.
pub use time;
pub use types::*;
pub use wait::{WaitOptions, probe_tcp_banner, probe_tcp_connect, wait_until_active};

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
///   inside the implementation, and what is left is reported. A request that changes
///   something is repeated only when it certainly did not act; when it may have acted, the
///   error is [`VpsClientError::OutcomeUnknown`].
#[async_trait]
pub trait VpsClient: Send + Sync {
    /// A short name of the provider kind, e.g. `vultr` or `local`, for messages.
    fn provider_kind(&self) -> &str;

    /// Orders a new instance, from the request's OS image or, when
    /// [`CreateInstanceRequest::snapshot`] is set, from that snapshot. Returns as soon as
    /// the provider accepted the order; use `wait_until_active` to wait for it to boot.
    ///
    /// Never retry on [`VpsClientError::OutcomeUnknown`] blindly: the instance may exist.
    /// List the instances carrying the request's tags first.
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
    async fn list_instances(&self, tag: Option<&Tag>) -> Result<Vec<InstanceInfo>, VpsClientError>;

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
