//! What the lifecycle hands out: [`HostInfo`] (what was seen of a host), [`HostStatus`]
//! (derived from what was seen, never guessed) and [`Host`] (a running host's pooled,
//! pinned SSH connections).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use docker_ssh::{Command, Docker, ExecIo, Executor, Output, SshPool};
use host_store::{HostRecord, IdleMode};
use serde::Serialize;
use vps_primitives::{
    HostId, HostName, HostState, ProviderName, VpsInstanceId, VpsInstanceStatus, VpsSnapshotId,
};

use crate::error::{ProviderError, StepError};
use crate::step::{Phases, Step};

/// Why a host's container was stopped, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// A user asked (`stop`).
    User,
    /// The idle watcher stopped it.
    Idle,
}

impl StopReason {
    /// The record's `stop_reason` for it: upstream writes `STOPPED` for a user's stop and
    /// `PAUSED` for an idle one.
    pub fn as_state(self) -> HostState {
        match self {
            Self::User => HostState::Stopped,
            Self::Idle => HostState::Paused,
        }
    }

    /// Reads a record's `stop_reason`.
    pub fn from_state(state: HostState) -> Option<Self> {
        match state {
            HostState::Stopped => Some(Self::User),
            HostState::Paused => Some(Self::Idle),
            _ => None,
        }
    }
}

/// The state of a host, derived from what was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum HostStatus {
    /// The container runs.
    Running,
    /// The container is stopped, with the recorded reason (none: it stopped by itself).
    Stopped {
        /// The recorded reason.
        reason: Option<StopReason>,
    },
    /// The VPS is still being made or booting.
    Starting,
    /// The VPS or its records could not be read; the host may be fine.
    Unreachable {
        /// What went wrong.
        reason: String,
    },
    /// The host has no VPS: it was hibernated into a provider snapshot (`wake_host` brings
    /// it back). Nothing is billed but the snapshot's storage.
    Hibernated {
        /// The provider snapshot that holds the VPS's disk.
        snapshot: VpsSnapshotId,
    },
    /// The host is broken: a create failed, its container or record is missing, or its
    /// VPS is gone.
    Failed {
        /// What is wrong.
        reason: String,
    },
}

impl HostStatus {
    /// One word: `running`, `stopped`, `starting`, `unreachable`, `hibernated`, `failed`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped { .. } => "stopped",
            Self::Starting => "starting",
            Self::Unreachable { .. } => "unreachable",
            Self::Hibernated { .. } => "hibernated",
            Self::Failed { .. } => "failed",
        }
    }
}

impl fmt::Display for HostStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stopped {
                reason: Some(reason),
            } => write!(
                f,
                "stopped ({})",
                match reason {
                    StopReason::User => "user",
                    StopReason::Idle => "idle",
                }
            ),
            Self::Stopped { reason: None } => f.write_str("stopped (crashed)"),
            Self::Unreachable { reason } => write!(f, "unreachable ({reason})"),
            Self::Hibernated { snapshot } => write!(f, "hibernated (snapshot {snapshot})"),
            Self::Failed { reason } => write!(f, "failed ({reason})"),
            other => f.write_str(other.word()),
        }
    }
}

/// What was seen of one host.
#[derive(Clone, Debug, Serialize)]
pub struct HostInfo {
    /// Its id.
    pub id: HostId,
    /// Its name (from the record, else from the instance's label).
    pub name: Option<HostName>,
    /// The provider instance.
    pub provider: ProviderName,
    /// Its state.
    pub status: HostStatus,
    /// The VPS.
    pub instance_id: Option<VpsInstanceId>,
    /// The VPS's status at the provider.
    pub instance_status: Option<VpsInstanceStatus>,
    /// Where the VPS's sshd is reached from here.
    pub vps_ssh: Option<SocketAddr>,
    /// Where the container's sshd is reached from here.
    pub container_ssh: Option<SocketAddr>,
    /// The image the container runs.
    pub image: Option<String>,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// When it was created (the record's time, else the instance's).
    pub created_at: Option<String>,
    /// The idle mode.
    pub idle_mode: Option<IdleMode>,
    /// The idle timeout, seconds.
    pub idle_timeout_seconds: Option<u64>,
    /// The host record, when it could be read.
    #[serde(skip)]
    pub record: Option<HostRecord>,
}

impl HostInfo {
    /// What is known of a host before anything else is seen: its id, name, provider and
    /// state; no instance, addresses, record or record data.
    pub fn seen(
        id: HostId,
        name: Option<HostName>,
        provider: ProviderName,
        status: HostStatus,
    ) -> Self {
        Self {
            id,
            name,
            provider,
            status,
            instance_id: None,
            instance_status: None,
            vps_ssh: None,
            container_ssh: None,
            image: None,
            tags: BTreeMap::new(),
            created_at: None,
            idle_mode: None,
            idle_timeout_seconds: None,
            record: None,
        }
    }

    /// The name, else the id, for messages.
    pub fn display_name(&self) -> String {
        self.name
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| self.id.to_string())
    }

    /// Whether `name_or_id` names this host.
    pub fn matches(&self, name_or_id: &str) -> bool {
        self.id.as_str() == name_or_id
            || self.name.as_ref().is_some_and(|n| n.as_str() == name_or_id)
    }
}

/// A running host: its container, reached over the container's own pinned SSH, and its
/// VPS (for Docker), both pooled. Cloning shares the connections.
#[derive(Clone)]
pub struct Host {
    pub(crate) info: HostInfo,
    pub(crate) container: SshPool,
    pub(crate) vps: SshPool,
    pub(crate) container_key_path: PathBuf,
    pub(crate) known_hosts_path: PathBuf,
    pub(crate) container_alias: String,
    pub(crate) phases: Phases,
    pub(crate) warnings: Vec<String>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("id", &self.info.id)
            .field("name", &self.info.name)
            .field("container", &self.container)
            .field("vps", &self.vps)
            .finish()
    }
}

impl Host {
    /// The host's id.
    pub fn id(&self) -> &HostId {
        &self.info.id
    }

    /// What was seen of it when the handle was made.
    pub fn info(&self) -> &HostInfo {
        &self.info
    }

    /// How long each step took (for a handle returned by a create or a start).
    pub fn phases(&self) -> &Phases {
        &self.phases
    }

    /// Warnings of the operation that made the handle (packages installed at start, say).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Runs a command in the container (as root) over its pinned SSH connection. A non-zero
    /// exit is not an error: see [`Output::status`].
    pub async fn exec(&self, command: &Command) -> Result<Output, ProviderError> {
        self.container
            .run(command)
            .await
            .map_err(|e| self.step_error(Step::Lookup, e.into()))
    }

    /// Runs a command in the container with [`ExecIo`] attachments (streamed output).
    pub async fn execute(
        &self,
        command: &Command,
        io: ExecIo<'_>,
    ) -> Result<Output, ProviderError> {
        self.container
            .execute(command, io)
            .await
            .map_err(|e| self.step_error(Step::Lookup, e.into()))
    }

    /// The container's executor (pooled, pinned SSH).
    pub fn container_executor(&self) -> Arc<dyn Executor> {
        Arc::new(self.container.clone())
    }

    /// Docker on the VPS, over the pooled, pinned VPS connection.
    pub fn vps_docker(&self) -> Docker {
        Docker::new(Arc::new(self.vps.clone()))
    }

    /// An OpenSSH command line that opens a shell (or runs `command` with a terminal) in the
    /// container, pinned to the host's container key through `HostKeyAlias` (never
    /// trust-on-first-use).
    pub fn ssh_argv(&self, command: &[String]) -> Vec<String> {
        let target = self.container.target();
        let mut argv: Vec<String> = vec![
            "ssh".into(),
            "-i".into(),
            self.container_key_path.display().to_string(),
            "-p".into(),
            target.port().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts_path.display()),
            "-o".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
            "-o".into(),
            format!("HostKeyAlias={}", self.container_alias),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "PasswordAuthentication=no".into(),
            "-o".into(),
            "BatchMode=yes".into(),
        ];
        if !command.is_empty() {
            argv.push("-t".into());
        }
        argv.push(format!("root@{}", target.host()));
        if !command.is_empty() {
            argv.push("--".into());
            argv.push(docker_ssh::quote_argv(command));
        }
        argv
    }

    /// Closes both connections.
    pub async fn close(&self) {
        self.container.close().await;
        self.vps.close().await;
    }

    fn step_error(&self, step: Step, source: StepError) -> ProviderError {
        ProviderError::Step {
            host: self.info.display_name(),
            step,
            source,
        }
    }
}
