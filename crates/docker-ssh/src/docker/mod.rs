//! A typed builder for the Docker CLI ([`DockerCli`], pure), parsers for its output, and
//! [`Docker`], which runs the commands over any [`Executor`] and parses what they print.

mod cleanup;
mod cli;
mod parse;
mod transfer;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

pub use cleanup::Removed;
pub use cli::{
    BUILD_TIMEOUT, BuildContext, BuildOptions, CommitOptions, DEFAULT_TIMEOUT, DockerCli,
    EXEC_TIMEOUT, ExecOptions, ObjectKind, PULL_TIMEOUT, PortMapping, Protocol, PsFilter,
    PullPolicy, RUN_TIMEOUT, RestartPolicy, RunOptions, STOP_MARGIN, VolumeMount,
};
pub use parse::{
    ContainerConfig, ContainerInfo, ContainerState, NetworkSettings, ParseError, PortBinding,
    PsEntry, VolumeInfo, is_no_such_object,
};
use parse::{
    is_name_conflict, parse_bool, parse_build_image_id, parse_container_id,
    parse_container_inspect, parse_image_id, parse_lines, parse_load, parse_ps,
    parse_volume_inspect,
};
pub use transfer::{ImageTransfer, ImageTransferError};

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
    /// `docker run` or `docker create` failed because another container has the name
    /// (e.g. a concurrent caller created it first).
    #[error("the container name {name} is already in use: {source}")]
    NameConflict {
        /// The container name.
        name: String,
        /// The failed command, with Docker's message.
        #[source]
        source: ExecError,
    },
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

    /// Runs `cmd`, a `docker run`/`create` of container `name`, failing with
    /// [`DockerError::NameConflict`] if the name is taken.
    async fn creating(&self, cmd: &Command, name: &str) -> Result<Output, DockerError> {
        let out = self.exec.run(cmd).await?;
        let conflict = !out.success() && is_name_conflict(&out.stderr_text());
        let checked = check_output(&self.exec.target(), cmd, out);
        match checked {
            Err(source) if conflict => Err(DockerError::NameConflict {
                name: name.to_owned(),
                source,
            }),
            other => Ok(other?),
        }
    }

    /// [`Self::creating`], then the container id the command printed.
    async fn created_id(&self, cmd: &Command, name: &str) -> Result<String, DockerError> {
        let out = self.creating(cmd, name).await?;
        parse_container_id(&out.stdout_text()).map_err(|e| self.parse_error(cmd, e))
    }

    /// Runs many-object `docker inspect` command `cmd`; objects that do not exist are left
    /// out of the JSON array it returns (`None`: none was printed).
    async fn inspect_existing(&self, cmd: &Command) -> Result<Option<String>, DockerError> {
        let mut out = self.exec.run(cmd).await?;
        if !is_no_such_object(&out.stderr_text()) {
            out = check_output(&self.exec.target(), cmd, out)?;
        }
        let text = out.stdout_text();
        Ok(Some(text).filter(|t| !t.trim().is_empty()))
    }

    /// `docker run -d`; returns the new container's id ([`DockerError::NameConflict`] if
    /// the name is taken).
    pub async fn run(&self, options: &RunOptions) -> Result<String, DockerError> {
        self.created_id(&self.cli.run(options), &options.name).await
    }

    /// `docker create`: the container exists, stopped; returns its id
    /// ([`DockerError::NameConflict`] if the name is taken).
    pub async fn create(&self, options: &RunOptions) -> Result<String, DockerError> {
        self.created_id(&self.cli.create(options), &options.name)
            .await
    }

    /// `docker run` in the foreground: waits for the container to exit and returns its
    /// output; an unsuccessful exit is an error ([`DockerError::NameConflict`] if the name
    /// is taken).
    pub async fn run_attached(&self, options: &RunOptions) -> Result<Output, DockerError> {
        self.creating(&self.cli.run_attached(options), &options.name)
            .await
    }

    /// `docker cp SRC CONTAINER:DEST` (a path of the Docker host into the container).
    pub async fn cp_into(&self, src: &str, container: &str, dest: &str) -> Result<(), DockerError> {
        self.checked(&self.cli.cp_into(src, container, dest))
            .await
            .map(drop)
    }

    /// `docker pause`.
    pub async fn pause(&self, container: &str) -> Result<(), DockerError> {
        self.checked(&self.cli.pause(container)).await.map(drop)
    }

    /// `docker unpause`.
    pub async fn unpause(&self, container: &str) -> Result<(), DockerError> {
        self.checked(&self.cli.unpause(container)).await.map(drop)
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

    /// `docker rename`: gives a container (running or not) a new name.
    pub async fn rename(&self, container: &str, new_name: &str) -> Result<(), DockerError> {
        self.checked(&self.cli.rename(container, new_name))
            .await
            .map(drop)
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
        self.commit_with(&CommitOptions::new(container, tag)).await
    }

    /// `docker commit` with options (no pause, `--change`); returns the image id.
    pub async fn commit_with(&self, options: &CommitOptions) -> Result<String, DockerError> {
        let cmd = self.cli.commit_with(options);
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

    /// `docker inspect` of several containers in one command; those that do not exist are
    /// left out (so the result may be shorter than `containers`, in any order).
    pub async fn inspect_containers(
        &self,
        containers: &[&str],
    ) -> Result<Vec<ContainerInfo>, DockerError> {
        if containers.is_empty() {
            return Ok(Vec::new());
        }
        let cmd = self.cli.inspect(ObjectKind::Container, containers);
        match self.inspect_existing(&cmd).await? {
            None => Ok(Vec::new()),
            Some(text) => parse_container_inspect(&text).map_err(|e| self.parse_error(&cmd, e)),
        }
    }

    /// `docker inspect` of several volumes in one command (labels, creation time); those
    /// that do not exist are left out.
    pub async fn inspect_volumes(&self, volumes: &[&str]) -> Result<Vec<VolumeInfo>, DockerError> {
        if volumes.is_empty() {
            return Ok(Vec::new());
        }
        let cmd = self.cli.inspect(ObjectKind::Volume, volumes);
        match self.inspect_existing(&cmd).await? {
            None => Ok(Vec::new()),
            Some(text) => parse_volume_inspect(&text).map_err(|e| self.parse_error(&cmd, e)),
        }
    }

    /// The names of the volumes carrying all `labels` (`docker volume ls -q --filter`).
    pub async fn volume_ls(&self, labels: &[(String, String)]) -> Result<Vec<String>, DockerError> {
        let out = self.checked(&self.cli.volume_ls(labels)).await?;
        Ok(parse_lines(&out.stdout_text()))
    }

    /// `docker network create` with labels.
    pub async fn network_create(
        &self,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<(), DockerError> {
        self.checked(&self.cli.network_create(name, labels))
            .await
            .map(drop)
    }

    /// The ids of the networks carrying all `labels` (`docker network ls -q --filter`).
    pub async fn network_ls(
        &self,
        labels: &[(String, String)],
    ) -> Result<Vec<String>, DockerError> {
        let out = self.checked(&self.cli.network_ls(labels)).await?;
        Ok(parse_lines(&out.stdout_text()))
    }

    /// `docker network rm` of the networks (names or ids); nothing to do for none.
    pub async fn network_rm(&self, networks: &[&str]) -> Result<(), DockerError> {
        if networks.is_empty() {
            return Ok(());
        }
        self.checked(&self.cli.network_rm(networks)).await.map(drop)
    }

    /// `docker save`: writes the image's tar stream to `sink` as it comes (nothing is
    /// held in memory), e.g. one end of a pipe whose other end feeds a `docker load`.
    /// `sink` is flushed, not shut down.
    pub async fn save(
        &self,
        image: &str,
        sink: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<(), DockerError> {
        let cmd = self.cli.save(image);
        let out = self.exec.run_with_stdout(&cmd, sink).await?;
        check_output(&self.exec.target(), &cmd, out)?;
        Ok(())
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
                    stdout: None,
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
