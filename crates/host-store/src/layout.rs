//! Names and paths on the VPS: the state container, its volume, and where records live.

use std::fmt;

use vps_primitives::{AgentId, HostId, InvalidValue};

/// Where the state volume is mounted in the state container.
pub const STATE_MOUNT: &str = "/mngr-state";

/// The directory of host records, inside the state container.
pub const HOST_STATE_DIR: &str = "/mngr-state/host_state";

/// The main process of the state container: idles, and exits at once on `docker stop`.
pub const STATE_ENTRYPOINT: &str = "trap 'exit 0' TERM; tail -f /dev/null & wait";

/// The default name prefix of mngr objects (upstream's `prefix`, env `MNGR_PREFIX`).
pub const DEFAULT_PREFIX: &str = "mngr-";

/// The name of the state container, which is also the name of its volume:
/// `<prefix>docker-state-<user_id>`, e.g. `mngr-docker-state-0123…`.
///
/// One per mngr profile (`user_id`) on a VPS: another profile uses another container and
/// does not see these records.
///
/// ```
/// use host_store::StateContainerName;
/// let name = StateContainerName::new("mngr-", "0123456789abcdef0123456789abcdef")?;
/// assert_eq!(name.as_str(), "mngr-docker-state-0123456789abcdef0123456789abcdef");
/// assert!(StateContainerName::new("mngr-", "me; reboot").is_err());
/// # Ok::<(), vps_primitives::InvalidValue>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateContainerName(String);

impl StateContainerName {
    /// Longest accepted name.
    pub const MAX_LEN: usize = 128;

    /// `<prefix>docker-state-<user_id>`. The user id must be 1 to 64 ASCII letters,
    /// digits, `-` or `_` (upstream's are 32 hex digits); the prefix may be empty.
    pub fn new(prefix: &str, user_id: &str) -> Result<Self, InvalidValue> {
        let user_ok = !user_id.is_empty()
            && user_id.len() <= 64
            && user_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !user_ok {
            return Err(InvalidValue::new(
                "mngr user id",
                user_id,
                "use 1 to 64 ASCII letters, digits, `-` or `_`",
            ));
        }
        Self::parse(&format!("{prefix}docker-state-{user_id}"))
    }

    /// Accepts any valid Docker container (and volume) name: 2 to 128 characters from
    /// `A-Z a-z 0-9 _ . -`, starting with a letter or digit.
    pub fn parse(name: &str) -> Result<Self, InvalidValue> {
        let bytes = name.as_bytes();
        let ok = bytes.len() >= 2
            && bytes.len() <= Self::MAX_LEN
            && bytes[0].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidValue::new(
                "state container name",
                name,
                "use 2 to 128 characters from `A-Z a-z 0-9 _ . -`, starting with a letter or digit",
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StateContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StateContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateContainerName({:?})", self.0)
    }
}

/// `/mngr-state/host_state/<host_id>.json`.
pub fn host_record_path(host: &HostId) -> String {
    format!("{HOST_STATE_DIR}/{host}.json")
}

/// `/mngr-state/host_state/<host_id>`: the host's agent records.
pub fn agent_dir(host: &HostId) -> String {
    format!("{HOST_STATE_DIR}/{host}")
}

/// `/mngr-state/host_state/<host_id>/<agent_id>.json`.
pub fn agent_record_path(host: &HostId, agent: &AgentId) -> String {
    format!("{HOST_STATE_DIR}/{host}/{agent}.json")
}
