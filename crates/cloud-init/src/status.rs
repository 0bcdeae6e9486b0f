//! Parsing `cloud-init status --format json`.

use serde::Deserialize;
use serde_json::Value;

/// Where cloud-init is, as `cloud-init status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloudInitState {
    /// It has not started yet (`not run` before 24.1, `not started` since).
    NotStarted,
    /// A stage is running.
    Running,
    /// Every stage finished without errors. (Since 23.4 a run with only recoverable
    /// errors reports `done` with an extended status `degraded done`; see
    /// [`CloudInitStatus::recoverable_errors`].)
    Done,
    /// A stage failed; see [`CloudInitStatus::errors`].
    Error,
    /// cloud-init is disabled on this machine.
    Disabled,
}

/// What `cloud-init status --format json` said.
///
/// ```
/// use cloud_init::{CloudInitState, CloudInitStatus};
/// let out = r#"{"status": "error", "errors": ["('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"]}"#;
/// let status = CloudInitStatus::parse_json(out)?;
/// assert_eq!(status.state, CloudInitState::Error);
/// assert!(status.summary().contains("scripts-user"));
/// # Ok::<(), cloud_init::StatusParseError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudInitStatus {
    /// The state.
    pub state: CloudInitState,
    /// `extended_status` (23.4+), e.g. `degraded done`; `None` before.
    pub extended_status: Option<String>,
    /// Errors that made a stage fail.
    pub errors: Vec<String>,
    /// Problems cloud-init worked around (23.4+), as `LEVEL: message`.
    pub recoverable_errors: Vec<String>,
    /// `detail`: the datasource while done, the running stage, or the errors.
    pub detail: Option<String>,
    /// `boot_status_code`, e.g. `enabled-by-generator`.
    pub boot_status_code: Option<String>,
}

/// `cloud-init status --format json` printed something this parser does not understand.
#[derive(Debug, thiserror::Error)]
pub enum StatusParseError {
    /// Not JSON of the expected shape.
    #[error(
        "`cloud-init status --format json` printed no status object: {source}; output began with {start:?}"
    )]
    NotJson {
        /// The first characters of the output.
        start: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A `status` value no known cloud-init version prints.
    #[error("`cloud-init status` reported the unknown status {0:?}")]
    UnknownStatus(String),
}

#[derive(Deserialize)]
struct Raw {
    status: String,
    #[serde(default)]
    extended_status: Option<String>,
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    recoverable_errors: Value,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    boot_status_code: Option<String>,
}

impl CloudInitStatus {
    /// Parses the JSON that `cloud-init status --format json` (22.4 and later) prints.
    /// Works with `--wait`, whose JSON output has no progress dots.
    pub fn parse_json(output: &str) -> Result<Self, StatusParseError> {
        let raw: Raw =
            serde_json::from_str(output.trim()).map_err(|source| StatusParseError::NotJson {
                start: output.chars().take(80).collect(),
                source,
            })?;
        let state = match raw.status.as_str() {
            "not run" | "not started" => CloudInitState::NotStarted,
            "running" => CloudInitState::Running,
            "done" => CloudInitState::Done,
            "error" => CloudInitState::Error,
            "disabled" => CloudInitState::Disabled,
            // Some 23.x builds put the extended value into `status` itself.
            s if s.starts_with("degraded") && s.ends_with("done") => CloudInitState::Done,
            s if s.ends_with("running") => CloudInitState::Running,
            s if s.starts_with("error") => CloudInitState::Error,
            other => return Err(StatusParseError::UnknownStatus(other.to_owned())),
        };
        // 23.4+: {"WARNING": ["..."], "DEPRECATED": ["..."]}
        let mut recoverable_errors = Vec::new();
        if let Value::Object(levels) = &raw.recoverable_errors {
            for (level, messages) in levels {
                if let Value::Array(messages) = messages {
                    for m in messages {
                        let text = m.as_str().map_or_else(|| m.to_string(), str::to_owned);
                        recoverable_errors.push(format!("{level}: {text}"));
                    }
                }
            }
        }
        Ok(Self {
            state,
            extended_status: raw.extended_status,
            errors: raw.errors,
            recoverable_errors,
            detail: raw.detail.filter(|d| !d.is_empty()),
            boot_status_code: raw.boot_status_code,
        })
    }

    /// Whether cloud-init finished (successfully or not): no point in waiting longer.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state,
            CloudInitState::Done | CloudInitState::Error | CloudInitState::Disabled
        )
    }

    /// One line for a user: the state, then the errors.
    pub fn summary(&self) -> String {
        let state = match self.state {
            CloudInitState::NotStarted => "not started",
            CloudInitState::Running => "running",
            CloudInitState::Done => "done",
            CloudInitState::Error => "error",
            CloudInitState::Disabled => "disabled",
        };
        let mut text = self
            .extended_status
            .clone()
            .unwrap_or_else(|| state.to_owned());
        if !self.errors.is_empty() {
            text.push_str(": ");
            text.push_str(&self.errors.join("; "));
        }
        if !self.recoverable_errors.is_empty() {
            text.push_str(" (recoverable: ");
            text.push_str(&self.recoverable_errors.join("; "));
            text.push(')');
        }
        text
    }
}
