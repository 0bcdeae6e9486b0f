//! `VultrConfig`: the Vultr-specific settings, with Vultr's defaults, read from TOML.

use std::time::Duration;

use serde::Deserialize;
use vps_primitives::{OsId, PlanId, RegionId};

use crate::ApiKey;
use crate::error::VultrError;

/// The public Vultr API v2 endpoint.
pub const DEFAULT_API_BASE_URL: &str = "https://api.vultr.com/v2";
/// The environment variable read when the config has no `api_key`.
pub const API_KEY_ENV: &str = "VULTR_API_KEY";
/// The largest page the Vultr API returns.
pub const MAX_PAGE_SIZE: u32 = 500;

/// The settings of a Vultr provider: credentials, defaults for new instances, and how the
/// client talks to the API (timeouts, retries, rate limit, pagination).
///
/// Every field has a default, so an empty table is a valid config (the API key then comes
/// from `VULTR_API_KEY`). Unknown keys are rejected, so a misspelt setting is an error
/// rather than silently ignored. Durations are in seconds, as in the rest of the toolkit.
///
/// It holds only what is Vultr's: the settings every provider shares (`host_dir`,
/// `container_ssh_port`, boot and SSH timeouts, …) belong to the provider config of
/// `vps-docker-provider`, which passes the Vultr keys of a `[providers.<name>]` table
/// here ([`VultrConfig::from_toml_table`]). The defaults for region, plan and OS are
/// Vultr's (upstream's base defaults, `ewr`, `vc2-1c-1gb`, 2136); the provider uses them
/// when a create names none.
///
/// ```
/// use vultr::VultrConfig;
/// let config = VultrConfig::from_toml_str(r#"
///     default-region = "ams"
///     firewall_group = "mngr-hosts"
/// "#)?;
/// assert_eq!(config.default_region.as_str(), "ams");
/// assert_eq!(config.default_plan.as_str(), "vc2-1c-1gb");
/// assert_eq!(config.default_os_id.0, 2136);
/// assert!(VultrConfig::from_toml_str("regoin = \"ams\"").is_err());
/// # Ok::<(), vultr::VultrError>(())
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VultrConfig {
    /// The API key. When absent, `VULTR_API_KEY` is read when the client is built; when
    /// neither is set (or both are empty) building the client fails.
    pub api_key: Option<ApiKey>,
    /// Base URL of the API, without a trailing slash. Must be `https`, except for a
    /// loopback host (a local mock), which may use `http`.
    pub api_base_url: String,
    /// Region for callers to put in their create requests (`ewr`, New Jersey). The client
    /// itself never reads it: a [`vps_client::CreateInstanceRequest`] always names its
    /// region, plan and OS.
    pub default_region: RegionId,
    /// Plan for callers' create requests (`vc2-1c-1gb`).
    pub default_plan: PlanId,
    /// Operating system for callers' create requests (2136 = Debian 12 x64).
    pub default_os_id: OsId,
    /// Description of the firewall group that new instances join. When set, the group is
    /// found (or created) by this description and given an accept rule for each TCP port
    /// of the create request (IPv4, from anywhere); when unset, no firewall group is used
    /// and Vultr leaves every port open.
    pub firewall_group: Option<String>,
    /// Timeout of one HTTP request, from connecting to reading the whole body.
    pub request_timeout_secs: f64,
    /// Timeout of establishing a connection.
    pub connect_timeout_secs: f64,
    /// How many times a failed request is retried (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    /// Delay before the first retry; each further retry doubles it, up to
    /// `retry_max_backoff_secs`, with random jitter.
    pub retry_initial_backoff_secs: f64,
    /// Longest delay between two attempts computed by the backoff.
    pub retry_max_backoff_secs: f64,
    /// Longest `Retry-After` the client waits for; longer values are cut to this.
    pub retry_after_max_secs: f64,
    /// Client-side rate limit, in requests per second (the API allows about 30 per key).
    pub max_requests_per_second: f64,
    /// Items per page of every list call (1 to 500).
    pub page_size: u32,
}

impl Default for VultrConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            api_base_url: DEFAULT_API_BASE_URL.to_owned(),
            default_region: RegionId::parse("ewr").expect("valid literal region"),
            default_plan: PlanId::parse("vc2-1c-1gb").expect("valid literal plan"),
            default_os_id: OsId(2136),
            firewall_group: None,
            request_timeout_secs: 30.0,
            connect_timeout_secs: 10.0,
            max_retries: 5,
            retry_initial_backoff_secs: 0.5,
            retry_max_backoff_secs: 8.0,
            retry_after_max_secs: 60.0,
            max_requests_per_second: 30.0,
            page_size: 100,
        }
    }
}

impl VultrConfig {
    /// Reads a config from TOML text (the body of a `[providers.<name>]` table).
    ///
    /// Keys may be written with `-` or `_` (`default-region` = `default_region`). The
    /// error never quotes the TOML source, which may hold the API key.
    pub fn from_toml_str(text: &str) -> Result<Self, VultrError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        Self::from_toml_table(table)
    }

    /// Reads a config from an already parsed TOML table. Keys may use `-` or `_`.
    pub fn from_toml_table(table: toml::Table) -> Result<Self, VultrError> {
        let normalised: toml::Table = table
            .into_iter()
            .map(|(key, value)| (key.replace('-', "_"), value))
            .collect();
        let config: Self = toml::Value::Table(normalised)
            .try_into()
            .map_err(|e: toml::de::Error| VultrError::Config(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values a type cannot: positive finite durations and rates, a page size
    /// the API accepts, a non-empty firewall group description.
    pub fn validate(&self) -> Result<(), VultrError> {
        let positive = [
            ("request_timeout_secs", self.request_timeout_secs),
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("max_requests_per_second", self.max_requests_per_second),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(VultrError::Config(format!(
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
            ("retry_after_max_secs", self.retry_after_max_secs),
        ];
        for (name, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(VultrError::Config(format!(
                    "`{name}` must be zero or a positive number, got {value}"
                )));
            }
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(VultrError::Config(format!(
                "`page_size` must be from 1 to {MAX_PAGE_SIZE}, got {}",
                self.page_size
            )));
        }
        if let Some(group) = &self.firewall_group
            && group.trim().is_empty()
        {
            return Err(VultrError::Config(
                "`firewall_group` must not be empty; leave it out to use no firewall group"
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
}

/// Describes a TOML syntax error by its message and line, without the source snippet
/// that `toml`'s `Display` prints (the line may hold the API key).
fn toml_error(text: &str, error: &toml::de::Error) -> VultrError {
    let line = error.span().map(|span| {
        text.bytes()
            .take(span.start)
            .filter(|b| *b == b'\n')
            .count()
            + 1
    });
    let message = error.message().trim();
    match line {
        Some(line) => VultrError::Config(format!("TOML syntax error on line {line}: {message}")),
        None => VultrError::Config(format!("TOML syntax error: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_gives_the_vultr_defaults() {
        let config = VultrConfig::from_toml_str("").expect("empty config");
        assert!(config.api_key.is_none());
        assert_eq!(config.api_base_url, "https://api.vultr.com/v2");
        assert_eq!(config.default_region.as_str(), "ewr");
        assert_eq!(config.default_plan.as_str(), "vc2-1c-1gb");
        assert_eq!(config.default_os_id, OsId(2136));
        assert_eq!(config.firewall_group, None);
        assert_eq!(config.page_size, 100);
        assert_eq!(config.max_requests_per_second, 30.0);
    }

    #[test]
    fn every_key_can_be_set_with_dashes_or_underscores() {
        let config = VultrConfig::from_toml_str(
            r#"
            api-key = "k"
            api_base_url = "http://127.0.0.1:9/v2"
            default_region = "ams"
            default-plan = "vc2-2c-4gb"
            default_os_id = 2284
            firewall_group = "mngr"
            request_timeout_secs = 5
            connect_timeout_secs = 1.5
            max_retries = 2
            retry_initial_backoff_secs = 0.01
            retry_max_backoff_secs = 0.1
            retry_after_max_secs = 3
            max_requests_per_second = 10
            page_size = 500
            "#,
        )
        .expect("full config");
        assert_eq!(config.api_key.as_ref().map(ApiKey::expose), Some("k"));
        assert_eq!(config.default_plan.as_str(), "vc2-2c-4gb");
        assert_eq!(config.default_os_id, OsId(2284));
        assert_eq!(config.firewall_group.as_deref(), Some("mngr"));
        assert_eq!(config.request_timeout(), Duration::from_secs(5));
        assert_eq!(config.max_retries, 2);
        assert_eq!(config.page_size, 500);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let err = VultrConfig::from_toml_str("regoin = \"ams\"").expect_err("unknown key");
        assert!(err.to_string().contains("regoin"), "{err}");
        for bad in [
            "page_size = 0",
            "page_size = 501",
            "max_requests_per_second = 0",
            "request_timeout_secs = -1",
            "retry_initial_backoff_secs = nan",
            "firewall_group = \" \"",
            "default_region = \"a b\"",
        ] {
            assert!(VultrConfig::from_toml_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_errors_do_not_quote_the_api_key() {
        let err = VultrConfig::from_toml_str("api_key = \"SECRET-KEY-123\" trailing")
            .expect_err("syntax error");
        let text = err.to_string();
        assert!(text.contains("line 1"), "{text}");
        assert!(!text.contains("SECRET-KEY-123"), "{text}");
        let config = VultrConfig::from_toml_str("api_key = \"SECRET-KEY-123\"").expect("config");
        assert!(!format!("{config:?}").contains("SECRET-KEY-123"));
    }
}
