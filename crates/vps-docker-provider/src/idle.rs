//! The idle sweep: hibernating, from outside the VPS, the hosts their idle watcher stopped.
//!
//! The activity watcher runs inside the container and can only stop it (exit 0, recorded
//! as `idle`); the VPS keeps running and, on most clouds, billing. Hibernating takes a
//! provider snapshot and destroys the instance: calls of the provider's API, whose
//! credentials are never put on a VPS. So a machine that holds them (`mngr-vps sweep`, run
//! by hand or from a timer) lists the hosts, picks those stopped by their idle watcher
//! ([`select_idle_hosts`]) and hibernates each, when the config's `idle_action` is
//! `hibernate`.

use std::fmt;

use tracing::Instrument;

use crate::config::IdleAction;
use crate::error::ProviderError;
use crate::host::{HostInfo, HostStatus, StopReason};
use crate::provider::VpsDockerProvider;
use crate::step::{Cancel, Progress};

/// Why the idle sweep left a host alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SweepSkip {
    /// It was not stopped by its idle watcher: it runs or starts, a user stopped it, its
    /// container crashed, it cannot be read, it is broken, or it is hibernated already.
    NotIdle(HostStatus),
    /// It was stopped idle when listed, but looked at again just before its hibernation it
    /// is not (started since, or hibernated by another machine).
    ChangedSince(HostStatus),
    /// It was destroyed after it was listed.
    Gone,
    /// The sweep was cancelled before its turn.
    Cancelled,
}

impl fmt::Display for SweepSkip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotIdle(status) => write!(f, "it is {status}, not stopped by its idle watcher"),
            Self::ChangedSince(status) => {
                write!(f, "it was stopped idle when listed, but is {status} now")
            }
            Self::Gone => f.write_str("it was destroyed after it was listed"),
            Self::Cancelled => f.write_str("the sweep was cancelled before its turn"),
        }
    }
}

/// What [`VpsDockerProvider::hibernate_idle_hosts`] did.
#[derive(Debug)]
pub struct IdleSweep {
    /// The config's `idle_action`; with [`IdleAction::Stop`] the sweep does nothing (not
    /// even list the hosts), and every list below is empty.
    pub action: IdleAction,
    /// Hosts hibernated, as they are now ([`HostStatus::Hibernated`]).
    pub hibernated: Vec<HostInfo>,
    /// Hosts whose hibernation failed (each is still stopped, or hibernated: see
    /// [`VpsDockerProvider::hibernate_host`]), as listed, with the error.
    pub failed: Vec<(HostInfo, ProviderError)>,
    /// Hosts left alone, as listed, with why.
    pub skipped: Vec<(HostInfo, SweepSkip)>,
}

impl IdleSweep {
    fn new(action: IdleAction) -> Self {
        Self {
            action,
            hibernated: Vec::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Whether no hibernation failed.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// One line per host: what was done, or why not.
impl fmt::Display for IdleSweep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.action == IdleAction::Stop {
            return writeln!(
                f,
                "idle_action is \"stop\": hosts stopped idle stay stopped, nothing was hibernated (set idle_action = \"hibernate\" in the provider's config to hibernate them)"
            );
        }
        writeln!(
            f,
            "idle sweep: {} hibernated, {} failed, {} left alone",
            self.hibernated.len(),
            self.failed.len(),
            self.skipped.len()
        )?;
        let who = |h: &HostInfo| format!("{} ({})", h.display_name(), h.id);
        for host in &self.hibernated {
            writeln!(f, "hibernated {}: {}", who(host), host.status)?;
        }
        for (host, error) in &self.failed {
            writeln!(f, "could not hibernate {}: {error}", who(host))?;
        }
        for (host, why) in &self.skipped {
            writeln!(f, "left {} alone: {why}", who(host))?;
        }
        Ok(())
    }
}

/// Why a host in `status` is not one for the sweep; `None` if its idle watcher stopped it.
fn not_idle(status: &HostStatus) -> Option<HostStatus> {
    match status {
        HostStatus::Stopped {
            reason: Some(StopReason::Idle),
        } => None,
        other => Some(other.clone()),
    }
}

/// The pure selection of the idle sweep: the hosts their idle watcher stopped
/// ([`HostStatus::Stopped`] with reason [`StopReason::Idle`]), and every other host with
/// why it is left alone. Never a host a user stopped, one whose container crashed, one
/// that runs, starts, cannot be read, is broken, or is hibernated already.
pub fn select_idle_hosts(hosts: Vec<HostInfo>) -> (Vec<HostInfo>, Vec<(HostInfo, SweepSkip)>) {
    let mut idle = Vec::new();
    let mut skipped = Vec::new();
    for host in hosts {
        match not_idle(&host.status) {
            None => idle.push(host),
            Some(status) => skipped.push((host, SweepSkip::NotIdle(status))),
        }
    }
    (idle, skipped)
}

/// What became of one host the listing showed as stopped idle.
enum Outcome {
    Hibernated(Box<HostInfo>),
    Skipped(SweepSkip),
}

impl VpsDockerProvider {
    /// The idle sweep: when the config's `idle_action` is `hibernate`, lists the hosts and
    /// hibernates ([`Self::hibernate_host`]) each one its idle watcher stopped, one after
    /// the other; with `stop` it does nothing and the report says so. Run it from a machine
    /// that holds the provider's credentials (`mngr-vps sweep`): they never go to a VPS, so
    /// the watcher inside the container cannot do this itself.
    ///
    /// Each host is looked up again just before its hibernation and left alone if it is no
    /// longer stopped idle (started since, say). A failure on one host is reported and the
    /// sweep goes on; the failed host stays stopped (or hibernated), never lost. `cancel`
    /// stops the running hibernation (which undoes itself) and leaves the rest. Only a
    /// failed listing is an error.
    pub async fn hibernate_idle_hosts(
        &self,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<IdleSweep, ProviderError> {
        let action = self.inner.config.idle_action;
        let mut sweep = IdleSweep::new(action);
        if action == IdleAction::Stop {
            tracing::info!(provider = %self.inner.name, "idle_action is stop: the idle sweep does nothing");
            return Ok(sweep);
        }
        let span = tracing::info_span!("idle-sweep", provider = %self.inner.name);
        async {
            let (idle, skipped) = select_idle_hosts(self.list_hosts().await?);
            sweep.skipped = skipped;
            tracing::info!(
                idle = idle.len(),
                left_alone = sweep.skipped.len(),
                "hosts listed"
            );
            for listed in idle {
                if cancel.is_cancelled() {
                    sweep.skipped.push((listed, SweepSkip::Cancelled));
                    continue;
                }
                let span = tracing::info_span!("hibernate-idle", host = %listed.id);
                match self
                    .hibernate_idle(&listed, progress, cancel)
                    .instrument(span)
                    .await
                {
                    Ok(Outcome::Hibernated(info)) => sweep.hibernated.push(*info),
                    Ok(Outcome::Skipped(why)) => {
                        tracing::info!(host = %listed.id, %why, "left alone");
                        sweep.skipped.push((listed, why));
                    }
                    Err(e) => {
                        tracing::warn!(host = %listed.id, error = %e, "could not hibernate an idle host");
                        sweep.failed.push((listed, e));
                    }
                }
            }
            Ok(sweep)
        }
        .instrument(span)
        .await
    }

    /// Looks at one listed idle host again and hibernates it if it is still stopped idle.
    async fn hibernate_idle(
        &self,
        listed: &HostInfo,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<Outcome, ProviderError> {
        let found = match self.find(listed.id.as_str()).await {
            Ok(found) => found,
            Err(ProviderError::Hibernated { snapshot, .. }) => {
                return Ok(Outcome::Skipped(SweepSkip::ChangedSince(
                    HostStatus::Hibernated { snapshot },
                )));
            }
            Err(ProviderError::HostNotFound(_)) => return Ok(Outcome::Skipped(SweepSkip::Gone)),
            Err(e) => return Err(e),
        };
        if let Some(status) = not_idle(&found.info.status) {
            return Ok(Outcome::Skipped(SweepSkip::ChangedSince(status)));
        }
        let info = self.hibernate_found(found, progress, cancel).await?;
        Ok(Outcome::Hibernated(Box::new(info)))
    }
}

#[cfg(test)]
mod tests {
    use vps_primitives::{HostId, HostName, ProviderName, VpsSnapshotId};

    use super::*;
    use crate::error::StepError;
    use crate::step::Step;

    fn host(n: u8, status: HostStatus) -> HostInfo {
        HostInfo::seen(
            HostId::parse(&format!("host-{:032x}", n)).expect("id"),
            Some(HostName::parse(&format!("h{n}")).expect("name")),
            ProviderName::parse("local").expect("provider"),
            status,
        )
    }

    fn every_status() -> Vec<HostStatus> {
        vec![
            HostStatus::Running,
            HostStatus::Stopped {
                reason: Some(StopReason::Idle),
            },
            HostStatus::Stopped {
                reason: Some(StopReason::User),
            },
            HostStatus::Stopped { reason: None },
            HostStatus::Starting,
            HostStatus::Unreachable {
                reason: "the VPS did not answer within 10s".into(),
            },
            HostStatus::Hibernated {
                snapshot: VpsSnapshotId::parse("snap-1").expect("id"),
            },
            HostStatus::Failed {
                reason: "its container is missing on the VPS".into(),
            },
        ]
    }

    #[test]
    fn only_hosts_stopped_by_their_idle_watcher_are_selected() {
        let hosts: Vec<HostInfo> = every_status()
            .into_iter()
            .zip(1..)
            .map(|(status, n)| host(n, status))
            .collect();
        let (idle, skipped) = select_idle_hosts(hosts.clone());
        let idle: Vec<&str> = idle.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(idle, [hosts[1].id.as_str()]);
        assert_eq!(skipped.len(), hosts.len() - 1);
        for (host, why) in &skipped {
            assert_eq!(why, &SweepSkip::NotIdle(host.status.clone()), "{host:?}");
        }
        // A user's stop in particular is never hibernated.
        let user = host(
            9,
            HostStatus::Stopped {
                reason: Some(StopReason::User),
            },
        );
        let (idle, skipped) = select_idle_hosts(vec![user]);
        assert!(idle.is_empty());
        assert_eq!(
            skipped[0].1.to_string(),
            "it is stopped (user), not stopped by its idle watcher"
        );
    }

    #[test]
    fn the_report_says_what_was_done_and_why_not() {
        let stop = IdleSweep::new(IdleAction::Stop);
        let mut sweep = IdleSweep::new(IdleAction::Hibernate);
        sweep.hibernated.push(host(
            1,
            HostStatus::Hibernated {
                snapshot: VpsSnapshotId::parse("snap-1").expect("id"),
            },
        ));
        let idle = HostStatus::Stopped {
            reason: Some(StopReason::Idle),
        };
        sweep.failed.push((
            host(2, idle.clone()),
            ProviderError::Step {
                host: "h2".into(),
                step: Step::VpsSnapshot,
                source: StepError::Check("the provider refused the snapshot".into()),
            },
        ));
        let (_, skipped) = select_idle_hosts(vec![host(3, HostStatus::Running)]);
        sweep.skipped.extend(skipped);
        sweep.skipped.push((
            host(4, idle.clone()),
            SweepSkip::ChangedSince(HostStatus::Running),
        ));
        sweep.skipped.push((host(5, idle.clone()), SweepSkip::Gone));
        sweep.skipped.push((host(6, idle), SweepSkip::Cancelled));
        assert!(!sweep.is_complete());
        assert!(stop.is_complete());
        insta::assert_snapshot!("idle_sweep_report", format!("{stop}{sweep}"));
    }
}
