//! Named steps, progress reporting and cancellation: the error, the progress line, the
//! tracing span and the benchmark's phase table all say the same word.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::StepError;

/// One step of a lifecycle operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Generate the host's keys on this machine.
    GenerateKeys,
    /// Register the VPS client key with the provider.
    UploadKey,
    /// Order the instance (with the cloud-init user_data).
    CreateInstance,
    /// Wait until the provider says active and the VPS's sshd greets.
    WaitActive,
    /// Connect to the VPS with the pinned (user_data) host key.
    ConnectVps,
    /// Wait for cloud-init and Docker on the VPS.
    WaitCloudInit,
    /// Replace the VPS's host key (the user_data's stays readable at the metadata service).
    RotateHostKey,
    /// Make the image present on the VPS (present, streamed from here, or pulled).
    Image,
    /// Ensure the state container on the VPS.
    StateContainer,
    /// Create the host volume.
    HostVolume,
    /// Create the host container and install its files.
    Container,
    /// Install missing packages and start the container's sshd.
    ContainerSetup,
    /// Wait for the container's sshd and connect with its pinned key.
    ConnectContainer,
    /// Write the host record.
    WriteRecord,
    /// Find the host.
    Lookup,
    /// Stop the container.
    StopContainer,
    /// Start the container.
    StartContainer,
    /// Remove the container, its volume and its records from the VPS.
    RemoveFromVps,
    /// Destroy the instance.
    DestroyInstance,
    /// Delete the uploaded key.
    DeleteKey,
    /// Remove the local keys and pins.
    RemoveLocalKeys,
    /// Take a container snapshot (`docker commit` and a copy of the volume).
    ContainerSnapshot,
    /// Delete a snapshot (a container snapshot's image, or a provider snapshot).
    DeleteSnapshot,
    /// Replace the container and volume with a snapshot's.
    RestoreSnapshot,
    /// Take a provider-level snapshot of the VPS.
    VpsSnapshot,
    /// Wait until the provider says the snapshot is complete.
    WaitSnapshot,
}

impl Step {
    /// The step's name: lower case with dashes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GenerateKeys => "generate-keys",
            Self::UploadKey => "upload-key",
            Self::CreateInstance => "create-instance",
            Self::WaitActive => "wait-active",
            Self::ConnectVps => "connect-vps",
            Self::WaitCloudInit => "wait-cloud-init",
            Self::RotateHostKey => "rotate-host-key",
            Self::Image => "image",
            Self::StateContainer => "state-container",
            Self::HostVolume => "host-volume",
            Self::Container => "container",
            Self::ContainerSetup => "container-setup",
            Self::ConnectContainer => "connect-container",
            Self::WriteRecord => "write-record",
            Self::Lookup => "lookup",
            Self::StopContainer => "stop-container",
            Self::StartContainer => "start-container",
            Self::RemoveFromVps => "remove-from-vps",
            Self::DestroyInstance => "destroy-instance",
            Self::DeleteKey => "delete-key",
            Self::RemoveLocalKeys => "remove-local-keys",
            Self::ContainerSnapshot => "container-snapshot",
            Self::DeleteSnapshot => "delete-snapshot",
            Self::RestoreSnapshot => "restore-snapshot",
            Self::VpsSnapshot => "vps-snapshot",
            Self::WaitSnapshot => "wait-snapshot",
        }
    }

    /// What a person reads on a progress line.
    pub fn describe(self) -> &'static str {
        match self {
            Self::GenerateKeys => "generating keys",
            Self::UploadKey => "uploading the SSH key",
            Self::CreateInstance => "ordering the VPS",
            Self::WaitActive => "waiting for the VPS to boot",
            Self::ConnectVps => "connecting to the VPS",
            Self::WaitCloudInit => "waiting for cloud-init and Docker",
            Self::RotateHostKey => "rotating the VPS host key",
            Self::Image => "making the image present on the VPS",
            Self::StateContainer => "starting the state container",
            Self::HostVolume => "creating the host volume",
            Self::Container => "creating the container",
            Self::ContainerSetup => "setting up the container",
            Self::ConnectContainer => "connecting to the container",
            Self::WriteRecord => "writing the host record",
            Self::Lookup => "looking up the host",
            Self::StopContainer => "stopping the container",
            Self::StartContainer => "starting the container",
            Self::RemoveFromVps => "removing the container and its data",
            Self::DestroyInstance => "destroying the VPS",
            Self::DeleteKey => "deleting the uploaded key",
            Self::RemoveLocalKeys => "removing local keys and pins",
            Self::ContainerSnapshot => "taking a snapshot of the container and its volume",
            Self::DeleteSnapshot => "deleting the snapshot",
            Self::RestoreSnapshot => "restoring the container and its volume from the snapshot",
            Self::VpsSnapshot => "taking a snapshot of the VPS",
            Self::WaitSnapshot => "waiting for the VPS snapshot to complete",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Receives progress of long operations. Every method has an empty default.
pub trait Progress: Send + Sync {
    /// A step began.
    fn step_started(&self, _step: Step) {}
    /// A step ended successfully after `took`.
    fn step_done(&self, _step: Step, _took: Duration) {}
    /// A line of output of a step (an image pull or load, a build).
    fn output(&self, _step: Step, _line: &str) {}
    /// Something the user should know (packages installed at start, say).
    fn warning(&self, _message: &str) {}
}

/// Progress that goes nowhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Lets a caller cancel a create from another task (Ctrl-C): the running step stops at its
/// next await point, and the create rolls back what it made.
#[derive(Clone, Debug)]
pub struct Cancel {
    rx: watch::Receiver<bool>,
}

/// The sending side of a [`Cancel`].
#[derive(Debug)]
pub struct CancelHandle {
    tx: watch::Sender<bool>,
}

impl Cancel {
    /// A pair: the handle cancels, the [`Cancel`] goes to the operation.
    pub fn new() -> (CancelHandle, Cancel) {
        let (tx, rx) = watch::channel(false);
        (CancelHandle { tx }, Cancel { rx })
    }

    /// Never cancelled.
    pub fn never() -> Cancel {
        Self::new().1
    }

    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once cancelled (never, if the handle is dropped without cancelling).
    pub async fn cancelled(&self) {
        let mut rx = self.rx.clone();
        loop {
            if *rx.borrow_and_update() {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl CancelHandle {
    /// Cancels the operation.
    pub fn cancel(&self) {
        let _ = self.tx.send(true);
    }
}

/// How long each step of an operation took, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Phases(pub Vec<(Step, Duration)>);

impl Phases {
    /// The sum of all steps.
    pub fn total(&self) -> Duration {
        self.0.iter().map(|(_, d)| *d).sum()
    }

    /// The time of one step (zero if it did not run).
    pub fn get(&self, step: Step) -> Duration {
        self.0
            .iter()
            .filter(|(s, _)| *s == step)
            .map(|(_, d)| *d)
            .sum()
    }
}

/// Runs one step: reports it, times it, traces it, and stops it on cancellation.
pub(crate) async fn run_step<T, F>(
    step: Step,
    progress: &dyn Progress,
    cancel: &Cancel,
    phases: &mut Phases,
    fut: F,
) -> Result<T, StepError>
where
    F: Future<Output = Result<T, StepError>>,
{
    use tracing::Instrument;
    if cancel.is_cancelled() {
        return Err(StepError::Cancelled);
    }
    progress.step_started(step);
    let started = Instant::now();
    let span = tracing::info_span!("step", step = step.as_str());
    let result = tokio::select! {
        r = fut.instrument(span) => r,
        () = cancel.cancelled() => Err(StepError::Cancelled),
    };
    let took = started.elapsed();
    if result.is_ok() {
        phases.0.push((step, took));
        progress.step_done(step, took);
    }
    tracing::debug!(
        step = step.as_str(),
        ok = result.is_ok(),
        ?took,
        "step finished"
    );
    result
}
