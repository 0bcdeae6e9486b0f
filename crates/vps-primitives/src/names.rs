//! Names and provider-assigned identifiers. Each one is validated so that it is safe
//! wherever it goes: a remote shell, a Docker object name, a cloud label, a URL path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::InvalidValue;
use crate::macros::string_newtype_impls;

/// The name a user gives a host, e.g. `my-agent`.
///
/// Rules (the strictest of a DNS label, a Docker container name and a cloud label):
/// 1 to 63 ASCII letters, digits, `-` and `_`, starting and ending with a letter or digit.
/// Upper case is allowed, as upstream's `SafeName` allows it.
///
/// ```
/// use vps_primitives::HostName;
/// assert!(HostName::parse("my-agent").is_ok());
/// assert!(HostName::parse("a; rm -rf /").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostName(String);

impl HostName {
    /// Longest accepted name: a DNS label.
    pub const MAX_LEN: usize = 63;

    /// Validates a host name.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        const KIND: &str = "host name";
        const RULE: &str = "use 1 to 63 ASCII letters, digits, `-` or `_`, starting and ending with a letter or digit";
        if value.is_empty() {
            return Err(InvalidValue::new(KIND, value, "must not be empty"));
        }
        if value.len() > Self::MAX_LEN {
            return Err(InvalidValue::new(
                KIND,
                value,
                "is longer than 63 characters",
            ));
        }
        let bytes = value.as_bytes();
        let inner_ok = bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
        let ends_ok =
            bytes[0].is_ascii_alphanumeric() && bytes[bytes.len() - 1].is_ascii_alphanumeric();
        if !inner_ok || !ends_ok {
            return Err(InvalidValue::new(KIND, value, RULE));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_newtype_impls!(HostName);

/// Checks the shared rule of provider-assigned tokens: 1 to `max` characters from
/// `A-Z a-z 0-9 . _ : -`, and not starting with `-` (so it can never be read as an option).
fn provider_token(kind: &'static str, value: &str, max: usize) -> Result<String, InvalidValue> {
    if value.is_empty() {
        return Err(InvalidValue::new(kind, value, "must not be empty"));
    }
    if value.len() > max {
        return Err(InvalidValue::new(
            kind,
            value,
            format!("is longer than {max} characters"),
        ));
    }
    if value.starts_with('-') {
        return Err(InvalidValue::new(kind, value, "must not start with `-`"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(InvalidValue::new(
            kind,
            value,
            "may only contain ASCII letters, digits, `.`, `_`, `:` and `-`",
        ));
    }
    Ok(value.to_owned())
}

macro_rules! provider_token {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates the value: 1 to
            #[doc = stringify!($max)]
            /// characters from `A-Z a-z 0-9 . _ : -`, not starting with `-`.
            pub fn parse(value: &str) -> Result<Self, InvalidValue> {
                provider_token($kind, value, $max).map(Self)
            }

            /// The value as given by the provider.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        string_newtype_impls!($name);
    };
}

provider_token!(
    /// The id a provider gave a VPS instance (a Vultr UUID, a local container id).
    VpsInstanceId,
    "VPS instance id",
    128
);
provider_token!(
    /// The id a provider gave a VPS snapshot.
    VpsSnapshotId,
    "VPS snapshot id",
    128
);
provider_token!(
    /// The id a provider gave an uploaded SSH public key.
    SshKeyId,
    "SSH key id",
    128
);
provider_token!(
    /// A provider region, e.g. Vultr's `ewr`.
    RegionId,
    "region id",
    64
);
provider_token!(
    /// A provider plan (machine size), e.g. Vultr's `vc2-1c-1gb`.
    PlanId,
    "plan id",
    64
);

/// A provider's operating-system image id (Vultr: 2136 = Debian 12 x64).
///
/// Providers interpret it; `local-vps` maps its own ids to its two images.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OsId(pub u32);

impl OsId {
    /// Parses a decimal id, e.g. from a `--vps-os=2136` build argument.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        value.parse::<u32>().map(OsId).map_err(|_| {
            InvalidValue::new(
                "OS id",
                value,
                "must be a whole number from 0 to 4294967295",
            )
        })
    }
}

impl fmt::Display for OsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for OsId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
