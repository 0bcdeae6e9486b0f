//! [`InVps`]: an [`Executor`] that runs commands inside a fake VPS through the local
//! engine (`docker exec -i <container> …`), the way a hypervisor agent reaches a VM. It
//! lets `docker-ssh`'s [`Docker`](docker_ssh::Docker) drive the VPS's own engine without
//! SSH (for `preload_image`).

use async_trait::async_trait;
use docker_ssh::{
    Command, CommandBody, DockerCli, ExecError, ExecIo, ExecOptions, Executor, LocalExecutor,
    Output,
};

/// Runs each command in `container` with `docker exec -i` on this machine.
pub(super) struct InVps {
    local: LocalExecutor,
    cli: DockerCli,
    container: String,
}

impl InVps {
    /// Commands in the fake VPS container `container` (name or id).
    pub(super) fn new(container: impl Into<String>) -> Self {
        Self {
            local: LocalExecutor::new(),
            cli: DockerCli::new(),
            container: container.into(),
        }
    }

    /// `docker exec -i <container> <command>`, with the command's stdin, timeout and
    /// idempotence.
    fn wrap(&self, command: &Command) -> Result<Command, ExecError> {
        // A `Command`'s secrets cannot be carried over to the wrapping command, so one
        // that has any in its text is refused rather than logged in clear.
        if command.redacted_command_line() != command.command_line() {
            return Err(ExecError::InvalidCommand {
                command: command.to_string(),
                reason: "a command with secrets in its text cannot be run through `docker exec` \
                         into a local VPS; pass secrets on stdin",
            });
        }
        let mut options = match command.body() {
            CommandBody::Argv(argv) => ExecOptions::argv(&self.container, argv.iter().cloned()),
            CommandBody::Script(script) => ExecOptions::script(&self.container, script.clone()),
        }
        .interactive();
        if let Some(bytes) = command.stdin_bytes() {
            options = options.stdin(bytes.to_vec());
        }
        if command.is_idempotent() {
            options = options.idempotent();
        }
        let wrapped = self.cli.exec(&options);
        Ok(match command.timeout_value() {
            Some(limit) => wrapped.timeout(limit),
            None => wrapped.no_timeout(),
        })
    }
}

#[async_trait]
impl Executor for InVps {
    fn target(&self) -> String {
        format!("local VPS {}", self.container)
    }

    async fn execute(&self, command: &Command, io: ExecIo<'_>) -> Result<Output, ExecError> {
        let wrapped = self.wrap(command)?;
        self.local.execute(&wrapped, io).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn commands_are_wrapped_in_docker_exec() {
        let vps = InVps::new("lvps-1");
        let load = Command::argv(["docker", "load"]).timeout(Duration::from_secs(7));
        let wrapped = vps.wrap(&load).expect("wraps");
        assert_eq!(wrapped.command_line(), "docker exec -i lvps-1 docker load");
        assert_eq!(wrapped.timeout_value(), Some(Duration::from_secs(7)));
        let script = Command::script("echo $HOME | cat").stdin(b"x".to_vec());
        let wrapped = vps.wrap(&script).expect("wraps");
        assert_eq!(
            wrapped.command_line(),
            "docker exec -i lvps-1 sh -c 'echo $HOME | cat'"
        );
        assert_eq!(wrapped.stdin_bytes(), Some(&b"x"[..]));
        assert_eq!(wrapped.timeout_value(), None);
        let secret = Command::argv(["login", "--token", "s3cret"]).secret("s3cret");
        let err = vps.wrap(&secret).expect_err("secrets are refused");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
