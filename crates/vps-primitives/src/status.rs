//! What a VPS instance and a host are doing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::InvalidValue;

/// The state of a VPS instance as its provider reports it, mapped to five cases.
///
/// Serialised as upstream does: the upper-case name (`"ACTIVE"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VpsInstanceStatus {
    /// Ordered but not usable yet: being built, booting, or its SSH server is not answering.
    Pending,
    /// Running and reachable: the provider says it is up and it has an address.
    Active,
    /// Exists but is powered off (also called "stopped"); still billed by most clouds.
    #[serde(alias = "STOPPED")]
    Halted,
    /// Being deleted; it will disappear without further calls.
    Destroying,
    /// The provider reported something this crate does not know, or nothing at all.
    Unknown,
}

impl VpsInstanceStatus {
    /// Every status, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Active,
        Self::Halted,
        Self::Destroying,
        Self::Unknown,
    ];

    /// The upper-case name used on the wire (`"ACTIVE"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Active => "ACTIVE",
            Self::Halted => "HALTED",
            Self::Destroying => "DESTROYING",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// Whether no later status can follow without someone acting (powering on, say).
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Active | Self::Halted)
    }
}

impl fmt::Display for VpsInstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VpsInstanceStatus {
    type Err = InvalidValue;
    /// Parses the upper-case wire name; `STOPPED` is read as [`Self::Halted`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "STOPPED" {
            return Ok(Self::Halted);
        }
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                InvalidValue::new(
                    "VPS instance status",
                    s,
                    "must be one of PENDING, ACTIVE, HALTED (or STOPPED), DESTROYING, UNKNOWN",
                )
            })
    }
}

/// The state of a host (the VPS plus its one container), as mngr shows it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HostState {
    /// The image for the container is being built.
    Building,
    /// The VPS or the container is starting.
    Starting,
    /// The container runs and its SSH server answers.
    Running,
    /// The container is being stopped.
    Stopping,
    /// The container is stopped; the VPS keeps running (and billing).
    Stopped,
    /// The container is paused.
    Paused,
    /// The container stopped without being asked to.
    Crashed,
    /// Creating the host failed; the record keeps the reason.
    Failed,
    /// The host and its VPS are gone; only the record may remain.
    Destroyed,
    /// The host is reachable but our pinned key or client key is refused.
    Unauthenticated,
}

impl HostState {
    /// Every state, in declaration order.
    pub const ALL: [Self; 10] = [
        Self::Building,
        Self::Starting,
        Self::Running,
        Self::Stopping,
        Self::Stopped,
        Self::Paused,
        Self::Crashed,
        Self::Failed,
        Self::Destroyed,
        Self::Unauthenticated,
    ];

    /// The upper-case name used on the wire (`"RUNNING"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Building => "BUILDING",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Stopping => "STOPPING",
            Self::Stopped => "STOPPED",
            Self::Paused => "PAUSED",
            Self::Crashed => "CRASHED",
            Self::Failed => "FAILED",
            Self::Destroyed => "DESTROYED",
            Self::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HostState {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| InvalidValue::new("host state", s, "is not a known host state"))
    }
}
