//! Errors of configuring and building a Vultr client.
//!
//! Failures of API calls are reported as [`VpsClientError`], the error of the trait; this
//! type covers what happens before the first call.

use vps_client::VpsClientError;

/// Why a Vultr client could not be configured or built. No variant holds the API key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VultrError {
    /// No API key in the config and `VULTR_API_KEY` unset or empty.
    #[error(
        "no Vultr API key: set `api_key` in the provider config or the VULTR_API_KEY environment variable"
    )]
    MissingApiKey,
    /// The API key cannot be sent in an HTTP header (it has control characters, say).
    #[error("the Vultr API key contains characters that cannot be sent in an HTTP header")]
    InvalidApiKey,
    /// A config value is malformed or out of range.
    #[error("invalid Vultr config: {0}")]
    Config(String),
    /// The HTTP client could not be built (no usable TLS roots, say).
    #[error("cannot build the HTTP client for the Vultr API: {0}")]
    HttpClient(String),
}

impl From<VultrError> for VpsClientError {
    fn from(error: VultrError) -> Self {
        VpsClientError::Config(error.to_string())
    }
}
