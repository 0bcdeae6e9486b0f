//! The [`Executor`] trait: one way to run commands, whatever the transport.

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::command::{Command, Output, OutputStream, output_excerpt};
use crate::error::ExecError;

/// Callback that receives output lines as they arrive (without the trailing newline).
pub type LineCallback<'a> = &'a mut (dyn FnMut(OutputStream, &str) + Send);

/// Optional I/O attachments of one [`Executor::execute`] call.
#[derive(Default)]
pub struct ExecIo<'a> {
    /// Stream stdin from this reader instead of the command's stdin bytes (e.g. a tar
    /// stream of a build context). A command with stdin bytes *and* a reader is rejected.
    pub stdin: Option<&'a mut (dyn AsyncRead + Send + Unpin)>,
    /// Called with every output line as it arrives, stdout and stderr interleaved in
    /// arrival order. The full output is still collected in the returned [`Output`].
    pub on_line: Option<LineCallback<'a>>,
    /// Write stdout to this writer as it arrives (e.g. the tar stream of `docker save`)
    /// instead of collecting it: the returned [`Output::stdout`] is then empty, and no
    /// stdout line reaches `on_line`. A pooled SSH executor does not retry a command whose
    /// stdout may have been written in part.
    pub stdout: Option<&'a mut (dyn AsyncWrite + Send + Unpin)>,
}

/// Something that runs [`Command`]s: an SSH connection pool
/// ([`SshPool`](crate::SshPool)), one session, or this machine ([`LocalExecutor`](crate::LocalExecutor)).
///
/// A command that runs and exits non-zero is *not* an error of [`execute`](Self::execute)
/// or [`run`](Self::run): the caller decides (use [`run_checked`](Self::run_checked) to
/// turn it into one). Errors mean the command could not be run, timed out (and was killed),
/// or lost its connection.
///
/// ```
/// use docker_ssh::{Command, Executor, LocalExecutor};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), docker_ssh::ExecError> {
/// let exec: &dyn Executor = &LocalExecutor::new();
/// let out = exec.run(&Command::argv(["printf", "%s", "it's here"])).await?;
/// assert_eq!(out.stdout, b"it's here");
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Executor: Send + Sync {
    /// Where commands run, for logs and errors (e.g. `local`, `root@203.0.113.7:22`).
    fn target(&self) -> String;

    /// Runs `command` with the optional attachments of [`ExecIo`] (streamed stdin, line
    /// callback, stdout writer), and waits for it.
    async fn execute(&self, command: &Command, io: ExecIo<'_>) -> Result<Output, ExecError>;

    /// Runs `command` and collects its output.
    async fn run(&self, command: &Command) -> Result<Output, ExecError> {
        self.execute(command, ExecIo::default()).await
    }

    /// Runs `command`, turning a non-zero exit into [`ExecError::Failed`] (with the last
    /// lines of stderr, redacted).
    async fn run_checked(&self, command: &Command) -> Result<Output, ExecError> {
        let output = self.run(command).await?;
        check_output(&self.target(), command, output)
    }

    /// Runs `command`, passing each output line to `on_line` as it arrives (for
    /// `docker build` or `docker pull`). If a pooled command is retried after a dropped
    /// connection, lines may be delivered twice.
    async fn run_streaming(
        &self,
        command: &Command,
        on_line: LineCallback<'_>,
    ) -> Result<Output, ExecError> {
        self.execute(
            command,
            ExecIo {
                on_line: Some(on_line),
                ..ExecIo::default()
            },
        )
        .await
    }

    /// Runs `command`, writing its stdout to `stdout` as it arrives (the returned
    /// [`Output::stdout`] is empty).
    async fn run_with_stdout(
        &self,
        command: &Command,
        stdout: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<Output, ExecError> {
        self.execute(
            command,
            ExecIo {
                stdout: Some(stdout),
                ..ExecIo::default()
            },
        )
        .await
    }

    /// Runs `command` with stdin streamed from `stdin` until its end.
    async fn run_with_stdin(
        &self,
        command: &Command,
        stdin: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<Output, ExecError> {
        self.execute(
            command,
            ExecIo {
                stdin: Some(stdin),
                ..ExecIo::default()
            },
        )
        .await
    }
}

/// Rejects a command no executor can run: an invalid body, or stdin bytes together with a
/// stdin stream.
pub(crate) fn precheck(
    command: &Command,
    stdin: &Option<&mut (dyn AsyncRead + Send + Unpin)>,
) -> Result<(), ExecError> {
    if let Some(refusal) = command.refusal() {
        return Err(ExecError::InvalidArgument {
            command: command.to_string(),
            what: refusal.what,
            value: refusal.value.clone(),
            rule: refusal.rule,
        });
    }
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

/// Turns an unsuccessful [`Output`] into [`ExecError::Failed`].
pub fn check_output(target: &str, command: &Command, output: Output) -> Result<Output, ExecError> {
    if output.success() {
        Ok(output)
    } else {
        Err(ExecError::Failed {
            target: target.to_owned(),
            command: command.to_string(),
            status: output.status.clone(),
            excerpt: command.redact(&output_excerpt(&output)),
        })
    }
}

#[async_trait]
impl<T: Executor + ?Sized> Executor for std::sync::Arc<T> {
    fn target(&self) -> String {
        (**self).target()
    }

    async fn execute(&self, command: &Command, io: ExecIo<'_>) -> Result<Output, ExecError> {
        (**self).execute(command, io).await
    }
}

#[async_trait]
impl<T: Executor + ?Sized> Executor for &T {
    fn target(&self) -> String {
        (**self).target()
    }

    async fn execute(&self, command: &Command, io: ExecIo<'_>) -> Result<Output, ExecError> {
        (**self).execute(command, io).await
    }
}
