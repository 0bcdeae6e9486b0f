//! A minimal SSH client that only ever talks to a host whose key was pinned.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};

use crate::KeyPair;

/// Longest a command may run through `SshClient::exec` (long enough for `cloud-init
/// status --wait` on a booting VPS), so a hung command fails the test instead of hanging it.
const EXEC_TIMEOUT: Duration = Duration::from_secs(600);

/// Accepts the server only if it presents exactly the pinned key.
struct Pinned {
    expected: PublicKey,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(key.public_key().key_data() == self.expected.key_data())
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdOutput {
    /// Exit status; -1 when the server sent none (killed by a signal).
    pub code: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// A connected, authenticated SSH session as `root`.
pub struct SshClient {
    handle: Handle<Pinned>,
}

impl SshClient {
    /// Connects to `addr`, accepting only `host_key`, and logs in as root with `client`.
    pub async fn connect(
        addr: SocketAddr,
        host_key: &PublicKey,
        client: &KeyPair,
    ) -> Result<Self, russh::Error> {
        let config = Arc::new(client::Config {
            nodelay: true,
            inactivity_timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        });
        let pinned = Pinned {
            expected: host_key.clone(),
        };
        let mut handle = tokio::time::timeout(
            Duration::from_secs(10),
            client::connect(config, addr, pinned),
        )
        .await
        .map_err(|_| russh::Error::ConnectionTimeout)??;
        let key = PrivateKeyWithHashAlg::new(Arc::new(client.private().clone()), None);
        let auth = handle.authenticate_publickey("root", key).await?;
        if !auth.success() {
            return Err(russh::Error::NotAuthenticated);
        }
        Ok(Self { handle })
    }

    /// Retries [`Self::connect`] with backoff (on refused and reset connections, which a
    /// booting container's port proxy gives) until it succeeds or `timeout` passes.
    ///
    /// # Panics
    /// When `timeout` passes, with the last error.
    pub async fn connect_retrying(
        addr: SocketAddr,
        host_key: &PublicKey,
        client: &KeyPair,
        timeout: Duration,
    ) -> Self {
        let deadline = Instant::now() + timeout;
        let mut delay = Duration::from_millis(100);
        loop {
            match Self::connect(addr, host_key, client).await {
                Ok(c) => return c,
                Err(e) if Instant::now() + delay < deadline => {
                    tracing::debug!(%addr, error = %e, "ssh not ready yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => panic!("test bed: no SSH session with {addr} after {timeout:?}: {e}"),
            }
        }
    }

    /// Runs `command` through the remote shell and collects its output.
    ///
    /// # Panics
    /// On a transport error.
    pub async fn exec(&self, command: &str) -> CmdOutput {
        self.try_exec(command)
            .await
            .unwrap_or_else(|e| panic!("test bed: ssh exec `{command}` failed: {e}"))
    }

    /// Like [`Self::exec`], returning transport errors ([`russh::Error::InactivityTimeout`]
    /// when the command runs longer than ten minutes).
    pub async fn try_exec(&self, command: &str) -> Result<CmdOutput, russh::Error> {
        tokio::time::timeout(EXEC_TIMEOUT, self.exec_untimed(command))
            .await
            .map_err(|_| russh::Error::InactivityTimeout)?
    }

    async fn exec_untimed(&self, command: &str) -> Result<CmdOutput, russh::Error> {
        let mut channel = self.handle.channel_open_session().await?;
        channel.exec(true, command).await?;
        let (mut stdout, mut stderr, mut code) = (Vec::new(), Vec::new(), -1);
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => {
                    code = i32::try_from(exit_status).unwrap_or(i32::MAX)
                }
                _ => {}
            }
        }
        Ok(CmdOutput {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Closes the session.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}
