//! The API key, kept out of logs, errors and `Debug` output.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A Vultr API key.
///
/// Its `Debug` output is `ApiKey(<redacted>)`; it has no `Display` and no `Serialize`, so
/// it cannot slip into a log line, an error message or a written config by accident. Read
/// it only through [`ApiKey::expose`], where the HTTP header is built and where the shared
/// rate limit hashes it (the hash, never the key, is kept).
///
/// ```
/// use vultr::ApiKey;
/// let key = ApiKey::new("SECRETKEY123");
/// assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
/// assert_eq!(key.expose(), "SECRETKEY123");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key. Surrounding whitespace (a trailing newline from a file, say) is removed.
    pub fn new(key: impl Into<String>) -> Self {
        let key = key.into();
        let trimmed = key.trim();
        if trimmed.len() == key.len() {
            Self(key)
        } else {
            Self(trimmed.to_owned())
        }
    }

    /// The key itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the key is empty (an empty `VULTR_API_KEY`, say), which counts as missing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for ApiKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ApiKey::new)
    }
}
