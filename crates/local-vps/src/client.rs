//! [`LocalVpsClient`]: the [`VpsClient`] whose VPSes are fake-VPS containers.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use docker_ssh::{
    CommitOptions, ContainerInfo, Docker, DockerError, ExecError, ExecOptions, LocalExecutor,
    PULL_TIMEOUT, PortMapping, PsFilter, RunOptions, VolumeInfo, VolumeMount, check_output,
    parse_load,
};
use local_vps_images::{Image, ImageError, Privilege, ensure_image, fake_vps_run_args};
use tracing::Instrument as _;
use vps_client::{
    CreateInstanceRequest, InstanceInfo, SnapshotInfo, SnapshotStatus, SshKeyInfo, VpsClient,
    VpsClientError, probe_tcp_banner,
};
use vps_primitives::{SshKeyId, Tag, VpsInstanceId, VpsInstanceStatus, VpsSnapshotId};

use crate::config::{LocalOs, LocalVpsConfig};
use crate::labels::{
    INSTANCE_LABEL, KEY_NAME_LABEL, KEY_PUBLIC_LABEL, KIND_LABEL, Kind, NAME_LABEL, OS_LABEL,
    PLAN_LABEL, REGION_LABEL, SNAPSHOT_DESCRIPTION_LABEL, SNAPSHOT_IMAGE_LABEL, SNAPSHOT_LABEL,
    SNAPSHOT_SOURCE_LABEL, SSH_KEY_LABEL, TAG_PREFIX, TAGS_LABEL, has_all, tag_label, tag_labels,
    tags_from,
};
use crate::seed::{SEED_DIR, hostname_for, meta_data};

/// Repository of the images committed for snapshots: `mngr-local-vps-snapshot:<snapshot id>`.
pub const SNAPSHOT_REPOSITORY: &str = "mngr-local-vps-snapshot";

/// The VPS port every instance publishes, requested or not (as every cloud VPS has it).
const SSH_PORT: u16 = 22;

/// How long `stop_instance` lets systemd shut the VPS down before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Long enough to copy a VPS's `/var/lib/docker` or to commit a big container.
const COPY_TIMEOUT: Duration = Duration::from_secs(900);

/// A [`VpsClient`] whose VPSes are containers on the local Docker engine: systemd, sshd,
/// the real cloud-init reading a NoCloud seed made from the request, Docker (preinstalled
/// or not, see [`LocalOs`]), and a metadata service at 169.254.169.254.
///
/// The client keeps no state: instances, SSH key records and snapshots are Docker objects
/// carrying the labels of [`LocalVpsConfig`], so every process with the same config sees
/// the same account. See the crate docs for an example.
#[derive(Clone)]
pub struct LocalVpsClient {
    docker: Docker,
    config: LocalVpsConfig,
    /// Images this client has seen present (and how to run them), so a create does not
    /// ask the engine again. Not instance state: losing it costs two `docker image inspect`.
    images: Arc<tokio::sync::Mutex<HashMap<Image, (String, Privilege)>>>,
}

impl std::fmt::Debug for LocalVpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalVpsClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a new instance is made from.
struct Blueprint<'a> {
    /// The image of its container.
    image: &'a str,
    /// How it gets its privileges.
    privilege: Privilege,
    /// `(base image, volume)`: fill its `/var/lib/docker` volume from this volume.
    docker_volume_from: Option<(&'a str, &'a str)>,
}

/// Where the disk of a new instance comes from.
enum Source {
    /// A fresh image of this OS.
    Os(LocalOs),
    /// A complete snapshot: its committed image, and the volume holding its
    /// `/var/lib/docker`.
    Snapshot { image: String, volume: String },
}

/// The names of an instance's objects, all derived from its id.
struct Names {
    container: String,
    docker_volume: String,
    network: String,
}

impl Names {
    fn of(id: &VpsInstanceId) -> Self {
        Self {
            container: id.as_str().to_owned(),
            docker_volume: format!("{id}-docker"),
            network: format!("{id}-net"),
        }
    }
}

fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn not_found(kind: &'static str, id: impl ToString) -> VpsClientError {
    VpsClientError::NotFound {
        kind,
        id: id.to_string(),
    }
}

fn invalid(message: impl Into<String>) -> VpsClientError {
    VpsClientError::Api {
        status: 400,
        message: message.into(),
    }
}

/// A failed Docker command, with what was being done and, when the engine itself is the
/// problem, what to do about it.
fn engine_error(what: impl std::fmt::Display, e: impl Into<DockerError>) -> VpsClientError {
    let e = e.into();
    let text = e.to_string();
    let hint = match &e {
        DockerError::Exec(ExecError::Io { .. }) => " (is the `docker` CLI installed and on PATH?)",
        _ if text.contains("Cannot connect to the Docker daemon") => {
            " (is the Docker engine running? check `docker info`)"
        }
        _ if text.contains("non-overlapping IPv4 address pool") => {
            " (each local VPS has a network of its own and the engine's address pools are \
             used up: destroy unused VPSes, or widen `default-address-pools` in daemon.json)"
        }
        _ => "",
    };
    VpsClientError::Backend {
        message: format!("local-vps: {what} failed: {text}{hint}"),
        source: Some(Box::new(e)),
    }
}

/// A failed listing or inspect: output Docker printed that cannot be read is an invalid
/// response, anything else an engine error.
fn read_error(what: &str, e: DockerError) -> VpsClientError {
    match e {
        DockerError::Parse { source, .. } => VpsClientError::InvalidResponse(format!(
            "local-vps: {what} printed something unexpected: {source}"
        )),
        e => engine_error(what, e),
    }
}

fn image_error(image: Image, e: ImageError) -> VpsClientError {
    VpsClientError::Backend {
        message: format!(
            "local-vps: the image {} is missing and could not be built: {e}",
            image.name()
        ),
        source: Some(Box::new(e)),
    }
}

/// Whether `key` can be written unquoted in a Dockerfile `LABEL` (our own keys can).
fn is_plain_label_key(key: &str) -> bool {
    key.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Checks an OpenSSH public key line: `type base64 [comment]`, one line.
fn validate_public_key(key: &str) -> Result<String, VpsClientError> {
    let key = key.trim();
    let mut words = key.split_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        return Err(invalid(
            "the SSH public key must be one OpenSSH line: `<type> <base64> [comment]`",
        ));
    };
    let known =
        kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-") || kind.starts_with("sk-");
    let base64 = blob
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !known || !base64 || key.contains(['\n', '\r']) {
        return Err(invalid(format!(
            "not an OpenSSH public key line (type {kind:?}): expected e.g. `ssh-ed25519 AAAA… comment`"
        )));
    }
    Ok(key.to_owned())
}

/// Where `port` of the container is published on this machine, if it is.
fn published(c: &ContainerInfo, port: u16) -> Option<SocketAddr> {
    let bindings = c
        .network_settings
        .ports
        .get(&format!("{port}/tcp"))?
        .as_ref()?;
    bindings.iter().find_map(|b| {
        let ip: IpAddr = match b.host_ip.as_str() {
            "" | "0.0.0.0" => Ipv4Addr::LOCALHOST.into(),
            other => other.parse().ok()?,
        };
        let host_port: u16 = b.host_port.parse().ok()?;
        ip.is_ipv4().then_some(SocketAddr::new(ip, host_port))
    })
}

/// The ports of `c` that are published, for messages.
fn published_ports(c: &ContainerInfo) -> Vec<String> {
    c.network_settings
        .ports
        .iter()
        .filter(|(_, b)| b.as_ref().is_some_and(|b| !b.is_empty()))
        .map(|(k, _)| k.trim_end_matches("/tcp").to_owned())
        .collect()
}

impl LocalVpsClient {
    /// A client on the local engine (the `docker` CLI on `PATH`) with `config`.
    ///
    /// Fails with [`VpsClientError::Config`] when the ownership labels are unusable.
    pub fn new(config: LocalVpsConfig) -> Result<Self, VpsClientError> {
        config.validate()?;
        Ok(Self {
            docker: Docker::new(Arc::new(LocalExecutor::new())),
            config,
            images: Arc::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LocalVpsConfig {
        &self.config
    }

    /// The OS id of the default image ([`LocalOs::DockerReady`]).
    pub fn default_os_id() -> vps_primitives::OsId {
        LocalOs::default().os_id()
    }

    /// The ownership labels plus `kind`: what every listing filters on.
    fn owned(&self, kind: Kind) -> Vec<(String, String)> {
        let mut labels = vec![(KIND_LABEL.to_owned(), kind.as_str().to_owned())];
        labels.extend(self.config.label_pairs());
        labels
    }

    /// Builds the image for `os` if it is missing (with progress lines) and finds out how
    /// fake VPSes get their privileges on this engine. Called by `create_instance`; call it
    /// ahead to move the first-use build out of a timed section.
    pub async fn prepare(&self, os: LocalOs) -> Result<String, VpsClientError> {
        self.ensure(os.image()).await.map(|(tag, _)| tag)
    }

    async fn ensure(&self, image: Image) -> Result<(String, Privilege), VpsClientError> {
        // Held while building, so concurrent first creates wait for one build.
        let mut known = self.images.lock().await;
        if let Some(found) = known.get(&image) {
            return Ok(found.clone());
        }
        let found = self.ensure_uncached(image).await?;
        known.insert(image, found.clone());
        Ok(found)
    }

    async fn ensure_uncached(&self, image: Image) -> Result<(String, Privilege), VpsClientError> {
        let progress = self.config.progress_fn();
        let span = tracing::info_span!("ensure_image", image = image.name());
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut report = |line: &str| progress(line);
            let tag = ensure_image(image, &mut report).map_err(|e| image_error(image, e))?;
            let base =
                ensure_image(Image::Base, &mut report).map_err(|e| image_error(Image::Base, e))?;
            let privilege = Privilege::detect(&base).map_err(|e| VpsClientError::Backend {
                message: format!(
                    "local-vps: cannot tell how to run privileged containers on this engine: {e}"
                ),
                source: Some(Box::new(e)),
            })?;
            Ok((tag, privilege))
        })
        .await
        .map_err(|e| VpsClientError::Backend {
            message: format!("local-vps: the image build task failed: {e}"),
            source: None,
        })?
    }

    /// The instance's container, if it exists and belongs to this account.
    async fn find_instance(
        &self,
        id: &VpsInstanceId,
    ) -> Result<Option<ContainerInfo>, VpsClientError> {
        let names = Names::of(id);
        let found = self
            .docker
            .inspect_container(&names.container)
            .await
            .map_err(|e| engine_error(format_args!("docker inspect {id}"), e))?;
        Ok(found.filter(|c| {
            c.short_name() == names.container
                && c.config.labels.get(INSTANCE_LABEL).map(String::as_str) == Some(id.as_str())
                && has_all(&c.config.labels, &self.owned(Kind::Instance))
        }))
    }

    async fn require_instance(&self, id: &VpsInstanceId) -> Result<ContainerInfo, VpsClientError> {
        self.find_instance(id)
            .await?
            .ok_or_else(|| not_found("instance", id))
    }

    /// `docker inspect` of several containers; those that vanished meanwhile are left out.
    async fn inspect_many(&self, ids: &[&str]) -> Result<Vec<ContainerInfo>, VpsClientError> {
        self.docker
            .inspect_containers(ids)
            .await
            .map_err(|e| read_error("docker inspect", e))
    }

    /// Status of a fake VPS: its container state, and for a running one whether sshd
    /// greets on port 22 (a TCP connection alone proves nothing: Docker's port proxy accepts
    /// before sshd listens).
    async fn status_of(&self, c: &ContainerInfo) -> VpsInstanceStatus {
        match c.state.status.as_str() {
            "running" => {
                let Some(addr) = published(c, SSH_PORT) else {
                    return VpsInstanceStatus::Pending;
                };
                let probe = tokio::time::timeout(
                    self.config.probe_timeout_value(),
                    probe_tcp_banner(addr, b"SSH-"),
                );
                match probe.await {
                    Ok(Ok(())) => VpsInstanceStatus::Active,
                    Ok(Err(e)) => {
                        tracing::debug!(%addr, error = %e, "sshd not answering yet");
                        VpsInstanceStatus::Pending
                    }
                    Err(_) => VpsInstanceStatus::Pending,
                }
            }
            "created" | "restarting" | "paused" => VpsInstanceStatus::Pending,
            "exited" => VpsInstanceStatus::Halted,
            "removing" => VpsInstanceStatus::Destroying,
            _ => VpsInstanceStatus::Unknown,
        }
    }

    async fn info_of(&self, id: VpsInstanceId, c: &ContainerInfo) -> InstanceInfo {
        let labels = &c.config.labels;
        InstanceInfo {
            id,
            label: labels.get(NAME_LABEL).cloned().unwrap_or_default(),
            status: self.status_of(c).await,
            tags: tags_from(labels),
            address: c.state.running.then_some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            // `docker inspect`'s `.Created`, RFC 3339 with nanoseconds.
            created_at: vps_client::time::OffsetDateTime::parse(
                &c.created,
                &vps_client::time::format_description::well_known::Rfc3339,
            )
            .ok(),
        }
    }

    /// Stops (powers off) a VPS: systemd shuts it down; its disk and volumes stay. Its
    /// status becomes [`VpsInstanceStatus::Halted`].
    #[tracing::instrument(skip(self), fields(instance = %id))]
    pub async fn stop_instance(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
        let c = self.require_instance(id).await?;
        self.docker
            .stop(&c.id, STOP_GRACE)
            .await
            .map_err(|e| engine_error(format_args!("stopping {id}"), e))
    }

    /// Starts a stopped VPS. Its published ports change: ask
    /// [`VpsClient::socket_addr`] again.
    #[tracing::instrument(skip(self), fields(instance = %id))]
    pub async fn start_instance(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
        let c = self.require_instance(id).await?;
        self.docker
            .start(&c.id)
            .await
            .map_err(|e| engine_error(format_args!("starting {id}"), e))
    }

    /// Copies a local image into the VPS's Docker engine: `docker save IMAGE` here, piped
    /// into `docker load` inside the VPS. Returns what `docker load` reports.
    ///
    /// No engine on a VPS can pull (there is no registry), so tests and local hosts load
    /// what they need this way. It goes through the local engine, not the network: a
    /// cloud has no such path (there, `docker load` over SSH does the same). The VPS must
    /// be running with its Docker engine up (on [`LocalOs::FreshDebian12`], after the
    /// user_data installed it).
    #[tracing::instrument(skip(self), fields(instance = %id))]
    pub async fn preload_image(
        &self,
        id: &VpsInstanceId,
        image: &str,
    ) -> Result<Vec<String>, VpsClientError> {
        let c = self.require_instance(id).await?;
        if !c.state.running {
            return Err(VpsClientError::NotReady {
                id: id.clone(),
                message: format!("it is {}; start it before loading images", c.state.status),
            });
        }
        // `docker save` here, piped into `docker load` in the VPS. Each side drops its end
        // of the pipe when done, so the other sees EOF (or a broken pipe) and stops too.
        let (mut tar_in, mut tar_out) = tokio::io::duplex(256 * 1024);
        let docker = &self.docker;
        let save = async move {
            let saved = docker.save(image, &mut tar_in).await;
            drop(tar_in);
            saved
        };
        let load = docker.cli().exec(
            &ExecOptions::argv(&c.id, ["docker", "load"])
                .interactive()
                .timeout(PULL_TIMEOUT),
        );
        let loading = async {
            let loaded = docker.executor().run_with_stdin(&load, &mut tar_out).await;
            drop(tar_out);
            loaded
        };
        let (saved, loaded) = tokio::join!(save, loading);
        let out = loaded.map_err(|e| engine_error(format_args!("loading {image} into {id}"), e))?;
        let out = check_output(&docker.executor().target(), &load, out).map_err(|e| {
            engine_error(
                format_args!("loading {image} into {id} (is Docker running in the VPS yet?)"),
                e,
            )
        })?;
        saved.map_err(|e| engine_error(format_args!("saving {image} with `docker save`"), e))?;
        Ok(parse_load(&out.stdout_text()))
    }

    /// Removes every container, volume and network of instance `id` (its fake VPS, the
    /// volume behind its `/var/lib/docker`, its network). Snapshots taken of it stay.
    async fn remove_instance_objects(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
        let mut mine = self.config.label_pairs();
        mine.push((INSTANCE_LABEL.to_owned(), id.as_str().to_owned()));
        let filters: Vec<PsFilter> = mine
            .iter()
            .map(|(k, v)| PsFilter::label(k.clone(), v.clone()))
            .collect();
        let containers = self
            .docker
            .ps(true, &filters)
            .await
            .map_err(|e| engine_error(format_args!("listing the containers of {id}"), e))?;
        for c in &containers {
            self.docker
                .rm(&c.id, true)
                .await
                .map_err(|e| engine_error(format_args!("removing the container of {id}"), e))?;
        }
        let volumes = self
            .docker
            .volume_ls(&mine)
            .await
            .map_err(|e| engine_error(format_args!("listing the volumes of {id}"), e))?;
        for v in &volumes {
            self.docker
                .volume_rm(v)
                .await
                .map_err(|e| engine_error(format_args!("removing volume {v} of {id}"), e))?;
        }
        let networks = self
            .docker
            .network_ls(&mine)
            .await
            .map_err(|e| engine_error(format_args!("listing the networks of {id}"), e))?;
        let networks: Vec<&str> = networks.iter().map(String::as_str).collect();
        self.docker
            .network_rm(&networks)
            .await
            .map_err(|e| engine_error(format_args!("removing the network of {id}"), e))
    }

    async fn create_parts(
        &self,
        id: &VpsInstanceId,
        request: &CreateInstanceRequest,
        blueprint: &Blueprint<'_>,
        public_keys: &[String],
        ports: &[u16],
    ) -> Result<(), VpsClientError> {
        let (image, privilege) = (blueprint.image, blueprint.privilege);
        let names = Names::of(id);
        let instance = (INSTANCE_LABEL.to_owned(), id.as_str().to_owned());

        let mut labels = self.owned(Kind::Network);
        labels.push(instance.clone());
        self.docker
            .network_create(&names.network, &labels)
            .await
            .map_err(|e| engine_error("creating the VPS's network", e))?;

        let mut labels = self.owned(Kind::DockerVolume);
        labels.push(instance.clone());
        self.docker
            .volume_create(&names.docker_volume, &labels)
            .await
            .map_err(|e| engine_error("creating the VPS's /var/lib/docker volume", e))?;
        if let Some((base, from)) = blueprint.docker_volume_from {
            self.copy_volume(
                base,
                from,
                &names.docker_volume,
                (INSTANCE_LABEL, id.as_str()),
                "copying the snapshot's /var/lib/docker into the new VPS",
            )
            .await?;
        }

        let hostname = hostname_for(&request.label);
        let mut options = RunOptions::new(image, &names.container)
            .volume(VolumeMount::new(&names.docker_volume, "/var/lib/docker"));
        for port in ports {
            options = options.port(PortMapping::new(*port).host_ip(Ipv4Addr::LOCALHOST.into()));
        }
        let mut labels = self.owned(Kind::Instance);
        labels.push(instance);
        labels.extend([
            (NAME_LABEL.to_owned(), request.label.clone()),
            (REGION_LABEL.to_owned(), request.region.to_string()),
            (PLAN_LABEL.to_owned(), request.plan.to_string()),
            (OS_LABEL.to_owned(), request.os.to_string()),
        ]);
        labels.extend(tag_labels(&request.tags));
        for (k, v) in labels {
            options = options.label(k, v);
        }
        options = options
            .extra_args(fake_vps_run_args(privilege))
            .extra_args(["--hostname", &hostname, "--network", &names.network]);
        self.docker
            .create(&options)
            .await
            .map_err(|e| engine_error("creating the VPS container", e))?;

        // The seed, delivered before the first boot, as a cloud attaches it.
        let seed = tempfile::Builder::new()
            .prefix("mngr-local-vps-seed-")
            .tempdir()
            .map_err(|e| VpsClientError::Backend {
                message: format!("local-vps: cannot make a temporary directory for the seed: {e}"),
                source: Some(Box::new(e)),
            })?;
        let write = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
            // Created 0600: user-data holds the VPS's private host key.
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(seed.path().join(name))?;
            f.write_all(bytes)
        };
        write("user-data", request.user_data.expose().as_bytes())
            .and_then(|()| {
                write(
                    "meta-data",
                    meta_data(id, &hostname, public_keys).as_bytes(),
                )
            })
            .map_err(|e| VpsClientError::Backend {
                message: format!("local-vps: cannot write the seed for {id}: {e}"),
                source: Some(Box::new(e)),
            })?;
        let src = format!("{}/.", seed.path().display());
        self.docker
            .cp_into(&src, &names.container, &format!("{SEED_DIR}/"))
            .await
            .map_err(|e| engine_error("copying the NoCloud seed into the VPS", e))?;
        drop(seed);

        self.docker
            .start(&names.container)
            .await
            .map_err(|e| engine_error(format_args!("starting {id}"), e))
    }

    /// The ports to publish (22 first) and the public keys of a request, or why it is
    /// refused.
    async fn check_request(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<(Vec<u16>, Vec<String>), VpsClientError> {
        let mut ports = vec![SSH_PORT];
        for port in &request.ports {
            if *port == 0 {
                return Err(invalid("port 0 cannot be published"));
            }
            if !ports.contains(port) {
                ports.push(*port);
            }
        }
        let public_keys = self.public_keys(&request.ssh_key_ids).await?;
        Ok((ports, public_keys))
    }

    /// Creates the objects of a new instance; a failure removes what was made.
    async fn create_from(
        &self,
        request: &CreateInstanceRequest,
        blueprint: &Blueprint<'_>,
        public_keys: &[String],
        ports: &[u16],
    ) -> Result<VpsInstanceId, VpsClientError> {
        let id = VpsInstanceId::parse(&format!("lvps-{}", random_hex())).map_err(|e| {
            VpsClientError::Backend {
                message: format!("local-vps: generated an invalid instance id: {e}"),
                source: None,
            }
        })?;
        let span = tracing::info_span!(
            "create_instance",
            instance = %id,
            label = %request.label,
            image = blueprint.image
        );
        async {
            let created = self
                .create_parts(&id, request, blueprint, public_keys, ports)
                .await;
            if let Err(e) = created {
                if let Err(cleanup) = self.remove_instance_objects(&id).await {
                    tracing::error!(error = %cleanup, "could not remove what a failed create left");
                    return Err(VpsClientError::Backend {
                        message: format!(
                            "{e}; and removing what it left failed too: {cleanup} \
                             (remove containers, volumes and networks labelled {INSTANCE_LABEL}={id})"
                        ),
                        source: Some(Box::new(e)),
                    });
                }
                return Err(e);
            }
            tracing::info!("fake VPS created");
            Ok(id.clone())
        }
        .instrument(span)
        .await
    }

    /// What a new instance is made from: the image of `request.os`, or a complete
    /// snapshot (which is the OS then).
    async fn source_of(&self, request: &CreateInstanceRequest) -> Result<Source, VpsClientError> {
        if let Some(snapshot) = &request.snapshot {
            let (image, volume) = self.complete_snapshot(snapshot).await?;
            return Ok(Source::Snapshot { image, volume });
        }
        LocalOs::from_os_id(request.os).map(Source::Os).ok_or_else(|| {
            invalid(format!(
                "local-vps has no OS id {}: use {} (Debian 12 with Docker) or {} (fresh Debian 12)",
                request.os,
                LocalOs::DOCKER_READY_ID,
                LocalOs::FRESH_DEBIAN_12_ID
            ))
        })
    }

    /// The image and the `/var/lib/docker` volume of a snapshot that is complete;
    /// [`VpsClientError::NotFound`] if this account has no such snapshot.
    async fn complete_snapshot(
        &self,
        snapshot: &VpsSnapshotId,
    ) -> Result<(String, String), VpsClientError> {
        let mut filters = self.owned(Kind::Snapshot);
        filters.push((SNAPSHOT_LABEL.to_owned(), snapshot.to_string()));
        let record = self
            .volumes(&filters)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| not_found("snapshot", snapshot))?;
        let image = record
            .labels
            .get(SNAPSHOT_IMAGE_LABEL)
            .cloned()
            .ok_or_else(|| {
                VpsClientError::InvalidResponse(format!(
                    "local-vps: snapshot {snapshot}'s record names no image"
                ))
            })?;
        let complete = self
            .docker
            .image_exists(&image)
            .await
            .map_err(|e| engine_error("looking up the snapshot's image", e))?;
        if !complete {
            return Err(VpsClientError::Api {
                status: 409,
                message: format!(
                    "snapshot {snapshot} is not complete (being taken, or taking it was interrupted)"
                ),
            });
        }
        Ok((image, record.name))
    }

    /// The public keys of `ids`, in order; an unknown id is [`VpsClientError::NotFound`].
    async fn public_keys(&self, ids: &[SshKeyId]) -> Result<Vec<String>, VpsClientError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.list_ssh_keys().await?;
        ids.iter()
            .map(|id| {
                keys.iter()
                    .find(|k| &k.id == id)
                    .map(|k| k.public_key.clone())
                    .ok_or_else(|| not_found("SSH key", id))
            })
            .collect()
    }

    /// Volumes carrying all of `filters`, inspected; vanished ones are left out.
    async fn volumes(
        &self,
        filters: &[(String, String)],
    ) -> Result<Vec<VolumeInfo>, VpsClientError> {
        let names = self
            .docker
            .volume_ls(filters)
            .await
            .map_err(|e| engine_error("listing volumes", e))?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let all = self
            .docker
            .inspect_volumes(&names)
            .await
            .map_err(|e| read_error("docker volume inspect", e))?;
        Ok(all
            .into_iter()
            .filter(|v| has_all(&v.labels, filters))
            .collect())
    }

    /// Copies volume `from` into volume `to` (ownership, modes, xattrs such as overlayfs'
    /// `trusted.*` ones) with a throwaway container of `base`, without network.
    async fn copy_volume(
        &self,
        base: &str,
        from: &str,
        to: &str,
        purpose: (&str, &str),
        what: &str,
    ) -> Result<(), VpsClientError> {
        let mut copy = RunOptions::new(base, format!("{to}-copy-{}", random_hex()))
            .auto_remove()
            .timeout(COPY_TIMEOUT)
            .volume(VolumeMount::new(from, "/from").read_only())
            .volume(VolumeMount::new(to, "/to"))
            .extra_args(["--network", "none", "--cap-add", "SYS_ADMIN"])
            .entrypoint("cp")
            .args(["-a", "/from/.", "/to/"]);
        for (k, v) in self.owned(Kind::Helper) {
            copy = copy.label(k, v);
        }
        copy = copy.label(purpose.0, purpose.1);
        self.docker
            .run_attached(&copy)
            .await
            .map(drop)
            .map_err(|e| engine_error(what, e))
    }

    async fn take_snapshot(
        &self,
        c: &ContainerInfo,
        id: &VpsInstanceId,
        snapshot: &VpsSnapshotId,
        image_ref: &str,
    ) -> Result<(), VpsClientError> {
        let (base, _) = self.ensure(Image::Base).await?;
        let names = Names::of(id);
        let pause = c.state.running && !c.state.paused;
        if pause {
            self.docker
                .pause(&c.id)
                .await
                .map_err(|e| engine_error("pausing the VPS for a consistent snapshot", e))?;
        }
        let taken = async {
            self.copy_volume(
                &base,
                &names.docker_volume,
                snapshot.as_str(),
                (SNAPSHOT_LABEL, snapshot.as_str()),
                "copying the VPS's /var/lib/docker for the snapshot",
            )
            .await?;
            // The image keeps the container's labels; those that would make a VPS made
            // from it look like the source (its instance id, its tags) are emptied.
            let mut commit = CommitOptions::new(&c.id, image_ref)
                .no_pause()
                .timeout(COPY_TIMEOUT)
                .change(format!(
                    "LABEL {KIND_LABEL}={}",
                    Kind::SnapshotImage.as_str()
                ))
                .change(format!("LABEL {SNAPSHOT_LABEL}={snapshot}"))
                .change(format!("LABEL {INSTANCE_LABEL}=\"\""))
                .change(format!("LABEL {TAGS_LABEL}=\"[]\""));
            for k in c.config.labels.keys() {
                if k.starts_with(TAG_PREFIX) && is_plain_label_key(k) {
                    commit = commit.change(format!("LABEL {k}=\"\""));
                }
            }
            self.docker
                .commit_with(&commit)
                .await
                .map(drop)
                .map_err(|e| engine_error("committing the VPS's disk for the snapshot", e))
        }
        .await;
        if pause {
            let resumed = self
                .docker
                .unpause(&c.id)
                .await
                .map_err(|e| engine_error("resuming the VPS after the snapshot", e));
            if taken.is_ok() {
                resumed?;
            } else if let Err(e) = resumed {
                tracing::warn!(error = %e, "could not resume the VPS after a failed snapshot");
            }
        }
        taken
    }
}

#[async_trait]
impl VpsClient for LocalVpsClient {
    fn provider_kind(&self) -> &str {
        "local"
    }

    /// Creates the fake VPS (network, `/var/lib/docker` volume, container), copies the
    /// NoCloud seed in and starts it; returns without waiting for the boot. Builds the
    /// image first if it is missing. A failed create leaves nothing behind.
    ///
    /// With [`CreateInstanceRequest::snapshot`], like a cloud's "create from snapshot":
    /// the disk is the snapshot's image and `/var/lib/docker` a copy of the snapshot's
    /// volume (images and containers of the inner engine included); `request.os` is not
    /// used. The request's user_data and keys make a new seed with a new instance id, so
    /// cloud-init treats it as a new instance and runs its per-instance modules again (the
    /// host key comes from the new user_data). An unknown snapshot is
    /// [`VpsClientError::NotFound`]; one not complete yet is an API error 409.
    #[tracing::instrument(skip(self, request), fields(label = %request.label))]
    async fn create_instance(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<VpsInstanceId, VpsClientError> {
        let source = self.source_of(request).await?;
        let (ports, public_keys) = self.check_request(request).await?;
        let (image, privilege, docker_volume_from) = match source {
            Source::Os(os) => {
                let (image, privilege) = self.ensure(os.image()).await?;
                (image, privilege, None)
            }
            Source::Snapshot { image, volume } => {
                let (base, privilege) = self.ensure(Image::Base).await?;
                (image, privilege, Some((base, volume)))
            }
        };
        let blueprint = Blueprint {
            image: &image,
            privilege,
            docker_volume_from: docker_volume_from
                .as_ref()
                .map(|(base, volume)| (base.as_str(), volume.as_str())),
        };
        self.create_from(request, &blueprint, &public_keys, &ports)
            .await
    }

    #[tracing::instrument(skip(self), fields(instance = %id))]
    async fn destroy_instance(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
        self.remove_instance_objects(id).await
    }

    #[tracing::instrument(skip(self), fields(instance = %id))]
    async fn get_instance(&self, id: &VpsInstanceId) -> Result<InstanceInfo, VpsClientError> {
        let c = self.require_instance(id).await?;
        Ok(self.info_of(id.clone(), &c).await)
    }

    #[tracing::instrument(skip(self), fields(instance = %id))]
    async fn socket_addr(
        &self,
        id: &VpsInstanceId,
        port: u16,
    ) -> Result<SocketAddr, VpsClientError> {
        let c = self.require_instance(id).await?;
        if !c.state.running {
            return Err(VpsClientError::NotReady {
                id: id.clone(),
                message: format!(
                    "it is {} (not running), so no port is published; start it",
                    c.state.status
                ),
            });
        }
        published(&c, port).ok_or_else(|| {
            invalid(format!(
                "port {port} of {id} is not published: only port 22 and the ports of the create \
                 request are (published: {})",
                published_ports(&c).join(", ")
            ))
        })
    }

    #[tracing::instrument(skip(self))]
    async fn list_instances(&self, tag: Option<&Tag>) -> Result<Vec<InstanceInfo>, VpsClientError> {
        let mut wanted = self.owned(Kind::Instance);
        if let Some(tag) = tag {
            wanted.push(tag_label(tag));
        }
        let filters: Vec<PsFilter> = wanted
            .iter()
            .map(|(k, v)| PsFilter::label(k.clone(), v.clone()))
            .collect();
        let entries = self
            .docker
            .ps(true, &filters)
            .await
            .map_err(|e| engine_error("listing the fake VPS containers", e))?;
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let containers = self.inspect_many(&ids).await?;
        let found: Vec<(VpsInstanceId, &ContainerInfo)> = containers
            .iter()
            .filter(|c| has_all(&c.config.labels, &wanted))
            .filter(|c| tag.is_none_or(|t| tags_from(&c.config.labels).contains(t)))
            .filter_map(|c| {
                let id = c.config.labels.get(INSTANCE_LABEL)?;
                VpsInstanceId::parse(id).ok().map(|id| (id, c))
            })
            .collect();
        Ok(futures::future::join_all(found.into_iter().map(|(id, c)| self.info_of(id, c))).await)
    }

    /// A snapshot is the VPS's disk (`docker commit` of its container, as the image
    /// `mngr-local-vps-snapshot:<id>`) plus a copy of its `/var/lib/docker` volume (a volume
    /// named after the snapshot, whose labels are the snapshot's record), taken with the VPS
    /// paused so both are consistent.
    #[tracing::instrument(skip(self), fields(instance = %id))]
    async fn create_snapshot(
        &self,
        id: &VpsInstanceId,
        description: &str,
    ) -> Result<VpsSnapshotId, VpsClientError> {
        let c = self.require_instance(id).await?;
        let snapshot =
            VpsSnapshotId::parse(&format!("lvps-snap-{}", random_hex())).map_err(|e| {
                VpsClientError::Backend {
                    message: format!("local-vps: generated an invalid snapshot id: {e}"),
                    source: None,
                }
            })?;
        let image_ref = format!("{SNAPSHOT_REPOSITORY}:{snapshot}");
        let mut labels = self.owned(Kind::Snapshot);
        labels.extend([
            (SNAPSHOT_LABEL.to_owned(), snapshot.to_string()),
            (
                SNAPSHOT_DESCRIPTION_LABEL.to_owned(),
                description.to_owned(),
            ),
            (SNAPSHOT_SOURCE_LABEL.to_owned(), id.to_string()),
            (SNAPSHOT_IMAGE_LABEL.to_owned(), image_ref.clone()),
        ]);
        self.docker
            .volume_create(snapshot.as_str(), &labels)
            .await
            .map_err(|e| engine_error("creating the snapshot's volume", e))?;
        if let Err(e) = self.take_snapshot(&c, id, &snapshot, &image_ref).await {
            let _ = self.docker.image_rm(&image_ref, true).await;
            if let Err(cleanup) = self.docker.volume_rm(snapshot.as_str()).await {
                tracing::error!(error = %cleanup, "could not remove a failed snapshot's volume");
            }
            return Err(e);
        }
        Ok(snapshot)
    }

    #[tracing::instrument(skip(self), fields(snapshot = %id))]
    async fn delete_snapshot(&self, id: &VpsSnapshotId) -> Result<(), VpsClientError> {
        // A copy helper left by an interrupted snapshot would keep the volume in use.
        let helpers: Vec<PsFilter> = self
            .owned(Kind::Helper)
            .into_iter()
            .chain([(SNAPSHOT_LABEL.to_owned(), id.to_string())])
            .map(|(k, v)| PsFilter::label(k, v))
            .collect();
        let left = self
            .docker
            .ps(true, &helpers)
            .await
            .map_err(|e| engine_error(format_args!("listing helpers of snapshot {id}"), e))?;
        for c in &left {
            self.docker
                .rm(&c.id, true)
                .await
                .map_err(|e| engine_error(format_args!("removing a helper of snapshot {id}"), e))?;
        }
        let mut filters = self.owned(Kind::Snapshot);
        filters.push((SNAPSHOT_LABEL.to_owned(), id.to_string()));
        for v in self.volumes(&filters).await? {
            if let Some(image) = v.labels.get(SNAPSHOT_IMAGE_LABEL) {
                self.docker.image_rm(image, true).await.map_err(|e| {
                    engine_error(format_args!("removing the image of snapshot {id}"), e)
                })?;
            }
            self.docker.volume_rm(&v.name).await.map_err(|e| {
                engine_error(format_args!("removing the volume of snapshot {id}"), e)
            })?;
        }
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, VpsClientError> {
        let mut out = Vec::new();
        for v in self.volumes(&self.owned(Kind::Snapshot)).await? {
            let Some(id) = v
                .labels
                .get(SNAPSHOT_LABEL)
                .and_then(|s| VpsSnapshotId::parse(s).ok())
            else {
                continue;
            };
            // Taken once its image exists; before that (or if taking it was interrupted)
            // the record alone says "being taken".
            let complete = match v.labels.get(SNAPSHOT_IMAGE_LABEL) {
                Some(image) => self
                    .docker
                    .image_exists(image)
                    .await
                    .map_err(|e| engine_error("looking up a snapshot image", e))?,
                None => false,
            };
            out.push(SnapshotInfo {
                id,
                description: v
                    .labels
                    .get(SNAPSHOT_DESCRIPTION_LABEL)
                    .cloned()
                    .unwrap_or_default(),
                status: if complete {
                    SnapshotStatus::Complete
                } else {
                    SnapshotStatus::Pending
                },
                created_at: Some(v.created_at.clone()).filter(|s| !s.is_empty()),
            });
        }
        Ok(out)
    }

    /// Records the key as an empty volume whose labels hold its name and public key.
    #[tracing::instrument(skip(self, public_key))]
    async fn upload_ssh_key(
        &self,
        name: &str,
        public_key: &str,
    ) -> Result<SshKeyId, VpsClientError> {
        if name.trim().is_empty() || name.contains(['\n', '\r', '\0']) {
            return Err(invalid("an SSH key needs a non-empty, one-line name"));
        }
        let public_key = validate_public_key(public_key)?;
        let id = SshKeyId::parse(&format!("lvps-key-{}", random_hex())).map_err(|e| {
            VpsClientError::Backend {
                message: format!("local-vps: generated an invalid key id: {e}"),
                source: None,
            }
        })?;
        let mut labels = self.owned(Kind::SshKey);
        labels.extend([
            (SSH_KEY_LABEL.to_owned(), id.to_string()),
            (KEY_NAME_LABEL.to_owned(), name.to_owned()),
            (KEY_PUBLIC_LABEL.to_owned(), public_key),
        ]);
        self.docker
            .volume_create(id.as_str(), &labels)
            .await
            .map_err(|e| engine_error("recording the SSH key", e))?;
        Ok(id)
    }

    #[tracing::instrument(skip(self), fields(key = %id))]
    async fn delete_ssh_key(&self, id: &SshKeyId) -> Result<(), VpsClientError> {
        let mut filters = self.owned(Kind::SshKey);
        filters.push((SSH_KEY_LABEL.to_owned(), id.to_string()));
        for v in self.volumes(&filters).await? {
            self.docker
                .volume_rm(&v.name)
                .await
                .map_err(|e| engine_error(format_args!("removing SSH key {id}"), e))?;
        }
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn list_ssh_keys(&self) -> Result<Vec<SshKeyInfo>, VpsClientError> {
        Ok(self
            .volumes(&self.owned(Kind::SshKey))
            .await?
            .into_iter()
            .filter_map(|v| {
                let labels: BTreeMap<String, String> = v.labels;
                Some(SshKeyInfo {
                    id: SshKeyId::parse(labels.get(SSH_KEY_LABEL)?).ok()?,
                    name: labels.get(KEY_NAME_LABEL).cloned().unwrap_or_default(),
                    public_key: labels.get(KEY_PUBLIC_LABEL).cloned().unwrap_or_default(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_are_checked() {
        let good =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFpkHqZI0ux0XvjMJfc54ZKH5oWo6gHON4gVhG9XSP34 me@x";
        assert_eq!(
            validate_public_key(&format!("  {good}\n")).ok().as_deref(),
            Some(good)
        );
        for bad in [
            "",
            "ssh-ed25519",
            "hello world",
            "ssh-rsa AAA$$",
            "ssh-rsa AAAA\nssh-rsa BBBB",
        ] {
            assert!(validate_public_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn published_ports_are_read_from_inspect() {
        let c: ContainerInfo = serde_json::from_str(
            r#"{"Id":"x","Name":"/lvps-1","NetworkSettings":{"Ports":{
                "22/tcp":[{"HostIp":"127.0.0.1","HostPort":"49153"}],
                "2222/tcp":[{"HostIp":"::1","HostPort":"49154"},{"HostIp":"127.0.0.1","HostPort":"49155"}],
                "80/tcp":null}}}"#,
        )
        .expect("parses");
        assert_eq!(
            published(&c, 22),
            Some("127.0.0.1:49153".parse().expect("addr"))
        );
        assert_eq!(
            published(&c, 2222),
            Some("127.0.0.1:49155".parse().expect("addr"))
        );
        assert_eq!(published(&c, 80), None);
        assert_eq!(published(&c, 81), None);
        assert_eq!(published_ports(&c), ["22", "2222"]);
    }
}
