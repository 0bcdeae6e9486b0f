//! [`StoreError`]: what went wrong, where (the VPS, the state container, the host), and
//! what to do about it.

use docker_ssh::{DockerError, ExecError, ExitStatus};

/// A state-store operation failed.
///
/// `target` is where commands run (e.g. `root@203.0.113.7:22`, or `local`); `container`
/// is the state container's name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// There is no state container.
    #[error(
        "state container {container} does not exist on {target}: \
         create it with host_store::ensure_state_container first"
    )]
    NoStateContainer {
        /// Where commands run.
        target: String,
        /// The state container.
        container: String,
    },
    /// The state container exists but does not run.
    #[error(
        "state container {container} on {target} is not running: \
         start it with host_store::ensure_state_container"
    )]
    StateContainerStopped {
        /// Where commands run.
        target: String,
        /// The state container.
        container: String,
    },
    /// A container with the state container's name exists but is something else.
    #[error(
        "container {container} on {target} exists but is not a mngr state container \
         (it lacks the label {label}): remove or rename it, or use another prefix or user id"
    )]
    NotAStateContainer {
        /// Where commands run.
        target: String,
        /// The container.
        container: String,
        /// The missing label, `key=value`.
        label: String,
    },
    /// The state container's image is not on the VPS (it is never pulled).
    #[error(
        "image {image} for state container {container} is not on {target}: it is never \
         pulled; load it (docker load) or build it there first"
    )]
    ImageMissing {
        /// Where commands run.
        target: String,
        /// The state container.
        container: String,
        /// The image.
        image: String,
    },
    /// The image lacks programs the store's scripts need.
    #[error(
        "image {image} of state container {container} on {target} lacks {missing}: use an \
         image with a POSIX sh and coreutils or busybox (Debian, Alpine); the container was removed"
    )]
    ImageUnsuitable {
        /// Where commands run.
        target: String,
        /// The state container.
        container: String,
        /// The image.
        image: String,
        /// The missing programs, space-separated.
        missing: String,
    },
    /// Another caller kept changing the state container while it was being ensured.
    #[error(
        "state container {container} on {target} did not settle after {attempts} attempts \
         (last seen: {last}); is another process removing it?"
    )]
    Unsettled {
        /// Where commands run.
        target: String,
        /// The state container.
        container: String,
        /// How many times it was inspected.
        attempts: u32,
        /// The last state seen.
        last: String,
    },
    /// A Docker command on the VPS failed.
    #[error("{action} on {target} failed: {source}")]
    Docker {
        /// Where commands run.
        target: String,
        /// What was being done, naming the container or host.
        action: String,
        /// Docker's error.
        #[source]
        source: DockerError,
    },
    /// A command in the state container could not be run, timed out or lost its
    /// connection. Reads, writes and deletes are safe to retry.
    #[error("{action} in state container {container} on {target} failed: {source}")]
    Exec {
        /// Where commands run.
        target: String,
        /// The state container.
        container: String,
        /// What was being done, naming the host.
        action: String,
        /// The executor's error.
        #[source]
        source: ExecError,
    },
    /// A script in the state container failed; the stored data is unchanged.
    #[error("{action} in state container {container} on {target} failed with {status}: {stderr}")]
    ScriptFailed {
        /// Where commands run.
        target: String,
        /// The state container.
        container: String,
        /// What was being done, naming the host.
        action: String,
        /// How the script ended.
        status: ExitStatus,
        /// The last lines of its stderr.
        stderr: String,
    },
    /// A record that was asked for exists but is not valid.
    #[error(
        "record {path} in state container {container} on {target} is unusable ({detail}); \
         fix it, or delete it (HostStore::delete_host_record / remove_agent) and write it again"
    )]
    CorruptRecord {
        /// Where commands run.
        target: String,
        /// The state container.
        container: String,
        /// Path of the record in the state container.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A script printed something it never prints: the state container may run an
    /// unexpected shell or image.
    #[error("unexpected output from {action} in state container {container} on {target}: {detail}")]
    Protocol {
        /// Where commands run.
        target: String,
        /// The state container.
        container: String,
        /// What was being done.
        action: String,
        /// What was wrong.
        detail: String,
    },
    /// A record could not be turned into JSON (e.g. an agent record with `id` in its
    /// extra data).
    #[error("cannot serialise the record of {id}: {source}")]
    Serialize {
        /// The host or agent id.
        id: String,
        /// The serialiser's error.
        #[source]
        source: serde_json::Error,
    },
}
