//! [`LocalExecutor`]: runs commands on this machine.

use std::process::Stdio;
use std::time::Instant;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::Instrument;

use crate::command::{Command, CommandBody, ExitStatus, LineSplitter, Output, OutputStream};
use crate::error::ExecError;
use crate::executor::{ExecIo, Executor, LineCallback, precheck};

const TARGET: &str = "local";

/// Runs commands on this machine with `tokio::process`: an argv directly (no shell), a
/// script with `sh -c`. Each command gets its own process group, so a timeout kills the
/// command *and* everything it started.
///
/// `local-vps` uses it to drive the local Docker engine with the same [`Docker`](crate::Docker)
/// builder that runs over SSH elsewhere.
#[derive(Clone, Debug, Default)]
pub struct LocalExecutor {
    _private: (),
}

impl LocalExecutor {
    /// A local executor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `command` with its stdout going straight into `file`: the child writes the
    /// file itself, so nothing of it passes through this process (for a large stream
    /// such as a `docker save` into a temporary file, that is the whole cost of it). The
    /// returned [`Output::stdout`] is empty; stderr is collected as usual.
    pub async fn run_into_file(
        &self,
        command: &Command,
        file: std::fs::File,
    ) -> Result<Output, ExecError> {
        let span = exec_span(command);
        let started = Instant::now();
        let result = run_local(command, ExecIo::default(), Some(file))
            .instrument(span.clone())
            .await;
        record(&span, started, &result);
        result
    }
}

fn exec_span(command: &Command) -> tracing::Span {
    tracing::debug_span!(
        "exec",
        target = TARGET,
        command = %command,
        duration_ms = tracing::field::Empty,
        status = tracing::field::Empty,
    )
}

fn record(span: &tracing::Span, started: Instant, result: &Result<Output, ExecError>) {
    span.record("duration_ms", started.elapsed().as_millis() as u64);
    match result {
        Ok(out) => span.record("status", tracing::field::display(&out.status)),
        Err(e) => span.record("status", tracing::field::display(e)),
    };
}

#[async_trait]
impl Executor for LocalExecutor {
    fn target(&self) -> String {
        TARGET.to_owned()
    }

    async fn execute(&self, command: &Command, io: ExecIo<'_>) -> Result<Output, ExecError> {
        let span = exec_span(command);
        let started = Instant::now();
        let result = run_local(command, io, None).instrument(span.clone()).await;
        record(&span, started, &result);
        result
    }
}

fn io_error(command: &Command, source: std::io::Error) -> ExecError {
    ExecError::Io {
        target: TARGET.to_owned(),
        command: command.to_string(),
        source,
    }
}

/// Runs `command` locally; `stdout_file`: the child's stdout is that file (nothing of it
/// is read here) instead of a pipe.
async fn run_local(
    command: &Command,
    io: ExecIo<'_>,
    stdout_file: Option<std::fs::File>,
) -> Result<Output, ExecError> {
    let ExecIo {
        stdin,
        on_line,
        stdout: sink,
    } = io;
    precheck(command, &stdin)?;
    let mut proc = match command.body() {
        CommandBody::Argv(argv) => {
            let mut p = tokio::process::Command::new(&argv[0]);
            p.args(&argv[1..]);
            p
        }
        CommandBody::Script(script) => {
            let mut p = tokio::process::Command::new("sh");
            p.arg("-c").arg(script);
            p
        }
    };
    let has_stdin = stdin.is_some() || command.stdin_bytes().is_some();
    proc.stdin(if has_stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(match stdout_file {
        Some(file) => Stdio::from(file),
        None => Stdio::piped(),
    })
    .stderr(Stdio::piped())
    .kill_on_drop(true)
    .process_group(0);
    let mut child = proc.spawn().map_err(|source| ExecError::Spawn {
        target: TARGET.to_owned(),
        command: command.to_string(),
        source,
    })?;
    let pid = child.id();
    let child_stdin = child.stdin.take();
    // Stdout is a pipe unless it went to a file (then there is nothing to read here).
    let child_stdout: Box<dyn AsyncRead + Send + Unpin> = match child.stdout.take() {
        Some(pipe) => Box::new(pipe),
        None => Box::new(tokio::io::empty()),
    };
    let Some(child_stderr) = child.stderr.take() else {
        return Err(io_error(
            command,
            std::io::Error::other("the child's stderr pipe is missing"),
        ));
    };

    let work = async {
        let feed = async {
            if let Some(mut pipe) = child_stdin {
                let written = match (stdin, command.stdin_bytes()) {
                    (Some(reader), _) => tokio::io::copy(reader, &mut pipe).await.map(|_| ()),
                    (None, Some(bytes)) => pipe.write_all(bytes).await,
                    (None, None) => Ok(()),
                };
                let closed = pipe.shutdown().await;
                // A command that exits without reading all its stdin is not an error.
                match written.and(closed) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        };
        let (fed, collected) =
            tokio::join!(feed, collect(child_stdout, child_stderr, on_line, sink));
        fed.map_err(|e| io_error(command, e))?;
        let (stdout, stderr) = collected.map_err(|e| io_error(command, e))?;
        let status = child.wait().await.map_err(|e| io_error(command, e))?;
        Ok::<_, ExecError>(Output {
            status: exit_status(status),
            stdout,
            stderr,
        })
    };

    let Some(limit) = command.timeout_value() else {
        return work.await;
    };
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_elapsed) => {
            if let Some(pid) = pid {
                kill_process_group(pid).await;
            }
            // Reap the leader (kill_on_drop would only SIGKILL it, not its group).
            let _ = child.kill().await;
            Err(ExecError::Timeout {
                target: TARGET.to_owned(),
                command: command.to_string(),
                after: limit,
            })
        }
    }
}

/// Kills the whole process group the command leads (it was started with `process_group(0)`).
async fn kill_process_group(pid: u32) {
    let result = tokio::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(e) = result {
        tracing::warn!(pid, error = %e, "could not kill the timed-out process group");
    }
}

/// Reads stdout and stderr to their ends, concurrently, feeding complete lines to `on_line`;
/// stdout goes to `sink` instead if there is one.
pub(crate) async fn collect(
    mut stdout: impl AsyncRead + Unpin,
    mut stderr: impl AsyncRead + Unpin,
    mut on_line: Option<LineCallback<'_>>,
    mut sink: Option<&mut (dyn AsyncWrite + Send + Unpin)>,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut out_lines = LineSplitter::default();
    let mut err_lines = LineSplitter::default();
    let mut out_buf = vec![0u8; 32 * 1024];
    let mut err_buf = vec![0u8; 32 * 1024];
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            n = stdout.read(&mut out_buf), if out_open => {
                let n = n?;
                if n == 0 {
                    out_open = false;
                    if let Some(sink) = sink.as_deref_mut() {
                        sink.flush().await?;
                    } else if let Some(cb) = on_line.as_deref_mut() {
                        out_lines.finish(&mut |l| cb(OutputStream::Stdout, l));
                    }
                } else if let Some(sink) = sink.as_deref_mut() {
                    sink.write_all(&out_buf[..n]).await?;
                } else {
                    out.extend_from_slice(&out_buf[..n]);
                    if let Some(cb) = on_line.as_deref_mut() {
                        out_lines.push(&out_buf[..n], &mut |l| cb(OutputStream::Stdout, l));
                    }
                }
            }
            n = stderr.read(&mut err_buf), if err_open => {
                let n = n?;
                if n == 0 {
                    err_open = false;
                    if let Some(cb) = on_line.as_deref_mut() {
                        err_lines.finish(&mut |l| cb(OutputStream::Stderr, l));
                    }
                } else {
                    err.extend_from_slice(&err_buf[..n]);
                    if let Some(cb) = on_line.as_deref_mut() {
                        err_lines.push(&err_buf[..n], &mut |l| cb(OutputStream::Stderr, l));
                    }
                }
            }
        }
    }
    Ok((out, err))
}

fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        // Exit codes are 0..=255 on Unix.
        return ExitStatus::Code(u32::try_from(code).unwrap_or(255));
    }
    match status.signal() {
        Some(sig) => ExitStatus::Signal(signal_name(sig)),
        None => ExitStatus::Signal("unknown".to_owned()),
    }
}

/// The SSH-style name (no `SIG` prefix) of a signal number.
pub(crate) fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        4 => "ILL",
        6 => "ABRT",
        8 => "FPE",
        9 => "KILL",
        11 => "SEGV",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        10 => "USR1",
        12 => "USR2",
        _ => return sig.to_string(),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    }

    #[test]
    fn argv_runs_without_a_shell() {
        rt().block_on(async {
            let out = LocalExecutor::new()
                .run(&Command::argv(["printf", "%s|", "$HOME", "a b", "'"]))
                .await
                .expect("runs");
            assert!(out.success());
            assert_eq!(out.stdout, b"$HOME|a b|'|");
        });
    }

    #[test]
    fn script_exit_code_and_stderr() {
        rt().block_on(async {
            let out = LocalExecutor::new()
                .run(&Command::script("echo out; echo err >&2; exit 7"))
                .await
                .expect("runs");
            assert_eq!(out.status, ExitStatus::Code(7));
            assert_eq!(out.stdout, b"out\n");
            assert_eq!(out.stderr, b"err\n");
        });
    }

    #[test]
    fn run_into_file_writes_stdout_to_the_file_and_collects_stderr() {
        use std::io::{Read as _, Seek as _};
        rt().block_on(async {
            let mut file = tempfile::tempfile().expect("temp file");
            let out = LocalExecutor::new()
                .run_into_file(
                    &Command::script("printf 'a\\0b'; seq 1 3; echo err >&2; exit 3"),
                    file.try_clone().expect("clone"),
                )
                .await
                .expect("runs");
            assert_eq!(out.status, ExitStatus::Code(3));
            assert!(out.stdout.is_empty(), "stdout went to the file");
            assert_eq!(out.stderr, b"err\n");
            let mut written = Vec::new();
            file.rewind().expect("rewind");
            file.read_to_end(&mut written).expect("read");
            assert_eq!(written, b"a\0b1\n2\n3\n");
        });
    }

    #[test]
    fn stdin_bytes_and_reader() {
        rt().block_on(async {
            let exec = LocalExecutor::new();
            let out = exec
                .run(&Command::argv(["cat"]).stdin(b"bytes\0in".to_vec()))
                .await
                .expect("runs");
            assert_eq!(out.stdout, b"bytes\0in");
            let mut reader: &[u8] = b"streamed";
            let out = exec
                .run_with_stdin(&Command::argv(["cat"]), &mut reader)
                .await
                .expect("runs");
            assert_eq!(out.stdout, b"streamed");
            let mut reader: &[u8] = b"x";
            let err = exec
                .run_with_stdin(&Command::argv(["cat"]).stdin(b"y".to_vec()), &mut reader)
                .await
                .expect_err("both stdins");
            assert!(matches!(err, ExecError::InvalidCommand { .. }), "{err}");
        });
    }

    #[test]
    fn stdout_goes_to_the_sink_instead_of_the_output() {
        rt().block_on(async {
            let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
            let mut sink = Vec::new();
            let out = LocalExecutor::new()
                .run_with_stdout(
                    &Command::script("cat; echo err >&2; exit 3")
                        .stdin(data.clone())
                        .timeout(Duration::from_secs(30)),
                    &mut sink,
                )
                .await
                .expect("runs");
            assert_eq!(out.status, ExitStatus::Code(3));
            assert!(out.stdout.is_empty());
            assert_eq!(out.stderr, b"err\n");
            assert!(sink == data, "sink differs ({} bytes)", sink.len());
        });
    }

    #[test]
    fn large_stdin_and_stdout_at_once_do_not_deadlock() {
        rt().block_on(async {
            let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
            let out = LocalExecutor::new()
                .run(
                    &Command::argv(["cat"])
                        .stdin(data.clone())
                        .timeout(Duration::from_secs(30)),
                )
                .await
                .expect("runs");
            assert!(
                out.stdout == data,
                "stdout differs ({} bytes)",
                out.stdout.len()
            );
        });
    }

    #[test]
    fn unread_stdin_is_not_an_error() {
        rt().block_on(async {
            let out = LocalExecutor::new()
                .run(&Command::argv(["true"]).stdin(vec![b'x'; 4 << 20]))
                .await
                .expect("runs");
            assert!(out.success());
        });
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        rt().block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let marker = dir.path().join("marker");
            let script = format!(
                "(sleep 1; touch {}) & sleep 30",
                crate::quote(&marker.to_string_lossy())
            );
            let started = Instant::now();
            let err = LocalExecutor::new()
                .run(&Command::script(script).timeout(Duration::from_millis(300)))
                .await
                .expect_err("times out");
            assert!(err.is_timeout(), "{err}");
            assert!(started.elapsed() < Duration::from_secs(5));
            assert!(err.to_string().contains("timed out after 300ms"), "{err}");
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert!(
                !marker.exists(),
                "the background child survived the timeout"
            );
        });
    }

    #[test]
    fn streaming_delivers_lines_of_both_streams() {
        rt().block_on(async {
            let mut lines = Vec::new();
            let mut cb = |s: OutputStream, l: &str| lines.push((s, l.to_owned()));
            let out = LocalExecutor::new()
                .run_streaming(&Command::script("echo a; echo b >&2; printf c"), &mut cb)
                .await
                .expect("runs");
            assert_eq!(out.stdout, b"a\nc");
            lines.sort();
            assert_eq!(
                lines,
                [
                    (OutputStream::Stdout, "a".to_owned()),
                    (OutputStream::Stdout, "c".to_owned()),
                    (OutputStream::Stderr, "b".to_owned()),
                ]
            );
        });
    }

    #[test]
    fn missing_program_is_a_spawn_error_and_checked_failures_are_errors() {
        rt().block_on(async {
            let exec = LocalExecutor::new();
            let err = exec
                .run(&Command::argv(["/nonexistent/program"]))
                .await
                .expect_err("spawn fails");
            assert!(matches!(err, ExecError::Spawn { .. }), "{err}");
            let err = exec
                .run_checked(
                    &Command::script("echo token-xyz is bad >&2; exit 3").secret("token-xyz"),
                )
                .await
                .expect_err("fails");
            let msg = err.to_string();
            assert!(msg.contains("exit code 3"), "{msg}");
            assert!(msg.contains("<redacted> is bad"), "{msg}");
            assert!(!msg.contains("token-xyz"), "{msg}");
        });
    }

    #[test]
    fn killed_by_signal() {
        rt().block_on(async {
            let out = LocalExecutor::new()
                .run(&Command::script("kill -TERM $$"))
                .await
                .expect("runs");
            assert_eq!(out.status, ExitStatus::Signal("TERM".into()));
        });
    }
}
