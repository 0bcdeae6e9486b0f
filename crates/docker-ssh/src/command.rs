//! What to run ([`Command`]) and what came back ([`Output`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use vps_primitives::quote_argv;

/// Placeholder that replaces every secret in logged or reported command lines.
pub const REDACTED: &str = "<redacted>";

/// Longest command line (in characters) shown in logs and errors; the rest is elided.
const DISPLAY_LIMIT: usize = 400;

/// The body of a [`Command`]: an argv, or a shell script.
#[derive(Clone, PartialEq, Eq)]
pub enum CommandBody {
    /// Program and arguments. Locally they are run without a shell; over SSH they are
    /// quoted with [`quote_argv`] so the remote shell splits them back into the same words.
    Argv(Vec<String>),
    /// A POSIX shell script, run with `sh -c` (locally, and over SSH whatever the remote
    /// user's login shell is).
    Script(String),
}

/// A command to run through an [`Executor`](crate::Executor): an argv or a script, plus
/// optional stdin bytes, a timeout, and the secrets to hide from logs and errors.
///
/// ```
/// use std::time::Duration;
/// use docker_ssh::Command;
///
/// let cmd = Command::argv(["docker", "exec", "-i", "box", "sh", "-c", "cat > /key"])
///     .stdin(b"private bytes".to_vec())
///     .timeout(Duration::from_secs(30));
/// assert_eq!(cmd.command_line(), "docker exec -i box sh -c 'cat > /key'");
///
/// let login = Command::argv(["login", "--token", "s3cret"]).secret("s3cret");
/// assert_eq!(login.to_string(), "login --token '<redacted>'");
/// ```
#[derive(Clone)]
pub struct Command {
    body: CommandBody,
    stdin: Option<Arc<[u8]>>,
    timeout: Option<Duration>,
    idempotent: bool,
    secrets: Vec<String>,
    refusal: Option<Arc<Refusal>>,
}

/// Why a builder refused one of its values: the command is kept (so it can be shown), but
/// no executor runs it (see [`ExecError::InvalidArgument`](crate::ExecError::InvalidArgument)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// What the value names (`container`, `image`, …).
    pub(crate) what: &'static str,
    /// The value.
    pub(crate) value: String,
    /// The rule it breaks.
    pub(crate) rule: &'static str,
}

impl Command {
    /// A command given as program and arguments.
    pub fn argv<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::from_body(CommandBody::Argv(
            argv.into_iter().map(Into::into).collect(),
        ))
    }

    /// A command given as a POSIX shell script.
    pub fn script(script: impl Into<String>) -> Self {
        Self::from_body(CommandBody::Script(script.into()))
    }

    fn from_body(body: CommandBody) -> Self {
        Self {
            body,
            stdin: None,
            timeout: None,
            idempotent: false,
            secrets: Vec::new(),
            refusal: None,
        }
    }

    /// Marks the command as refused because `value` (a `what`) breaks `rule`: executors
    /// return [`ExecError::InvalidArgument`](crate::ExecError::InvalidArgument) instead of
    /// running it. The first refusal is kept.
    pub(crate) fn refuse(mut self, what: &'static str, value: &str, rule: &'static str) -> Self {
        if self.refusal.is_none() {
            self.refusal = Some(Arc::new(Refusal {
                what,
                value: value.to_owned(),
                rule,
            }));
        }
        self
    }

    /// The refusal, if a builder refused one of the command's values.
    pub(crate) fn refusal(&self) -> Option<&Refusal> {
        self.refusal.as_deref()
    }

    /// Feeds these bytes to the command's stdin, then closes it. Without this, stdin is
    /// empty (closed at once). Stdin is never logged.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(Arc::from(bytes.into()));
        self
    }

    /// Kills the command if it has not finished after `timeout`; the run then fails with
    /// [`ExecError::Timeout`](crate::ExecError::Timeout). Without this there is no limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Removes the timeout.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// Marks the command as safe to run twice. A pooled SSH executor then also retries it
    /// when the connection dropped *while* it ran (the command may or may not have run);
    /// other commands are retried only when they surely never started.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Hides every occurrence of `secret` in logged and reported command lines (tracing
    /// spans, error messages, the `Display` and `Debug` output). Empty secrets are ignored.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        let secret = secret.into();
        if !secret.is_empty() {
            self.secrets.push(secret);
        }
        self
    }

    /// The argv or script.
    pub fn body(&self) -> &CommandBody {
        &self.body
    }

    /// The stdin bytes, if any.
    pub fn stdin_bytes(&self) -> Option<&[u8]> {
        self.stdin.as_deref()
    }

    /// The timeout, if any.
    pub fn timeout_value(&self) -> Option<Duration> {
        self.timeout
    }

    /// Whether the command was marked [`idempotent`](Self::idempotent).
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// The exact command line a shell runs: the quoted argv, or the script. This contains
    /// secrets in clear; use the `Display` form for anything that is shown or logged.
    pub fn command_line(&self) -> String {
        match &self.body {
            CommandBody::Argv(argv) => quote_argv(argv),
            CommandBody::Script(script) => script.clone(),
        }
    }

    /// Replaces every secret of this command in `text` (e.g. a stderr excerpt).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// The command line with secrets replaced, not shortened.
    pub fn redacted_command_line(&self) -> String {
        match &self.body {
            CommandBody::Argv(argv) => quote_argv(argv.iter().map(|w| self.redact(w))),
            CommandBody::Script(script) => self.redact(script),
        }
    }

    /// Checks the command can be run at all: a non-empty argv or script, and no NUL byte
    /// (which no process argument or shell word can carry).
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        match &self.body {
            CommandBody::Argv(argv) => {
                if argv.is_empty() || argv[0].is_empty() {
                    return Err("the argv is empty");
                }
                if argv.iter().any(|w| w.contains('\0')) {
                    return Err("an argument contains a NUL byte");
                }
            }
            CommandBody::Script(script) => {
                if script.trim().is_empty() {
                    return Err("the script is empty");
                }
                if script.contains('\0') {
                    return Err("the script contains a NUL byte");
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Command {
    /// The redacted command line, shortened to a few hundred characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.redacted_command_line();
        if line.chars().count() > DISPLAY_LIMIT {
            let cut: String = line.chars().take(DISPLAY_LIMIT).collect();
            write!(
                f,
                "{cut}… ({} more chars)",
                line.chars().count() - DISPLAY_LIMIT
            )
        } else {
            f.write_str(&line)
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("command_line", &self.to_string())
            .field("stdin_bytes", &self.stdin.as_ref().map(|s| s.len()))
            .field("timeout", &self.timeout)
            .field("idempotent", &self.idempotent)
            .field("secrets", &self.secrets.len())
            .field("refused", &self.refusal)
            .finish()
    }
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(u32),
    /// It was killed by this signal (name without `SIG`, e.g. `KILL`, or the number if
    /// the name is unknown).
    Signal(String),
}

impl ExitStatus {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }

    /// The exit code, if the command exited normally.
    pub fn code(&self) -> Option<u32> {
        match self {
            ExitStatus::Code(code) => Some(*code),
            ExitStatus::Signal(_) => None,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit code {code}"),
            ExitStatus::Signal(sig) => write!(f, "signal {sig}"),
        }
    }
}

/// Which output stream a line came from (see [`Executor::run_streaming`](crate::Executor::run_streaming)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// What a finished command produced. A non-zero exit is not an error at this level: check
/// [`Output::success`] or use [`Executor::run_checked`](crate::Executor::run_checked).
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Stdout as text without leading and trailing whitespace.
    pub fn stdout_trimmed(&self) -> String {
        self.stdout_text().trim().to_owned()
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("status", &self.status)
            .field("stdout", &String::from_utf8_lossy(&self.stdout))
            .field("stderr", &String::from_utf8_lossy(&self.stderr))
            .finish()
    }
}

/// The last lines of a command's stderr (or stdout when stderr is empty), trimmed, for
/// error messages.
pub(crate) fn output_excerpt(output: &Output) -> String {
    const MAX_LINES: usize = 20;
    let text = if output.stderr.iter().all(u8::is_ascii_whitespace) {
        output.stdout_text()
    } else {
        output.stderr_text()
    };
    let lines: Vec<&str> = text.trim().lines().collect();
    let start = lines.len().saturating_sub(MAX_LINES);
    lines[start..].join("\n")
}

/// Splits a byte stream into lines as chunks arrive, for streaming callbacks.
#[derive(Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Adds a chunk and calls `emit` for every completed line (without its `\n`, and
    /// without a `\r` before it).
    pub(crate) fn push(&mut self, chunk: &[u8], emit: &mut dyn FnMut(&str)) {
        self.pending.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            emit_line(&self.pending[start..end], emit);
            start = end + 1;
        }
        self.pending.drain(..start);
    }

    /// Emits the last line if it had no trailing newline.
    pub(crate) fn finish(&mut self, emit: &mut dyn FnMut(&str)) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            emit_line(&rest, emit);
        }
    }
}

fn emit_line(line: &[u8], emit: &mut dyn FnMut(&str)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    emit(&String::from_utf8_lossy(line));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_display_debug_and_excerpts() {
        let cmd = Command::script("printf %s 'TOKEN=abc123' | docker login").secret("abc123");
        assert_eq!(
            cmd.to_string(),
            "printf %s 'TOKEN=<redacted>' | docker login"
        );
        assert!(!format!("{cmd:?}").contains("abc123"));
        assert!(cmd.command_line().contains("abc123"));
        assert_eq!(cmd.redact("bad token abc123"), "bad token <redacted>");
    }

    #[test]
    fn secrets_with_quotes_are_redacted_before_quoting() {
        let cmd = Command::argv(["x", "it's-secret"]).secret("it's-secret");
        assert_eq!(cmd.to_string(), "x '<redacted>'");
    }

    #[test]
    fn long_command_lines_are_shortened_for_display() {
        let cmd = Command::script("x".repeat(1000));
        let shown = cmd.to_string();
        assert!(shown.starts_with(&"x".repeat(400)));
        assert!(shown.ends_with("(600 more chars)"), "{shown}");
    }

    #[test]
    fn validation_rejects_empty_and_nul() {
        assert!(Command::argv(Vec::<String>::new()).validate().is_err());
        assert!(Command::argv([""]).validate().is_err());
        assert!(Command::argv(["echo", "a\0b"]).validate().is_err());
        assert!(Command::script("  \n").validate().is_err());
        assert!(Command::script("echo\0").validate().is_err());
        assert!(Command::argv(["true"]).validate().is_ok());
    }

    #[test]
    fn line_splitter_handles_split_chunks_and_crlf() {
        let mut lines = Vec::new();
        let mut s = LineSplitter::default();
        let mut emit = |l: &str| lines.push(l.to_owned());
        s.push(b"hel", &mut emit);
        s.push(b"lo\r\nwor", &mut emit);
        s.push(b"ld\n\nlast", &mut emit);
        s.finish(&mut emit);
        assert_eq!(lines, ["hello", "world", "", "last"]);
    }

    #[test]
    fn excerpt_prefers_stderr_and_keeps_last_lines() {
        let stderr: String = (0..30).map(|i| format!("e{i}\n")).collect();
        let out = Output {
            status: ExitStatus::Code(1),
            stdout: b"out".to_vec(),
            stderr: stderr.into_bytes(),
        };
        let ex = output_excerpt(&out);
        assert!(ex.starts_with("e10\n") && ex.ends_with("e29"), "{ex}");
        let out = Output {
            status: ExitStatus::Code(1),
            stdout: b" only stdout \n".to_vec(),
            stderr: b"\n".to_vec(),
        };
        assert_eq!(output_excerpt(&out), "only stdout");
    }
}
