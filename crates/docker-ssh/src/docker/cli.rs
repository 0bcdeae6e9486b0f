//! Pure argv building for the Docker CLI: no I/O, every method returns a [`Command`].

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::command::{Command, REDACTED};

/// Default timeout of `docker run`.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Default timeout of `docker pull` and `docker load`.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(300);
/// Default timeout of `docker exec`.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(300);
/// Default timeout of `docker build`.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(600);
/// Default timeout of the other Docker commands.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for `docker stop` on top of its grace period.
pub const STOP_MARGIN: Duration = Duration::from_secs(30);

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (Docker's default, rendered without a suffix).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// A published port: `[host_ip:][host_port:]container_port[/udp]` for `-p`.
///
/// ```
/// use docker_ssh::PortMapping;
/// let p = PortMapping::new(22).host_ip([127, 0, 0, 1].into()).host_port(2222);
/// assert_eq!(p.to_string(), "127.0.0.1:2222:22");
/// assert_eq!(PortMapping::new(80).to_string(), "80");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// Host address to bind (all addresses if `None`).
    pub host_ip: Option<IpAddr>,
    /// Host port (Docker picks a free one if `None`).
    pub host_port: Option<u16>,
    /// Port inside the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl PortMapping {
    /// Publishes `container_port` on a port Docker picks, on all host addresses.
    pub fn new(container_port: u16) -> Self {
        Self {
            host_ip: None,
            host_port: None,
            container_port,
            protocol: Protocol::Tcp,
        }
    }

    /// Binds only this host address (e.g. `127.0.0.1`).
    pub fn host_ip(mut self, ip: IpAddr) -> Self {
        self.host_ip = Some(ip);
        self
    }

    /// Uses this host port.
    pub fn host_port(mut self, port: u16) -> Self {
        self.host_port = Some(port);
        self
    }

    /// Publishes UDP instead of TCP.
    pub fn udp(mut self) -> Self {
        self.protocol = Protocol::Udp;
        self
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.host_ip, self.host_port) {
            (Some(IpAddr::V6(ip)), port) => write!(
                f,
                "[{ip}]:{}:",
                port.map(|p| p.to_string()).unwrap_or_default()
            )?,
            (Some(ip), port) => write!(
                f,
                "{ip}:{}:",
                port.map(|p| p.to_string()).unwrap_or_default()
            )?,
            (None, Some(port)) => write!(f, "{port}:")?,
            (None, None) => {}
        }
        write!(f, "{}", self.container_port)?;
        if self.protocol == Protocol::Udp {
            f.write_str("/udp")?;
        }
        Ok(())
    }
}

/// A volume or bind mount for `-v source:target[:ro]`.
///
/// ```
/// use docker_ssh::VolumeMount;
/// assert_eq!(VolumeMount::new("mngr-state", "/state").to_string(), "mngr-state:/state");
/// assert_eq!(VolumeMount::new("/srv", "/srv").read_only().to_string(), "/srv:/srv:ro");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VolumeMount {
    /// Volume name or host path.
    pub source: String,
    /// Path inside the container.
    pub target: String,
    /// Mount read-only.
    pub read_only: bool,
}

impl VolumeMount {
    /// Mounts volume (or host path) `source` at `target`, read-write.
    pub fn new(source: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            target: target.into(),
            read_only: false,
        }
    }

    /// Mounts read-only.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
}

impl fmt::Display for VolumeMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.target)?;
        if self.read_only {
            f.write_str(":ro")?;
        }
        Ok(())
    }
}

/// `--restart` policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestartPolicy {
    /// `no`.
    No,
    /// `always`.
    Always,
    /// `unless-stopped`.
    UnlessStopped,
    /// `on-failure[:max_retries]`.
    OnFailure(Option<u32>),
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
            RestartPolicy::OnFailure(None) => f.write_str("on-failure"),
            RestartPolicy::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
        }
    }
}

/// `--pull` policy of `docker run` and `docker create`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PullPolicy {
    /// `always`: pull before running, even if the image is present.
    Always,
    /// `missing` (Docker's default): pull only if the image is absent.
    Missing,
    /// `never`: fail if the image is absent.
    Never,
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullPolicy::Always => "always",
            PullPolicy::Missing => "missing",
            PullPolicy::Never => "never",
        })
    }
}

/// Everything `docker run -d` (or `docker create`, or an attached `docker run`) needs.
/// Arguments are emitted in a fixed order: `--rm`, `--name`, `-p`, `-v`, `--label` (in
/// insertion order), `-e`, `--restart`, `--pull`, extra args verbatim, `--entrypoint`, the
/// image, then the image arguments.
///
/// ```
/// use docker_ssh::{DockerCli, PortMapping, RestartPolicy, RunOptions, VolumeMount};
/// let opts = RunOptions::new("my-image:tag", "my-container")
///     .port(PortMapping::new(80).host_ip([127, 0, 0, 1].into()).host_port(8080))
///     .volume(VolumeMount::new("/host/data", "/data"))
///     .label("com.imbue.mngr.host-id", "host-abc")
///     .restart(RestartPolicy::Always)
///     .shell_entrypoint("echo hi");
/// assert_eq!(
///     DockerCli::new().run(&opts).command_line(),
///     "docker run -d --name my-container -p 127.0.0.1:8080:80 -v /host/data:/data \
///      --label com.imbue.mngr.host-id=host-abc --restart always \
///      --entrypoint sh my-image:tag -c 'echo hi'"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Image to run.
    pub image: String,
    /// Container name.
    pub name: String,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// Volumes and bind mounts.
    pub volumes: Vec<VolumeMount>,
    /// Labels, in order.
    pub labels: Vec<(String, String)>,
    /// Environment variables, in order. They are visible in `docker inspect` and in the
    /// process list of the Docker host while the command runs: no secrets here.
    pub env: Vec<(String, String)>,
    /// Restart policy.
    pub restart: Option<RestartPolicy>,
    /// Pull policy (Docker's default, `missing`, if `None`).
    pub pull: Option<PullPolicy>,
    /// Remove the container when it exits (`--rm`).
    pub auto_remove: bool,
    /// Command timeout (default: [`RUN_TIMEOUT`] for `docker run`, [`DEFAULT_TIMEOUT`] for
    /// `docker create`).
    pub timeout: Option<Duration>,
    /// Extra `docker run` arguments, passed verbatim before the image.
    pub extra_args: Vec<String>,
    /// Entrypoint override.
    pub entrypoint: Option<String>,
    /// Arguments after the image (the command, or the entrypoint's arguments).
    pub args: Vec<String>,
}

impl RunOptions {
    /// Runs `image` as a detached container called `name`.
    pub fn new(image: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            name: name.into(),
            ports: Vec::new(),
            volumes: Vec::new(),
            labels: Vec::new(),
            env: Vec::new(),
            restart: None,
            pull: None,
            auto_remove: false,
            timeout: None,
            extra_args: Vec::new(),
            entrypoint: None,
            args: Vec::new(),
        }
    }

    /// Publishes a port.
    pub fn port(mut self, port: PortMapping) -> Self {
        self.ports.push(port);
        self
    }

    /// Mounts a volume.
    pub fn volume(mut self, volume: VolumeMount) -> Self {
        self.volumes.push(volume);
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// Sets an environment variable (not for secrets, see [`RunOptions::env`]).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the restart policy.
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = Some(policy);
        self
    }

    /// Sets the pull policy (e.g. [`PullPolicy::Never`] for an image that must already be
    /// on the Docker host).
    pub fn pull(mut self, policy: PullPolicy) -> Self {
        self.pull = Some(policy);
        self
    }

    /// Removes the container when it exits (`--rm`).
    pub fn auto_remove(mut self) -> Self {
        self.auto_remove = true;
        self
    }

    /// Sets the command timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Appends extra `docker run` arguments (verbatim, each one word).
    pub fn extra_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Overrides the entrypoint.
    pub fn entrypoint(mut self, entrypoint: impl Into<String>) -> Self {
        self.entrypoint = Some(entrypoint.into());
        self
    }

    /// Appends arguments after the image.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs `script` with `sh -c` as the container's main process (`--entrypoint sh
    /// <image> -c <script>`), replacing earlier entrypoint and arguments.
    pub fn shell_entrypoint(mut self, script: impl Into<String>) -> Self {
        self.entrypoint = Some("sh".to_owned());
        self.args = vec!["-c".to_owned(), script.into()];
        self
    }
}

/// What a `docker exec` runs inside the container.
#[derive(Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// Container name or id.
    pub container: String,
    /// The argv run in the container.
    pub argv: Vec<String>,
    /// Keep stdin open (`-i`); needed to feed stdin.
    pub interactive: bool,
    /// `-u user[:group]`.
    pub user: Option<String>,
    /// `-w dir`.
    pub workdir: Option<String>,
    /// `-e KEY=VALUE` (visible in the Docker host's process list: no secrets).
    pub env: Vec<(String, String)>,
    /// Bytes fed to the command's stdin (implies `-i`). Never logged.
    pub stdin: Option<Vec<u8>>,
    /// Command timeout (default [`EXEC_TIMEOUT`]).
    pub timeout: Option<Duration>,
    /// Strings hidden from logs and errors (see [`Command::secret`]).
    pub secrets: Vec<String>,
    /// Safe to run twice (see [`Command::idempotent`]).
    pub idempotent: bool,
}

// By hand: stdin is how secrets are passed, and `secrets` are the secrets themselves.
impl fmt::Debug for ExecOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |text: &str| {
            self.secrets
                .iter()
                .filter(|secret| !secret.is_empty())
                .fold(text.to_owned(), |text, secret| {
                    text.replace(secret.as_str(), REDACTED)
                })
        };
        let env: Vec<(&str, String)> = self
            .env
            .iter()
            .map(|(key, value)| (key.as_str(), redact(value)))
            .collect();
        f.debug_struct("ExecOptions")
            .field("container", &self.container)
            .field(
                "argv",
                &self.argv.iter().map(|w| redact(w)).collect::<Vec<_>>(),
            )
            .field("interactive", &self.interactive)
            .field("user", &self.user)
            .field("workdir", &self.workdir)
            .field("env", &env)
            .field("stdin_bytes", &self.stdin.as_ref().map(Vec::len))
            .field("timeout", &self.timeout)
            .field("secrets", &self.secrets.len())
            .field("idempotent", &self.idempotent)
            .finish()
    }
}

impl ExecOptions {
    /// Runs `argv` in `container`.
    pub fn argv<I, S>(container: impl Into<String>, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            container: container.into(),
            argv: argv.into_iter().map(Into::into).collect(),
            interactive: false,
            user: None,
            workdir: None,
            env: Vec::new(),
            stdin: None,
            timeout: None,
            secrets: Vec::new(),
            idempotent: false,
        }
    }

    /// Runs `script` with `sh -c` in `container`.
    pub fn script(container: impl Into<String>, script: impl Into<String>) -> Self {
        Self::argv(container, ["sh".to_owned(), "-c".to_owned(), script.into()])
    }

    /// Keeps stdin open (`-i`), so the command can read what the caller sends.
    pub fn interactive(mut self) -> Self {
        self.interactive = true;
        self
    }

    /// Runs as this user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Runs in this directory.
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Feeds `bytes` to the command's stdin (and sets `-i`). This is the way to pass
    /// secrets such as private keys: stdin is never logged nor in any process list.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self.interactive = true;
        self
    }

    /// Sets the command timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Hides `secret` in logs and errors.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Marks the command as safe to run twice, so a pooled SSH executor may retry it after
    /// a dropped connection (see [`Command::idempotent`]).
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
}

/// Options of `docker commit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitOptions {
    /// Container name or id.
    pub container: String,
    /// The image reference to create (`repository:tag`).
    pub reference: String,
    /// Pause the container while committing (Docker's default). `false` emits
    /// `--pause=false`, for a container the caller paused or stopped itself.
    pub pause: bool,
    /// Dockerfile instructions applied to the image (`--change`), in order, e.g.
    /// `LABEL a=b`.
    pub changes: Vec<String>,
    /// Command timeout (default [`DEFAULT_TIMEOUT`]).
    pub timeout: Option<Duration>,
}

impl CommitOptions {
    /// Commits `container` as image `reference`.
    pub fn new(container: impl Into<String>, reference: impl Into<String>) -> Self {
        Self {
            container: container.into(),
            reference: reference.into(),
            pause: true,
            changes: Vec::new(),
            timeout: None,
        }
    }

    /// Does not pause the container (`--pause=false`).
    pub fn no_pause(mut self) -> Self {
        self.pause = false;
        self
    }

    /// Adds a `--change` instruction.
    pub fn change(mut self, instruction: impl Into<String>) -> Self {
        self.changes.push(instruction.into());
        self
    }

    /// Sets the command timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Where `docker build` takes its context from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildContext {
    /// A directory on the Docker host (e.g. uploaded with [`upload_dir`](crate::upload_dir)).
    Dir(String),
    /// A tar stream on stdin (`docker build -`): upload and build in one command.
    Stdin,
}

/// Options of `docker build`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// The tag of the image (`-t`).
    pub tag: String,
    /// The build context.
    pub context: BuildContext,
    /// Dockerfile path (`-f`), relative to the context unless absolute.
    pub dockerfile: Option<String>,
    /// `--build-arg KEY=VALUE`, in order.
    pub build_args: Vec<(String, String)>,
    /// `--label KEY=VALUE`, in order.
    pub labels: Vec<(String, String)>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// Extra arguments, verbatim, before the context.
    pub extra_args: Vec<String>,
}

impl BuildOptions {
    /// Builds `context` as image `tag`.
    pub fn new(tag: impl Into<String>, context: BuildContext) -> Self {
        Self {
            tag: tag.into(),
            context,
            dockerfile: None,
            build_args: Vec::new(),
            labels: Vec::new(),
            no_cache: false,
            extra_args: Vec::new(),
        }
    }

    /// Uses this Dockerfile.
    pub fn dockerfile(mut self, path: impl Into<String>) -> Self {
        self.dockerfile = Some(path.into());
        self
    }

    /// Adds a build argument.
    pub fn build_arg(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.build_args.push((key.into(), value.into()));
        self
    }

    /// Adds a label to the image.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// Disables the build cache.
    pub fn no_cache(mut self) -> Self {
        self.no_cache = true;
        self
    }

    /// Appends extra arguments (verbatim, each one word).
    pub fn extra_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// A `docker ps --filter`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PsFilter {
    /// `label=KEY` (has the label) or `label=KEY=VALUE`.
    Label {
        /// Label key.
        key: String,
        /// Required value, or any value.
        value: Option<String>,
    },
    /// `name=NAME` (Docker matches substrings; see [`PsEntry::has_name`](crate::PsEntry::has_name)).
    Name(String),
    /// `id=ID` (prefix).
    Id(String),
    /// `status=created|restarting|running|removing|paused|exited|dead`.
    Status(String),
}

impl PsFilter {
    /// `label=key=value`.
    pub fn label(key: impl Into<String>, value: impl Into<String>) -> Self {
        PsFilter::Label {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// `label=key`.
    pub fn has_label(key: impl Into<String>) -> Self {
        PsFilter::Label {
            key: key.into(),
            value: None,
        }
    }
}

impl fmt::Display for PsFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PsFilter::Label { key, value: None } => write!(f, "label={key}"),
            PsFilter::Label {
                key,
                value: Some(v),
            } => write!(f, "label={key}={v}"),
            PsFilter::Name(n) => write!(f, "name={n}"),
            PsFilter::Id(id) => write!(f, "id={id}"),
            PsFilter::Status(s) => write!(f, "status={s}"),
        }
    }
}

/// Builds Docker CLI commands. Pure: nothing runs until a [`Command`] is given to an
/// [`Executor`](crate::Executor) (or use [`Docker`](crate::Docker), which does both and
/// parses the output). Each command carries its default timeout; override it with
/// [`Command::timeout`].
///
/// Container, image, tag, volume and network names and `cp`/`build` paths are checked:
/// one that starts with `-` (which Docker would take for an option) or holds characters
/// no such name can have makes the command refused, so no executor runs it and the error
/// ([`ExecError::InvalidArgument`](crate::ExecError::InvalidArgument)) names the value.
/// Option values and the arguments after the image or container are passed verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerCli {
    program: String,
}

impl Default for DockerCli {
    fn default() -> Self {
        Self::new()
    }
}

/// What a value given to a [`DockerCli`] builder names. Each has the rule Docker applies
/// (or a stricter one), and none may start with `-`, which the Docker CLI would read as
/// an option: `docker save -o/path` writes a file. A command with a value that breaks
/// its rule is refused before it runs ([`ExecError::InvalidArgument`](crate::ExecError::InvalidArgument)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arg {
    /// A container name or id.
    Container,
    /// An image reference or id, or a tag to create.
    Image,
    /// A volume name.
    Volume,
    /// A network name or id.
    Network,
    /// A path on the Docker host (`docker cp` source, `docker build` context).
    Path,
}

impl Arg {
    fn what(self) -> &'static str {
        match self {
            Arg::Container => "container",
            Arg::Image => "image",
            Arg::Volume => "volume",
            Arg::Network => "network",
            Arg::Path => "path",
        }
    }

    fn rule(self) -> &'static str {
        match self {
            Arg::Container | Arg::Volume | Arg::Network => {
                "is not a valid name or id: it must start with a letter or digit and contain \
                 only letters, digits and `_.-`"
            }
            Arg::Image => {
                "is not a valid image reference: it must start with a letter or digit and \
                 contain only letters, digits and `_.-:/@`"
            }
            Arg::Path => "is not a usable path: it must not be empty or start with `-`",
        }
    }

    fn accepts(self, value: &str) -> bool {
        let starts_alnum = value.starts_with(|c: char| c.is_ascii_alphanumeric());
        let only = |extra: &str| {
            value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
        };
        match self {
            Arg::Container | Arg::Volume | Arg::Network => starts_alnum && only("_.-"),
            Arg::Image => starts_alnum && only("_.-:/@"),
            Arg::Path => !value.is_empty() && !value.starts_with('-'),
        }
    }
}

/// `cmd`, refused if one of `values` breaks the rule of what it names.
fn guarded(cmd: Command, values: &[(Arg, &str)]) -> Command {
    match values.iter().find(|(arg, value)| !arg.accepts(value)) {
        Some((arg, value)) => cmd.refuse(arg.what(), value, arg.rule()),
        None => cmd,
    }
}

/// What `docker inspect --type KIND` names.
fn inspected(kind: ObjectKind) -> Arg {
    match kind {
        ObjectKind::Container => Arg::Container,
        ObjectKind::Image => Arg::Image,
        ObjectKind::Volume => Arg::Volume,
    }
}

fn kv(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// `--filter label=K=V` for each pair.
fn label_filters(labels: &[(String, String)]) -> impl Iterator<Item = String> + '_ {
    labels
        .iter()
        .flat_map(|(k, v)| ["--filter".to_owned(), format!("label={k}={v}")])
}

impl DockerCli {
    /// Uses `docker` from `PATH`.
    pub fn new() -> Self {
        Self::with_program("docker")
    }

    /// Uses another program path (e.g. `/usr/bin/docker`).
    pub fn with_program(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
        }
    }

    fn cmd(&self, args: Vec<String>, timeout: Duration) -> Command {
        let mut argv = Vec::with_capacity(args.len() + 1);
        argv.push(self.program.clone());
        argv.extend(args);
        Command::argv(argv).timeout(timeout)
    }

    /// The words of `docker run`/`create` after the subcommand (and `-d`).
    fn run_args(o: &RunOptions) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        if o.auto_remove {
            a.push("--rm".into());
        }
        a.extend(["--name".into(), o.name.clone()]);
        for p in &o.ports {
            a.extend(["-p".into(), p.to_string()]);
        }
        for v in &o.volumes {
            a.extend(["-v".into(), v.to_string()]);
        }
        for (k, v) in &o.labels {
            a.extend(["--label".into(), kv(k, v)]);
        }
        for (k, v) in &o.env {
            a.extend(["-e".into(), kv(k, v)]);
        }
        if let Some(r) = o.restart {
            a.extend(["--restart".into(), r.to_string()]);
        }
        if let Some(p) = o.pull {
            a.extend(["--pull".into(), p.to_string()]);
        }
        a.extend(o.extra_args.iter().cloned());
        if let Some(e) = &o.entrypoint {
            a.extend(["--entrypoint".into(), e.clone()]);
        }
        a.push(o.image.clone());
        a.extend(o.args.iter().cloned());
        a
    }

    /// `cmd`, refused if the image or container name of `o` is not valid.
    fn guarded_run(cmd: Command, o: &RunOptions) -> Command {
        guarded(cmd, &[(Arg::Image, &o.image), (Arg::Container, &o.name)])
    }

    /// `docker run -d …`; prints the container id.
    pub fn run(&self, o: &RunOptions) -> Command {
        let mut a: Vec<String> = vec!["run".into(), "-d".into()];
        a.extend(Self::run_args(o));
        Self::guarded_run(self.cmd(a, o.timeout.unwrap_or(RUN_TIMEOUT)), o)
    }

    /// `docker create …` with the options of [`DockerCli::run`]: the container exists but
    /// does not run (so files can be copied in before it starts); prints the container id.
    pub fn create(&self, o: &RunOptions) -> Command {
        let mut a: Vec<String> = vec!["create".into()];
        a.extend(Self::run_args(o));
        Self::guarded_run(self.cmd(a, o.timeout.unwrap_or(DEFAULT_TIMEOUT)), o)
    }

    /// `docker run …` in the foreground (no `-d`): waits until the container exits, with
    /// its output as the command's. Add [`RunOptions::auto_remove`] for a one-off container.
    pub fn run_attached(&self, o: &RunOptions) -> Command {
        let mut a: Vec<String> = vec!["run".into()];
        a.extend(Self::run_args(o));
        Self::guarded_run(self.cmd(a, o.timeout.unwrap_or(RUN_TIMEOUT)), o)
    }

    /// `docker cp SRC CONTAINER:DEST`: copies a path of the Docker host into a container
    /// (`SRC` ending in `/.` copies a directory's contents).
    pub fn cp_into(&self, src: &str, container: &str, dest: &str) -> Command {
        guarded(
            self.cmd(
                vec!["cp".into(), src.into(), format!("{container}:{dest}")],
                DEFAULT_TIMEOUT,
            ),
            &[(Arg::Path, src), (Arg::Container, container)],
        )
    }

    /// `docker cp - CONTAINER:DEST`: extracts a tar archive read from stdin (give it with
    /// [`Command::stdin`]) into a container at `DEST`, a directory. Works on a created,
    /// not yet started container, so files can be in place before its first start.
    pub fn cp_tar_into(&self, container: &str, dest: &str) -> Command {
        guarded(
            self.cmd(
                vec!["cp".into(), "-".into(), format!("{container}:{dest}")],
                DEFAULT_TIMEOUT,
            ),
            &[(Arg::Container, container), (Arg::Path, dest)],
        )
    }

    /// `docker pause NAME`.
    pub fn pause(&self, container: &str) -> Command {
        guarded(
            self.cmd(vec!["pause".into(), container.into()], DEFAULT_TIMEOUT),
            &[(Arg::Container, container)],
        )
    }

    /// `docker unpause NAME`.
    pub fn unpause(&self, container: &str) -> Command {
        guarded(
            self.cmd(vec!["unpause".into(), container.into()], DEFAULT_TIMEOUT),
            &[(Arg::Container, container)],
        )
    }

    /// `docker start NAME`.
    pub fn start(&self, container: &str) -> Command {
        guarded(
            self.cmd(vec!["start".into(), container.into()], DEFAULT_TIMEOUT),
            &[(Arg::Container, container)],
        )
    }

    /// `docker stop -t SECONDS NAME`; the command timeout is the grace period plus
    /// [`STOP_MARGIN`], so it never expires before Docker gives up waiting.
    pub fn stop(&self, container: &str, grace: Duration) -> Command {
        let secs = grace.as_secs();
        let cmd = self.cmd(
            vec![
                "stop".into(),
                "-t".into(),
                secs.to_string(),
                container.into(),
            ],
            Duration::from_secs(secs) + STOP_MARGIN,
        );
        guarded(cmd, &[(Arg::Container, container)])
    }

    /// `docker rm [-f] NAME`.
    pub fn rm(&self, container: &str, force: bool) -> Command {
        let mut a: Vec<String> = vec!["rm".into()];
        if force {
            a.push("-f".into());
        }
        a.push(container.into());
        guarded(self.cmd(a, DEFAULT_TIMEOUT), &[(Arg::Container, container)])
    }

    /// `docker rename OLD NEW` (works on a running container).
    pub fn rename(&self, container: &str, new_name: &str) -> Command {
        self.cmd(
            vec!["rename".into(), container.into(), new_name.into()],
            DEFAULT_TIMEOUT,
        )
    }

    /// `docker volume create [--label K=V]… NAME`.
    pub fn volume_create(&self, name: &str, labels: &[(String, String)]) -> Command {
        let mut a: Vec<String> = vec!["volume".into(), "create".into()];
        for (k, v) in labels {
            a.extend(["--label".into(), kv(k, v)]);
        }
        a.push(name.into());
        guarded(self.cmd(a, DEFAULT_TIMEOUT), &[(Arg::Volume, name)])
    }

    /// `docker volume rm -f NAME` (a missing volume is not an error).
    pub fn volume_rm(&self, name: &str) -> Command {
        guarded(
            self.cmd(
                vec!["volume".into(), "rm".into(), "-f".into(), name.into()],
                DEFAULT_TIMEOUT,
            ),
            &[(Arg::Volume, name)],
        )
    }

    /// `docker volume inspect --format {{.Name}} NAME` (fails if it does not exist).
    pub fn volume_inspect(&self, name: &str) -> Command {
        let cmd = self.cmd(
            vec![
                "volume".into(),
                "inspect".into(),
                "--format".into(),
                "{{.Name}}".into(),
                name.into(),
            ],
            DEFAULT_TIMEOUT,
        );
        guarded(cmd, &[(Arg::Volume, name)])
    }

    /// `docker volume ls -q [--filter label=K=V]…`: the names of the volumes carrying all
    /// the labels, one a line ([`Docker::volume_ls`](crate::Docker::volume_ls) runs and parses it).
    pub fn volume_ls(&self, labels: &[(String, String)]) -> Command {
        let mut a: Vec<String> = vec!["volume".into(), "ls".into(), "-q".into()];
        a.extend(label_filters(labels));
        self.cmd(a, DEFAULT_TIMEOUT)
    }

    /// `docker network create [--label K=V]… NAME`.
    pub fn network_create(&self, name: &str, labels: &[(String, String)]) -> Command {
        let mut a: Vec<String> = vec!["network".into(), "create".into()];
        for (k, v) in labels {
            a.extend(["--label".into(), kv(k, v)]);
        }
        a.push(name.into());
        guarded(self.cmd(a, DEFAULT_TIMEOUT), &[(Arg::Network, name)])
    }

    /// `docker network ls -q --no-trunc [--filter label=K=V]…`: the ids of the networks
    /// carrying all the labels, one a line.
    pub fn network_ls(&self, labels: &[(String, String)]) -> Command {
        let mut a: Vec<String> = vec![
            "network".into(),
            "ls".into(),
            "-q".into(),
            "--no-trunc".into(),
        ];
        a.extend(label_filters(labels));
        self.cmd(a, DEFAULT_TIMEOUT)
    }

    /// `docker network rm NAME…`.
    pub fn network_rm(&self, names: &[&str]) -> Command {
        let mut a: Vec<String> = vec!["network".into(), "rm".into()];
        a.extend(names.iter().map(|n| (*n).to_owned()));
        let values: Vec<(Arg, &str)> = names.iter().map(|n| (Arg::Network, *n)).collect();
        guarded(self.cmd(a, DEFAULT_TIMEOUT), &values)
    }

    /// `docker save IMAGE`: the image as a tar stream on stdout.
    pub fn save(&self, image: &str) -> Command {
        guarded(
            self.cmd(vec!["save".into(), image.into()], PULL_TIMEOUT),
            &[(Arg::Image, image)],
        )
    }

    /// `docker exec [-i] [-u U] [-w DIR] [-e K=V]… NAME ARGV…`.
    pub fn exec(&self, o: &ExecOptions) -> Command {
        let mut a: Vec<String> = vec!["exec".into()];
        if o.interactive {
            a.push("-i".into());
        }
        if let Some(u) = &o.user {
            a.extend(["-u".into(), u.clone()]);
        }
        if let Some(w) = &o.workdir {
            a.extend(["-w".into(), w.clone()]);
        }
        for (k, v) in &o.env {
            a.extend(["-e".into(), kv(k, v)]);
        }
        a.push(o.container.clone());
        a.extend(o.argv.iter().cloned());
        let mut cmd = guarded(
            self.cmd(a, o.timeout.unwrap_or(EXEC_TIMEOUT)),
            &[(Arg::Container, &o.container)],
        );
        if let Some(bytes) = &o.stdin {
            cmd = cmd.stdin(bytes.clone());
        }
        for secret in &o.secrets {
            cmd = cmd.secret(secret.clone());
        }
        if o.idempotent {
            cmd = cmd.idempotent();
        }
        cmd
    }

    /// `docker commit NAME TAG`; prints the image id.
    pub fn commit(&self, container: &str, tag: &str) -> Command {
        self.commit_with(&CommitOptions::new(container, tag))
    }

    /// `docker commit [--pause=false] [--change C]… NAME REF`; prints the image id.
    pub fn commit_with(&self, o: &CommitOptions) -> Command {
        let mut a: Vec<String> = vec!["commit".into()];
        if !o.pause {
            a.push("--pause=false".into());
        }
        for c in &o.changes {
            a.extend(["--change".into(), c.clone()]);
        }
        a.extend([o.container.clone(), o.reference.clone()]);
        guarded(
            self.cmd(a, o.timeout.unwrap_or(DEFAULT_TIMEOUT)),
            &[(Arg::Container, &o.container), (Arg::Image, &o.reference)],
        )
    }

    /// `docker inspect --type TYPE NAME…`; prints a JSON array (fails if one is missing;
    /// [`Docker::inspect_containers`](crate::Docker::inspect_containers) and
    /// [`Docker::inspect_volumes`](crate::Docker::inspect_volumes) run and parse it).
    pub fn inspect(&self, kind: ObjectKind, names: &[&str]) -> Command {
        let mut a: Vec<String> = vec!["inspect".into(), "--type".into(), kind.as_str().into()];
        a.extend(names.iter().map(|n| (*n).to_owned()));
        let values: Vec<(Arg, &str)> = names.iter().map(|n| (inspected(kind), *n)).collect();
        guarded(self.cmd(a, DEFAULT_TIMEOUT), &values)
    }

    /// `docker inspect --type TYPE --format TEMPLATE NAME`, e.g. `{{.State.Running}}`.
    pub fn inspect_format(&self, kind: ObjectKind, name: &str, template: &str) -> Command {
        let cmd = self.cmd(
            vec![
                "inspect".into(),
                "--type".into(),
                kind.as_str().into(),
                "--format".into(),
                template.into(),
                name.into(),
            ],
            DEFAULT_TIMEOUT,
        );
        guarded(cmd, &[(inspected(kind), name)])
    }

    /// `docker pull IMAGE`.
    pub fn pull(&self, image: &str) -> Command {
        guarded(
            self.cmd(vec!["pull".into(), image.into()], PULL_TIMEOUT),
            &[(Arg::Image, image)],
        )
    }

    /// `docker build …`; with [`BuildContext::Stdin`] the context tar is read from stdin.
    pub fn build(&self, o: &BuildOptions) -> Command {
        let mut a: Vec<String> = vec!["build".into(), "-t".into(), o.tag.clone()];
        if let Some(f) = &o.dockerfile {
            a.extend(["-f".into(), f.clone()]);
        }
        for (k, v) in &o.build_args {
            a.extend(["--build-arg".into(), kv(k, v)]);
        }
        for (k, v) in &o.labels {
            a.extend(["--label".into(), kv(k, v)]);
        }
        if o.no_cache {
            a.push("--no-cache".into());
        }
        a.extend(o.extra_args.iter().cloned());
        a.push(match &o.context {
            BuildContext::Dir(d) => d.clone(),
            BuildContext::Stdin => "-".into(),
        });
        let cmd = guarded(self.cmd(a, BUILD_TIMEOUT), &[(Arg::Image, &o.tag)]);
        match &o.context {
            BuildContext::Dir(d) => guarded(cmd, &[(Arg::Path, d)]),
            BuildContext::Stdin => cmd,
        }
    }

    /// `docker load`, reading an image tar from stdin.
    pub fn load(&self) -> Command {
        self.cmd(vec!["load".into()], PULL_TIMEOUT)
    }

    /// `docker ps --no-trunc [-a] [--filter F]… --format {{json .}}`: one JSON object per
    /// line ([`Docker::ps`](crate::Docker::ps) runs and parses it).
    pub fn ps(&self, all: bool, filters: &[PsFilter]) -> Command {
        let mut a: Vec<String> = vec!["ps".into(), "--no-trunc".into()];
        if all {
            a.push("-a".into());
        }
        for f in filters {
            a.extend(["--filter".into(), f.to_string()]);
        }
        a.extend(["--format".into(), "{{json .}}".into()]);
        self.cmd(a, DEFAULT_TIMEOUT)
    }

    /// `docker image rm [-f] IMAGE`.
    pub fn image_rm(&self, image: &str, force: bool) -> Command {
        let mut a: Vec<String> = vec!["image".into(), "rm".into()];
        if force {
            a.push("-f".into());
        }
        a.push(image.into());
        guarded(self.cmd(a, DEFAULT_TIMEOUT), &[(Arg::Image, image)])
    }

    /// `docker version --format {{.Server.Version}}`: fails unless the engine answers.
    pub fn server_version(&self) -> Command {
        self.cmd(
            vec![
                "version".into(),
                "--format".into(),
                "{{.Server.Version}}".into(),
            ],
            DEFAULT_TIMEOUT,
        )
    }
}

/// The kind of object `docker inspect` looks at (`--type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A container.
    Container,
    /// An image.
    Image,
    /// A volume.
    Volume,
}

impl ObjectKind {
    /// The `--type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Container => "container",
            ObjectKind::Image => "image",
            ObjectKind::Volume => "volume",
        }
    }
}
