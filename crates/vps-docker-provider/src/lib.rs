//! The host lifecycle over any [`vps_client::VpsClient`]: a **host** is one VPS running
//! exactly one Docker container, reached over SSH with pinned keys.
//!
//! [`VpsDockerProvider`] creates hosts (with rollback of every step), stops and starts
//! them, destroys them without leaks, and finds them again from a fresh process (listing
//! instances by tag, then reading every VPS in parallel). It takes and restores
//! [container snapshots](#container-snapshots) and [hibernates](#hibernation) hosts
//! into provider snapshots so an idle host costs only its snapshot's storage.
//!
//! # Create, step by step
//!
//! | step | what happens |
//! |---|---|
//! | `generate-keys` | per-host keys in the key directory (0700; private keys 0600 from creation): VPS client key, container client key, container host key; the VPS's first host key is pinned |
//! | `upload-key` | the VPS client key is registered with the provider (`mngr-<provider>-<host id>`) |
//! | `create-instance` | the instance is ordered with our cloud-init document (which carries the first host key) and the tags `mngr-provider=<name>`, `mngr-host-id=<id>` |
//! | `wait-active` | until the provider says active and the VPS's sshd greets |
//! | `connect-vps` | SSH as root, pinned to the first host key |
//! | `wait-cloud-init` | `cloud-init status --wait`, the readiness marker and `docker info` |
//! | `rotate-host-key` | a new host key replaces the user_data's (which stays readable at the metadata endpoint) and is pinned; sshd reloads |
//! | `image` | the image is on the VPS already, or streamed from this machine (`docker save \| docker load` over the pooled connection), or pulled there; with `docker build` args it is built there (below) |
//! | `state-container`, `host-volume` | the state container (records) and the host's volume |
//! | `container` | `docker create` (sshd published on the VPS's `container_ssh_port`, volume at `/mngr-vol`, labels, restart `on-failure` (see the README), start args after the defaults), the container's sshd config, keys, entrypoint and idle watcher copied in, `docker start` |
//! | `container-setup` | packages the image lacks are installed (with a warning naming them); sshd started |
//! | `connect-container` | SSH into the container, pinned to its host key |
//! | `write-record` | the host record on the state volume |
//!
//! A failure at any step (or a cancellation) unwinds what was made and returns
//! [`ProviderError::Create`] naming the step and any undo that failed in turn.
//!
//! # Container snapshots
//!
//! [`VpsDockerProvider::create_snapshot`] makes **one image** on the host's VPS,
//! `mngr-snapshot-<host hex>:<time>`, listed in the host record
//! (`certified_host_data.snapshots`, with the image tag in the entry's `image` field):
//! - its lower layer is `docker commit` of the host container: the container's whole
//!   filesystem except what is mounted into it;
//! - its top layer holds a copy of the host volume (`/mngr-vol`, where `host_dir` links)
//!   at [`SNAPSHOT_VOLUME_DIR`], copied by a one-off container of that image (`--pull
//!   never`, no network) while the host container is paused, so the two agree.
//!
//! It holds neither processes nor memory, nor other volumes or bind mounts given in start
//! args, nor the host record or keys. [`VpsDockerProvider::start_from_snapshot`] fills a
//! new volume from the copy, stops the container and puts it aside (renamed), runs a new
//! one from the image with the host's start args, labels, keys and sshd files, and removes
//! the old container and volume only once the new one answers over SSH (a failure puts the
//! old container back). [`CreateHostRequest::snapshot`] starts a new host (a new VPS) from
//! a snapshot of another host: the image goes `docker save | docker load` from VPS to VPS
//! over the pooled connections, and its volume copy fills the new host's volume.
//! [`VpsDockerProvider::delete_snapshot`] removes the image (only untagging it while a
//! container still runs from it) and the record entry. Unlike upstream, a snapshot entry is
//! never lost to a later record write (the record is read again just before each write),
//! deleting removes the entry, and snapshots can be restored.
//!
//! # Hibernation
//!
//! On most clouds a stopped VPS is still billed. [`VpsDockerProvider::hibernate_host`]
//! stops the container, takes a provider-level snapshot of the VPS (through
//! [`vps_client::VpsClient::create_snapshot`], its description a [`HibernationLabel`]
//! naming the provider instance, host id and name, region, plan and OS), waits until the
//! provider lists it complete, and only then destroys the instance. The host then lists as
//! [`HostStatus::Hibernated`] from any machine (the account's snapshots are listed with the
//! instances). [`VpsDockerProvider::wake_host`] orders a new instance from the snapshot with
//! new user_data and a new first host key (rotated and pinned as at create), starts the
//! container that the snapshot's disk carries (its sshd host key came back with it, so the
//! container pin holds), updates the record (instance, address, keys) and deletes the
//! snapshot once the host answers; a failure destroys the new instance and the host stays
//! hibernated ([`ProviderError::Wake`]). Waking a host that is not hibernated is an error
//! and creates nothing. The uploaded SSH key stays registered while the host sleeps; the
//! host's keys and pins on this machine are needed to wake it. Destroying a hibernated
//! host deletes its snapshots, its uploaded key and its local keys.
//!
//! # Idle hosts
//!
//! The activity watcher inside the container only stops it when idle. With the config's
//! `idle_action = "hibernate"`, [`VpsDockerProvider::hibernate_idle_hosts`] (the idle sweep,
//! `mngr-vps sweep`) hibernates every host its idle watcher stopped ([`select_idle_hosts`])
//! and reports each ([`IdleSweep`]). It runs outside the VPS because hibernating calls the
//! provider's API, whose credentials never go to a VPS.
//!
//! # Building the image
//!
//! Build args other than `--vps-region=`, `--vps-plan=` and `--vps-os=` (any other `--vps-`
//! arg is an error naming it) go to `docker build` on the VPS ([`plan_build`]). The last
//! positional arg is the local build context, a directory; `-f X`, `-f=X`, `--file X` and
//! `--file=X` name the Dockerfile, resolved inside the context (default `Dockerfile`); the
//! values of `docker build`'s value-taking flags ([`VALUE_FLAGS`]) are never taken for the
//! context. A missing context or Dockerfile is refused before anything is created. In the
//! `image` step the context is uploaded as one tar stream honouring its `.dockerignore`
//! (the Dockerfile is always sent) to `/tmp/mngr-build-<host id>` on the VPS, built as
//! `mngr-build-<host id>` with each output line sent to [`Progress::output`], and the
//! directory is removed afterwards, also after a failed build. The built image is the
//! container's; a `--image` given with a build is only made present on the VPS (copied
//! from here, never pulled if it is here), so the Dockerfile can build `FROM` it.
//!
//! # Tags, rename, agent data
//!
//! User tags ([`VpsDockerProvider::get_tags`], `set_tags`, `add_tags`, `remove_tags`) and
//! names ([`VpsDockerProvider::rename_host`]) are changed in the host record, the source of
//! truth that every process reads. Docker cannot relabel a container, so its
//! `com.imbue.mngr.tags` and `com.imbue.mngr.host-name` labels keep their create-time
//! values (nothing reads them back). A rename also renames the container (`docker
//! rename`); the instance's label keeps the old name, as [`vps_client::VpsClient`] has no
//! call to relabel an instance, and lookup by name falls back to the records. Agent records
//! ([`VpsDockerProvider::persist_agent`], `list_agents`, `remove_agent`) live in the state
//! container, so they are readable and writable while the host's container is stopped.
//!
//! # Leak cleanup
//!
//! [`VpsDockerProvider::find_leaks`] lists what this provider instance made and no host
//! accounts for: instances without a host record (a failed or killed create), uploaded SSH
//! keys, local key directories and provider snapshots of hosts that exist no more, each at
//! least a threshold old; [`VpsDockerProvider::delete_leaks`] deletes what it is given and
//! reports each deletion. Listing never deletes. The rules (what is never judged a leak,
//! how ages are known) are on [`VpsDockerProvider::find_leaks`].
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use vps_docker_provider::{Cancel, CreateHostRequest, NoProgress, StopReason, VpsDockerProvider, VpsDockerProviderConfig};
//! use vps_primitives::{HostName, ProviderName};
//!
//! # async fn demo(client: Arc<dyn vps_client::VpsClient>) -> Result<(), Box<dyn std::error::Error>> {
//! let provider = VpsDockerProvider::new(
//!     ProviderName::parse("local")?,
//!     client,
//!     VpsDockerProviderConfig::default(),
//!     "/home/me/.local/share/mngr-vps/keys/local",
//! )?;
//! let host = provider
//!     .create_host(CreateHostRequest::new(HostName::parse("my-agent")?), &NoProgress, &Cancel::never())
//!     .await?;
//! let out = host.exec(&docker_ssh::Command::argv(["uname", "-a"])).await?;
//! println!("{}", out.stdout_text());
//! provider.stop_host("my-agent", StopReason::User).await?;
//! provider.start_host("my-agent").await?;
//! for h in provider.list_hosts().await? {
//!     println!("{} {}", h.display_name(), h.status);
//! }
//! provider.destroy_host("my-agent").await?;
//! # Ok(()) }
//! ```

mod agents;
mod build;
mod cleanup;
mod config;
mod error;
mod hibernate;
mod host;
mod idle;
mod keys;
pub mod plan;
mod provider;
mod rollback;
mod snapshot;
mod spool;
mod step;
mod tags;
mod transfer;

pub use build::{
    BuildPlan, DockerBuildArgs, VALUE_FLAGS, build_tag, check_build, parse_docker_build_args,
    plan_build, remote_build_dir,
};
pub use cleanup::{CleanupReport, Leak, LeakKind, key_host, snapshot_host};
pub use config::{
    Builder, ConfigError, DEFAULT_CONTAINER_PACKAGES, IdleAction, KNOWN_KEYS,
    VpsDockerProviderConfig,
};
pub use error::{ProviderError, RollbackFailure, StepError};
pub use hibernate::{HIBERNATE_SNAPSHOT_TIMEOUT, HIBERNATION_PREFIX, HibernationLabel};
pub use host::{Host, HostInfo, HostStatus, StopReason};
pub use idle::{IdleSweep, SweepSkip, select_idle_hosts};
pub use keys::{ClientKeys, HostKeys, KeyStore, KeyStoreError};
pub use provider::{
    CreateHostRequest, ExecutorWrapper, VPS_BUILD_ARGS, VpsChoice, VpsDockerProvider,
    parse_build_args,
};
pub use snapshot::{
    ContainerSnapshot, SNAPSHOT_VOLUME_DIR, SnapshotSource, capture_volume_script,
    restore_volume_script,
};
pub use step::{Cancel, CancelHandle, NoProgress, Phases, Progress, Step};
pub use tags::TagChange;

/// Compiles the README's example as a doc test, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
