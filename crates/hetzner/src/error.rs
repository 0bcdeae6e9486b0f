//! Errors of configuring and building a Hetzner client.
//!
//! Failures of API calls are [`VpsClientError`]s, the error of the trait; this type covers
//! what happens before the first call.

use vps_client::VpsClientError;

/// Why a Hetzner client could not be configured or built. No variant holds the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HetznerError {
    /// No token in the config and `HCLOUD_TOKEN` unset or empty.
    #[error(
        "no Hetzner Cloud API token: set `api_token` in the provider config or the HCLOUD_TOKEN environment variable"
    )]
    MissingApiToken,
    /// The token cannot be sent in an HTTP header (it has control characters, say).
    #[error("the Hetzner API token contains characters that cannot be sent in an HTTP header")]
    InvalidApiToken,
    /// A config value is malformed or out of range.
    #[error("invalid Hetzner config: {0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for the Hetzner API: {0}")]
    HttpClient(String),
}

impl From<HetznerError> for VpsClientError {
    fn from(error: HetznerError) -> Self {
        VpsClientError::Config(error.to_string())
    }
}
