//! Waiting for an instance: deadlines and reachability probes, with pauses from the
//! toolkit's one schedule, [`vps_primitives::Backoff`].
//!
//! This is the one place where the toolkit polls a provider. [`wait_until_active`] polls
//! until the provider says the instance is active *and* a caller-supplied probe reaches
//! one of its ports; this crate knows nothing of SSH, so the probe decides what
//! "reachable" means ([`probe_tcp_connect`] and [`probe_tcp_banner`] are two simple ones).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use vps_primitives::{Backoff, VpsInstanceId, VpsInstanceStatus};

use crate::{VpsClient, VpsClientError};

/// How long and how often [`wait_until_active`] polls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WaitOptions {
    /// Give up after this long (upstream waits 300 s for a cloud VPS).
    pub timeout: Duration,
    /// Pauses between polls (the toolkit's one schedule, [`Backoff`]).
    pub backoff: Backoff,
    /// How long one probe may take before it counts as "not reachable".
    pub probe_timeout: Duration,
}

impl Default for WaitOptions {
    /// 300 s; pauses of 250 ms growing by half each time, at most 5 s (gentle on a
    /// provider's rate limits and on the CPU of a local test bed, yet quick to notice a
    /// fast boot), with 20 % jitter so that many waits do not poll in lockstep; 10 s per
    /// probe.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(5))
                .with_factor(1.5)
                .with_jitter(0.2),
            probe_timeout: Duration::from_secs(10),
        }
    }
}

impl WaitOptions {
    /// The defaults with another overall timeout.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            ..Self::default()
        }
    }
}

/// Polls until the provider reports `id` as [`VpsInstanceStatus::Active`] with an address
/// for `port`, and `probe` succeeds on that address. Returns the address.
///
/// - Transient provider errors ([`VpsClientError::is_transient`]) and failed probes are
///   retried with [`WaitOptions::backoff`] until [`WaitOptions::timeout`].
/// - Any other error (the instance is gone, the API refuses) ends the wait at once.
/// - An instance seen [`VpsInstanceStatus::Destroying`] ends the wait at once with
///   [`VpsClientError::Destroying`], which is not transient: it will never become active.
/// - On timeout the error is [`VpsClientError::Timeout`] whose `last_seen` says what the
///   last poll saw (a status, a provider error, or why the probe failed).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), vps_client::VpsClientError> {
/// use std::time::Duration;
/// use vps_client::{VpsClient, WaitOptions, probe_tcp_connect, wait_until_active};
///
/// async fn ssh_port(client: &dyn VpsClient, id: &vps_primitives::VpsInstanceId)
///     -> Result<std::net::SocketAddr, vps_client::VpsClientError> {
///     let opts = WaitOptions::with_timeout(Duration::from_secs(300));
///     wait_until_active(client, id, 22, &opts, probe_tcp_connect).await
/// }
/// # Ok(()) }
/// ```
pub async fn wait_until_active<C, P, F, E>(
    client: &C,
    id: &VpsInstanceId,
    port: u16,
    options: &WaitOptions,
    mut probe: P,
) -> Result<SocketAddr, VpsClientError>
where
    C: VpsClient + ?Sized,
    P: FnMut(SocketAddr) -> F,
    F: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    let started = Instant::now();
    let deadline = started + options.timeout;
    let mut delays = options.backoff.delays();
    // Poll, pause, poll ... and poll once more exactly at the deadline, so a long pause
    // never hides an instance that became ready just before it.
    let last_seen = loop {
        let seen = match poll_once(client, id, port, options, &mut probe).await {
            Ok(addr) => return Ok(addr),
            Err(PollFailure::Fatal(e)) => return Err(e),
            Err(PollFailure::Retry(seen)) => seen,
        };
        let Some(pause) = delays.next_within(deadline.saturating_duration_since(Instant::now()))
        else {
            break seen;
        };
        tracing::debug!(instance = %id, port, %seen, ?pause, "not active and reachable yet");
        tokio::time::sleep(pause).await;
    };
    Err(VpsClientError::Timeout {
        id: id.clone(),
        wanted: "active and reachable",
        waited_secs: started.elapsed().as_secs_f64(),
        last_seen,
    })
}

enum PollFailure {
    /// Worth another poll; the text says what was seen.
    Retry(String),
    /// Waiting longer cannot help.
    Fatal(VpsClientError),
}

async fn poll_once<C, P, F, E>(
    client: &C,
    id: &VpsInstanceId,
    port: u16,
    options: &WaitOptions,
    probe: &mut P,
) -> Result<SocketAddr, PollFailure>
where
    C: VpsClient + ?Sized,
    P: FnMut(SocketAddr) -> F,
    F: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    let status = match client.instance_status(id).await {
        Ok(status) => status,
        Err(e) if e.is_transient() => return Err(PollFailure::Retry(format!("error: {e}"))),
        Err(e) => return Err(PollFailure::Fatal(e)),
    };
    match status {
        VpsInstanceStatus::Active => {}
        VpsInstanceStatus::Destroying => {
            return Err(PollFailure::Fatal(VpsClientError::Destroying {
                id: id.clone(),
            }));
        }
        other => return Err(PollFailure::Retry(format!("status {other}"))),
    }
    let addr = match client.socket_addr(id, port).await {
        Ok(addr) => addr,
        Err(e) if e.is_transient() => {
            return Err(PollFailure::Retry(format!(
                "status ACTIVE, no address for port {port} yet: {e}"
            )));
        }
        Err(e) => return Err(PollFailure::Fatal(e)),
    };
    match tokio::time::timeout(options.probe_timeout, probe(addr)).await {
        Ok(Ok(())) => Ok(addr),
        Ok(Err(e)) => Err(PollFailure::Retry(format!(
            "status ACTIVE, port {port} at {addr} not reachable: {e}"
        ))),
        Err(_) => Err(PollFailure::Retry(format!(
            "status ACTIVE, port {port} at {addr} did not answer within {:.1}s",
            options.probe_timeout.as_secs_f64()
        ))),
    }
}

/// A probe that succeeds when a TCP connection to `addr` opens.
///
/// Enough for a cloud VPS. Behind a port forwarder (Docker's `docker-proxy` on a local
/// fake VPS) a connection opens before the server listens; use [`probe_tcp_banner`] there.
pub async fn probe_tcp_connect(addr: SocketAddr) -> std::io::Result<()> {
    TcpStream::connect(addr).await.map(drop)
}

/// A probe that succeeds when the server at `addr` sends bytes starting with `prefix`
/// first, e.g. `b"SSH-"` for an SSH server's identification line, which proves that the
/// server itself (not a port forwarder) answered.
pub async fn probe_tcp_banner(addr: SocketAddr, prefix: &[u8]) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut seen = vec![0u8; prefix.len()];
    let mut filled = 0;
    while filled < prefix.len() {
        let n = stream.read(&mut seen[filled..]).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the connection was closed before the server greeted",
            ));
        }
        filled += n;
    }
    if seen == prefix {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the server greeted with {:?}, expected {:?}",
                String::from_utf8_lossy(&seen),
                String::from_utf8_lossy(prefix)
            ),
        ))
    }
}
