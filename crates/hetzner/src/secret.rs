//! The API token, kept out of logs, errors and `Debug` output.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A Hetzner Cloud API token (bound to one Project).
///
/// Its `Debug` output is `ApiToken(<redacted>)`; it has no `Display` and no `Serialize`,
/// so it cannot slip into a log line, an error message or a written config. Read it only
/// through [`ApiToken::expose`], where the `Authorization` header is built.
///
/// ```
/// use hetzner::ApiToken;
/// let token = ApiToken::new("SECRET-TOKEN\n");
/// assert_eq!(format!("{token:?}"), "ApiToken(<redacted>)");
/// assert_eq!(token.expose(), "SECRET-TOKEN");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// Wraps a token; surrounding whitespace (a newline from a file) is removed.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into().trim().to_owned())
    }

    /// The token itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the token is empty, which counts as missing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for ApiToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ApiToken::new)
    }
}
