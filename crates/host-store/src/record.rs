//! The records kept in the state volume: [`HostRecord`] (with [`CertifiedHostData`],
//! [`VpsHostConfig`], [`SnapshotRecord`]) and [`AgentRecord`].
//!
//! Field names and order are upstream's (`VpsDockerHostRecord`, see the crate docs), plus
//! a `schema_version`. Every object keeps the fields it does not know in an `extra` map and
//! writes them back, so a record written by a newer version survives a rewrite by this
//! one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use docker_ssh::{KeyError, PublicKey, parse_public_key, public_key_line};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use vps_primitives::{
    AgentId, HostId, HostName, HostState, OsId, PlanId, RegionId, SshKeyId, VpsInstanceId,
};

use crate::Timestamp;

/// The record format this version writes. Records without a `schema_version` field
/// (written by upstream) are read as version 1: the format is the same.
pub const SCHEMA_VERSION: u32 = 1;

/// Default idle timeout of a new host, in seconds (upstream's default).
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 3600;

/// Something that counts as activity for the idle timeout.
///
/// Unknown names (from a newer version) are kept as [`ActivitySource::Other`] and written
/// back unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActivitySource {
    /// A user typed into an agent's terminal.
    User,
    /// An agent produced output.
    Agent,
    /// An SSH session to the host.
    Ssh,
    /// An agent was created.
    Create,
    /// An agent was started.
    Start,
    /// The host booted.
    Boot,
    /// An agent's process is alive.
    Process,
    /// A source this version does not know, kept verbatim.
    Other(String),
}

impl ActivitySource {
    /// The upper-case wire name (`"USER"`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::User => "USER",
            Self::Agent => "AGENT",
            Self::Ssh => "SSH",
            Self::Create => "CREATE",
            Self::Start => "START",
            Self::Boot => "BOOT",
            Self::Process => "PROCESS",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for ActivitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActivitySource {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "USER" => Self::User,
            "AGENT" => Self::Agent,
            "SSH" => Self::Ssh,
            "CREATE" => Self::Create,
            "START" => Self::Start,
            "BOOT" => Self::Boot,
            "PROCESS" => Self::Process,
            other => Self::Other(other.to_owned()),
        })
    }
}

impl Serialize for ActivitySource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ActivitySource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        let Ok(source) = name.parse();
        Ok(source)
    }
}

/// A named set of activity sources. Upstream writes it next to the sources
/// (`idle_mode`) but never reads it back: it is derived from
/// [`CertifiedHostData::activity_sources`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IdleMode {
    /// User, agent and SSH activity, creates, starts and boots.
    Io,
    /// User and SSH activity, creates, starts and boots.
    User,
    /// Agent and SSH activity, creates, starts and boots.
    Agent,
    /// SSH activity, creates, starts and boots.
    Ssh,
    /// Creates only.
    Create,
    /// Boots only.
    Boot,
    /// Starts and boots.
    Start,
    /// Creates, starts, boots and live agent processes.
    Run,
    /// Nothing: the host never idles out.
    Disabled,
    /// Any other set of sources.
    Custom,
}

impl IdleMode {
    /// The preset modes, in the order they are matched.
    pub const PRESETS: [IdleMode; 9] = [
        Self::Io,
        Self::User,
        Self::Agent,
        Self::Ssh,
        Self::Create,
        Self::Boot,
        Self::Start,
        Self::Run,
        Self::Disabled,
    ];

    /// The sources of a preset mode; `None` for [`IdleMode::Custom`].
    pub fn sources(self) -> Option<Vec<ActivitySource>> {
        use ActivitySource as S;
        Some(match self {
            Self::Io => vec![S::User, S::Agent, S::Ssh, S::Create, S::Start, S::Boot],
            Self::User => vec![S::User, S::Ssh, S::Create, S::Start, S::Boot],
            Self::Agent => vec![S::Agent, S::Ssh, S::Create, S::Start, S::Boot],
            Self::Ssh => vec![S::Ssh, S::Create, S::Start, S::Boot],
            Self::Create => vec![S::Create],
            Self::Boot => vec![S::Boot],
            Self::Start => vec![S::Start, S::Boot],
            Self::Run => vec![S::Create, S::Start, S::Boot, S::Process],
            Self::Disabled => vec![],
            Self::Custom => return None,
        })
    }

    /// The preset whose set of sources is exactly `sources` (order and repeats do not
    /// matter), else [`IdleMode::Custom`].
    pub fn from_sources(sources: &[ActivitySource]) -> Self {
        use std::collections::BTreeSet;
        let given: BTreeSet<&ActivitySource> = sources.iter().collect();
        Self::PRESETS
            .into_iter()
            .find(|mode| {
                mode.sources()
                    .is_some_and(|preset| preset.iter().collect::<BTreeSet<_>>() == given)
            })
            .unwrap_or(Self::Custom)
    }
}

/// One snapshot (a `docker commit` of the host container) listed in a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The image id, e.g. `sha256:…`.
    pub id: String,
    /// The image tag, e.g. `mngr-snapshot-host-…-1746964800`.
    pub name: String,
    /// When it was taken. A plain string, as upstream writes it (Python `isoformat()`).
    pub created_at: String,
    /// Fields this version does not know, written back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The canonical metadata of a host (upstream's `CertifiedHostData`, the host's
/// `data.json`), as embedded in its [`HostRecord`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "CertifiedHostDataWire", from = "CertifiedHostDataWire")]
pub struct CertifiedHostData {
    /// Idle timeout read by the in-container watcher.
    pub idle_timeout_seconds: u64,
    /// Sources counted as activity.
    pub activity_sources: Vec<ActivitySource>,
    /// When the host was created.
    pub created_at: Timestamp,
    /// When this data last changed.
    pub updated_at: Timestamp,
    /// Hard maximum age from boot, in seconds.
    pub max_host_age: Option<u64>,
    /// Plugin data, by plugin name.
    pub plugin: Map<String, Value>,
    /// The image the host runs.
    pub image: Option<String>,
    /// Directories mngr created for work.
    pub generated_work_dirs: Vec<String>,
    /// Directories mngr created for sources.
    pub generated_source_dirs: Vec<String>,
    /// The host's id.
    pub host_id: HostId,
    /// The host's name.
    pub host_name: HostName,
    /// User tags.
    pub user_tags: BTreeMap<String, String>,
    /// Snapshots of the host container, oldest first.
    pub snapshots: Vec<SnapshotRecord>,
    /// Prefix of the tmux sessions of the host's agents.
    pub tmux_session_prefix: Option<String>,
    /// Why the host is not running: `PAUSED` (idle), `STOPPED`, `DESTROYED`; `None` after
    /// a crash (or while running).
    pub stop_reason: Option<HostState>,
    /// Why creating the host failed.
    pub failure_reason: Option<String>,
    /// The image build log of a failed create.
    pub build_log: Option<String>,
    /// Fields this version does not know, written back unchanged.
    pub extra: Map<String, Value>,
}

impl CertifiedHostData {
    /// Data for a new host: upstream's defaults (idle timeout 3600 s, `IO` sources),
    /// created and updated at `now`.
    pub fn new(host_id: HostId, host_name: HostName, now: Timestamp) -> Self {
        Self {
            idle_timeout_seconds: DEFAULT_IDLE_TIMEOUT_SECONDS,
            activity_sources: IdleMode::Io.sources().unwrap_or_default(),
            created_at: now,
            updated_at: now,
            max_host_age: None,
            plugin: Map::new(),
            image: None,
            generated_work_dirs: Vec::new(),
            generated_source_dirs: Vec::new(),
            host_id,
            host_name,
            user_tags: BTreeMap::new(),
            snapshots: Vec::new(),
            tmux_session_prefix: None,
            stop_reason: None,
            failure_reason: None,
            build_log: None,
            extra: Map::new(),
        }
    }

    /// The idle mode the activity sources amount to.
    pub fn idle_mode(&self) -> IdleMode {
        IdleMode::from_sources(&self.activity_sources)
    }
}

fn week_ago() -> Timestamp {
    let now = Timestamp::now();
    now.checked_add(-time::Duration::weeks(1)).unwrap_or(now)
}

fn day_ago() -> Timestamp {
    let now = Timestamp::now();
    now.checked_add(-time::Duration::days(1)).unwrap_or(now)
}

fn default_idle_timeout() -> u64 {
    DEFAULT_IDLE_TIMEOUT_SECONDS
}

fn default_sources() -> Vec<ActivitySource> {
    IdleMode::Io.sources().unwrap_or_default()
}

/// The on-disk shape of [`CertifiedHostData`]: the same fields, plus the derived
/// `idle_mode`, which is written (last, as upstream does) and ignored on read.
#[derive(Serialize, Deserialize)]
struct CertifiedHostDataWire {
    #[serde(default = "default_idle_timeout")]
    idle_timeout_seconds: u64,
    #[serde(default = "default_sources")]
    activity_sources: Vec<ActivitySource>,
    // Upstream back-compat: records from before these fields existed.
    #[serde(default = "week_ago")]
    created_at: Timestamp,
    #[serde(default = "day_ago")]
    updated_at: Timestamp,
    #[serde(default)]
    max_host_age: Option<u64>,
    #[serde(default)]
    plugin: Map<String, Value>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    generated_work_dirs: Vec<String>,
    #[serde(default)]
    generated_source_dirs: Vec<String>,
    host_id: HostId,
    host_name: HostName,
    #[serde(default)]
    user_tags: BTreeMap<String, String>,
    #[serde(default)]
    snapshots: Vec<SnapshotRecord>,
    #[serde(default)]
    tmux_session_prefix: Option<String>,
    #[serde(default)]
    stop_reason: Option<HostState>,
    #[serde(default)]
    failure_reason: Option<String>,
    #[serde(default)]
    build_log: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idle_mode: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl From<CertifiedHostData> for CertifiedHostDataWire {
    fn from(d: CertifiedHostData) -> Self {
        let idle_mode = serde_json::to_value(d.idle_mode()).ok();
        Self {
            idle_timeout_seconds: d.idle_timeout_seconds,
            activity_sources: d.activity_sources,
            created_at: d.created_at,
            updated_at: d.updated_at,
            max_host_age: d.max_host_age,
            plugin: d.plugin,
            image: d.image,
            generated_work_dirs: d.generated_work_dirs,
            generated_source_dirs: d.generated_source_dirs,
            host_id: d.host_id,
            host_name: d.host_name,
            user_tags: d.user_tags,
            snapshots: d.snapshots,
            tmux_session_prefix: d.tmux_session_prefix,
            stop_reason: d.stop_reason,
            failure_reason: d.failure_reason,
            build_log: d.build_log,
            idle_mode,
            extra: d.extra,
        }
    }
}

impl From<CertifiedHostDataWire> for CertifiedHostData {
    fn from(w: CertifiedHostDataWire) -> Self {
        // `idle_mode` is derived: ignored on read, recomputed on write.
        Self {
            idle_timeout_seconds: w.idle_timeout_seconds,
            activity_sources: w.activity_sources,
            created_at: w.created_at,
            updated_at: w.updated_at,
            max_host_age: w.max_host_age,
            plugin: w.plugin,
            image: w.image,
            generated_work_dirs: w.generated_work_dirs,
            generated_source_dirs: w.generated_source_dirs,
            host_id: w.host_id,
            host_name: w.host_name,
            user_tags: w.user_tags,
            snapshots: w.snapshots,
            tmux_session_prefix: w.tmux_session_prefix,
            stop_reason: w.stop_reason,
            failure_reason: w.failure_reason,
            build_log: w.build_log,
            extra: w.extra,
        }
    }
}

/// What was ordered from the provider and what runs on the VPS (upstream's
/// `VpsHostConfig`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VpsHostConfig {
    /// The provider's id of the VPS (what a destroy deletes).
    pub vps_instance_id: VpsInstanceId,
    /// The region it was ordered in.
    pub region: RegionId,
    /// The plan (machine size).
    pub plan: PlanId,
    /// The operating-system image.
    pub os_id: OsId,
    /// The effective extra `docker run` arguments of the host container.
    #[serde(default)]
    pub start_args: Vec<String>,
    /// The image the container runs (the build tag when built on the VPS).
    #[serde(default)]
    pub image: Option<String>,
    /// The host container's name on the VPS.
    pub container_name: String,
    /// The host volume's name on the VPS.
    pub volume_name: String,
    /// The provider's id of the uploaded SSH key (deleted on destroy).
    #[serde(default)]
    pub vps_ssh_key_id: Option<SshKeyId>,
    /// Fields this version does not know, written back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_schema_version() -> u32 {
    SCHEMA_VERSION
}

/// Everything the toolkit keeps about one host, stored as
/// `/mngr-state/host_state/<host_id>.json` in the VPS's state volume.
///
/// The VPS's and the container's SSH host keys are the *pinned* keys: a connection that
/// is offered any other key is refused.
///
/// ```
/// use host_store::{CertifiedHostData, HostRecord, Timestamp};
/// use vps_primitives::{HostId, HostName};
///
/// let data = CertifiedHostData::new(HostId::generate(), HostName::parse("my-agent")?, Timestamp::now());
/// let mut record = HostRecord::new(data);
/// record.vps_ip = Some("203.0.113.7".parse()?);
/// let json = record.to_json()?;
/// assert_eq!(HostRecord::from_json(&json)?, record);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The record format version (see [`SCHEMA_VERSION`]). A record read from a newer
    /// version keeps its number when written back, with all its fields.
    #[serde(default = "default_schema_version")]
    pub schema_version: u32,
    /// The host's canonical metadata.
    pub certified_host_data: CertifiedHostData,
    /// The VPS's public address.
    #[serde(default)]
    pub vps_ip: Option<IpAddr>,
    /// The VPS's pinned SSH host public key (`ssh-ed25519 AAAA…`).
    #[serde(default)]
    pub ssh_host_public_key: Option<String>,
    /// The host container's pinned SSH host public key.
    #[serde(default)]
    pub container_ssh_host_public_key: Option<String>,
    /// What was ordered and what runs on the VPS.
    #[serde(default)]
    pub config: Option<VpsHostConfig>,
    /// The id `docker run` printed for the host container.
    #[serde(default)]
    pub container_id: Option<String>,
    /// Fields this version does not know, written back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl HostRecord {
    /// A record with only the certified data (no VPS yet).
    pub fn new(certified_host_data: CertifiedHostData) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            certified_host_data,
            vps_ip: None,
            ssh_host_public_key: None,
            container_ssh_host_public_key: None,
            config: None,
            container_id: None,
            extra: Map::new(),
        }
    }

    /// The host's id.
    pub fn host_id(&self) -> &HostId {
        &self.certified_host_data.host_id
    }

    /// The VPS's pinned host key, parsed (`Ok(None)` if the record has none).
    pub fn vps_host_key(&self) -> Result<Option<PublicKey>, KeyError> {
        self.ssh_host_public_key
            .as_deref()
            .map(parse_public_key)
            .transpose()
    }

    /// The host container's pinned host key, parsed (`Ok(None)` if the record has none).
    pub fn container_host_key(&self) -> Result<Option<PublicKey>, KeyError> {
        self.container_ssh_host_public_key
            .as_deref()
            .map(parse_public_key)
            .transpose()
    }

    /// Records these pinned host keys (as OpenSSH public key lines).
    pub fn set_host_keys(&mut self, vps: Option<&PublicKey>, container: Option<&PublicKey>) {
        self.ssh_host_public_key = vps.map(public_key_line);
        self.container_ssh_host_public_key = container.map(public_key_line);
    }

    /// The record as stored: JSON with 2-space indentation and a final newline.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        to_stored_json(self)
    }

    /// Parses a stored record.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// What a host's agent keeps in the state volume, stored as
/// `/mngr-state/host_state/<host_id>/<agent_id>.json`, so agents can be listed while the
/// host is offline.
///
/// The agent's `data.json` is owned by mngr core and stored verbatim: only `id` and `name`
/// are checked; every other field (`type`, `work_dir`, `create_time`, `command`, …) is kept
/// in [`AgentRecord::data`] in its order.
///
/// ```
/// use host_store::AgentRecord;
/// let json = br#"{"id": "agent-00112233445566778899aabbccddeeff", "name": "fixer", "type": "claude"}"#;
/// let agent = AgentRecord::from_json(json)?;
/// assert_eq!(agent.name, "fixer");
/// assert_eq!(agent.data["type"], "claude");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The agent's id; also its file name.
    pub id: AgentId,
    /// The agent's name (not empty).
    #[serde(deserialize_with = "non_empty")]
    pub name: String,
    /// Every other field, verbatim.
    #[serde(flatten)]
    pub data: Map<String, Value>,
}

fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let s = String::deserialize(deserializer)?;
    if s.is_empty() {
        return Err(serde::de::Error::custom("the agent name is empty"));
    }
    Ok(s)
}

impl AgentRecord {
    /// An agent record with no other data.
    pub fn new(id: AgentId, name: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            data: Map::new(),
        }
    }

    /// The record as stored: JSON with 2-space indentation and a final newline.
    ///
    /// Fails if [`AgentRecord::data`] has an `id` or `name` key (they would be written
    /// twice): build records from a whole dict with [`AgentRecord::from_value`].
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        if let Some(key) = ["id", "name"]
            .into_iter()
            .find(|k| self.data.contains_key(*k))
        {
            return Err(serde::ser::Error::custom(format_args!(
                "agent {}: `{key}` is set in the extra data too; set it only on the record",
                self.id
            )));
        }
        to_stored_json(self)
    }

    /// Builds a record from an agent's whole `data.json` dict (as mngr core hands it
    /// over): `id` and `name` are taken out and checked, the rest is kept verbatim.
    pub fn from_value(data: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(data)
    }

    /// Parses a stored agent record.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

fn to_stored_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}
