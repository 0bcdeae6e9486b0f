//! The data that crosses the [`crate::VpsClient`] trait.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use time::OffsetDateTime;

use vps_primitives::{
    OsId, PlanId, RegionId, SshKeyId, Tag, VpsInstanceId, VpsInstanceStatus, VpsSnapshotId,
};

/// The cloud-init document (or script) handed to a new instance.
///
/// It holds the VPS's private host key, so its `Debug` output shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct UserData(String);

impl UserData {
    /// Wraps the plain-text document; providers encode it as their API needs.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The plain text. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserData(<{} bytes, redacted>)", self.0.len())
    }
}

/// Everything needed to order one instance.
#[derive(Clone, Debug)]
pub struct CreateInstanceRequest {
    /// Label and hostname of the instance, e.g. `mngr-my-agent`.
    pub label: String,
    /// Where it runs.
    pub region: RegionId,
    /// Its size.
    pub plan: PlanId,
    /// Its operating-system image; not used when [`Self::snapshot`] is set.
    pub os: OsId,
    /// A provider snapshot ([`crate::VpsClient::create_snapshot`]) to boot from. When set,
    /// the instance's disk is that snapshot's instead of a fresh [`Self::os`] image. The
    /// user_data still applies, as on clouds where an instance made from a snapshot gets
    /// new user_data: cloud-init sees a new instance and runs its per-instance modules
    /// again (a new SSH host key, say). An unknown snapshot fails the create with
    /// [`VpsClientError::NotFound`] or [`VpsClientError::Api`], and orders nothing.
    pub snapshot: Option<VpsSnapshotId>,
    /// The cloud-init user_data, in plain text.
    pub user_data: UserData,
    /// Keys the provider installs in root's `authorized_keys`.
    pub ssh_key_ids: Vec<SshKeyId>,
    /// Tags on the instance; discovery lists instances by them.
    pub tags: Vec<Tag>,
    /// TCP ports the host needs reachable (22 and the container's SSH port). A cloud
    /// provider opens them in its firewall; a local one publishes them.
    pub ports: Vec<u16>,
}

/// What a provider knows of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceInfo {
    /// The provider's id.
    pub id: VpsInstanceId,
    /// Its label.
    pub label: String,
    /// Its status.
    pub status: VpsInstanceStatus,
    /// Its tags.
    pub tags: Vec<Tag>,
    /// Its main IPv4 address, once it has one.
    pub address: Option<IpAddr>,
    /// Where this machine reaches the instance's ports when that is not `address:port`:
    /// a local VPS's ports are published on this machine, each on a port of its own, and
    /// only those are reachable. `None` on a cloud, where every port is at `address`. Read
    /// it with [`addr`](Self::addr).
    pub published: Option<Vec<(u16, SocketAddr)>>,
    /// When the provider created it (Vultr's `date_created`, a local VPS container's
    /// creation time), if the provider says; leak cleanup compares it with a cut-off.
    pub created_at: Option<OffsetDateTime>,
}

impl InstanceInfo {
    /// Where this machine reaches `port` of the instance, as the read saw it: the same as
    /// [`VpsClient::socket_addr`](crate::VpsClient::socket_addr) at that time, without a
    /// request per instance (discovery of many hosts reads them all from one listing).
    /// `None`: no address yet, or a port the instance does not publish.
    pub fn addr(&self, port: u16) -> Option<SocketAddr> {
        match &self.published {
            None => self.address.map(|ip| SocketAddr::new(ip, port)),
            Some(ports) => ports.iter().find(|(p, _)| *p == port).map(|(_, a)| *a),
        }
    }
}

/// The progress of a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// Being taken.
    Pending,
    /// Ready to use.
    Complete,
    /// Anything else the provider says.
    Unknown,
}

/// One provider-level snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The provider's id.
    pub id: VpsSnapshotId,
    /// The description given at creation.
    pub description: String,
    /// Its progress.
    pub status: SnapshotStatus,
    /// When it was taken, as the provider wrote it (RFC 3339 for Vultr).
    pub created_at: Option<String>,
}

/// One registered SSH key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshKeyInfo {
    /// The provider's id.
    pub id: SshKeyId,
    /// The name given at upload.
    pub name: String,
    /// The public key, one OpenSSH line.
    pub public_key: String,
}

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VpsClientError {
    /// The instance, snapshot or key does not exist (any more).
    #[error("{kind} {id} not found at the provider")]
    NotFound {
        /// `instance`, `snapshot` or `SSH key`.
        kind: &'static str,
        /// The id that was asked for.
        id: String,
    },
    /// The provider answered with an error that retrying will not fix.
    #[error("provider API error {status}: {message}")]
    Api {
        /// The HTTP status (or an equivalent code).
        status: u16,
        /// The provider's own message.
        message: String,
    },
    /// The provider could not be reached, or answered with an error that may pass
    /// (rate limit, overload), after the implementation's retries ran out. The request
    /// certainly did not act, so trying it again is safe.
    #[error("provider unreachable or overloaded: {message}")]
    Transient {
        /// What happened on the last attempt.
        message: String,
    },
    /// A request that changes something (a create, above all) failed in a way that leaves
    /// open whether the provider carried it out: the connection dropped after it was sent,
    /// or the provider answered with a server error. The implementation did not repeat it,
    /// since a second create could order a second, billed instance.
    ///
    /// Not [transient](VpsClientError::is_transient): before trying again, look up what
    /// the request would have made (an instance by the tags of its request, with
    /// [`crate::VpsClient::list_instances`]; a snapshot or key in its listing) and use or
    /// remove it.
    #[error(
        "the provider may or may not have carried out the request: {message}; look up what it would have made (an instance by its tags) before trying again"
    )]
    OutcomeUnknown {
        /// What happened to the request.
        message: String,
    },
    /// The instance exists but is not ready for what was asked (no address yet, say).
    #[error("instance {id} is not ready: {message}")]
    NotReady {
        /// The instance.
        id: VpsInstanceId,
        /// What is missing.
        message: String,
    },
    /// The instance is being destroyed, so waiting for it to become active cannot help.
    /// Not [transient](VpsClientError::is_transient).
    #[error("instance {id} is being destroyed, so it will never become active")]
    Destroying {
        /// The instance.
        id: VpsInstanceId,
    },
    /// A wait ran past its deadline.
    #[error("instance {id} was not {wanted} after {waited_secs:.0}s; last seen {last_seen}")]
    Timeout {
        /// The instance.
        id: VpsInstanceId,
        /// What was waited for, e.g. `active and reachable`.
        wanted: &'static str,
        /// How long was waited.
        waited_secs: f64,
        /// The last status or error seen, for the user to act on.
        last_seen: String,
    },
    /// The provider's answer could not be understood.
    #[error("unexpected answer from the provider: {0}")]
    InvalidResponse(String),
    /// The client is not configured to work (missing API key, bad URL, …).
    #[error("provider configuration: {0}")]
    Config(String),
    /// The backend behind the client failed (a local Docker engine, say).
    #[error("{message}")]
    Backend {
        /// What failed, for the user.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl VpsClientError {
    /// Whether trying the same call again later may succeed, and is safe:
    /// [`VpsClientError::Transient`] and [`VpsClientError::NotReady`].
    /// [`VpsClientError::OutcomeUnknown`] is not: the call may have acted already.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::NotReady { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_of_requests_that_certainly_did_not_act_are_transient() {
        let id = VpsInstanceId::parse("i-1").expect("valid id");
        let transient = [
            VpsClientError::Transient {
                message: "HTTP 503".into(),
            },
            VpsClientError::NotReady {
                id: id.clone(),
                message: "no address yet".into(),
            },
        ];
        for e in &transient {
            assert!(e.is_transient(), "{e}");
        }
        let permanent = [
            VpsClientError::OutcomeUnknown {
                message: "POST /instances: HTTP 500".into(),
            },
            VpsClientError::NotFound {
                kind: "instance",
                id: "i-1".into(),
            },
            VpsClientError::Api {
                status: 400,
                message: "bad plan".into(),
            },
            VpsClientError::Destroying { id: id.clone() },
            VpsClientError::Timeout {
                id,
                wanted: "active",
                waited_secs: 1.0,
                last_seen: "PENDING".into(),
            },
            VpsClientError::InvalidResponse("?".into()),
            VpsClientError::Config("no key".into()),
            VpsClientError::Backend {
                message: "engine down".into(),
                source: None,
            },
        ];
        for e in &permanent {
            assert!(!e.is_transient(), "{e}");
        }
    }

    #[test]
    fn outcome_unknown_tells_the_caller_to_look_before_retrying() {
        let e = VpsClientError::OutcomeUnknown {
            message: "POST /instances: connection closed".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("POST /instances: connection closed"),
            "{text}"
        );
        assert!(text.contains("before trying again"), "{text}");
    }
}
