//! Errors of the lifecycle: which operation, which host, which step, and what to do next.

use std::fmt;

use docker_ssh::{DockerError, ExecError, SshError};
use host_store::StoreError;
use vps_client::VpsClientError;
use vps_primitives::{HostId, HostName, InvalidValue, VpsSnapshotId};

use crate::config::ConfigError;
use crate::keys::KeyStoreError;
use crate::step::Step;

/// Why one step failed. The underlying errors are boxed, so results stay small.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The provider's API.
    #[error(transparent)]
    Provider(Box<VpsClientError>),
    /// An SSH connection.
    #[error(transparent)]
    Ssh(Box<SshError>),
    /// A command (on the VPS or in the container).
    #[error(transparent)]
    Exec(Box<ExecError>),
    /// A Docker command on the VPS.
    #[error(transparent)]
    Docker(Box<DockerError>),
    /// The host records on the VPS.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// Key files or pins on this machine.
    #[error(transparent)]
    Keys(Box<KeyStoreError>),
    /// Something the step checks was not as it must be.
    #[error("{0}")]
    Check(String),
    /// The caller cancelled (Ctrl-C).
    #[error("cancelled")]
    Cancelled,
    /// The step ran past its deadline.
    #[error("did not finish within {secs:.0}s")]
    Timeout {
        /// The deadline.
        secs: f64,
    },
}

macro_rules! boxed_from {
    ($($variant:ident($error:ty)),* $(,)?) => {
        $(impl From<$error> for StepError {
            fn from(e: $error) -> Self {
                Self::$variant(Box::new(e))
            }
        })*
    };
}

boxed_from!(
    Provider(VpsClientError),
    Ssh(SshError),
    Exec(ExecError),
    Docker(DockerError),
    Store(StoreError),
    Keys(KeyStoreError),
);

/// One undo of a failed create that failed in turn.
#[derive(Debug)]
pub struct RollbackFailure {
    /// What the undo was removing.
    pub what: String,
    /// Why it failed.
    pub error: StepError,
}

impl fmt::Display for RollbackFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not remove {}: {}", self.what, self.error)
    }
}

/// An error of a [`crate::VpsDockerProvider`] operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider's configuration breaks a rule.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// An argument breaks a rule; nothing was created.
    #[error("{0}")]
    InvalidInput(String),
    /// No host has this name or id.
    #[error("no host named or with id {0:?} at this provider; `mngr-vps list` shows the hosts")]
    HostNotFound(String),
    /// A host with this name exists already.
    #[error("a host named {name} exists already ({id}); pick another name or destroy it first")]
    NameTaken {
        /// The name.
        name: HostName,
        /// The existing host.
        id: HostId,
    },
    /// Creating a host failed; everything it had made was removed, except what
    /// `rollback_failures` lists.
    #[error("{}", create_message(.name, .id, *.step, .source, .rollback_failures))]
    Create {
        /// The host's name.
        name: HostName,
        /// The id it would have had.
        id: HostId,
        /// The step that failed.
        step: Step,
        /// Why.
        #[source]
        source: StepError,
        /// Undos that failed: these things are left behind.
        rollback_failures: Vec<RollbackFailure>,
    },
    /// A step of another operation failed.
    #[error("{step} of host {host} failed: {source}")]
    Step {
        /// The host (name or id).
        host: String,
        /// The step.
        step: Step,
        /// Why.
        #[source]
        source: StepError,
    },
    /// The host is not in a state that allows the operation.
    #[error("host {host} is {state}; {hint}")]
    WrongState {
        /// The host.
        host: String,
        /// Its state.
        state: String,
        /// What to do.
        hint: &'static str,
    },
    /// Destroying left something behind.
    #[error("destroying host {host} left {}; run the destroy again to finish it", .left.join("; "))]
    DestroyIncomplete {
        /// The host.
        host: String,
        /// What is left, with why.
        left: Vec<String>,
    },
    /// The host has no container snapshot of this id or name.
    #[error("host {host} has no snapshot {snapshot:?}; `mngr-vps snapshot list {host}` lists them")]
    SnapshotNotFound {
        /// The host.
        host: String,
        /// The id or name asked for.
        snapshot: String,
    },
    /// The host is hibernated: it has no VPS, only a provider snapshot.
    #[error(
        "host {host} is hibernated (provider snapshot {snapshot}); wake it first (`mngr-vps wake {host}`)"
    )]
    Hibernated {
        /// The host.
        host: String,
        /// The provider snapshot that holds it.
        snapshot: VpsSnapshotId,
    },
    /// Waking a hibernated host failed; it is still hibernated, and the new VPS was
    /// removed except what `rollback_failures` lists.
    #[error("{}", wake_message(.host, *.step, .source, .rollback_failures))]
    Wake {
        /// The host.
        host: String,
        /// The step that failed.
        step: Step,
        /// Why.
        #[source]
        source: StepError,
        /// Undos that failed: these things are left behind.
        rollback_failures: Vec<RollbackFailure>,
    },
    /// The provider's API failed outside any host step (listing, say).
    #[error("{what}: {source}")]
    Provider {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<VpsClientError>,
    },
}

impl From<ConfigError> for ProviderError {
    fn from(e: ConfigError) -> Self {
        Self::Config(Box::new(e))
    }
}

impl From<InvalidValue> for ProviderError {
    fn from(e: InvalidValue) -> Self {
        Self::InvalidInput(e.to_string())
    }
}

fn create_message(
    name: &HostName,
    id: &HostId,
    step: Step,
    source: &StepError,
    failures: &[RollbackFailure],
) -> String {
    let mut s = format!("creating host {name} ({id}) failed at step `{step}`: {source}");
    if failures.is_empty() {
        s.push_str("; everything it had made was removed");
    } else {
        s.push_str(
            "; the rollback left things behind (remove them by hand or run `mngr-vps cleanup`): ",
        );
        let parts: Vec<String> = failures.iter().map(ToString::to_string).collect();
        s.push_str(&parts.join("; "));
    }
    s
}

fn wake_message(
    host: &str,
    step: Step,
    source: &StepError,
    failures: &[RollbackFailure],
) -> String {
    let mut s =
        format!("waking host {host} failed at step `{step}`: {source}; it is still hibernated");
    if failures.is_empty() {
        s.push_str(" and the new VPS was removed");
    } else {
        let parts: Vec<String> = failures.iter().map(ToString::to_string).collect();
        s.push_str(&format!(
            "; removing the new VPS left things behind (remove them by hand or run `mngr-vps cleanup`): {}",
            parts.join("; ")
        ));
    }
    s
}
