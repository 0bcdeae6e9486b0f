//! How mngr marks what it owns: tags on cloud instances, labels on Docker objects, and the
//! names of the VPS and the Docker objects on it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{HostId, HostName, InvalidValue};

/// Tag key naming the provider instance that owns a VPS (`mngr-provider=<name>`).
/// Discovery lists instances by this tag.
pub const PROVIDER_TAG_KEY: &str = "mngr-provider";
/// Tag key carrying the host id of a VPS (`mngr-host-id=host-…`).
pub const HOST_ID_TAG_KEY: &str = "mngr-host-id";

/// Docker label on a host container: its host id.
pub const LABEL_HOST_ID: &str = "com.imbue.mngr.host-id";
/// Docker label on a host container: its host name.
pub const LABEL_HOST_NAME: &str = "com.imbue.mngr.host-name";
/// Docker label on host and state containers: the provider instance name.
pub const LABEL_PROVIDER: &str = "com.imbue.mngr.provider";
/// Docker label on a host container: the user tags, as a JSON object.
pub const LABEL_TAGS: &str = "com.imbue.mngr.tags";
/// Docker label that says what a container is for, e.g. [`LABEL_TYPE_STATE_CONTAINER`].
pub const LABEL_TYPE: &str = "com.imbue.mngr.type";
/// Value of [`LABEL_TYPE`] on the state container.
pub const LABEL_TYPE_STATE_CONTAINER: &str = "state-container";

/// Docker label on everything a test creates: the id of the test run
/// (`com.imbue.mngr.test-run=<run id>`), by which `cargo xtask clean`, the test bed and
/// `.ci/run` remove what a run left. The one definition (`.ci/run`, in bash, spells it
/// again and points here).
pub const LABEL_TEST_RUN: &str = "com.imbue.mngr.test-run";

/// Prefix of a VPS label and hostname: a host `my-agent` runs on VPS `mngr-my-agent`.
pub const VPS_LABEL_PREFIX: &str = "mngr-";

/// The label (and hostname) given to the VPS of a host: `mngr-<host name>`.
pub fn vps_label(name: &HostName) -> String {
    format!("{VPS_LABEL_PREFIX}{name}")
}

/// The name of the per-host Docker volume on the VPS: `mngr-host-vol-<hex>`.
pub fn host_volume_name(id: &HostId) -> String {
    format!("mngr-host-vol-{}", id.hex())
}

/// The name of a provider instance (a `[providers.<name>]` table), e.g. `vultr` or `local`.
///
/// Rules as upstream's `SafeName`: 1 to 63 ASCII letters, digits, `-` and `_`, starting and
/// ending with a letter or digit.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderName(String);

impl ProviderName {
    /// Validates a provider instance name.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        HostName::parse(value)
            .map(|n| Self(n.as_str().to_owned()))
            .map_err(|e| InvalidValue {
                kind: "provider name",
                ..e
            })
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ProviderName {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ProviderName> for String {
    fn from(v: ProviderName) -> String {
        v.0
    }
}

/// A `key=value` tag on a cloud instance.
///
/// Keys: 1 to 64 characters from `a-z 0-9 . _ -`, starting with a letter or digit.
/// Values: 0 to 255 printable ASCII characters without spaces.
/// The `=` between them is the first `=` of the text form, so a value may contain `=`.
///
/// ```
/// use vps_primitives::{HostId, Tag};
/// let id = HostId::generate();
/// let tag = Tag::host_id(&id);
/// assert_eq!(tag.to_string(), format!("mngr-host-id={id}"));
/// assert_eq!("mngr-host-id=x".parse::<Tag>().unwrap().value(), "x");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag {
    key: String,
    value: String,
}

impl Tag {
    /// Builds a tag from its parts, validating both.
    pub fn new(key: &str, value: &str) -> Result<Self, InvalidValue> {
        let key_ok = !key.is_empty()
            && key.len() <= 64
            && key.as_bytes()[0].is_ascii_alphanumeric()
            && key.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if !key_ok {
            return Err(InvalidValue::new(
                "tag key",
                key,
                "use 1 to 64 characters from `a-z 0-9 . _ -`, starting with a letter or digit",
            ));
        }
        if value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidValue::new(
                "tag value",
                value,
                "use at most 255 printable ASCII characters, without spaces",
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }

    /// The tag that marks a VPS as owned by provider instance `name`.
    pub fn provider(name: &ProviderName) -> Self {
        Self {
            key: PROVIDER_TAG_KEY.to_owned(),
            value: name.as_str().to_owned(),
        }
    }

    /// The tag that carries the host id of a VPS.
    pub fn host_id(id: &HostId) -> Self {
        Self {
            key: HOST_ID_TAG_KEY.to_owned(),
            value: id.as_str().to_owned(),
        }
    }

    /// The key, e.g. `mngr-provider`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value, e.g. `vultr`.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl FromStr for Tag {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| InvalidValue::new("tag", s, "must have the form `key=value`"))?;
        Self::new(key, value)
    }
}

impl TryFrom<String> for Tag {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Tag> for String {
    fn from(t: Tag) -> String {
        t.to_string()
    }
}
