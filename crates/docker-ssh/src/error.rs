//! Error types. Each names what was being done and where, so a user can act on it, and none
//! ever carries private key material or a command's secrets.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::command::ExitStatus;

/// A connection-level SSH failure: the TCP connection, the host key check, authentication,
/// or the SSH protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshError {
    /// The TCP connection could not be made.
    #[error("could not connect to {target}: {source}")]
    Connect {
        /// `user@host:port`.
        target: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// Connecting (TCP, key exchange and authentication) took too long.
    #[error("connecting to {target} timed out after {after:?}")]
    ConnectTimeout {
        /// `user@host:port`.
        target: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// The server offered a host key that is not the pinned one: either the host was
    /// reinstalled (then pin its new key) or someone is in the middle. Nothing was sent.
    #[error(
        "host key mismatch for {host}: expected {}, but the server offered {offered}; \
         refusing to connect (if the host was rebuilt, pin its new key)",
        expected.join(" or ")
    )]
    HostKeyMismatch {
        /// `host:port` that was dialled.
        host: String,
        /// SHA256 fingerprints of the pinned keys.
        expected: Vec<String>,
        /// SHA256 fingerprint of the key the server offered.
        offered: String,
    },
    /// No host key is pinned for this host, so no connection is allowed (there is no
    /// trust-on-first-use).
    #[error(
        "no host key is pinned for {host}{}; the server offered {offered}; \
         refusing to connect (no trust-on-first-use): pin the host's key first",
        source_hint.as_ref().map(|p| format!(" (looked in {})", p.display())).unwrap_or_default()
    )]
    HostKeyNotPinned {
        /// `host:port` that was dialled.
        host: String,
        /// The known_hosts file that was consulted, if any.
        source_hint: Option<PathBuf>,
        /// SHA256 fingerprint of the key the server offered.
        offered: String,
    },
    /// The server refused our client key.
    #[error(
        "{target} refused public key authentication with key {fingerprint}; \
         is it in the user's authorized_keys?"
    )]
    AuthRejected {
        /// `user@host:port`.
        target: String,
        /// SHA256 fingerprint of the client's public key.
        fingerprint: String,
    },
    /// The SSH protocol failed (handshake, disconnect, channel errors).
    #[error("SSH error with {target}: {source}")]
    Protocol {
        /// `user@host:port`.
        target: String,
        /// The error from the SSH library.
        #[source]
        source: russh::Error,
    },
    /// [`wait_for_sshd`](crate::wait_for_sshd) saw no SSH handshake complete in time.
    #[error(
        "sshd at {address} did not complete an SSH handshake within {after:?} (last error: {last})"
    )]
    SshdNotReady {
        /// `host:port`.
        address: String,
        /// The limit.
        after: Duration,
        /// The last attempt's error.
        last: String,
    },
    /// The pool gave up reconnecting.
    #[error("could not reconnect to {target} after {attempts} attempts: {last}")]
    ReconnectFailed {
        /// `user@host:port`.
        target: String,
        /// How many connection attempts were made.
        attempts: u32,
        /// The last attempt's error.
        last: Box<SshError>,
    },
}

impl SshError {
    /// Whether retrying the connection later may succeed (a refused or reset socket, a
    /// dropped connection) as opposed to a permanent refusal (host key, authentication).
    /// A pool that gave up reconnecting is as transient as its last attempt's error: an
    /// sshd that is reloading drops connections for longer than a pool's few attempts.
    pub fn is_transient(&self) -> bool {
        match self {
            SshError::ReconnectFailed { last, .. } => last.is_transient(),
            SshError::Connect { .. }
            | SshError::ConnectTimeout { .. }
            | SshError::SshdNotReady { .. } => true,
            SshError::Protocol { source, .. } => !matches!(
                source,
                russh::Error::UnknownKey | russh::Error::NotAuthenticated
            ),
            SshError::HostKeyMismatch { .. }
            | SshError::HostKeyNotPinned { .. }
            | SshError::AuthRejected { .. } => false,
        }
    }
}

/// Running a command failed: it could not be started, did not finish, or (from
/// [`Executor::run_checked`](crate::Executor::run_checked)) exited unsuccessfully.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The command cannot be run as given.
    #[error("invalid command `{command}`: {reason}")]
    InvalidCommand {
        /// The redacted command line.
        command: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A command builder ([`DockerCli`](crate::DockerCli)) was given a value the program
    /// would misread (e.g. an image named `-o/path`, which `docker save` takes for an
    /// option) or cannot name anything; the command was refused before anything ran.
    #[error("refusing to run `{command}`: {what} {value:?} {rule}")]
    InvalidArgument {
        /// The redacted command line.
        command: String,
        /// What the value names (`container`, `image`, `volume`, `network`, `path`).
        what: &'static str,
        /// The refused value.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The command did not finish in time. If it had started, it was killed with the
    /// processes it started (if the connection could not even be made in time, it never
    /// started).
    #[error("`{command}` on {target} timed out after {after:?} (killed if it had started)")]
    Timeout {
        /// Where it ran.
        target: String,
        /// The redacted command line.
        command: String,
        /// The timeout.
        after: Duration,
    },
    /// A local process could not be started.
    #[error("could not start `{command}` on {target}: {source}")]
    Spawn {
        /// Where it was to run.
        target: String,
        /// The redacted command line.
        command: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reading output or writing stdin failed.
    #[error("I/O error while running `{command}` on {target}: {source}")]
    Io {
        /// Where it ran.
        target: String,
        /// The redacted command line.
        command: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// No connection to the target could be made (before the command started).
    #[error("could not run `{command}`: {source}")]
    Connection {
        /// The redacted command line.
        command: String,
        /// Why connecting failed.
        #[source]
        source: Box<SshError>,
    },
    /// The connection dropped while the command ran, so whether it ran is unknown. It was
    /// not retried because it is not marked idempotent, or the retries ran out.
    #[error(
        "connection to {target} was lost while running `{command}` ({detail}); \
         it may or may not have run"
    )]
    ConnectionLost {
        /// Where it ran.
        target: String,
        /// The redacted command line.
        command: String,
        /// What was observed.
        detail: String,
    },
    /// The command ran and exited unsuccessfully.
    #[error("`{command}` on {target} failed with {status}: {excerpt}")]
    Failed {
        /// Where it ran.
        target: String,
        /// The redacted command line.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// The last lines of its stderr (or stdout), redacted.
        excerpt: String,
    },
}

impl ExecError {
    /// True if the command was killed because its timeout expired.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ExecError::Timeout { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_that_gave_up_is_as_transient_as_its_last_error() {
        let target = || "root@127.0.0.1:2200".to_owned();
        // What a reloading sshd does to every attempt of a pool.
        let dropped = || SshError::Protocol {
            target: target(),
            source: russh::Error::Disconnect,
        };
        let gave_up = |last: SshError| SshError::ReconnectFailed {
            target: target(),
            attempts: 4,
            last: Box::new(last),
        };
        assert!(dropped().is_transient());
        assert!(gave_up(dropped()).is_transient(), "sshd reloading");
        let rejected = || SshError::AuthRejected {
            target: target(),
            fingerprint: "SHA256:x".into(),
        };
        assert!(!gave_up(rejected()).is_transient());
        let unpinned = || SshError::HostKeyNotPinned {
            host: "127.0.0.1:2200".into(),
            source_hint: None,
            offered: "SHA256:y".into(),
        };
        assert!(!unpinned().is_transient());
        assert!(!gave_up(unpinned()).is_transient());
    }
}
