//! SSH to VPSes and containers with pinned host keys, a connection pool, and a typed
//! Docker command builder that runs over SSH or on this machine.
//!
//! Every Docker operation on a VPS, and every command in a container, goes through this
//! crate. It knows nothing about VPS providers or hosts; it runs commands somewhere.
//!
//! # What is in it
//!
//! | piece | what it does |
//! |---|---|
//! | [`Executor`] | one trait to run a [`Command`] (argv or script, stdin bytes or stream, timeout) and get an [`Output`] (exit status, stdout, stderr); streaming variants yield lines as they arrive or write stdout to any writer |
//! | [`quote`], [`quote_argv`] | the one shell-quoting function (POSIX single quotes, like Python's `shlex.quote`) |
//! | [`LocalExecutor`] | runs commands on this machine (`tokio::process`, own process group, killed on timeout) |
//! | [`SshTarget`], [`SshSession`], [`SshPool`] | russh sessions that only ever connect to a **pinned** host key; the pool keeps one connection per target, runs many channels on it (bounded below sshd's `MaxSessions`), reconnects transparently with bounded retries, sends keepalives, and always sets `TCP_NODELAY` |
//! | [`wait_for_sshd`] | waits for a booting server's SSH handshake, retrying refused and reset connections with backoff |
//! | [`upload_dir`], [`upload_stream`], [`tar_dir`], [`ExcludeList`] | uploads a directory as one tar stream over one channel (`.dockerignore`-style excludes), or any byte stream to a file |
//! | [`generate_ed25519`], [`write_keypair`], [`load_or_generate_keypair`], [`KnownHosts`] | key files (private keys created 0600, directories 0700, atomic, locked) and private known_hosts files |
//! | [`DockerCli`], [`Docker`] | typed argv for the Docker CLI commands a provider needs, and their output parsers, run over any [`Executor`] |
//!
//! # Security properties
//!
//! - No trust-on-first-use: a connection needs a pinned host key; a mismatch or a missing
//!   pin fails with [`SshError::HostKeyMismatch`] / [`SshError::HostKeyNotPinned`], naming
//!   the host and the expected and offered `SHA256:` fingerprints.
//! - Every argv word that reaches a shell goes through [`quote`].
//! - Secrets stay out of logs, errors and `Debug`: private keys are never printed (targets
//!   show fingerprints), [`Command::secret`] values are redacted from command lines and
//!   error excerpts, and stdin (the way to pass secrets) is never logged.
//! - Each command runs in a `tracing` span `exec` with the target, the redacted command,
//!   the duration and the exit status.
//!
//! # Example
//!
//! Run commands locally, build Docker argv, and manage keys and pins. The same
//! [`Executor`] calls work on an [`SshPool`].
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use docker_ssh::{
//!     Command, DockerCli, Executor, KnownHosts, LocalExecutor, PortMapping, RunOptions,
//!     generate_ed25519, load_private_key, quote, write_keypair,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One quoting function for everything that reaches a shell.
//! let name = "it's $HOME";
//! let out = LocalExecutor::new()
//!     .run(&Command::script(format!("printf %s {}", quote(name))).timeout(Duration::from_secs(5)))
//!     .await?;
//! assert_eq!(out.stdout, name.as_bytes());
//!
//! // Typed Docker commands, pure until run.
//! let run = DockerCli::new().run(
//!     &RunOptions::new("debian:bookworm-slim", "box")
//!         .port(PortMapping::new(22).host_ip([127, 0, 0, 1].into()))
//!         .label("com.imbue.mngr.host-id", "host-1")
//!         .shell_entrypoint("sleep infinity"),
//! );
//! assert_eq!(
//!     run.command_line(),
//!     "docker run -d --name box -p 127.0.0.1::22 --label com.imbue.mngr.host-id=host-1 \
//!      --entrypoint sh debian:bookworm-slim -c 'sleep infinity'"
//! );
//!
//! // Keys and pins: private key 0600 from creation, pinned host keys in a private file.
//! let dir = tempfile::tempdir()?;
//! let client_key = generate_ed25519()?;
//! write_keypair(&dir.path().join("keys/vps_ssh_key"), &client_key)?;
//! let reloaded = load_private_key(&dir.path().join("keys/vps_ssh_key"))?;
//! assert_eq!(reloaded.public_key(), client_key.public_key());
//! let host_key = generate_ed25519()?;
//! let known_hosts = KnownHosts::new(dir.path().join("vps_known_hosts"));
//! known_hosts.add("203.0.113.7", 22, host_key.public_key())?;
//!
//! // Connecting is lazy: this target would only ever accept `host_key`.
//! let target = docker_ssh::SshTarget::from_known_hosts(
//!     "203.0.113.7", 22, "root", Arc::new(client_key), &known_hosts,
//! )?;
//! let pool = docker_ssh::SshPool::new(target, docker_ssh::SshConfig::default());
//! assert_eq!(pool.target().pinned_host_keys(), [host_key.public_key().clone()]);
//! # Ok(()) }
//! ```
//!
//! Over SSH (needs a server, so not run here):
//!
//! ```no_run
//! # async fn demo(pool: docker_ssh::SshPool) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use docker_ssh::{Docker, PsFilter};
//! let docker = Docker::new(Arc::new(pool));
//! for c in docker.ps(true, &[PsFilter::has_label("com.imbue.mngr.host-id")]).await? {
//!     println!("{} {}", c.names, c.state);
//! }
//! # Ok(()) }
//! ```

mod command;
mod docker;
mod error;
mod executor;
mod glob;
mod keys;
mod known_hosts;
mod local;
mod ssh;
mod upload;
mod wait;

pub use command::{Command, CommandBody, ExitStatus, Output, OutputStream, REDACTED};
// Of the output parsers, only `is_no_such_object` is public: it classifies a failed
// `docker exec` (host-store tells a missing state container by it). The others are
// internals of the `Docker` methods (`copy_image_to` replaced the hand-built
// `docker save | docker load` that needed `parse_load`).
pub use docker::{
    BUILD_TIMEOUT, BuildContext, BuildOptions, CommitOptions, ContainerConfig, ContainerInfo,
    ContainerState, DEFAULT_TIMEOUT, Docker, DockerCli, DockerError, EXEC_TIMEOUT, ExecOptions,
    ImageTransfer, ImageTransferError, NetworkSettings, ObjectKind, PULL_TIMEOUT, ParseError,
    PortBinding, PortMapping, Protocol, PsEntry, PsFilter, PullPolicy, RUN_TIMEOUT, Removed,
    RestartPolicy, RunOptions, STOP_MARGIN, VolumeInfo, VolumeMount, is_no_such_object,
};
pub use error::{ExecError, SshError};
pub use executor::{ExecIo, Executor, LineCallback, check_output};
pub use keys::{
    KeyError, SecretText, create_private_dir, fingerprint, generate_ed25519,
    load_or_generate_keypair, load_private_key, load_public_key, parse_public_key,
    private_key_openssh, pub_path, public_key_line, write_keypair,
};
pub use known_hosts::{KnownHosts, KnownHostsError, host_pattern};
pub use local::LocalExecutor;
pub use ssh::{SshConfig, SshPool, SshSession, SshTarget};
pub use upload::{
    ExcludeList, TarStream, UPLOAD_TIMEOUT, UploadError, UploadStats, tar_dir, upload_dir,
    upload_stream,
};
// The one shell-quoting function lives in `vps-primitives` (cloud-init needs it too, and
// must not depend on SSH code); it is re-exported here, where commands are run.
pub use vps_primitives::{quote, quote_argv};
pub use wait::wait_for_sshd;

/// The key types of russh this crate's API uses.
pub use russh::keys::{PrivateKey, PublicKey};

/// Compiles the README's example as a doc test, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
