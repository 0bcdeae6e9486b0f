//! SSH on russh: targets with pinned host keys, one connection ([`SshSession`]) and the
//! reconnecting pool ([`SshPool`]).

mod pool;
mod session;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PublicKey, PublicKeyOrCertificate};

pub use pool::SshPool;
pub use session::SshSession;

use crate::error::SshError;
use crate::keys::fingerprint;
use crate::known_hosts::{KnownHosts, KnownHostsError};

/// Where to connect and as whom: address, user, client key and the **pinned** host keys.
///
/// There is no way to connect without a pin and no trust-on-first-use: a server whose key
/// is not pinned is refused before anything is sent (see [`SshError::HostKeyMismatch`]
/// and [`SshError::HostKeyNotPinned`]). `Debug` shows fingerprints, never the private key.
#[derive(Clone)]
pub struct SshTarget {
    host: String,
    port: u16,
    user: String,
    client_key: Arc<PrivateKey>,
    host_keys: Vec<PublicKey>,
    known_hosts: Option<PathBuf>,
}

impl SshTarget {
    /// `user@host:port`, authenticating with `client_key`, accepting only `host_key`.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        client_key: Arc<PrivateKey>,
        host_key: PublicKey,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            user: user.into(),
            client_key,
            host_keys: vec![host_key],
            known_hosts: None,
        }
    }

    /// `user@host:port`, accepting the keys pinned for it in `known_hosts`. If none is
    /// pinned, the target is still created, but connecting fails with
    /// [`SshError::HostKeyNotPinned`] naming the file and the key the server offered.
    pub fn from_known_hosts(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        client_key: Arc<PrivateKey>,
        known_hosts: &KnownHosts,
    ) -> Result<Self, KnownHostsError> {
        let host = host.into();
        let host_keys = known_hosts.lookup(&host, port)?;
        Ok(Self {
            host,
            port,
            user: user.into(),
            client_key,
            host_keys,
            known_hosts: Some(known_hosts.path().to_owned()),
        })
    }

    /// Also accepts `key` (e.g. during a host key rotation).
    pub fn also_accept(mut self, key: PublicKey) -> Self {
        self.host_keys.push(key);
        self
    }

    /// Host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Remote user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The pinned host keys.
    pub fn pinned_host_keys(&self) -> &[PublicKey] {
        &self.host_keys
    }

    /// The client's public key.
    pub fn client_public_key(&self) -> &PublicKey {
        self.client_key.public_key()
    }

    /// `host:port` (`[v6]:port` for IPv6 literals).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub(crate) fn client_key(&self) -> &Arc<PrivateKey> {
        &self.client_key
    }

    /// Whether a connection made for `self` is also one for `other`: same address, user,
    /// client key and pins (the known_hosts path is only a hint in errors).
    pub(crate) fn same_connection(&self, other: &SshTarget) -> bool {
        let same_keys = |a: &[PublicKey], b: &[PublicKey]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.key_data() == y.key_data())
        };
        self.host == other.host
            && self.port == other.port
            && self.user == other.user
            && self.client_key.public_key().key_data() == other.client_key.public_key().key_data()
            && same_keys(&self.host_keys, &other.host_keys)
    }
}

impl fmt::Display for SshTarget {
    /// `user@host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.address())
    }
}

impl fmt::Debug for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pins: Vec<String> = self.host_keys.iter().map(fingerprint).collect();
        f.debug_struct("SshTarget")
            .field("user", &self.user)
            .field("address", &self.address())
            .field("client_key", &fingerprint(self.client_key.public_key()))
            .field("pinned_host_keys", &pins)
            .field("known_hosts", &self.known_hosts)
            .finish()
    }
}

/// Connection settings. The defaults suit a VPS with stock sshd (`MaxSessions 10`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SshConfig {
    /// Limit for TCP connect, key exchange and authentication of one attempt.
    pub connect_timeout: Duration,
    /// Send a keepalive after this much silence from the server…
    pub keepalive_interval: Duration,
    /// …and drop the connection after this many unanswered ones.
    pub keepalive_max: usize,
    /// Most channels (commands) open at once on one connection. Default 8: with the one
    /// extra channel used to kill a timed-out command, that stays below sshd's default
    /// `MaxSessions 10`. Raise it only for servers configured with more.
    pub max_channels: usize,
    /// Connection attempts per (re)connect, for refused, reset or timed-out connections.
    pub connect_attempts: u32,
    /// Attempts per command across reconnects (see [`Command::idempotent`](crate::Command::idempotent)).
    pub command_attempts: u32,
    /// First delay between retries (it grows up to `retry_max_delay`).
    pub retry_initial_delay: Duration,
    /// Longest delay between retries.
    pub retry_max_delay: Duration,
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(15),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 4,
            max_channels: 8,
            connect_attempts: 4,
            command_attempts: 3,
            retry_initial_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(3),
        }
    }
}

impl SshConfig {
    /// Sets [`max_channels`](Self::max_channels) (at least 1).
    pub fn max_channels(mut self, n: usize) -> Self {
        self.max_channels = n.max(1);
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Sets keepalive interval and count.
    pub fn keepalive(mut self, interval: Duration, max: usize) -> Self {
        self.keepalive_interval = interval;
        self.keepalive_max = max;
        self
    }

    /// Sets the attempts per connect and per command.
    pub fn attempts(mut self, connect: u32, command: u32) -> Self {
        self.connect_attempts = connect.max(1);
        self.command_attempts = command.max(1);
        self
    }

    /// Sets the retry delays.
    pub fn retry_delays(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial_delay = initial;
        self.retry_max_delay = max.max(initial);
        self
    }

    /// The russh client configuration: `nodelay` always on (Nagle costs ~40 ms per
    /// command), keepalives on, and AES-256-GCM preferred over russh's first choice,
    /// ChaCha20-Poly1305: both are AEADs that OpenSSH offers by default, and with AES-NI
    /// (any x86-64 or ARMv8 server) GCM costs this process a fraction of the CPU per byte,
    /// which is what an image streamed to a VPS spends most of its CPU on.
    pub(crate) fn russh_config(&self) -> Arc<client::Config> {
        Arc::new(client::Config {
            nodelay: true,
            keepalive_interval: Some(self.keepalive_interval),
            keepalive_max: self.keepalive_max,
            inactivity_timeout: None,
            window_size: 8 * 1024 * 1024,
            preferred: russh::Preferred {
                cipher: std::borrow::Cow::Borrowed(CIPHERS),
                ..russh::Preferred::default()
            },
            ..client::Config::default()
        })
    }
}

/// Errors of the russh handler: the library's own, or our host key refusal.
#[derive(Debug)]
pub(crate) enum HandlerError {
    Ssh(russh::Error),
    HostKey(SshError),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}

/// Accepts exactly the pinned host keys.
pub(crate) struct PinningHandler {
    pub(crate) host: String,
    pub(crate) pins: Vec<PublicKey>,
    pub(crate) known_hosts: Option<PathBuf>,
}

impl PinningHandler {
    pub(crate) fn for_target(target: &SshTarget) -> Self {
        Self {
            host: target.address(),
            pins: target.host_keys.clone(),
            known_hosts: target.known_hosts.clone(),
        }
    }
}

impl client::Handler for PinningHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // Certificates are not trusted: only the plain pinned key is.
        let (key, is_certificate) = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => (key.clone(), false),
            PublicKeyOrCertificate::Certificate(_) => (offered.public_key(), true),
        };
        if !is_certificate && self.pins.iter().any(|p| p.key_data() == key.key_data()) {
            return Ok(true);
        }
        let offered = fingerprint(&key);
        Err(HandlerError::HostKey(if self.pins.is_empty() {
            SshError::HostKeyNotPinned {
                host: self.host.clone(),
                source_hint: self.known_hosts.clone(),
                offered,
            }
        } else {
            SshError::HostKeyMismatch {
                host: self.host.clone(),
                expected: self.pins.iter().map(fingerprint).collect(),
                offered,
            }
        }))
    }
}

/// The SSH name of a signal (`KILL`, `TERM`, …).
pub(crate) fn sig_name(sig: &russh::Sig) -> String {
    use russh::Sig;
    match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => return name.clone(),
    }
    .to_owned()
}

/// The ciphers offered, in order of preference: russh's defaults with AES-256-GCM first
/// (see [`SshConfig::russh_config`]).
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_ed25519, private_key_openssh};

    #[test]
    fn debug_shows_fingerprints_never_the_private_key() {
        let client = generate_ed25519().expect("gen");
        let pem = private_key_openssh(&client).expect("pem");
        let host = generate_ed25519().expect("gen").public_key().clone();
        let target = SshTarget::new("::1", 2222, "root", Arc::new(client.clone()), host.clone());
        let dbg = format!("{target:?}");
        assert!(dbg.contains(&fingerprint(client.public_key())), "{dbg}");
        assert!(dbg.contains(&fingerprint(&host)), "{dbg}");
        let secret_line = pem.expose().lines().nth(1).expect("a base64 line");
        assert!(!dbg.contains(secret_line), "{dbg}");
        assert_eq!(target.to_string(), "root@[::1]:2222");
    }

    #[test]
    fn russh_config_always_sets_nodelay() {
        let cfg = SshConfig::default().max_channels(0).russh_config();
        assert!(cfg.nodelay);
        assert!(cfg.keepalive_interval.is_some());
        assert_eq!(SshConfig::default().max_channels(0).max_channels, 1);
        assert!(SshConfig::default().max_channels < 10);
    }

    #[test]
    fn pinning_handler_refuses_unpinned_and_mismatched_keys() {
        use russh::client::Handler;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let pinned = generate_ed25519().expect("gen").public_key().clone();
        let other = generate_ed25519().expect("gen").public_key().clone();
        rt.block_on(async {
            let mut h = PinningHandler {
                host: "127.0.0.1:2222".into(),
                pins: vec![pinned.clone()],
                known_hosts: None,
            };
            assert!(matches!(
                h.check_server_key(&pinned.clone().into()).await,
                Ok(true)
            ));
            let Err(HandlerError::HostKey(e)) = h.check_server_key(&other.clone().into()).await
            else {
                panic!("mismatch accepted");
            };
            let msg = e.to_string();
            assert!(msg.contains("127.0.0.1:2222"), "{msg}");
            assert!(msg.contains(&fingerprint(&pinned)), "{msg}");
            assert!(msg.contains(&fingerprint(&other)), "{msg}");
            let mut none = PinningHandler {
                host: "h:22".into(),
                pins: vec![],
                known_hosts: Some("/k/known_hosts".into()),
            };
            let Err(HandlerError::HostKey(e)) = none.check_server_key(&other.clone().into()).await
            else {
                panic!("unpinned accepted");
            };
            let msg = e.to_string();
            assert!(msg.contains("no host key is pinned for h:22"), "{msg}");
            assert!(
                msg.contains("/k/known_hosts") && msg.contains(&fingerprint(&other)),
                "{msg}"
            );
        });
    }
}
