//! Making sure the state container and its volume exist and run.

use std::sync::Arc;
use std::time::Duration;

use docker_ssh::{
    Docker, DockerError, ExecOptions, Executor, PullPolicy, RestartPolicy, RunOptions, VolumeMount,
};
use tracing::Instrument;
use vps_primitives::{
    Backoff, LABEL_PROVIDER, LABEL_TYPE, LABEL_TYPE_STATE_CONTAINER, ProviderName,
};

use crate::error::StoreError;
use crate::layout::{STATE_ENTRYPOINT, STATE_MOUNT, StateContainerName};
use crate::script;

/// How many times [`ensure_state_container`] looks again after losing a race.
const ENSURE_ATTEMPTS: u32 = 6;

/// What the state container should be.
///
/// ```
/// use host_store::{StateContainerName, StateContainerSpec};
/// use vps_primitives::ProviderName;
///
/// let spec = StateContainerSpec::new(
///     StateContainerName::new("mngr-", "0123456789abcdef0123456789abcdef")?,
///     "alpine:3.20",
///     ProviderName::parse("vultr")?,
/// );
/// let argv = docker_ssh::DockerCli::new().run(&spec.run_options()).command_line();
/// assert!(argv.contains("--restart unless-stopped --pull never"));
/// # Ok::<(), vps_primitives::InvalidValue>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateContainerSpec {
    /// Name of the container and of its volume.
    pub name: StateContainerName,
    /// The image to run. It must already be on the VPS (`docker load` or build it): the
    /// container is run with `--pull never`. It needs a POSIX `sh` and the programs in
    /// [`REQUIRED_TOOLS`](crate::REQUIRED_TOOLS).
    pub image: String,
    /// The provider instance that owns the VPS (label `com.imbue.mngr.provider`).
    pub provider: ProviderName,
    /// More labels for the container and the volume, in order.
    pub labels: Vec<(String, String)>,
}

impl StateContainerSpec {
    /// A state container `name` running `image`, owned by `provider`.
    pub fn new(name: StateContainerName, image: impl Into<String>, provider: ProviderName) -> Self {
        Self {
            name,
            image: image.into(),
            provider,
            labels: Vec::new(),
        }
    }

    /// Adds a label to the container and the volume.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// All labels: provider, type, then the extra ones.
    pub fn all_labels(&self) -> Vec<(String, String)> {
        let mut labels = vec![
            (LABEL_PROVIDER.to_owned(), self.provider.to_string()),
            (LABEL_TYPE.to_owned(), LABEL_TYPE_STATE_CONTAINER.to_owned()),
        ];
        labels.extend(self.labels.iter().cloned());
        labels
    }

    /// The `docker run` of the state container: the volume at `/mngr-state`, the labels,
    /// restart policy `unless-stopped` (it comes back after a VPS reboot), `--pull never`,
    /// and an idle main process that exits at once on `docker stop`.
    pub fn run_options(&self) -> RunOptions {
        let mut opts = RunOptions::new(self.image.clone(), self.name.as_str())
            .volume(VolumeMount::new(self.name.as_str(), STATE_MOUNT))
            .restart(RestartPolicy::UnlessStopped)
            .pull(PullPolicy::Never)
            .shell_entrypoint(STATE_ENTRYPOINT);
        for (key, value) in self.all_labels() {
            opts = opts.label(key, value);
        }
        opts
    }
}

/// What [`ensure_state_container`] found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// It was running already.
    AlreadyRunning,
    /// It existed, stopped, and was started.
    Started,
    /// It was created (with its volume if needed) by this call.
    Created,
    /// Another caller created it at the same time; it runs now.
    CreatedByAnother,
}

/// Makes sure the state container and its volume exist and the container runs.
///
/// Idempotent, and safe when several callers race on one VPS: a `docker run` that fails
/// because the name is taken is not an error; the container is inspected again (and
/// started if the other caller has not yet). A container with the name that is not
/// labelled as a state container is never touched ([`StoreError::NotAStateContainer`]).
/// A container this call created is checked for the programs the scripts need, and
/// removed again (its volume kept) if any is missing.
///
/// ```no_run
/// use std::sync::Arc;
/// use docker_ssh::LocalExecutor;
/// use host_store::{StateContainerName, StateContainerSpec, ensure_state_container};
/// use vps_primitives::ProviderName;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let name = StateContainerName::new("mngr-", "0123456789abcdef0123456789abcdef")?;
/// let spec = StateContainerSpec::new(name, "alpine:3.20", ProviderName::parse("local")?);
/// ensure_state_container(Arc::new(LocalExecutor::new()), &spec).await?;
/// # Ok(()) }
/// ```
pub async fn ensure_state_container(
    exec: Arc<dyn Executor>,
    spec: &StateContainerSpec,
) -> Result<Ensured, StoreError> {
    let target = exec.target();
    let span = tracing::info_span!(
        "ensure_state_container",
        target = %target,
        container = %spec.name,
        image = %spec.image,
    );
    Ensure {
        docker: Docker::new(exec),
        spec,
        target,
    }
    .run()
    .instrument(span)
    .await
}

struct Ensure<'a> {
    docker: Docker,
    spec: &'a StateContainerSpec,
    target: String,
}

impl Ensure<'_> {
    fn docker_error(&self, action: &str, source: DockerError) -> StoreError {
        StoreError::Docker {
            target: self.target.clone(),
            action: format!("{action} of state container {}", self.spec.name),
            source,
        }
    }

    async fn run(&self) -> Result<Ensured, StoreError> {
        let name = self.spec.name.as_str();
        let mut lost_race = false;
        let mut started = false;
        let mut last = String::from("not inspected");
        let mut pauses = Backoff::new(Duration::from_millis(200), Duration::from_millis(1600))
            .with_jitter(0.2)
            .delays();
        for attempt in 0..ENSURE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(pauses.next_delay()).await;
            }
            let info = self
                .docker
                .inspect_container(name)
                .await
                .map_err(|e| self.docker_error("docker inspect", e))?;
            match info {
                Some(info) => {
                    let is_state = info.config.labels.get(LABEL_TYPE).map(String::as_str)
                        == Some(LABEL_TYPE_STATE_CONTAINER);
                    if !is_state {
                        return Err(StoreError::NotAStateContainer {
                            target: self.target.clone(),
                            container: name.to_owned(),
                            label: format!("{LABEL_TYPE}={LABEL_TYPE_STATE_CONTAINER}"),
                        });
                    }
                    if info.state.running && !info.state.restarting {
                        return Ok(if lost_race {
                            Ensured::CreatedByAnother
                        } else if started {
                            Ensured::Started
                        } else {
                            Ensured::AlreadyRunning
                        });
                    }
                    last = format!("status {}", info.state.status);
                    tracing::debug!(status = %info.state.status, "starting the state container");
                    match self.docker.start(name).await {
                        Ok(()) => started = true,
                        // Removed meanwhile, or a start racing another: look again.
                        Err(e) => {
                            tracing::debug!(error = %e, "docker start failed; looking again");
                            last = format!("docker start failed: {e}");
                        }
                    }
                }
                None => {
                    last = "absent".into();
                    if self.create().await? {
                        return Ok(Ensured::Created);
                    }
                    lost_race = true;
                }
            }
        }
        Err(StoreError::Unsettled {
            target: self.target.clone(),
            container: name.to_owned(),
            attempts: ENSURE_ATTEMPTS,
            last,
        })
    }

    /// Creates volume and container. `Ok(false)`: another caller took the name first.
    async fn create(&self) -> Result<bool, StoreError> {
        let spec = self.spec;
        let name = spec.name.as_str();
        let image_there = self
            .docker
            .image_exists(&spec.image)
            .await
            .map_err(|e| self.docker_error("docker image inspect", e))?;
        if !image_there {
            return Err(StoreError::ImageMissing {
                target: self.target.clone(),
                container: name.to_owned(),
                image: spec.image.clone(),
            });
        }
        // `docker volume create` of an existing volume succeeds: safe under races.
        self.docker
            .volume_create(name, &spec.all_labels())
            .await
            .map_err(|e| self.docker_error("docker volume create", e))?;
        match self.docker.run(&spec.run_options()).await {
            Ok(_) => {}
            Err(DockerError::NameConflict { .. }) => {
                tracing::debug!("another caller created the state container first");
                return Ok(false);
            }
            Err(e) => return Err(self.docker_error("docker run", e)),
        }
        self.check_tools().await?;
        tracing::info!("created the state container");
        Ok(true)
    }

    /// Checks the new container has every program the scripts use; removes it if not.
    async fn check_tools(&self) -> Result<(), StoreError> {
        let spec = self.spec;
        let name = spec.name.as_str();
        let opts =
            ExecOptions::script(name, script::probe_tools()).timeout(Duration::from_secs(30));
        let out = self
            .docker
            .exec(&opts)
            .await
            .map_err(|e| self.docker_error("tool check", e))?;
        let missing = out
            .stdout_trimmed()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if out.success() && missing.is_empty() {
            return Ok(());
        }
        let missing = if missing.is_empty() {
            format!(
                "a working sh ({}: {})",
                out.status,
                out.stderr_text().trim()
            )
        } else {
            missing
        };
        if let Err(e) = self.docker.rm(name, true).await {
            tracing::warn!(error = %e, "could not remove the unusable state container");
        }
        Err(StoreError::ImageUnsuitable {
            target: self.target.clone(),
            container: name.to_owned(),
            image: spec.image.clone(),
            missing,
        })
    }
}
