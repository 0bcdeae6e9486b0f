//! Host and agent records on the VPS's state volume: versioned JSON, atomic writes,
//! one-round-trip listing.
//!
//! ```no_run
//! use std::sync::Arc;
//! use docker_ssh::LocalExecutor;
//! use host_store::{
//!     CertifiedHostData, HostRecord, HostStore, StateContainerName, StateContainerSpec, Timestamp,
//! };
//! use vps_primitives::{HostId, HostName, ProviderName};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Any executor: an SSH pool to a VPS, or (here) the local Docker engine.
//! let exec = Arc::new(LocalExecutor::new());
//! let spec = StateContainerSpec::new(
//!     StateContainerName::new("mngr-", "0123456789abcdef0123456789abcdef")?,
//!     "alpine:3.20", // must already be on the engine: it is never pulled
//!     ProviderName::parse("local")?,
//! );
//! let (store, _ensured) = HostStore::ensure(exec, &spec).await?;
//!
//! let id = HostId::generate();
//! let data = CertifiedHostData::new(id.clone(), HostName::parse("my-agent")?, Timestamp::now());
//! store.write_host_record(&HostRecord::new(data)).await?;
//! assert!(store.read_host_record(&id).await?.is_some());
//!
//! let listing = store.list().await?; // every record and agent, one round trip
//! for skipped in &listing.skipped {
//!     eprintln!("skipped {skipped}");
//! }
//! store.delete_host_record(&id).await?;
//! # Ok(()) }
//! ```
//!
//! # What it is for
//!
//! Each VPS keeps what the toolkit knows about its host in a small **state container**
//! (`<prefix>docker-state-<user_id>`) whose named volume of the same name is mounted at
//! `/mngr-state`:
//!
//! ```text
//! /mngr-state/host_state/<host_id>.json             HostRecord
//! /mngr-state/host_state/<host_id>/<agent_id>.json  AgentRecord (persisted agent data)
//! ```
//!
//! The layout and the JSON are upstream's (`imbue-mngr-vps-docker` 0.1.0), so records
//! written by either can be read by the other, except that ours carry a
//! `schema_version` (which upstream, rejecting unknown keys, would refuse).
//!
//! - [`ensure_state_container`] creates the volume and container if needed, idempotently
//!   and safely under races, with restart policy `unless-stopped` and `--pull never`.
//! - [`HostRecord`] and [`AgentRecord`] are the typed records. Unknown fields (from a
//!   newer version) are kept and written back.
//! - [`HostStore`] reads, writes (atomically), deletes and lists them, each in one
//!   round trip over any [`docker_ssh::Executor`]: writes and deletes as a `docker exec`
//!   in the state container, reads on the VPS from the state volume's mount point.
//!
//! # What it is not for
//!
//! It does not know what a host's state means (running, stopped…), talks to no VPS
//! provider, and does not cache: that is `vps-docker-provider`'s job.
//!
//! # Fixed upstream quirks
//!
//! - Writes are atomic: temp file in the same directory, size check, fsync, rename, fsync
//!   of the directory (upstream truncated the file in place through a heredoc).
//! - Every command has a timeout.
//! - A stray directory, a corrupt file or a file whose name and id disagree is skipped
//!   and reported in the listing; it never aborts discovery, and corrupt agent data does
//!   not hide the other agents.
//! - Listing output is base64-framed: no record content can forge a separator.
//! - Two callers creating the state container at once both succeed.
//! - The state container image is given by the caller and never pulled.

mod container;
mod error;
mod layout;
mod listing;
mod record;
#[cfg(not(feature = "testing"))]
mod script;
/// The shell scripts the store runs, for tests that drive a write by hand (feature
/// `testing`; not a stable API).
#[cfg(feature = "testing")]
pub mod script;
mod store;
mod timestamp;

pub use container::{Ensured, StateContainerSpec, ensure_state_container};
pub use error::StoreError;
pub use layout::{
    DEFAULT_PREFIX, HOST_STATE_DIR, STATE_ENTRYPOINT, STATE_MOUNT, StateContainerName, agent_dir,
    agent_record_path, host_record_path,
};
pub use listing::{AgentListing, ListedHost, Listing, SkipReason, Skipped};
pub use record::{
    ActivitySource, AgentRecord, CertifiedHostData, DEFAULT_IDLE_TIMEOUT_SECONDS, HostRecord,
    IdleMode, SCHEMA_VERSION, SnapshotRecord, VpsHostConfig,
};
pub use script::REQUIRED_TOOLS;
pub use store::{DEFAULT_TIMEOUT, HostStore};
pub use timestamp::{InvalidTimestamp, Timestamp};

#[cfg(test)]
mod tests;

/// The README's example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
