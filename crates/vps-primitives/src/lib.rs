//! Validated ids, names, statuses and tag conventions of the VPS Docker toolkit.
//!
//! Every other crate speaks in these types instead of `String`s, so a value that reaches a
//! remote shell, a Docker object name, a cloud label or a URL has been checked once, here.
//! It also holds the toolkit's one shell-quoting function, [`quote`], since names and
//! generated scripts both end up in shells, and its one retry-delay schedule, [`Backoff`]
//! (the callers sleep; this crate only computes the pauses). This crate does no I/O.
//!
//! ```
//! use vps_primitives::{HostId, HostName, Tag, VpsInstanceStatus, vps_label};
//!
//! let id = HostId::generate();
//! let name = HostName::parse("my-agent")?;
//! assert_eq!(vps_label(&name), "mngr-my-agent");
//! assert_eq!(Tag::host_id(&id).to_string(), format!("mngr-host-id={id}"));
//! assert_eq!("ACTIVE".parse::<VpsInstanceStatus>()?, VpsInstanceStatus::Active);
//!
//! // Every constructor names the value and the rule it broke.
//! let err = HostName::parse("x$(reboot)").unwrap_err();
//! assert!(err.to_string().contains("x$(reboot)"));
//! # Ok::<(), vps_primitives::InvalidValue>(())
//! ```

mod backoff;
mod error;
mod ids;
mod macros;
mod names;
mod shell;
mod status;
mod tags;

pub use backoff::{Backoff, Delays};
pub use error::InvalidValue;
pub use ids::{AgentId, HostId};
pub use names::{HostName, OsId, PlanId, RegionId, SshKeyId, VpsInstanceId, VpsSnapshotId};
pub use shell::{quote, quote_argv};
pub use status::{HostState, VpsInstanceStatus};
pub use tags::{
    HOST_ID_TAG_KEY, LABEL_HOST_ID, LABEL_HOST_NAME, LABEL_PROVIDER, LABEL_TAGS, LABEL_TYPE,
    LABEL_TYPE_STATE_CONTAINER, PROVIDER_TAG_KEY, ProviderName, Tag, VPS_LABEL_PREFIX,
    host_volume_name, vps_label,
};

#[cfg(test)]
mod tests;
