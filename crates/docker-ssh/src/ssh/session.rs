//! One authenticated SSH connection with bounded concurrent channels.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use russh::client::{self, Handle};
use russh::keys::PrivateKeyWithHashAlg;
use russh::{ChannelMsg, Sig};
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::{HandlerError, PinningHandler, SshConfig, SshTarget, sig_name};
use crate::command::{Command, ExitStatus, LineSplitter, Output, OutputStream};
use crate::error::{ExecError, SshError};
use crate::executor::{ExecIo, Executor, LineCallback};
use crate::keys::fingerprint;

/// One authenticated SSH connection to a pinned host. Commands run on their own channels,
/// at most [`SshConfig::max_channels`] at once (the rest wait). It does not reconnect: use
/// [`SshPool`](crate::SshPool) for that.
pub struct SshSession {
    handle: Handle<PinningHandler>,
    target: SshTarget,
    channels: Arc<Semaphore>,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("target", &self.target)
            .field("closed", &self.handle.is_closed())
            .finish()
    }
}

/// Why a run on a channel failed, as the pool needs to know it.
pub(crate) enum RunFailure {
    /// The command surely did not start (channel open or exec request not delivered).
    NotStarted(String),
    /// The connection or channel went away after the command was sent.
    Lost(String),
    /// A final error (timeout, refused exec, I/O).
    Exec(ExecError),
}

impl SshSession {
    /// Connects (TCP with `TCP_NODELAY`, key exchange, host key check against the pins,
    /// public key authentication). One attempt, bounded by [`SshConfig::connect_timeout`].
    pub async fn connect(target: SshTarget, config: &SshConfig) -> Result<Self, SshError> {
        let who = target.to_string();
        let span = tracing::debug_span!("ssh_connect", target = %who);
        let limit = config.connect_timeout;
        let connecting = connect_inner(&target, config).instrument(span);
        let handle = tokio::time::timeout(limit, connecting)
            .await
            .map_err(|_| SshError::ConnectTimeout {
                target: who,
                after: limit,
            })??;
        Ok(Self {
            handle,
            target,
            channels: Arc::new(Semaphore::new(config.max_channels.max(1))),
        })
    }

    /// The target.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Disconnects politely.
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "bye", "en")
            .await;
    }

    /// Runs one command on a new channel. `deadline` bounds the whole run.
    pub(crate) async fn run_channel(
        &self,
        command: &Command,
        io: ExecIo<'_>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Output, RunFailure> {
        let timeout_error = || {
            RunFailure::Exec(ExecError::Timeout {
                target: self.target.to_string(),
                command: command.to_string(),
                after: command.timeout_value().unwrap_or_default(),
            })
        };
        let _permit = match deadline {
            Some(d) => tokio::time::timeout_at(d, self.channels.acquire())
                .await
                .map_err(|_| timeout_error())?,
            None => self.channels.acquire().await,
        }
        .map_err(|_| RunFailure::NotStarted("the session is shut down".into()))?;

        let opening = self.handle.channel_open_session();
        let channel = match deadline {
            Some(d) => tokio::time::timeout_at(d, opening)
                .await
                .map_err(|_| timeout_error())?,
            None => opening.await,
        }
        .map_err(|e| RunFailure::NotStarted(format!("could not open a channel: {e}")))?;
        let (mut rx, tx) = channel.split();
        tx.exec(true, command.command_line().into_bytes())
            .await
            .map_err(|e| RunFailure::NotStarted(format!("could not send the command: {e}")))?;

        let ExecIo { stdin, on_line } = io;
        let bytes = command.stdin_bytes();
        let feed = async {
            let sent = match (stdin, bytes) {
                (Some(reader), _) => tx.data(reader).await,
                (None, Some(bytes)) => tx.data(bytes).await,
                (None, None) => Ok(()),
            };
            // Always end stdin, even after a local read error, so the command is not left
            // waiting for input that will never come.
            let _ = tx.eof().await;
            sent
        };
        let collect = collect_channel(&mut rx, on_line);
        let both = async {
            tokio::pin!(feed);
            tokio::pin!(collect);
            let mut fed = false;
            loop {
                tokio::select! {
                    // Write errors are not fatal by themselves: the command may have exited
                    // without reading stdin. The read side tells what happened.
                    _ = &mut feed, if !fed => fed = true,
                    result = &mut collect => return result,
                }
            }
        };
        let result = match deadline {
            Some(d) => match tokio::time::timeout_at(d, both).await {
                Ok(r) => r,
                Err(_) => {
                    // sshd delivers the signal to the command's process group (the
                    // session runs it under setsid), then we close the channel.
                    let _ = tx.signal(Sig::KILL).await;
                    let _ = tx.close().await;
                    return Err(timeout_error());
                }
            },
            None => both.await,
        };
        match result {
            Collected::Done(out) => Ok(out),
            Collected::Refused => Err(RunFailure::Exec(ExecError::Spawn {
                target: self.target.to_string(),
                command: command.to_string(),
                source: std::io::Error::other("the SSH server refused the exec request"),
            })),
            Collected::NoStatus => Err(RunFailure::Lost(if self.handle.is_closed() {
                "the connection closed".to_owned()
            } else {
                "the channel closed without an exit status".to_owned()
            })),
        }
    }
}

async fn connect_inner(
    target: &SshTarget,
    config: &SshConfig,
) -> Result<Handle<PinningHandler>, SshError> {
    let display = target.to_string();
    let stream = TcpStream::connect((target.host(), target.port()))
        .await
        .map_err(|source| SshError::Connect {
            target: display.clone(),
            source,
        })?;
    stream
        .set_nodelay(true)
        .map_err(|source| SshError::Connect {
            target: display.clone(),
            source,
        })?;
    let handler = PinningHandler::for_target(target);
    let mut handle = client::connect_stream(config.russh_config(), stream, handler)
        .await
        .map_err(|e| match e {
            HandlerError::HostKey(e) => e,
            HandlerError::Ssh(source) => SshError::Protocol {
                target: display.clone(),
                source,
            },
        })?;
    let key = PrivateKeyWithHashAlg::new(target.client_key().clone(), None);
    let auth = handle
        .authenticate_publickey(target.user(), key)
        .await
        .map_err(|source| SshError::Protocol {
            target: display.clone(),
            source,
        })?;
    if !auth.success() {
        return Err(SshError::AuthRejected {
            target: display,
            fingerprint: fingerprint(target.client_public_key()),
        });
    }
    Ok(handle)
}

enum Collected {
    Done(Output),
    /// The server answered the exec request with failure.
    Refused,
    /// The channel ended without an exit status.
    NoStatus,
}

async fn collect_channel(
    rx: &mut russh::ChannelReadHalf,
    mut on_line: Option<LineCallback<'_>>,
) -> Collected {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut out_lines = LineSplitter::default();
    let mut err_lines = LineSplitter::default();
    let mut status = None;
    let mut refused = false;
    while let Some(msg) = rx.wait().await {
        match msg {
            ChannelMsg::Data { data } => {
                stdout.extend_from_slice(&data);
                if let Some(cb) = on_line.as_deref_mut() {
                    out_lines.push(&data, &mut |l| cb(OutputStream::Stdout, l));
                }
            }
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                stderr.extend_from_slice(&data);
                if let Some(cb) = on_line.as_deref_mut() {
                    err_lines.push(&data, &mut |l| cb(OutputStream::Stderr, l));
                }
            }
            ChannelMsg::ExitStatus { exit_status } => status = Some(ExitStatus::Code(exit_status)),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                status = Some(ExitStatus::Signal(sig_name(&signal_name)));
            }
            ChannelMsg::Failure if status.is_none() => refused = true,
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    if let Some(cb) = on_line {
        out_lines.finish(&mut |l| cb(OutputStream::Stdout, l));
        err_lines.finish(&mut |l| cb(OutputStream::Stderr, l));
    }
    match status {
        Some(status) => Collected::Done(Output {
            status,
            stdout,
            stderr,
        }),
        None if refused => Collected::Refused,
        None => Collected::NoStatus,
    }
}

/// Runs a command on a session with tracing and error mapping (no retries).
pub(crate) async fn traced<F, Fut>(
    target: &str,
    command: &Command,
    run: F,
) -> Result<Output, ExecError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Output, ExecError>>,
{
    let span = tracing::debug_span!(
        "exec",
        target = %target,
        command = %command,
        duration_ms = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let started = Instant::now();
    let result = run().instrument(span.clone()).await;
    span.record("duration_ms", started.elapsed().as_millis() as u64);
    match &result {
        Ok(out) => span.record("status", tracing::field::display(&out.status)),
        Err(e) => span.record("status", tracing::field::display(e)),
    };
    result
}

pub(crate) fn precheck(
    command: &Command,
    stdin: &Option<&mut (dyn AsyncRead + Send + Unpin)>,
) -> Result<(), ExecError> {
    command
        .validate()
        .map_err(|reason| ExecError::InvalidCommand {
            command: command.to_string(),
            reason,
        })?;
    if stdin.is_some() && command.stdin_bytes().is_some() {
        return Err(ExecError::InvalidCommand {
            command: command.to_string(),
            reason: "it has stdin bytes and a stdin stream at the same time",
        });
    }
    Ok(())
}

#[async_trait]
impl Executor for SshSession {
    fn target(&self) -> String {
        self.target.to_string()
    }

    async fn execute(&self, command: &Command, io: ExecIo<'_>) -> Result<Output, ExecError> {
        precheck(command, &io.stdin)?;
        let target = self.target.to_string();
        traced(&target, command, || async {
            let deadline = command
                .timeout_value()
                .map(|t| tokio::time::Instant::now() + t);
            match self.run_channel(command, io, deadline).await {
                Ok(out) => Ok(out),
                Err(RunFailure::Exec(e)) => Err(e),
                Err(RunFailure::NotStarted(detail)) | Err(RunFailure::Lost(detail)) => {
                    Err(ExecError::ConnectionLost {
                        target: target.clone(),
                        command: command.to_string(),
                        detail,
                    })
                }
            }
        })
        .await
    }
}
