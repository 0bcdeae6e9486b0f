//! A typed builder for the Docker CLI ([`DockerCli`], pure), parsers for its output, and
//! [`Docker`], which runs the commands over any [`Executor`] and parses what they print.

mod cli;
mod parse;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncRead;

pub use cli::{
    BUILD_TIMEOUT, BuildContext, BuildOptions, DEFAULT_TIMEOUT, DockerCli, EXEC_TIMEOUT,
    ExecOptions, ObjectKind, PULL_TIMEOUT, PortMapping, Protocol, PsFilter, RUN_TIMEOUT,
    RestartPolicy, RunOptions, STOP_MARGIN, VolumeMount,
};
pub use parse::{
    ContainerConfig, ContainerInfo, ContainerState, NetworkSettings, ParseError, PortBinding,
    PsEntry, is_no_such_object, parse_bool, parse_build_image_id, parse_container_id,
    parse_container_inspect, parse_image_id, parse_load, parse_ps,
};

use crate::command::{Command, Output};
use crate::error::ExecError;
use crate::executor::{ExecIo, Executor, LineCallback, check_output};

/// A Docker operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DockerError {
    /// The command could not run, timed out, or exited unsuccessfully (the error carries
    /// the Docker host, the redacted command line and Docker's message).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The command succeeded but printed something unexpected.
    #[error("unexpected output from `{command}` on {target}: {source}")]
    Parse {
        /// The Docker host.
        target: String,
        /// The redacted command line.
        command: String,
        /// What was wrong.
        #[source]
        source: ParseError,
    },
}

/// Runs Docker CLI commands over an [`Executor`] (an SSH pool to a VPS, or this machine)
/// and parses their output. Each method returns an error for a non-zero exit, except where
/// a missing object is an expected answer (`Ok(None)`, `Ok(false)`).
///
/// ```no_run
/// use std::sync::Arc;
/// use docker_ssh::{Docker, LocalExecutor, PsFilter, RunOptions};
///
/// # async fn demo() -> Result<(), docker_ssh::DockerError> {
/// let docker = Docker::new(Arc::new(LocalExecutor::new()));
/// let id = docker
///     .run(&RunOptions::new("debian:bookworm-slim", "box").label("app", "demo").args(["sleep", "60"]))
///     .await?;
/// let mine = docker.ps(true, &[PsFilter::label("app", "demo")]).await?;
/// assert!(mine.iter().any(|c| c.id == id));
/// docker.rm("box", true).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Docker {
    exec: Arc<dyn Executor>,
    cli: DockerCli,
}

impl std::fmt::Debug for Docker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docker")
            .field("target", &self.exec.target())
            .field("cli", &self.cli)
            .finish()
    }
}

impl Docker {
    /// Runs `docker` on the machine `exec` reaches.
    pub fn new(exec: Arc<dyn Executor>) -> Self {
        Self::with_cli(exec, DockerCli::new())
    }

    /// Uses a custom [`DockerCli`] (e.g. another program path).
    pub fn with_cli(exec: Arc<dyn Executor>, cli: DockerCli) -> Self {
        Self { exec, cli }
    }

    /// The command builder.
    pub fn cli(&self) -> &DockerCli {
        &self.cli
    }

    /// The executor commands run on.
    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.exec
    }

    /// Runs any command (e.g. one from [`Docker::cli`] with a changed timeout), failing on
    /// a non-zero exit.
    pub async fn checked(&self, cmd: &Command) -> Result<Output, DockerError> {
        Ok(self.exec.run_checked(cmd).await?)
    }

    /// Runs `cmd`; `Ok(None)` if it failed because the object does not exist.
    async fn unless_missing(&self, cmd: &Command) -> Result<Option<Output>, DockerError> {
        let out = self.exec.run(cmd).await?;
        if !out.success() && is_no_such_object(&out.stderr_text()) {
            return Ok(None);
        }
        Ok(Some(check_output(&self.exec.target(), cmd, out)?))
    }

    fn parse_error(&self, cmd: &Command, source: ParseError) -> DockerError {
        DockerError::Parse {
            target: self.exec.target(),
            command: cmd.to_string(),
            source,
        }
    }

    /// `docker run -d`; returns the new container's id.
    pub async fn run(&self, options: &RunOptions) -> Result<String, DockerError> {
        let cmd = self.cli.run(options);
        let out = self.checked(&cmd).await?;
        parse_container_id(&out.stdout_text()).map_err(|e| self.parse_error(&cmd, e))
    }

    /// `docker start`.
    pub async fn start(&self, container: &str) -> Result<(), DockerError> {
        self.checked(&self.cli.start(container)).await.map(drop)
    }

    /// `docker stop -t <grace>`.
    pub async fn stop(&self, container: &str, grace: Duration) -> Result<(), DockerError> {
        self.checked(&self.cli.stop(container, grace))
            .await
            .map(drop)
    }

    /// `docker rm [-f]`; `Ok(false)` if there was no such container. (With `force`,
    /// recent Docker CLIs report success for a missing container, so this is `Ok(true)`.)
    pub async fn rm(&self, container: &str, force: bool) -> Result<bool, DockerError> {
        Ok(self
            .unless_missing(&self.cli.rm(container, force))
            .await?
            .is_some())
    }

    /// `docker volume create` with labels.
    pub async fn volume_create(
        &self,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<(), DockerError> {
        self.checked(&self.cli.volume_create(name, labels))
            .await
            .map(drop)
    }

    /// `docker volume rm -f` (a missing volume is fine).
    pub async fn volume_rm(&self, name: &str) -> Result<(), DockerError> {
        self.checked(&self.cli.volume_rm(name)).await.map(drop)
    }

    /// Whether the volume exists.
    pub async fn volume_exists(&self, name: &str) -> Result<bool, DockerError> {
        Ok(self
            .unless_missing(&self.cli.volume_inspect(name))
            .await?
            .is_some())
    }

    /// `docker exec`; returns the command's output whatever its exit code (a failure of
    /// `docker exec` itself, e.g. a missing container, also shows as a non-zero exit).
    pub async fn exec(&self, options: &ExecOptions) -> Result<Output, DockerError> {
        Ok(self.exec.run(&self.cli.exec(options)).await?)
    }

    /// `docker commit`; returns the image id.
    pub async fn commit(&self, container: &str, tag: &str) -> Result<String, DockerError> {
        let cmd = self.cli.commit(container, tag);
        let out = self.checked(&cmd).await?;
        parse_image_id(&out.stdout_text()).map_err(|e| self.parse_error(&cmd, e))
    }

    /// `docker inspect` of one container; `Ok(None)` if it does not exist.
    pub async fn inspect_container(
        &self,
        container: &str,
    ) -> Result<Option<ContainerInfo>, DockerError> {
        let cmd = self.cli.inspect(ObjectKind::Container, &[container]);
        let Some(out) = self.unless_missing(&cmd).await? else {
            return Ok(None);
        };
        let mut all =
            parse_container_inspect(&out.stdout_text()).map_err(|e| self.parse_error(&cmd, e))?;
        if all.len() != 1 {
            return Err(self.parse_error(
                &cmd,
                ParseError {
                    what: "docker inspect output",
                    detail: format!("expected one container, got {}", all.len()),
                },
            ));
        }
        Ok(all.pop())
    }

    /// `docker inspect --format <template>`; the trimmed output, or `Ok(None)` if the
    /// object does not exist.
    pub async fn inspect_format(
        &self,
        kind: ObjectKind,
        name: &str,
        template: &str,
    ) -> Result<Option<String>, DockerError> {
        let out = self
            .unless_missing(&self.cli.inspect_format(kind, name, template))
            .await?;
        Ok(out.map(|o| o.stdout_trimmed()))
    }

    /// Whether the container exists and is running.
    pub async fn is_running(&self, container: &str) -> Result<bool, DockerError> {
        let cmd = self
            .cli
            .inspect_format(ObjectKind::Container, container, "{{.State.Running}}");
        match self.unless_missing(&cmd).await? {
            None => Ok(false),
            Some(out) => parse_bool(&out.stdout_text()).map_err(|e| self.parse_error(&cmd, e)),
        }
    }

    /// Whether the image exists on the Docker host.
    pub async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        Ok(self
            .unless_missing(&self.cli.inspect_format(ObjectKind::Image, image, "{{.Id}}"))
            .await?
            .is_some())
    }

    /// `docker pull`, streaming its progress lines to `on_line`.
    pub async fn pull(&self, image: &str, on_line: LineCallback<'_>) -> Result<(), DockerError> {
        let cmd = self.cli.pull(image);
        let out = self.exec.run_streaming(&cmd, on_line).await?;
        check_output(&self.exec.target(), &cmd, out)?;
        Ok(())
    }

    /// `docker build`, streaming its output lines to `on_line`. With
    /// [`BuildContext::Stdin`], `context_tar` must give the context as a tar stream (see
    /// [`tar_dir`](crate::tar_dir)); it is sent as the build runs. Returns the image id if
    /// the output names it.
    pub async fn build<'a>(
        &self,
        options: &BuildOptions,
        context_tar: Option<&'a mut (dyn AsyncRead + Send + Unpin)>,
        on_line: LineCallback<'a>,
    ) -> Result<Option<String>, DockerError> {
        let cmd = self.cli.build(options);
        if (options.context == BuildContext::Stdin) != context_tar.is_some() {
            return Err(ExecError::InvalidCommand {
                command: cmd.to_string(),
                reason: "a context tar stream is needed exactly when the build context is stdin",
            }
            .into());
        }
        let out = self
            .exec
            .execute(
                &cmd,
                ExecIo {
                    stdin: context_tar,
                    on_line: Some(on_line),
                },
            )
            .await?;
        let out = check_output(&self.exec.target(), &cmd, out)?;
        Ok(parse_build_image_id(&out.stdout_text()))
    }

    /// `docker load` of an image tar read from `image_tar`; returns the loaded references.
    pub async fn load(
        &self,
        image_tar: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<Vec<String>, DockerError> {
        let cmd = self.cli.load();
        let out = self.exec.run_with_stdin(&cmd, image_tar).await?;
        let out = check_output(&self.exec.target(), &cmd, out)?;
        Ok(parse_load(&out.stdout_text()))
    }

    /// `docker ps` (`all`: also stopped containers) with filters.
    pub async fn ps(&self, all: bool, filters: &[PsFilter]) -> Result<Vec<PsEntry>, DockerError> {
        let cmd = self.cli.ps(all, filters);
        let out = self.checked(&cmd).await?;
        parse_ps(&out.stdout_text()).map_err(|e| self.parse_error(&cmd, e))
    }

    /// `docker image rm [-f]`; `Ok(false)` if there was no such image.
    pub async fn image_rm(&self, image: &str, force: bool) -> Result<bool, DockerError> {
        Ok(self
            .unless_missing(&self.cli.image_rm(image, force))
            .await?
            .is_some())
    }

    /// The engine's version; fails if the engine does not answer.
    pub async fn server_version(&self) -> Result<String, DockerError> {
        Ok(self
            .checked(&self.cli.server_version())
            .await?
            .stdout_trimmed())
    }
}

#[cfg(test)]
mod tests;
