//! Renders the `#cloud-config` user_data of a new VPS from a typed description, and parses
//! `cloud-init status --format json`. No I/O: everything here is testable as text.
//!
//! ```
//! use cloud_init::{CloudConfig, FileSpec, HostKey, PackageName, RemotePath, RunCommand};
//!
//! # let private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
//! # let public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFpkHqZI0ux0XvjMJfc54ZKH5oWo6gHON4gVhG9XSP34";
//! let host_key = HostKey::ed25519(private, public)?;
//! let mut config = CloudConfig::new(host_key);
//! config.packages.push(PackageName::parse("jq")?);
//! config.files.push(FileSpec::new(RemotePath::parse("/etc/motd")?, "managed by mngr\n"));
//! config.commands.push(RunCommand::Shell("docker pull debian:bookworm-slim || true".into()));
//!
//! let user_data = config.render();
//! assert!(user_data.expose().starts_with("#cloud-config\n"));
//! // The private key is in the document, never in Debug output.
//! assert!(user_data.expose().contains("b3BlbnNzaC1rZXktdjEAAAAA"));
//! assert!(!format!("{config:?} {user_data:?}").contains("b3BlbnNzaC1rZXktdjEAAAAA"));
//! # Ok::<(), vps_primitives::InvalidValue>(())
//! ```
//!
//! # What the document does, in boot order
//!
//! 1. **Every boot, first** (`bootcmd`, inside `cloud-init.service`, which systemd runs
//!    before `sysinit.target` and so before Docker): reject traffic to the cloud metadata
//!    service ([`METADATA_ADDRESS`]) from containers (`DOCKER-USER` chain). The metadata
//!    service serves the user_data, and so the VPS's private host key.
//! 2. SSH: the image's host keys are deleted and only [`CloudConfig::host_key`] is
//!    installed, so the VPS presents exactly the key the client pinned; password login
//!    off; root login by key kept (`disable_root: false`); root's authorized keys.
//! 3. Files: the sshd hardening drop-in ([`SSHD_HARDENING_DROP_IN`]: no passwords, no
//!    keyboard-interactive login, root by key only; it sorts first, so a drop-in from the
//!    image or the cloud's vendor data cannot override it), the sshd limits drop-in
//!    ([`SSHD_DROP_IN`]), the metadata block script and its
//!    systemd unit (required by `docker.service`, so it runs before Docker on every later
//!    boot, even without cloud-init), then [`CloudConfig::files`].
//! 4. Packages ([`CloudConfig::packages`]; cloud-init refreshes the package lists first).
//! 5. Steps (`runcmd`), each of which must succeed (`set -e`): enable the block's unit;
//!    reload (not restart) sshd, so the drop-ins apply on the first boot; install Docker from the distribution (`docker.io`) unless
//!    the image has it, enable it, wait until it answers; [`CloudConfig::commands`]; and
//!    last the readiness marker ([`READY_MARKER`]).
//!
//! A failure anywhere (a package that does not install, Docker that does not answer, a
//! failing command) makes `cloud-init status` report `error`, and the marker is missing.
//! Check both: [`CloudInitStatus::parse_json`] reads `cloud-init status --format json`.
//!
//! The YAML is written by a small emitter (block style, literal blocks for scripts, JSON
//! double-quoted strings wherever a plain scalar could be misread); the tests check that
//! the real cloud-init accepts every variant and that PyYAML reads back
//! [`CloudConfig::to_value`] exactly.

mod render;
mod status;
mod types;
mod yaml;

pub use render::{
    METADATA_ADDRESS, METADATA_BLOCK_SCRIPT_PATH, METADATA_BLOCK_UNIT, READY_MARKER,
    RenderedUserData, SSHD_DROP_IN, SSHD_HARDENING_DROP_IN,
};
pub use status::{CloudInitState, CloudInitStatus, StatusParseError};
pub use types::{
    AuthorizedKey, DockerSetup, FileMode, FileOwner, FileSpec, HostKey, PackageName, RemotePath,
    RunCommand, SshdLimits,
};
pub use vps_primitives::InvalidValue;

/// What a new VPS needs at first boot. Build it with [`CloudConfig::new`], adjust the
/// fields, then [`CloudConfig::render`] it.
///
/// `Debug` never shows the private host key or file contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudConfig {
    /// The SSH host key the VPS presents (the only one).
    pub host_key: HostKey,
    /// Keys allowed to log in as root (cloud-init gives them to the image's default user
    /// too). A cloud provider usually installs its registered key itself.
    pub authorized_keys: Vec<AuthorizedKey>,
    /// Refresh the package lists even when no package is installed (cloud-init refreshes
    /// them anyway when [`CloudConfig::packages`] is not empty). Default: `false`.
    pub package_update: bool,
    /// Let cloud-init set the VPS's locale (its `locale` module, which runs `locale-gen`:
    /// 1.6 s of a 3 s cloud-init on a fresh Debian 12). Default: `false`, rendered as
    /// `locale: false`: the VPS only runs sshd and Docker, and the container has its own.
    pub configure_locale: bool,
    /// Packages to install from the distribution.
    pub packages: Vec<PackageName>,
    /// What to do about Docker. Default: [`DockerSetup::InstallIfMissing`].
    pub docker: DockerSetup,
    /// sshd limits, written to [`SSHD_DROP_IN`]; `None` leaves the limits alone (the
    /// hardening in [`SSHD_HARDENING_DROP_IN`] is always written).
    /// Default: [`SshdLimits::default`].
    pub sshd_limits: Option<SshdLimits>,
    /// Block the metadata service from containers. Default: `true`; turn it off only
    /// where the metadata service does not serve the user_data.
    pub block_metadata: bool,
    /// Extra files.
    pub files: Vec<FileSpec>,
    /// Extra commands, run after Docker is ready.
    pub commands: Vec<RunCommand>,
    /// Written last, when every step succeeded. Default: [`READY_MARKER`].
    pub ready_marker: RemotePath,
}

impl CloudConfig {
    /// The defaults around `host_key`: Docker installed if missing, upstream's sshd
    /// limits, the metadata block, the marker at [`READY_MARKER`], nothing extra.
    pub fn new(host_key: HostKey) -> Self {
        Self {
            host_key,
            authorized_keys: Vec::new(),
            package_update: false,
            configure_locale: false,
            packages: Vec::new(),
            docker: DockerSetup::InstallIfMissing,
            sshd_limits: Some(SshdLimits::default()),
            block_metadata: true,
            files: Vec::new(),
            commands: Vec::new(),
            ready_marker: RemotePath::parse(READY_MARKER).expect("the marker path is valid"),
        }
    }
}
