//! Where things live and which provider instance a command uses, resolved from the
//! environment, `config.toml` and the flags, with where each value came from. Pure: the
//! environment is read once into [`Env`], the file's text is passed in.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vps_docker_provider::{KNOWN_KEYS, VpsDockerProviderConfig};
use vps_primitives::ProviderName;

use crate::error::CliError;

/// The environment variable that moves config, keys and data.
pub const HOME_ENV: &str = "MNGR_VPS_HOME";
/// The environment variable that chooses the provider instance when `--provider` is not given.
pub const PROVIDER_ENV: &str = "MNGR_VPS_PROVIDER";
/// The test-run id; when set, the local backend labels everything with it.
pub const TEST_RUN_ENV: &str = "MNGR_TEST_RUN_ID";
/// The label key that marks what a test run created (cleaned up by label).
pub const TEST_RUN_LABEL: &str = "com.imbue.mngr.test-run";
/// Vultr's API key variable (read by the `vultr` crate).
pub const VULTR_KEY_ENV: &str = "VULTR_API_KEY";
/// Hetzner's API token variable (read by the `hetzner` crate).
pub const HETZNER_TOKEN_ENV: &str = hetzner::API_TOKEN_ENV;

/// The provider instance used when none is chosen.
pub const DEFAULT_PROVIDER: &str = "local";

/// The keys of a `[providers.<name>]` table that belong to the `local` backend.
pub const LOCAL_BACKEND_KEYS: [&str; 1] = ["account"];

/// What the process environment says, read once.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `$MNGR_VPS_HOME`, made absolute.
    pub mngr_home: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config: Option<PathBuf>,
    /// `$XDG_DATA_HOME`.
    pub xdg_data: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$MNGR_VPS_PROVIDER`.
    pub provider: Option<String>,
    /// `$MNGR_TEST_RUN_ID`.
    pub test_run: Option<String>,
    /// Whether `$VULTR_API_KEY` is set and non-empty (its value is never kept here).
    pub vultr_key_set: bool,
    /// Whether `$HCLOUD_TOKEN` is set and non-empty (its value is never kept here).
    pub hetzner_token_set: bool,
}

impl Env {
    /// Reads the process environment. Empty variables count as unset.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let path = |name: &str| {
            var(name).map(|v| std::path::absolute(&v).unwrap_or_else(|_| PathBuf::from(v)))
        };
        Self {
            mngr_home: path(HOME_ENV),
            xdg_config: path("XDG_CONFIG_HOME"),
            xdg_data: path("XDG_DATA_HOME"),
            home: path("HOME"),
            provider: var(PROVIDER_ENV).map(|v| v.to_string_lossy().into_owned()),
            test_run: var(TEST_RUN_ENV).map(|v| v.to_string_lossy().into_owned()),
            vultr_key_set: var(VULTR_KEY_ENV).is_some(),
            hetzner_token_set: var(HETZNER_TOKEN_ENV).is_some(),
        }
    }
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The default of the provider's backend (the local backend's images, say).
    BackendDefault(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// The config file.
    ConfigFile,
    /// A command-line flag.
    Flag(&'static str),
    /// Derived from another value.
    Derived(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::BackendDefault(b) => write!(f, "default ({b} backend)"),
            Self::Env(name) => write!(f, "env {name}"),
            Self::ConfigFile => f.write_str("config file"),
            Self::Flag(name) => write!(f, "flag {name}"),
            Self::Derived(from) => write!(f, "derived from {from}"),
        }
    }
}

/// The directories of this user (or of `$MNGR_VPS_HOME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// Holds `config.toml`.
    pub config_dir: PathBuf,
    /// Holds `keys/<provider>/`.
    pub data_dir: PathBuf,
    /// Where the directories came from.
    pub origin: Origin,
}

impl Paths {
    /// `$MNGR_VPS_HOME` for both, else `$XDG_CONFIG_HOME/mngr-vps` and
    /// `$XDG_DATA_HOME/mngr-vps`, falling back to `~/.config` and `~/.local/share`.
    pub fn resolve(env: &Env) -> Result<Self, CliError> {
        if let Some(home) = &env.mngr_home {
            return Ok(Self {
                config_dir: home.clone(),
                data_dir: home.clone(),
                origin: Origin::Env(HOME_ENV),
            });
        }
        let fallback = |sub: &str| {
            env.home.as_ref().map(|h| h.join(sub)).ok_or_else(|| {
                CliError::Usage(format!(
                    "cannot find a home directory: set {HOME_ENV} (or HOME, or the XDG_CONFIG_HOME and XDG_DATA_HOME variables)"
                ))
            })
        };
        let (config_base, config_origin) = match &env.xdg_config {
            Some(dir) => (dir.clone(), Origin::Env("XDG_CONFIG_HOME")),
            None => (fallback(".config")?, Origin::Default),
        };
        let data_base = match &env.xdg_data {
            Some(dir) => dir.clone(),
            None => fallback(".local/share")?,
        };
        Ok(Self {
            config_dir: config_base.join("mngr-vps"),
            data_dir: data_base.join("mngr-vps"),
            origin: config_origin,
        })
    }

    /// `config.toml` in the config directory.
    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    /// The key directory of a provider instance.
    pub fn key_dir(&self, provider: &ProviderName) -> PathBuf {
        self.data_dir.join("keys").join(provider.as_str())
    }
}

/// The parsed `config.toml` (no `Debug`: a table may hold an API key).
#[derive(Clone, Default, PartialEq)]
pub struct ConfigFile {
    /// `default_provider`.
    pub default_provider: Option<String>,
    /// `[providers.<name>]` tables, as written.
    pub providers: BTreeMap<String, toml::Table>,
}

impl ConfigFile {
    /// Parses the file's text. Unknown top-level keys are refused, naming the known ones.
    pub fn parse(text: &str, path: &Path) -> Result<Self, CliError> {
        let bad = |what: String| CliError::Usage(format!("{}: {what}", path.display()));
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.message().to_owned()))?;
        let mut file = Self::default();
        for (key, value) in table {
            match key.replace('-', "_").as_str() {
                "default_provider" => {
                    let name = value
                        .as_str()
                        .ok_or_else(|| bad("`default_provider` must be a string".into()))?;
                    file.default_provider = Some(name.to_owned());
                }
                "providers" => {
                    let providers = value.as_table().ok_or_else(|| {
                        bad("`providers` must be a table of `[providers.<name>]` tables".into())
                    })?;
                    for (name, table) in providers {
                        let table = table
                            .as_table()
                            .ok_or_else(|| bad(format!("`providers.{name}` must be a table")))?;
                        file.providers.insert(name.clone(), table.clone());
                    }
                }
                _ => {
                    return Err(bad(format!(
                        "unknown key `{key}`; known keys: default_provider, providers"
                    )));
                }
            }
        }
        Ok(file)
    }
}

/// Which backend builds a provider instance's VPSes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `local-vps`: containers on the local Docker engine.
    Local,
    /// Vultr.
    Vultr,
    /// Hetzner Cloud.
    Hetzner,
}

impl Backend {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "local" => Some(Self::Local),
            "vultr" => Some(Self::Vultr),
            "hetzner" => Some(Self::Hetzner),
            _ => None,
        }
    }

    /// `local`, `vultr` or `hetzner`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Vultr => "vultr",
            Self::Hetzner => "hetzner",
        }
    }
}

/// One resolved setting: key, shown value, origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The key (`provider`, `providers.local.default_image`, …).
    pub key: String,
    /// The value as shown (secrets redacted).
    pub value: String,
    /// Where it came from.
    pub origin: Origin,
}

/// The provider instance a command uses, with every value's origin. Its `Debug` names the
/// backend's keys, never their values (one may be an API key).
#[derive(Clone)]
pub struct Resolved {
    /// The directories.
    pub paths: Paths,
    /// Whether `config.toml` exists.
    pub config_file_exists: bool,
    /// The provider instance's name.
    pub provider: ProviderName,
    /// Where the name came from.
    pub provider_origin: Origin,
    /// Its backend.
    pub backend: Backend,
    /// The lifecycle configuration.
    pub config: VpsDockerProviderConfig,
    /// The backend's own keys from the table (`_` spelling).
    pub backend_table: toml::Table,
    /// The local backend's account label (one per `MNGR_VPS_HOME`).
    pub local_account: String,
    /// Where the account came from.
    pub local_account_origin: Origin,
    /// The test-run id to label everything with.
    pub test_run: Option<String>,
    /// Every lifecycle key that the config file set.
    pub file_keys: Vec<String>,
    /// Whether `$VULTR_API_KEY` is set.
    pub vultr_key_env: bool,
    /// Whether `$HCLOUD_TOKEN` was set.
    pub hetzner_token_env: bool,
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("provider", &self.provider)
            .field("backend", &self.backend)
            .field("paths", &self.paths)
            .field(
                "backend_keys",
                &self.backend_table.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What the local backend changes in the lifecycle defaults: its own host image for
/// both containers, and the Docker-ready OS.
pub struct LocalDefaults {
    /// The host container image tag (`local_vps_images::Image::Host`).
    pub host_image: String,
    /// The Docker-ready OS id.
    pub os_id: u32,
}

/// Resolves the provider instance: `--provider`, else `$MNGR_VPS_PROVIDER`, else the
/// file's `default_provider`, else `local`.
pub fn resolve(
    env: &Env,
    paths: Paths,
    file: Option<&ConfigFile>,
    flag: Option<&str>,
    local: &LocalDefaults,
) -> Result<Resolved, CliError> {
    let empty = ConfigFile::default();
    let file_ref = file.unwrap_or(&empty);
    let (name, provider_origin) = if let Some(name) = flag {
        (name.to_owned(), Origin::Flag("--provider"))
    } else if let Some(name) = &env.provider {
        (name.clone(), Origin::Env(PROVIDER_ENV))
    } else if let Some(name) = &file_ref.default_provider {
        (name.clone(), Origin::ConfigFile)
    } else {
        (DEFAULT_PROVIDER.to_owned(), Origin::Default)
    };
    let provider = ProviderName::parse(&name).map_err(|e| CliError::Usage(e.to_string()))?;
    let table = file_ref.providers.get(&name).cloned();
    if table.is_none() && Backend::parse(&name).is_none() {
        let defined: Vec<&str> = file_ref.providers.keys().map(String::as_str).collect();
        return Err(CliError::Usage(format!(
            "no provider named {name:?}: the built-in ones are `local`, `vultr` and `hetzner`{}; define others as [providers.{name}] with backend = \"local\", \"vultr\" or \"hetzner\" in {}",
            if defined.is_empty() {
                String::new()
            } else {
                format!(", the config file defines {}", defined.join(", "))
            },
            paths.config_file().display()
        )));
    }
    let table = table.unwrap_or_default();
    let file_keys: Vec<String> = table.keys().map(|k| k.replace('-', "_")).collect();
    let backend_keys: Vec<&str> = file_keys
        .iter()
        .map(String::as_str)
        .filter(|k| !KNOWN_KEYS.contains(k))
        .collect();
    let bad_table = |e: vps_docker_provider::ConfigError| {
        CliError::Usage(format!(
            "[providers.{name}] in {}: {e}",
            paths.config_file().display()
        ))
    };
    // The backend is needed to know which extra keys it takes; read it first.
    let backend_name = table
        .get("backend")
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or_else(|| {
                CliError::Usage(format!("[providers.{name}]: `backend` must be a string"))
            })
        })
        .transpose()?
        .unwrap_or_else(|| name.clone());
    let backend = Backend::parse(&backend_name).ok_or_else(|| {
        CliError::Usage(format!(
            "[providers.{name}] in {}: backend {backend_name:?} is not known; use backend = \"local\", \"vultr\" or \"hetzner\"",
            paths.config_file().display()
        ))
    })?;
    let allowed: Vec<&str> = match backend {
        Backend::Local => LOCAL_BACKEND_KEYS.to_vec(),
        // The cloud backends' own configs refuse what they do not know, naming the key.
        Backend::Vultr | Backend::Hetzner => backend_keys,
    };
    let (mut config, backend_table) =
        VpsDockerProviderConfig::from_toml_table(&table, &allowed).map_err(bad_table)?;
    if config.is_enabled == Some(false) {
        return Err(CliError::Usage(format!(
            "provider {name} is disabled (is_enabled = false in {})",
            paths.config_file().display()
        )));
    }
    if backend == Backend::Local {
        let set = |key: &str| file_keys.iter().any(|k| k == key);
        if !set("default_image") {
            config.default_image = local.host_image.clone();
        }
        if !set("state_image") {
            config.state_image = local.host_image.clone();
        }
        if !set("default_os_id") {
            config.default_os_id = local.os_id;
        }
        config.validate().map_err(bad_table)?;
    }
    if backend == Backend::Hetzner {
        // Vultr's region, plan and OS ids mean nothing to Hetzner: its own defaults.
        let set = |key: &str| file_keys.iter().any(|k| k == key);
        let defaults = hetzner::HetznerConfig::default();
        if !set("default_region") {
            config.default_region = defaults.default_region.to_string();
        }
        if !set("default_plan") {
            config.default_plan = defaults.default_plan.to_string();
        }
        if !set("default_os_id") {
            config.default_os_id = defaults.default_os_id.0;
        }
        config.validate().map_err(bad_table)?;
    }
    let (local_account, local_account_origin) = match backend_table.get("account") {
        Some(v) => (
            v.as_str()
                .ok_or_else(|| {
                    CliError::Usage(format!("[providers.{name}]: `account` must be a string"))
                })?
                .to_owned(),
            Origin::ConfigFile,
        ),
        None => match &env.mngr_home {
            Some(home) => (home_account(home), Origin::Derived(HOME_ENV)),
            None => ("default".to_owned(), Origin::Default),
        },
    };
    Ok(Resolved {
        config_file_exists: file.is_some(),
        paths,
        provider,
        provider_origin,
        backend,
        config,
        backend_table,
        local_account,
        local_account_origin,
        test_run: env.test_run.clone(),
        file_keys,
        vultr_key_env: env.vultr_key_set,
        hetzner_token_env: env.hetzner_token_set,
    })
}

/// The local-vps account of a `MNGR_VPS_HOME`: two homes on one engine never see each
/// other's instances (their keys are apart too).
pub fn home_account(home: &Path) -> String {
    let digest = Sha256::digest(home.as_os_str().as_encoded_bytes());
    format!("home-{}", &hex::encode(digest)[..12])
}

impl Resolved {
    /// The key directory of the provider instance.
    pub fn key_dir(&self) -> PathBuf {
        self.paths.key_dir(&self.provider)
    }

    /// Every effective value with its origin, for `mngr-vps config`.
    pub fn settings(&self) -> Vec<Setting> {
        let mut out = Vec::new();
        let mut push =
            |key: String, value: String, origin: Origin| out.push(Setting { key, value, origin });
        let dirs_origin = self.paths.origin.clone();
        push(
            "config_file".into(),
            format!(
                "{}{}",
                self.paths.config_file().display(),
                if self.config_file_exists {
                    ""
                } else {
                    " (absent)"
                }
            ),
            dirs_origin.clone(),
        );
        push(
            "data_dir".into(),
            self.paths.data_dir.display().to_string(),
            dirs_origin,
        );
        push(
            "provider".into(),
            self.provider.to_string(),
            self.provider_origin.clone(),
        );
        let from_file = |key: &str| self.file_keys.iter().any(|k| k == key);
        push(
            "backend".into(),
            self.backend.as_str().into(),
            if from_file("backend") {
                Origin::ConfigFile
            } else {
                Origin::Derived("the provider's name")
            },
        );
        push(
            "key_dir".into(),
            self.key_dir().display().to_string(),
            Origin::Derived("data_dir and provider"),
        );
        let prefix = format!("providers.{}", self.provider);
        let values = toml::Table::try_from(&self.config).unwrap_or_default();
        for key in KNOWN_KEYS {
            if key == "backend" {
                continue;
            }
            let Some(value) = values.get(key) else {
                continue;
            };
            let origin = if from_file(key) {
                Origin::ConfigFile
            } else if self.backend == Backend::Local
                && matches!(key, "default_image" | "state_image" | "default_os_id")
            {
                Origin::BackendDefault("local")
            } else if self.backend == Backend::Hetzner
                && matches!(key, "default_region" | "default_plan" | "default_os_id")
            {
                Origin::BackendDefault("hetzner")
            } else {
                Origin::Default
            };
            push(format!("{prefix}.{key}"), show_toml(value), origin);
        }
        match self.backend {
            Backend::Local => {
                push(
                    format!("{prefix}.account"),
                    self.local_account.clone(),
                    self.local_account_origin.clone(),
                );
                if let Some(run) = &self.test_run {
                    push(
                        "test_run_label".into(),
                        format!("{TEST_RUN_LABEL}={run}"),
                        Origin::Env(TEST_RUN_ENV),
                    );
                }
            }
            Backend::Vultr | Backend::Hetzner => {
                // The secret's key and variable; its value is never shown.
                let (secret, env_name, env_set) = match self.backend {
                    Backend::Hetzner => ("api_token", HETZNER_TOKEN_ENV, self.hetzner_token_env),
                    _ => ("api_key", VULTR_KEY_ENV, self.vultr_key_env),
                };
                let (value, origin) = if self.backend_table.contains_key(secret) {
                    ("<set, hidden>".to_owned(), Origin::ConfigFile)
                } else if env_set {
                    ("<set, hidden>".to_owned(), Origin::Env(env_name))
                } else {
                    (
                        format!("<unset: set {env_name} or {secret}>"),
                        Origin::Default,
                    )
                };
                push(format!("{prefix}.{secret}"), value, origin);
                for (key, value) in &self.backend_table {
                    if key != secret {
                        push(
                            format!("{prefix}.{key}"),
                            show_toml(value),
                            Origin::ConfigFile,
                        );
                    }
                }
            }
        }
        out
    }
}

fn show_toml(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalDefaults {
        LocalDefaults {
            host_image: "mngr-local/host:0123456789abcdef".into(),
            os_id: 1,
        }
    }

    fn env_home(home: &str) -> Env {
        Env {
            mngr_home: Some(PathBuf::from(home)),
            ..Env::default()
        }
    }

    #[test]
    fn mngr_vps_home_moves_everything() {
        let p = Paths::resolve(&env_home("/tmp/h")).expect("paths");
        assert_eq!(p.config_file(), Path::new("/tmp/h/config.toml"));
        let local = ProviderName::parse("local").expect("name");
        assert_eq!(p.key_dir(&local), Path::new("/tmp/h/keys/local"));
        assert_eq!(p.origin, Origin::Env(HOME_ENV));
    }

    #[test]
    fn xdg_then_home_fallbacks() {
        let env = Env {
            home: Some("/home/u".into()),
            ..Env::default()
        };
        let p = Paths::resolve(&env).expect("paths");
        assert_eq!(p.config_dir, Path::new("/home/u/.config/mngr-vps"));
        assert_eq!(p.data_dir, Path::new("/home/u/.local/share/mngr-vps"));
        let env = Env {
            home: Some("/home/u".into()),
            xdg_config: Some("/x/c".into()),
            xdg_data: Some("/x/d".into()),
            ..Env::default()
        };
        let p = Paths::resolve(&env).expect("paths");
        assert_eq!(p.config_dir, Path::new("/x/c/mngr-vps"));
        assert_eq!(p.data_dir, Path::new("/x/d/mngr-vps"));
        assert!(Paths::resolve(&Env::default()).is_err());
    }

    fn resolve_with(env: &Env, text: &str, flag: Option<&str>) -> Result<Resolved, CliError> {
        let paths = Paths::resolve(env).expect("paths");
        let file = ConfigFile::parse(text, &paths.config_file())?;
        resolve(env, paths, Some(&file), flag, &local())
    }

    #[test]
    fn the_default_is_local_with_its_own_images_and_a_per_home_account() {
        let env = env_home("/tmp/h");
        let r = resolve(
            &env,
            Paths::resolve(&env).expect("paths"),
            None,
            None,
            &local(),
        )
        .expect("resolves");
        assert_eq!(r.provider.as_str(), "local");
        assert_eq!(r.provider_origin, Origin::Default);
        assert_eq!(r.backend, Backend::Local);
        assert_eq!(r.config.default_image, local().host_image);
        assert_eq!(r.config.state_image, local().host_image);
        assert_eq!(r.config.default_os_id, 1);
        assert_eq!(r.local_account, home_account(Path::new("/tmp/h")));
        assert_ne!(r.local_account, home_account(Path::new("/tmp/other")));
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let mut env = env_home("/tmp/h");
        let text = "default_provider = \"dev\"\n[providers.dev]\nbackend = \"local\"\n[providers.other]\nbackend = \"local\"\n";
        let r = resolve_with(&env, text, None).expect("file");
        assert_eq!(
            (r.provider.as_str(), r.provider_origin),
            ("dev", Origin::ConfigFile)
        );
        env.provider = Some("other".into());
        let r = resolve_with(&env, text, None).expect("env");
        assert_eq!(r.provider.as_str(), "other");
        assert_eq!(r.provider_origin, Origin::Env(PROVIDER_ENV));
        let r = resolve_with(&env, text, Some("local")).expect("flag");
        assert_eq!(r.provider_origin, Origin::Flag("--provider"));
    }

    #[test]
    fn named_instances_need_a_known_backend_and_known_keys() {
        let env = env_home("/tmp/h");
        let e = resolve_with(&env, "", Some("mine")).expect_err("undefined");
        assert!(
            matches!(e, CliError::Usage(ref m) if m.contains("[providers.mine]")),
            "{e}"
        );
        let e = resolve_with(&env, "[providers.mine]\nbackend = \"aws\"\n", Some("mine"))
            .expect_err("bad backend");
        assert!(e.to_string().contains("\"aws\""), "{e}");
        let e = resolve_with(&env, "[providers.local]\ndefault_imag = \"x\"\n", None)
            .expect_err("typo");
        assert!(e.to_string().contains("default_imag"), "{e}");
        let e = resolve_with(&env, "colour = 1\n", None).expect_err("top-level typo");
        assert!(e.to_string().contains("colour"), "{e}");
        let r = resolve_with(
            &env,
            "[providers.local]\ndefault-idle-timeout = 60\naccount = \"team\"\n",
            None,
        )
        .expect("valid");
        assert_eq!(r.config.default_idle_timeout, 60);
        assert_eq!(r.local_account, "team");
        let r = resolve_with(
            &env,
            "[providers.cloud]\nbackend = \"vultr\"\napi_key = \"k\"\nfirewall_group = \"fw\"\n",
            Some("cloud"),
        )
        .expect("vultr");
        assert_eq!(r.backend, Backend::Vultr);
        assert_eq!(r.config.default_os_id, 2136);
        assert!(r.backend_table.contains_key("firewall_group"));
    }

    #[test]
    fn settings_say_where_each_value_came_from_and_hide_secrets() {
        let env = Env {
            test_run: Some("run-1".into()),
            ..env_home("/tmp/h")
        };
        let r = resolve_with(&env, "[providers.local]\ndefault_idle_timeout = 60\n", None)
            .expect("valid");
        let settings = r.settings();
        let get = |key: &str| {
            settings
                .iter()
                .find(|s| s.key == key)
                .unwrap_or_else(|| panic!("{key} listed"))
                .clone()
        };
        assert_eq!(
            get("providers.local.default_idle_timeout").origin,
            Origin::ConfigFile
        );
        assert_eq!(get("providers.local.default_idle_timeout").value, "60");
        assert_eq!(
            get("providers.local.ssh_connect_timeout").origin,
            Origin::Default
        );
        assert_eq!(
            get("providers.local.default_image").origin,
            Origin::BackendDefault("local")
        );
        assert_eq!(get("provider").origin, Origin::Default);
        assert_eq!(get("test_run_label").value, "com.imbue.mngr.test-run=run-1");
        let r = resolve_with(
            &env,
            "[providers.vultr]\napi_key = \"very-secret\"\n",
            Some("vultr"),
        )
        .expect("vultr");
        let shown: String = r
            .settings()
            .iter()
            .map(|s| format!("{} {}\n", s.key, s.value))
            .collect();
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(
            shown.contains("providers.vultr.api_key <set, hidden>"),
            "{shown}"
        );
    }

    #[test]
    fn hetzner_is_a_backend_with_its_own_defaults_and_a_hidden_token() {
        let env = env_home("/tmp/h");
        let r = resolve_with(
            &env,
            "[providers.cloud]\nbackend = \"hetzner\"\napi_token = \"very-secret\"\nfirewall = \"fw\"\n",
            Some("cloud"),
        )
        .expect("hetzner");
        assert_eq!(r.backend, Backend::Hetzner);
        assert_eq!(r.config.default_region, "fsn1");
        assert_eq!(r.config.default_plan, "cx22");
        assert_eq!(r.config.default_os_id, hetzner::DEBIAN_12_X86_IMAGE_ID);
        assert!(r.backend_table.contains_key("firewall"));
        let settings = r.settings();
        let shown: String = settings
            .iter()
            .map(|s| format!("{} {}\n", s.key, s.value))
            .collect();
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(
            shown.contains("providers.cloud.api_token <set, hidden>"),
            "{shown}"
        );
        let region = settings
            .iter()
            .find(|s| s.key == "providers.cloud.default_region")
            .expect("shown");
        assert_eq!(region.origin, Origin::BackendDefault("hetzner"));
        // The built-in name works without a table; a file value wins over the default.
        let r = resolve_with(&env, "", Some("hetzner")).expect("built in");
        assert_eq!(r.backend, Backend::Hetzner);
        let r = resolve_with(
            &env,
            "[providers.hetzner]\ndefault_region = \"nbg1\"\n",
            Some("hetzner"),
        )
        .expect("file value");
        assert_eq!(r.config.default_region, "nbg1");
    }
}
