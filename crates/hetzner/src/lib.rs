//! `HetznerClient`: the [`VpsClient`](vps_client::VpsClient) on the Hetzner Cloud API v1.
//!
//! This crate is the only one in the toolkit that knows the Hetzner Cloud API. It turns
//! the provider-neutral calls of `vps-client` into HTTPS requests to
//! `https://api.hetzner.cloud/v1`, with:
//!
//! - **auth** by `Authorization: Bearer`, the token from [`HetznerConfig::api_token`] or
//!   `HCLOUD_TOKEN`; a missing token fails at construction. The token is an
//!   [`ApiToken`], which never shows in `Debug`, logs or errors;
//! - **labels** for our tags (`mngr-provider=hetzner` is the label `mngr-provider:
//!   hetzner`), listed with an exact `label_selector` and checked again on our side;
//! - **actions**: creates, deletes, power changes, snapshots and firewall rules start
//!   actions; the client waits for them and reports one that ends in error with its code
//!   and message. Readiness needs the create actions done, status `running` and a public
//!   IPv4 address;
//! - **retries** in one place (the `retry` module): 429 (waiting as the `RateLimit-*`
//!   headers say), 503, `conflict`, other 5xx and dropped connections of requests that are
//!   safe to repeat; a call that meets a `locked` resource waits and retries until
//!   `lock_timeout_secs`. A `POST` that may have acted is never repeated: it fails with
//!   [`VpsClientError::OutcomeUnknown`](vps_client::VpsClientError::OutcomeUnknown);
//! - **pagination** (`page`, `per_page`, `meta.pagination.next_page`) to the last page;
//! - **no redirects**: a redirect would replay a create's body, whose user_data holds the
//!   VPS's private host key, to another address;
//! - **snapshots** (`create_image` of type `snapshot`, labelled with the server's mngr
//!   labels), and creates from them; **SSH keys** that are already registered (under any
//!   name) are found and reused; an optional **firewall** opened for each create's ports.
//!
//! It is not for: SSH, Docker or cloud-init (other crates), or Hetzner features the
//! toolkit does not use (volumes, networks, load balancers, DNS).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use vps_client::{CreateInstanceRequest, UserData, VpsClient, WaitOptions, probe_tcp_banner, wait_until_active};
//! use hetzner::{HetznerClient, HetznerConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // An empty table is a valid config: the token comes from HCLOUD_TOKEN.
//! let config = HetznerConfig::from_toml_str(r#"firewall = "mngr-hosts""#)?;
//! let client = HetznerClient::new(config)?;
//!
//! let key_id = client.upload_ssh_key("mngr-example", "ssh-ed25519 AAAA… me@example").await?;
//! let id = client
//!     .create_instance(&CreateInstanceRequest {
//!         label: "mngr-example".to_owned(),
//!         region: client.config().default_region.clone(), // fsn1
//!         plan: client.config().default_plan.clone(),     // cx22
//!         os: client.config().default_os_id,              // debian-12
//!         snapshot: None,
//!         user_data: UserData::new("#cloud-config\n{}\n"),
//!         ssh_key_ids: vec![key_id.clone()],
//!         tags: vec!["mngr-provider=hetzner".parse()?],
//!         ports: vec![22, 2222],
//!     })
//!     .await?;
//! // ACTIVE once the create actions succeeded, the server runs and has its IPv4 address.
//! let opts = WaitOptions::with_timeout(Duration::from_secs(300));
//! let ssh = wait_until_active(&client, &id, 22, &opts, |a| probe_tcp_banner(a, b"SSH-")).await?;
//! println!("{id} answers SSH at {ssh}");
//!
//! client.destroy_instance(&id).await?;
//! client.delete_ssh_key(&key_id).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Configuration
//!
//! [`HetznerConfig`] is read from the TOML table of a Hetzner provider
//! ([`HetznerConfig::from_toml_table`]); every key is optional, unknown keys are
//! rejected, `-` and `_` are the same:
//!
//! ```toml
//! api_token = "…"                    # else HCLOUD_TOKEN
//! api_base_url = "https://api.hetzner.cloud/v1"
//! default_region = "fsn1"            # a location
//! default_plan = "cx22"              # a server type
//! default_os_id = 114690387          # an image id: debian-12 (x86)
//! firewall = "mngr-hosts"            # unset: no firewall
//! request_timeout_secs = 30.0
//! connect_timeout_secs = 10.0
//! max_retries = 5
//! retry_initial_backoff_secs = 1.0
//! retry_max_backoff_secs = 30.0
//! rate_limit_max_wait_secs = 60.0
//! lock_timeout_secs = 300.0
//! action_timeout_secs = 600.0
//! action_poll_interval_secs = 1.0
//! page_size = 50                     # 1 to 50
//! //! ```

mod actions;
mod api;
mod client;
mod config;
mod error;
mod http;
mod labels;
mod retry;
mod secret;

pub use client::{HetznerClient, MAX_USER_DATA_BYTES};
pub use config::{
    API_TOKEN_ENV, DEBIAN_12_X86_IMAGE_ID, DEFAULT_API_BASE_URL, HetznerConfig, MAX_PAGE_SIZE,
};
pub use error::HetznerError;
pub use secret::ApiToken;
