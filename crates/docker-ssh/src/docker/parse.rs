//! Parsers for Docker CLI output. Pure functions, tested on recorded output.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// Output that did not look like what the Docker command prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct ParseError {
    /// What was being parsed.
    pub what: &'static str,
    /// What was wrong, with an excerpt of the output.
    pub detail: String,
}

fn excerpt(text: &str) -> String {
    const MAX: usize = 200;
    let t = text.trim();
    if t.chars().count() > MAX {
        format!("{:?}…", t.chars().take(MAX).collect::<String>())
    } else {
        format!("{t:?}")
    }
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The container id `docker run -d` prints (its last non-empty stdout line; any pull
/// progress before it is ignored).
pub(crate) fn parse_container_id(stdout: &str) -> Result<String, ParseError> {
    let line = stdout.lines().rev().map(str::trim).find(|l| !l.is_empty());
    match line {
        Some(id) if id.len() >= 12 && id.len() <= 64 && is_hex(id) => Ok(id.to_owned()),
        _ => Err(ParseError {
            what: "container id",
            detail: format!("expected a hex container id, got {}", excerpt(stdout)),
        }),
    }
}

/// The image id `docker commit` prints (`sha256:<64 hex>`).
pub(crate) fn parse_image_id(stdout: &str) -> Result<String, ParseError> {
    let id = stdout.trim();
    match id.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && is_hex(hex) => Ok(id.to_owned()),
        _ => Err(ParseError {
            what: "image id",
            detail: format!("expected sha256:<64 hex digits>, got {}", excerpt(stdout)),
        }),
    }
}

/// A `true`/`false` printed by an inspect template such as `{{.State.Running}}`.
pub(crate) fn parse_bool(stdout: &str) -> Result<bool, ParseError> {
    match stdout.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ParseError {
            what: "boolean",
            detail: format!("expected true or false, got {}", excerpt(stdout)),
        }),
    }
}

/// Whether a Docker error message says the object does not exist (`docker inspect`,
/// `rm`, `start`, … on a missing container, image or volume).
pub fn is_no_such_object(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("no such object")
        || s.contains("no such container")
        || s.contains("no such image")
        || s.contains("no such volume")
        || (s.contains("get volume") && s.contains("no such"))
}

/// One line of `docker ps --format {{json .}}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PsEntry {
    /// Full container id (with `--no-trunc`).
    #[serde(rename = "ID")]
    pub id: String,
    /// Names, comma-separated by Docker.
    pub names: String,
    /// The image as given to `docker run`.
    pub image: String,
    /// `created`, `running`, `exited`, …
    #[serde(default)]
    pub state: String,
    /// Human-readable status, e.g. `Up 3 minutes`.
    #[serde(default)]
    pub status: String,
    /// Labels as Docker prints them: `k=v,k2=v2` (use [`PsEntry::labels`]).
    #[serde(default, rename = "Labels")]
    pub labels_raw: String,
    /// Creation time as Docker prints it.
    #[serde(default)]
    pub created_at: String,
    /// Published ports as Docker prints them.
    #[serde(default)]
    pub ports: String,
}

impl PsEntry {
    /// Whether the container is running.
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// Whether `name` is exactly one of the container's names (Docker's `name=` filter
    /// matches substrings).
    pub fn has_name(&self, name: &str) -> bool {
        self.names
            .split(',')
            .any(|n| n.trim_start_matches('/') == name)
    }

    /// The labels. Docker joins them with `,` without escaping, so a value containing a
    /// comma followed by `key=` cannot be told apart; use `docker inspect`
    /// ([`ContainerInfo`]) when labels may contain commas.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut last: Option<String> = None;
        for part in self.labels_raw.split(',').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    out.insert(k.to_owned(), v.to_owned());
                    last = Some(k.to_owned());
                }
                _ => {
                    // A comma inside the previous value.
                    if let Some(k) = &last
                        && let Some(v) = out.get_mut(k)
                    {
                        v.push(',');
                        v.push_str(part);
                    }
                }
            }
        }
        out
    }
}

/// Parses `docker ps --format {{json .}}` output (one JSON object per line).
pub(crate) fn parse_ps(stdout: &str) -> Result<Vec<PsEntry>, ParseError> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|e| ParseError {
                what: "docker ps line",
                detail: format!("{e} in {}", excerpt(line)),
            })
        })
        .collect()
}

/// `State` of `docker inspect` of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerState {
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
    pub status: String,
    /// Running (also true while paused).
    pub running: bool,
    /// Paused.
    pub paused: bool,
    /// Restarting.
    pub restarting: bool,
    /// Exit code of the last run.
    pub exit_code: i64,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 end time.
    pub finished_at: String,
}

/// `Config` of `docker inspect` of a container (the parts the toolkit reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    /// The image as given to `docker run`.
    pub image: String,
    /// Labels.
    #[serde(deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
}

/// One published port binding of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    /// Host address (`0.0.0.0`, `127.0.0.1`, `::`…).
    pub host_ip: String,
    /// Host port, as a string.
    pub host_port: String,
}

/// `NetworkSettings` of `docker inspect` of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    /// Published ports by `port/proto` (e.g. `22/tcp`).
    #[serde(deserialize_with = "null_default")]
    pub ports: BTreeMap<String, Option<Vec<PortBinding>>>,
}

/// A container as `docker inspect` reports it (the parts the toolkit reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerInfo {
    /// Full id.
    pub id: String,
    /// Name with Docker's leading `/`.
    pub name: String,
    /// Image id (`sha256:…`).
    pub image: String,
    /// Creation time.
    pub created: String,
    /// Run state.
    pub state: ContainerState,
    /// Configuration.
    pub config: ContainerConfig,
    /// Networking.
    pub network_settings: NetworkSettings,
}

impl ContainerInfo {
    /// The name without Docker's leading `/`.
    pub fn short_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }

    /// The host port published for `container_port`/tcp, if any.
    pub fn host_port(&self, container_port: u16) -> Option<u16> {
        self.network_settings
            .ports
            .get(&format!("{container_port}/tcp"))?
            .as_ref()?
            .iter()
            .find_map(|b| b.host_port.parse().ok())
    }
}

/// Parses `docker inspect --type container` output (a JSON array).
pub(crate) fn parse_container_inspect(stdout: &str) -> Result<Vec<ContainerInfo>, ParseError> {
    serde_json::from_str(stdout.trim()).map_err(|e| ParseError {
        what: "docker inspect output",
        detail: format!("{e} in {}", excerpt(stdout)),
    })
}

/// The image references `docker load` reports (`Loaded image: name:tag` or `Loaded image
/// ID: sha256:…`).
pub(crate) fn parse_load(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("Loaded image ID: ")
                .or_else(|| l.strip_prefix("Loaded image: "))
                .map(|r| r.trim().to_owned())
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// The image id in `docker build` output: `Successfully built <id>` (classic builder) or
/// `writing image sha256:<id>` (BuildKit), the last one wins.
pub(crate) fn parse_build_image_id(output: &str) -> Option<String> {
    output.lines().rev().find_map(|l| {
        let l = l.trim();
        if let Some(id) = l.strip_prefix("Successfully built ") {
            return Some(id.trim().to_owned());
        }
        let rest = &l[l.find("writing image sha256:")? + "writing image ".len()..];
        rest.split_whitespace().next().map(str::to_owned)
    })
}

/// Whether a `docker run` or `docker create` error message says the container name is
/// taken (`Conflict. The container name "/x" is already in use by container …`).
pub(crate) fn is_name_conflict(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("is already in use") || (s.contains("conflict") && s.contains("container name"))
}

/// The non-empty, trimmed lines of `-q` output (`docker volume ls -q`, `network ls -q`).
pub(crate) fn parse_lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A volume as `docker volume inspect` reports it (the parts the toolkit reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeInfo {
    /// Its name.
    pub name: String,
    /// Its driver (`local`).
    pub driver: String,
    /// Where its data is on the Docker host.
    pub mountpoint: String,
    /// Its labels.
    #[serde(deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// Parses `docker volume inspect` (or `docker inspect --type volume`) output: a JSON
/// array; empty output is no volume.
pub(crate) fn parse_volume_inspect(stdout: &str) -> Result<Vec<VolumeInfo>, ParseError> {
    let trimmed = stdout.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(trimmed).map_err(|e| ParseError {
        what: "docker volume inspect output",
        detail: format!("{e} in {}", excerpt(stdout)),
    })
}
