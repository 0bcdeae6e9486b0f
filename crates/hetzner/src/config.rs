//! `HetznerConfig`: the Hetzner-specific settings, with Hetzner's defaults, read from TOML.

use std::time::Duration;

use serde::Deserialize;
use vps_primitives::{Backoff, OsId, PlanId, RegionId};

use crate::ApiToken;
use crate::error::HetznerError;

/// The public Hetzner Cloud API v1 endpoint.
pub const DEFAULT_API_BASE_URL: &str = "https://api.hetzner.cloud/v1";
/// The environment variable read when the config has no `api_token` (the name the
/// `hcloud` CLI and Terraform use).
pub const API_TOKEN_ENV: &str = "HCLOUD_TOKEN";
/// The largest page the API returns (`per_page`).
pub const MAX_PAGE_SIZE: u32 = 50;
/// Hetzner's image id of `debian-12` on x86 (seen in hcloud-cli fixtures and real
/// inventories). Arm server types (`cax*`) need the arm image's id instead.
pub const DEBIAN_12_X86_IMAGE_ID: u32 = 114_690_387;

/// The settings of a Hetzner provider: credentials, defaults for new servers, and how the
/// client talks to the API (timeouts, retries, waits for actions, pagination).
///
/// Every field has a default, so an empty table is a valid config (the token then comes
/// from `HCLOUD_TOKEN`). Unknown keys are rejected. Durations are in seconds. The field
/// names are those of `vultr::VultrConfig`, so a caller treats both alike: the region is
/// a Hetzner *location* (`fsn1`), the plan a *server type* (`cx22`), the OS id an *image
/// id* (114690387 = `debian-12`).
///
/// ```
/// use hetzner::HetznerConfig;
/// let config = HetznerConfig::from_toml_str(r#"
///     default-region = "hel1"
///     firewall = "mngr-hosts"
/// "#)?;
/// assert_eq!(config.default_region.as_str(), "hel1");
/// assert_eq!(config.default_plan.as_str(), "cx22");
/// assert_eq!(config.default_os_id.0, 114690387);
/// assert!(HetznerConfig::from_toml_str("locaton = \"hel1\"").is_err());
/// # Ok::<(), hetzner::HetznerError>(())
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HetznerConfig {
    /// The API token. When absent, `HCLOUD_TOKEN` is read when the client is built; with
    /// neither (or both empty) building the client fails.
    pub api_token: Option<ApiToken>,
    /// Base URL of the API, without a trailing slash. Must be `https`, except for a
    /// loopback host (a local mock), which may use `http`.
    pub api_base_url: String,
    /// Location for callers' create requests (`fsn1`, Falkenstein). The client itself
    /// never reads it: a create request always names its location, type and image.
    pub default_region: RegionId,
    /// Server type for callers' create requests (`cx22`, 2 shared x86 vCPUs, 4 GB).
    pub default_plan: PlanId,
    /// Image id for callers' create requests (114690387 = `debian-12`, x86).
    pub default_os_id: OsId,
    /// Name of the firewall that new servers get. When set, it is found (or created) by
    /// this name and given an inbound TCP rule from anywhere (IPv4 and IPv6) for each port
    /// of the create request; when unset, no firewall is attached and every port is open.
    pub firewall: Option<String>,
    /// Timeout of one HTTP request, from connecting to reading the whole body.
    pub request_timeout_secs: f64,
    /// Timeout of establishing a connection.
    pub connect_timeout_secs: f64,
    /// How many times a failed request is retried (at most `max_retries + 1` attempts).
    /// Waits for a locked resource are bounded by `lock_timeout_secs` instead.
    pub max_retries: u32,
    /// Delay before the first retry; each further retry doubles it, up to
    /// `retry_max_backoff_secs`, with random jitter (hcloud-go uses 1 s and 60 s).
    pub retry_initial_backoff_secs: f64,
    /// Longest delay between two attempts computed by the backoff.
    pub retry_max_backoff_secs: f64,
    /// Longest wait after a 429 that the `RateLimit-*` headers may ask for.
    pub rate_limit_max_wait_secs: f64,
    /// How long a call that meets a `locked` resource (an action still running on it)
    /// keeps waiting and retrying.
    pub lock_timeout_secs: f64,
    /// How long the client waits for one action (delete, power, snapshot) to finish.
    pub action_timeout_secs: f64,
    /// Interval between two polls of a running action.
    pub action_poll_interval_secs: f64,
    /// Items per page of every list call (1 to 50).
    pub page_size: u32,
}

impl Default for HetznerConfig {
    fn default() -> Self {
        Self {
            api_token: None,
            api_base_url: DEFAULT_API_BASE_URL.to_owned(),
            default_region: RegionId::parse("fsn1").expect("valid literal location"),
            default_plan: PlanId::parse("cx22").expect("valid literal server type"),
            default_os_id: OsId(DEBIAN_12_X86_IMAGE_ID),
            firewall: None,
            request_timeout_secs: 30.0,
            connect_timeout_secs: 10.0,
            max_retries: 5,
            retry_initial_backoff_secs: 1.0,
            retry_max_backoff_secs: 30.0,
            rate_limit_max_wait_secs: 60.0,
            lock_timeout_secs: 300.0,
            action_timeout_secs: 600.0,
            action_poll_interval_secs: 1.0,
            page_size: MAX_PAGE_SIZE,
        }
    }
}

impl HetznerConfig {
    /// Reads a config from TOML text (the body of a `[providers.<name>]` table). Keys may
    /// be written with `-` or `_`. The error never quotes the TOML source, which may hold
    /// the token.
    pub fn from_toml_str(text: &str) -> Result<Self, HetznerError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        Self::from_toml_table(table)
    }

    /// Reads a config from an already parsed TOML table. Keys may use `-` or `_`.
    pub fn from_toml_table(table: toml::Table) -> Result<Self, HetznerError> {
        let normalised: toml::Table = table
            .into_iter()
            .map(|(key, value)| (key.replace('-', "_"), value))
            .collect();
        let config: Self = toml::Value::Table(normalised)
            .try_into()
            .map_err(|e: toml::de::Error| HetznerError::Config(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: positive finite durations, a page size the API
    /// accepts, a firewall name Hetzner accepts.
    pub fn validate(&self) -> Result<(), HetznerError> {
        let positive = [
            ("request_timeout_secs", self.request_timeout_secs),
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("lock_timeout_secs", self.lock_timeout_secs),
            ("action_timeout_secs", self.action_timeout_secs),
            ("action_poll_interval_secs", self.action_poll_interval_secs),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(HetznerError::Config(format!(
                    "`{name}` must be a positive number, got {value}"
                )));
            }
        }
        let non_negative = [
            (
                "retry_initial_backoff_secs",
                self.retry_initial_backoff_secs,
            ),
            ("retry_max_backoff_secs", self.retry_max_backoff_secs),
            ("rate_limit_max_wait_secs", self.rate_limit_max_wait_secs),
        ];
        for (name, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(HetznerError::Config(format!(
                    "`{name}` must be zero or a positive number, got {value}"
                )));
            }
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(HetznerError::Config(format!(
                "`page_size` must be from 1 to {MAX_PAGE_SIZE}, got {}",
                self.page_size
            )));
        }
        if let Some(name) = &self.firewall
            && (name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control))
        {
            return Err(HetznerError::Config(
                "`firewall` must be a name of 1 to 128 characters; leave it out to use no firewall"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_secs)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.connect_timeout_secs)
    }

    pub(crate) fn lock_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.lock_timeout_secs)
    }

    pub(crate) fn action_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.action_timeout_secs)
    }

    pub(crate) fn action_poll_interval(&self) -> Duration {
        Duration::from_secs_f64(self.action_poll_interval_secs)
    }

    /// The retry schedule: doubling from the initial backoff to the cap, with equal
    /// jitter (each pause randomly shortened by up to half).
    pub(crate) fn retry_backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_secs_f64(self.retry_initial_backoff_secs),
            Duration::from_secs_f64(self.retry_max_backoff_secs),
        )
        .with_jitter(0.5)
    }
}

/// Describes a TOML syntax error by its message and line, without the source snippet
/// that `toml`'s `Display` prints (the line may hold the token).
fn toml_error(text: &str, error: &toml::de::Error) -> HetznerError {
    let line = error.span().map(|span| {
        text.bytes()
            .take(span.start)
            .filter(|b| *b == b'\n')
            .count()
            + 1
    });
    let message = error.message().trim();
    match line {
        Some(line) => HetznerError::Config(format!("TOML syntax error on line {line}: {message}")),
        None => HetznerError::Config(format!("TOML syntax error: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_gives_the_hetzner_defaults() {
        let config = HetznerConfig::from_toml_str("").expect("empty config");
        assert!(config.api_token.is_none());
        assert_eq!(config.api_base_url, "https://api.hetzner.cloud/v1");
        assert_eq!(config.default_region.as_str(), "fsn1");
        assert_eq!(config.default_plan.as_str(), "cx22");
        assert_eq!(config.default_os_id, OsId(114_690_387));
        assert_eq!(config.firewall, None);
        assert_eq!(config.page_size, 50);
        assert_eq!(config.max_retries, 5);
    }

    #[test]
    fn every_key_can_be_set_with_dashes_or_underscores() {
        let config = HetznerConfig::from_toml_str(
            r#"
            api-token = "t"
            api_base_url = "http://127.0.0.1:9/v1"
            default_region = "nbg1"
            default-plan = "cpx21"
            default_os_id = 161547269
            firewall = "mngr"
            request_timeout_secs = 5
            connect_timeout_secs = 1.5
            max_retries = 2
            retry_initial_backoff_secs = 0.01
            retry_max_backoff_secs = 0.1
            rate_limit_max_wait_secs = 3
            lock_timeout_secs = 20
            action_timeout_secs = 30
            action_poll_interval_secs = 0.5
            page_size = 10
            "#,
        )
        .expect("full config");
        assert_eq!(config.api_token.as_ref().map(ApiToken::expose), Some("t"));
        assert_eq!(config.default_plan.as_str(), "cpx21");
        assert_eq!(config.default_os_id, OsId(161_547_269));
        assert_eq!(config.firewall.as_deref(), Some("mngr"));
        assert_eq!(config.request_timeout(), Duration::from_secs(5));
        assert_eq!(config.lock_timeout(), Duration::from_secs(20));
        assert_eq!(config.action_poll_interval(), Duration::from_millis(500));
        assert_eq!(config.page_size, 10);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let err = HetznerConfig::from_toml_str("locaton = \"hel1\"").expect_err("unknown key");
        assert!(err.to_string().contains("locaton"), "{err}");
        for bad in [
            "page_size = 0",
            "page_size = 51",
            "lock_timeout_secs = 0",
            "request_timeout_secs = -1",
            "retry_initial_backoff_secs = nan",
            "firewall = \" \"",
            "default_region = \"a b\"",
            "default_os_id = \"debian-12\"",
            // The Vultr name of the token is not silently accepted.
            "api_key = \"x\"",
        ] {
            assert!(HetznerConfig::from_toml_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_errors_and_debug_do_not_show_the_token() {
        let err = HetznerConfig::from_toml_str("api_token = \"SECRET-TOKEN-123\" trailing")
            .expect_err("syntax error");
        let text = err.to_string();
        assert!(text.contains("line 1"), "{text}");
        assert!(!text.contains("SECRET-TOKEN-123"), "{text}");
        let config =
            HetznerConfig::from_toml_str("api_token = \"SECRET-TOKEN-123\"").expect("config");
        assert!(!format!("{config:?}").contains("SECRET-TOKEN-123"));
    }
}
