//! [`VpsDockerProviderConfig`]: every key of upstream's provider table (spec §4), read from
//! TOML with unknown keys refused, and validated with errors that name the key and the rule.

use std::time::Duration;

use host_store::{ActivitySource, IdleMode};
use serde::{Deserialize, Serialize};
use vps_primitives::{OsId, PlanId, RegionId};

/// How images are built on the VPS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    /// `docker build`.
    #[default]
    Docker,
    /// `depot build --load` (needs `DEPOT_TOKEN`).
    Depot,
}

/// What becomes of a host whose idle watcher stopped its container (`idle_action`).
///
/// The watcher runs inside the container and can only stop it; a stopped VPS is still
/// billed on most clouds. Hibernating needs the provider's API, whose credentials never go
/// to a VPS, so it is done from outside by
/// [`VpsDockerProvider::hibernate_idle_hosts`](crate::VpsDockerProvider::hibernate_idle_hosts)
/// (`mngr-vps sweep`), which does nothing unless this is `hibernate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdleAction {
    /// The container stays stopped; the VPS keeps running (and billing).
    #[default]
    Stop,
    /// The sweep hibernates the host: a provider snapshot of the VPS, then the instance is
    /// destroyed, so only the snapshot's storage is billed.
    Hibernate,
}

impl IdleAction {
    /// The TOML word: `stop` or `hibernate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Hibernate => "hibernate",
        }
    }
}

/// The packages a host container needs, with the check that says each is there
/// (upstream's list; Debian and apt-based images).
pub const DEFAULT_CONTAINER_PACKAGES: [&str; 8] = [
    "ca-certificates",
    "openssh-server",
    "tmux",
    "curl",
    "rsync",
    "git",
    "jq",
    "xxd",
];

/// The configuration of one provider instance (a `[providers.<name>]` table).
///
/// Defaults are upstream's (spec §4) except where upstream is wrong. Build it from TOML with
/// [`VpsDockerProviderConfig::from_toml_table`], or start from `default()` and set fields,
/// then [`validate`](Self::validate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VpsDockerProviderConfig {
    /// Which backend builds the instance (`local`, `vultr`, …).
    pub backend: Option<String>,
    /// The plugin providing the backend (default: the backend's name). Kept for upstream's
    /// tables; not used here.
    pub plugin: Option<String>,
    /// `false` disables the instance.
    pub is_enabled: Option<bool>,
    /// How long a destroyed host's record is kept (upstream's GC retention override).
    pub destroyed_host_persisted_seconds: Option<f64>,
    /// Minimum age before an online host may be collected (upstream's GC override).
    pub min_online_host_age_seconds: Option<f64>,
    /// mngr's data directory inside the container, a symlink to the host volume.
    pub host_dir: String,
    /// The image of a host's container when no `--image` and no build args are given.
    pub default_image: String,
    /// The image of the state container on each VPS (needs `sh` and coreutils).
    pub state_image: String,
    /// Idle timeout of a new host, in seconds (> 0).
    pub default_idle_timeout: u64,
    /// Idle mode of a new host.
    pub default_idle_mode: IdleMode,
    /// Activity sources of a new host when its idle mode is `CUSTOM` (upstream ignored
    /// this key; here it is what `CUSTOM` means).
    pub default_activity_sources: Vec<ActivitySource>,
    /// Budget of each wait for an SSH server (the VPS's, then the container's), seconds.
    pub ssh_connect_timeout: f64,
    /// Budget of the wait for a new VPS to become active, seconds.
    pub vps_boot_timeout: f64,
    /// Budget of the wait for cloud-init (and Docker) on a new VPS, seconds.
    pub docker_install_timeout: f64,
    /// How long listing waits for one VPS's SSH before calling it unreachable, seconds.
    pub discovery_connect_timeout: f64,
    /// How often the container's activity watcher checks for idleness, seconds.
    pub idle_check_interval: u64,
    /// What becomes of a host its idle watcher stopped: `stop` (it stays stopped) or
    /// `hibernate` (the idle sweep, run from outside the VPS, hibernates it).
    pub idle_action: IdleAction,
    /// The VPS port published to the container's sshd. Published on all interfaces of
    /// the VPS (the container's sshd takes pinned keys only; a cloud firewall opens only
    /// this port and 22).
    pub container_ssh_port: u16,
    /// Region when no `--vps-region=` is given.
    pub default_region: String,
    /// Plan when no `--vps-plan=` is given.
    pub default_plan: String,
    /// OS image id when no `--vps-os=` is given.
    pub default_os_id: u32,
    /// `docker run` arguments put before each host's own start args.
    pub default_start_args: Vec<String>,
    /// How images are built on the VPS.
    pub builder: Builder,
    /// Packages the host container must have; missing ones are installed at container
    /// start, with a warning that names them.
    pub container_packages: Vec<String>,
}

impl Default for VpsDockerProviderConfig {
    fn default() -> Self {
        Self {
            backend: None,
            plugin: None,
            is_enabled: None,
            destroyed_host_persisted_seconds: None,
            min_online_host_age_seconds: None,
            host_dir: "/mngr".into(),
            default_image: "debian:bookworm-slim".into(),
            state_image: "debian:bookworm-slim".into(),
            default_idle_timeout: 800,
            default_idle_mode: IdleMode::Io,
            default_activity_sources: IdleMode::Io.sources().unwrap_or_default(),
            ssh_connect_timeout: 60.0,
            vps_boot_timeout: 300.0,
            docker_install_timeout: 300.0,
            discovery_connect_timeout: 10.0,
            idle_check_interval: 15,
            idle_action: IdleAction::Stop,
            container_ssh_port: 2222,
            default_region: "ewr".into(),
            default_plan: "vc2-1c-1gb".into(),
            default_os_id: 2136,
            default_start_args: Vec::new(),
            builder: Builder::Docker,
            container_packages: DEFAULT_CONTAINER_PACKAGES.map(String::from).to_vec(),
        }
    }
}

/// A configuration value that breaks a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("provider config: `{key}` {rule}")]
pub struct ConfigError {
    /// The TOML key (as written, `_` spelling).
    pub key: String,
    /// What is wrong, and what is allowed.
    pub rule: String,
}

impl ConfigError {
    fn new(key: &str, rule: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            rule: rule.into(),
        }
    }
}

/// The keys [`VpsDockerProviderConfig`] reads, in the `_` spelling.
pub const KNOWN_KEYS: [&str; 24] = [
    "backend",
    "plugin",
    "is_enabled",
    "destroyed_host_persisted_seconds",
    "min_online_host_age_seconds",
    "host_dir",
    "default_image",
    "state_image",
    "default_idle_timeout",
    "default_idle_mode",
    "default_activity_sources",
    "ssh_connect_timeout",
    "vps_boot_timeout",
    "docker_install_timeout",
    "discovery_connect_timeout",
    "idle_check_interval",
    "idle_action",
    "container_ssh_port",
    "default_region",
    "default_plan",
    "default_os_id",
    "default_start_args",
    "builder",
    "container_packages",
];

impl VpsDockerProviderConfig {
    /// Reads a `[providers.<name>]` table. Keys may be spelled with `-` or `_`. Keys in
    /// `backend_keys` (the backend's own, such as Vultr's `api_key`) are returned, in the
    /// `_` spelling, for the backend's config; any other unknown key is an error naming it.
    /// The result is [validated](Self::validate).
    pub fn from_toml_table(
        table: &toml::Table,
        backend_keys: &[&str],
    ) -> Result<(Self, toml::Table), ConfigError> {
        let mut ours = toml::Table::new();
        let mut backend = toml::Table::new();
        for (key, value) in table {
            let normal = key.replace('-', "_");
            if KNOWN_KEYS.contains(&normal.as_str()) {
                if ours.insert(normal.clone(), value.clone()).is_some() {
                    return Err(ConfigError::new(
                        &normal,
                        "is given twice (`-` and `_` spellings)",
                    ));
                }
            } else if backend_keys.contains(&normal.as_str()) {
                backend.insert(normal, value.clone());
            } else {
                let mut known: Vec<&str> = KNOWN_KEYS.to_vec();
                known.extend_from_slice(backend_keys);
                return Err(ConfigError::new(
                    key,
                    format!("is not a known key; known keys: {}", known.join(", ")),
                ));
            }
        }
        let config: Self = ours.clone().try_into().map_err(|e: toml::de::Error| {
            ConfigError::new(&error_key(&ours), e.message().to_owned())
        })?;
        config.validate()?;
        Ok((config, backend))
    }

    /// Checks every rule: timeouts positive and finite, ports usable, paths absolute,
    /// names non-empty and not options.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("ssh_connect_timeout", self.ssh_connect_timeout),
            ("vps_boot_timeout", self.vps_boot_timeout),
            ("docker_install_timeout", self.docker_install_timeout),
            ("discovery_connect_timeout", self.discovery_connect_timeout),
        ] {
            if !(value.is_finite() && value > 0.0 && value <= 86_400.0) {
                return Err(ConfigError::new(
                    key,
                    format!("must be a number of seconds above 0 and at most 86400, not {value}"),
                ));
            }
        }
        if self.default_idle_timeout == 0 {
            return Err(ConfigError::new(
                "default_idle_timeout",
                "must be at least 1 second (use default_idle_mode = \"DISABLED\" to never idle out)",
            ));
        }
        if self.idle_check_interval == 0 || self.idle_check_interval > 3600 {
            return Err(ConfigError::new(
                "idle_check_interval",
                format!(
                    "must be from 1 to 3600 seconds, not {}",
                    self.idle_check_interval
                ),
            ));
        }
        if self.container_ssh_port == 0 || self.container_ssh_port == 22 {
            return Err(ConfigError::new(
                "container_ssh_port",
                format!(
                    "must be a TCP port from 1 to 65535 other than 22 (the VPS's own sshd), not {}",
                    self.container_ssh_port
                ),
            ));
        }
        let dir_ok = self.host_dir.starts_with('/')
            && self.host_dir.len() > 1
            && !self.host_dir.ends_with('/')
            && self
                .host_dir
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'))
            && !self.host_dir.split('/').any(|part| part == "..");
        if !dir_ok || self.host_dir == "/mngr-vol" {
            return Err(ConfigError::new(
                "host_dir",
                format!(
                    "must be an absolute path of letters, digits, `/ _ - .` (not `/`, not `/mngr-vol`, no `..`), not {:?}",
                    self.host_dir
                ),
            ));
        }
        for (key, image) in [
            ("default_image", &self.default_image),
            ("state_image", &self.state_image),
        ] {
            check_image_name(key, image)?;
        }
        RegionId::parse(&self.default_region)
            .map_err(|e| ConfigError::new("default_region", e.to_string()))?;
        PlanId::parse(&self.default_plan)
            .map_err(|e| ConfigError::new("default_plan", e.to_string()))?;
        for package in &self.container_packages {
            if !known_package(package) {
                return Err(ConfigError::new(
                    "container_packages",
                    format!(
                        "lists {package:?}, which has no check; known: {}",
                        DEFAULT_CONTAINER_PACKAGES.join(", ")
                    ),
                ));
            }
        }
        if self.default_idle_mode == IdleMode::Custom && self.default_activity_sources.is_empty() {
            return Err(ConfigError::new(
                "default_activity_sources",
                "must list at least one source when default_idle_mode is CUSTOM",
            ));
        }
        Ok(())
    }

    /// [`Self::ssh_connect_timeout`] as a duration.
    pub fn ssh_connect(&self) -> Duration {
        Duration::from_secs_f64(self.ssh_connect_timeout)
    }

    /// [`Self::vps_boot_timeout`] as a duration.
    pub fn vps_boot(&self) -> Duration {
        Duration::from_secs_f64(self.vps_boot_timeout)
    }

    /// [`Self::docker_install_timeout`] as a duration.
    pub fn docker_install(&self) -> Duration {
        Duration::from_secs_f64(self.docker_install_timeout)
    }

    /// [`Self::discovery_connect_timeout`] as a duration.
    pub fn discovery_connect(&self) -> Duration {
        Duration::from_secs_f64(self.discovery_connect_timeout)
    }

    /// The default OS id as the typed id.
    pub fn os_id(&self) -> OsId {
        OsId(self.default_os_id)
    }
}

/// An image reference Docker accepts and that cannot be read as an option.
pub(crate) fn check_image_name(key: &str, image: &str) -> Result<(), ConfigError> {
    let ok = !image.is_empty()
        && image.len() <= 255
        && !image.starts_with('-')
        && image.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b':' | b'.' | b'_' | b'-' | b'@')
        });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!(
                "must be a Docker image reference (letters, digits, `/ : . _ - @`, not starting with `-`), not {image:?}"
            ),
        ))
    }
}

fn known_package(package: &str) -> bool {
    DEFAULT_CONTAINER_PACKAGES.contains(&package)
}

/// The key a TOML error is about: serde's messages ("unknown variant `x`, expected …",
/// "invalid type: string \"x\", expected u16") do not say it, so each key is read alone
/// and the first one that fails is it.
fn error_key(table: &toml::Table) -> String {
    table
        .iter()
        .find(|(key, value)| {
            let mut one = toml::Table::new();
            one.insert((*key).clone(), (*value).clone());
            one.try_into::<VpsDockerProviderConfig>().is_err()
        })
        .map(|(key, _)| key.clone())
        .unwrap_or_else(|| "<table>".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(VpsDockerProviderConfig, toml::Table), ConfigError> {
        let table: toml::Table = text.parse().expect("valid TOML");
        VpsDockerProviderConfig::from_toml_table(&table, &["api_key", "api_base_url"])
    }

    #[test]
    fn defaults_are_upstreams_and_valid() {
        let c = VpsDockerProviderConfig::default();
        c.validate().expect("defaults are valid");
        assert_eq!(c.host_dir, "/mngr");
        assert_eq!(c.default_idle_timeout, 800);
        assert_eq!(c.container_ssh_port, 2222);
        assert_eq!(c.default_os_id, 2136);
        assert_eq!(c.ssh_connect(), Duration::from_secs(60));
        assert_eq!(c.vps_boot(), Duration::from_secs(300));
    }

    #[test]
    fn both_spellings_and_backend_keys_pass_through() {
        let (c, backend) = parse(
            r#"
            backend = "vultr"
            default-plan = "vc2-2c-4gb"
            container_ssh_port = 2022
            default_idle_mode = "SSH"
            api_key = "secret"
            "#,
        )
        .expect("valid");
        assert_eq!(c.backend.as_deref(), Some("vultr"));
        assert_eq!(c.default_plan, "vc2-2c-4gb");
        assert_eq!(c.container_ssh_port, 2022);
        assert_eq!(c.default_idle_mode, IdleMode::Ssh);
        assert_eq!(
            backend.get("api_key").and_then(|v| v.as_str()),
            Some("secret")
        );
        assert_eq!(backend.len(), 1);
    }

    #[test]
    fn unknown_keys_are_errors_that_name_them() {
        let e = parse("default_imag = \"x\"").expect_err("unknown key");
        assert_eq!(e.key, "default_imag");
        assert!(e.rule.contains("default_image"), "{e}");
    }

    #[test]
    fn a_key_given_in_both_spellings_is_an_error() {
        let e = parse("host_dir = \"/a\"\nhost-dir = \"/b\"").expect_err("twice");
        assert_eq!(e.key, "host_dir");
    }

    #[test]
    fn each_rule_names_its_key() {
        for (text, key) in [
            ("ssh_connect_timeout = 0.0", "ssh_connect_timeout"),
            ("vps_boot_timeout = -1.0", "vps_boot_timeout"),
            ("docker_install_timeout = nan", "docker_install_timeout"),
            (
                "discovery_connect_timeout = inf",
                "discovery_connect_timeout",
            ),
            ("default_idle_timeout = 0", "default_idle_timeout"),
            ("idle_check_interval = 0", "idle_check_interval"),
            ("container_ssh_port = 22", "container_ssh_port"),
            ("container_ssh_port = 0", "container_ssh_port"),
            ("host_dir = \"relative\"", "host_dir"),
            ("host_dir = \"/a/../b\"", "host_dir"),
            ("host_dir = \"/a b\"", "host_dir"),
            ("default_image = \"-o/etc/passwd\"", "default_image"),
            ("state_image = \"a b\"", "state_image"),
            ("default_region = \"\"", "default_region"),
            ("default_plan = \"-x\"", "default_plan"),
            ("container_packages = [\"emacs\"]", "container_packages"),
            (
                "default_idle_mode = \"CUSTOM\"\ndefault_activity_sources = []",
                "default_activity_sources",
            ),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    #[test]
    fn type_errors_name_the_key() {
        let e = parse("default_plan = \"vc2-2c-4gb\"\ncontainer_ssh_port = \"x\"")
            .expect_err("wrong type");
        assert_eq!(e.key, "container_ssh_port", "{e}");
        assert!(e.rule.contains("u16"), "{e}");
        let e = parse("default_idle_mode = \"SOMETIMES\"").expect_err("bad mode");
        assert_eq!(e.key, "default_idle_mode", "{e}");
        assert!(e.rule.contains("SOMETIMES"), "{e}");
    }

    #[test]
    fn idle_action_is_stop_or_hibernate() {
        assert_eq!(
            VpsDockerProviderConfig::default().idle_action,
            IdleAction::Stop
        );
        let (c, _) = parse("idle_action = \"hibernate\"").expect("valid");
        assert_eq!(c.idle_action, IdleAction::Hibernate);
        let (c, _) = parse("idle-action = \"stop\"").expect("valid");
        assert_eq!(c.idle_action, IdleAction::Stop);
        for bad in ["\"sleep\"", "\"Hibernate\"", "true", "1"] {
            let text = format!("backend = \"local\"\nidle_action = {bad}");
            let e = parse(&text).expect_err(&text);
            assert_eq!(e.key, "idle_action", "{text}: {e}");
            assert!(
                e.to_string().starts_with("provider config: `idle_action` "),
                "{e}"
            );
        }
        let e = parse("idle_action = \"sleep\"").expect_err("unknown word");
        assert!(
            e.rule.contains("stop") && e.rule.contains("hibernate"),
            "the rule lists the words: {e}"
        );
    }
}
