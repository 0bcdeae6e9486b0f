//! [`wait_for_sshd`]: wait until a freshly booted server answers SSH.

use std::time::Duration;

use russh::client;
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::Instrument;
use vps_primitives::Backoff;

use crate::error::SshError;
use crate::ssh::SshConfig;

/// Longest time one probe may take.
const PROBE_LIMIT: Duration = Duration::from_secs(5);

enum ProbeError {
    Ssh(russh::Error),
    GotKey(PublicKey),
}

impl std::fmt::Debug for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Ssh(e) => write!(f, "{e:?}"),
            ProbeError::GotKey(_) => f.write_str("GotKey"),
        }
    }
}

impl From<russh::Error> for ProbeError {
    fn from(e: russh::Error) -> Self {
        ProbeError::Ssh(e)
    }
}

/// Captures the offered host key and stops the handshake right there: the key is never
/// trusted, nothing is authenticated or sent.
struct Probe;

impl client::Handler for Probe {
    type Error = ProbeError;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Err(ProbeError::GotKey(offered.public_key()))
    }
}

/// Waits until the SSH server at `host:port` completes a key exchange, retrying refused
/// *and* reset connections (and timeouts, and servers that close early) with growing
/// delays (100 ms up to 2 s, never a busy loop), for at most `timeout`.
///
/// Returns the host key the server offered, so a caller can check it is the one it is
/// about to pin; it is **not** trusted here: no authentication happens and nothing is sent.
///
/// ```no_run
/// # async fn demo(expected: russh::keys::PublicKey) -> Result<(), docker_ssh::SshError> {
/// use std::time::Duration;
/// let offered = docker_ssh::wait_for_sshd("203.0.113.7", 22, Duration::from_secs(60)).await?;
/// if offered.key_data() != expected.key_data() {
///     eprintln!("sshd is up but serves another key: {}", docker_ssh::fingerprint(&offered));
/// }
/// # Ok(()) }
/// ```
pub async fn wait_for_sshd(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<PublicKey, SshError> {
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let span = tracing::debug_span!("wait_for_sshd", %address);
    wait_loop(host, port, timeout, address)
        .instrument(span)
        .await
}

async fn wait_loop(
    host: &str,
    port: u16,
    timeout: Duration,
    address: String,
) -> Result<PublicKey, SshError> {
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2))
        .with_jitter(0.2)
        .delays();
    let config = SshConfig::default().russh_config();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let limit = remaining.clamp(Duration::from_millis(200), PROBE_LIMIT);
        let last = match tokio::time::timeout(limit, probe(host, port, config.clone())).await {
            Ok(Ok(key)) => {
                tracing::debug!(attempts, "sshd answered");
                return Ok(key);
            }
            Ok(Err(e)) => e,
            Err(_) => format!("no handshake within {limit:?}"),
        };
        // Pauses never pass the deadline, and the last probe is made right at it.
        let Some(delay) = backoff.next_within(deadline.saturating_duration_since(Instant::now()))
        else {
            return Err(SshError::SshdNotReady {
                address,
                after: timeout,
                last,
            });
        };
        tracing::trace!(attempts, %last, ?delay, "sshd not ready");
        tokio::time::sleep(delay).await;
    }
}

async fn probe(
    host: &str,
    port: u16,
    config: std::sync::Arc<client::Config>,
) -> Result<PublicKey, String> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    match client::connect_stream(config, stream, Probe).await {
        Err(ProbeError::GotKey(key)) => Ok(key),
        Err(ProbeError::Ssh(e)) => Err(e.to_string()),
        Ok(_) => Err("the handshake finished without a host key check".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gives_up_on_a_closed_port_after_the_timeout_without_spinning() {
        // Bind then drop to get a port that refuses connections.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let started = std::time::Instant::now();
        let err = wait_for_sshd("127.0.0.1", port, Duration::from_millis(1200))
            .await
            .expect_err("nothing listens");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(700), "{took:?}");
        assert!(took < Duration::from_secs(4), "{took:?}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
        assert!(msg.to_lowercase().contains("refused"), "{msg}");
    }

    #[tokio::test]
    async fn retries_reset_connections_until_sshd_appears() {
        // A listener that accepts and immediately drops connections (reset / early EOF).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = sock.set_zero_linger();
                drop(sock);
            }
        });
        let err = wait_for_sshd("127.0.0.1", port, Duration::from_millis(1500))
            .await
            .expect_err("never a handshake");
        server.abort();
        let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
        // Retried several times, but with backoff: no busy loop.
        assert!((2..=15).contains(&n), "{n} attempts");
        assert!(matches!(err, SshError::SshdNotReady { .. }), "{err}");
    }
}
