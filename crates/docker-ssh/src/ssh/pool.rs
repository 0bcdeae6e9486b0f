//! [`SshPool`]: one reconnecting connection per target, shared by many commands.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;
use vps_primitives::Backoff;

use super::session::{RunFailure, SshSession, traced};
use super::{SshConfig, SshTarget};
use crate::command::{Command, Output};
use crate::error::{ExecError, SshError};
use crate::executor::{ExecIo, Executor, precheck};

/// A pooled connection to one target: commands share one SSH connection, each on its own
/// channel, at most [`SshConfig::max_channels`] at once. The connection is made on first
/// use and remade transparently when it drops (sshd restarted, network blip), with bounded,
/// backed-off retries. Cloning is cheap and shares the connection.
///
/// A command is retried on a new connection when it surely never started; one that was
/// running when the connection dropped is retried only if marked
/// [`idempotent`](Command::idempotent) (and fed no stdin stream), otherwise it fails with
/// [`ExecError::ConnectionLost`].
#[derive(Clone)]
pub struct SshPool {
    inner: Arc<Inner>,
}

struct Inner {
    target: SshTarget,
    config: SshConfig,
    current: Mutex<Option<Arc<SshSession>>>,
}

impl std::fmt::Debug for SshPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshPool")
            .field("target", &self.inner.target)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl SshPool {
    /// A pool for `target`. Nothing is connected until the first command (or
    /// [`SshPool::connect`]).
    pub fn new(target: SshTarget, config: SshConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                target,
                config,
                current: Mutex::new(None),
            }),
        }
    }

    /// The target.
    pub fn target(&self) -> &SshTarget {
        &self.inner.target
    }

    /// Connects now (with the configured retries) if not connected, so connection errors
    /// (wrong host key, refused authentication) surface here rather than on a command.
    pub async fn connect(&self) -> Result<(), SshError> {
        self.session().await.map(drop)
    }

    /// Closes the current connection; the next command reconnects.
    pub async fn close(&self) {
        let current = self.inner.current.lock().await.take();
        if let Some(session) = current {
            session.close().await;
        }
    }

    /// The live session, connecting (with retries) if there is none.
    async fn session(&self) -> Result<Arc<SshSession>, SshError> {
        let mut current = self.inner.current.lock().await;
        if let Some(s) = current.as_ref()
            && !s.is_closed()
        {
            return Ok(s.clone());
        }
        *current = None;
        let session = Arc::new(self.connect_with_retries().await?);
        *current = Some(session.clone());
        Ok(session)
    }

    async fn connect_with_retries(&self) -> Result<SshSession, SshError> {
        let config = &self.inner.config;
        let mut backoff = Backoff::new(config.retry_initial_delay, config.retry_max_delay)
            .with_jitter(0.2)
            .delays();
        let attempts = config.connect_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match SshSession::connect(self.inner.target.clone(), config).await {
                Ok(s) => {
                    if attempt > 1 {
                        tracing::info!(target = %self.inner.target, attempt, "reconnected");
                    }
                    return Ok(s);
                }
                Err(e) if !e.is_transient() => return Err(e),
                Err(e) if attempt >= attempts => {
                    return Err(if attempts == 1 {
                        e
                    } else {
                        SshError::ReconnectFailed {
                            target: self.inner.target.to_string(),
                            attempts,
                            last: Box::new(e),
                        }
                    });
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::debug!(target = %self.inner.target, attempt, error = %e, ?delay, "connect failed, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Forgets `session` if it is still the current one and has closed.
    async fn discard(&self, session: &Arc<SshSession>) {
        let mut current = self.inner.current.lock().await;
        if let Some(s) = current.as_ref()
            && Arc::ptr_eq(s, session)
            && s.is_closed()
        {
            *current = None;
        }
    }
}

#[async_trait]
impl Executor for SshPool {
    fn target(&self) -> String {
        self.inner.target.to_string()
    }

    async fn execute(&self, command: &Command, io: ExecIo<'_>) -> Result<Output, ExecError> {
        precheck(command, &io.stdin)?;
        let target = self.inner.target.to_string();
        traced(&target, command, || async {
            let deadline = command
                .timeout_value()
                .map(|t| tokio::time::Instant::now() + t);
            let timeout_error = || ExecError::Timeout {
                target: target.clone(),
                command: command.to_string(),
                after: command.timeout_value().unwrap_or_default(),
            };
            let config = &self.inner.config;
            let mut backoff = Backoff::new(config.retry_initial_delay, config.retry_max_delay)
                .with_jitter(0.2)
                .delays();
            // Streams cannot be replayed: such a command is not retried once it may have run.
            let streamed = io.stdin.is_some() || io.stdout.is_some();
            let ExecIo {
                mut stdin,
                mut on_line,
                mut stdout,
            } = io;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let session = match deadline {
                    Some(d) => tokio::time::timeout_at(d, self.session())
                        .await
                        .map_err(|_| timeout_error())?,
                    None => self.session().await,
                }
                .map_err(|e| ExecError::Connection {
                    command: command.to_string(),
                    source: Box::new(e),
                })?;
                let io = ExecIo {
                    stdin: stdin.as_mut().map(|r| &mut **r as _),
                    on_line: on_line.as_mut().map(|f| &mut **f as _),
                    stdout: stdout.as_mut().map(|w| &mut **w as _),
                };
                let detail = match session.run_channel(command, io, deadline).await {
                    Ok(out) => return Ok(out),
                    Err(RunFailure::Exec(e)) => return Err(e),
                    Err(RunFailure::NotStarted(detail)) => {
                        self.discard(&session).await;
                        detail
                    }
                    Err(RunFailure::Lost(detail)) => {
                        self.discard(&session).await;
                        if !command.is_idempotent() || streamed {
                            return Err(ExecError::ConnectionLost {
                                target: target.clone(),
                                command: command.to_string(),
                                detail,
                            });
                        }
                        detail
                    }
                };
                if attempt >= config.command_attempts.max(1) {
                    return Err(ExecError::ConnectionLost {
                        target: target.clone(),
                        command: command.to_string(),
                        detail: format!("{detail}; gave up after {attempt} attempts"),
                    });
                }
                let delay = backoff.next_delay();
                tracing::debug!(%target, attempt, %detail, ?delay, "command interrupted, retrying");
                match deadline {
                    Some(d) if tokio::time::Instant::now() + delay >= d => {
                        return Err(timeout_error());
                    }
                    _ => tokio::time::sleep(delay).await,
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::keys::generate_ed25519;

    #[tokio::test]
    async fn gives_up_after_bounded_retries_on_a_refused_port() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let target = SshTarget::new(
            "127.0.0.1",
            port,
            "root",
            Arc::new(generate_ed25519().expect("gen")),
            generate_ed25519().expect("gen").public_key().clone(),
        );
        let config = SshConfig::default()
            .attempts(3, 2)
            .retry_delays(Duration::from_millis(100), Duration::from_millis(200));
        let pool = SshPool::new(target, config);
        let started = Instant::now();
        let err = pool
            .run(&Command::argv(["true"]))
            .await
            .expect_err("nothing listens");
        let took = started.elapsed();
        // Two backoff delays between three attempts: no busy loop, no endless retry.
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        let ExecError::Connection { source, .. } = &err else {
            panic!("unexpected error {err}");
        };
        assert!(
            matches!(**source, SshError::ReconnectFailed { attempts: 3, .. }),
            "{source}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    }
}
