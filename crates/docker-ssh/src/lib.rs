//! SSH sessions with pinned host keys, a connection pool, exec with timeouts, uploads, key
//! files, and a typed Docker command builder that runs over any [`Executor`].

mod backoff;
mod command;
mod docker;
mod error;
mod executor;
mod glob;
mod keys;
mod known_hosts;
mod local;
mod quote;
mod ssh;
mod upload;
mod wait;

pub use command::{Command, CommandBody, ExitStatus, Output, OutputStream, REDACTED};
pub use docker::*;
pub use error::{ExecError, SshError};
pub use executor::{ExecIo, Executor, LineCallback, check_output};
pub use keys::{
    KeyError, SecretText, create_private_dir, fingerprint, generate_ed25519,
    load_or_generate_keypair, load_private_key, load_public_key, parse_public_key,
    private_key_openssh, pub_path, public_key_line, write_keypair,
};
pub use known_hosts::{KnownHosts, KnownHostsError, host_pattern};
pub use local::LocalExecutor;
pub use quote::{quote, quote_argv};
pub use ssh::{SshConfig, SshPool, SshSession, SshTarget};
pub use upload::{
    ExcludeList, TarStream, UPLOAD_TIMEOUT, UploadError, UploadStats, tar_dir, upload_dir,
    upload_stream,
};
pub use wait::wait_for_sshd;

/// The key types of russh this crate's API uses.
pub use russh::keys::{PrivateKey, PublicKey};
