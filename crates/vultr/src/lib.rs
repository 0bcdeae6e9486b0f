//! `VultrClient`: the [`VpsClient`](vps_client::VpsClient) on the Vultr API v2.
//!
//! This crate is the only one in the toolkit that knows the Vultr API. It turns the
//! provider-neutral calls of `vps-client` (create, destroy, list instances; snapshots;
//! SSH keys) into HTTPS requests to `https://api.vultr.com/v2`, with:
//!
//! - **auth** by `Authorization: Bearer`, the key from [`VultrConfig::api_key`] or the
//!   `VULTR_API_KEY` environment variable; a missing key fails at construction. The key
//!   is an [`ApiKey`], which never shows in `Debug`, logs or errors;
//! - **pagination** of every list (`per_page` and `cursor`) to the last page;
//! - **retries** with exponential backoff and jitter (the toolkit's one schedule,
//!   [`vps_primitives::Backoff`]) on 429, 503, other 5xx and connection failures,
//!   honouring `Retry-After`. A `POST` is repeated only when the API
//!   certainly did not act on it, so a retry never orders a second instance; one that
//!   failed after it may have been carried out (a 5xx other than 503, a connection lost
//!   after sending) fails with
//!   [`VpsClientError::OutcomeUnknown`](vps_client::VpsClientError::OutcomeUnknown);
//! - **create from a snapshot**: a request's
//!   [`snapshot`](vps_client::CreateInstanceRequest::snapshot) is sent as `snapshot_id`
//!   instead of `os_id`;
//! - a **client-side rate limit** (30 requests per second by default) and a **timeout**
//!   on every request;
//! - **readiness** in the status mapping: an instance is `ACTIVE` only when `status`,
//!   `power_status`, `server_status` and `main_ip` agree, so
//!   [`vps_client::wait_until_active`], the one wait of every provider, waits for all four;
//! - **creation times**: `date_created` (RFC 3339) as
//!   [`InstanceInfo::created_at`](vps_client::InstanceInfo::created_at);
//! - an optional **firewall group** opened for the ports of each create request; a group
//!   deleted outside the toolkit is looked up (or made) again and the create retried once;
//! - **no redirects followed**: a 307/308 would replay the API key and a create's
//!   user_data (the VPS's private host key) to wherever it points; it is an error.
//!
//! TLS is rustls with the ring provider (no OpenSSL, no aws-lc); the client installs ring
//! as the process's default provider if none is installed.
//!
//! It is not for: SSH, Docker or cloud-init (other crates), or Vultr features the toolkit
//! does not use (DNS, block storage, billing).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use vps_client::{CreateInstanceRequest, UserData, VpsClient, WaitOptions};
//! use vps_client::{probe_tcp_connect, wait_until_active};
//! use vultr::{VultrClient, VultrConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // An empty table is a valid config: the key comes from VULTR_API_KEY.
//! let config = VultrConfig::from_toml_str(r#"firewall_group = "mngr-hosts""#)?;
//! let client = VultrClient::new(config)?;
//!
//! let key_id = client.upload_ssh_key("mngr-example", "ssh-ed25519 AAAA… me@example").await?;
//! let id = client
//!     .create_instance(&CreateInstanceRequest {
//!         label: "mngr-example".to_owned(),
//!         region: client.config().default_region.clone(),
//!         plan: client.config().default_plan.clone(),
//!         os: client.config().default_os_id,
//!         snapshot: None,
//!         user_data: UserData::new("#cloud-config\n{}\n"),
//!         ssh_key_ids: vec![key_id.clone()],
//!         tags: vec!["mngr-provider=vultr".parse()?],
//!         ports: vec![22, 2222],
//!     })
//!     .await?;
//! let wait = WaitOptions::with_timeout(Duration::from_secs(300));
//! let ssh = wait_until_active(&client, &id, 22, &wait, probe_tcp_connect).await?;
//! println!("{id} is up, SSH at {ssh}");
//!
//! client.destroy_instance(&id).await?;
//! client.delete_ssh_key(&key_id).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Configuration
//!
//! [`VultrConfig`] is read from the TOML table of a Vultr provider; every key is
//! optional and unknown keys are rejected:
//!
//! ```toml
//! api_key = "…"                      # else VULTR_API_KEY
//! api_base_url = "https://api.vultr.com/v2"
//! default_region = "ewr"
//! default_plan = "vc2-1c-1gb"
//! default_os_id = 2136               # Debian 12 x64
//! firewall_group = "mngr-hosts"      # unset: no firewall group
//! request_timeout_secs = 30.0
//! connect_timeout_secs = 10.0
//! max_retries = 5
//! retry_initial_backoff_secs = 0.5
//! retry_max_backoff_secs = 8.0
//! retry_after_max_secs = 60.0
//! max_requests_per_second = 30.0
//! page_size = 100                    # 1 to 500
//! ```

mod api;
mod client;
mod config;
mod error;
mod http;
mod rate_limit;
mod retry;
mod secret;

pub use client::VultrClient;
pub use config::{API_KEY_ENV, DEFAULT_API_BASE_URL, MAX_PAGE_SIZE, VultrConfig};
pub use error::VultrError;
pub use secret::ApiKey;
