//! Creating, starting, stopping, reading and removing fake VPSes.

use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt as _;
use std::time::Duration;

use docker_ssh::{ContainerInfo, ObjectKind, PortMapping, PsFilter, RunOptions, VolumeMount};
use local_vps_images::{Image, Privilege, fake_vps_run_args};
use tracing::Instrument as _;
use vps_client::{CreateInstanceRequest, InstanceInfo, VpsClientError, probe_tcp_banner};
use vps_primitives::{Tag, VpsInstanceId, VpsInstanceStatus};

use super::errors::{engine_error, invalid};
use super::ports::{SSH_PORT, ports_to_publish, published, published_all, published_ports};
use super::{LocalVpsClient, Names, random_hex};
use crate::config::LocalOs;
use crate::labels::{
    INSTANCE_LABEL, Kind, NAME_LABEL, OS_LABEL, PLAN_LABEL, REGION_LABEL, has_all, tag_label,
    tag_labels, tags_from,
};
use crate::seed::{SEED_DIR, hostname_for, meta_data};

/// How long `stop_instance` lets systemd shut the VPS down before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

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

impl LocalVpsClient {
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

    pub(super) async fn info_of(&self, id: VpsInstanceId, c: &ContainerInfo) -> InstanceInfo {
        let labels = &c.config.labels;
        InstanceInfo {
            id,
            label: labels.get(NAME_LABEL).cloned().unwrap_or_default(),
            status: self.status_of(c).await,
            tags: tags_from(labels),
            address: c.state.running.then_some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            published: Some(if c.state.running {
                published_all(c)
            } else {
                Vec::new()
            }),
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
    /// [`VpsClient::socket_addr`](vps_client::VpsClient::socket_addr) again.
    #[tracing::instrument(skip(self), fields(instance = %id))]
    pub async fn start_instance(&self, id: &VpsInstanceId) -> Result<(), VpsClientError> {
        let c = self.require_instance(id).await?;
        self.docker
            .start(&c.id)
            .await
            .map_err(|e| engine_error(format_args!("starting {id}"), e))
    }

    /// Removes every container, volume and network of instance `id` (its fake VPS, the
    /// volume behind its `/var/lib/docker`, its network). Snapshots taken of it stay.
    pub(super) async fn remove_instance_objects(
        &self,
        id: &VpsInstanceId,
    ) -> Result<(), VpsClientError> {
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
        let mut images = Vec::new();
        for c in &containers {
            if let Ok(Some(image)) = self
                .docker
                .inspect_format(ObjectKind::Container, &c.id, "{{.Image}}")
                .await
            {
                images.push(image);
            }
            self.docker
                .rm(&c.id, true)
                .await
                .map_err(|e| engine_error(format_args!("removing the container of {id}"), e))?;
        }
        // An instance booted from a snapshot runs from the snapshot's image; deleting the
        // snapshot only untagged it while the instance used it. Now nothing does.
        for image in images {
            self.remove_if_untagged(&image).await;
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

    /// Removes `image` (an id) if it has no tag left: the image of a deleted snapshot that
    /// an instance still ran from. A tagged image (the OS image, a live snapshot) stays; one
    /// another container still uses stays too (the removal is not forced).
    async fn remove_if_untagged(&self, image: &str) {
        let tags = self
            .docker
            .inspect_format(ObjectKind::Image, image, "{{len .RepoTags}}")
            .await;
        if let Ok(Some(n)) = tags
            && n.trim() == "0"
            && let Err(e) = self.docker.image_rm(image, false).await
        {
            tracing::info!(%image, error = %e, "kept the untagged image of a deleted snapshot");
        }
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

        // The seed lives on a volume of its own, not in the container's writable layer,
        // so `docker commit` (a snapshot) never captures it: it holds the private host key.
        let mut labels = self.owned(Kind::SeedVolume);
        labels.push(instance.clone());
        self.docker
            .volume_create(&names.seed_volume, &labels)
            .await
            .map_err(|e| engine_error("creating the VPS's seed volume", e))?;

        let hostname = hostname_for(&request.label);
        let mut options = RunOptions::new(image, &names.container)
            .volume(VolumeMount::new(&names.docker_volume, "/var/lib/docker"))
            .volume(VolumeMount::new(&names.seed_volume, SEED_DIR));
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
        let ports = ports_to_publish(request)?;
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

    pub(super) async fn create(
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

    pub(super) async fn published_addr(
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

    pub(super) async fn instances(
        &self,
        tag: Option<&Tag>,
    ) -> Result<Vec<InstanceInfo>, VpsClientError> {
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
}
