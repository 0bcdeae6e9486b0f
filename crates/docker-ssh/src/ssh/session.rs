//! One authenticated SSH connection with bounded concurrent channels.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use russh::client::{self, Handle};
use russh::keys::PrivateKeyWithHashAlg;
use russh::{ChannelMsg, Sig};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::{HandlerError, PinningHandler, SshConfig, SshTarget, sig_name};
use crate::command::{Command, CommandBody, ExitStatus, LineSplitter, Output, OutputStream};
use crate::error::{ExecError, SshError};
use crate::executor::{ExecIo, Executor, LineCallback, precheck};
use crate::keys::fingerprint;
use vps_primitives::{Backoff, quote, quote_argv};

/// One authenticated SSH connection to a pinned host. Commands run on their own channels,
/// at most [`SshConfig::max_channels`] at once (the rest wait). It does not reconnect: use
/// [`SshPool`](crate::SshPool) for that.
pub struct SshSession {
    handle: Handle<PinningHandler>,
    target: SshTarget,
    channels: Arc<Semaphore>,
    /// Separate slot for the channels that kill timed-out commands, so they never wait
    /// behind the commands they kill (max_channels + 1 stays below sshd's MaxSessions).
    kill_channels: Semaphore,
}

/// Channel open refusals retried before giving up (about 2 s of waiting in total).
const OPEN_REFUSALS: u32 = 30;

/// Limit for killing a timed-out command.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// First line the remote wrapper writes to stderr: the command's pid (see
/// [`remote_command_line`]); it is removed from the output.
const PID_MARKER: &[u8] = b"\x1edocker-ssh-pid=";

/// The command line sent to sshd. Scripts run with `sh -c`, as
/// [`LocalExecutor`](crate::LocalExecutor) runs them. A command with a timeout first
/// reports its pid (the session's process group leader) on stderr, then `exec`s the
/// command in that same process, so that a timeout can kill the whole group. An argv
/// without a timeout is sent as is (one process fewer on the hot path).
fn remote_command_line(command: &Command) -> String {
    let program = match command.body() {
        CommandBody::Argv(argv) if command.timeout_value().is_none() => return quote_argv(argv),
        CommandBody::Argv(argv) => quote_argv(argv),
        CommandBody::Script(script) => format!("sh -c {}", quote(script)),
    };
    if command.timeout_value().is_none() {
        return format!("exec {program}");
    }
    format!("printf '\\036docker-ssh-pid=%s\\n' \"$$\" >&2; exec {program}")
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
            kill_channels: Semaphore::new(1),
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

    /// Kills a timed-out command's process group from a separate channel. sshd starts
    /// every session's command with `setsid`, so the group holds the command and all it
    /// started. (The SSH `signal` request would be simpler, but OpenSSH refuses it in
    /// common configurations: "session signalling requires privilege separation".)
    async fn kill_process_group(&self, pid: u32) {
        if pid <= 1 {
            tracing::warn!(target = %self.target, "timed-out command reported no pid; it may still run");
            return;
        }
        let kill = async {
            let _permit = self.kill_channels.acquire().await.ok()?;
            let mut ch = self.handle.channel_open_session().await.ok()?;
            ch.exec(
                true,
                format!("kill -KILL -- -{pid} {pid} 2>/dev/null; true"),
            )
            .await
            .ok()?;
            while let Some(msg) = ch.wait().await {
                if matches!(msg, ChannelMsg::Close) {
                    break;
                }
            }
            Some(())
        };
        if tokio::time::timeout(KILL_TIMEOUT, kill)
            .await
            .ok()
            .flatten()
            .is_none()
        {
            tracing::warn!(target = %self.target, pid, "could not kill the timed-out command");
        }
    }

    /// Opens a session channel. sshd frees a closed channel's session slot only in a later
    /// turn of its main loop, so an open that follows a close closely can be refused
    /// (`MaxSessions`) although fewer channels are in use: such refusals are retried after
    /// a few milliseconds, a bounded number of times.
    async fn open_channel(&self) -> Result<russh::Channel<client::Msg>, RunFailure> {
        let mut backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(100))
            .with_jitter(0.2)
            .delays();
        let mut refusals = 0;
        loop {
            match self.handle.channel_open_session().await {
                Ok(channel) => return Ok(channel),
                Err(russh::Error::ChannelOpenFailure(reason))
                    if !self.handle.is_closed() && refusals < OPEN_REFUSALS =>
                {
                    refusals += 1;
                    tracing::trace!(target = %self.target, ?reason, refusals, "channel open refused, retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => {
                    return Err(RunFailure::NotStarted(format!(
                        "could not open a channel: {e}{}",
                        if refusals > 0 {
                            " (is sshd's MaxSessions below the pool's max_channels + 1?)"
                        } else {
                            ""
                        }
                    )));
                }
            }
        }
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

        let opening = self.open_channel();
        let channel = match deadline {
            Some(d) => tokio::time::timeout_at(d, opening)
                .await
                .map_err(|_| timeout_error())??,
            None => opening.await?,
        };
        let (mut rx, tx) = channel.split();
        tx.exec(true, remote_command_line(command).into_bytes())
            .await
            .map_err(|e| RunFailure::NotStarted(format!("could not send the command: {e}")))?;

        let ExecIo {
            stdin,
            on_line,
            stdout: sink,
        } = io;
        let bytes = command.stdin_bytes();
        let feed = async {
            let sent = match (stdin, bytes) {
                (Some(reader), _) => send_reader(&tx, reader).await,
                (None, Some(bytes)) => tx.data_bytes(bytes.to_vec()).await,
                (None, None) => Ok(()),
            };
            // Always end stdin, even after a local read error, so the command is not left
            // waiting for input that will never come.
            let _ = tx.eof().await;
            sent
        };
        let pid = AtomicU32::new(0);
        let collect = collect_channel(&mut rx, on_line, sink, &pid);
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
                    self.kill_process_group(pid.load(Ordering::SeqCst)).await;
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
            Collected::SinkFailed(source) => Err(RunFailure::Exec(ExecError::Io {
                target: self.target.to_string(),
                command: command.to_string(),
                source,
            })),
            Collected::NoStatus => Err(RunFailure::Lost(if self.handle.is_closed() {
                "the connection closed".to_owned()
            } else {
                "the channel closed without an exit status".to_owned()
            })),
        }
    }
}

/// Copies `reader` to the channel in large chunks (russh splits them into packets); the
/// generic `data(reader)` path copies through an 8 KiB buffer, which halves upload speed.
/// Each chunk is read into a buffer of its own, which is handed to russh as it is (no copy,
/// and no zeroing of a buffer that is about to be overwritten).
async fn send_reader(
    tx: &russh::ChannelWriteHalf<client::Msg>,
    reader: &mut (dyn AsyncRead + Send + Unpin),
) -> Result<(), russh::Error> {
    use tokio::io::AsyncReadExt;
    const CHUNK: usize = 256 * 1024;
    loop {
        let mut buf = Vec::with_capacity(CHUNK);
        // `read_buf` reads at most the spare capacity, so a chunk is at most CHUNK bytes.
        if reader.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        tx.data_bytes(buf).await?;
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
    /// Writing stdout to the caller's writer failed.
    SinkFailed(std::io::Error),
}

async fn collect_channel(
    rx: &mut russh::ChannelReadHalf,
    mut on_line: Option<LineCallback<'_>>,
    mut sink: Option<&mut (dyn AsyncWrite + Send + Unpin)>,
    pid: &AtomicU32,
) -> Collected {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut out_lines = LineSplitter::default();
    let mut err_lines = LineSplitter::default();
    let mut header = PidHeader::default();
    let mut status = None;
    let mut refused = false;
    let mut on_stderr =
        |data: &[u8], stderr: &mut Vec<u8>, on_line: &mut Option<LineCallback<'_>>| {
            stderr.extend_from_slice(data);
            if let Some(cb) = on_line.as_deref_mut() {
                err_lines.push(data, &mut |l| cb(OutputStream::Stderr, l));
            }
        };
    while let Some(msg) = rx.wait().await {
        match msg {
            ChannelMsg::Data { data } if sink.is_some() => {
                if let Some(sink) = sink.as_deref_mut()
                    && let Err(e) = sink.write_all(&data).await
                {
                    return Collected::SinkFailed(e);
                }
            }
            ChannelMsg::Data { data } => {
                stdout.extend_from_slice(&data);
                if let Some(cb) = on_line.as_deref_mut() {
                    out_lines.push(&data, &mut |l| cb(OutputStream::Stdout, l));
                }
            }
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                if let Some(rest) = header.feed(&data, pid) {
                    on_stderr(&rest, &mut stderr, &mut on_line);
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
    if let Some(rest) = header.finish() {
        on_stderr(&rest, &mut stderr, &mut on_line);
    }
    if let Some(sink) = sink
        && let Err(e) = sink.flush().await
    {
        return Collected::SinkFailed(e);
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

/// Most stderr bytes held back while looking for the pid line.
const HEADER_LIMIT: usize = 4096;

/// Strips the pid line the wrapper writes at the start of stderr. Output of the remote
/// shell's startup files may come before it; that is passed on.
#[derive(Default)]
struct PidHeader {
    buffer: Vec<u8>,
    done: bool,
}

impl PidHeader {
    /// Takes stderr bytes; returns what belongs to the command's stderr.
    fn feed(&mut self, data: &[u8], pid: &AtomicU32) -> Option<Vec<u8>> {
        if self.done {
            return Some(data.to_vec());
        }
        self.buffer.extend_from_slice(data);
        let found = self
            .buffer
            .windows(PID_MARKER.len())
            .position(|w| w == PID_MARKER);
        let Some(start) = found else {
            if self.buffer.len() > HEADER_LIMIT {
                // No header (the wrapper did not run as expected): pass everything on.
                self.done = true;
                return Some(std::mem::take(&mut self.buffer));
            }
            return None;
        };
        let digits_start = start + PID_MARKER.len();
        let newline = digits_start
            + self.buffer[digits_start..]
                .iter()
                .position(|&b| b == b'\n')?;
        if let Some(p) = std::str::from_utf8(&self.buffer[digits_start..newline])
            .ok()
            .and_then(|s| s.parse().ok())
        {
            pid.store(p, Ordering::SeqCst);
        }
        self.done = true;
        let mut rest = self.buffer[..start].to_vec();
        rest.extend_from_slice(&self.buffer[newline + 1..]);
        self.buffer = Vec::new();
        (!rest.is_empty()).then_some(rest)
    }

    /// At the end of the stream: bytes still held back.
    fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.done && !self.buffer.is_empty()).then(|| std::mem::take(&mut self.buffer))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_header_is_stripped_across_chunks() {
        let pid = AtomicU32::new(0);
        let mut h = PidHeader::default();
        assert_eq!(h.feed(b"\x1edocker-ssh", &pid), None);
        assert_eq!(
            h.feed(b"-pid=4242\nreal err", &pid).as_deref(),
            Some(&b"real err"[..])
        );
        assert_eq!(pid.load(Ordering::SeqCst), 4242);
        assert_eq!(h.feed(b" more", &pid).as_deref(), Some(&b" more"[..]));
        assert_eq!(h.finish(), None);
    }

    #[test]
    fn foreign_stderr_passes_through() {
        let pid = AtomicU32::new(0);
        // Startup-file noise before the header is kept, the header removed.
        let mut h = PidHeader::default();
        assert_eq!(h.feed(b"bashrc says hi\n", &pid), None);
        assert_eq!(
            h.feed(b"\x1edocker-ssh-pid=7\nerr", &pid).as_deref(),
            Some(&b"bashrc says hi\nerr"[..])
        );
        assert_eq!(pid.load(Ordering::SeqCst), 7);
        // No header at all: held back up to the limit, then passed on.
        let mut h = PidHeader::default();
        assert_eq!(h.feed(b"sh: exec: nope: not found\n", &pid), None);
        assert_eq!(
            h.finish().as_deref(),
            Some(&b"sh: exec: nope: not found\n"[..])
        );
        let mut h = PidHeader::default();
        let big = vec![b'x'; HEADER_LIMIT + 1];
        assert_eq!(h.feed(&big, &pid).as_deref(), Some(&big[..]));
        assert_eq!(h.feed(b"y", &pid).as_deref(), Some(&b"y"[..]));
    }

    #[test]
    fn wrapper_reports_the_pid_then_execs() {
        let t = Duration::from_secs(1);
        let line = remote_command_line(&Command::argv(["echo", "a b"]).timeout(t));
        assert_eq!(
            line,
            "printf '\\036docker-ssh-pid=%s\\n' \"$$\" >&2; exec echo 'a b'"
        );
        let line = remote_command_line(&Command::script("echo $HOME; exit 3").timeout(t));
        assert!(
            line.ends_with("; exec sh -c 'echo $HOME; exit 3'"),
            "{line}"
        );
        // Without a timeout there is nothing to kill: no pid line.
        assert_eq!(
            remote_command_line(&Command::argv(["echo", "a b"])),
            "echo 'a b'"
        );
        assert_eq!(
            remote_command_line(&Command::script("echo $HOME")),
            "exec sh -c 'echo $HOME'"
        );
    }

    #[test]
    fn wrapper_runs_in_a_real_shell() {
        let line = remote_command_line(
            &Command::script("echo out; echo err >&2; exit 3").timeout(Duration::from_secs(5)),
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .expect("sh");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert!(out.stderr.starts_with(PID_MARKER), "{out:?}");
        assert!(out.stderr.ends_with(b"\nerr\n"), "{out:?}");
    }
}
