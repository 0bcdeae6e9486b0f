//! The CLI's errors and the exit codes scripts rely on.

use vps_docker_provider::{ProviderError, StepError};

/// The documented exit codes (also in `--help` and the README).
pub mod code {
    /// The operation succeeded.
    pub const OK: u8 = 0;
    /// The operation failed.
    pub const FAILED: u8 = 1;
    /// Bad usage or bad input; nothing was created.
    pub const USAGE: u8 = 2;
    /// No such host at the provider (also for `destroy` of a host already gone), or no such
    /// snapshot of the host.
    pub const NOT_FOUND: u8 = 3;
    /// Interrupted (Ctrl-C); a `create`, `hibernate` or `wake` undid what it had done.
    pub const INTERRUPTED: u8 = 130;
}

/// The exit-code table as `--help` shows it.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    the operation failed (the message says what to do next)
  2    bad usage or bad input, including an invalid host name or config; nothing was created
  3    host not found (also for `destroy` of a host that is already gone), or snapshot not found
  130  interrupted by Ctrl-C (`create`, `hibernate` and `wake` undo what they had done first)
  `exec` exits with the remote command's own status.";

/// A failed command: what to print, and the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad usage or bad input (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The host (or the snapshot) does not exist (exit 3).
    #[error("{0}")]
    NotFound(String),
    /// The operation failed (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Ctrl-C (exit 130).
    #[error("{0}")]
    Interrupted(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => code::USAGE,
            Self::NotFound(_) => code::NOT_FOUND,
            Self::Failed(_) => code::FAILED,
            Self::Interrupted(_) => code::INTERRUPTED,
        }
    }
}

impl From<ProviderError> for CliError {
    fn from(e: ProviderError) -> Self {
        let message = e.to_string();
        match e {
            ProviderError::HostNotFound(_) | ProviderError::SnapshotNotFound { .. } => {
                Self::NotFound(message)
            }
            ProviderError::InvalidInput(_)
            | ProviderError::Config(_)
            | ProviderError::NameTaken { .. } => Self::Usage(message),
            ProviderError::Create {
                source: StepError::Cancelled,
                rollback_failures,
                ..
            } => {
                let rolled_back = if rollback_failures.is_empty() {
                    "interrupted: the create was rolled back, nothing is left behind".to_owned()
                } else {
                    format!("interrupted; {message}")
                };
                Self::Interrupted(rolled_back)
            }
            ProviderError::Wake {
                source: StepError::Cancelled,
                host,
                rollback_failures,
                ..
            } => Self::Interrupted(if rollback_failures.is_empty() {
                format!(
                    "interrupted: the new VPS was removed, host {host} is still hibernated (`mngr-vps wake {host}` tries again)"
                )
            } else {
                format!("interrupted; {message}")
            }),
            ProviderError::Step {
                source: StepError::Cancelled,
                host,
                step,
            } => Self::Interrupted(format!(
                "interrupted during `{step}` of host {host}, which was undone; `mngr-vps show {host}` shows the host"
            )),
            _ => Self::Failed(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_errors_map_to_the_documented_codes() {
        assert_eq!(
            CliError::from(ProviderError::HostNotFound("x".into())).exit_code(),
            code::NOT_FOUND
        );
        assert_eq!(
            CliError::from(ProviderError::InvalidInput("bad".into())).exit_code(),
            code::USAGE
        );
        let wrong = ProviderError::WrongState {
            host: "a".into(),
            state: "stopped".into(),
            hint: "start it",
        };
        assert_eq!(CliError::from(wrong).exit_code(), code::FAILED);
        let no_snapshot = ProviderError::SnapshotNotFound {
            host: "a".into(),
            snapshot: "s".into(),
        };
        assert_eq!(CliError::from(no_snapshot).exit_code(), code::NOT_FOUND);
        let asleep = ProviderError::Hibernated {
            host: "a".into(),
            snapshot: vps_primitives::VpsSnapshotId::parse("snap-1").expect("id"),
        };
        let e = CliError::from(asleep);
        assert_eq!(e.exit_code(), code::FAILED);
        assert!(e.to_string().contains("mngr-vps wake a"), "{e}");
    }

    #[test]
    fn a_cancelled_hibernate_or_wake_exits_130_and_says_where_the_host_is() {
        let hibernate = CliError::from(ProviderError::Step {
            host: "a".into(),
            step: vps_docker_provider::Step::WaitSnapshot,
            source: StepError::Cancelled,
        });
        assert_eq!(hibernate.exit_code(), code::INTERRUPTED);
        assert!(hibernate.to_string().contains("undone"), "{hibernate}");
        let wake = CliError::from(ProviderError::Wake {
            host: "a".into(),
            step: vps_docker_provider::Step::WaitActive,
            source: StepError::Cancelled,
            rollback_failures: Vec::new(),
        });
        assert_eq!(wake.exit_code(), code::INTERRUPTED);
        assert!(wake.to_string().contains("still hibernated"), "{wake}");
        let failed_wake = CliError::from(ProviderError::Wake {
            host: "a".into(),
            step: vps_docker_provider::Step::WaitActive,
            source: StepError::Check("no".into()),
            rollback_failures: Vec::new(),
        });
        assert_eq!(failed_wake.exit_code(), code::FAILED);
        let failed_step = CliError::from(ProviderError::Step {
            host: "a".into(),
            step: vps_docker_provider::Step::WaitSnapshot,
            source: StepError::Check("no".into()),
        });
        assert_eq!(failed_step.exit_code(), code::FAILED);
    }

    #[test]
    fn a_cancelled_create_exits_130_and_says_it_rolled_back() {
        let cancelled = ProviderError::Create {
            name: vps_primitives::HostName::parse("a").expect("name"),
            id: vps_primitives::HostId::generate(),
            step: vps_docker_provider::Step::WaitActive,
            source: StepError::Cancelled,
            rollback_failures: Vec::new(),
        };
        let e = CliError::from(cancelled);
        assert_eq!(e.exit_code(), code::INTERRUPTED);
        assert!(e.to_string().contains("rolled back"), "{e}");
        let failed = ProviderError::Create {
            name: vps_primitives::HostName::parse("a").expect("name"),
            id: vps_primitives::HostId::generate(),
            step: vps_docker_provider::Step::WaitActive,
            source: StepError::Check("no".into()),
            rollback_failures: Vec::new(),
        };
        assert_eq!(CliError::from(failed).exit_code(), code::FAILED);
    }
}
