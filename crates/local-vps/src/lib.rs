//! `LocalVpsClient`: a [`VpsClient`](vps_client::VpsClient) whose VPSes are containers on
//! the local Docker engine, for users without a cloud account and for every end-to-end
//! test.
//!
//! Each "VPS" is a fake-VPS container (built by `local-vps-images`, no registry needed):
//! systemd as PID 1, sshd, the real cloud-init reading a NoCloud seed made from the
//! request's user_data and SSH keys, Docker (preinstalled, or installed by the user_data on
//! the fresh Debian 12 image: see [`LocalOs`]) on a volume for `/var/lib/docker`, and a
//! metadata service at 169.254.169.254 one hop away, as on a cloud. Ports are published on
//! 127.0.0.1 only. All state lives in Docker labels ([`labels`]), so any process sees the
//! same instances, keys and snapshots.
//!
//! ```no_run
//! use std::time::Duration;
//! use local_vps::{LocalOs, LocalVpsClient, LocalVpsConfig};
//! use vps_client::{CreateInstanceRequest, UserData, VpsClient, WaitOptions, wait_until_active};
//! use vps_primitives::{PlanId, RegionId, Tag};
//!
//! # async fn demo(user_data: String, public_key: &str) -> Result<(), vps_client::VpsClientError> {
//! let client = LocalVpsClient::new(LocalVpsConfig::default())?;
//! let key = client.upload_ssh_key("me", public_key).await?;
//! let id = client
//!     .create_instance(&CreateInstanceRequest {
//!         label: "mngr-my-agent".into(),
//!         region: RegionId::parse("local").expect("valid"),
//!         plan: PlanId::parse("local").expect("valid"),
//!         os: LocalOs::DockerReady.os_id(),
//!         snapshot: None,
//!         user_data: UserData::new(user_data), // installs the host key you pin
//!         ssh_key_ids: vec![key],
//!         tags: vec![Tag::new("mngr-provider", "local").expect("valid")],
//!         ports: vec![22, 2222],
//!     })
//!     .await?;
//! // Active once sshd greets; the address is 127.0.0.1 and a port Docker chose.
//! let ssh = wait_until_active(&client, &id, 22, &WaitOptions::with_timeout(Duration::from_secs(120)),
//!     |addr| vps_client::probe_tcp_banner(addr, b"SSH-")).await?;
//! println!("ssh -p {} root@{}", ssh.port(), ssh.ip());
//! client.destroy_instance(&id).await?;
//! # Ok(()) }
//! ```
//!
//! What is and is not like a cloud VPS is in the crate's README.

mod client;
mod config;
pub mod labels;
mod seed;

pub use client::{LocalVpsClient, SNAPSHOT_REPOSITORY};
pub use config::{LocalOs, LocalVpsConfig, ProgressFn};
/// What [`LocalVpsClient::preload_image`] did (copied, or the VPS had the image already).
pub use docker_ssh::ImageTransfer;
pub use labels::{ACCOUNT_LABEL, INSTANCE_LABEL, KIND_LABEL};
